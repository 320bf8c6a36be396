//! Bad input: one clear error line, a non-zero exit, and no VM started.
mod common;

use std::process::Command;

use common::*;

fn tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-input");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    assert!(
        err.starts_with("volt: ") && err.contains(needle),
        "expected '{needle}' in: {err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file() {
    let out = volt().args(["run", "/nonexistent/hello"]).output().unwrap();
    assert_one_line_error(&out, "No such file or directory");
}

#[test]
fn not_an_elf() {
    let p = tmp("script.sh", b"#!/bin/sh\necho hi\n");
    assert_one_line_error(
        &volt().arg("run").arg(&p).output().unwrap(),
        "not an ELF file",
    );
}

#[test]
fn thirty_two_bit_elf() {
    let mut h = vec![0u8; 64];
    h[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    let p = tmp("elf32", &h);
    assert_one_line_error(&volt().arg("run").arg(&p).output().unwrap(), "32-bit");
}

#[test]
fn a_dynamic_binary_whose_library_cannot_be_found() {
    // Linked against a library that is then nowhere ld.so would look.
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-input/nolib");
    std::fs::create_dir_all(&d).unwrap();
    let lib_src = tmp("gone.c", b"int gone(void) { return 7; }\n");
    let main_src = tmp(
        "needs-gone.c",
        b"int gone(void);\nint main(void) { return gone(); }\n",
    );
    let lib = d.join("libgone.so");
    let prog = d.join("needs-gone");
    let gcc = |args: &[&std::ffi::OsStr]| {
        assert!(Command::new("gcc").args(args).status().unwrap().success());
    };
    gcc(&[
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        "-o".as_ref(),
        lib.as_os_str(),
        lib_src.as_os_str(),
    ]);
    gcc(&[
        "-o".as_ref(),
        prog.as_os_str(),
        main_src.as_os_str(),
        "-L".as_ref(),
        d.as_os_str(),
        "-lgone".as_ref(),
    ]);
    std::fs::remove_file(&lib).unwrap();
    assert_one_line_error(
        &volt().arg("run").arg(&prog).output().unwrap(),
        "library libgone.so not found (needed by",
    );
}

#[test]
fn a_dynamic_binary_whose_loader_is_not_in_the_rootfs() {
    let p = program("hello", "dyn");
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-input/noloader");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(&p, root.join("bin/app")).unwrap();
    let out = volt()
        .arg("run")
        .arg("--rootfs")
        .arg(&root)
        .arg("/bin/app")
        .output()
        .unwrap();
    assert_one_line_error(&out, "(PT_INTERP) is not there");
}

#[test]
fn memory_too_small() {
    let p = program("hello", "glibc");
    let out = volt()
        .args(["run", "--memory", "2M"])
        .arg(&p)
        .output()
        .unwrap();
    assert_one_line_error(&out, "too small");
    let out = volt()
        .args(["run", "--memory", "lots"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2)); // clap's usage error
}

/// Runs volt where /dev/kvm is absent (a private mount namespace with an
/// empty /dev) or not accessible (an unprivileged user).
#[test]
fn kvm_missing_or_not_accessible() {
    let p = program("hello", "musl");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("=== SKIPPED kvm_missing_or_not_accessible: needs root to hide /dev/kvm ===");
        return;
    }
    let volt_bin = env!("CARGO_BIN_EXE_volt");
    let missing = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /dev && exec \"$0\" run \"$1\"",
            volt_bin,
        ])
        .arg(&p)
        .output();
    match missing {
        Ok(out) if !String::from_utf8_lossy(&out.stderr).contains("unshare:") => {
            assert_one_line_error(&out, "/dev/kvm")
        }
        _ => {
            eprintln!("=== SKIPPED the missing-/dev/kvm case: unshare --mount is not available ===")
        }
    }
    if std::path::Path::new("/dev/kvm").exists() {
        // Copy the binary and program where an unprivileged user may read them.
        let d = std::env::temp_dir().join(format!("volt-noaccess-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let v = d.join("volt");
        let h = d.join("hello");
        std::fs::copy(volt_bin, &v).unwrap();
        std::fs::copy(&p, &h).unwrap();
        let _ = Command::new("chmod").arg("-R").arg("a+rx").arg(&d).status();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&v)
            .arg("run")
            .arg(&h)
            .output();
        let _ = std::fs::remove_dir_all(&d);
        match out {
            Ok(out) if !String::from_utf8_lossy(&out.stderr).contains("setpriv:") => {
                assert_one_line_error(&out, "Permission denied")
            }
            _ => eprintln!(
                "=== SKIPPED the inaccessible-/dev/kvm case: setpriv is not available ==="
            ),
        }
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn a_directory_or_an_empty_file() {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-input-dir");
    std::fs::create_dir_all(&d).unwrap();
    assert_one_line_error(
        &volt().arg("run").arg(&d).output().unwrap(),
        "Is a directory",
    );
    let p = tmp("empty", b"");
    assert_one_line_error(
        &volt().arg("run").arg(&p).output().unwrap(),
        "not an ELF file",
    );
}
