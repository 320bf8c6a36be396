//! `volt-runtime`: runc's command line, as containerd's runc shim uses it
//! (`../shared/components.md` has the calls seen on containerd 1.6), over
//! OptiVolt unikernels. `create` checks the bundle, records the container
//! and starts its init process, which waits on `exec.fifo`; `start` opens
//! the fifo, and init becomes `volt run` — same PID, so the shim's child is
//! the VM's monitor and its exit status is the program's. Errors are runc's
//! JSON lines in `--log`, and a non-zero exit.
pub mod bundle;
pub mod containerd;
mod delegate;
mod init;
pub mod podnet;
pub mod state;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use state::State;

#[derive(Parser, Debug)]
#[command(
    name = "volt-runtime",
    version,
    about = "An OCI runtime (runc's command line) for OptiVolt unikernels"
)]
struct Cli {
    /// Where containers' state is kept.
    #[arg(long, global = true, default_value = "/run/volt-runtime")]
    root: PathBuf,
    /// Errors go here, as JSON lines with --log-format json.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; no effect (no cgroups: the VM is the limit).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container from a bundle (it starts with `start`).
    Create {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Not supported: the unikernel's console is its stdio.
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        no_pivot: bool,
        #[arg(long)]
        no_new_keyring: bool,
        #[arg(long, default_value_t = 0)]
        preserve_fds: u32,
        id: String,
    },
    /// Run the program of a created container.
    Start { id: String },
    /// The container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's program.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Remove a stopped container (-f: kill it first).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// The container's processes.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
    },
    /// Not supported: a unikernel runs one program.
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Stop the VM's vCPU.
    Pause { id: String },
    /// Let it run again.
    Resume { id: String },
    /// What this runtime supports, as JSON.
    Features,
    /// The init process (started by create).
    #[command(name = "__init", hide = true)]
    Init { id: String },
}

/// The log file named on the command line, found even when it does not parse.
fn log_target(args: &[String]) -> (Option<PathBuf>, bool) {
    let mut log = None;
    let mut json = false;
    for (i, a) in args.iter().enumerate() {
        let next = || args.get(i + 1).cloned();
        match a.as_str() {
            "--log" => log = next().map(PathBuf::from),
            "--log-format" => json = next().as_deref() == Some("json"),
            _ => {
                if let Some(v) = a.strip_prefix("--log=") {
                    log = Some(PathBuf::from(v));
                }
                if let Some(v) = a.strip_prefix("--log-format=") {
                    json = v == "json";
                }
            }
        }
    }
    (log, json)
}

