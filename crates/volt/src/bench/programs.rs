//! `volt bench programs`: Debian's own programs as unikernels against the
//! same programs as processes, side by side in one run: Python's start to
//! its first line, Python's http.server start to its first 200, the memory
//! (PSS) of idle instances of the Go web server and of http.server, and
//! redis-benchmark GET/SET. Runs inside a network namespace of its own
//! (needs root); a part whose program is missing says so and is skipped.
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::net::build_goweb;
use super::stats::{ms, Summary};
use crate::publish::hostnet;

const PYTHON: &str = "/usr/bin/python3";

#[derive(Args, Debug)]
pub struct ProgramsArgs {
    /// Runs of each timed measurement (alternating native and unikernel).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Idle instances started for the memory measurement.
    #[arg(long, default_value_t = 20)]
    instances: usize,
    /// Requests per redis-benchmark round.
    #[arg(long, default_value_t = 100_000)]
    requests: u32,
    /// redis-benchmark rounds per server.
    #[arg(long, default_value_t = 3)]
    redis_runs: usize,
}

pub fn run(a: ProgramsArgs) -> Result<i32> {
    if a.runs < 3 || a.instances == 0 || a.redis_runs == 0 {
        bail!("--runs must be at least 3, --instances and --redis-runs at least 1");
    }
    let dir = std::env::temp_dir().join(format!("volt-bench-programs-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// A child killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Result<Running> {
    Ok(Running(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {cmd:?}"))?,
    ))
}

fn volt_cmd(args: &[&str]) -> Result<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("run").args(args);
    Ok(c)
}

fn line(label: &str, s: &Summary) {
    println!(
        "  {label:<34} {:>9} ({}..{})",
        ms(s.median),
        ms(s.min),
        ms(s.max)
    );
}

fn run_in(a: &ProgramsArgs, dir: &Path) -> Result<i32> {
    // SAFETY: takes no pointers; affects this process (single-threaded now)
    // and the children it starts.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot create a network namespace ({}); volt bench programs needs root",
            std::io::Error::last_os_error()
        );
    }
    hostnet::set_up("lo").context("bring the namespace's loopback up")?;
    if Path::new(PYTHON).exists() {
        python_start(a)?;
        python_first_200(a, dir)?;
    } else {
        println!("python: skipped ({PYTHON} is missing: apt-get install python3)");
    }
    memory(a, dir)?;
    if Path::new("/usr/bin/redis-server").exists() && Path::new("/usr/bin/redis-benchmark").exists()
    {
        redis(a)?;
    } else {
        println!("redis: skipped (apt-get install redis-server redis-tools)");
    }
    Ok(0)
}

/// Python's start to its first line, as a process and as a unikernel.
fn python_start(a: &ProgramsArgs) -> Result<()> {
    let args = ["-c", "print(1)"];
    let time = |c: &mut Command| -> Result<Duration> {
        let t = Instant::now();
        let out = c.stdin(Stdio::null()).stderr(Stdio::null()).output()?;
        let d = t.elapsed();
        if out.stdout != b"1\n" {
            bail!("{c:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
        }
        Ok(d)
    };
    // The first run packs the image into the cache; it is not measured.
    time(volt_cmd(&[PYTHON])?.args(args))?;
    side_by_side(
        a.runs,
        "python3 -c 'print(1)', start to exit with its line",
        "as a unikernel (image cached)",
        " (target <= 2x)",
        || time(Command::new(PYTHON).args(args)),
        || time(volt_cmd(&[PYTHON])?.args(args)),
    )
}

/// Times `native` and `unikernel` `runs` times each, alternating, and
/// prints both and their ratio under `title`.
fn side_by_side(
    runs: usize,
    title: &str,
    uk_label: &str,
    target: &str,
    mut native: impl FnMut() -> Result<Duration>,
    mut unikernel: impl FnMut() -> Result<Duration>,
) -> Result<()> {
    let (mut n, mut u) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        n.push(native()?);
        u.push(unikernel()?);
    }
    let (n, u) = (Summary::of(&n), Summary::of(&u));
    println!("{title}, ms: median (min..max) of {runs}");
    line("as a process", &n);
    line(uk_label, &u);
    println!(
        "  unikernel / process: {:.2}x{target}",
        u.median.as_secs_f64() / n.median.as_secs_f64()
    );
    Ok(())
}

/// One GET of `/`: whether it answered 200 (HTTP/1.0 or 1.1).
fn get(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let ok = buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200");
    ok.then_some(())
        .ok_or_else(|| std::io::Error::other("not a 200"))
}

/// Starts `cmd` and times its first HTTP 200 on `addr`.
fn first_200(cmd: &mut Command, addr: SocketAddr) -> Result<Duration> {
    let t = Instant::now();
    let _s = spawn(cmd)?;
    while get(addr).is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("no answer from {addr} after 30 s");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(t.elapsed())
}

fn python_first_200(a: &ProgramsArgs, dir: &Path) -> Result<()> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), b"hello\n")?;
    let w = www.to_str().context("path")?;
    let native = |port: &str| {
        let mut c = Command::new(PYTHON);
        c.args([
            "-m",
            "http.server",
            port,
            "--bind",
            "127.0.0.1",
            "--directory",
            w,
        ]);
        c
    };
    let uk = || -> Result<Command> {
        volt_cmd(&[
            "-p",
            "127.0.0.1:18001:8000",
            "--include",
            w,
            PYTHON,
            "-m",
            "http.server",
            "8000",
            "--directory",
            w,
        ])
    };
    first_200(&mut uk()?, "127.0.0.1:18001".parse()?)?; // packs the image
    side_by_side(
        a.runs,
        "python3 -m http.server, start to the first HTTP 200",
        "as a unikernel, through -p",
        "",
        || first_200(&mut native("18000"), "127.0.0.1:18000".parse()?),
        || first_200(&mut uk()?, "127.0.0.1:18001".parse()?),
    )
}

