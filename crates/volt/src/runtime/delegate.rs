//! Containers that are not the application's run under runc. A Kubernetes
//! pod's sandbox (its "pause" container, annotated
//! `io.kubernetes.cri.container-type: sandbox`) only holds the pod's
//! namespaces; booting it as a unikernel would take the pod's interface
//! away from the application container. It, and any bundle annotated
//! `org.optivolt.runtime: runc`, is handed to runc, whose state is kept
//! under `ROOT/.runc`; a marker `ROOT/ID/delegated` sends every later call
//! for that ID there too.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

const SANDBOX: (&str, &str) = ("io.kubernetes.cri.container-type", "sandbox");
const OURS: (&str, &str) = ("org.optivolt.runtime", "runc");

/// Whether `bundle`'s config asks for runc.
fn wants_runc(bundle: &Path) -> bool {
    let Ok(b) = std::fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
        return false;
    };
    let a = &v["annotations"];
    [SANDBOX, OURS].iter().any(|(k, val)| a[*k] == *val)
}

fn runc() -> Result<PathBuf> {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .context("this container is for runc (a pod sandbox), and runc is not installed")
}

/// Runs the call under runc when the container is (or is to be) runc's:
/// `Some(exit status)`; `None` when it is ours.
pub fn maybe(
    root: &Path,
    args: &[String],
    id: Option<&str>,
    bundle: Option<&Path>,
) -> Result<Option<i32>> {
    let Some(id) = id.filter(|i| super::state::valid_id(i)) else {
        return Ok(None);
    };
    let marker = root.join(id).join("delegated");
    let create = bundle.is_some();
    if !(marker.exists() || bundle.is_some_and(wants_runc)) {
        return Ok(None);
    }
    if create {
        std::fs::create_dir_all(root.join(id))?;
        std::fs::write(&marker, b"runc\n")?;
    }
    // runc's arguments: ours, with its own root.
    let mut a: Vec<String> = vec!["--root".into(), root.join(".runc").display().to_string()];
    let mut skip = false;
    for x in args.iter().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if x == "--root" {
            skip = true;
            continue;
        }
        if x.starts_with("--root=") {
            continue;
        }
        a.push(x.clone());
    }
    let st = Command::new(runc()?)
        .args(&a)
        .status()
        .context("cannot run runc")?;
    let code = st.code().unwrap_or(1);
    let deleting = args.iter().any(|x| x == "delete");
    if (create && code != 0) || (deleting && code == 0) {
        let _ = std::fs::remove_dir_all(root.join(id));
    }
    Ok(Some(code))
}
