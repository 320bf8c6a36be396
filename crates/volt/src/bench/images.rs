//! `volt bench images`: the costs of images and instances, each against a
//! baseline measured in the same run — `volt run -d IMAGE` and `volt run
//! IMAGE` to the Go web server's first HTTP 200 against `volt run` of the
//! bare binary; `volt ps -a` with hundreds of instances; `volt pull` of a
//! 50 MiB image from a local docker-registry against `skopeo copy` of it.
//! Root (a network namespace of its own), go, skopeo and docker-registry.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::stats::{ms, Summary};
use crate::publish::hostnet;

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Boots measured for each way of starting the web server.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Instances recorded for the `ps` measurement (a tenth of them running).
    #[arg(long, default_value_t = 500)]
    pub instances: usize,
    /// Pulls measured (volt and skopeo each).
    #[arg(long, default_value_t = 5)]
    pub pulls: usize,
}

pub(super) fn volt_cmd(data: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap_or_else(|_| "volt".into()));
    c.env("VOLT_DATA_DIR", data);
    c
}

pub(super) fn ok(mut c: Command, what: &str) -> Result<String> {
    let o = c.output().with_context(|| format!("cannot run {what}"))?;
    if !o.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

pub(super) fn wait_200(addr: SocketAddr, t: Instant) -> Result<Duration> {
    super::net::wait_for_200(addr, t, Duration::from_secs(20))
}

pub(super) fn line(what: &str, s: &Summary, base: Option<&Summary>) {
    let ratio = base
        .map(|b| {
            format!(
                "  ({:+.3} ms, {:.2}x)",
                (s.median.as_secs_f64() - b.median.as_secs_f64()) * 1e3,
                s.median.as_secs_f64() / b.median.as_secs_f64()
            )
        })
        .unwrap_or_default();
    println!(
        "  {what:<34} {} ({}..{}){ratio}",
        ms(s.median),
        ms(s.min),
        ms(s.max)
    );
}

/// What the Go web server benchmarks share: a scratch directory, a network
/// namespace of their own (this process and its children), the server
/// built, and an image `web:1` of it (256 MiB guest) in a store of its own.
/// Returns the directory, the store's data directory and the binary.
pub(super) fn web_image(bench: &str) -> Result<(crate::store::build::TempDir, PathBuf, PathBuf)> {
    let dir = crate::store::build::tempdir(&format!("bench-{bench}"))?;
    // SAFETY: takes no pointers; moves this process (single-threaded here)
    // and its children into a network namespace of their own.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot create a network namespace ({}); volt bench {bench} needs root",
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
    Ok((dir, data, web))
}

pub fn run(a: ImagesArgs) -> Result<i32> {
    if a.runs == 0 || a.pulls == 0 {
        bail!("--runs and --pulls must be at least 1");
    }
    let (dir, data, web) = web_image("images")?;

    println!("volt bench images: time to the Go web server's first HTTP 200 through -p, ms: median (min..max) of {}", a.runs);
    let addr: SocketAddr = "127.0.0.1:18090".parse()?;
    let mut bare = Vec::new();
    let mut image = Vec::new();
    let mut detached = Vec::new();
    for i in 0..a.runs {
        let t = Instant::now();
        let mut c = volt_cmd(&data);
        let mut child = c
            .args(["run", "--memory", "256M", "-p", "127.0.0.1:18090:8080"])
            .arg(&web)
            .args(["serve", ":8080"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        bare.push(wait_200(addr, t)?);
        let _ = child.kill();
        let _ = child.wait();

        let t = Instant::now();
        let mut c = volt_cmd(&data);
        let mut child = c
            .args(["run", "-p", "127.0.0.1:18090:8080", "web:1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        image.push(wait_200(addr, t)?);
        let _ = child.kill();
        let _ = child.wait();

        let name = format!("bench-{i}");
        let t = Instant::now();
        let mut c = volt_cmd(&data);
        c.args([
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            "127.0.0.1:18090:8080",
            "web:1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
        detached.push(wait_200(addr, t)?);
        let mut rm = volt_cmd(&data);
        rm.args(["rm", "-f", &name]);
        ok(rm, "volt rm")?;
    }
    let sb = Summary::of(&bare);
    line("volt run BINARY (baseline)", &sb, None);
    line("volt run IMAGE", &Summary::of(&image), Some(&sb));
    line("volt run -d IMAGE", &Summary::of(&detached), Some(&sb));

    ps_bench(&a, &data, dir.path())?;
    pull_bench(&a, &data, dir.path())?;
    Ok(0)
}

fn ps_bench(a: &ImagesArgs, data: &Path, dir: &Path) -> Result<()> {
    // A program that ends at once, and one that sleeps: a tenth run.
    let c_src = dir.join("nap.c");
    std::fs::write(
        &c_src,
        "#include <unistd.h>\n#include <stdlib.h>\nint main(int c,char**v){if(c>1)sleep(atoi(v[1]));return 0;}\n",
    )?;
    let nap = dir.join("nap");
    let mut cc = Command::new("musl-gcc");
    cc.args(["-static", "-O2", "-o"]).arg(&nap).arg(&c_src);
    if ok(cc, "musl-gcc").is_err() {
        let mut cc = Command::new("gcc");
        cc.args(["-static", "-O2", "-o"]).arg(&nap).arg(&c_src);
        ok(cc, "gcc")?;
    }
    let running = a.instances / 10;
    let t = Instant::now();
    for i in 0..a.instances {
        let mut c = volt_cmd(data);
        c.args(["run", "-d", "--memory", "8M", "--name", &format!("ps-{i}")])
            .arg(&nap);
        if i < running {
            c.arg("600");
        }
        ok(c, "volt run -d")?;
    }
    let made = t.elapsed();
    // Let the short ones end.
    std::thread::sleep(Duration::from_secs(1));
    let mut all = Vec::new();
    let mut up = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut c = volt_cmd(data);
        c.args(["ps", "-a"]);
        let out = ok(c, "volt ps -a")?;
        all.push(t.elapsed());
        if out.lines().count() != a.instances + 1 {
            bail!(
                "volt ps -a listed {} lines for {} instances",
                out.lines().count(),
                a.instances
            );
        }
        let t = Instant::now();
        let mut c = volt_cmd(data);
        c.arg("ps");
        ok(c, "volt ps")?;
        up.push(t.elapsed());
    }
    println!(
        "volt ps with {} instances ({running} running), ms: median (min..max) of 10 ({} started in {:.1} s, {:.1} ms each)",
        a.instances,
        a.instances,
        made.as_secs_f64(),
        made.as_secs_f64() * 1e3 / a.instances.max(1) as f64
    );
    line("volt ps -a (every instance)", &Summary::of(&all), None);
    line("volt ps (the running ones)", &Summary::of(&up), None);
    let ids: Vec<String> = (0..a.instances).map(|i| format!("ps-{i}")).collect();
    for chunk in ids.chunks(100) {
        let mut c = volt_cmd(data);
        c.args(["rm", "-f"]).args(chunk);
        ok(c, "volt rm -f")?;
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn pull_bench(a: &ImagesArgs, data: &Path, dir: &Path) -> Result<()> {
    let port = free_port()?;
    let reg = dir.join("registry");
    std::fs::create_dir_all(reg.join("data"))?;
    std::fs::write(
        reg.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            reg.join("data").display()
        ),
    )?;
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(reg.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run docker-registry (apt-get install docker-registry)")?;
    let res = (|| -> Result<()> {
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t.elapsed() > Duration::from_secs(20) {
                bail!("the registry did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // 50 MiB that do not compress: random bytes, and the web server.
        let ctx = dir.join("big");
        std::fs::create_dir_all(ctx.join("rootfs/app"))?;
        let mut blob = vec![0u8; 50 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for c in blob.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        std::fs::write(ctx.join("rootfs/app/data"), &blob)?;
        std::fs::copy(dir.join("goweb-bin"), ctx.join("rootfs/app/web"))?;
        std::fs::write(
            ctx.join("Voltfile"),
            "spec: v1\nrootfs: ./rootfs\ncmd: [/app/web, serve, \":8080\"]\n",
        )?;
        let image = format!("localhost:{port}/big:1");
        let mut b = volt_cmd(data);
        b.args(["build", "-q", "-t", &image]).arg(&ctx);
        ok(b, "volt build")?;
        let mut p = volt_cmd(data);
        p.args(["push", "-q", &image]);
        ok(p, "volt push")?;
        let mut volt_pulls = Vec::new();
        let mut skopeo_pulls = Vec::new();
        for i in 0..a.pulls {
            let mut rmi = volt_cmd(data);
            rmi.args(["rmi", &image]);
            ok(rmi, "volt rmi")?;
            let t = Instant::now();
            let mut p = volt_cmd(data);
            p.args(["pull", "-q", &image]);
            ok(p, "volt pull")?;
            volt_pulls.push(t.elapsed());
            let dest = dir.join(format!("skopeo-{i}"));
            let t = Instant::now();
            let mut s = Command::new("skopeo");
            s.args(["copy", "-q", "--src-tls-verify=false"])
                .arg(format!("docker://{image}"))
                .arg(format!("oci:{}:big", dest.display()));
            ok(s, "skopeo copy (apt-get install skopeo)")?;
            skopeo_pulls.push(t.elapsed());
            let _ = std::fs::remove_dir_all(&dest);
        }
        println!(
            "pull of a 50 MiB image from docker-registry on 127.0.0.1, ms: median (min..max) of {}",
            a.pulls
        );
        let sk = Summary::of(&skopeo_pulls);
        line("skopeo copy docker:// oci: (baseline)", &sk, None);
        line(
            "volt pull (with its rootfs archive)",
            &Summary::of(&volt_pulls),
            Some(&sk),
        );
        Ok(())
    })();
    let _ = registry.kill();
    let _ = registry.wait();
    res
}
