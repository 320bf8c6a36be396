//! The CLI on the API: with VOLT_HOST (or --host), volt's instance commands
//! go through voltd and print what they print alone.
mod common;

use std::process::{Command, Output};

use common::*;

fn volt(d: &Daemon, host: Option<String>, args: &[&str]) -> Output {
    let mut c = Command::new(volt_bin());
    c.env("VOLT_DATA_DIR", d.dir.join("data")).args(args);
    match host {
        Some(h) => c.env("VOLT_HOST", h),
        None => c.env_remove("VOLT_HOST"),
    };
    c.env_remove("VOLT_TOKEN").output().unwrap()
}

fn out(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The JSON listing without what changes from one moment to the next.
fn steady(s: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
    for i in v.as_array_mut().unwrap() {
        let m = i.as_object_mut().unwrap();
        m.remove("cpu_seconds");
        m.remove("memory_bytes");
        m.remove("status");
    }
    v
}

#[test]
fn the_cli_prints_the_same_through_voltd() {
    if !kvm("the_cli_prints_the_same_through_voltd") {
        return;
    }
    let d = Daemon::new("cli");
    let unix = Some(format!("unix://{}", d.sock.display()));
    let id = out(&volt(
        &d,
        unix.clone(),
        &["run", "-d", "--name", "c1", "--memory", "16M", "ticker:1"],
    ));
    assert_eq!(id.trim().len(), 64, "an ID: {id}");
    out(&volt(&d, None, &["run", "-d", "--name", "c2", "ticker:1"]));
    // The same listing either way.
    let alone = out(&volt(&d, None, &["ps", "-o", "json"]));
    let through = out(&volt(&d, unix.clone(), &["ps", "-o", "json"]));
    assert_eq!(steady(&through), steady(&alone));
    let cut =
        |s: &str| -> Vec<String> { s.lines().map(|l| l.chars().take(60).collect()).collect() };
    assert_eq!(
        cut(&out(&volt(&d, unix.clone(), &["ps"]))),
        cut(&out(&volt(&d, None, &["ps"])))
    );
    assert_eq!(
        steady(&out(&volt(&d, unix.clone(), &["inspect", "c1"]))),
        steady(&out(&volt(&d, None, &["inspect", "c1"])))
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = out(&volt(&d, unix.clone(), &["logs", "--tail", "2", "c1"]));
    assert_eq!(logs.lines().count(), 2, "{logs}");
    assert!(logs.starts_with("tick "), "{logs}");
    // Changes through voltd, seen alone.
    assert_eq!(
        out(&volt(&d, unix.clone(), &["stop", "-t", "5", "c1"])),
        "c1\n"
    );
    let ps = out(&volt(&d, None, &["ps", "-a"]));
    assert!(
        ps.lines().any(|l| l.contains("c1") && l.contains("Exited")),
        "{ps}"
    );
    assert_eq!(out(&volt(&d, unix.clone(), &["start", "c1"])), "c1\n");
    assert_eq!(
        out(&volt(&d, unix.clone(), &["rm", "-f", "c1", "c2"])),
        "c1\nc2\n"
    );
    assert_eq!(out(&volt(&d, None, &["ps", "-a", "-q"])), "");
    // Errors are volt's one line.
    let o = volt(&d, unix.clone(), &["rm", "nope"]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("volt: nope: no such instance") && err.lines().count() == 1,
        "{err}"
    );
    // TCP: with the token, and without.
    let tcp = format!("tcp://127.0.0.1:{}", d.port);
    let o = volt(&d, Some(tcp.clone()), &["ps"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bearer token"),
        "{o:?}"
    );
    let o = Command::new(volt_bin())
        .env("VOLT_DATA_DIR", d.dir.join("data"))
        .env("VOLT_HOST", &tcp)
        .env("VOLT_TOKEN", TOKEN)
        .args(["ps", "-a"])
        .output()
        .unwrap();
    assert!(out(&o).starts_with("ID "));
    // A file cannot be sent to voltd.
    let o = volt(&d, unix, &["run", "-d", "./app"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("takes an image"),
        "{o:?}"
    );
}