/// PSS of `pid`, KiB.
fn pss_kib(pid: u32) -> u64 {
    crate::procfs::pss_bytes(pid).unwrap_or(0) / 1024
}

/// Starts `n` copies of what `make` builds, waits until `ready` says each
/// is up (or `settle` passes), and returns their mean PSS in KiB.
fn mean_pss(n: usize, make: &dyn Fn(usize) -> Result<Command>, settle: Duration) -> Result<f64> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(spawn(&mut make(i)?)?);
    }
    std::thread::sleep(settle);
    for r in &mut all {
        if let Some(st) = r.0.try_wait()? {
            bail!("an instance ended early ({st})");
        }
    }
    let total: u64 = all.iter().map(|r| pss_kib(r.0.id())).sum();
    Ok(total as f64 / n as f64)
}

fn memory(a: &ProgramsArgs, dir: &Path) -> Result<()> {
    let n = a.instances;
    println!("PSS per idle instance, {n} instances at once, MiB (/proc/PID/smaps_rollup)");
    let mib = |k: f64| k / 1024.0;
    match build_goweb(dir) {
        Ok(web) => {
            let w = web.to_str().context("path")?.to_owned();
            let native = mean_pss(
                n,
                &|i| {
                    let mut c = Command::new(&w);
                    c.args(["serve", &format!("127.0.0.1:{}", 19000 + i)]);
                    Ok(c)
                },
                Duration::from_secs(3),
            )?;
            let uk = mean_pss(
                n,
                &|_| volt_cmd(&[&w, "serve", ":8080"]),
                Duration::from_secs(4),
            )?;
            println!(
                "  {:<34} process {:>6.2}   unikernel {:>6.2}   (target <= 3 MiB)",
                "Go net/http server",
                mib(native),
                mib(uk)
            );
        }
        Err(e) => println!("  Go web server: skipped ({e:#})"),
    }
    if Path::new(PYTHON).exists() {
        let native = mean_pss(
            n,
            &|i| {
                let mut c = Command::new(PYTHON);
                c.args([
                    "-m",
                    "http.server",
                    &(19100 + i).to_string(),
                    "--bind",
                    "127.0.0.1",
                ]);
                Ok(c)
            },
            Duration::from_secs(4),
        )?;
        let uk = mean_pss(
            n,
            &|_| volt_cmd(&[PYTHON, "-m", "http.server", "8000"]),
            Duration::from_secs(8),
        )?;
        println!(
            "  {:<34} process {:>6.2}   unikernel {:>6.2}   (target <= 8 MiB)",
            "Python http.server",
            mib(native),
            mib(uk)
        );
    }
    Ok(())
}

/// One redis-benchmark round against `port`: (SET, GET) requests/s.
fn redis_round(a: &ProgramsArgs, port: u16) -> Result<(f64, f64)> {
    let out = Command::new("timeout")
        .args(["300", "redis-benchmark", "-q", "-t", "set,get", "-p"])
        .arg(port.to_string())
        .args(["-n", &a.requests.to_string()])
        .output()
        .context("redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` prints progress lines ending in \r, then "SET: 12345.67 requests per second, …".
    let rate = |what: &str| -> Result<f64> {
        text.split(['\r', '\n'])
            .filter_map(|l| l.trim().strip_prefix(what))
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .next_back()
            .with_context(|| format!("no {what} rate in: {text}"))
    };
    if !out.status.success() {
        bail!("redis-benchmark failed: {text}");
    }
    Ok((rate("SET:")?, rate("GET:")?))
}

fn wait_redis(port: u16) -> Result<()> {
    let t = Instant::now();
    loop {
        let pong = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output()
            .map(|o| o.stdout.starts_with(b"PONG"))
            .unwrap_or(false);
        if pong {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("redis on port {port} never answered");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn redis(a: &ProgramsArgs) -> Result<()> {
    let _native = spawn(Command::new("/usr/bin/redis-server").args([
        "--port",
        "16379",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]))?;
    let _uk = spawn(&mut volt_cmd(&[
        "-p",
        "127.0.0.1:16380:6379",
        "/usr/bin/redis-server",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
    ])?)?;
    wait_redis(16379)?;
    wait_redis(16380)?;
    let (mut n, mut u) = (Vec::new(), Vec::new());
    for _ in 0..a.redis_runs {
        n.push(redis_round(a, 16379)?);
        u.push(redis_round(a, 16380)?);
    }
    let med = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        (x[x.len() / 2], x[0], x[x.len() - 1])
    };
    println!(
        "redis-benchmark -n {} -t set,get, {} rounds each: requests/s, median (min..max)",
        a.requests, a.redis_runs
    );
    for (op, f) in [
        ("SET", (|x: &(f64, f64)| x.0) as fn(&(f64, f64)) -> f64),
        ("GET", |x| x.1),
    ] {
        let (nm, nlo, nhi) = med(&n, f);
        let (um, ulo, uhi) = med(&u, f);
        println!(
            "  {op}: process {nm:.0} ({nlo:.0}..{nhi:.0})   unikernel via -p {um:.0} ({ulo:.0}..{uhi:.0})   {:.2}x (target >= 0.8x)",
            um / nm
        );
    }
    Ok(())
}
