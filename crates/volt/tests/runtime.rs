//! The Linux ABI for real programs: Go, signals, memory, idle, errors.
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn rootfs_with_config(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rootfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/config.txt"), "answer=42\n").unwrap();
    root
}

#[test]
fn go_program_matches_native() {
    if !kvm_available("go_program_matches_native") {
        return;
    }
    let p = program("goapp", "go");
    let root = rootfs_with_config("go");
    let n = Command::new(&p)
        .current_dir(&root)
        .env_clear()
        .output()
        .unwrap();
    let u = same_in_both_modes(&n, |extra| {
        volt()
            .arg("run")
            .args(extra)
            .arg("--rootfs")
            .arg(&root)
            .arg(&p)
            .output()
            .unwrap()
    });
    let out = String::from_utf8_lossy(&u.stdout);
    assert!(
        out.contains("preemption: main progressed 5 spinner ran true"),
        "{out}"
    );
    assert!(out.contains("rootfs file: \"answer=42\" <nil>"), "{out}");
    let _ = std::fs::remove_dir_all(&root);
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn go_memory_churn_fits_and_returns_to_the_host() {
    if !kvm_available("go_memory_churn_fits_and_returns_to_the_host") {
        return;
    }
    let p = program("gomem", "go");
    let mut child = volt()
        .args(["run", "--memory", "256M"])
        .arg(&p)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut rss = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        rss.push((line.clone(), rss_kib(pid)));
    }
    let st = child.wait().unwrap();
    assert!(st.success(), "{st} {rss:?}");
    let at = |what: &str| {
        rss.iter()
            .find(|(l, _)| l.starts_with(what))
            .map(|(_, r)| *r)
            .unwrap_or_else(|| panic!("{what}: {rss:?}"))
    };
    let holding = at("holding");
    let freed = at("freed");
    // While 48 MiB are live the monitor holds them; once the program frees
    // and returns them, most of that leaves the monitor's RSS.
    assert!(
        holding > 48 * 1024,
        "RSS while holding 48 MiB: {holding} KiB"
    );
    assert!(
        freed + 32 * 1024 < holding,
        "RSS did not drop: {holding} KiB -> {freed} KiB"
    );
}

#[test]
fn sigsegv_handler_recovers_as_natively() {
    if !kvm_available("sigsegv_handler_recovers_as_natively") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("sigsegv", kind);
        let u = differential(&p, &[], &[], &[]);
        assert!(String::from_utf8_lossy(&u.stdout).contains("caught signal 11 at offset 4096"));
    }
}

