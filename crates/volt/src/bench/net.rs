//! `volt bench net`: the same Go net/http server as a Linux process on the
//! loopback and as a unikernel behind `-p`, loaded by `wrk` in one run
//! (requests/s, p50/p99 latency, the ratio, host CPU-seconds per 100,000
//! requests, exits and trapped system calls per request from `--stats`);
//! time from `volt run` to the first HTTP answer; host CPU and memory of
//! the idle server unikernel.
//! Runs inside a network namespace of its own (needs root).
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::runstats;
use super::stats::{ms, Summary};
use crate::publish::hostnet;

const GOWEB: &str = include_str!("../../tests/programs/goweb/main.go");

#[derive(Args, Debug)]
pub struct NetArgs {
    /// wrk rounds per server (alternating native and unikernel).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds each wrk round lasts.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections wrk keeps open.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Boots measured for the time to the first HTTP answer.
    #[arg(long, default_value_t = 10)]
    first_runs: usize,
    /// Seconds the idle server is watched for CPU use.
    #[arg(long, default_value_t = 10)]
    idle: u64,
}

pub fn run(a: NetArgs) -> Result<i32> {
    let dir = std::env::temp_dir().join(format!("volt-bench-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

pub(super) fn build_goweb(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("goweb");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("main.go"), GOWEB)?;
    let bin = dir.join("goweb-bin");
    let st = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&bin)
        .arg("main.go")
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .env("HOME", dir)
        .env("GOFLAGS", "-buildvcs=false")
        .status()
        .context("cannot run go (apt-get install golang-go)")?;
    if !st.success() {
        bail!("building the Go web server failed");
    }
    Ok(bin)
}

struct Server(Child);

impl Server {
    /// Asks the Go server to end (`/exit`) and waits for it (10 s at most).
    fn finish(mut self, addr: SocketAddr) -> Result<()> {
        let _ = get_path(addr, "/exit");
        let t = Instant::now();
        while self.0.try_wait()?.is_none() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("the server at {addr} did not end after /exit");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr) -> std::io::Result<()> {
    get_path(addr, "/")
}

fn get_path(addr: SocketAddr, path: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    // A server that ends on the request (/exit) on a tap closes nothing.
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other("bad answer"))
    }
}

