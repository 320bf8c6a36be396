//! `volt run -p` as an ordinary user: through pasta, in namespaces pasta
//! makes, with nothing of root's.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::net::{in_private_netns, wait_for_http};
use common::*;

const NOBODY: &str = "65534";

/// The kvm group's id (the user must be in it to open /dev/kvm).
fn kvm_gid() -> Option<String> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups
        .lines()
        .find(|l| l.starts_with("kvm:"))
        .and_then(|l| l.split(':').nth(2))
        .map(String::from)
}

#[test]
fn published_ports_work_without_root() {
    if !kvm_available("published_ports_work_without_root") {
        return;
    }
    let (Some(gid), true) = (kvm_gid(), std::path::Path::new("/usr/bin/pasta").exists()) else {
        eprintln!("=== SKIPPED published_ports_work_without_root: no kvm group or no pasta (apt-get install passt) ===");
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "=== SKIPPED published_ports_work_without_root: becoming another user needs root ==="
        );
        return;
    }
    in_private_netns("published_ports_work_without_root", move || {
        let s = Scratch::new("rootless", "pasta");
        let home = s.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let web = home.join("goweb");
        std::fs::copy(program("goweb", "go"), &web).unwrap();
        std::fs::set_permissions(&web, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .args(["-R", NOBODY])
            .arg(&home)
            .status()
            .unwrap();
        assert!(chown.success());
        let as_nobody = |args: &[&str]| {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", NOBODY, "--regid", NOBODY, "--groups", &gid, "--"])
                .arg(env!("CARGO_BIN_EXE_volt"))
                .args(["run", "--timeout", "60", "-p", "127.0.0.1:18099:8080"])
                .arg(&web)
                .args(args)
                .env_clear()
                .env("HOME", &home)
                .env("PATH", "/usr/bin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c
        };
        // Without a routable interface pasta cannot work: one line says so.
        let o = as_nobody(&["serve", ":8080"]).output().unwrap();
        one_line_error(
            &o,
            "pasta could not set up the network: External interface not usable",
        );
        // pasta wants an external interface with a route, as a real host
        // has: a veth pair of this namespace's own stands in (no traffic
        // leaves the namespace).
        for args in [
            &[
                "link", "add", "ext0", "type", "veth", "peer", "name", "ext1",
            ][..],
            &["addr", "add", "10.250.0.2/24", "dev", "ext0"],
            &["link", "set", "ext0", "up"],
            &["link", "set", "ext1", "up"],
            &["route", "add", "default", "via", "10.250.0.1"],
        ] {
            assert!(optivolt_testnet::ip(args), "ip {args:?}");
        }
        let s = Scratch::new("rootless", "pasta");
        let home = s.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let web = home.join("goweb");
        std::fs::copy(program("goweb", "go"), &web).unwrap();
        std::fs::set_permissions(&web, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .args(["-R", NOBODY])
            .arg(&home)
            .status()
            .unwrap();
        assert!(chown.success());
        let mut v = Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--groups", &gid, "--"])
            .arg(env!("CARGO_BIN_EXE_volt"))
            .args(["run", "--timeout", "60", "-p", "127.0.0.1:18099:8080"])
            .arg(&web)
            .args(["serve", ":8080"])
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let r = wait_for_http(
            "127.0.0.1:18099".parse().unwrap(),
            "/",
            Duration::from_secs(30),
        );
        assert_eq!(r.body, b"hello from goweb\n");
        // No tap was made in this namespace: pasta carried the connection.
        assert_eq!(common::net::links().len(), 2, "{:?}", common::net::links());
        // SIGTERM reaches the program, which ends with it, as with root.
        // SAFETY: kill takes no pointers; the PID is our child's.
        unsafe { libc::kill(v.id() as i32, libc::SIGTERM) };
        let st = v.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(v.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(st.code(), Some(143), "{err}");
        // Its state went to the user's own data directory.
        assert!(!s.dir.join("data").exists());
    });
}
