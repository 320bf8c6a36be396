//! `volt compose up|down|ps|logs|stop|start`: the services of a compose
//! file as instances on a network of the project's own.
//!
//! Each service is one detached instance, `PROJECT-SERVICE-1`, started with
//! `volt run -d` in dependency order on the network `PROJECT_default`. Every
//! service gets its address up front (the network's first addresses, in the
//! file's order), so each guest's /etc/hosts names all the others, whatever
//! order they start in. Images with `build` are built by `volt build` as
//! `PROJECT-SERVICE:latest`. Named volumes are `PROJECT_NAME`.
pub mod file;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::instance::{Db, Instance, State};
use file::Project;

#[derive(Args, Debug)]
pub struct ComposeArgs {
    /// The compose file (default: compose.yaml, compose.yml,
    /// docker-compose.yaml or docker-compose.yml here).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The project's name (default: the file's `name`, else its directory's).
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project: Option<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Subcommand, Debug)]
pub enum ComposeCommand {
    /// Build what needs building, make the network, start every service.
    Up {
        /// Start them and return (else follow their logs until Ctrl-C,
        /// then stop them).
        #[arg(short, long)]
        detach: bool,
        /// Build images with `build` even if they exist.
        #[arg(long)]
        build: bool,
    },
    /// Stop and remove the services and the network (-v: the named volumes too).
    Down {
        #[arg(short, long)]
        volumes: bool,
    },
    /// List the services' instances.
    Ps {
        /// table or json.
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: crate::images::Output,
    },
    /// Print the services' output, each line after its instance's name.
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Only these services.
        services: Vec<String>,
    },
    /// Stop the services.
    Stop,
    /// Start the stopped services again.
    Start,
}

/// The instance name of a service.
fn instance_name(p: &Project, service: &str) -> String {
    format!("{}-{service}-1", p.name)
}

fn network_name(p: &Project) -> String {
    format!("{}_default", p.name)
}

fn image_of(p: &Project, service: &str) -> String {
    let s = &p.file.services[service];
    match (&s.image, &s.build) {
        (Some(i), None) => i.clone(),
        (Some(i), Some(_)) => i.clone(),
        (None, _) => format!("{}-{service}:latest", p.name),
    }
}

/// Runs volt itself; its one error line becomes this call's error.
fn volt(args: &[String]) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find volt's own executable")?;
    let out = std::process::Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run volt")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().last().unwrap_or("failed");
        bail!("{}", line.strip_prefix("volt: ").unwrap_or(line));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(x: &str) -> String {
    x.to_string()
}

/// The instances of the project's services that exist, by service.
fn instances(p: &Project) -> Result<Vec<(String, Instance)>> {
    let mut db = Db::open_default()?;
    let all = db.list()?;
    Ok(p.order
        .iter()
        .filter_map(|svc| {
            let n = instance_name(p, svc);
            all.iter()
                .find(|i| i.name == n)
                .map(|i| (svc.clone(), i.clone()))
        })
        .collect())
}

