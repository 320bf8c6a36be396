//! voltd under stress: killed with 20 instances running, and 200 API
//! calls at once creating and deleting instances.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;

fn pids(d: &Daemon) -> Vec<(String, i64)> {
    let (_, v) = d.json("GET", "/v1/instances", "");
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["pid"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn twenty_instances_outlive_a_killed_voltd() {
    if !kvm("twenty_instances_outlive_a_killed_voltd") {
        return;
    }
    let mut d = Daemon::new("twenty");
    for n in 0..20 {
        let (st, v) = d.json(
            "POST",
            "/v1/instances",
            &format!(r#"{{"name":"i{n:02}","image":"ticker:1","memory":"16M"}}"#),
        );
        assert_eq!(st, 201, "{v}");
    }
    let before = pids(&d);
    assert_eq!(before.len(), 20);
    d.kill9();
    d.start();
    let after = pids(&d);
    assert_eq!(after, before, "the same 20, once each, same processes");
    assert!(after
        .iter()
        .all(|(_, p)| Path::new(&format!("/proc/{p}")).exists()));
    // They still work: their logs grow.
    let (_, a) = d.unix("GET", "/v1/instances/i07/logs", "");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, b) = d.unix("GET", "/v1/instances/i07/logs", "");
    assert!(
        b.lines().count() > a.lines().count(),
        "i07 is still ticking"
    );
}

#[test]
fn two_hundred_concurrent_calls_leave_the_store_consistent() {
    if !kvm("two_hundred_concurrent_calls_leave_the_store_consistent") {
        return;
    }
    let d = Arc::new(Daemon::new("concurrent"));
    // 50 creates of 25 names (each name twice), 50 deletes, 100 reads.
    let mut threads = Vec::new();
    for k in 0..200 {
        let d = d.clone();
        threads.push(std::thread::spawn(move || match k % 4 {
            0 | 1 => {
                let body = format!(
                    r#"{{"name":"c{:02}","image":"ticker:1","memory":"16M"}}"#,
                    (k / 4) % 25
                );
                let (st, b) = d.unix("POST", "/v1/instances", &body);
                let id = serde_json::from_str::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(String::from));
                if ![201, 409].contains(&st) {
                    eprintln!("create answered {st}: {b}");
                }
                ("create", st, id)
            }
            2 => {
                let (st, _) = d.unix(
                    "DELETE",
                    &format!("/v1/instances/c{:02}?force=true", (k / 4) % 25),
                    "",
                );
                ("delete", st, None)
            }
            _ => ("list", d.unix("GET", "/v1/instances", "").0, None),
        }));
    }
    let results: Vec<(&str, u16, Option<String>)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (what, st, _) in &results {
        let ok = match *what {
            "create" => [201, 409].contains(st),
            "delete" => [204, 404].contains(st),
            _ => *st == 200,
        };
        assert!(ok, "{what} answered {st}");
    }
    // Each name at most once, and every one listed is really there.
    let list = pids(&d);
    let mut names: Vec<&String> = list.iter().map(|(n, _)| n).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "a name twice: {list:?}");
    for (name, pid) in &list {
        let (st, v) = d.json("GET", &format!("/v1/instances/{name}"), "");
        assert_eq!(st, 200, "{v}");
        if v["state"] == "running" {
            assert!(Path::new(&format!("/proc/{pid}")).exists(), "{name} runs");
        }
    }
    // Everything removed: nothing is left.
    for (name, _) in &list {
        assert_eq!(
            d.unix("DELETE", &format!("/v1/instances/{name}?force=true"), "")
                .0,
            204
        );
    }
    assert_eq!(pids(&d), vec![]);
    // And no VM of any instance created here runs on unrecorded.
    let ids: Vec<&String> = results.iter().filter_map(|r| r.2.as_ref()).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let running: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("__supervise") && ids.iter().any(|id| c.contains(id.as_str())))
            .collect();
        if running.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left running: {running:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
