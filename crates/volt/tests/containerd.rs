//! `volt-runtime` under a real containerd (Debian's, started by the test
//! with its own root, state and socket): `ctr run` boots the image's
//! program as a unikernel.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::net::{http, in_private_netns, links};
use common::*;
use optivolt_volt::runtime::containerd::Private;

fn runtime() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_volt-runtime"))
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An OCI archive of a volt image whose rootfs holds `prog` as /app/NAME.
fn archive(s: &Scratch, name: &str, prog: &Path, cmd: &str) -> PathBuf {
    let ctx = s.dir.join(name);
    std::fs::create_dir_all(ctx.join("rootfs/app")).unwrap();
    // The file the command names: /app/FILE.
    let file = cmd
        .split('"')
        .nth(1)
        .and_then(|p| p.strip_prefix("/app/"))
        .unwrap_or(name);
    std::fs::copy(prog, ctx.join("rootfs/app").join(file)).unwrap();
    std::fs::write(
        ctx.join("Voltfile"),
        format!("spec: v1\nname: {name}\nrootfs: ./rootfs\ncmd: {cmd}\n"),
    )
    .unwrap();
    s.ok(&[
        "build",
        "-q",
        "-t",
        &format!("{name}:1"),
        &ctx.display().to_string(),
    ]);
    let out = s.dir.join(format!("{name}.tar"));
    let st = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}/data/images:{name}:1", s.dir.display()))
        .arg(format!("oci-archive:{}:{name}:1", out.display()))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy");
    out
}

