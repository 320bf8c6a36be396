//! The instance commands: `volt run -d`, `ps`, `logs`, `stop`, `start`,
//! `restart`, `rm`, `inspect` (see [`crate::instance`] for how instances
//! are kept and supervised).
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::images::Output;
use crate::instance::{alive, logs, new_id, now, Db, Instance, State};
use crate::restart::Policy;
use crate::run::RunArgs;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Also instances that are not running.
    #[arg(short, long)]
    pub all: bool,
    /// Print only the IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// table or json.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing what the program writes, until the instance ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines written in the last DURATION (e.g. 30s, 5m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Show when each line was written.
    #[arg(short, long)]
    pub timestamps: bool,
    /// The instance (name or ID prefix).
    pub instance: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before killing.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Instances (name or ID prefix).
    #[arg(required = true)]
    pub instances: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    /// Instances (name or ID prefix).
    #[arg(required = true)]
    pub instances: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Stop running instances first (killing them).
    #[arg(short, long)]
    pub force: bool,
    /// Instances (name or ID prefix).
    #[arg(required = true)]
    pub instances: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 30s, 5m, 2h)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("invalid duration {s:?} (e.g. 30s, 5m, 2h)")),
    };
    Ok(Duration::from_secs(n * mult))
}

/// Starts the supervisor of instance `id` in a session of its own.
fn spawn_supervisor(db: &Db, id: &str) -> Result<()> {
    let exe = crate::volt_exe()?;
    let dir = db.dir(id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))
        .context("cannot open the supervisor's log")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__supervise")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    // No pre_exec hook, so std can use posix_spawn (a vfork) rather than
    // copying this process's page tables with fork, which costs
    // milliseconds in voltd; the supervisor calls setsid itself.
    cmd.spawn().context("cannot start the supervisor")?;
    Ok(())
}

