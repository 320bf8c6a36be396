//! `--rootfs DIR`: a directory becomes the guest's file system.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A fresh rootfs directory with a config file, a scratch directory, a
/// symlink and the test program.
fn make_rootfs(name: &str, prog: &Path) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rootfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("scratch")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("etc/config.txt"), "port=8080\nname=optivolt\n").unwrap();
    std::fs::write(root.join("etc/other.conf"), "x").unwrap();
    std::os::unix::fs::symlink("config.txt", root.join("etc/current")).unwrap();
    std::fs::copy(prog, root.join("bin/app")).unwrap();
    std::os::unix::fs::symlink("/bin/app", root.join("app-link")).unwrap();
    root
}

#[test]
fn file_system_calls_match_native() {
    if !kvm_available("file_system_calls_match_native") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("files", kind);
        let root = make_rootfs(kind, &p);
        // The unikernel first: packing reads the directory before the native
        // run changes it.
        let run = |extra: &[&str]| {
            volt()
                .arg("run")
                .args(extra)
                .arg("--rootfs")
                .arg(&root)
                .arg("/bin/app")
                .output()
                .unwrap()
        };
        let u = run(&[]);
        let trapped = run(&["--syscalls", "trap"]);
        let n = Command::new(root.join("bin/app"))
            .current_dir(&root)
            .env_clear()
            .output()
            .unwrap();
        assert_same(&n, &u);
        assert_same(&n, &trapped);
        let out = String::from_utf8_lossy(&u.stdout);
        assert!(out.contains("config (24 bytes): port=8080"), "{out}");
        assert!(
            out.contains("etc: . .. config.txt current other.conf"),
            "{out}"
        );
        assert!(!out.contains("errno"), "{out}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn binary_by_path_inside_the_rootfs_or_from_the_host() {
    if !kvm_available("binary_by_path_inside_the_rootfs_or_from_the_host") {
        return;
    }
    let hello = program("hello", "musl");
    let root = make_rootfs("paths", &hello);
    // Inside the rootfs, directly and through an absolute symlink.
    for path in ["/bin/app", "/app-link"] {
        let u = volt()
            .arg("run")
            .arg("--rootfs")
            .arg(&root)
            .arg(path)
            .arg("inside")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&u.stdout),
            "hello, inside\n",
            "{path}: {}",
            String::from_utf8_lossy(&u.stderr)
        );
    }
    // A host binary added next to the rootfs contents.
    let u = volt()
        .arg("run")
        .arg("--rootfs")
        .arg(&root)
        .arg(&hello)
        .arg("host")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&u.stdout), "hello, host\n");
    // Errors: not a directory, a program missing from both.
    let out = volt()
        .arg("run")
        .arg("--rootfs")
        .arg(root.join("etc/config.txt"))
        .arg("/bin/app")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    let out = volt()
        .arg("run")
        .arg("--rootfs")
        .arg(&root)
        .arg("/bin/missing")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let _ = std::fs::remove_dir_all(&root);
}
