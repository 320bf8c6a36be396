//! Instances that live on (`volt run -d`): what each one is, in SQLite
//! (`<data>/volt.db`, WAL, every change in a transaction, so concurrent
//! CLI calls see a consistent state), supervised by a small `volt` process
//! of its own ([`supervise`]) that runs `volt run` as its child, writes the
//! child's output to the instance's log ([`logs`]) and applies the restart
//! policy. A PID in the database is never trusted alone: it is checked
//! against the process's start time, so a dead supervisor whose PID was
//! reused is noticed.
pub mod logs;
pub mod supervise;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use crate::restart::Policy;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Recorded, not started yet.
    Created,
    Running,
    /// Waiting for the next attempt of its restart policy.
    Restarting,
    /// The program ended (or was stopped) and will not be restarted.
    Exited,
    /// Its supervisor died without recording an end (killed).
    Dead,
    /// Saved to a snapshot and stopped: `start` restores it.
    Standby,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Dead => "dead",
            State::Standby => "standby",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "running" => State::Running,
            "restarting" => State::Restarting,
            "exited" => State::Exited,
            "dead" => State::Dead,
            "standby" => State::Standby,
            _ => State::Created,
        }
    }
}

/// One instance, as stored.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub name: String,
    /// What it runs (an image reference or a program path).
    pub image: String,
    /// The `volt run` arguments (options and command, without -d/--name/--restart).
    pub args: Vec<String>,
    pub restart: Policy,
    /// Published ports, as given (`127.0.0.1:8080:8080`).
    pub ports: Vec<String>,
    pub created: i64,
    pub state: State,
    /// The supervisor's PID and start time (clock ticks since boot).
    pub supervisor: Option<(i32, u64)>,
    /// The running `volt run`'s PID and start time.
    pub child: Option<(i32, u64)>,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub exit_code: Option<i32>,
    pub restarts: u32,
    /// Set by `volt stop`: the supervisor must not restart it.
    pub stopping: bool,
    /// In standby (or going there): the snapshot its next start restores.
    pub snapshot: Option<String>,
}

