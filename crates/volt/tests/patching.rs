//! Function-call system calls: `syscall` sites rewritten into jumps. The
//! same programs run natively, as unikernels with patching (the default)
//! and with `--syscalls trap`, and must print the same.
mod common;

use common::{assert_same, kvm_available, native, program, unikernel};

/// The numbers on the line of `--stats` output that starts with `label`.
fn stat(stderr: &[u8], label: &str) -> Vec<u64> {
    let err = String::from_utf8_lossy(stderr);
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' in: {err}"));
    line[line.find(label).unwrap_or(0) + label.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn the_hazards_of_patched_sites_behave_as_natively_in_both_modes() {
    if !kvm_available("the_hazards_of_patched_sites_behave_as_natively_in_both_modes") {
        return;
    }
    // "dyn": the calls of libc.so go through the sites volt found in it.
    for kind in ["musl", "glibc", "dyn"] {
        let p = program("patching", kind);
        // Two million calls through patched sites while the timer fires;
        // fewer when every call traps.
        let n = native(&p, &["1000000"], &[]);
        let out = String::from_utf8_lossy(&n.stdout);
        assert_eq!(
            out.matches(": yes").count() + out.matches(": handled").count(),
            9,
            "native: {out}"
        );
        assert_same(&n, &unikernel(&p, &[], &["1000000"], &[]));
        assert_same(
            &n,
            &unikernel(&p, &["--syscalls", "trap"], &["100000"], &[]),
        );
    }
}

#[test]
fn stats_count_every_call_of_a_program_that_makes_a_known_number() {
    if !kvm_available("stats_count_every_call_of_a_program_that_makes_a_known_number") {
        return;
    }
    // syscall_loop calls getppid exactly N times, from one site.
    let p = program("syscall_loop", "musl");
    let u = unikernel(&p, &["--stats=all"], &["10000"], &[]);
    assert!(u.status.success(), "{u:?}");
    assert_eq!(
        stat(&u.stderr, "getppid"),
        [10_000, 9_999, 1],
        "one trap, then jumps"
    );
    let total = stat(&u.stderr, "system calls");
    assert_eq!(total[0], total[1] + total[2]);
    assert!(total[1] >= 9_999 && total[2] < 20, "{total:?}");
    assert!(stat(&u.stderr, "patched sites")[0] >= 1);
    let exits = stat(&u.stderr, "exits");
    assert!(exits[0] >= 2, "at least the output and the exit: {exits:?}");
    let t = unikernel(&p, &["--stats=all", "--syscalls", "trap"], &["10000"], &[]);
    assert_eq!(
        stat(&t.stderr, "getppid"),
        [10_000, 0, 10_000],
        "--syscalls trap"
    );
    assert_eq!(stat(&t.stderr, "patched sites")[0], 0);
    // Without =all, no line per call.
    let plain = unikernel(&p, &["--stats"], &["100"], &[]);
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("getppid"));
    assert!(stat(&plain.stderr, "system calls")[0] >= 100);
}

#[test]
fn a_go_program_recovers_from_a_nil_dereference_as_natively() {
    if !kvm_available("a_go_program_recovers_from_a_nil_dereference_as_natively") {
        return;
    }
    let p = program("gonil", "go");
    let n = native(&p, &[], &[]);
    assert!(
        String::from_utf8_lossy(&n.stdout).contains(
            "recovered: runtime error: invalid memory address or nil pointer dereference"
        ),
        "{n:?}"
    );
    assert_same(&n, &unikernel(&p, &[], &[], &[]));
    assert_same(&n, &unikernel(&p, &["--syscalls", "trap"], &[], &[]));
}
