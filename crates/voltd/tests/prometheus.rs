//! A real Prometheus server scrapes voltd; its query API has every
//! instance's CPU and memory series.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// GET over TCP from 127.0.0.1:port, the body.
fn get(port: u16, path: &str) -> Option<String> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let (st, b) = exchange(s, "GET", path, "", None);
    (st == 200).then_some(b)
}

#[test]
fn prometheus_scrapes_every_instance() {
    if !kvm("prometheus_scrapes_every_instance") {
        return;
    }
    let Some(prom) = ["/usr/bin/prometheus", "/usr/sbin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("=== SKIPPED prometheus_scrapes_every_instance: no prometheus (apt-get install prometheus) ===");
        return;
    };
    let d = Daemon::new("prometheus");
    for n in ["p1", "p2"] {
        let (st, v) = d.json(
            "POST",
            "/v1/instances",
            &format!(r#"{{"name":"{n}","image":"ticker:1"}}"#),
        );
        assert_eq!(st, 201, "{v}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: voltd\n    static_configs: [{{targets: [\"127.0.0.1:{}\"]}}]\n",
            d.port
        ),
    )
    .unwrap();
    let mut p = Command::new(prom)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            d.dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let found = loop {
        if let Some(b) = get(port, "/api/v1/query?query=volt_instance_cpu_seconds") {
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            let names: Vec<String> = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["metric"]["instance"].as_str().map(String::from))
                .collect();
            // Prometheus's own `instance` label is the target; ours is
            // kept as `exported_instance`.
            let ours: Vec<String> = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["metric"]["exported_instance"].as_str().map(String::from))
                .collect();
            last = b;
            if ours.len() == 2 || names.contains(&"p1".to_string()) {
                break Some(ours);
            }
        }
        if Instant::now() > until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let mem = get(port, "/api/v1/query?query=volt_instance_memory_rss_bytes").unwrap_or_default();
    let _ = p.kill();
    let _ = p.wait();
    let mut ours = found.unwrap_or_else(|| panic!("no series after 60 s: {last}"));
    ours.sort();
    assert_eq!(ours, ["p1", "p2"], "{last}");
    assert!(
        mem.contains("\"exported_instance\":\"p1\"")
            && mem.contains("\"exported_instance\":\"p2\""),
        "{mem}"
    );
}
