//! Booting real VMs: each program prints exactly what it prints natively.
mod common;

use common::*;

#[test]
fn musl_hello_matches_native() {
    if !kvm_available("musl_hello_matches_native") {
        return;
    }
    let p = program("hello", "musl");
    for args in [&[][..], &["world"], &["OptiVolt unikernel"]] {
        differential(&p, &[], args, &[]);
    }
}

#[test]
fn the_in_guest_elf_loader_matches_native_too() {
    if !kvm_available("the_in_guest_elf_loader_matches_native_too") {
        return;
    }
    // Normally the monitor places the segments; the library OS can load from the rootfs itself.
    for (name, kind) in [
        ("hello", "musl"),
        ("hello", "glibc"),
        ("hello", "rust"),
        ("args", "musl"),
    ] {
        let p = program(name, kind);
        differential(&p, &["--guest-loader"], &["7", "x"], &[]);
    }
}

#[test]
fn glibc_hello_matches_native() {
    if !kvm_available("glibc_hello_matches_native") {
        return;
    }
    let p = program("hello", "glibc");
    differential(&p, &[], &["glibc"], &[]);
}

#[test]
fn rust_std_program_matches_native() {
    if !kvm_available("rust_std_program_matches_native") {
        return;
    }
    let p = program("hello", "rust");
    let env = [("GREETING", "hi there")];
    for args in [&["0", "abc"][..], &["7", "rust", "std"]] {
        differential(&p, &[], args, &env);
    }
}

#[test]
fn exit_statuses_come_back() {
    if !kvm_available("exit_statuses_come_back") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("exit", kind);
        for status in ["0", "3", "42"] {
            let u = differential(&p, &[], &[status], &[]);
            assert_eq!(
                u.status.code(),
                Some(status.parse().unwrap()),
                "{kind} {status}"
            );
        }
    }
}

#[test]
fn argv_and_environment_reach_the_program() {
    if !kvm_available("argv_and_environment_reach_the_program") {
        return;
    }
    // Sorted: std::process::Command hands a cleared environment over in key order.
    let env = [
        ("EMPTY", ""),
        ("GREETING", "hello from the host"),
        ("PATH", "/bin:/usr/bin"),
    ];
    let args = ["one", "two words", "--flag=x", "", "ünïcödé"];
    for kind in ["musl", "glibc"] {
        let p = program("args", kind);
        let u = differential(&p, &[], &args, &env);
        let out = String::from_utf8_lossy(&u.stdout);
        assert!(
            out.contains("argv[2]=two words") && out.contains("env GREETING=hello from the host"),
            "{out}"
        );
    }
}

#[test]
fn null_dereference_is_reported_as_a_fault() {
    if !kvm_available("null_dereference_is_reported_as_a_fault") {
        return;
    }
    let p = program("null", "musl");
    let u = unikernel(&p, &[], &[], &[]);
    let err = String::from_utf8_lossy(&u.stderr);
    assert_eq!(u.status.code(), Some(139), "{err}");
    assert_eq!(String::from_utf8_lossy(&u.stdout), "about to fault\n");
    assert!(
        err.contains("page fault") && err.contains("read from 0x0") && err.contains("SIGSEGV"),
        "{err}"
    );
    assert!(
        err.contains("in the application") && err.contains("rip="),
        "{err}"
    );
}

#[test]
fn trace_syscalls_shows_the_calls() {
    if !kvm_available("trace_syscalls_shows_the_calls") {
        return;
    }
    let p = program("exit", "musl");
    let u = unikernel(&p, &["--trace-syscalls"], &["5"], &[]);
    let err = String::from_utf8_lossy(&u.stderr);
    assert_eq!(u.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&u.stdout), "exiting with 5\n");
    assert!(err.contains("set_tid_address("), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("writev(1, ") && l.ends_with(") = 15")),
        "{err}"
    );
    assert!(err.contains("exit_group(5"), "{err}");
    // Unimplemented calls are shown with ENOSYS (glibc asks for rseq).
    let g = unikernel(&program("hello", "glibc"), &["--trace-syscalls"], &[], &[]);
    let gerr = String::from_utf8_lossy(&g.stderr);
    assert!(gerr.contains("= -1 ENOSYS (38)"), "{gerr}");
}

#[test]
fn boots_in_four_mebibytes() {
    if !kvm_available("boots_in_four_mebibytes") {
        return;
    }
    let p = program("hello", "musl");
    let u = unikernel(&p, &["--memory", "4M"], &["small"], &[]);
    assert_eq!(String::from_utf8_lossy(&u.stdout), "hello, small\n");
    assert_eq!(u.status.code(), Some(0));
}

