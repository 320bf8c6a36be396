//! `volt bench boot`: (a) `volt run` of a static hello, (b) the same binary
//! exec'd as a plain process, (c) the bare-KVM floor, alternating, in one run;
//! then the `--timing` breakdown of the unikernel.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::stats::{ms, Summary};

const HELLO_C: &str = include_str!("../../tests/programs/hello.c");
const FLOOR_C: &str = include_str!("kvm_floor.c");

#[derive(Args, Debug)]
pub struct BootArgs {
    /// Runs of each contender.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Runs with --timing for the breakdown.
    #[arg(long, default_value_t = 30)]
    timing_runs: usize,
    /// Static binary to boot (default: a musl hello built now).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Guest memory for the unikernel runs (volt run's default).
    #[arg(long, default_value = "512M")]
    memory: String,
}

fn compile(dir: &Path, name: &str, source: &str, compilers: &[&[&str]]) -> Result<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source)?;
    let out = dir.join(name);
    for cc in compilers {
        let st = Command::new(cc[0])
            .args(&cc[1..])
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .stderr(Stdio::null())
            .status();
        if matches!(st, Ok(s) if s.success()) {
            return Ok(out);
        }
    }
    bail!(
        "cannot compile {name}: none of {:?} worked (install musl-tools or gcc)",
        compilers.iter().map(|c| c[0]).collect::<Vec<_>>()
    )
}

fn time_once(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    let st = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("spawn")?;
    let d = t.elapsed();
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(d)
}

pub fn run(a: BootArgs) -> Result<i32> {
    if a.runs < 3 {
        bail!("--runs must be at least 3");
    }
    let dir = std::env::temp_dir().join(format!("volt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(a: &BootArgs, dir: &Path) -> Result<i32> {
    let hello = match &a.binary {
        Some(b) => b.clone(),
        None => compile(
            dir,
            "hello",
            HELLO_C,
            &[&["musl-gcc", "-static", "-O2"], &["gcc", "-static", "-O2"]],
        )?,
    };
    let floor = compile(
        dir,
        "kvm-floor",
        FLOOR_C,
        &[&["gcc", "-O2"], &["cc", "-O2"]],
    )?;
    let volt = std::env::current_exe()?;
    let volt_cmd = || {
        let mut c = Command::new(&volt);
        c.arg("run").arg("--memory").arg(&a.memory).arg(&hello);
        c
    };
    // The same run on the library OS built without the network.
    let nonet_cmd = || {
        let mut c = Command::new(&volt);
        c.args(["run", "--net", "none", "--memory"])
            .arg(&a.memory)
            .arg(&hello);
        c
    };

    // Warm up the page cache and the KVM module.
    for _ in 0..5 {
        time_once(&mut volt_cmd())?;
        time_once(&mut nonet_cmd())?;
        time_once(&mut Command::new(&hello))?;
        time_once(&mut Command::new(&floor))?;
    }
    let mut samples: [Vec<Duration>; 4] = Default::default();
    for i in 0..a.runs {
        // Rotate the order so that no contender always runs after the same one.
        for k in 0..4 {
            let which = (i + k) % 4;
            let d = match which {
                0 => time_once(&mut volt_cmd())?,
                1 => time_once(&mut Command::new(&hello))?,
                2 => time_once(&mut Command::new(&floor))?,
                _ => time_once(&mut nonet_cmd())?,
            };
            samples[which].push(d);
        }
    }
    let names = [
        "volt run (unikernel)",
        "native process",
        "bare-KVM floor",
        "volt run --net none",
    ];
    let s: Vec<Summary> = samples.iter().map(|v| Summary::of(v)).collect();
    println!(
        "boot: whole process, spawn to exit, {} runs each, alternating ({})",
        a.runs,
        hello.display()
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>10}",
        "", "median ms", "min ms", "max ms", "mean ms"
    );
    for (n, x) in names.iter().zip(&s) {
        println!(
            "  {:<22} {:>10} {:>10} {:>10} {:>10}",
            n,
            ms(x.median),
            ms(x.min),
            ms(x.max),
            ms(x.mean)
        );
    }
    let r = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    println!(
        "  ratio volt/floor (median)  {:.2}x   (target <= 2x)",
        r(s[0].median, s[2].median)
    );
    println!(
        "  ratio volt/native (median) {:.2}x",
        r(s[0].median, s[1].median)
    );

    // The breakdown, from `--timing`.
    let mut phases: BTreeMap<usize, (String, Vec<f64>)> = BTreeMap::new();
    for _ in 0..a.timing_runs {
        let out = volt_cmd().arg("--timing").env_remove("x").output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let mut idx = 0;
        for line in err
            .lines()
            .skip_while(|l| !l.starts_with("volt timing"))
            .skip(1)
        {
            let mut it = line.split_whitespace();
            if let (Some(name), Some(Ok(v))) = (it.next(), it.next().map(str::parse::<f64>)) {
                phases
                    .entry(idx)
                    .or_insert_with(|| (name.to_string(), Vec::new()))
                    .1
                    .push(v);
                idx += 1;
            }
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "timing breakdown: median µs since the monitor started, {} runs of --timing",
        a.timing_runs
    );
    let mut prev = 0.0;
    let mut at = BTreeMap::new();
    for (_, (name, v)) in phases.iter_mut() {
        let m = med(v);
        println!("  {name:<12} {m:>9.1}  (+{:.1})", m - prev);
        at.insert(name.clone(), m);
        prev = m;
    }
    if let (Some(e), Some(app)) = (at.get("libos_entry"), at.get("app_entry")) {
        println!(
            "  library OS entry -> application entry: {:.1} µs (target <= 200 µs)",
            app - e
        );
    }
    println!(
        "  ratio --net none/floor (median) {:.2}x",
        r(s[3].median, s[2].median)
    );
    println!(
        "guest image (library OS ELF): {} bytes with the network, {} bytes without (--net none) (target <= 1 MiB)",
        crate::LIBOS.len(),
        crate::LIBOS_NONET.len()
    );
    let small = Command::new(&volt)
        .args(["run", "--memory", "4M"])
        .arg(&hello)
        .stdout(Stdio::null())
        .status()?;
    println!(
        "boots with --memory 4M: {}",
        if small.success() { "yes" } else { "NO" }
    );
    Ok(0)
}
