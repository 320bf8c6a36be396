//! Instances that live on, end to end through the CLI: `run -d`, `ps`,
//! `logs [-f] [--tail]`, `stop`, `start`, `rm [-f]`, `inspect`; restart
//! policies with their backoff; concurrent CLI calls; a supervisor killed
//! with SIGKILL; a published port served by a detached instance.
mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

type Ctx = Scratch;

impl Scratch {
    fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    /// Waits (bounded) until `name`'s state is `state`.
    fn wait_state(&self, name: &str, state: &str, limit: Duration) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let i = self.inspect(name);
            if i["state"] == state {
                return i;
            }
            assert!(t.elapsed() < limit, "{name} never became {state}: {i}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn a_detached_instance_lives_logs_stops_starts_and_is_removed() {
    if !kvm_available("a_detached_instance_lives_logs_stops_starts_and_is_removed") {
        return;
    }
    let c = Ctx::new("instances", "life");
    let t = program("ticker", "musl");
    let t = t.to_str().unwrap();
    let id = c
        .ok(&["run", "-d", "--name", "t1", t, "0"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = c.ok(&["ps"]);
    let row = ps.lines().nth(1).unwrap_or("");
    assert!(
        row.starts_with(&id[..12]) && row.contains(" t1 ") && row.contains("Up "),
        "{ps}"
    );
    // The log fills while it runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.out(&["logs", "t1"]).contains("tick 3\n") {
        assert!(Instant::now() < deadline, "no output in the log");
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = c.out(&["logs", "t1"]);
    assert!(logs.starts_with("tick 1\ntick 2\ntick 3\n"), "{logs}");
    assert_eq!(c.out(&["logs", "--tail", "1", "t1"]).lines().count(), 1);
    // rm refuses a running instance; stop ends it with SIGTERM's status.
    one_line_error(&c.volt(&["rm", "t1"]), "is running");
    let pid = c.inspect("t1")["pid"].as_i64().unwrap();
    c.ok(&["stop", "-t", "5", "t1"]);
    assert!(!pid_alive(pid), "the VM's monitor is gone");
    let i = c.inspect("t1");
    assert_eq!(i["state"], "exited");
    assert_eq!(i["exit_code"], 143);
    assert!(c.ok(&["ps"]).lines().count() == 1, "only the header");
    assert!(c.ok(&["ps", "-a"]).contains("Exited (143)"));
    // start runs it again, appending to the same log.
    c.ok(&["start", "t1"]);
    c.wait_state("t1", "running", Duration::from_secs(10));
    c.ok(&["rm", "-f", "t1"]);
    assert_eq!(c.out(&["ps", "-a", "-q"]), "");
    one_line_error(&c.volt(&["logs", "t1"]), "no such instance");
}

#[test]
fn stop_sends_sigterm_to_the_program_which_may_end_cleanly() {
    if !kvm_available("stop_sends_sigterm_to_the_program_which_may_end_cleanly") {
        return;
    }
    let c = Ctx::new("instances", "graceful");
    let p = program("sigterm", "musl");
    c.ok(&["run", "-d", "--name", "g", p.to_str().unwrap(), "sleep"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.out(&["logs", "g"]).contains("ready") {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.ok(&["stop", "g"]);
    let i = c.inspect("g");
    assert_eq!(i["exit_code"], 3, "the program's own status: {i}");
    assert_eq!(c.out(&["logs", "g"]), "ready\ngot signal 15, cleaning up\n");
}

#[test]
fn logs_follow_prints_everything_until_the_instance_ends() {
    if !kvm_available("logs_follow_prints_everything_until_the_instance_ends") {
        return;
    }
    let c = Ctx::new("instances", "follow");
    let t = program("ticker", "musl");
    c.ok(&["run", "-d", "--name", "f", t.to_str().unwrap(), "6", "0"]);
    let o = c.cmd(&["logs", "-f", "f"]).output().unwrap();
    let want: String = (1..=6).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "half-way\n");
    let i = c.wait_state("f", "exited", Duration::from_secs(10));
    assert_eq!(i["exit_code"], 0);
}

#[test]
fn on_failure_restarts_with_backoff_and_gives_up_after_n() {
    if !kvm_available("on_failure_restarts_with_backoff_and_gives_up_after_n") {
        return;
    }
    let c = Ctx::new("instances", "restart");
    let e = program("exit", "musl");
    let t0 = Instant::now();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--restart",
        "on-failure:2",
        e.to_str().unwrap(),
        "3",
    ]);
    let i = c.wait_state("crash", "exited", Duration::from_secs(30));
    let took = t0.elapsed();
    assert_eq!(i["restarts"], 2, "{i}");
    assert_eq!(i["exit_code"], 3);
    // Three runs: at once, then after 0 s and 5 s of backoff.
    assert_eq!(c.out(&["logs", "crash"]), "exiting with 3\n".repeat(3));
    assert!(
        took >= Duration::from_secs(5),
        "backoff not applied: {took:?}"
    );
    // A program that succeeds is not restarted by on-failure.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        e.to_str().unwrap(),
        "0",
    ]);
    let i = c.wait_state("fine", "exited", Duration::from_secs(10));
    assert_eq!(i["restarts"], 0);
}

#[test]
fn always_restarts_even_after_success_and_restart_starts_it_again() {
    if !kvm_available("always_restarts_even_after_success_and_restart_starts_it_again") {
        return;
    }
    let c = Ctx::new("instances", "always");
    let e = program("exit", "musl");
    c.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--restart",
        "always",
        e.to_str().unwrap(),
        "0",
    ]);
    // Run once at once, then again after the 0 s backoff: two runs logged.
    let t = Instant::now();
    while c.out(&["logs", "a"]).lines().count() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "always did not restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.inspect("a")["restarts"].as_u64().unwrap() >= 1);
    c.ok(&["stop", "a"]);
    assert_eq!(c.inspect("a")["state"], "exited");
    // --since and --tail pick lines out of what was logged.
    assert_eq!(c.out(&["logs", "--tail", "1", "a"]).lines().count(), 1);
    assert!(c
        .out(&["logs", "--since", "1h", "a"])
        .starts_with("exiting with 0\n"));
    let stamped = c.out(&["logs", "-t", "a"]);
    assert!(
        stamped
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z exiting with 0")),
        "{stamped}"
    );
    // restart: a long-running instance is stopped and started again.
    let s = program("sleeper", "musl");
    c.ok(&["run", "-d", "--name", "r", s.to_str().unwrap(), "30"]);
    let first = c.wait_state("r", "running", Duration::from_secs(10))["pid"]
        .as_i64()
        .unwrap();
    c.ok(&["restart", "-t", "1", "r"]);
    let i = c.wait_state("r", "running", Duration::from_secs(10));
    assert_ne!(i["pid"].as_i64().unwrap(), first, "a new monitor process");
    assert!(!pid_alive(first));
    c.ok(&["rm", "-f", "a", "r"]);
}

