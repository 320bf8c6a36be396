//! `volt bench suite`: the same workloads as a process, a container (runc)
//! and a unikernel, side by side in one run — boot, a web server's first
//! answer, throughput and CPU per request, the seed's Python workload, idle
//! cost, density — written as a report ([`report`]). Runs in a network
//! namespace of its own (root); every load is bounded in time and count.
mod microvm;
mod report;
mod runtimes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use report::{Measurement, Results};
use runtimes::{cpu_seconds, pss_mib, rss_mib, Launcher, Runtime};

#[derive(Args, Debug)]
pub struct SuiteArgs {
    /// Where the report goes (README.md, index.html, results.json, results.csv).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Workloads: hello, web, python, idle, density.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hello,web,python,idle,density"
    )]
    pub only: Vec<String>,
    /// Runtimes, in the report's order (missing ones are listed with the reason).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "process,runc,crun,podman,docker,firecracker,qemu,unikernel"
    )]
    pub runtimes: Vec<String>,
    /// A Linux kernel (vmlinux or bzImage) for the microVM runtimes, which
    /// boot it with an initramfs holding the workload as /init.
    #[arg(long, value_name = "VMLINUX")]
    pub kernel: Option<PathBuf>,
    /// Firecracker's binary (not in Debian): the firecracker runtime.
    #[arg(long, value_name = "BIN")]
    pub firecracker: Option<PathBuf>,
    /// QEMU's binary for the qemu runtime (its `microvm` machine).
    #[arg(long, value_name = "BIN", default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// How long a microVM may take to run hello before it counts as not
    /// booting (it is killed, and the report says so).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub microvm_timeout: u64,
    /// Repetitions of each timed start.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Seconds of each wrk round (3 rounds, 2 threads, 32 connections).
    #[arg(long, default_value_t = 5)]
    pub wrk_seconds: u64,
    /// Seconds an idle server is watched.
    #[arg(long, default_value_t = 5)]
    pub idle_seconds: u64,
    /// Density: the memory budget (MiB of summed PSS) and the most instances tried.
    #[arg(long, default_value_t = 1024)]
    pub density_budget: u64,
    #[arg(long, default_value_t = 50)]
    pub density_max: usize,
    /// Iterations of the seed's Python workload (each sleeps 0.5 s).
    #[arg(long, default_value_t = 8)]
    pub python_iterations: usize,
}

/// The memory every runtime is limited to.
const MEMORY: u64 = 256 << 20;

const HELLO_C: &str = include_str!("../../../tests/programs/hello.c");

/// The seed's workload: squares of 5,000 values, a print every 100
/// iterations (here every other, so a bounded run prints), sleep 0.5 s.
const SEED_PY: &str = r#"import sys, time
n = int(sys.argv[1])
for it in range(n):
    values = [i ** 2 for i in range(5000)]
    if it % 2 == 0:
        print(it, sum(values), flush=True)
    time.sleep(0.5)
"#;

struct Ctx<'a> {
    a: &'a SuiteArgs,
    /// The energy model every joule figure comes from.
    energy: crate::energy::Model,
    work: PathBuf,
    results: Vec<Measurement>,
    bar: indicatif::ProgressBar,
}

impl Ctx<'_> {
    /// Joules for `seconds` on one vCPU that used `cpu_seconds` and held
    /// `mem_mib` of memory (the Cloud Carbon Footprint method).
    fn joules(&self, seconds: f64, cpu_seconds: f64, mem_mib: f64) -> f64 {
        self.energy.joules(&crate::energy::Usage {
            seconds,
            vcpus: 1.0,
            cpu_seconds,
            memory_byte_seconds: mem_mib * 1048576.0 * seconds,
        })
    }

    fn put(&mut self, w: &str, metric: &str, unit: &str, rt: &Runtime, v: Vec<f64>, low: bool) {
        if let Some(m) = Measurement::new(w, metric, unit, rt.name(), v, low) {
            self.results.push(m);
        }
    }
}

