//! The library OS variants volt embeds: with the network (the default, with
//! the in-guest loopback) and without it (`--net none`).
mod common;

use common::{kvm_available, native, program, same_in_both_modes, unikernel, volt};

#[test]
fn without_the_network_programs_run_as_natively_on_the_smaller_variant() {
    if !kvm_available("without_the_network_programs_run_as_natively_on_the_smaller_variant") {
        return;
    }
    // Socket pairs are AF_UNIX: they need no network stack.
    let p = program("sockpair", "musl");
    let n = native(&p, &[], &[]);
    same_in_both_modes(&n, |extra| {
        let opts: Vec<&str> = ["--net", "none"].iter().chain(extra).copied().collect();
        unikernel(&p, &opts, &[], &[])
    });
    let u = unikernel(&p, &["--net", "none", "--timing"], &[], &[]);
    assert_eq!(u.stdout, n.stdout);
    let err = String::from_utf8_lossy(&u.stderr);
    assert!(err.contains("library OS variant: nonet"), "{err}");
    let full = unikernel(&p, &["--timing"], &[], &[]);
    let err_full = String::from_utf8_lossy(&full.stderr);
    assert!(err_full.contains("library OS variant: net"), "{err_full}");
    let kib = |s: &str| -> u64 {
        let l = s
            .lines()
            .find(|l| l.contains("library OS variant"))
            .unwrap_or("");
        l.split('(')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        kib(&err) > 0 && kib(&err) < kib(&err_full),
        "the variant without the network is smaller: {} vs {} KiB",
        kib(&err),
        kib(&err_full)
    );
}

#[test]
fn sockets_fail_with_eafnosupport_without_the_network() {
    if !kvm_available("sockets_fail_with_eafnosupport_without_the_network") {
        return;
    }
    let p = program("udpself", "musl");
    let u = unikernel(&p, &["--net", "none", "--trace-syscalls"], &[], &[]);
    let err = String::from_utf8_lossy(&u.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("socket(2, ") && l.ends_with("= -1 EAFNOSUPPORT (97)")),
        "{err}"
    );
}

#[test]
fn publishing_a_port_without_the_network_is_refused_before_any_vm() {
    let p = program("hello", "musl");
    let out = volt()
        .args(["run", "--net", "none", "-p", "127.0.0.1:18099:80"])
        .arg(&p)
        .output()
        .expect("volt runs");
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--net none"), "{err}");
}
