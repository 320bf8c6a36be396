//! Volumes: `volt run -v HOST:GUEST[:ro]`, named volumes, and a guest that
//! tries to get out of its volume.
mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A host directory with `in.txt`, fresh.
fn fresh(s: &Scratch, name: &str) -> PathBuf {
    let d = s.dir.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("in.txt"), "from the host\n").unwrap();
    d
}

fn run_in(s: &Scratch, prog: &Path, opts: &[&str], args: &[&str]) -> std::process::Output {
    let mut a = vec!["run", "--timeout", "60"];
    a.extend_from_slice(opts);
    let p = prog.to_string_lossy().into_owned();
    a.push(&p);
    a.extend_from_slice(args);
    s.volt(&a)
}

#[test]
fn a_volume_behaves_like_the_host_directory() {
    if !kvm_available("a_volume_behaves_like_the_host_directory") {
        return;
    }
    let s = Scratch::new("volumes", "differential");
    for kind in ["musl", "glibc"] {
        let prog = program("volume", kind);
        let native_dir = fresh(&s, "native");
        let n = Command::new(&prog).arg(&native_dir).output().unwrap();
        assert!(n.status.success(), "{}", String::from_utf8_lossy(&n.stderr));
        for mode in ["patch", "trap"] {
            let host = fresh(&s, "vol");
            let spec = format!("{}:/data", host.display());
            let u = run_in(&s, &prog, &["--syscalls", mode, "-v", &spec], &["/data"]);
            assert_same(&n, &u);
            // What the guest left is on the host.
            let mut left: Vec<String> = std::fs::read_dir(&host)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(left, ["big", "in.txt"]);
            assert_eq!(std::fs::metadata(host.join("big")).unwrap().len(), 3 << 20);
        }
        let out = String::from_utf8_lossy(&n.stdout);
        for want in [
            "in.txt (14 bytes): from the host",
            "offset after append: 18",
            "O_EXCL on an existing file: File exists",
            "through the link: firs\n",
            "sub: . .. hard.txt link moved.txt",
            "cwd ends in: /sub",
            "rmdir a full directory: Directory not empty",
            "big same: 1",
        ] {
            assert!(out.contains(want), "{want:?} in {out}");
        }
    }
}

#[test]
fn a_guest_cannot_reach_outside_its_volume() {
    if !kvm_available("a_guest_cannot_reach_outside_its_volume") {
        return;
    }
    let s = Scratch::new("volumes", "escape");
    let secret = s.dir.join("secret");
    std::fs::write(&secret, "TOP-SECRET host file").unwrap();
    let vol = s.dir.join("vol");
    std::fs::create_dir_all(vol.join("sub")).unwrap();
    symlink(&secret, vol.join("abs")).unwrap();
    symlink("../secret", vol.join("rel")).unwrap();
    symlink("..", vol.join("up")).unwrap();
    let ro = s.dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("file"), "read-only data").unwrap();
    let prog = program("escape", "musl");
    let v1 = format!("{}:/data", vol.display());
    let v2 = format!("{}:/ro:ro", ro.display());
    let o = run_in(
        &s,
        &prog,
        &["-v", &v1, "-v", &v2],
        &[&secret.to_string_lossy()],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.contains("TOP-SECRET"), "the secret leaked: {out}");
    // Each try ends in the guest's own tree, where there is no such file.
    assert_eq!(out.matches("No such file or directory").count(), 8, "{out}");
    for want in [
        "ro create: Read-only file system",
        "ro write: Read-only file system",
        "ro mkdir: Read-only file system",
        "ro unlink: Read-only file system",
        "read /ro/file: got \"read-only data\"",
        "symlink: 0",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    // The guest's link is a plain link on the host, and the host is unchanged.
    assert_eq!(std::fs::read_link(vol.join("mine")).unwrap(), secret);
    assert_eq!(std::fs::read(ro.join("file")).unwrap(), b"read-only data");
    assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 1);
}

#[test]
fn named_volumes_keep_data_between_runs() {
    if !kvm_available("named_volumes_keep_data_between_runs") {
        return;
    }
    let s = Scratch::new("volumes", "named");
    let prog = program("volume", "musl");
    std::fs::copy(&prog, s.dir.join("volume")).unwrap();
    s.ok(&["volume", "create", "--label", "app=test", "cache"]);
    let dup = s.volt(&["volume", "create", "cache"]);
    one_line_error(&dup, "already exists");
    // The program needs in.txt: put it there through a first guest.
    let info: serde_json::Value =
        serde_json::from_str(&s.ok(&["volume", "inspect", "cache"])).unwrap();
    let data = PathBuf::from(info[0]["mountpoint"].as_str().unwrap());
    assert!(data.ends_with("volumes/cache/_data"), "{data:?}");
    std::fs::write(data.join("in.txt"), "from the host\n").unwrap();
    let o = s.volt(&["run", "-v", "cache:/var/cache", "./volume", "/var/cache"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::metadata(data.join("big")).unwrap().len(), 3 << 20);
    // A second volume, made by `run` on first use.
    let o = s.volt(&["run", "-v", "fresh:/x", "./volume", "/x"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("in.txt (-1 bytes)"),
        "a new volume is empty: {out}"
    );
    let ls = s.ok(&["volume", "ls", "-q"]);
    assert_eq!(ls, "cache\nfresh\n");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["volume", "ls", "-o", "json"])).unwrap();
    assert_eq!(json[0]["labels"]["app"], "test");
    // In use by an instance: not removed without -f.
    s.ok(&[
        "run", "-d", "--name", "user", "-v", "cache:/c", "./volume", "/c",
    ]);
    one_line_error(&s.volt(&["volume", "rm", "cache"]), "in use by user");
    s.ok(&["rm", "-f", "user"]);
    s.ok(&["volume", "rm", "cache"]);
    assert!(!data.exists());
    assert_eq!(s.ok(&["volume", "prune"]), "fresh\n");
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn bad_volumes_are_refused_before_boot() {
    let s = Scratch::new("volumes", "bad");
    std::fs::write(s.dir.join("file"), "x").unwrap();
    for (spec, needle) in [
        ("./nope:/data", "the host directory"),
        ("./file:/data", "not a directory"),
        ("./rootfs:data", "must be absolute"),
        ("./rootfs:/", "cannot be mounted on /"),
        ("./rootfs:/a/../b", "'..'"),
        ("./rootfs:/x:rx", "unknown mode"),
        ("b@d:/x", "a volume name"),
    ] {
        let o = s.volt(&["run", "-v", spec, "/bin/true"]);
        one_line_error(&o, needle);
    }
    let o = s.volt(&[
        "run",
        "-v",
        "./rootfs:/x",
        "-v",
        "./rootfs/app:/x",
        "/bin/true",
    ]);
    one_line_error(&o, "two volumes on /x");
    one_line_error(&s.volt(&["volume", "rm", "nope"]), "no such volume: nope");
    one_line_error(&s.volt(&["volume", "create", "../x"]), "not a volume name");
}