/// Reports an error as runc does: a line in the log (JSON or text), and on stderr.
fn report(args: &[String], msg: &str) {
    let (log, json) = log_target(args);
    let msg = msg.trim();
    if let Some(p) = log {
        let line = if json {
            serde_json::json!({"level": "error", "msg": msg, "time": now_rfc3339()}).to_string()
        } else {
            format!("time=\"{}\" level=error msg={msg:?}", now_rfc3339())
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("volt-runtime: {msg}");
}

fn now_rfc3339() -> String {
    crate::store::build::rfc3339(crate::instance::now())
}

/// The entry point of the `volt-runtime` binary: the exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return 0;
            }
            let first = e.to_string();
            report(&args, first.lines().next().unwrap_or("bad arguments"));
            return 1;
        }
    };
    match delegate::maybe(&cli.root, &args, cli.command.id(), cli.command.bundle()) {
        Ok(Some(code)) => return code,
        Ok(None) => {}
        Err(e) => {
            report(&args, &format!("{e:#}"));
            return 1;
        }
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            report(&args, &format!("{e:#}"));
            1
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let root = cli.root;
    match cli.command {
        Cmd::Create {
            bundle,
            pid_file,
            console_socket,
            id,
            ..
        } => {
            if console_socket.is_some() {
                bail!("--console-socket (a terminal) is not supported: the unikernel's console is the container's stdio (run without -t)");
            }
            create(&root, &id, &bundle, pid_file.as_deref())
        }
        Cmd::Start { id } => start(&root, &id),
        Cmd::State { id } => {
            let s = state::load(&root, &id)?;
            let st = state::status(&s, &state::dir(&root, &id)?);
            let v = serde_json::json!({
                "ociVersion": "1.0.2",
                "id": s.id,
                "pid": if st == "stopped" { 0 } else { s.pid },
                "status": st,
                "bundle": s.bundle,
                "rootfs": s.rootfs,
                "created": s.created,
                "owner": "",
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let s = state::load(&root, &id)?;
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            if !crate::instance::alive(Some((s.pid, s.start))) {
                if all {
                    return Ok(0);
                }
                bail!("container {id} is not running");
            }
            // SAFETY: kill takes no pointers; the PID is the container's, checked alive with its start time.
            if unsafe { libc::kill(s.pid, sig) } != 0 {
                bail!("kill {}: {}", s.pid, std::io::Error::last_os_error());
            }
            Ok(0)
        }
        Cmd::Delete { force, id } => delete(&root, &id, force),
        Cmd::Ps { format, id } => {
            let s = state::load(&root, &id)?;
            let alive = crate::instance::alive(Some((s.pid, s.start)));
            if format == "json" {
                let pids: Vec<i32> = if alive { vec![s.pid] } else { vec![] };
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                println!("PID");
                if alive {
                    println!("{}", s.pid);
                }
            }
            Ok(0)
        }
        Cmd::Exec { .. } => {
            bail!("exec is not supported by volt-runtime: a unikernel runs one program (no second process can join it)")
        }
        Cmd::Pause { id } => pause(&root, &id, true),
        Cmd::Resume { id } => pause(&root, &id, false),
        Cmd::Features => {
            let v = serde_json::json!({
                "ociVersionMin": "1.0.0",
                "ociVersionMax": "1.1.0",
                "hooks": [],
                "mountOptions": [],
                "linux": {"namespaces": ["network"], "capabilities": [], "cgroup": {"v1": false, "v2": false}},
                "annotations": {"org.optivolt.runtime": "unikernel"},
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Cmd::Init { id } => init::run(&root, &id),
    }
}

impl Cmd {
    /// The container the command is about.
    fn id(&self) -> Option<&str> {
        match self {
            Cmd::Create { id, .. }
            | Cmd::Start { id }
            | Cmd::State { id }
            | Cmd::Kill { id, .. }
            | Cmd::Delete { id, .. }
            | Cmd::Ps { id, .. }
            | Cmd::Pause { id }
            | Cmd::Resume { id } => Some(id),
            Cmd::Exec { rest } => rest
                .iter()
                .find(|a| !a.starts_with('-'))
                .map(String::as_str),
            Cmd::Features | Cmd::Init { .. } => None,
        }
    }

    /// The bundle, for `create`.
    fn bundle(&self) -> Option<&Path> {
        match self {
            Cmd::Create { bundle, .. } => Some(bundle),
            _ => None,
        }
    }
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = s.trim_start_matches("SIG");
    Ok(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        _ => bail!("unknown signal {s:?}"),
    })
}

/// The `volt run` arguments for a bundle.
fn volt_args(b: &bundle::Bundle) -> Vec<String> {
    let mut a = vec!["--rootfs".to_string(), b.rootfs.display().to_string()];
    if let Some(m) = b.memory {
        a.extend(["--memory".into(), format!("{}K", m.div_ceil(1024))]);
    }
    for e in &b.env {
        a.extend(["--env".into(), e.clone()]);
    }
    if b.cwd != "/" && !b.cwd.is_empty() {
        a.extend(["--workdir".into(), b.cwd.clone()]);
    }
    a.extend(b.args.iter().cloned());
    a
}

fn create(root: &Path, id: &str, bundle_dir: &Path, pid_file: Option<&Path>) -> Result<i32> {
    let dir = state::dir(root, id)?;
    let bundle_dir = bundle_dir
        .canonicalize()
        .with_context(|| format!("bundle {}", bundle_dir.display()))?;
    let b = bundle::load(&bundle_dir)?;
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    if std::fs::create_dir(&dir).is_err() {
        bail!("container with id {id} exists already");
    }
    let made = (|| -> Result<State> {
        state::write_json(
            &dir.join("init.json"),
            &state::Init {
                args: volt_args(&b),
                netns: b.netns.clone(),
            },
        )?;
        let fifo = dir.join("exec.fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())?;
        // SAFETY: mkfifo with a NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            bail!(
                "mkfifo {}: {}",
                fifo.display(),
                std::io::Error::last_os_error()
            );
        }
        let exe =
            std::fs::read_link("/proc/self/exe").context("cannot find volt-runtime itself")?;
        let child = std::process::Command::new(exe)
            .arg("--root")
            .arg(root)
            .args(["__init", id])
            .current_dir(&b.dir)
            .spawn()
            .context("cannot start the container's init process")?;
        let pid = child.id() as i32;
        let start = crate::instance::start_time(pid).context("the init process vanished")?;
        let s = State {
            id: id.to_string(),
            pid,
            start,
            bundle: b.dir.clone(),
            rootfs: b.rootfs.clone(),
            created: now_rfc3339(),
            paused: false,
            netns: b.netns.clone(),
        };
        state::write_json(&dir.join("state.json"), &s)?;
        if let Some(p) = pid_file {
            state::write_atomic(p, pid.to_string().as_bytes())?;
        }
        // The init process is the shim's now (it reaps it): not waited for.
        std::mem::forget(child);
        Ok(s)
    })();
    match made {
        Ok(_) => Ok(0),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

fn start(root: &Path, id: &str) -> Result<i32> {
    let s = state::load(root, id)?;
    let dir = state::dir(root, id)?;
    let fifo = dir.join("exec.fifo");
    if state::status(&s, &dir) != "created" {
        bail!("container {id} is not in the created state");
    }
    // Opening the fifo releases init, which is blocked opening its other end.
    let mut f = std::fs::File::open(&fifo).context("cannot open exec.fifo")?;
    let mut byte = [0u8; 1];
    let _ = std::io::Read::read(&mut f, &mut byte);
    let _ = std::fs::remove_file(&fifo);
    Ok(0)
}

fn pause(root: &Path, id: &str, pause: bool) -> Result<i32> {
    let mut s = state::load(root, id)?;
    if !crate::instance::alive(Some((s.pid, s.start))) {
        bail!("container {id} is not running");
    }
    let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: kill takes no pointers; the PID is the container's, checked alive.
    if unsafe { libc::kill(s.pid, sig) } != 0 {
        bail!(
            "{}: {}",
            if pause { "pause" } else { "resume" },
            std::io::Error::last_os_error()
        );
    }
    s.paused = pause;
    state::write_json(&state::dir(root, id)?.join("state.json"), &s)?;
    Ok(0)
}

fn delete(root: &Path, id: &str, force: bool) -> Result<i32> {
    let dir = state::dir(root, id)?;
    let s = match state::load(root, id) {
        Ok(s) => s,
        Err(_) if force => {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let alive = || crate::instance::alive(Some((s.pid, s.start)));
    if alive() {
        if !force {
            bail!("cannot delete container {id} that is not stopped (kill it first, or delete --force)");
        }
        // SAFETY: kill takes no pointers; the PID is the container's, checked alive.
        unsafe { libc::kill(s.pid, libc::SIGKILL) };
        let until = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Ok(b) = std::fs::read(dir.join("podnet.json")) {
        if let Ok(p) = serde_json::from_slice::<state::PodNet>(&b) {
            init::in_netns(s.netns.as_deref(), || podnet::restore(&p));
        }
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(0)
}
