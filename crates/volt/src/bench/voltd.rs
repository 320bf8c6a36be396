//! `volt bench voltd`: the control plane's costs — create → running over
//! the API for N instances (p50/p99), voltd's own memory and idle CPU with
//! them all running, and one Prometheus scrape.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

const TICKER_C: &str = include_str!("../../tests/programs/ticker.c");

#[derive(Args, Debug)]
pub struct VoltdArgs {
    /// Instances to create.
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Seconds of idle to measure voltd's CPU over.
    #[arg(long, default_value_t = 10)]
    idle: u64,
}

pub(super) fn call(sock: &Path, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut s = UnixStream::connect(sock).context("connect to voltd")?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: voltd\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((
        status,
        out.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    ))
}

fn rss_kib(pid: u32) -> Option<u64> {
    crate::procfs::rss_bytes(pid).map(|b| b / 1024)
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

pub fn run(a: VoltdArgs) -> Result<i32> {
    let dir = std::env::temp_dir().join(format!("volt-bench-voltd-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ctx/rootfs/app"))?;
    let r = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_in(a: &VoltdArgs, dir: &Path) -> Result<i32> {
    let volt = std::env::current_exe()?;
    let voltd = volt.with_file_name("voltd");
    if !voltd.exists() {
        bail!(
            "{} is missing (cargo build -p optivolt-voltd)",
            voltd.display()
        );
    }
    let prog = super::abi::cc(dir, "ticker", TICKER_C)?;
    std::fs::copy(&prog, dir.join("ctx/rootfs/app/ticker"))?;
    std::fs::write(
        dir.join("ctx/Voltfile"),
        "spec: v1\nname: ticker\nrootfs: ./rootfs\ncmd: [\"/app/ticker\", \"0\"]\nmemory: 16M\n",
    )?;
    let data = dir.join("data");
    let st = Command::new(&volt)
        .env("VOLT_DATA_DIR", &data)
        .args(["build", "-q", "-t", "ticker:1"])
        .arg(dir.join("ctx"))
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("volt build failed");
    }
    let sock = dir.join("voltd.sock");
    let mut d = Command::new(&voltd)
        .env("VOLT_DATA_DIR", &data)
        .arg("--listen")
        .arg(format!("unix://{}", sock.display()))
        .stdin(Stdio::null())
        .spawn()?;
    let until = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&sock).is_err() {
        if Instant::now() > until {
            bail!("voltd did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_empty = rss_kib(d.id()).unwrap_or(0);
    let result = (|| -> Result<()> {
        let mut lat = Vec::new();
        for n in 0..a.instances {
            let t = Instant::now();
            let (st, b) = call(
                &sock,
                "POST",
                "/v1/instances",
                &format!(r#"{{"name":"b{n:03}","image":"ticker:1"}}"#),
            )?;
            if st != 201 {
                bail!("create {n}: {st} {b}");
            }
            lat.push(t.elapsed());
        }
        let t0 = Instant::now();
        let c0 = crate::procfs::cpu_seconds(d.id()).unwrap_or(0.0);
        std::thread::sleep(Duration::from_secs(a.idle));
        let c1 = crate::procfs::cpu_seconds(d.id()).unwrap_or(0.0);
        let idle_pct = (c1 - c0) / t0.elapsed().as_secs_f64() * 100.0;
        let t = Instant::now();
        let (st, text) = call(&sock, "GET", "/metrics", "")?;
        let scrape = t.elapsed();
        let t = Instant::now();
        let (_, _) = call(&sock, "GET", "/v1/instances", "")?;
        let list = t.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "voltd with {} instances of a C ticker (16 MiB each), Unix socket",
            a.instances
        );
        println!("  create -> running (POST /v1/instances): p50 {:.1} ms, p99 {:.1} ms, min {:.1}, max {:.1}",
            ms(pct(&lat, 0.5)), ms(pct(&lat, 0.99)), ms(pct(&lat, 0.0)), ms(pct(&lat, 1.0)));
        println!(
            "  GET /v1/instances: {:.1} ms; GET /metrics: {:.1} ms ({} bytes, status {st})",
            ms(list),
            ms(scrape),
            text.len()
        );
        println!(
            "  voltd RSS: {} KiB empty, {} KiB with the instances",
            rss_empty,
            rss_kib(d.id()).unwrap_or(0)
        );
        println!("  voltd idle CPU over {} s: {:.2}%", a.idle, idle_pct);
        Ok(())
    })();
    // Everything goes, whatever happened.
    if let Ok((_, list)) = call(&sock, "GET", "/v1/instances", "") {
        if let Ok(serde_json::Value::Array(v)) = serde_json::from_str(&list) {
            for i in v {
                let _ = call(
                    &sock,
                    "DELETE",
                    &format!(
                        "/v1/instances/{}?force=true",
                        i["id"].as_str().unwrap_or("")
                    ),
                    "",
                );
            }
        }
    }
    let _ = d.kill();
    let _ = d.wait();
    result.map(|_| 0)
}