#[test]
fn unimplemented_calls_fail_with_enosys_and_the_program_goes_on() {
    if !kvm_available("unimplemented_calls_fail_with_enosys_and_the_program_goes_on") {
        return;
    }
    let p = program("nosys", "musl");
    let u = unikernel(&p, &["--trace-syscalls"], &[], &[]);
    let out = String::from_utf8_lossy(&u.stdout);
    let err = String::from_utf8_lossy(&u.stderr);
    assert_eq!(u.status.code(), Some(0));
    assert!(
        out.contains("io_setup: -1 Function not implemented"),
        "{out}"
    );
    assert!(
        out.contains("fork: -1 Function not implemented") && out.contains("still running"),
        "{out}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("io_setup(1, 0") && l.ends_with("= -1 ENOSYS (38)")),
        "{err}"
    );
}

#[test]
fn exhausted_memory_is_enomem_not_a_hang() {
    if !kvm_available("exhausted_memory_is_enomem_not_a_hang") {
        return;
    }
    let p = program("oom", "musl");
    let t = Instant::now();
    let u = unikernel(&p, &["--memory", "32M"], &[], &[]);
    let out = String::from_utf8_lossy(&u.stdout);
    assert_eq!(
        u.status.code(),
        Some(0),
        "{out} {}",
        String::from_utf8_lossy(&u.stderr)
    );
    assert!(
        out.contains("mmap failed after") && out.contains("Out of memory"),
        "{out}"
    );
    assert!(out.contains("malloc of 64 MiB: succeeded"), "{out}");
    // Touching the overcommitted memory ends with a clear report.
    let u = unikernel(&p, &["--memory", "32M"], &["touch"], &[]);
    let err = String::from_utf8_lossy(&u.stderr);
    assert_eq!(u.status.code(), Some(134), "{err}");
    assert!(
        err.contains("out of memory") && err.contains("--memory"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}

/// Waits for `pid` and returns (exit status, its CPU time: user + system).
fn wait_with_cpu(pid: u32) -> (i32, Duration) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for exactly this child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `ru` are valid for the call; `pid` is our child.
    unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (status, tv(ru.ru_utime) + tv(ru.ru_stime))
}

#[test]
fn an_idle_guest_costs_no_host_cpu() {
    if !kvm_available("an_idle_guest_costs_no_host_cpu") {
        return;
    }
    let p = program("sleeper", "musl");
    let t = Instant::now();
    // Reaped by wait4 below (which also reports its CPU time).
    #[allow(clippy::zombie_processes)]
    let child = volt().arg("run").arg(&p).arg("10").spawn().unwrap();
    let (status, cpu) = wait_with_cpu(child.id());
    let wall = t.elapsed();
    assert_eq!(status, 0);
    assert!(wall >= Duration::from_secs(10), "slept only {wall:?}");
    // Under 1% of one core over the sleep (boot and teardown included).
    assert!(
        cpu < wall / 100,
        "the idle guest used {cpu:?} of CPU in {wall:?}"
    );
}

#[test]
fn pipes_eventfd_timerfd_epoll_poll_mremap_match_native() {
    if !kvm_available("pipes_eventfd_timerfd_epoll_poll_mremap_match_native") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("waiting", kind);
        let u = differential(&p, &[], &[], &[]);
        assert!(String::from_utf8_lossy(&u.stdout)
            .contains("mremap: ok, contents kept: 1, grown part zero: 1"));
    }
}

#[test]
fn cpu_time_clocks_exclude_sleep() {
    if !kvm_available("cpu_time_clocks_exclude_sleep") {
        return;
    }
    let p = program("cputime", "musl");
    differential(&p, &[], &[], &[]);
}

#[test]
fn unix_socket_pairs_match_native() {
    if !kvm_available("unix_socket_pairs_match_native") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("sockpair", kind);
        differential(&p, &[], &[], &[]);
    }
}

#[test]
fn sa_restart_resumes_blocked_reads_as_natively() {
    if !kvm_available("sa_restart_resumes_blocked_reads_as_natively") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("restart", kind);
        let u = differential(&p, &[], &[], &[]);
        let out = String::from_utf8_lossy(&u.stdout);
        assert!(
            out.contains("SA_RESTART: read 9 late data, handler ran 1 time(s)"),
            "{out}"
        );
        assert!(
            out.contains("no SA_RESTART: read -1 Interrupted system call"),
            "{out}"
        );
    }
}

#[test]
fn tcp_over_the_in_guest_loopback_behaves_as_natively() {
    if !kvm_available("tcp_over_the_in_guest_loopback_behaves_as_natively") {
        return;
    }
    // listen/accept4/connect (blocking, non-blocking, refused), bind
    // conflicts, sockopts, epoll/poll readiness, writev/recvmsg/MSG_PEEK,
    // shutdown, and 8 connections echoing 4 MiB each way at once.
    for kind in ["musl", "glibc"] {
        let p = program("tcploop", kind);
        let n = native(&p, &[], &[]);
        assert!(
            String::from_utf8_lossy(&n.stdout).contains("bulk: 8 of 8"),
            "native run: {n:?}"
        );
        same_in_both_modes(&n, |extra| unikernel(&p, extra, &[], &[]));
    }
}

