//! voltd's API against a real voltd (Unix socket and TCP), with instances
//! of a real image.
mod common;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn the_whole_lifecycle_of_an_instance() {
    if !kvm("the_whole_lifecycle_of_an_instance") {
        return;
    }
    let d = Daemon::new("lifecycle");
    let (st, v) = d.json(
        "POST",
        "/v1/instances",
        r#"{"name":"t1","image":"ticker:1","memory":"32M","restart":"on-failure"}"#,
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["name"], "t1");
    assert_eq!(v["state"], "running");
    let (st, list) = d.json("GET", "/v1/instances", "");
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // Its output, then followed as it comes.
    std::thread::sleep(Duration::from_millis(400));
    let (st, logs) = d.unix("GET", "/v1/instances/t1/logs?tail=2", "");
    assert_eq!(st, 200);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    let first: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap()).unwrap();
    assert!(first["l"].as_str().unwrap().starts_with("tick "), "{first}");
    let (st, m) = d.json("GET", "/v1/instances/t1/metrics", "");
    assert_eq!(st, 200);
    assert!(
        m["cpu_seconds"].as_f64().is_some() && m["rss_bytes"].as_u64().unwrap_or(0) > 0,
        "{m}"
    );
    // The name is taken.
    let (st, e) = d.json(
        "POST",
        "/v1/instances",
        r#"{"name":"t1","image":"ticker:1"}"#,
    );
    assert_eq!((st, e["code"].as_str()), (409, Some("conflict")), "{e}");
    // Stop (the follower of its log ends with it), start, delete.
    let follower = {
        let sock = d.sock.clone();
        std::thread::spawn(move || {
            exchange(
                UnixStream::connect(sock).unwrap(),
                "GET",
                "/v1/instances/t1/logs?follow=true",
                "",
                None,
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (st, v) = d.json("POST", "/v1/instances/t1/stop?timeout=5", "");
    assert_eq!((st, v["state"].as_str()), (200, Some("stopped")), "{v}");
    let (st, followed) = follower.join().unwrap();
    assert_eq!(st, 200);
    assert!(followed.lines().count() > 2, "{followed}");
    let (st, v) = d.json("POST", "/v1/instances/t1/start", "");
    assert_eq!((st, v["state"].as_str()), (200, Some("running")), "{v}");
    let (st, e) = d.json("DELETE", "/v1/instances/t1", "");
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("conflict")),
        "running, no force"
    );
    let (st, _) = d.unix("DELETE", "/v1/instances/t1?force=true", "");
    assert_eq!(st, 204);
    let (st, e) = d.json("GET", "/v1/instances/t1", "");
    assert_eq!((st, e["code"].as_str()), (404, Some("not_found")));
}

#[test]
fn tcp_needs_the_token_and_bad_requests_are_json_problems() {
    if !kvm("tcp_needs_the_token_and_bad_requests_are_json_problems") {
        return;
    }
    let d = Daemon::new("bad");
    assert_eq!(d.tcp("GET", "/v1/instances", None).0, 401);
    let (st, b) = d.tcp("GET", "/v1/instances", Some("wrong-token-wrong-token"));
    assert_eq!(st, 401);
    assert!(b.contains("\"code\":\"unauthorized\""), "{b}");
    assert_eq!(d.tcp("GET", "/v1/instances", Some(TOKEN)).0, 200);
    for (body, status, needle) in [
        ("{not json", 400, "bad_request"),
        (r#"{"image":"ticker:1","colour":"red"}"#, 422, "colour"),
        (r#"{"image":"nope:1"}"#, 404, "no such image"),
        (r#"{"image":"ticker:1","memory":"lots"}"#, 400, "memory"),
    ] {
        let (st, b) = d.unix("POST", "/v1/instances", body);
        assert_eq!(st, status, "{body}: {b}");
        assert!(b.contains(needle), "{body}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).expect("a JSON problem");
        assert!(v["code"].is_string() && v["message"].is_string(), "{b}");
    }
    let big = format!(
        r#"{{"image":"ticker:1","args":["{}"]}}"#,
        "x".repeat(100 << 10)
    );
    let (st, b) = d.unix("POST", "/v1/instances", &big);
    assert_eq!(st, 413, "{b}");
    // Nothing was half-made.
    let (_, list) = d.json("GET", "/v1/instances", "");
    assert_eq!(list, serde_json::json!([]));
    let (st, b) = d.unix("GET", "/v1/nothing", "");
    assert_eq!(st, 404);
    assert!(b.contains("not_found"));
    // The served document is the checked-in one.
    let (st, doc) = d.unix("GET", "/v1/openapi.json", "");
    assert_eq!(st, 200);
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap();
    assert_eq!(doc.trim_end(), file.trim_end());
}

#[test]
fn instances_outlive_voltd_and_are_scraped() {
    if !kvm("instances_outlive_voltd_and_are_scraped") {
        return;
    }
    let mut d = Daemon::new("survive");
    for n in ["a", "b", "c"] {
        let (st, v) = d.json(
            "POST",
            "/v1/instances",
            &format!(r#"{{"name":"{n}","image":"ticker:1"}}"#),
        );
        assert_eq!(st, 201, "{v}");
    }
    let pids = |d: &Daemon| -> Vec<i64> {
        let (_, v) = d.json("GET", "/v1/instances", "");
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["pid"].as_i64().unwrap_or(0))
            .collect()
    };
    let before = pids(&d);
    d.kill9();
    assert!(
        before
            .iter()
            .all(|p| Path::new(&format!("/proc/{p}")).exists()),
        "the VMs outlive voltd"
    );
    d.start();
    let (_, v) = d.json("GET", "/v1/instances", "");
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["state"] == "running"));
    assert_eq!(pids(&d), before);
    // One scrape has them all, without a token.
    let (st, text) = d.tcp("GET", "/metrics", None);
    assert_eq!(st, 200);
    for n in ["a", "b", "c"] {
        assert!(
            text.contains(&format!(
                "volt_instance_running{{instance=\"{n}\",image=\"ticker:1\"}} 1"
            )),
            "{text}"
        );
    }
    assert!(text.contains("volt_instance_cpu_seconds{"), "{text}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}