/// Waits until instance `id` has started (or ended); what it became.
fn wait_started(db: &mut Db, id: &str) -> Result<Option<Instance>> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Some(i) = db.get(id)? {
            if i.child.is_some() || matches!(i.state, State::Exited | State::Dead) {
                return Ok(Some(i));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    db.get(id)
}

/// Records the instance and starts its supervisor: its ID.
pub fn detach_id(a: &RunArgs, image: Option<String>) -> Result<String> {
    let what = image.unwrap_or_else(|| a.binary().to_string_lossy().into_owned());
    detach_instance(
        a.name.as_deref(),
        what,
        a.foreground_args(),
        a.restart.unwrap_or(Policy::No),
        a.publish.clone(),
    )
}

/// Records an instance that runs `volt run ARGS` (or `volt restore …` when
/// `args` starts with `restore`) and starts its supervisor; returns its ID.
pub fn detach_instance(
    name: Option<&str>,
    what: String,
    args: Vec<String>,
    restart: Policy,
    ports: Vec<String>,
) -> Result<String> {
    let id = new_id();
    let name = match name {
        Some(n) if crate::instance::valid_name(n) => n.to_string(),
        Some(n) => bail!("invalid instance name {n:?} (letters, digits, . _ -; at most 64)"),
        None => crate::instance::default_name(&what, &id),
    };
    let mut db = Db::open_default()?;
    let inst = Instance::new(id.clone(), name, what, args, restart, ports);
    db.insert(&inst)?;
    let started = (|| -> Result<()> {
        let dir = db.dir(&id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        std::fs::write(dir.join("cwd"), cwd.as_os_str().as_encoded_bytes())
            .with_context(|| format!("cannot write {}/cwd", dir.display()))?;
        spawn_supervisor(&db, &id)
    })();
    if let Err(e) = started {
        // Removed by someone else meanwhile (`volt rm -f`, a DELETE), or
        // failed: either way nothing of it may stay.
        let gone = db.get(&id)?.is_none();
        db.remove(&id)?;
        if gone {
            bail!("{} was removed while it started", inst.name);
        }
        return Err(e);
    }
    wait_started(&mut db, &id)?;
    Ok(id)
}

fn ago(secs: i64) -> String {
    let d = (now() - secs).max(0);
    match d {
        0..=1 => "Less than a second".into(),
        2..=59 => format!("{d} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", d / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", d / 3600),
        _ => format!("{} days", d / 86_400),
    }
}

pub fn status(i: &Instance) -> String {
    match i.state {
        State::Created => "Created".into(),
        State::Running => format!("Up {}", ago(i.started.unwrap_or(i.created))),
        State::Restarting => format!(
            "Restarting ({}) {} ago",
            i.exit_code.unwrap_or(0),
            ago(i.finished.unwrap_or(i.created))
        ),
        State::Exited => format!(
            "Exited ({}) {} ago",
            i.exit_code.unwrap_or(0),
            ago(i.finished.unwrap_or(i.created))
        ),
        State::Dead => "Dead (its supervisor was killed)".into(),
        State::Standby => format!("Standby {} ago", ago(i.finished.unwrap_or(i.created))),
    }
}

/// The live counters of a running instance's monitor (exits, network,
/// the guest's system calls, relayed connections), asked through its
/// control socket; `None` when it does not run or does not answer soon.
pub fn live_counters(i: &Instance) -> Option<crate::snapshot::control::Counters> {
    if !alive(i.child) {
        return None;
    }
    let sock = crate::store::data_dir()
        .join("instances")
        .join(&i.id)
        .join("control.sock");
    crate::snapshot::control::counters(&sock, Duration::from_millis(500)).ok()
}

/// CPU seconds and resident memory of the running `volt run`.
pub fn usage(i: &Instance) -> Option<(f64, u64)> {
    let (pid, _) = i.child.filter(|_| alive(i.child))?;
    let pid = u32::try_from(pid).ok()?;
    Some((
        crate::procfs::cpu_seconds(pid)?,
        crate::procfs::rss_bytes(pid)?,
    ))
}

/// What `ps` and `inspect` show of an instance, worked out where the
/// instance runs (locally, or by voltd for `--host`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Shown {
    pub id: String,
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    /// volt's state: created, running, restarting, exited, dead.
    pub state: String,
    pub status: String,
    pub restart: String,
    pub restarts: u32,
    pub ports: Vec<String>,
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub exit_code: Option<i32>,
    pub supervisor_pid: Option<i32>,
    pub pid: Option<i32>,
    pub cpu_seconds: Option<f64>,
    pub memory_bytes: Option<u64>,
}

impl Shown {
    pub fn of(i: &Instance) -> Shown {
        let u = usage(i);
        Shown {
            id: i.id.clone(),
            name: i.name.clone(),
            image: i.image.clone(),
            args: i.args.clone(),
            state: i.state.as_str().into(),
            status: status(i),
            restart: i.restart.to_string(),
            restarts: i.restarts,
            ports: i.ports.clone(),
            created: i.created,
            started: i.started,
            finished: i.finished,
            exit_code: i.exit_code,
            supervisor_pid: i.supervisor.filter(|_| alive(i.supervisor)).map(|p| p.0),
            pid: i.child.filter(|_| alive(i.child)).map(|p| p.0),
            cpu_seconds: u.map(|u| u.0),
            memory_bytes: u.map(|u| u.1),
        }
    }

    fn live(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting")
    }

    /// As `volt inspect` and `ps -o json` print it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "args": self.args,
            "state": self.state,
            "status": self.status,
            "restart": self.restart,
            "restarts": self.restarts,
            "ports": self.ports,
            "created": crate::store::build::rfc3339(self.created),
            "started": self.started.map(crate::store::build::rfc3339),
            "finished": self.finished.map(crate::store::build::rfc3339),
            "exit_code": self.exit_code,
            "supervisor_pid": self.supervisor_pid,
            "pid": self.pid,
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
        })
    }
}

/// Every instance, shown: from voltd with `--host`, else from the store.
fn all_shown() -> Result<Vec<Shown>> {
    if let Some(h) = crate::remote::host()? {
        return h.instances();
    }
    let mut db = Db::open_default()?;
    Ok(db.list()?.iter().map(Shown::of).collect())
}