#[test]
fn concurrent_cli_calls_leave_a_consistent_state() {
    if !kvm_available("concurrent_cli_calls_leave_a_consistent_state") {
        return;
    }
    let c = Ctx::new("instances", "concurrent");
    let s = program("sleeper", "musl");
    let s = s.to_str().unwrap().to_string();
    let spawn = |name: &str| {
        c.cmd(&["run", "-d", "--name", name, &s, "30"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Eight at once under one name: exactly one wins.
    let same: Vec<_> = (0..8).map(|_| spawn("same")).collect();
    let outs: Vec<Output> = same
        .into_iter()
        .map(|ch| ch.wait_with_output().unwrap())
        .collect();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "exactly one instance may take a name");
    for o in outs.iter().filter(|o| !o.status.success()) {
        one_line_error(o, "already in use");
    }
    // Eight under different names: all of them.
    let names: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let kids: Vec<_> = names.iter().map(|n| spawn(n)).collect();
    for k in kids {
        assert!(k.wait_with_output().unwrap().status.success());
    }
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["ps", "-a", "-o", "json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 9);
    let ids: std::collections::HashSet<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 9);
    let mut all: Vec<&str> = vec!["same"];
    all.extend(names.iter().map(String::as_str));
    let mut args = vec!["rm", "-f"];
    args.extend(all);
    c.ok(&args);
    assert_eq!(c.out(&["ps", "-a", "-q"]), "");
}

#[test]
fn a_supervisor_killed_with_sigkill_is_noticed_and_its_vm_ends() {
    if !kvm_available("a_supervisor_killed_with_sigkill_is_noticed_and_its_vm_ends") {
        return;
    }
    let c = Ctx::new("instances", "kill9");
    let s = program("sleeper", "musl");
    c.ok(&["run", "-d", "--name", "victim", s.to_str().unwrap(), "60"]);
    let i = c.wait_state("victim", "running", Duration::from_secs(10));
    let (sup, pid) = (
        i["supervisor_pid"].as_i64().unwrap(),
        i["pid"].as_i64().unwrap(),
    );
    // SAFETY: kill(2) of the supervisor this test started.
    unsafe { libc::kill(sup as i32, libc::SIGKILL) };
    let t = Instant::now();
    while pid_alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the VM outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let i = c.inspect("victim");
    assert_eq!(i["state"], "dead", "{i}");
    assert!(c.ok(&["ps", "-a"]).contains("Dead"));
    // It can be started again.
    c.ok(&["start", "victim"]);
    c.wait_state("victim", "running", Duration::from_secs(10));
}

#[test]
fn a_detached_instance_serves_its_published_port_until_stopped() {
    let test = "a_detached_instance_serves_its_published_port_until_stopped";
    if !kvm_available(test) {
        return;
    }
    let web = program("goweb", "go");
    optivolt_testnet::in_private_netns(test, move || {
        let c = Ctx::new("instances", "publish");
        let w = web.to_str().unwrap();
        c.ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "127.0.0.1:8080:8080",
            w,
            "serve",
            ":8080",
        ]);
        let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let r = common::net::wait_for_http(addr, "/", Duration::from_secs(20));
        assert_eq!(r.status, 200);
        assert!(c.ok(&["ps"]).contains("127.0.0.1:8080:8080"));
        c.ok(&["stop", "web"]);
        std::net::TcpListener::bind(addr).expect("the port is free again");
        c.ok(&["rm", "web"]);
    });
}

