//! `volt bench services`: voltd's services with the Go web server (an
//! image), in a network namespace of the bench's own — the wake from
//! standby to the first byte through the balancer (against a request to a
//! ready replica, same run); the balancer's req/s and latency under wrk
//! against wrk hitting the one replica directly on its network (rounds
//! alternate); scale-out from 1 to 8 replicas under load; host memory per
//! replica running idle and per replica in standby. Root; go, wrk, voltd.
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::images::line;
use super::stats::Summary;
use super::voltd::call;

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Wakes from standby measured.
    #[arg(long, default_value_t = 50)]
    pub wakes: usize,
    /// wrk rounds per target (alternating), and their length in seconds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Connections wrk keeps open.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
}

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Time from connecting to the first byte of the answer to GET /.
fn first_byte(addr: SocketAddr) -> Result<Duration> {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    let d = t.elapsed();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    if !rest.starts_with(b"TTP/1.1 200") {
        bail!("not a 200: {}", String::from_utf8_lossy(&rest));
    }
    Ok(d)
}

fn json(sock: &Path, method: &str, path: &str, body: &str) -> Result<serde_json::Value> {
    let (st, b) = call(sock, method, path, body)?;
    if !(200..300).contains(&st) {
        bail!("{method} {path}: {st} {b}");
    }
    Ok(serde_json::from_str(&b).unwrap_or_default())
}

fn wait_until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let t = Instant::now();
    while !f()? {
        if t.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(t.elapsed())
}

struct Wrk {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn wrk(netns: Option<&str>, url: &str, a: &ServicesArgs) -> Result<Wrk> {
    let mut c = match netns {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", n, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    let out = c
        .args(["-t2", "-c", &a.connections.to_string(), "-d"])
        .arg(format!("{}s", a.seconds))
        .args(["--latency", "--timeout", "5s", url])
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    if let Some(e) = text
        .lines()
        .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
    {
        eprintln!("  wrk against {url}: {}", e.trim());
    }
    let (rps, p50, p99) = super::net::parse_wrk(&text)?;
    Ok(Wrk { rps, p50, p99 })
}

pub fn run(a: ServicesArgs) -> Result<i32> {
    if a.wakes == 0 || a.rounds == 0 || a.seconds == 0 {
        bail!("--wakes, --rounds and --seconds must be at least 1");
    }
    let voltd = std::env::current_exe()?.with_file_name("voltd");
    if !voltd.exists() {
        bail!(
            "{} is missing (cargo build --release --workspace)",
            voltd.display()
        );
    }
    let (dir, data, _) = super::images::web_image("services")?;
    let sock = dir.path().join("voltd.sock");
    // VOLT_BENCH_VOLTD_LOG=FILE keeps voltd's log (info: each wake's parts).
    let log = match std::env::var_os("VOLT_BENCH_VOLTD_LOG") {
        Some(f) => Stdio::from(std::fs::File::create(f)?),
        None => Stdio::null(),
    };
    let d = Daemon(
        Command::new(&voltd)
            .env("VOLT_DATA_DIR", &data)
            .arg("--listen")
            .arg(format!("unix://{}", sock.display()))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    wait_until("voltd", Duration::from_secs(20), || {
        Ok(std::os::unix::net::UnixStream::connect(&sock).is_ok())
    })?;
    let r = measure(&a, &sock, &data, d.0.id());
    // Everything goes with the services.
    for s in ["wake", "lb", "auto"] {
        let _ = call(&sock, "DELETE", &format!("/v1/services/{s}"), "");
    }
    r
}

fn measure(a: &ServicesArgs, sock: &Path, data: &Path, voltd: u32) -> Result<i32> {
    // 1. Wakes: a service that goes to standby after 200 ms idle.
    json(
        sock,
        "POST",
        "/v1/services",
        r#"{"name": "wake", "image": "web:1", "ports": ["127.0.0.1:18101:8080/http"], "scale_to_zero": "200ms"}"#,
    )?;
    let addr: SocketAddr = "127.0.0.1:18101".parse()?;
    let (mut warm, mut woken) = (Vec::new(), Vec::new());
    for _ in 0..a.wakes {
        warm.push(first_byte(addr)?);
        wait_until("standby", Duration::from_secs(20), || {
            Ok(json(sock, "GET", "/v1/services/wake", "")?["standby"] == 1)
        })?;
        woken.push(first_byte(addr)?);
    }
    let v = json(sock, "GET", "/v1/services/wake", "")?;
    let inst = json(sock, "GET", "/v1/instances/wake-1", "")?;
    let snap = data
        .join("instances")
        .join(inst["id"].as_str().unwrap_or(""))
        .join("standby.snap");
    wait_until("standby", Duration::from_secs(20), || {
        Ok(json(sock, "GET", "/v1/services/wake", "")?["standby"] == 1)
    })?;
    let snap_disk = std::fs::metadata(&snap)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap_or(0);
    let pct = |v: &[Duration], p: f64| {
        let mut s = v.to_vec();
        s.sort();
        s[((s.len() as f64 - 1.0) * p).round() as usize]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "volt bench services: the Go web server (image, 256 MiB guest) behind voltd's balancer, ms: median (min..max)"
    );
    println!(
        "  {} wakes from standby, GET / to the first byte through the balancer:",
        a.wakes
    );
    let sw = Summary::of(&warm);
    line("a ready replica (baseline)", &sw, None);
    line("woken from standby", &Summary::of(&woken), Some(&sw));
    println!(
        "  woken: p50 {:.2} ms, p99 {:.2} ms; voltd's own wake (restore to the replica answering): p50 {} ms, p99 {} ms",
        ms(pct(&woken, 0.5)),
        ms(pct(&woken, 0.99)),
        v["wakes"]["p50_ms"],
        v["wakes"]["p99_ms"]
    );

    // 2. The balancer against the replica itself, wrk rounds alternating.
    let lb = json(
        sock,
        "POST",
        "/v1/services",
        r#"{"name": "lb", "image": "web:1", "ports": ["127.0.0.1:18102:8080/http"]}"#,
    )?;
    let ip = lb["replicas"][0]["ip"].as_str().unwrap_or("").to_string();
    let netns = crate::network::setup::netns_name("svc-lb");
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    let cpu0 = crate::procfs::cpu_seconds(voltd).unwrap_or(0.0);
    let mut lb_secs = 0.0;
    for _ in 0..a.rounds {
        let t = Instant::now();
        via.push(wrk(None, "http://127.0.0.1:18102/", a)?);
        lb_secs += t.elapsed().as_secs_f64();
        direct.push(wrk(Some(&netns), &format!("http://{ip}:8080/"), a)?);
    }
    let cpu = crate::procfs::cpu_seconds(voltd).unwrap_or(0.0) - cpu0;
    let med = |v: &[Wrk], f: fn(&Wrk) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        (x[x.len() / 2], x[0], x[x.len() - 1])
    };
    println!(
        "  wrk, {} connections, {} s x {} rounds each, HTTP keep-alive (req/s median (min..max); latency median of rounds):",
        a.connections, a.seconds, a.rounds
    );
    let (d_rps, d_lo, d_hi) = med(&direct, |w| w.rps);
    let (v_rps, v_lo, v_hi) = med(&via, |w| w.rps);
    let lat = |v: &[Wrk]| {
        (
            med(v, |w| w.p50.as_secs_f64() * 1e3).0,
            med(v, |w| w.p99.as_secs_f64() * 1e3).0,
        )
    };
    let (dp50, dp99) = lat(&direct);
    let (vp50, vp99) = lat(&via);
    println!(
        "    the replica directly (baseline) {d_rps:>9.0} ({d_lo:.0}..{d_hi:.0})  p50 {dp50:.2} ms  p99 {dp99:.2} ms"
    );
    println!(
        "    through the balancer            {v_rps:>9.0} ({v_lo:.0}..{v_hi:.0})  p50 {vp50:.2} ms  p99 {vp99:.2} ms  ({:.2}x req/s, +{:.2} ms p50)",
        v_rps / d_rps,
        vp50 - dp50
    );
    println!(
        "    voltd's CPU while balancing: {:.0} % of one core",
        cpu / lb_secs * 100.0
    );

    // 3. Scale-out from 1 to 8 under load.
    json(
        sock,
        "POST",
        "/v1/services",
        r#"{"name": "auto", "image": "web:1", "ports": ["127.0.0.1:18103:8080/http"], "autoscale": "min=1,max=8,target-inflight=4,cooldown=10m"}"#,
    )?;
    let load = std::thread::spawn(|| {
        Command::new("wrk")
            .args([
                "-t2",
                "-c64",
                "-d60s",
                "--timeout",
                "5s",
                "http://127.0.0.1:18103/",
            ])
            .output()
    });
    let t = wait_until("8 ready replicas", Duration::from_secs(55), || {
        Ok(json(sock, "GET", "/v1/services/auto", "")?["ready"] == 8)
    });
    match &t {
        Ok(t) => println!("  scale-out under wrk (64 connections, target 4 in flight each): 1 -> 8 ready replicas in {:.2} s", t.as_secs_f64()),
        Err(e) => println!("  scale-out under wrk: {e}"),
    }
    let out = load.join().map_err(|_| anyhow::anyhow!("wrk thread"))??;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(l) = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        println!("    wrk during scale-out: {}", l.trim());
    } else {
        println!("    wrk during scale-out: every answer 2xx");
    }

