//! `volt snapshot` and `volt restore`: a running instance's VM saved to one
//! file by its monitor (asked through the instance's control socket,
//! [`control`]), and a new instance made from such a file, in the
//! foreground or detached (`-d`: supervised like `volt run -d`).
pub mod control;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use optivolt_vmm::devices::tap::Tap;
use optivolt_vmm::{snapshot, Outcome, Vm};

use crate::network::private::PrivateNetns;
use crate::publish::{self, proxy, PortMapping};

/// The variable through which a supervisor tells `volt run`/`volt restore`
/// where to serve the instance's control socket.
pub const CONTROL_ENV: &str = "VOLT_CONTROL";

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The instance (name or ID prefix).
    pub instance: String,
    /// The file to write (replaced if it exists).
    pub file: PathBuf,
    /// Stop the instance once it is saved.
    #[arg(long)]
    pub stop: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A file written by `volt snapshot`.
    pub file: PathBuf,
    /// Run in the background, supervised (see `volt run -d`).
    #[arg(short, long)]
    pub detach: bool,
    /// The new instance's name (with -d).
    #[arg(long, requires = "detach")]
    pub name: Option<String>,
    /// With -d: the restart policy (restarts restore the file again).
    #[arg(long, requires = "detach", value_name = "POLICY", value_parser = crate::restart::Policy::parse)]
    pub restart: Option<crate::restart::Policy>,
    /// Put the guest back on this volt network, at the address it had
    /// (without it, each restore gets a network namespace of its own).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// A name the other guests on the network know this one by (repeatable).
    #[arg(long = "network-alias", value_name = "NAME", requires = "network")]
    pub network_aliases: Vec<String>,
    /// Publish a guest port on the host (as for `volt run`).
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[HOST_IP:]HOST_PORT:GUEST_PORT[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// Stop the guest after this many seconds (exit status 124).
    #[arg(long, value_name = "SECONDS", conflicts_with = "detach")]
    pub timeout: Option<f64>,
    /// Print the restore-time breakdown on stderr.
    #[arg(long, conflicts_with = "detach")]
    pub timing: bool,
    /// At exit, print the monitor's counts on stderr: exits by kind, ticks,
    /// and KVM's own counters (shadow-page faults fixed behind the guest's
    /// back) since the restore.
    #[arg(long, conflicts_with = "detach")]
    pub stats: bool,
}

/// Puts a running instance in standby: saved to `standby.snap` in its
/// directory and ended; its next start restores it.
pub fn standby_one(db: &mut crate::instance::Db, i: &crate::instance::Instance) -> Result<()> {
    if !crate::instance::alive(i.child) {
        bail!("{}: not running", i.name);
    }
    let file = db.dir(&i.id).join("standby.snap");
    db.conn_mut().execute(
        "UPDATE instances SET stopping = 1, snapshot = ?2 WHERE id = ?1",
        rusqlite::params![i.id, file.to_string_lossy()],
    )?;
    let req = control::Request::Snapshot {
        path: file,
        stop: true,
    };
    if let Err(e) = control::request(&db.dir(&i.id).join("control.sock"), &req) {
        db.set(
            &i.id,
            "UPDATE instances SET stopping = 0, snapshot = NULL WHERE id = ?1",
            None,
        )?;
        return Err(e);
    }
    // The supervisor records the end; wait for it (bounded).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if db
            .get(&i.id)?
            .is_none_or(|n| n.state != crate::instance::State::Running)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("{}: saved, but its monitor did not end", i.name)
}

/// `volt standby INSTANCE…`.
pub fn standby_cmd(a: crate::instances::NamesArgs) -> Result<i32> {
    if let Some(h) = crate::remote::host()? {
        return h.each(&a.instances, |h, n| {
            h.post(&format!("/v1/instances/{n}/standby"))
        });
    }
    crate::instances::each(&a.instances, standby_one)
}

