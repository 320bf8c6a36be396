//! Snapshots, live metrics and restart policies through the API, inside a
//! private network namespace: a running Go server's monitor reports its
//! counters; its counter survives a snapshot, a restore from it and a
//! standby; bad snapshot requests are refused with JSON errors and
//! nothing created; an instance whose monitor is killed with SIGKILL is
//! restarted by its policy after Unikraft Cloud's backoff.
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Builds goweb and an image `web:1` of it in the daemon's store.
fn web_image(d: &Daemon) {
    let ctx = d.dir.join("web");
    std::fs::create_dir_all(ctx.join("rootfs/app")).unwrap();
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../volt/tests/programs/goweb/main.go"
    );
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(ctx.join("rootfs/app/goweb"))
        .arg(src)
        .env("CGO_ENABLED", "0")
        .env("GO111MODULE", "off")
        .env("GOCACHE", d.dir.join("gocache"))
        .status()
        .unwrap();
    assert!(st.success(), "go build");
    std::fs::write(
        ctx.join("Voltfile"),
        "spec: v1\nname: web\nrootfs: ./rootfs\ncmd: [\"/app/goweb\", \"serve\", \":8080\"]\nmemory: 64M\n",
    )
    .unwrap();
    let o = Command::new(volt_bin())
        .env("VOLT_DATA_DIR", d.dir.join("data"))
        .args(["build", "-q", "-t", "web:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// GET /count on 127.0.0.1:`port`, retried for a while.
fn count(port: u16) -> u64 {
    let t = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if let Some((_, body)) = out.split_once("\r\n\r\n") {
                if let Ok(n) = body.trim().parse() {
                    return n;
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no answer on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn refused(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn snapshot_restore_and_standby_through_the_api() {
    let test = "snapshot_restore_and_standby_through_the_api";
    if !kvm(test) {
        return;
    }
    optivolt_testnet::in_private_netns(test, || {
        let d = Daemon::new("snapshots");
        web_image(&d);
        let (st, v) = d.json(
            "POST",
            "/v1/instances",
            r#"{"name":"web","image":"web:1","ports":["127.0.0.1:8080:8080"]}"#,
        );
        assert_eq!(st, 201, "{v}");
        for want in 1..=3 {
            assert_eq!(count(8080), want);
        }
        // The live counters, as JSON and in the scrape.
        let (st, m) = d.json("GET", "/v1/instances/web/metrics", "");
        assert_eq!(st, 200, "{m}");
        let live = &m["live"];
        for k in [
            "exits",
            "rx_bytes",
            "rx_packets",
            "tx_bytes",
            "syscalls_by_jump",
            "patched_sites",
        ] {
            assert!(live[k].as_u64().unwrap_or(0) > 0, "{k}: {m}");
        }
        assert!(live["connections"].as_u64().unwrap() >= 3, "{m}");
        assert!(
            live["guest_memory_bytes"].as_u64().unwrap() > 1 << 20,
            "{m}"
        );
        assert!(m["pss_bytes"].as_u64().unwrap() > 0, "{m}");
        assert!(m["energy_joules"].as_f64().unwrap() > 0.0, "{m}");
        assert!(
            m["energy_model"]
                .as_str()
                .unwrap()
                .contains("Cloud Carbon Footprint"),
            "{m}"
        );
        let (_, text) = d.unix("GET", "/metrics", "");
        for family in [
            "volt_instance_network_receive_bytes_total{",
            "volt_instance_syscalls_total{",
            "path=\"jump\"",
            "volt_instance_exits_total{",
            "volt_instance_guest_memory_bytes{",
            "volt_instance_memory_pss_bytes{",
            "volt_instance_energy_joules{",
        ] {
            assert!(text.contains(family), "{family} missing from:\n{text}");
        }
        let snap = d.dir.join("web.snap");
        let body = format!(r#"{{"path":"{}"}}"#, snap.display());
        let (st, v) = d.json("POST", "/v1/instances/web/snapshot", &body);
        assert_eq!(st, 201, "{v}");
        assert!(v["pages"].as_u64().unwrap() > 0, "{v}");
        assert!(v["disk_bytes"].as_u64().unwrap() < v["file_len"].as_u64().unwrap());
        assert_eq!(count(8080), 4, "the original goes on");

        // A new instance from the file continues from the saved counter.
        let body = format!(
            r#"{{"name":"w2","snapshot":"{}","ports":["127.0.0.1:8081:8080"]}}"#,
            snap.display()
        );
        let (st, v) = d.json("POST", "/v1/instances", &body);
        assert_eq!(st, 201, "{v}");
        assert_eq!(count(8081), 4);
        // The same through the CLI on voltd.
        let o = Command::new(volt_bin())
            .arg("--host")
            .arg(format!("unix://{}", d.sock.display()))
            .args(["restore", "-d", "--name", "w3", "-p", "127.0.0.1:8083:8080"])
            .arg(&snap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim().len(), 64);
        assert_eq!(count(8083), 4);

        // Standby: saved, no process; start restores it where it was.
        let (st, v) = d.json("POST", "/v1/instances/w2/standby", "");
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["state"], "standby", "{v}");
        assert!(v["pid"].is_null(), "{v}");
        assert!(refused(8081), "nothing serves in standby");
        let (st, _) = d.json(
            "POST",
            "/v1/instances/w2/snapshot",
            &format!(r#"{{"path":"{}/x.snap"}}"#, d.dir.display()),
        );
        assert_eq!(st, 409, "a standby instance has nothing to save");
        let (st, v) = d.json("POST", "/v1/instances/w2/start", "");
        assert_eq!(st, 200, "{v}");
        assert_eq!(count(8081), 5);
        let (_, v) = d.json("GET", "/v1/instances/w2", "");
        assert_eq!(v["state"], "running", "{v}");

        // Bad requests: clear errors, nothing created.
        let short = d.dir.join("short.snap");
        std::fs::copy(&snap, &short).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&short)
            .unwrap();
        f.set_len(f.metadata().unwrap().len() / 2).unwrap();
        for (body, status, needle) in [
            (r#"{"path":"rel.snap"}"#.to_string(), 400, "absolute"),
            (r#"{"path":"/x","bogus":1}"#.to_string(), 422, "bogus"),
        ] {
            let (st, v) = d.json("POST", "/v1/instances/web/snapshot", &body);
            assert_eq!(st, status, "{v}");
            assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
        }
        for (body, status, needle) in [
            (
                format!(r#"{{"name":"bad","snapshot":"{}"}}"#, short.display()),
                400,
                "truncated",
            ),
            (
                r#"{"name":"bad","snapshot":"/nonexistent.snap"}"#.to_string(),
                404,
                "no such snapshot",
            ),
            (
                format!(
                    r#"{{"name":"bad","image":"web:1","snapshot":"{}"}}"#,
                    snap.display()
                ),
                400,
                "exactly one",
            ),
            (
                format!(
                    r#"{{"name":"bad","snapshot":"{}","memory":"1G"}}"#,
                    snap.display()
                ),
                400,
                "only name",
            ),
        ] {
            let (st, v) = d.json("POST", "/v1/instances", &body);
            assert_eq!(st, status, "{body}: {v}");
            assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
        }
        let (_, v) = d.json("GET", "/v1/instances/bad", "");
        assert_eq!(v["code"], "not_found", "nothing half-created: {v}");
    });
}

fn pid_of(d: &Daemon, name: &str) -> Option<i64> {
    let (_, v) = d.json("GET", &format!("/v1/instances/{name}"), "");
    v["pid"].as_i64()
}

/// Waits until `name` runs a monitor other than `old`; returns its PID.
fn new_pid(d: &Daemon, name: &str, old: i64, limit: Duration) -> i64 {
    let t = Instant::now();
    loop {
        if let Some(p) =
            pid_of(d, name).filter(|&p| p != old && Path::new(&format!("/proc/{p}")).exists())
        {
            return p;
        }
        assert!(
            t.elapsed() < limit,
            "{name} was not restarted within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_monitor_is_restarted_with_the_backoff() {
    let test = "a_killed_monitor_is_restarted_with_the_backoff";
    if !kvm(test) {
        return;
    }
    let d = Daemon::new("backoff");
    let (st, v) = d.json(
        "POST",
        "/v1/instances",
        r#"{"name":"t","image":"ticker:1","memory":"16M","restart":"on-failure"}"#,
    );
    assert_eq!(st, 201, "{v}");
    let kill = |p: i64| {
        // SAFETY: kill(2) on a PID this test just read from voltd.
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    };
    // The first restart follows at once (backoff 0 s), the second after 5 s.
    let p1 = pid_of(&d, "t").expect("running");
    kill(p1);
    let t = Instant::now();
    let p2 = new_pid(&d, "t", p1, Duration::from_secs(4));
    assert!(t.elapsed() < Duration::from_secs(4));
    kill(p2);
    let t = Instant::now();
    let _p3 = new_pid(&d, "t", p2, Duration::from_secs(12));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(4500),
        "the second restart came after {waited:?}, not the 5 s backoff"
    );
    let (_, v) = d.json("GET", "/v1/instances/t", "");
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["restarts"], 2, "{v}");
}