fn compile_hello(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("hello.c");
    std::fs::write(&src, HELLO_C)?;
    let out = dir.join("hello");
    for cc in [["musl-gcc", "-static"], ["gcc", "-static"]] {
        if Command::new(cc[0])
            .args([cc[1], "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success())
        {
            return Ok(out);
        }
    }
    bail!("cannot compile the C hello (apt-get install musl-tools or gcc)")
}

fn wait_http(addr: SocketAddr, t: Instant) -> Result<Duration> {
    super::net::wait_for_200(addr, t, Duration::from_secs(30))
}

fn hello(cx: &mut Ctx, l: &mut Launcher, bin: &Path) -> Result<()> {
    let mut v = Vec::new();
    for _ in 0..cx.a.runs {
        let t = Instant::now();
        let run = l.start(bin, &["suite".into()], None, MEMORY, true)?;
        let st = match l.limit() {
            None => run.wait()?,
            Some(limit) => match run.wait_at_most(limit)? {
                Some(st) => st,
                None => bail!(
                    "no exit within the {} s limit (killed); the guest's console ended with: {}",
                    limit.as_secs(),
                    l.last_output()
                        .map_or_else(|| "(it printed nothing)".into(), |o| format!("{o:?}"))
                ),
            },
        };
        if !st.success() || !l.printed("hello") {
            match l.last_error() {
                Some(why) => bail!("hello failed under {}: {why}", l.runtime.name()),
                None => bail!("hello failed under {}", l.runtime.name()),
            }
        }
        v.push(t.elapsed().as_secs_f64() * 1e3);
        cx.bar.inc(1);
    }
    cx.put("hello", "boot to exit", "ms", &l.runtime, v, true);
    Ok(())
}

fn serve_args() -> Vec<String> {
    vec!["serve".into(), ":8080".into()]
}

/// wrk against `addr`: (req/s, p50 ms, p99 ms).
fn wrk(addr: SocketAddr, secs: u64) -> Result<(f64, f64, f64)> {
    let o = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://{addr}/"))
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&o.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("wrk printed no rate")?;
    let pct = |p: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let l = l.trim();
            let v = l.strip_prefix(p)?.trim();
            super::net::parse_wrk_time(v).map(|d| d.as_secs_f64() * 1e3)
        })
    };
    Ok((
        rps,
        pct("50%").unwrap_or(f64::NAN),
        pct("99%").unwrap_or(f64::NAN),
    ))
}

fn web(cx: &mut Ctx, l: &mut Launcher, web: &Path, port: u16) -> Result<()> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut first = Vec::new();
    for _ in 0..cx.a.runs {
        let t = Instant::now();
        let r = l.start(web, &serve_args(), Some((port, 8080)), MEMORY, true)?;
        first.push(wait_http(addr, t)?.as_secs_f64() * 1e3);
        drop(r);
        cx.bar.inc(1);
    }
    cx.put(
        "web",
        "start to first HTTP 200",
        "ms",
        &l.runtime,
        first,
        true,
    );
    let r = l.start(web, &serve_args(), Some((port, 8080)), MEMORY, true)?;
    wait_http(addr, Instant::now())?;
    let (mut rps, mut p50, mut p99, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut joules = Vec::new();
    for _ in 0..3 {
        let pids = r.pids();
        let c0 = cpu_seconds(&pids);
        let (x, a, b) = wrk(addr, cx.a.wrk_seconds)?;
        let pids = r.pids();
        let c1 = cpu_seconds(&pids);
        let requests = x * cx.a.wrk_seconds as f64;
        rps.push(x);
        p50.push(a);
        p99.push(b);
        if requests > 0.0 {
            let per = 1000.0 / requests;
            cpu.push((c1 - c0) * 100_000.0 / requests);
            joules.push(cx.joules(
                cx.a.wrk_seconds as f64 * per,
                (c1 - c0) * per,
                pss_mib(&pids),
            ));
        }
        cx.bar.inc(1);
    }
    let rt = l.runtime.clone();
    cx.put("web", "requests per second", "req/s", &rt, rps, false);
    cx.put("web", "latency p50", "ms", &rt, p50, true);
    cx.put("web", "latency p99", "ms", &rt, p99, true);
    cx.put("web", "CPU per 100k requests", "CPU-s", &rt, cpu, true);
    cx.put("web", "energy per 1,000 requests", "J", &rt, joules, true);
    Ok(())
}