#[test]
fn bad_input_fails_in_one_line_and_records_nothing() {
    let c = Ctx::new("instances", "bad");
    one_line_error(&c.volt(&["run", "-d", "/nonexistent/app"]), "no such file");
    one_line_error(
        &c.volt(&["run", "-d", "nosuchimage"]),
        "no such file, and no such image",
    );
    one_line_error(
        &c.volt(&["run", "-d", "--name", "bad name", "/bin/true"]),
        "invalid instance name",
    );
    // clap's usage error: its first line says what is wrong.
    let o = c.volt(&["run", "-d", "--restart", "sometimes", "/bin/true"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines().next().unwrap_or("").contains("restart policy"),
        "{err}"
    );
    assert_eq!(c.out(&["ps", "-a", "-q"]), "");
    for cmd in ["logs", "stop", "start", "rm", "inspect"] {
        one_line_error(&c.volt(&[cmd, "nosuch"]), "no such instance");
    }
    if kvm_available("bad_input_fails_in_one_line_and_records_nothing (name in use)") {
        let s = program("sleeper", "musl");
        c.ok(&["run", "-d", "--name", "taken", s.to_str().unwrap(), "30"]);
        one_line_error(
            &c.volt(&["run", "-d", "--name", "taken", s.to_str().unwrap(), "30"]),
            "already in use",
        );
        c.ok(&["rm", "-f", "taken"]);
    }
}