impl Instance {
    /// A new instance, recorded but not started.
    pub fn new(
        id: String,
        name: String,
        image: String,
        args: Vec<String>,
        restart: Policy,
        ports: Vec<String>,
    ) -> Instance {
        Instance {
            id,
            name,
            image,
            args,
            restart,
            ports,
            created: now(),
            state: State::Created,
            supervisor: None,
            child: None,
            started: None,
            finished: None,
            exit_code: None,
            restarts: 0,
            stopping: false,
            snapshot: None,
        }
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), if it
/// exists and has not ended (a zombie nobody reaped yet has ended).
pub fn start_time(pid: i32) -> Option<u64> {
    let s = crate::procfs::stat(u32::try_from(pid).ok()?)?;
    (!matches!(s.state, 'Z' | 'X' | 'x')).then_some(s.start)
}

/// Whether the process recorded as (pid, start) is still that process.
pub fn alive(p: Option<(i32, u64)>) -> bool {
    p.is_some_and(|(pid, st)| pid > 0 && start_time(pid) == Some(st))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The instance database.
pub struct Db {
    conn: Connection,
    data: PathBuf,
}

fn pid_pair(pid: Option<i64>, st: Option<i64>) -> Option<(i32, u64)> {
    Some((pid? as i32, st? as u64))
}

impl Db {
    /// Opens (creating) the database in `data`.
    pub fn open(data: &Path) -> Result<Db> {
        std::fs::create_dir_all(data.join("instances"))
            .with_context(|| format!("cannot create {}", data.display()))?;
        let path = data.join("volt.db");
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Several volt processes may get here at once on a new database.
            let mut tries = 0;
            while let Err(e) = conn.pragma_update(None, "journal_mode", "WAL") {
                tries += 1;
                if tries > 200 {
                    return Err(e).context("cannot switch the instance database to WAL");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS instances (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                image TEXT NOT NULL,
                args TEXT NOT NULL,
                restart TEXT NOT NULL,
                ports TEXT NOT NULL,
                created INTEGER NOT NULL,
                state TEXT NOT NULL,
                sup_pid INTEGER, sup_start INTEGER,
                child_pid INTEGER, child_start INTEGER,
                started INTEGER, finished INTEGER,
                exit_code INTEGER,
                restarts INTEGER NOT NULL DEFAULT 0,
                stopping INTEGER NOT NULL DEFAULT 0
            );
            COMMIT;",
        )
        .context("cannot create the instance table")?;
        // Added after the table's first version: stores made before get it now.
        let has_snapshot = conn
            .prepare("SELECT 1 FROM pragma_table_info('instances') WHERE name = 'snapshot'")?
            .exists([])?;
        if !has_snapshot {
            if let Err(e) = conn.execute("ALTER TABLE instances ADD COLUMN snapshot TEXT", []) {
                // Another volt added it at the same moment.
                if !e.to_string().contains("duplicate column") {
                    return Err(e).context("cannot add the snapshot column");
                }
            }
        }
        Ok(Db {
            conn,
            data: data.to_path_buf(),
        })
    }

    /// The connection, for the other tables kept in the same database
    /// (networks and their address leases).
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Opens the database in the default data directory.
    pub fn open_default() -> Result<Db> {
        Db::open(&crate::store::data_dir())
    }

    /// The directory of instance `id` (its logs).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.data.join("instances").join(id)
    }

    /// Records a new instance; refuses a name in use.
    pub fn insert(&mut self, i: &Instance) -> Result<()> {
        // IMMEDIATE: the write lock is taken before the check, so two volt
        // processes cannot both find the name free.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: Option<String> = tx
            .query_row("SELECT id FROM instances WHERE name = ?1", [&i.name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            bail!(
                "the name {:?} is already in use by an instance (volt rm {} first, or choose another --name)",
                i.name,
                i.name
            );
        }
        tx.execute(
            "INSERT INTO instances (id, name, image, args, restart, ports, created, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                i.id,
                i.name,
                i.image,
                serde_json::to_string(&i.args)?,
                i.restart.to_string(),
                serde_json::to_string(&i.ports)?,
                i.created,
                i.state.as_str()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Instance> {
        let args: String = r.get("args")?;
        let ports: String = r.get("ports")?;
        let restart: String = r.get("restart")?;
        let state: String = r.get("state")?;
        Ok(Instance {
            id: r.get("id")?,
            name: r.get("name")?,
            image: r.get("image")?,
            args: serde_json::from_str(&args).unwrap_or_default(),
            restart: Policy::parse(&restart).unwrap_or(Policy::No),
            ports: serde_json::from_str(&ports).unwrap_or_default(),
            created: r.get("created")?,
            state: State::parse(&state),
            supervisor: pid_pair(r.get("sup_pid")?, r.get("sup_start")?),
            child: pid_pair(r.get("child_pid")?, r.get("child_start")?),
            started: r.get("started")?,
            finished: r.get("finished")?,
            exit_code: r.get("exit_code")?,
            restarts: r.get::<_, i64>("restarts")? as u32,
            stopping: r.get::<_, i64>("stopping")? != 0,
            snapshot: r.get("snapshot")?,
        })
    }

    /// Every instance, oldest first, with dead supervisors noticed.
    pub fn list(&mut self) -> Result<Vec<Instance>> {
        let mut v: Vec<Instance> = {
            let mut st = self
                .conn
                .prepare("SELECT * FROM instances ORDER BY created, name")?;
            let rows = st.query_map([], Self::row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for i in &mut v {
            self.notice_death(i)?;
        }
        Ok(v)
    }

    /// The instance with this name, or whose ID starts with it.
    pub fn find(&mut self, name: &str) -> Result<Instance> {
        let mut hits: Vec<Instance> = {
            let mut st = self
                .conn
                .prepare("SELECT * FROM instances WHERE name = ?1 OR (length(?1) >= 4 AND id LIKE ?1 || '%')")?;
            let rows = st.query_map([name], Self::row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if let Some(pos) = hits.iter().position(|i| i.name == name) {
            let mut i = hits.swap_remove(pos);
            self.notice_death(&mut i)?;
            return Ok(i);
        }
        match hits.len() {
            0 => bail!("{name}: no such instance (volt ps -a lists them)"),
            1 => {
                let mut i = hits.remove(0);
                self.notice_death(&mut i)?;
                Ok(i)
            }
            _ => bail!("{name} matches more than one instance: give more of the ID"),
        }
    }

    /// A running or restarting instance whose supervisor is gone was killed:
    /// record it as dead (and its child, which dies with it, as gone).
    fn notice_death(&mut self, i: &mut Instance) -> Result<()> {
        if matches!(i.state, State::Running | State::Restarting | State::Created)
            && i.supervisor.is_some()
            && !alive(i.supervisor)
        {
            self.conn.execute(
                "UPDATE instances SET state = 'dead', finished = ?2, child_pid = NULL
                 WHERE id = ?1 AND state IN ('running', 'restarting', 'created')",
                params![i.id, now()],
            )?;
            i.state = State::Dead;
            i.finished = Some(now());
            i.child = None;
        }
        Ok(())
    }

    /// Runs `sql` with the instance's ID as ?1 (and `p2` as ?2).
    pub fn set(&self, id: &str, sql: &str, p2: Option<i64>) -> Result<()> {
        match p2 {
            Some(v) => self.conn.execute(sql, params![id, v])?,
            None => self.conn.execute(sql, params![id])?,
        };
        Ok(())
    }

    /// Records the supervisor of `id` (this process).
    pub fn set_supervisor(&self, id: &str, pid: i32, start: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE instances SET sup_pid = ?2, sup_start = ?3, stopping = 0 WHERE id = ?1",
            params![id, pid, start as i64],
        )?;
        Ok(())
    }

    /// Records that the child (pid, start) runs.
    pub fn set_running(&self, id: &str, pid: i32, start: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE instances SET state = 'running', child_pid = ?2, child_start = ?3,
             started = ?4, exit_code = NULL WHERE id = ?1",
            params![id, pid, start as i64, now()],
        )?;
        Ok(())
    }

    /// Records the child's end.
    pub fn set_exited(&self, id: &str, code: i32, next: State) -> Result<()> {
        self.conn.execute(
            "UPDATE instances SET state = ?2, child_pid = NULL, exit_code = ?3, finished = ?4
             WHERE id = ?1",
            params![id, next.as_str(), code, now()],
        )?;
        Ok(())
    }

    pub fn remove(&mut self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM instances WHERE id = ?1", [id])?;
        let _ = std::fs::remove_dir_all(self.dir(id));
        Ok(())
    }

    /// Re-reads one instance.
    pub fn get(&self, id: &str) -> Result<Option<Instance>> {
        Ok(self
            .conn
            .query_row("SELECT * FROM instances WHERE id = ?1", [id], Self::row)
            .optional()?)
    }
}

/// A new instance ID (64 hex digits from the kernel's random source).
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    crate::store::hex(&b)
}

/// A name for an instance the user did not name: the image's last path
/// component and six hex digits of its ID.
pub fn default_name(image: &str, id: &str) -> String {
    let base = image
        .rsplit('/')
        .next()
        .unwrap_or("volt")
        .split([':', '@'])
        .next()
        .unwrap_or("volt");
    let base: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!(
        "{}-{}",
        if base.is_empty() { "volt" } else { &base },
        &id[..6]
    )
}

/// Whether `n` is a valid instance name.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_start_times() {
        assert!(valid_name("web1") && valid_name("a.b-c_d"));
        assert!(!valid_name("-x") && !valid_name("a b") && !valid_name(""));
        assert_eq!(
            default_name("localhost:5000/team/web:1", "abcdef123"),
            "web-abcdef"
        );
        let me = std::process::id() as i32;
        let st = start_time(me).unwrap();
        assert!(alive(Some((me, st))));
        assert!(
            !alive(Some((me, st + 1))),
            "a reused PID is not the same process"
        );
    }

    #[test]
    fn the_database_refuses_a_second_instance_of_a_name() {
        let d = std::env::temp_dir().join(format!("volt-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut db = Db::open(&d).unwrap();
        let i = Instance::new(
            new_id(),
            "web".into(),
            "web:1".into(),
            vec!["web:1".into()],
            Policy::OnFailure(Some(2)),
            vec![],
        );
        db.insert(&i).unwrap();
        let mut j = i.clone();
        j.id = new_id();
        let e = db.insert(&j).unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
        let got = db.find("web").unwrap();
        assert_eq!(got.restart, Policy::OnFailure(Some(2)));
        assert_eq!(db.find(&i.id[..8]).unwrap().name, "web");
        db.remove(&i.id).unwrap();
        assert!(db.find("web").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