fn idle(cx: &mut Ctx, l: &mut Launcher, web: &Path, port: u16) -> Result<()> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let r = l.start(web, &serve_args(), Some((port, 8080)), MEMORY, true)?;
    wait_http(addr, Instant::now())?;
    std::thread::sleep(Duration::from_secs(1));
    let pids = r.pids();
    let c0 = cpu_seconds(&pids);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(cx.a.idle_seconds));
    let pids = r.pids();
    let (secs, used) = (t.elapsed().as_secs_f64(), cpu_seconds(&pids) - c0);
    let cpu_pct = used / secs * 100.0;
    let watts = cx.joules(secs, used, pss_mib(&pids)) / secs;
    let rt = l.runtime.clone();
    cx.put("idle", "host CPU", "%", &rt, vec![cpu_pct], true);
    cx.put("idle", "power", "W", &rt, vec![watts], true);
    cx.put("idle", "RSS", "MiB", &rt, vec![rss_mib(&pids)], true);
    cx.put("idle", "PSS", "MiB", &rt, vec![pss_mib(&pids)], true);
    cx.bar.inc(1);
    Ok(())
}

fn density(cx: &mut Ctx, l: &mut Launcher, web: &Path, base: u16) -> Result<()> {
    let mut running = Vec::new();
    let mut why = "the instance limit";
    for i in 0..cx.a.density_max {
        let port = base + i as u16;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let Ok(r) = l.start(web, &serve_args(), Some((port, 8080)), MEMORY, true) else {
            why = "a start failed";
            break;
        };
        if wait_http(addr, Instant::now()).is_err() {
            why = "an instance did not answer";
            break;
        }
        running.push(r);
        let total: f64 = running.iter().map(|r| pss_mib(&r.pids())).sum();
        if total > cx.a.density_budget as f64 {
            why = "the memory budget";
            break;
        }
        cx.bar.inc(1);
    }
    let total: f64 = running.iter().map(|r| pss_mib(&r.pids())).sum();
    let n = running.len() as f64;
    let rt = l.runtime.clone();
    cx.put(
        "density",
        "idle Go servers started",
        "instances",
        &rt,
        vec![n],
        false,
    );
    if n > 0.0 {
        cx.put(
            "density",
            "PSS per instance",
            "MiB",
            &rt,
            vec![total / n],
            true,
        );
    }
    cx.bar.set_message(format!(
        "density under {}: {n} instances, stopped by {why}",
        rt.name()
    ));
    Ok(())
}

