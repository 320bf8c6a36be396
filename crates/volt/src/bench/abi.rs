//! `volt bench abi`: system-call and futex round trips in the guest against
//! the same binaries run natively, boot of a Go hello, smallest --memory.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::stats::{ms, Summary};

const SYSCALL_LOOP_C: &str = include_str!("../../tests/programs/syscall_loop.c");
const FUTEX_C: &str = include_str!("../../tests/programs/futex_pingpong.c");
const HELLO_C: &str = include_str!("../../tests/programs/hello.c");
const GO_HELLO: &str = include_str!("../../tests/programs/gohello/main.go");

#[derive(Args, Debug)]
pub struct AbiArgs {
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

pub(super) fn cc(dir: &Path, name: &str, src: &str) -> Result<PathBuf> {
    let s = dir.join(format!("{name}.c"));
    std::fs::write(&s, src)?;
    let out = dir.join(name);
    for compiler in ["musl-gcc", "gcc"] {
        let ok = Command::new(compiler)
            .args(["-static", "-O2", "-pthread", "-o"])
            .arg(&out)
            .arg(&s)
            .stderr(Stdio::null())
            .status();
        if matches!(ok, Ok(st) if st.success()) {
            return Ok(out);
        }
    }
    bail!("cannot compile {name} (install musl-tools)")
}

fn number(cmd: &mut Command) -> Result<f64> {
    let out = cmd.stderr(Stdio::null()).output().context("run")?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("output of {cmd:?}"))
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

pub fn run(a: AbiArgs) -> Result<i32> {
    let dir = std::env::temp_dir().join(format!("volt-bench-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_in(a: &AbiArgs, dir: &Path) -> Result<i32> {
    let volt = std::env::current_exe()?;
    let vrun = |args: &[&std::ffi::OsStr]| {
        let mut c = Command::new(&volt);
        c.arg("run").args(args);
        c
    };
    let sys = cc(dir, "syscall_loop", SYSCALL_LOOP_C)?;
    let fut = cc(dir, "futex_pingpong", FUTEX_C)?;
    println!("system calls and futexes: median (min..max) of {} runs, same binary natively and as a unikernel", a.runs);
    for (label, bin, n) in [
        ("getppid() round trip, ns", &sys, "200000"),
        ("futex ping-pong round trip, ns", &fut, "20000"),
    ] {
        let mut nat = Vec::new();
        let mut uni = Vec::new();
        for _ in 0..a.runs {
            nat.push(number(Command::new(bin).arg(n))?);
            uni.push(number(&mut vrun(&[bin.as_os_str(), n.as_ref()]))?);
        }
        let (nm, nlo, nhi) = median(nat);
        let (um, ulo, uhi) = median(uni);
        println!("  {label:<32} native {nm:>9.1} ({nlo:.1}..{nhi:.1})   unikernel {um:>9.1} ({ulo:.1}..{uhi:.1})   ratio {:.2}x", um / nm);
    }

    // Go hello: whole process, spawn to exit.
    let go_dir = dir.join("gohello");
    std::fs::create_dir_all(&go_dir)?;
    std::fs::write(go_dir.join("main.go"), GO_HELLO)?;
    let go_bin = go_dir.join("gohello");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&go_bin)
        .arg("main.go")
        .current_dir(&go_dir)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", dir.join("gocache"))
        .env("HOME", dir)
        .env("GOFLAGS", "-buildvcs=false")
        .stderr(Stdio::null())
        .status();
    let hello = cc(dir, "hello", HELLO_C)?;
    if matches!(built, Ok(s) if s.success()) {
        let time = |c: &mut Command| -> Result<Duration> {
            let t = Instant::now();
            let st = c.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
            if !st.success() {
                bail!("{c:?} failed");
            }
            Ok(t.elapsed())
        };
        let mut nat = Vec::new();
        let mut uni = Vec::new();
        for _ in 0..(a.runs * 3) {
            nat.push(time(&mut Command::new(&go_bin))?);
            uni.push(time(&mut vrun(&[go_bin.as_os_str()]))?);
        }
        let (n, u) = (Summary::of(&nat), Summary::of(&uni));
        println!("Go hello, whole process, {} runs:", a.runs * 3);
        println!(
            "  native     median {} ms (min {}, max {})",
            ms(n.median),
            ms(n.min),
            ms(n.max)
        );
        println!(
            "  unikernel  median {} ms (min {}, max {})   (target <= 10 ms)",
            ms(u.median),
            ms(u.min),
            ms(u.max)
        );
        println!(
            "  smallest --memory that runs it: {} MiB (target <= 16)",
            smallest(&volt, &go_bin)?
        );
    } else {
        println!("Go hello: skipped (no Go toolchain: apt-get install golang-go)");
    }
    println!(
        "C hello (musl): smallest --memory that runs it: {} MiB (target <= 2)",
        smallest(&volt, &hello)?
    );
    Ok(0)
}

/// The smallest --memory (MiB, multiples of 2) with which the program exits 0.
fn smallest(volt: &Path, bin: &Path) -> Result<u64> {
    let ok = |mib: u64| {
        Command::new(volt)
            .args(["run", "--memory", &format!("{mib}M")])
            .arg(bin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut mib = 2;
    while !ok(mib) {
        mib += 2;
        if mib > 512 {
            bail!("{} does not run even with 512 MiB", bin.display());
        }
    }
    Ok(mib)
}