/// `volt snapshot INSTANCE FILE`.
pub fn snapshot_cmd(a: SnapshotArgs) -> Result<i32> {
    let file = absolute(&a.file)?;
    let taken = if let Some(h) = crate::remote::host()? {
        h.snapshot(&a.instance, &file, a.stop)?
    } else {
        take(&a.instance, &file, a.stop)?
    };
    println!(
        "{} ({} pages, {:.1} MiB on disk, {:.1} ms)",
        taken.path.display(),
        taken.pages,
        taken.disk_bytes as f64 / (1 << 20) as f64,
        taken.duration_ms
    );
    Ok(0)
}

/// Asks the local instance `name` for a snapshot into `file` (absolute).
pub fn take(name: &str, file: &Path, stop: bool) -> Result<control::Taken> {
    let mut db = crate::instance::Db::open_default()?;
    let inst = db.find(name)?;
    if !crate::instance::alive(inst.child) {
        bail!("{}: not running", inst.name);
    }
    if stop {
        // The supervisor must not restart what ends now.
        db.set(
            &inst.id,
            "UPDATE instances SET stopping = 1 WHERE id = ?1",
            None,
        )?;
    }
    let req = control::Request::Snapshot {
        path: file.to_path_buf(),
        stop,
    };
    let r = control::request(&db.dir(&inst.id).join("control.sock"), &req);
    if r.is_err() && stop {
        db.set(
            &inst.id,
            "UPDATE instances SET stopping = 0 WHERE id = ?1",
            None,
        )?;
    }
    r
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current directory")?
        .join(p))
}