fn up(p: &Project, detach: bool, build: bool) -> Result<i32> {
    // Images first: a failed build starts nothing.
    let store = crate::store::Store::open_default()?;
    for svc in &p.order {
        let spec = &p.file.services[svc];
        let Some(b) = &spec.build else { continue };
        let tag = image_of(p, svc);
        if !build && store.find(&tag)?.is_some() {
            continue;
        }
        let (context, f) = match b {
            file::Build::Context(c) => (c.clone(), None),
            file::Build::Full { context, file } => (context.clone(), file.clone()),
        };
        let mut args = vec![s("build"), s("-q"), s("-t"), tag.clone()];
        if let Some(f) = f {
            args.extend([s("-f"), p.dir.join(&context).join(f).display().to_string()]);
        }
        args.push(p.dir.join(&context).display().to_string());
        eprintln!("Building {svc}");
        volt(&args).map_err(|e| anyhow::anyhow!("service {svc}: build: {e}"))?;
    }
    for svc in &p.order {
        let img = image_of(p, svc);
        if store.find(&img)?.is_none() {
            bail!("service {svc}: no image {img} (volt pull {img}, or give it a build)");
        }
    }
    // The network, and an address for every service.
    let net = network_name(p);
    let mut db = crate::network::db()?;
    let network = match crate::network::find(&mut db, &net)? {
        Some(n) => n,
        None => crate::network::create(&mut db, &net, None)?,
    };
    let base = u32::from(network.subnet);
    let addr: Vec<(String, Ipv4Addr)> = p
        .file
        .services
        .keys()
        .enumerate()
        .map(|(i, svc)| (svc.clone(), Ipv4Addr::from(base + 2 + i as u32)))
        .collect();
    for v in p.file.volumes.keys() {
        crate::volumes::create(
            &format!("{}_{v}", p.name),
            &[("project".into(), p.name.clone())],
        )?;
    }
    let existing = instances(p)?;
    for svc in &p.order {
        let name = instance_name(p, svc);
        match existing.iter().find(|(s2, _)| s2 == svc) {
            Some((_, i)) if matches!(i.state, State::Running | State::Restarting) => {
                eprintln!("{name} is running");
                continue;
            }
            Some(_) => {
                volt(&[s("start"), name.clone()])
                    .map_err(|e| anyhow::anyhow!("service {svc}: {e}"))?;
                eprintln!("Started {name}");
                continue;
            }
            None => {}
        }
        let args = run_args(p, svc, &addr)?;
        volt(&args).map_err(|e| anyhow::anyhow!("service {svc}: {e}"))?;
        eprintln!("Started {name}");
    }
    if detach {
        return Ok(0);
    }
    follow_until_interrupted(p)
}

/// `volt run -d …` for one service.
fn run_args(p: &Project, svc: &str, addr: &[(String, Ipv4Addr)]) -> Result<Vec<String>> {
    let spec = &p.file.services[svc];
    let name = instance_name(p, svc);
    let ip = addr
        .iter()
        .find(|(s2, _)| s2 == svc)
        .map(|(_, a)| *a)
        .context("no address")?;
    let mut a = vec![s("run"), s("-d"), s("--name"), name.clone()];
    a.extend([
        s("--network"),
        network_name(p),
        s("--ip"),
        format!("{ip}/24"),
    ]);
    a.extend([s("--network-alias"), svc.to_string()]);
    for (other, oip) in addr.iter().filter(|(o, _)| o != svc) {
        a.extend([s("--add-host"), format!("{other}:{oip}")]);
        a.extend([
            s("--add-host"),
            format!("{}:{oip}", instance_name(p, other)),
        ]);
    }
    if let Some(r) = spec.restart_policy()? {
        a.extend([s("--restart"), r]);
    }
    if let Some(m) = &spec.mem_limit {
        a.extend([s("--memory"), m.text()]);
    }
    for e in spec.env() {
        a.extend([s("--env"), e]);
    }
    for port in &spec.ports {
        a.extend([s("--publish"), port.text()]);
    }
    for v in &spec.volumes {
        let m = crate::volumes::parse(v)?;
        let src = match &m.source {
            crate::volumes::Source::Host(h) => p.dir.join(h).display().to_string(),
            crate::volumes::Source::Named(n) => format!("{}_{n}", p.name),
        };
        let mut spec = format!("{src}:{}", m.guest);
        if m.readonly {
            spec.push_str(":ro");
        }
        a.extend([s("--volume"), spec]);
    }
    a.push(image_of(p, svc));
    if let Some(words) = spec.command_words() {
        a.extend(words);
    }
    Ok(a)
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// `up` in the foreground: the services' logs until they all end or the
/// user presses Ctrl-C (then they are stopped, as docker compose does).
fn follow_until_interrupted(p: &Project) -> Result<i32> {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    logs(p, &[], true, || {
        INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
    })?;
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!("Stopping");
        stop(p)?;
    }
    Ok(0)
}