/// Polls `addr` until it answers `GET /` with 200; the time since `since`.
/// Gives up after `limit`.
pub(super) fn wait_for_200(addr: SocketAddr, since: Instant, limit: Duration) -> Result<Duration> {
    while get(addr).is_err() {
        if since.elapsed() > limit {
            bail!("no answer from {addr} after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(since.elapsed())
}

/// Where a server's stderr goes: nowhere, or a file (for `--stats`).
fn stderr_to(file: Option<&Path>) -> Result<Stdio> {
    Ok(match file {
        Some(f) => Stdio::from(std::fs::File::create(f)?),
        None => Stdio::null(),
    })
}

/// Starts `cmd` and waits for its first HTTP answer on `addr`: the server
/// and the time that took.
fn start(mut cmd: Command, addr: SocketAddr, stderr: Option<&Path>) -> Result<(Server, Duration)> {
    let err = stderr_to(stderr)?;
    let t = Instant::now();
    let s = Server(
        cmd.stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("start the server")?,
    );
    loop {
        if get(addr).is_ok() {
            return Ok((s, t.elapsed()));
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!("no answer from {addr} after 20 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Starts the unikernel server on a tap of its own (`--net tap:NAME`), gives
/// the host side 10.0.9.1/24 once the tap exists, and waits for its first
/// answer on `addr`.
fn start_on_tap(
    volt: &Path,
    web: &Path,
    tap: &str,
    addr: SocketAddr,
    stderr: &Path,
) -> Result<Server> {
    let s = Server(
        Command::new(volt)
            .args(["run", "--stats", "--memory", "256M", "--net"])
            .arg(format!("tap:{tap}"))
            .args(["--ip", "10.0.9.2/24"])
            .arg(web)
            .args(["serve", ":8080"])
            .stdout(Stdio::null())
            .stderr(stderr_to(Some(stderr))?)
            .spawn()
            .context("start the server on a tap")?,
    );
    // The tap exists once volt has opened it (until then this fails).
    let t = Instant::now();
    while let Err(e) = hostnet::configure(tap, std::net::Ipv4Addr::new(10, 0, 9, 1), 24) {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("cannot give the tap {tap} its host address after 10 s: {e}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    while get(addr).is_err() {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("no answer from {addr} after 20 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(s)
}

/// One wrk round against one server.
#[derive(Clone, Copy, Debug)]
struct Round {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// Requests completed.
    requests: u64,
    /// Host CPU time the server's process used during the round.
    cpu: Duration,
}

/// One wrk round against the server `pid` listening on `addr`.
fn wrk(a: &NetArgs, addr: SocketAddr, pid: u32) -> Result<Round> {
    let cpu0 = cpu_time(pid)?;
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &a.connections.to_string()])
        .args([
            "-d",
            &format!("{}s", a.duration),
            "--latency",
            "--timeout",
            "5s",
        ])
        .arg(format!("http://{addr}/"))
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    let cpu = cpu_time(pid)?.saturating_sub(cpu0);
    let (rps, p50, p99) = parse_wrk(&text)?;
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .with_context(|| format!("no request count in wrk's output: {text}"))?;
    if let Some(e) = text
        .lines()
        .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
    {
        eprintln!("  wrk: {}", e.trim());
    }
    Ok(Round {
        rps,
        p50,
        p99,
        requests,
        cpu,
    })
}

/// Requests/sec and the 50 % and 99 % latencies of `wrk --latency`'s output.
pub(super) fn parse_wrk(text: &str) -> Result<(f64, Duration, Duration)> {
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let pct = |p: &str| -> Result<Duration> {
        let v = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .map(str::trim)
            .with_context(|| format!("no {p} latency in wrk's output"))?;
        parse_wrk_time(v).with_context(|| format!("latency '{v}'"))
    };
    Ok((rps, pct("50%")?, pct("99%")?))
}

/// wrk's "123.45us", "1.20ms", "2.00s".
pub(super) fn parse_wrk_time(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let x: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => x / 1e6,
        "ms" => x / 1e3,
        "s" => x,
        "m" => x * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let s = crate::procfs::cpu_seconds(pid).context("the process is gone")?;
    Ok(Duration::from_secs_f64(s))
}

/// Resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

fn run_in(a: &NetArgs, dir: &Path) -> Result<i32> {
    if a.runs == 0 || a.first_runs == 0 {
        bail!("--runs and --first-runs must be at least 1");
    }
    let volt = std::env::current_exe()?;
    let web = build_goweb(dir)?;
    Command::new("wrk")
        .arg("--version")
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    // A network namespace of our own: the servers, the tap and wrk live
    // there, nothing touches the machine's network.
    // SAFETY: takes no pointers; affects this process (single-threaded now)
    // and the children it starts.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot create a network namespace ({}); volt bench net needs root",
            std::io::Error::last_os_error()
        );
    }
    hostnet::set_up("lo").context("bring the namespace's loopback up")?;

    let native_addr: SocketAddr = "127.0.0.1:18080".parse()?;
    let uk_addr: SocketAddr = "127.0.0.1:18081".parse()?;
    let native_cmd = || {
        let mut c = Command::new(&web);
        c.args(["serve", "127.0.0.1:18080"]);
        c
    };
    let uk_cmd = |port: u16, stats: bool| {
        let mut c = Command::new(&volt);
        c.arg("run")
            .args(stats.then_some("--stats"))
            .args(["--memory", "256M", "-p"])
            .arg(format!("127.0.0.1:{port}:8080"))
            .arg(&web)
            .args(["serve", ":8080"]);
        c
    };

    // Time to the first answer, and the same for the process.
    let mut first_uk = Vec::new();
    let mut first_native = Vec::new();
    for _ in 0..a.first_runs {
        first_native.push(start(native_cmd(), native_addr, None)?.1);
        first_uk.push(start(uk_cmd(18081, false), uk_addr, None)?.1);
    }
    let fu = Summary::of(&first_uk);
    let fnat = Summary::of(&first_native);
    println!(
        "time from start to the first HTTP 200, ms: median (min..max) of {}",
        a.first_runs
    );
    for (label, f) in [
        ("Go server as a process", fnat),
        ("Go server, volt run -p", fu),
    ] {
        println!(
            "  {label:<28} {:>9} ({}..{})",
            ms(f.median),
            ms(f.min),
            ms(f.max)
        );
    }

    // What a boot and one answer cost, as `--stats` counts them: taken
    // away from the loaded servers' counts below.
    let base_file = dir.join("stats-boot.txt");
    let (base, _) = start(uk_cmd(18081, true), uk_addr, Some(&base_file))?;
    base.finish(uk_addr)?;
    let boot_stats = runstats::parse(&std::fs::read_to_string(&base_file)?);

    // Idle CPU and memory of the unikernel server.
    let uk_file = dir.join("stats-relay.txt");
    let (uk, _) = start(uk_cmd(18081, true), uk_addr, Some(&uk_file))?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = uk.0.id();
    let c0 = cpu_time(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(a.idle));
    let cpu = (cpu_time(pid)? - c0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_kib(pid)?;
    let (native, _) = start(native_cmd(), native_addr, None)?;
    let native_rss = rss_kib(native.0.id())?;
    println!("idle server over {} s: host CPU {:.2}% of a core; RSS of the monitor {:.1} MiB (the Go process alone: {:.1} MiB)",
        a.idle, cpu, rss as f64 / 1024.0, native_rss as f64 / 1024.0);

    // The same unikernel reached on its tap's address, without the `-p`
    // relay: what the relay costs.
    let tap_addr: SocketAddr = "10.0.9.2:8080".parse()?;
    let tap_file = dir.join("stats-tap.txt");
    let direct = start_on_tap(&volt, &web, "ovbench0", tap_addr, &tap_file)?;

    // Load.
    let mut rn = Vec::new();
    let mut ru = Vec::new();
    let mut rd = Vec::new();
    for _ in 0..a.runs {
        rn.push(wrk(a, native_addr, native.0.id())?);
        ru.push(wrk(a, uk_addr, pid)?);
        rd.push(wrk(a, tap_addr, direct.0.id())?);
    }
    let rss_loaded = rss_kib(pid)?;
    direct.finish(tap_addr)?;
    uk.finish(uk_addr)?;
    drop(native);
    println!(
        "wrk -t2 -c{} -d{}s, {} rounds each (alternating): median (min..max)",
        a.connections, a.duration, a.runs
    );
    println!(
        "  {:<28} {:>22} {:>22} {:>22} {:>18}",
        "", "requests/s", "p50 latency, ms", "p99 latency, ms", "CPU-s / 100k req"
    );
    for (label, v) in [
        ("Go server as a process", &rn),
        ("Go server, volt run -p", &ru),
        ("Go server, on its tap", &rd),
    ] {
        let (r, rlo, rhi) = med(v, |x| x.rps);
        let (p50, p50lo, p50hi) = med(v, |x| x.p50.as_secs_f64() * 1e3);
        let (p99, p99lo, p99hi) = med(v, |x| x.p99.as_secs_f64() * 1e3);
        let (c, clo, chi) = med(v, cpu_per_100k);
        println!(
            "  {label:<28} {:>22} {:>22} {:>22} {:>18}",
            format!("{r:.0} ({rlo:.0}..{rhi:.0})"),
            format!("{p50:.3} ({p50lo:.3}..{p50hi:.3})"),
            format!("{p99:.3} ({p99lo:.3}..{p99hi:.3})"),
            format!("{c:.2} ({clo:.2}..{chi:.2})"),
        );
    }
    let ratio = med(&ru, |x| x.rps).0 / med(&rn, |x| x.rps).0;
    println!("  unikernel / process requests/s: {ratio:.2}x (target >= 0.8x)");
    let direct_ratio = med(&rd, |x| x.rps).0 / med(&rn, |x| x.rps).0;
    println!("  unikernel on its tap (no relay) / process requests/s: {direct_ratio:.2}x");
    let cpu_ratio = med(&ru, cpu_per_100k).0 / med(&rn, cpu_per_100k).0;
    println!("  unikernel / process host CPU per request: {cpu_ratio:.2}x");
    for (label, file, rounds) in [
        ("volt run -p", &uk_file, &ru),
        ("on its tap", &tap_file, &rd),
    ] {
        let served: u64 = rounds.iter().map(|r| r.requests).sum();
        let after = runstats::parse(&std::fs::read_to_string(file)?);
        match runstats::per_unit(&after, &boot_stats, served as f64) {
            Some(c) => {
                let kinds: Vec<String> = c
                    .exits_by_kind
                    .iter()
                    .filter(|(_, &v)| v >= 0.0005)
                    .map(|(k, v)| format!("{k} {v:.3}"))
                    .collect();
                println!(
                    "  per request, {label}: {:.2} system calls, {:.4} trapped; {:.3} exits ({})",
                    c.calls,
                    c.trapped_calls,
                    c.exits,
                    kinds.join(", ")
                );
            }
            None => println!("  per request, {label}: no --stats report from the server"),
        }
    }
    println!(
        "  RSS of the monitor after the load: {:.1} MiB",
        rss_loaded as f64 / 1024.0
    );
    Ok(0)
}

/// Median, minimum and maximum of `f` over the rounds.
fn med(v: &[Round], f: fn(&Round) -> f64) -> (f64, f64, f64) {
    let mut x: Vec<f64> = v.iter().map(f).collect();
    x.sort_by(|a, b| a.total_cmp(b));
    (x[x.len() / 2], x[0], x[x.len() - 1])
}

/// Host CPU-seconds the server used per 100,000 requests in a round.
fn cpu_per_100k(r: &Round) -> f64 {
    r.cpu.as_secs_f64() / r.requests.max(1) as f64 * 1e5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_times_parse() {
        assert_eq!(parse_wrk_time("250.00us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_wrk_time("1.50ms"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_wrk_time("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_wrk_time("abc"), None);
    }
}