pub fn ps(a: PsArgs) -> Result<i32> {
    let list: Vec<Shown> = all_shown()?
        .into_iter()
        .filter(|i| a.all || i.live())
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for i in &list {
            writeln!(out, "{}", &i.id[..12.min(i.id.len())])?;
        }
        return Ok(0);
    }
    if a.output == Output::Json {
        let v: Vec<serde_json::Value> = list.iter().map(Shown::json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    let w = list.iter().map(|i| i.name.len()).max().unwrap_or(0).max(4);
    let wi = list.iter().map(|i| i.image.len()).max().unwrap_or(0).max(5);
    writeln!(
        out,
        "{:<12}  {:<w$}  {:<wi$}  {:<28}  {:<22}  {:>8}  {:>9}  UPTIME",
        "ID", "NAME", "IMAGE", "STATUS", "PORTS", "CPU", "MEM"
    )?;
    for i in &list {
        let (cpu, mem) = match (i.cpu_seconds, i.memory_bytes) {
            (Some(c), Some(m)) => (format!("{c:.2}s"), crate::images::human_size(m)),
            _ => ("-".into(), "-".into()),
        };
        let uptime = match i.state.as_str() {
            "running" => ago(i.started.unwrap_or(i.created)),
            _ => "-".into(),
        };
        writeln!(
            out,
            "{:<12}  {:<w$}  {:<wi$}  {:<28}  {:<22}  {:>8}  {:>9}  {}",
            &i.id[..12.min(i.id.len())],
            i.name,
            i.image,
            i.status,
            i.ports.join(","),
            cpu,
            mem,
            uptime
        )?;
    }
    Ok(0)
}

pub fn inspect(a: NamesArgs) -> Result<i32> {
    let v = match crate::remote::host()? {
        Some(h) => a
            .instances
            .iter()
            .map(|n| h.instance(n).map(|s| s.json()))
            .collect::<Result<Vec<_>>>()?,
        None => {
            let mut db = Db::open_default()?;
            a.instances
                .iter()
                .map(|n| db.find(n).map(|i| Shown::of(&i).json()))
                .collect::<Result<Vec<_>>>()?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

pub fn logs_cmd(a: LogsArgs) -> Result<i32> {
    if let Some(h) = crate::remote::host()? {
        return h.logs(&a);
    }
    let mut db = Db::open_default()?;
    let i = db.find(&a.instance)?;
    let dir = db.dir(&i.id);
    let (mut entries, mut at) = logs::read_from(&dir, 0);
    if let Some(s) = a.since {
        let from = (now() - s.as_secs() as i64) * 1_000_000_000;
        entries.retain(|e| e.t >= from);
    }
    if let Some(n) = a.tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    logs::print(&entries, a.timestamps)?;
    if !a.follow {
        return Ok(0);
    }
    loop {
        let (more, end) = logs::read_from(&dir, at);
        at = end;
        logs::print(&more, a.timestamps)?;
        let Some(now_i) = db.get(&i.id)? else {
            return Ok(0);
        };
        // Following ends with the instance (and its supervisor).
        if more.is_empty() && !alive(now_i.supervisor) {
            let (last, _) = logs::read_from(&dir, at);
            logs::print(&last, a.timestamps)?;
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops `i`: no more restarts, SIGTERM to the program's monitor, SIGKILL
/// after `grace`.
pub fn stop_one(db: &mut Db, i: &Instance, grace: Duration) -> Result<()> {
    db.set(
        &i.id,
        "UPDATE instances SET stopping = 1 WHERE id = ?1",
        None,
    )?;
    let kill = |p: Option<(i32, u64)>, sig| {
        if alive(p) {
            if let Some((pid, _)) = p {
                // SAFETY: kill(2) on a PID just checked to be that process.
                unsafe { libc::kill(pid, sig) };
            }
        }
    };
    kill(i.supervisor, libc::SIGTERM);
    kill(i.child, libc::SIGTERM);
    let t = Instant::now();
    while alive(i.supervisor) && t.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(i.supervisor) || alive(i.child) {
        kill(i.child, libc::SIGKILL);
        let t = Instant::now();
        while alive(i.supervisor) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(i.supervisor, libc::SIGKILL);
    }
    if let Some(now_i) = db.get(&i.id)? {
        if now_i.state != State::Exited {
            db.set_exited(&i.id, now_i.exit_code.unwrap_or(137), State::Exited)?;
        }
    }
    Ok(())
}

pub fn each(names: &[String], mut f: impl FnMut(&mut Db, &Instance) -> Result<()>) -> Result<i32> {
    let mut db = Db::open_default()?;
    // Every name is checked before anything changes.
    let found = names
        .iter()
        .map(|n| db.find(n))
        .collect::<Result<Vec<_>>>()?;
    for i in found {
        f(&mut db, &i)?;
        println!("{}", i.name);
    }
    Ok(0)
}

pub fn stop(a: StopArgs) -> Result<i32> {
    if let Some(h) = crate::remote::host()? {
        return h.each(&a.instances, |h, n| {
            h.post(&format!("/v1/instances/{n}/stop?timeout={}", a.time))
        });
    }
    let grace = Duration::from_secs(a.time);
    each(&a.instances, |db, i| stop_one(db, i, grace))
}

pub fn start_one(db: &mut Db, i: &Instance) -> Result<()> {
    if spawn_start(db, i)? {
        wait_started(db, &i.id)?;
    }
    Ok(())
}

/// Starts `i`'s supervisor again and returns at once (voltd's wake from
/// standby, which waits for the guest's port instead); false if it runs.
pub fn spawn_start(db: &mut Db, i: &Instance) -> Result<bool> {
    if alive(i.supervisor) {
        return Ok(false); // already running (or restarting)
    }
    db.set(
        &i.id,
        "UPDATE instances SET stopping = 0, restarts = 0, state = 'created' WHERE id = ?1",
        None,
    )?;
    spawn_supervisor(db, &i.id)?;
    Ok(true)
}

pub fn start(a: NamesArgs) -> Result<i32> {
    if let Some(h) = crate::remote::host()? {
        return h.each(&a.instances, |h, n| {
            h.post(&format!("/v1/instances/{n}/start"))
        });
    }
    each(&a.instances, start_one)
}

pub fn restart(a: StopArgs) -> Result<i32> {
    if let Some(h) = crate::remote::host()? {
        return h.each(&a.instances, |h, n| {
            h.post(&format!("/v1/instances/{n}/restart?timeout={}", a.time))
        });
    }
    let grace = Duration::from_secs(a.time);
    each(&a.instances, |db, i| {
        stop_one(db, i, grace)?;
        let fresh = db.get(&i.id)?.context("the instance vanished")?;
        start_one(db, &fresh)
    })
}

pub fn rm(a: RmArgs) -> Result<i32> {
    if let Some(h) = crate::remote::host()? {
        let q = if a.force { "?force=true" } else { "" };
        return h.each(&a.instances, |h, n| {
            h.delete(&format!("/v1/instances/{n}{q}"))
        });
    }
    let mut db = Db::open_default()?;
    let found = a
        .instances
        .iter()
        .map(|n| db.find(n))
        .collect::<Result<Vec<_>>>()?;
    if !a.force {
        if let Some(i) = found.iter().find(|i| alive(i.supervisor)) {
            bail!(
                "{} is running: stop it first (volt stop {}) or use rm -f",
                i.name,
                i.name
            );
        }
    }
    for i in found {
        remove_one(&mut db, &i)?;
        println!("{}", i.name);
    }
    Ok(0)
}

/// Removes `i`, stopping it at once if it runs.
pub fn remove_one(db: &mut Db, i: &Instance) -> Result<()> {
    if alive(i.supervisor) || alive(i.child) {
        stop_one(db, i, Duration::ZERO)?;
    }
    db.remove(&i.id)
}
