//! Services end to end, each test inside a private network namespace: two
//! replicas share the load; a replica killed with SIGKILL is taken out and
//! no request fails; a guest on the service's network reaches it and its
//! replicas by name; a rolling update under wrk load gives only 2xx and
//! ends on the new image; an update to an image that fails its health
//! check rolls back; bad services are refused with nothing made; an idle
//! service goes to standby (no process left) and the next request wakes it.
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Builds goweb, and images `web:1`, `web:2` (VERSION v1, v2) and
/// `web:bad` (listens on the wrong port: never healthy).
fn images(d: &Daemon) -> std::path::PathBuf {
    let bin = d.dir.join("goweb");
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../volt/tests/programs/goweb/main.go"
    );
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(src)
        .env("CGO_ENABLED", "0")
        .env("GO111MODULE", "off")
        .env("GOCACHE", d.dir.join("gocache"))
        .status()
        .unwrap();
    assert!(st.success(), "go build");
    for (tag, version, addr) in [
        ("1", "v1", ":8080"),
        ("2", "v2", ":8080"),
        ("bad", "bad", ":9999"),
    ] {
        let ctx = d.dir.join(format!("web-{tag}"));
        std::fs::create_dir_all(ctx.join("rootfs/app")).unwrap();
        std::fs::copy(&bin, ctx.join("rootfs/app/goweb")).unwrap();
        std::fs::write(
            ctx.join("Voltfile"),
            format!("spec: v1\nname: web\nrootfs: ./rootfs\ncmd: [\"/app/goweb\", \"serve\", \"{addr}\"]\nenv: {{VERSION: {version}}}\nmemory: 64M\n"),
        )
        .unwrap();
        let o = Command::new(volt_bin())
            .env("VOLT_DATA_DIR", d.dir.join("data"))
            .args(["build", "-q", "-t", &format!("web:{tag}")])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` on 127.0.0.1:`port`: status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    exchange(s, "GET", path, "", None)
}

fn service(d: &Daemon, name: &str) -> serde_json::Value {
    let (st, v) = d.json("GET", &format!("/v1/services/{name}"), "");
    assert_eq!(st, 200, "{v}");
    v
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn instances(d: &Daemon) -> Vec<serde_json::Value> {
    d.json("GET", "/v1/instances", "")
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_service_balances_heals_resolves_and_rolls() {
    let test = "a_service_balances_heals_resolves_and_rolls";
    if !kvm(test) {
        return;
    }
    optivolt_testnet::in_private_netns(test, || {
        let d = Daemon::new("services");
        let goweb = images(&d);
        let port = free_port();
        let body = format!(
            r#"{{"name": "web", "image": "web:1", "ports": ["127.0.0.1:{port}:8080/http"],
                "replicas": 2, "health_interval": "200ms", "health_path": "/"}}"#
        );
        let (st, v) = d.json("POST", "/v1/services", &body);
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["ready"], 2, "{v}");

        // Two replicas share 1,000 requests.
        let mut by: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..1000 {
            let (st, b) = get(port, "/info");
            assert_eq!(st, 200, "{b}");
            *by.entry(b.split(' ').next().unwrap_or("").to_string())
                .or_default() += 1;
        }
        assert_eq!(by.len(), 2, "{by:?}");
        assert!(by.values().all(|&n| n > 100), "{by:?}");
        assert!(
            by.contains_key("web-1") && by.contains_key("web-2"),
            "{by:?}"
        );

        // Names on the service's network, through voltd's resolver: the
        // service (the balancer's address there) and a replica.
        for (url, want) in [
            ("http://web.internal:8080/info", " v1"),
            ("http://web-2.internal:8080/info", "web-2 v1"),
        ] {
            let o = Command::new(volt_bin())
                .env("VOLT_DATA_DIR", d.dir.join("data"))
                .args(["run", "--service-net", "web", "--timeout", "20"])
                .arg(&goweb)
                .args(["get", url])
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && out.starts_with("200 ") && out.contains(want),
                "{url}: {out} {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }

        // SIGKILL one replica's monitor: out within a health-check period,
        // and no request after that fails.
        let (_, i) = d.json("GET", "/v1/instances/web-1", "");
        let pid = i["pid"].as_i64().expect("web-1 runs") as i32;
        // SAFETY: kill(2) on the PID voltd just reported.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..300 {
            let (st, b) = get(port, "/info");
            assert_eq!(st, 200, "after the kill: {b}");
        }

        // A rolling update under load: every answer 2xx, every replica on v2.
        // (web-1 comes back first: restart always.)
        wait_for("web-1 back", Duration::from_secs(20), || {
            service(&d, "web")["ready"] == 2
        });
        let wrk = std::thread::spawn(move || {
            Command::new("wrk")
                .args(["-t2", "-c32", "-d10s", "--timeout", "5s"])
                .arg(format!("http://127.0.0.1:{port}/info"))
                .output()
                .unwrap()
        });
        std::thread::sleep(Duration::from_secs(1));
        let (st, v) = d.json("PATCH", "/v1/services/web", r#"{"image": "web:2"}"#);
        assert_eq!(st, 200, "{v}");
        let o = wrk.join().unwrap();
        let report = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{report}");
        assert!(!report.contains("Non-2xx"), "{report}");
        assert!(!report.contains("Socket errors"), "{report}");
        let v = service(&d, "web");
        let reps = v["replicas"].as_array().unwrap();
        assert_eq!(reps.len(), 2, "{v}");
        assert!(
            reps.iter()
                .all(|r| r["image"] == "web:2" && r["phase"] == "ready"),
            "{v}"
        );
        assert!(get(port, "/info").1.ends_with("v2\n"));
        assert_eq!(v["spec"]["image"], "web:2");
        assert_eq!(v["failed_requests"], 0, "{v}");

        // An image that never passes its check: rolled back, still v2.
        let (st, v) = d.json("PATCH", "/v1/services/web", r#"{"image": "web:bad"}"#);
        assert_eq!(st, 422, "{v}");
        assert_eq!(v["code"], "rolled_back");
        let v = service(&d, "web");
        assert!(v["status"].as_str().unwrap().contains("rolled back"), "{v}");
        let reps = v["replicas"].as_array().unwrap();
        assert!(
            reps.len() == 2 && reps.iter().all(|r| r["image"] == "web:2"),
            "{v}"
        );
        assert!(get(port, "/info").1.ends_with("v2\n"));
        assert!(
            instances(&d)
                .iter()
                .filter(|i| i["image"] == "web:bad")
                .count()
                == 0,
            "the failed replica stays"
        );

        // Bad services: a clear error each, nothing made.
        let before = instances(&d).len();
        for (body, status) in [
            (format!(r#"{{"name": "b1", "image": "web:1", "ports": ["127.0.0.1:{port}:8080"]}}"#), 409),
            (r#"{"name": "b2", "image": "web:1", "ports": ["1:2"], "autoscale": "min=5,max=2,target-inflight=1"}"#.to_string(), 422),
            (r#"{"name": "b3", "image": "web:1", "ports": ["1:2"], "autoscale": "min=-1,max=2,target-inflight=1"}"#.to_string(), 422),
            (r#"{"name": "b4", "image": "nosuch:1", "ports": ["1:2"]}"#.to_string(), 404),
            (r#"{"name": "web", "image": "web:1", "ports": ["1:2"]}"#.to_string(), 409),
            (r#"{"name": "b5", "image": "web:1", "ports": ["1:2"], "colour": "red"}"#.to_string(), 422),
        ] {
            let (st, v) = d.json("POST", "/v1/services", &body);
            assert_eq!(st, status, "{body}: {v}");
            assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{v}");
        }
        let (_, all) = d.json("GET", "/v1/services", "");
        assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
        assert_eq!(instances(&d).len(), before);
        for n in ["b1", "b2", "b3", "b4", "b5"] {
            assert!(!std::path::Path::new(&format!("/run/netns/volt-svc-{n}")).exists());
        }

        // Metrics, then removal: no replica, no network left.
        let (_, m) = d.unix("GET", "/metrics", "");
        assert!(
            m.contains("volt_service_requests_total{service=\"web\"}"),
            "{m}"
        );
        assert!(
            m.contains("volt_service_replicas{service=\"web\",phase=\"ready\"} 2"),
            "{m}"
        );
        let (st, _) = d.unix("DELETE", "/v1/services/web", "");
        assert_eq!(st, 204);
        assert!(instances(&d).is_empty(), "{:?}", instances(&d));
        assert!(!std::path::Path::new("/run/netns/volt-svc-web").exists());
        assert!(get(port, "/").0 == 0, "the port is closed");
    });
}

#[test]
fn an_idle_service_goes_to_standby_and_the_next_request_wakes_it() {
    let test = "an_idle_service_goes_to_standby_and_the_next_request_wakes_it";
    if !kvm(test) {
        return;
    }
    optivolt_testnet::in_private_netns(test, || {
        let d = Daemon::new("services-idle");
        images(&d);
        let port = free_port();
        // Through the CLI on voltd.
        let volt = |args: &[&str]| {
            let o = Command::new(volt_bin())
                .env("VOLT_DATA_DIR", d.dir.join("data"))
                .env("VOLT_HOST", format!("unix://{}", d.sock.display()))
                .args(args)
                .output()
                .unwrap();
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr),
            )
        };
        let p = format!("127.0.0.1:{port}:8080/http");
        let (code, out) = volt(&[
            "service",
            "create",
            "idle",
            "--image",
            "web:1",
            "--port",
            &p,
            "--scale-to-zero",
            "idle=1s",
            "--health-interval",
            "200ms",
        ]);
        assert_eq!(code, Some(0), "{out}");
        let (code, out) = volt(&[
            "service",
            "create",
            "neg",
            "--image",
            "web:1",
            "--port",
            "1:2",
            "--autoscale",
            "min=3,max=1,target-inflight=4",
        ]);
        assert_ne!(code, Some(0));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("above max"), "{out}");
        assert_eq!(get(port, "/count").0, 200);

        for round in 0..2 {
            // Idle for a second: saved, and no process of it left.
            wait_for("standby", Duration::from_secs(15), || {
                service(&d, "idle")["standby"] == 1
            });
            let (_, i) = d.json("GET", "/v1/instances/idle-1", "");
            assert_eq!(i["state"], "standby", "{i}");
            assert!(i["pid"].is_null() && i["supervisor_pid"].is_null(), "{i}");
            assert!(i["memory_bytes"].is_null() || i["memory_bytes"] == 0, "{i}");
            let id = i["id"].as_str().unwrap().to_string();
            let holders = std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
                .filter(|c| String::from_utf8_lossy(c).contains(&id))
                .count();
            assert_eq!(holders, 0, "a process of {id} is left");
            let (_, ls) = volt(&["service", "ls"]);
            assert!(ls.contains("idle") && ls.contains("0/1"), "{ls}");

            // The next request is held while it wakes, and the counter
            // goes on from the snapshot.
            let (st, b) = get(port, "/count");
            assert_eq!(st, 200, "{b}");
            assert_eq!(b.trim(), (round + 2).to_string(), "round {round}");
        }
        let v = service(&d, "idle");
        assert_eq!(v["wakes"]["count"], 2, "{v}");
        assert!(v["wakes"]["p50_ms"].as_f64().unwrap() > 0.0);
        let (_, m) = d.unix("GET", "/metrics", "");
        assert!(
            m.contains("volt_service_wake_seconds_count{service=\"idle\"} 2"),
            "{m}"
        );
        let (code, out) = volt(&["service", "rm", "idle"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(instances(&d).is_empty());
    });
}

#[test]
fn autoscale_follows_the_load_and_tcp_ports_splice() {
    let test = "autoscale_follows_the_load_and_tcp_ports_splice";
    if !kvm(test) {
        return;
    }
    optivolt_testnet::in_private_netns(test, || {
        let d = Daemon::new("services-auto");
        images(&d);
        let (http, tcp) = (free_port(), free_port());
        let body = format!(
            r#"{{"name": "auto", "image": "web:1", "balance": "round-robin",
                "ports": ["127.0.0.1:{http}:8080/http", "127.0.0.1:{tcp}:8080/tcp"],
                "autoscale": "min=1,max=3,target-inflight=2,cooldown=1s", "health_interval": "200ms"}}"#
        );
        let (st, v) = d.json("POST", "/v1/services", &body);
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["replicas"].as_array().unwrap().len(), 1, "{v}");
        // A TCP port: the connection goes whole to a replica.
        let (st, b) = get(tcp, "/info");
        assert_eq!((st, b.as_str()), (200, "auto-1 v1\n"));

        // 16 connections against a target of 2 in flight each: up to max.
        let wrk = std::thread::spawn(move || {
            Command::new("wrk")
                .args(["-t2", "-c16", "-d6s", "--timeout", "5s"])
                .arg(format!("http://127.0.0.1:{http}/bytes?n=65536"))
                .output()
                .unwrap()
        });
        wait_for("3 replicas", Duration::from_secs(6), || {
            service(&d, "auto")["ready"] == 3
        });
        let o = wrk.join().unwrap();
        let report = String::from_utf8_lossy(&o.stdout);
        assert!(
            !report.contains("Non-2xx") && !report.contains("Socket errors"),
            "{report}"
        );
        // Load gone for the cool-down: back to min, one replica at a time.
        wait_for("back to 1", Duration::from_secs(20), || {
            service(&d, "auto")["replicas"].as_array().unwrap().len() == 1
        });
        let v = service(&d, "auto");
        let served: u64 = v["replicas"][0]["served"].as_u64().unwrap();
        assert!(served > 0, "{v}");
        assert_eq!(v["failed_requests"], 0, "{v}");
        assert_eq!(instances(&d).len(), 1);

        // The count by hand, then remove.
        let (st, v) = d.json("PATCH", "/v1/services/auto", r#"{"replicas": 2}"#);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["ready"], 2, "{v}");
        let (st, v) = d.json("PATCH", "/v1/services/auto", r#"{"replicas": 9}"#);
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid")), "{v}");
        let (st, _) = d.unix("DELETE", "/v1/services/auto", "");
        assert_eq!(st, 204);
        assert!(instances(&d).is_empty());
    });
}