/// An OCI archive made by buildah from scratch: /app/run.sh, a shell script,
/// as the entrypoint.
fn script_archive(s: &Scratch) -> PathBuf {
    let d = s.dir.join("buildah");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let b = |args: &[&str]| {
        let o = Command::new("buildah")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "buildah {args:?}: {}", text(&o.stderr));
        text(&o.stdout).trim().to_string()
    };
    let ctr = b(&["from", "scratch"]);
    b(&[
        "copy",
        &ctr,
        &d.join("run.sh").display().to_string(),
        "/app/run.sh",
    ]);
    b(&["config", "--entrypoint", r#"["/app/run.sh"]"#, &ctr]);
    let out = s.dir.join("script.tar");
    b(&[
        "commit",
        "-q",
        &ctr,
        &format!("oci-archive:{}:localhost/script:1", out.display()),
    ]);
    b(&["rm", &ctr]);
    out
}

fn ready(test: &str) -> bool {
    if !kvm_available(test) {
        return false;
    }
    if !have("containerd") || !have("ctr") || !have("skopeo") || !have("buildah") {
        eprintln!("=== SKIPPED {test}: containerd, ctr, skopeo or buildah missing (apt-get install containerd skopeo buildah) ===");
        return false;
    }
    true
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ctr_runs_an_image_as_a_unikernel() {
    if !ready("ctr_runs_an_image_as_a_unikernel") {
        return;
    }
    in_private_netns("ctr_runs_an_image_as_a_unikernel", || {
        let s = Scratch::new("containerd", "run");
        let c = Private::start(&s.dir.join("ctd")).unwrap();
        c.import(&archive(
            &s,
            "hello",
            &program("hello", "musl"),
            r#"["/app/hello"]"#,
        ))
        .unwrap();
        c.import(&archive(
            &s,
            "exit",
            &program("exit", "musl"),
            r#"["/app/exit", "3"]"#,
        ))
        .unwrap();
        c.import(&archive(
            &s,
            "web",
            &program("goweb", "go"),
            r#"["/app/goweb", "serve", ":8080"]"#,
        ))
        .unwrap();
        // The program's output reaches ctr, and its status is the task's.
        let o = c
            .run_with(&runtime(), "hello:1", "h1", &["/app/hello", "containerd"])
            .unwrap();
        assert_eq!(
            text(&o.stdout),
            "hello, containerd\n",
            "{}",
            text(&o.stderr)
        );
        assert!(o.status.success());
        let o = c.run_with(&runtime(), "exit:1", "e1", &[]).unwrap();
        assert_eq!(text(&o.stdout), "exiting with 3\n");
        assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
        // A pod's sandbox container goes to runc (its state in ROOT/.runc).
        let rt = runtime().display().to_string();
        let root = c.runc_root.display().to_string();
        let o = c
            .ctr(&[
                "run",
                "--rm",
                "--annotation",
                "io.kubernetes.cri.container-type=sandbox",
                "--runc-binary",
                &rt,
                "--runc-root",
                &root,
                "hello:1",
                "sb1",
            ])
            .unwrap();
        assert_eq!(text(&o.stdout), "hello, world\n", "{}", text(&o.stderr));
        assert!(c.runc_root.join("default/.runc").is_dir(), "runc ran it");
        assert!(
            !c.runc_root.join("default/sb1").exists(),
            "its marker is gone"
        );
        // A server: listed by `task ps`, paused and resumed, stopped by `task kill`.
        let o = c
            .ctr(&[
                "run",
                "-d",
                "--runc-binary",
                &rt,
                "--runc-root",
                &root,
                "web:1",
                "w1",
            ])
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let ps = text(&c.ctr(&["task", "ps", "w1"]).unwrap().stdout);
        let pid: i32 = ps
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("a PID");
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let ls = text(&c.ctr(&["task", "ls"]).unwrap().stdout);
        assert!(ls.contains("w1") && ls.contains("RUNNING"), "{ls}");
        assert!(c.ctr(&["task", "pause", "w1"]).unwrap().status.success());
        assert!(text(&c.ctr(&["task", "ls"]).unwrap().stdout).contains("PAUSED"));
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(st.contains(") T "), "the monitor is stopped: {st}");
        assert!(c.ctr(&["task", "resume", "w1"]).unwrap().status.success());
        assert!(text(&c.ctr(&["task", "ls"]).unwrap().stdout).contains("RUNNING"));
        assert!(c.ctr(&["task", "kill", "w1"]).unwrap().status.success());
        let until = Instant::now() + Duration::from_secs(20);
        while !text(&c.ctr(&["task", "ls"]).unwrap().stdout).contains("STOPPED")
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(text(&c.ctr(&["task", "ls"]).unwrap().stdout).contains("STOPPED"));
        assert!(c.ctr(&["task", "rm", "w1"]).unwrap().status.success());
        assert!(c.ctr(&["containers", "rm", "w1"]).unwrap().status.success());
        // Nothing is left: no process, no tap, no state.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert!(links().is_empty(), "{:?}", links());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains("/w1/"), "a mount is left: {mounts}");
        // (the shim keeps each namespace in its own directory under the root)
        let left: Vec<_> = std::fs::read_dir(c.runc_root.join("default"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != ".runc")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A plain container image whose entrypoint is a script (made by
        // buildah, as volt build refuses it) is refused at create, with the reason.
        c.import(&script_archive(&s)).unwrap();
        let o = c
            .run_with(&runtime(), "localhost/script:1", "s1", &[])
            .unwrap();
        assert!(!o.status.success());
        assert!(
            text(&o.stderr).contains("not an ELF executable"),
            "{}",
            text(&o.stderr)
        );
    });
}

#[test]
fn a_pod_network_namespace_reaches_the_guest() {
    if !ready("a_pod_network_namespace_reaches_the_guest") {
        return;
    }
    in_private_netns("a_pod_network_namespace_reaches_the_guest", || {
        let s = Scratch::new("containerd", "pod");
        let c = Private::start(&s.dir.join("ctd")).unwrap();
        c.import(&archive(
            &s,
            "web",
            &program("goweb", "go"),
            r#"["/app/goweb", "serve", ":8080"]"#,
        ))
        .unwrap();
        // As a CNI plugin would: a namespace with eth0, the other end here.
        let ns = format!("ovpod{}", std::process::id());
        let ip = |a: &[&str]| assert!(optivolt_testnet::ip(a), "ip {a:?}");
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", "ovh0", "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["addr", "add", "10.99.0.1/24", "dev", "ovh0"]);
        ip(&["link", "set", "ovh0", "up"]);
        ip(&["-n", &ns, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", "10.99.0.1"]);
        let rt = runtime().display().to_string();
        let root = c.runc_root.display().to_string();
        let with = format!("network:/run/netns/{ns}");
        let o = c
            .ctr(&[
                "run",
                "-d",
                "--with-ns",
                &with,
                "--runc-binary",
                &rt,
                "--runc-root",
                &root,
                "web:1",
                "p1",
            ])
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let addr = "10.99.0.2:8080".parse().unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let r = loop {
            match http(addr, "GET", "/", b"") {
                Ok(r) => break r,
                Err(e) if Instant::now() > until => panic!("no answer from the pod: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        assert_eq!(r.body, b"hello from goweb\n");
        assert!(c
            .ctr(&["task", "kill", "-s", "SIGKILL", "p1"])
            .unwrap()
            .status
            .success());
        std::thread::sleep(Duration::from_millis(300));
        let _ = c.ctr(&["task", "rm", "-f", "p1"]);
        assert!(c.ctr(&["containers", "rm", "p1"]).unwrap().status.success());
        // The pod's interface has its address back, and no tap is left in it.
        let out = Command::new("ip")
            .args(["-n", &ns, "-o", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        assert!(
            text(&out.stdout).contains("10.99.0.2/24"),
            "{}",
            text(&out.stdout)
        );
        let links = Command::new("ip")
            .args(["-n", &ns, "-o", "link"])
            .output()
            .unwrap();
        assert!(
            !text(&links.stdout).contains("vt"),
            "{}",
            text(&links.stdout)
        );
        ip(&["netns", "del", &ns]);
    });
}

#[test]
fn bad_bundles_and_flags_are_json_errors() {
    let s = Scratch::new("containerd", "bad");
    let log = s.dir.join("log.json");
    let rt = |args: &[&str]| {
        Command::new(runtime())
            .arg("--root")
            .arg(s.dir.join("root"))
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json"])
            .args(args)
            .output()
            .unwrap()
    };
    let last_error = || {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        let line = l.lines().last().unwrap_or("").to_string();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(v["level"], "error");
        v["msg"].as_str().unwrap_or("").to_string()
    };
    // No rootfs.
    let b = s.dir.join("bundle");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("config.json"),
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"user":{"uid":0,"gid":0},"args":["/app"],"cwd":"/"}}"#,
    )
    .unwrap();
    let o = rt(&["create", "--bundle", &b.display().to_string(), "c1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(last_error().contains("rootfs"), "{}", last_error());
    assert!(!s.dir.join("root/c1").exists(), "nothing half-made");
    // A non-ELF entrypoint.
    std::fs::create_dir_all(b.join("rootfs")).unwrap();
    std::fs::write(b.join("rootfs/app"), "#!/bin/sh\n").unwrap();
    let o = rt(&["create", "--bundle", &b.display().to_string(), "c1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        last_error().contains("not an ELF executable"),
        "{}",
        last_error()
    );
    // An unknown flag, an unknown container, exec.
    assert_eq!(
        rt(&["create", "--frobnicate", "x", "c1"]).status.code(),
        Some(1)
    );
    assert!(last_error().contains("--frobnicate"), "{}", last_error());
    assert_eq!(rt(&["state", "nope"]).status.code(), Some(1));
    assert!(last_error().contains("does not exist"));
    assert_eq!(rt(&["exec", "c1", "sh"]).status.code(), Some(1));
    assert!(last_error().contains("not supported"));
    // delete --force of a container that is not there succeeds, as runc's.
    assert!(rt(&["delete", "--force", "nope"]).status.success());
    let f = rt(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
}