    // 4. Host memory: an idle running replica against one in standby.
    std::thread::sleep(Duration::from_secs(1));
    let v = json(sock, "GET", "/v1/services/auto", "")?;
    let mut pss = Vec::new();
    for r in v["replicas"].as_array().into_iter().flatten() {
        let i = json(
            sock,
            "GET",
            &format!("/v1/instances/{}", r["instance"].as_str().unwrap_or("")),
            "",
        )?;
        let mut sum = 0;
        for p in [&i["pid"], &i["supervisor_pid"]] {
            if let Some(p) = p.as_u64() {
                sum += crate::procfs::pss_bytes(p as u32).unwrap_or(0);
            }
        }
        pss.push(sum);
    }
    pss.sort();
    let mib = |b: u64| b as f64 / 1048576.0;
    let per_idle = pss.get(pss.len() / 2).copied().unwrap_or(0);
    let avail = std::fs::read_to_string("/proc/meminfo")?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    println!(
        "  density: an idle replica holds {:.1} MiB PSS (monitor + supervisor, median of {}); one in standby holds no memory and {:.2} MiB on disk",
        mib(per_idle),
        pss.len(),
        mib(snap_disk)
    );
    if let Some(fit) = avail.checked_div(per_idle) {
        println!(
            "    so this machine's {:.1} GiB available would hold about {fit} idle replicas (memory-bound estimate, not started); standby ones cost disk only, and a network's /24 holds 253",
            avail as f64 / (1u64 << 30) as f64,
        );
    }
    Ok(0)
}