#[test]
fn timing_reports_every_phase() {
    if !kvm_available("timing_reports_every_phase") {
        return;
    }
    let p = program("hello", "musl");
    let u = unikernel(&p, &["--timing"], &[], &[]);
    assert_eq!(u.status.code(), Some(0));
    let err = String::from_utf8_lossy(&u.stderr);
    let mut last = 0.0;
    for phase in [
        "vm_created",
        "vcpu_ready",
        "libos_entry",
        "libos_ready",
        "app_entry",
        "app_exit",
        "vm_exit",
        "vm_closed",
    ] {
        let line = err
            .lines()
            .find(|l| l.trim_start().starts_with(phase))
            .unwrap_or_else(|| panic!("no {phase} in {err}"));
        let t: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(t >= last, "{phase} goes back in time: {err}");
        last = t;
    }
}

#[test]
fn timeout_stops_a_spinning_guest() {
    if !kvm_available("timeout_stops_a_spinning_guest") {
        return;
    }
    let p = program("spin", "musl");
    let t = std::time::Instant::now();
    let u = volt()
        .arg("run")
        .arg("--timeout")
        .arg("0.5")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(u.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&u.stderr).contains("timeout"));
    assert!(t.elapsed().as_secs() < 20);
}

#[test]
fn host_write_errors_reach_the_guest_as_errno() {
    if !kvm_available("host_write_errors_reach_the_guest_as_errno") {
        return;
    }
    // stdout is /dev/full: write(2) fails with ENOSPC, natively and in the guest.
    let p = program("hello", "rust");
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let n = std::process::Command::new(&p)
        .arg("1")
        .env_clear()
        .stdout(full())
        .output()
        .unwrap();
    let u = volt()
        .arg("run")
        .arg(&p)
        .arg("1")
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(u.status.code(), n.status.code());
    assert_eq!(u.status.code(), Some(101));
    let err = String::from_utf8_lossy(&u.stderr);
    assert!(
        err.contains("failed printing to stdout: No space left on device (os error 28)"),
        "{err}"
    );
}

#[test]
fn hostile_hypercalls_end_only_the_guest() {
    if !kvm_available("hostile_hypercalls_end_only_the_guest") {
        return;
    }
    let p = program("hostile", "musl");
    for attack in ["0", "1", "2", "3", "4", "5", "6", "7"] {
        let u = unikernel(&p, &["--memory", "16M"], &[attack], &[]);
        let err = String::from_utf8_lossy(&u.stderr);
        assert_eq!(
            String::from_utf8_lossy(&u.stdout),
            format!("attack {attack}\n"),
            "{err}"
        );
        assert_eq!(u.status.code(), Some(134), "attack {attack}: {err}");
        assert!(
            err.starts_with("volt: guest crashed: bad hypercall: "),
            "attack {attack}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn rust_std_fs_time_env_match_native() {
    if !kvm_available("rust_std_fs_time_env_match_native") {
        return;
    }
    let p = program("fsrust", "rust");
    let tag = format!("{}", std::process::id());
    let env = [("HOME", "/root")];
    let u = unikernel(&p, &[], &[&tag], &env);
    let trapped = unikernel(&p, &["--syscalls", "trap"], &[&tag], &env);
    let n = native(&p, &[&tag], &env);
    assert_same(&n, &u);
    assert_same(&n, &trapped);
    assert!(String::from_utf8_lossy(&u.stdout).contains("cleaned: true"));
}

#[test]
fn pthreads_match_native() {
    if !kvm_available("pthreads_match_native") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("threads", kind);
        differential(&p, &[], &[], &[]);
    }
}

#[test]
fn rust_std_threads_match_native() {
    if !kvm_available("rust_std_threads_match_native") {
        return;
    }
    let p = program("threads", "rust");
    differential(&p, &[], &[], &[]);
}

#[test]
fn the_program_reads_its_own_file_byte_exact_from_the_mapped_rootfs() {
    if !kvm_available("the_program_reads_its_own_file_byte_exact_from_the_mapped_rootfs") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("selfsum", kind);
        let n = native(&p, &[], &[]);
        assert!(
            String::from_utf8_lossy(&n.stdout).contains("fnv1a"),
            "{n:?}"
        );
        same_in_both_modes(&n, |extra| unikernel(&p, extra, &[], &[]));
        assert_same(&n, &unikernel(&p, &["--guest-loader"], &[], &[]));
    }
}
