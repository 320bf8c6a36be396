//! Function-call system calls: `syscall` sites rewritten into jumps. The
//! same programs run natively, as unikernels with patching (the default)
//! and with `--syscalls trap`, and must print the same.
mod common;

use common::{assert_same, kvm_available, native, program, unikernel};

fn counts(stderr: &[u8]) -> (u64, u64, u64) {
    let err = String::from_utf8_lossy(stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("optivolt: system calls:"))
        .unwrap_or_else(|| panic!("no counts in: {err}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1], nums[2]) // by jump, by trap, sites patched
}

#[test]
fn the_hazards_of_patched_sites_behave_as_natively_in_both_modes() {
    if !kvm_available("the_hazards_of_patched_sites_behave_as_natively_in_both_modes") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("patching", kind);
        let n = native(&p, &[], &[]);
        let out = String::from_utf8_lossy(&n.stdout);
        assert_eq!(
            out.matches(": yes").count() + out.matches(": handled").count(),
            5,
            "native: {out}"
        );
        assert_same(&n, &unikernel(&p, &[], &[], &[]));
        assert_same(&n, &unikernel(&p, &["--syscalls", "trap"], &[], &[]));
    }
}

#[test]
fn existing_programs_behave_the_same_with_every_call_trapping() {
    if !kvm_available("existing_programs_behave_the_same_with_every_call_trapping") {
        return;
    }
    for (name, kind) in [
        ("threads", "musl"),
        ("threads", "glibc"),
        ("restart", "musl"),
        ("sigpipe", "glibc"),
        ("waiting", "musl"),
        ("sockpair", "glibc"),
        ("files", "musl"),
    ] {
        let p = program(name, kind);
        let n = native(&p, &[], &[]);
        assert_same(&n, &unikernel(&p, &["--syscalls", "trap"], &[], &[]));
        assert_same(&n, &unikernel(&p, &[], &[], &[]));
    }
}

#[test]
fn a_loop_of_calls_from_one_site_traps_once_then_jumps() {
    if !kvm_available("a_loop_of_calls_from_one_site_traps_once_then_jumps") {
        return;
    }
    let p = program("syscall_loop", "musl");
    let u = unikernel(&p, &["--timing"], &["10000"], &[]);
    assert!(u.status.success(), "{u:?}");
    let (jumped, trapped, patched) = counts(&u.stderr);
    assert!(
        jumped >= 9_999,
        "10,000 getppid calls, one site: {jumped} by jump"
    );
    assert!(
        patched >= 1 && trapped < 50,
        "{trapped} trapped, {patched} patched"
    );
    let t = unikernel(&p, &["--timing", "--syscalls", "trap"], &["10000"], &[]);
    let (jumped, trapped, patched) = counts(&t.stderr);
    assert_eq!((jumped, patched), (0, 0), "--syscalls trap patches nothing");
    assert!(trapped >= 10_000);
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
