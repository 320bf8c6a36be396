//! Dynamically linked programs: volt gathers the loader and libraries from
//! the host (or finds them in --rootfs); the same program run natively and
//! as a unikernel must print the same. Debian's python3 runs this way.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dynamic")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gcc(args: &[&str]) {
    let st = Command::new("gcc").args(args).status().expect("run gcc");
    assert!(st.success(), "gcc {args:?}");
}

#[test]
fn a_dynamic_c_program_matches_native_with_its_libraries_gathered() {
    if !kvm_available("a_dynamic_c_program_matches_native_with_its_libraries_gathered") {
        return;
    }
    let p = program("hello", "dyn");
    let u = differential(&p, &[], &["dynamic", "world"], &[]);
    assert_eq!(String::from_utf8_lossy(&u.stdout), "hello, dynamic\n");
    let stats = unikernel(&p, &["--stats"], &[], &[]);
    let err = String::from_utf8_lossy(&stats.stderr);
    assert!(err.contains("system calls"), "{err}");
}

#[test]
fn dlopen_of_an_included_library_works_as_natively() {
    if !kvm_available("dlopen_of_an_included_library_works_as_natively") {
        return;
    }
    let d = scratch("dlopen");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let lib = d.join("libplugin.so");
    let prog = d.join("dlopen-dyn");
    gcc(&[
        "-O2",
        "-shared",
        "-fPIC",
        "-o",
        lib.to_str().unwrap(),
        src.join("plugin.c").to_str().unwrap(),
    ]);
    gcc(&[
        "-O2",
        "-o",
        prog.to_str().unwrap(),
        src.join("dlopen.c").to_str().unwrap(),
    ]);
    let lib_arg = lib.to_str().unwrap();
    let n = native(&prog, &[lib_arg], &[]);
    assert_eq!(
        String::from_utf8_lossy(&n.stdout),
        "optivolt plugin: square(12) = 144\nmaps names the library: 1\ndlclose: 0\n"
    );
    same_in_both_modes(&n, |extra| {
        let opts: Vec<&str> = ["--include", lib_arg]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        unikernel(&prog, &opts, &[lib_arg], &[])
    });
}

const PYTHON: &str = "/usr/bin/python3";

fn python_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/python")
}

fn python_native(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(PYTHON)
        .args(args)
        .current_dir("/")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run python3")
}

fn python_unikernel(opts: &[&str], args: &[&str]) -> Output {
    volt()
        .arg("run")
        .args(["--memory", "512M", "--timeout", "60", "--include"])
        .arg(python_scripts())
        .args(opts)
        .arg(PYTHON)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run volt")
}

fn have_python(test: &str) -> bool {
    if Path::new(PYTHON).exists() {
        return true;
    }
    eprintln!("{test}: SKIPPING: no {PYTHON} (apt-get install python3)");
    false
}

#[test]
fn debian_python_runs_a_stdlib_script_as_natively() {
    let t = "debian_python_runs_a_stdlib_script_as_natively";
    if !kvm_available(t) || !have_python(t) {
        return;
    }
    let script = python_scripts().join("stdlib.py");
    let script = script.to_str().unwrap();
    let n = python_native(&[script, "x", "y z"]);
    assert_eq!(n.status.code(), Some(3), "{n:?}");
    let out = String::from_utf8_lossy(&n.stdout);
    assert!(
        out.contains("lock: 6000") && out.contains("slept >= 50 ms: True"),
        "{out}"
    );
    same_in_both_modes(&n, |extra| python_unikernel(extra, &[script, "x", "y z"]));
}

#[test]
fn the_seed_workload_prints_the_same_rounds() {
    let t = "the_seed_workload_prints_the_same_rounds";
    if !kvm_available(t) || !have_python(t) {
        return;
    }
    let script = python_scripts().join("workload.py");
    let script = script.to_str().unwrap();
    let n = python_native(&[script, "2"]);
    assert!(
        String::from_utf8_lossy(&n.stdout).contains("round 1 done: 41654167500"),
        "{n:?}"
    );
    assert_same(&n, &python_unikernel(&[], &[script, "2"]));
}
