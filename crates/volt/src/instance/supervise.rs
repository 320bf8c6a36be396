//! The supervisor of one detached instance (`volt __supervise ID`, started
//! by `volt run -d` or `volt start` in a session of its own): it runs
//! `volt run` as its child (which dies with it: PR_SET_PDEATHSIG), writes
//! the child's output to the log, records starts and ends, and applies the
//! restart policy with its backoff. SIGTERM (from `volt stop`) means: pass
//! it to the child, and do not restart.
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{logs, start_time, Db, State};
use crate::restart::backoff;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Names the supervisor's PID for its child, which is to die with it.
const PARENT_ENV: &str = "VOLT_DIE_WITH_PARENT";

/// In a supervisor's child (`volt run` or `volt restore`): asks the kernel
/// for SIGKILL when the supervisor dies, and ends at once if it already
/// has. Called first thing in `main`, before any thread exists.
pub fn die_with_parent() {
    let Some(parent) = std::env::var_os(PARENT_ENV) else {
        return;
    };
    // SAFETY: called before any other thread exists (see above), so no one
    // reads the environment meanwhile; the variable is not for grandchildren.
    unsafe { std::env::remove_var(PARENT_ENV) };
    let Some(parent) = parent.to_str().and_then(|p| p.parse::<i32>().ok()) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid have no memory effects.
    let orphaned = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::getppid() != parent
    };
    if orphaned {
        // The supervisor died before the request took hold.
        std::process::exit(137);
    }
}

/// A run of this long resets the backoff (Unikraft Cloud: 10 minutes).
const HEALTHY: Duration = Duration::from_secs(600);

/// The exit status a shell would show for `s`.
fn code_of(s: std::process::ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Runs the instance `id` until it ends for good.
pub fn supervise(id: &str) -> Result<i32> {
    // A session of its own, so that the terminal's signals (Ctrl-C, the
    // hang-up) do not reach it. It cannot fail here: volt spawned this
    // process in its parent's process group, so it leads no group.
    // SAFETY: setsid(2) has no memory effects.
    unsafe { libc::setsid() };
    // SAFETY: installs an async-signal-safe handler (one atomic store).
    unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    let db = Db::open_default()?;
    let me = std::process::id() as i32;
    db.set_supervisor(id, me, start_time(me).unwrap_or(0))?;
    let mut log = logs::Writer::open(&db.dir(id))?;
    let exe = crate::volt_exe()?;
    let mut attempt = 0u32;
    loop {
        let Some(inst) = db.get(id)? else {
            return Ok(0); // removed
        };
        if inst.stopping || STOP.load(Ordering::SeqCst) {
            db.set_exited(id, inst.exit_code.unwrap_or(0), State::Exited)?;
            return Ok(0);
        }
        let mut cmd = Command::new(&exe);
        match &inst.snapshot {
            // Out of standby: restore the snapshot, once.
            Some(snap) => {
                cmd.args(["restore", snap.as_str()]);
                // Back on the network it was on, with the same names.
                let run = crate::run::parse_args(&inst.args).ok();
                let network = run.as_ref().and_then(|r| {
                    r.network
                        .as_deref()
                        .map(|n| (n, r.network_aliases.as_slice()))
                });
                cmd.args(crate::snapshot::restore_args(&inst.ports, network));
                db.set(
                    &inst.id,
                    "UPDATE instances SET snapshot = NULL WHERE id = ?1",
                    None,
                )?;
            }
            None if inst.args.first().map(String::as_str) == Some("restore") => {
                cmd.args(&inst.args);
            }
            None => {
                cmd.arg("run").args(&inst.args);
            }
        }
        cmd.env(
            crate::snapshot::CONTROL_ENV,
            db.dir(id).join("control.sock"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(cwd) = inst_cwd(&db, id) {
            cmd.current_dir(cwd);
        }
        // The child asks for PR_SET_PDEATHSIG itself (`die_with_parent`),
        // so that no pre_exec hook keeps std from using posix_spawn.
        cmd.env(PARENT_ENV, std::process::id().to_string());
        let began = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                log.write(
                    1,
                    format!("volt: cannot start the instance: {e}\n").as_bytes(),
                )?;
                db.set_exited(id, 125, State::Exited)?;
                return Ok(125);
            }
        };
        let pid = child.id() as i32;
        tracing::info!(instance = %inst.name, pid, "started volt run");
        db.set_running(id, pid, start_time(pid).unwrap_or(0))?;
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Vec<u8>)>();
        let mut pumps = Vec::new();
        let outs: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for (n, out) in outs.into_iter().enumerate() {
            let Some(mut out) = out else { continue };
            let tx = tx.clone();
            pumps.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(k) = out.read(&mut buf) {
                    if k == 0 || tx.send((n, buf[..k].to_vec())).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let mut forwarded = false;
        let mut removed = false;
        let mut checked = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((n, bytes)) => log.write(n, &bytes)?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if STOP.load(Ordering::SeqCst) && !forwarded {
                // SAFETY: kill(2) on our own child's PID (it is not reaped yet).
                unsafe { libc::kill(pid, libc::SIGTERM) };
                forwarded = true;
            }
            // Removed while it started (before this supervisor's PID was
            // recorded, nobody could signal it): end the VM now.
            if !removed && checked.elapsed() >= Duration::from_millis(500) {
                checked = Instant::now();
                if matches!(db.get(id), Ok(None)) {
                    // SAFETY: kill(2) on our own child's PID (it is not reaped yet).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    removed = true;
                }
            }
        }
        for p in pumps {
            let _ = p.join();
        }
        let status = child.wait().context("cannot wait for the instance")?;
        log.flush()?;
        let code = code_of(status);
        tracing::info!(instance = %inst.name, code, "the program ended");
        let Some(inst) = db.get(id)? else {
            return Ok(0); // removed
        };
        if began.elapsed() >= HEALTHY {
            attempt = 0;
        }
        if inst.snapshot.is_some() && code == 0 {
            // Saved for standby (`volt standby`), and ended.
            db.set_exited(id, code, State::Standby)?;
            return Ok(0);
        }
        if inst.stopping
            || STOP.load(Ordering::SeqCst)
            || !inst.restart.restarts_after(code, inst.restarts)
        {
            db.set_exited(id, code, State::Exited)?;
            return Ok(0);
        }
        db.set_exited(id, code, State::Restarting)?;
        db.set(
            id,
            "UPDATE instances SET restarts = restarts + 1 WHERE id = ?1",
            None,
        )?;
        let wait = backoff(attempt);
        tracing::info!(instance = %inst.name, restart = inst.restarts + 1, wait_s = wait.as_secs(), "restarting after the backoff");
        attempt += 1;
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if STOP.load(Ordering::SeqCst) || db.get(id)?.is_none_or(|i| i.stopping) {
                db.set_exited(id, code, State::Exited)?;
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn inst_cwd(db: &Db, id: &str) -> Option<std::path::PathBuf> {
    let p = db.dir(id).join("cwd");
    std::fs::read(p).ok().map(|b| {
        std::path::PathBuf::from(std::ffi::OsString::from(
            String::from_utf8_lossy(&b).into_owned(),
        ))
    })
}
