//! `volt bench snapshots`: what snapshots cost and buy, with the Go web
//! server (an image) — `volt snapshot` of the idle server (time inside the
//! monitor, the whole command, the file's size on disk against the
//! monitor's resident memory), and `volt restore` to the first HTTP 200
//! against `volt run` of the same image to its first 200, in the same run;
//! then the memory of a restored and of a booted idle instance.
//! Root (a network namespace of its own) and go.
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::stats::{ms, Summary};
use crate::publish::hostnet;

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Snapshots, restores and boots measured.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
}

fn volt_cmd(data: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap_or_else(|_| "volt".into()));
    c.env("VOLT_DATA_DIR", data);
    c
}

fn ok(mut c: Command, what: &str) -> Result<String> {
    let o = c.output().with_context(|| format!("cannot run {what}"))?;
    if !o.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn row(what: &str, s: &Summary, base: Option<&Summary>) {
    let ratio = base
        .map(|b| {
            format!(
                "  ({:.2}x)",
                s.median.as_secs_f64() / b.median.as_secs_f64()
            )
        })
        .unwrap_or_default();
    println!(
        "  {what:<40} {} ({}..{}){ratio}",
        ms(s.median),
        ms(s.min),
        ms(s.max)
    );
}

pub fn run(a: SnapshotsArgs) -> Result<i32> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let dir = crate::store::build::tempdir("bench-snapshots")?;
    // SAFETY: takes no pointers; moves this process (single-threaded here)
    // and its children into a network namespace of their own.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot create a network namespace ({}); volt bench snapshots needs root",
            std::io::Error::last_os_error()
        );
    }
    hostnet::set_up("lo").context("bring the namespace's loopback up")?;
    let data = dir.path().join("data");
    let web = super::net::build_goweb(dir.path())?;
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("rootfs/app"))?;
    std::fs::copy(&web, ctx.join("rootfs/app/web"))?;
    std::fs::write(
        ctx.join("Voltfile"),
        "spec: v1\nname: web\nrootfs: ./rootfs\ncmd: [/app/web, serve, \":8080\"]\nmemory: 256M\n",
    )?;
    let mut b = volt_cmd(&data);
    b.args(["build", "-q", "-t", "web:1"]).arg(&ctx);
    ok(b, "volt build")?;
    let wait =
        |addr: SocketAddr, t: Instant| super::net::wait_for_200(addr, t, Duration::from_secs(20));

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
    row("snapshot, inside the monitor", &Summary::of(&inside), None);
    row("volt snapshot, whole command", &Summary::of(&whole), None);
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
    row("volt run IMAGE (baseline)", &sb, None);
    row("volt restore SNAPSHOT", &Summary::of(&restores), Some(&sb));
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