/// Prints the services' logs, `NAME | line`; with `follow`, until every
/// instance has ended or `stop()` says so.
fn logs(p: &Project, only: &[String], follow: bool, stop: impl Fn() -> bool) -> Result<i32> {
    let db = Db::open_default()?;
    let list: Vec<(String, Instance)> = instances(p)?
        .into_iter()
        .filter(|(svc, _)| only.is_empty() || only.contains(svc))
        .collect();
    let w = list.iter().map(|(_, i)| i.name.len()).max().unwrap_or(0);
    let mut at: Vec<u64> = vec![0; list.len()];
    loop {
        let mut printed = false;
        for (k, (_, i)) in list.iter().enumerate() {
            let (entries, end) = crate::instance::logs::read_from(&db.dir(&i.id), at[k]);
            at[k] = end;
            let mut o = std::io::stdout().lock();
            for e in &entries {
                writeln!(o, "{:<w$} | {}", i.name, e.l)?;
                printed = true;
            }
            o.flush()?;
        }
        if !follow || stop() {
            return Ok(0);
        }
        let running = list.iter().any(|(_, i)| {
            db.get(&i.id)
                .ok()
                .flatten()
                .is_some_and(|now| crate::instance::alive(now.supervisor))
        });
        if !running && !printed {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(p: &Project) -> Result<()> {
    for (svc, i) in instances(p)?.iter().rev() {
        if matches!(i.state, State::Running | State::Restarting) {
            volt(&[s("stop"), i.name.clone()])
                .map_err(|e| anyhow::anyhow!("service {svc}: {e}"))?;
            eprintln!("Stopped {}", i.name);
        }
    }
    Ok(())
}

fn down(p: &Project, volumes: bool) -> Result<i32> {
    for (svc, i) in instances(p)?.iter().rev() {
        volt(&[s("rm"), s("-f"), i.name.clone()])
            .map_err(|e| anyhow::anyhow!("service {svc}: {e}"))?;
        eprintln!("Removed {}", i.name);
    }
    let net = network_name(p);
    let mut db = crate::network::db()?;
    if crate::network::find(&mut db, &net)?.is_some() {
        crate::network::remove(&mut db, &net)?;
        eprintln!("Removed network {net}");
    }
    if volumes {
        for v in p.file.volumes.keys() {
            let n = format!("{}_{v}", p.name);
            if crate::volumes::data_of(&n).exists() {
                volt(&[s("volume"), s("rm"), n.clone()])?;
                eprintln!("Removed volume {n}");
            }
        }
    }
    Ok(0)
}

fn ps(p: &Project, output: crate::images::Output) -> Result<i32> {
    let list = instances(p)?;
    let mut out = std::io::stdout().lock();
    if output == crate::images::Output::Json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|(svc, i)| {
                serde_json::json!({
                    "name": i.name, "service": svc, "id": i.id, "image": i.image,
                    "state": i.state.as_str(), "ports": i.ports, "restarts": i.restarts,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    let w = list
        .iter()
        .map(|(_, i)| i.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<w$}  {:<16}  {:<10}  PORTS",
        "NAME", "SERVICE", "STATE"
    )?;
    for (svc, i) in &list {
        writeln!(
            out,
            "{:<w$}  {:<16}  {:<10}  {}",
            i.name,
            svc,
            i.state.as_str(),
            i.ports.join(",")
        )?;
    }
    Ok(0)
}

pub fn compose(a: ComposeArgs) -> Result<i32> {
    let p = file::load(a.file.as_deref(), a.project.as_deref())?;
    match a.command {
        ComposeCommand::Up { detach, build } => up(&p, detach, build),
        ComposeCommand::Down { volumes } => down(&p, volumes),
        ComposeCommand::Ps { output } => ps(&p, output),
        ComposeCommand::Logs { follow, services } => {
            for svc in &services {
                if !p.file.services.contains_key(svc) {
                    bail!("no service {svc:?} in the compose file");
                }
            }
            logs(&p, &services, follow, || false)
        }
        ComposeCommand::Stop => stop(&p).map(|_| 0),
        ComposeCommand::Start => {
            for (svc, i) in instances(&p)? {
                if !matches!(i.state, State::Running | State::Restarting) {
                    volt(&[s("start"), i.name.clone()])
                        .map_err(|e| anyhow::anyhow!("service {svc}: {e}"))?;
                    eprintln!("Started {}", i.name);
                }
            }
            Ok(0)
        }
    }
}
