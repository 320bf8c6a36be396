//! `volt bench volumes`: what a file operation costs on a volume (`-v`),
//! against the same program natively on the same host directory and in the
//! guest's own in-memory file system.
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;

const FSBENCH_C: &str = include_str!("../../tests/programs/fsbench.c");

#[derive(Args, Debug)]
pub struct VolumesArgs {
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

/// (ns per stat, MB/s read, µs per create-write-close-unlink).
fn measure(cmd: &mut Command) -> Result<[f64; 3]> {
    let out = cmd.stderr(Stdio::inherit()).output().context("run")?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = s
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    match v.as_slice() {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => bail!("unexpected output of {cmd:?}: {s}"),
    }
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

pub fn run(a: VolumesArgs) -> Result<i32> {
    let dir = std::env::temp_dir().join(format!("volt-bench-volumes-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("vol"))?;
    let r = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_in(a: &VolumesArgs, dir: &Path) -> Result<i32> {
    let bin = super::abi::cc(dir, "fsbench", FSBENCH_C)?;
    let volt = std::env::current_exe()?;
    let vol = dir.join("vol");
    let spec = format!("{}:/v", vol.display());
    let mut rows: Vec<(&str, Vec<[f64; 3]>)> = vec![
        ("native, host directory", Vec::new()),
        ("unikernel, volume (-v)", Vec::new()),
        ("unikernel, its own /tmp", Vec::new()),
    ];
    for _ in 0..a.runs.max(1) {
        rows[0].1.push(measure(Command::new(&bin).arg(&vol))?);
        rows[1].1.push(measure(
            Command::new(&volt)
                .args(["run", "-v", &spec])
                .arg(&bin)
                .arg("/v"),
        )?);
        rows[2].1.push(measure(
            Command::new(&volt).arg("run").arg(&bin).arg("/tmp"),
        )?);
    }
    println!(
        "file operations: median (min..max) of {} runs; the same program, ratio against native",
        a.runs
    );
    let native: Vec<f64> = (0..3)
        .map(|k| summary(rows[0].1.iter().map(|r| r[k]).collect()).0)
        .collect();
    for (k, (what, unit)) in [
        ("stat(2)", "ns"),
        ("16 MiB sequential read", "MB/s"),
        ("create+write+close+unlink", "us"),
    ]
    .iter()
    .enumerate()
    {
        println!("  {what}, {unit}:");
        for (label, v) in &rows {
            let (m, lo, hi) = summary(v.iter().map(|r| r[k]).collect());
            println!(
                "    {label:<26} {m:>10.1} ({lo:.1}..{hi:.1})  {:.2}x native",
                m / native[k]
            );
        }
    }
    Ok(0)
}