/// Records and starts an instance restored from `file` (absolute, checked
/// first); returns its ID.
pub fn detach_restore(
    name: Option<&str>,
    file: &Path,
    publish: &[String],
    restart: crate::restart::Policy,
    network: Option<(&str, &[String])>,
) -> Result<String> {
    let state = snapshot::inspect(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if !port_maps(publish)?.is_empty() && state.net.is_none() {
        bail!("-p needs the network: the snapshot's guest has no network device");
    }
    if let Some((n, _)) = network {
        check_network(&state, n)?;
    }
    let mut args = vec!["restore".to_string(), file.to_string_lossy().into_owned()];
    args.extend(restore_args(publish, network));
    crate::instances::detach_instance(
        name,
        file.to_string_lossy().into_owned(),
        args,
        restart,
        publish.to_vec(),
    )
}

/// The `volt restore` options for `publish` and `network`.
pub fn restore_args(publish: &[String], network: Option<(&str, &[String])>) -> Vec<String> {
    let mut v = Vec::new();
    for p in publish {
        v.push("--publish".into());
        v.push(p.clone());
    }
    if let Some((n, aliases)) = network {
        v.push("--network".into());
        v.push(n.into());
        for a in aliases {
            v.push("--network-alias".into());
            v.push(a.clone());
        }
    }
    v
}

/// Checks that the snapshot's guest can go back on network `name`: it
/// has a device whose address and gateway are the network's.
fn check_network(state: &snapshot::format::VmState, name: &str) -> Result<()> {
    let Some(n) = state.net else {
        bail!("--network needs the network: the snapshot's guest has no network device");
    };
    let mut db = crate::instance::Db::open_default()?;
    let Some(net) = crate::network::find(&mut db, name)? else {
        bail!("no such network: {name} (volt network create {name})");
    };
    if std::net::Ipv4Addr::from(n.gateway) != net.gateway() || n.prefix != net.prefix {
        bail!(
            "the snapshot's guest was not on network {name}: its address is {}/{} with gateway {}",
            std::net::Ipv4Addr::from(n.ipv4),
            n.prefix,
            std::net::Ipv4Addr::from(n.gateway)
        );
    }
    Ok(())
}

/// `volt restore FILE`.
pub fn restore_cmd(a: RestoreArgs, started: Instant) -> Result<i32> {
    let file = absolute(&a.file)?;
    if a.detach {
        if let Some(h) = crate::remote::host()? {
            if a.network.is_some() {
                bail!(
                    "through voltd, volt restore -d takes --name, -p and --restart (not --network)"
                );
            }
            println!(
                "{}",
                h.restore(a.name.as_deref(), &file, &a.publish, a.restart)?
            );
            return Ok(0);
        }
        // detach_restore checks the file, -p and --network itself.
        let restart = a.restart.unwrap_or(crate::restart::Policy::No);
        let network = a
            .network
            .as_deref()
            .map(|n| (n, a.network_aliases.as_slice()));
        println!(
            "{}",
            detach_restore(a.name.as_deref(), &file, &a.publish, restart, network)?
        );
        return Ok(0);
    }
    // Everything checkable is checked before anything starts.
    let state =
        snapshot::inspect(&file).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let maps = port_maps(&a.publish)?;
    if !maps.is_empty() && state.net.is_none() {
        bail!("-p needs the network: the snapshot's guest has no network device");
    }
    let timeout = match a.timeout {
        Some(t) if !(t > 0.0 && t < 1e9) => bail!("invalid --timeout {t} (expected seconds > 0)"),
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    if let Some(n) = &a.network {
        check_network(&state, n)?;
    }
    // Back on its network, at its address, held while this process runs.
    let held = match (&a.network, state.net) {
        (Some(name), Some(n)) => Some(crate::network::lease(
            name,
            Some(std::net::Ipv4Addr::from(n.ipv4)),
            &a.network_aliases,
            &[],
        )?),
        _ => None,
    };
    let tap_name = format!("vr{}", std::process::id());
    let on_network = held.as_ref().map(|h| {
        let (name, tap) = (h.net.name.clone(), tap_name.clone());
        let ns = crate::network::setup::netns_path(&name);
        std::thread::spawn(move || {
            optivolt_vmm::devices::tap::enter_netns(&ns).map_err(|e| e.to_string())?;
            let t = Tap::open(&tap).map_err(|e| e.to_string())?;
            crate::network::setup::enslave(&name, &tap).map_err(|e| format!("{e:#}"))?;
            Ok(t)
        })
    });
    // Else the guest keeps its address in a namespace of its own, with a
    // fresh tap holding its gateway's address, made on a thread while the
    // VM is built.
    let pending = state.net.filter(|_| held.is_none()).map(|n| {
        let (gw, prefix) = (std::net::Ipv4Addr::from(n.gateway), n.prefix);
        let name = tap_name.clone();
        PrivateNetns::make_with(move || {
            let tap = Tap::open(&name).map_err(|e| e.to_string())?;
            publish::hostnet::configure(&name, gw, prefix).map_err(|e| {
                format!("cannot give the restored guest's tap the address {gw}: {e}")
            })?;
            Ok(tap)
        })
    });
    let kvm = optivolt_vmm::check_kvm()?;
    let bound = if maps.is_empty() {
        None
    } else {
        Some(proxy::bind(&maps)?)
    };
    let (ns, tap) = match pending {
        Some(p) => (Some(p.ns), Some(p.work)),
        None => (None, on_network),
    };
    let cfg = snapshot::RestoreConfig {
        path: &file,
        tap,
        timeout,
        started,
        timing: a.timing,
    };
    let mut vm = Vm::restore(kvm, cfg)?;
    let ns = ns.map(|p| p.get()).transpose()?;
    let netns = match (&ns, &held) {
        (Some(ns), _) => Some(ns.path()),
        (None, Some(h)) => Some(crate::network::setup::netns_path(&h.net.name)),
        _ => None,
    };
    if let (Some(n), Some(b)) = (&state.net, bound) {
        proxy::spawn(b, std::net::Ipv4Addr::from(n.ipv4), netns)?;
    }
    if let Some(sock) = std::env::var_os(CONTROL_ENV) {
        control::serve(Path::new(&sock), vm.control())?;
    }
    vm.forward_signals();
    let outcome = vm.run()?;
    if !matches!(outcome, Outcome::Exited(_) | Outcome::Snapshotted(_)) {
        eprintln!("volt: {outcome}");
    }
    if a.timing {
        eprint!("{}", vm.timing());
    }
    if a.stats {
        eprint!("{}", vm.stats());
    }
    drop(ns);
    drop(held);
    Ok(outcome.exit_code())
}

fn port_maps(specs: &[String]) -> Result<Vec<PortMapping>> {
    let maps = specs
        .iter()
        .map(|s| {
            s.parse::<PortMapping>()
                .map_err(|e| anyhow::anyhow!("-p {s}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    publish::check_unique(&maps).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(maps)
}