#[test]
fn the_vdso_answers_clocks_without_system_calls() {
    if !kvm_available("the_vdso_answers_clocks_without_system_calls") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("vdso", kind);
        differential(&p, &[], &[], &[]);
        // 100,000 clock reads, none of them a trap (the trace shows only
        // the one deliberate system call and the CPU-time fallback).
        let traced = unikernel(&p, &["--trace-syscalls"], &[], &[]);
        let calls = String::from_utf8_lossy(&traced.stderr)
            .lines()
            .filter(|l| l.starts_with("clock_gettime("))
            .count();
        assert!(calls <= 2, "{kind}: {calls} clock_gettime system calls");
    }
    // Go finds it too (it needs the LINUX_2.6 version definitions).
    let go = program("goweb", "go");
    let traced = unikernel(&go, &["--trace-syscalls"], &["self"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&traced.stdout),
        "200 hello from goweb\n"
    );
    let calls = String::from_utf8_lossy(&traced.stderr)
        .lines()
        .filter(|l| l.starts_with("clock_gettime(") || l.starts_with("gettimeofday("))
        .count();
    assert_eq!(calls, 0, "Go still traps for the time");
}

#[test]
fn broken_pipes_raise_sigpipe_as_natively() {
    if !kvm_available("broken_pipes_raise_sigpipe_as_natively") {
        return;
    }
    for kind in ["musl", "glibc"] {
        let p = program("sigpipe", kind);
        differential(&p, &[], &[], &[]);
        // The default action ends the program: 128 + 13, as a shell says.
        let u = unikernel(&p, &[], &["default"], &[]);
        assert_eq!(u.status.code(), Some(141), "{u:?}");
    }
}

#[test]
fn abort_ends_with_134_and_the_shells_words() {
    if !kvm_available("abort_ends_with_134_and_the_shells_words") {
        return;
    }
    for kind in ["glibc", "dyn", "musl"] {
        let p = program("abort", kind);
        let n = native(&p, &[], &[]);
        // Natively the process dies by the signal; a shell would say
        // "Aborted" and report 134. volt is that shell here.
        assert_eq!(n.status.code(), None, "{kind}");
        for mode in [&[][..], &["--syscalls", "trap"]] {
            let u = unikernel(&p, mode, &[], &[]);
            assert_eq!(u.status.code(), Some(134), "{kind}");
            assert_eq!(u.stdout, n.stdout, "{kind}");
            assert_eq!(String::from_utf8_lossy(&u.stderr), "Aborted\n", "{kind}");
        }
    }
}

/// Starts `cmd`, waits for its "ready" line, sends SIGTERM; its output and status.
fn terminated(mut cmd: std::process::Command) -> (String, Option<i32>) {
    use std::io::{BufRead, Read};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read");
    assert_eq!(first, "ready\n");
    // SAFETY: kill(2) of the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("read");
    let st = child.wait().expect("wait");
    (first + &rest, st.code())
}

#[test]
fn sigterm_to_volt_reaches_the_program_as_natively() {
    if !kvm_available("sigterm_to_volt_reaches_the_program_as_natively") {
        return;
    }
    let p = program("sigterm", "musl");
    for mode in ["sleep", "spin"] {
        let mut n = std::process::Command::new(&p);
        n.arg(mode);
        let native = terminated(n);
        assert_eq!(
            native,
            ("ready\ngot signal 15, cleaning up\n".into(), Some(3))
        );
        for extra in [&[][..], &["--syscalls", "trap"][..]] {
            let mut u = volt();
            u.arg("run").args(extra).arg(&p).arg(mode);
            assert_eq!(terminated(u), native, "{mode} {extra:?}");
        }
    }
    // Without a handler, SIGTERM's default action ends it: 143, as natively.
    let mut u = volt();
    u.arg("run").arg(&p).arg("default");
    assert_eq!(terminated(u), ("ready\n".into(), Some(143)));
}
