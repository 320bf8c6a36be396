//! `volt bench snapshots`: what snapshots cost and buy, with the Go web
//! server (an image) — `volt snapshot` of the idle server (time inside the
//! monitor, the whole command, the file's size on disk against the
//! monitor's resident memory), and `volt restore` to the first HTTP 200
//! against `volt run` of the same image to its first 200, in the same run;
//! then the memory of a restored and of a booted idle instance.
//! Root (a network namespace of its own) and go.
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::images::{line, ok, volt_cmd};
use super::stats::Summary;

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Snapshots, restores and boots measured.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(a: SnapshotsArgs) -> Result<i32> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (dir, data, _) = super::images::web_image("snapshots")?;
    let wait = super::images::wait_200;

    // The server to save: detached, answered a few requests, then idle.
    let mut c = volt_cmd(&data);
    c.args([
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18091:8080",
        "web:1",
    ]);
    ok(c, "volt run -d")?;
    let at: SocketAddr = "127.0.0.1:18091".parse()?;
    wait(at, Instant::now())?;
    for _ in 0..10 {
        wait(at, Instant::now())?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let db = crate::instance::Db::open(&data)?;
    let monitor = {
        let mut db = db;
        db.find("web")?
            .child
            .map(|c| c.0 as u32)
            .context("web is not running")?
    };
    let rss = crate::procfs::rss_bytes(monitor).unwrap_or(0);

    let snap = dir.path().join("web.snap");
    let (mut inside, mut whole, mut disk) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..a.runs {
        let t = Instant::now();
        let mut c = volt_cmd(&data);
        c.args(["snapshot", "web"]).arg(&snap);
        let out = ok(c, "volt snapshot")?;
        whole.push(t.elapsed());
        // "FILE (N pages, X MiB on disk, T ms)"
        let t_ms: f64 = out
            .rsplit(", ")
            .next()
            .and_then(|s| s.trim().trim_end_matches(" ms)").parse().ok())
            .context("volt snapshot's output")?;
        inside.push(Duration::from_secs_f64(t_ms / 1e3));
        disk =
            std::fs::metadata(&snap).map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)?;
    }
    println!(
        "volt bench snapshots: the idle Go web server (image, 256 MiB guest), ms: median (min..max) of {}",
        a.runs
    );
    line("snapshot, inside the monitor", &Summary::of(&inside), None);
    line("volt snapshot, whole command", &Summary::of(&whole), None);
    println!(
        "  snapshot on disk {:.1} MiB (file length {} MiB); the monitor's RSS {:.1} MiB",
        disk as f64 / 1048576.0,
        std::fs::metadata(&snap)?.len() >> 20,
        rss as f64 / 1048576.0
    );

    let (mut boots, mut restores) = (Vec::new(), Vec::new());
    let (mut rss_boot, mut rss_restore, mut pss_boot, mut pss_restore) = (0, 0, 0, 0);
    let addr: SocketAddr = "127.0.0.1:18092".parse()?;
    for i in 0..a.runs {
        let t = Instant::now();
        let mut c = volt_cmd(&data);
        let child = Killed(
            c.args(["run", "-p", "127.0.0.1:18092:8080", "web:1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        boots.push(wait(addr, t)?);
        if i == 0 {
            std::thread::sleep(Duration::from_millis(300));
            rss_boot = crate::procfs::rss_bytes(child.0.id()).unwrap_or(0);
            pss_boot = crate::procfs::pss_bytes(child.0.id()).unwrap_or(0);
        }
        drop(child);

        let t = Instant::now();
        let mut c = volt_cmd(&data);
        let child = Killed(
            c.arg("restore")
                .arg(&snap)
                .args(["-p", "127.0.0.1:18092:8080"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        restores.push(wait(addr, t)?);
        if i == 0 {
            std::thread::sleep(Duration::from_millis(300));
            rss_restore = crate::procfs::rss_bytes(child.0.id()).unwrap_or(0);
            pss_restore = crate::procfs::pss_bytes(child.0.id()).unwrap_or(0);
        }
    }
    let sb = Summary::of(&boots);
    println!("  to the first HTTP 200 through -p, from the command's start:");
    line("volt run IMAGE (baseline)", &sb, None);
    line("volt restore SNAPSHOT", &Summary::of(&restores), Some(&sb));
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "  idle after its first answer: booted RSS {:.1} MiB, PSS {:.1} MiB; restored RSS {:.1} MiB, PSS {:.1} MiB",
        mib(rss_boot),
        mib(pss_boot),
        mib(rss_restore),
        mib(pss_restore)
    );
    let mut rm = volt_cmd(&data);
    rm.args(["rm", "-f", "web"]);
    ok(rm, "volt rm")?;
    Ok(0)
}
