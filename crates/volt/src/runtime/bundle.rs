//! The bundle: `config.json` (read with `oci-spec`) and its rootfs, which
//! containerd has already mounted. Everything `create` needs is checked
//! here, before any process exists.
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// What a bundle asks for, as `volt run` takes it.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    /// The program, as a path inside the rootfs, then its arguments.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub memory: Option<u64>,
    /// `Some(path)`: join that namespace; `Some(None)`-like is a new one.
    pub netns: Option<PathBuf>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn load(dir: &Path) -> Result<Bundle> {
    let cfg = dir.join("config.json");
    if !cfg.exists() {
        bail!("{}: no config.json in the bundle", dir.display());
    }
    let bytes = std::fs::read(&cfg).with_context(|| format!("cannot read {}", cfg.display()))?;
    let spec: Spec =
        serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", cfg.display()))?;
    let root = spec.root().as_ref().context("config.json has no root")?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    if !rootfs.is_dir() {
        bail!(
            "rootfs {} does not exist or is not a directory",
            rootfs.display()
        );
    }
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let mut args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        bail!("config.json: process.args is empty: nothing to run");
    }
    let env = process.env().clone().unwrap_or_default();
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let program = find_program(&rootfs, &args[0], path)
        .with_context(|| format!("{}: not found in the rootfs", args[0]))?;
    check_elf(&rootfs, &program)?;
    args[0] = program;
    let memory = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|&l| l > 0)
        .map(|l| l as u64);
    let netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Network))
        .and_then(|n| n.path().clone());
    Ok(Bundle {
        dir: dir.to_path_buf(),
        rootfs,
        args,
        env,
        cwd: process.cwd().display().to_string(),
        memory,
        netns,
    })
}

/// `name` as ld.so's caller would find it in the rootfs: a path, or the
/// first match on PATH. Returns the path inside the rootfs.
fn find_program(rootfs: &Path, name: &str, path: &str) -> Option<String> {
    if name.contains('/') {
        let p = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        return resolve_in(rootfs, &p).filter(|r| r.is_file()).map(|_| p);
    }
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
        .find(|p| resolve_in(rootfs, p).is_some_and(|r| r.is_file()))
}

/// The host path of guest path `p` in `rootfs`, following symlinks as if
/// `rootfs` were `/` (never above it).
pub fn resolve_in(rootfs: &Path, p: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = p.split('/').rev().map(String::from).collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        parts.push(c);
        let host = rootfs.join(parts.join("/"));
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            // A missing component: the caller finds out.
            return Some(host).filter(|_| todo.is_empty());
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return None;
            }
            let target = std::fs::read_link(&host).ok()?;
            parts.pop();
            if target.is_absolute() {
                parts.clear();
            }
            for comp in target.components().rev() {
                match comp {
                    Component::Normal(n) => todo.push(n.to_string_lossy().into_owned()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        }
    }
    Some(rootfs.join(parts.join("/")))
}

/// Refuses what the library OS cannot run, with the reason.
fn check_elf(rootfs: &Path, program: &str) -> Result<()> {
    let host = resolve_in(rootfs, program).context("the program vanished")?;
    let mut head = [0u8; 20];
    let n = std::io::Read::read(
        &mut std::fs::File::open(&host).with_context(|| format!("cannot open {program}"))?,
        &mut head,
    )?;
    let elf = n == 20 && head[..4] == *b"\x7fELF";
    if !elf {
        bail!("{program}: not an ELF executable: volt-runtime runs Linux x86-64 programs as unikernels (a script needs its interpreter as the entrypoint)");
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if head[4] != 2 || head[5] != 1 || machine != 62 {
        bail!(
            "{program}: not an x86-64 ELF (class {}, machine {machine})",
            head[4]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_in_the_rootfs() {
        let r = std::env::temp_dir().join(format!("ov-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&r);
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::write(r.join("usr/bin/app"), b"x").unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), b"root").unwrap();
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/app", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", r.join("up")).unwrap();
        assert_eq!(resolve_in(&r, "/bin/app"), Some(r.join("usr/bin/app")));
        assert_eq!(resolve_in(&r, "/abs"), Some(r.join("usr/bin/app")));
        assert_eq!(resolve_in(&r, "/up"), Some(r.join("etc/passwd")));
        assert_eq!(find_program(&r, "app", "/bin"), Some("/bin/app".into()));
        assert_eq!(find_program(&r, "nope", "/bin:/usr/bin"), None);
        let _ = std::fs::remove_dir_all(&r);
    }
}