/// CPU seconds a child used, from wait4's rusage (its own threads, the
/// guest's vCPU for the unikernel, and the descendants it reaped: finer
/// than /proc ticks); fails if it did not exit with 0.
fn wait_cpu(pid: u32, what: &str) -> Result<f64> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 writes one into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's PID with valid out-pointers.
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) };
    if rc < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{what} failed");
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// The seed's Python workload. Under runc the bundle's rootfs is what volt
/// gathers for /usr/bin/python3 (its loader, libraries and stdlib) with the
/// script, so all three run the same files.
fn python(cx: &mut Ctx, l: &mut Launcher, script: &Path) -> Result<()> {
    let tree = match l.runtime {
        Runtime::Runc => {
            let app =
                crate::image::pack(Path::new("/usr/bin/python3"), None, &[script.to_path_buf()])?;
            Some(crate::store::tree::Tree::from_cpio(
                &app.rootfs_slices().concat(),
            )?)
        }
        _ => None,
    };
    let volt = std::env::current_exe()?;
    let what = format!("the Python workload under {}", l.runtime.name());
    // Runs `k` iterations; the CPU seconds they took.
    let mut run = |k: usize| -> Result<f64> {
        let argv = [
            "/usr/bin/python3".to_string(),
            script.to_string_lossy().into_owned(),
            k.to_string(),
        ];
        let mut cmd = match l.runtime {
            Runtime::Process => Command::new(&argv[0]),
            Runtime::Unikernel => {
                let mut c = Command::new(&volt);
                c.arg("run").arg("--include").arg(script).arg(&argv[0]);
                c
            }
            Runtime::Crun => bail!("not measured under crun: the Python rootfs bundle is made for runc only"),
            Runtime::Qemu(_) | Runtime::Firecracker(_) => bail!(
                "not measured: the suite boots a microVM with an initramfs of one static binary, and Python needs its rootfs"
            ),
            Runtime::Podman => bail!(
                "not measured: podman's client does not carry the container's CPU time (the container runs under conmon), and the suite reads CPU from wait4"
            ),
            Runtime::Runc => {
                let tree = tree.as_ref().context("no rootfs for runc")?;
                let mut r = l.runc_in_tree(tree, argv.to_vec(), MEMORY)?;
                let cpu = wait_cpu(r.pid(), &what);
                r.reaped();
                return cpu;
            }
        };
        let child = cmd
            .args(&argv[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        wait_cpu(child.id(), &what)
    };
    // One iteration first, unmeasured: the page cache (and for the
    // unikernel the gathered rootfs, made once per program and --include)
    // is then as warm as a user's second run finds it.
    run(1)?;
    let n = cx.a.python_iterations;
    let t = Instant::now();
    let cpu = run(n)?;
    let wall = t.elapsed().as_secs_f64();
    let rt = l.runtime.clone();
    cx.put(
        "python",
        "CPU per iteration",
        "ms",
        &rt,
        vec![cpu * 1e3 / n as f64],
        true,
    );
    cx.put(
        "python",
        "average CPU",
        "%",
        &rt,
        vec![cpu / wall * 100.0],
        true,
    );
    cx.put("python", "wall time", "s", &rt, vec![wall], true);
    // Memory is left out here: the suite reads CPU from wait4 once the
    // run has ended, when no memory is held any more.
    let j = cx.joules(wall / n as f64, cpu / n as f64, 0.0);
    cx.put("python", "energy per iteration", "J", &rt, vec![j], true);
    cx.bar.inc(1);
    Ok(())
}

/// The runtimes and workloads the suite knows.
pub const RUNTIMES: [&str; 8] = [
    "process",
    "runc",
    "crun",
    "podman",
    "docker",
    "firecracker",
    "qemu",
    "unikernel",
];
pub const WORKLOADS: [&str; 5] = ["hello", "web", "python", "idle", "density"];

/// What the user can get wrong, each one line, before anything runs.
fn check_input(a: &SuiteArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(r) = a.runtimes.iter().find(|r| !RUNTIMES.contains(&r.as_str())) {
        bail!("unknown runtime {r:?} (known: {})", RUNTIMES.join(", "));
    }
    if let Some(w) = a.only.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        bail!("unknown workload {w:?} (known: {})", WORKLOADS.join(", "));
    }
    let have_wrk = std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if a.only.iter().any(|w| w == "web") && !have_wrk {
        bail!("the web workload needs wrk (apt-get install wrk), or leave it out with --only");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create the output directory {}", a.out.display()))?;
    let probe = a.out.join(".volt-suite-probe");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into the output directory {}", a.out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub fn run(a: SuiteArgs) -> Result<i32> {
    check_input(&a)?;
    let tmp = crate::store::build::tempdir("suite")?;
    let work = tmp.path().to_path_buf();
    // SAFETY: takes no pointers; moves this process (single-threaded here)
    // and its children into a network namespace of their own.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot create a network namespace ({}); volt bench suite needs root",
            std::io::Error::last_os_error()
        );
    }
    crate::publish::hostnet::set_up("lo").context("bring the namespace's loopback up")?;
    let (rts, mut infos) = runtimes::detect(&a.runtimes, &runtimes::MicroVmArgs::of(&a));
    let want_any = |ws: &[&str]| ws.iter().any(|w| a.only.iter().any(|o| o == w));
    let hello_bin = compile_hello(&work)?;
    let web_bin = if want_any(&["web", "idle", "density"]) {
        super::net::build_goweb(&work)?
    } else {
        PathBuf::new()
    };
    let script = work.join("seed.py");
    std::fs::write(&script, SEED_PY)?;
    let want = |w: &str| a.only.iter().any(|o| o == w);
    let per_rt = (if want("hello") { a.runs } else { 0 })
        + (if want("web") { a.runs + 3 } else { 0 })
        + usize::from(want("idle"))
        + usize::from(want("python"))
        + (if want("density") { a.density_max } else { 0 });
    let bar = indicatif::ProgressBar::with_draw_target(
        Some((per_rt * rts.len()) as u64),
        indicatif::ProgressDrawTarget::stderr_with_hz(5),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let energy = crate::energy::Model::from_env()?;
    let mut cx = Ctx {
        a: &a,
        energy: energy.clone(),
        work: work.clone(),
        results: Vec::new(),
        bar,
    };
    let mut notes = vec![
        format!(
            "Energy: this machine exposes no RAPL counters (/sys/class/powercap is absent, it is itself a VM), so every joule is an estimate with the {} method, {} coefficients ({:.2}-{:.2} W per vCPU, {} W per GB, PUE {}; {}): one vCPU held for the time of the work, the CPU-seconds it used, the PSS it held.",
            energy.name,
            energy.provider,
            energy.cpu.min_watts_per_vcpu,
            energy.cpu.max_watts_per_vcpu,
            energy.memory_watts_per_gb,
            energy.cpu.pue,
            energy.source
        ),
    ];
    for (i, rt) in rts.iter().enumerate() {
        let mut l = Launcher::new(rt.clone(), &cx.work.join(rt.name()))?;
        let base = 18100 + 200 * i as u16;
        let mut phase = |name: &str, cx: &mut Ctx, r: Result<()>| {
            if let Err(e) = r {
                notes.push(format!("{name} under {}: {e:#}", rt.name()));
            }
            cx.bar.set_message(format!("{} {name} done", rt.name()));
        };
        if want("hello") {
            cx.bar.set_message(format!("{}: hello", rt.name()));
            let r = hello(&mut cx, &mut l, &hello_bin);
            phase("hello", &mut cx, r);
        }
        if want("web") {
            cx.bar.set_message(format!("{}: web", rt.name()));
            let r = web(&mut cx, &mut l, &web_bin, base);
            phase("web", &mut cx, r);
        }
        if want("python") {
            cx.bar.set_message(format!("{}: python", rt.name()));
            let r = python(&mut cx, &mut l, &script);
            phase("python", &mut cx, r);
        }
        if want("idle") {
            cx.bar.set_message(format!("{}: idle", rt.name()));
            let r = idle(&mut cx, &mut l, &web_bin, base + 1);
            phase("idle", &mut cx, r);
        }
        if want("density") {
            cx.bar.set_message(format!("{}: density", rt.name()));
            let r = density(&mut cx, &mut l, &web_bin, base + 2);
            phase("density", &mut cx, r);
        }
    }
    cx.bar.finish_and_clear();
    for info in &mut infos {
        if info.skipped.is_none() && !cx.results.iter().any(|m| m.runtime == info.name) {
            let under = format!(" under {}: ", info.name);
            info.skipped = Some(match notes.iter().find(|n| n.contains(&under)) {
                Some(first) => format!("every workload failed; first, {first}"),
                None => "every workload failed (see Not measured)".into(),
            });
        }
    }
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let results = Results {
        started: crate::store::build::now_rfc3339(),
        machine: format!("{cpus} × {machine}, /dev/kvm under PVM"),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        runtimes: infos,
        measurements: cx.results,
        notes,
    };
    results.write(&a.out)?;
    println!(
        "volt bench suite: {} figures; report in {} (index.html, README.md, results.json and its schema, results.csv)",
        results.measurements.len(),
        a.out.display()
    );
    print!("{}", results.markdown());
    Ok(0)
}
