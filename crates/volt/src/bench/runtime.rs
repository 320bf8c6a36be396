//! `volt bench runtime`: `ctr run --rm` of a static C hello under a private
//! containerd, with `volt-runtime` against `runc`, interleaved.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::stats::{ms, Summary};
use crate::runtime::containerd::Private;

const HELLO_C: &str = include_str!("../../tests/programs/hello.c");

#[derive(Args, Debug)]
pub struct RuntimeArgs {
    /// Runs of each runtime.
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

pub fn run(a: RuntimeArgs) -> Result<i32> {
    let dir = std::env::temp_dir().join(format!("volt-bench-runtime-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = run_in(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn sh(cmd: &mut Command) -> Result<()> {
    let o = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

fn run_in(a: &RuntimeArgs, dir: &Path) -> Result<i32> {
    let exe = std::env::current_exe()?;
    let runtime = exe.with_file_name("volt-runtime");
    if !runtime.exists() {
        bail!(
            "{} is missing: build it with volt (cargo build -p optivolt-volt)",
            runtime.display()
        );
    }
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context("runc is missing (apt-get install runc)")?;
    // The image: a static hello, built by volt, exported as an OCI archive.
    let hello = super::abi::cc(dir, "hello", HELLO_C)?;
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("rootfs/app"))?;
    std::fs::copy(&hello, ctx.join("rootfs/app/hello"))?;
    std::fs::write(
        ctx.join("Voltfile"),
        "spec: v1\nname: hello\nrootfs: ./rootfs\ncmd: [\"/app/hello\"]\n",
    )?;
    let data = dir.join("data");
    sh(Command::new(&exe)
        .env("VOLT_DATA_DIR", &data)
        .args(["build", "-q", "-t", "hello:1"])
        .arg(&ctx))?;
    let archive = dir.join("hello.tar");
    sh(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}/images:hello:1", data.display()))
        .arg(format!("oci-archive:{}:hello:1", archive.display())))?;
    let c = Private::start(&dir.join("ctd"))?;
    c.import(&archive)?;
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..a.runs.max(1) {
        for (k, rt) in [runtime.as_path(), runc].iter().enumerate() {
            let id = format!("b{k}-{i}");
            let t = Instant::now();
            let o = c.run_with(rt, "hello:1", &id, &[])?;
            let took = t.elapsed();
            if String::from_utf8_lossy(&o.stdout) != "hello, world\n" {
                bail!(
                    "ctr run with {} printed {:?}: {}",
                    rt.display(),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            times[k].push(took);
        }
    }
    let v = Summary::of(&times[0]);
    let r = Summary::of(&times[1]);
    println!("ctr run --rm of a static C hello (image import excluded): median (min..max) of {} runs, ms", a.runs);
    println!(
        "  volt-runtime (unikernel)  {} ({}..{})",
        ms(v.median),
        ms(v.min),
        ms(v.max)
    );
    println!(
        "  runc (container)          {} ({}..{})",
        ms(r.median),
        ms(r.min),
        ms(r.max)
    );
    println!(
        "  ratio volt-runtime / runc {:.2}",
        v.median.as_secs_f64() / r.median.as_secs_f64()
    );
    Ok(0)
}
