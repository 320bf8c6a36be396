//! `volt run`.
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use optivolt_vmm::{NetConfig, Outcome, Vm, VmConfig};

use crate::image::{self, size};
use crate::publish::{self, hostnet, proxy, PortMapping};
use crate::store::{Image, Reference, Store};

#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Run in the background, supervised by a volt process of its own;
    /// prints the instance's ID (see `volt ps`, `volt logs`, `volt stop`).
    #[arg(short, long)]
    pub detach: bool,
    /// The instance's name (with -d; default: the image's name and six hex digits).
    #[arg(long, requires = "detach")]
    pub name: Option<String>,
    /// With -d: start the program again when it ends: `no` (default),
    /// `on-failure[:N]` (after a non-zero exit, at most N times), `always`;
    /// waits 0, 5, 10, 20, 40 s … (at most 5 minutes) between attempts.
    #[arg(long, requires = "detach", value_name = "POLICY", value_parser = crate::restart::Policy::parse)]
    pub restart: Option<crate::restart::Policy>,
    /// Guest memory, e.g. 4M, 128M, 1G (a bare number is MiB); default
    /// 512M, or what the image asks for. The host backs only what the guest
    /// touches, so the generous default costs nothing measurable at boot
    /// (see docs/benchmarks.md); what a program never uses is never
    /// allocated.
    #[arg(short, long, value_parser = size::parse)]
    pub memory: Option<u64>,
    /// Set an environment variable in the guest (KEY=VALUE, or KEY to copy it from here).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Print the boot-time breakdown on stderr.
    #[arg(long)]
    pub timing: bool,
    /// Print every system call the guest makes on stderr (strace-style).
    #[arg(long)]
    pub trace_syscalls: bool,
    /// How the application's system calls reach the library OS: `patch`
    /// (default: each `syscall` site that can be is rewritten into a jump on
    /// its first call, so later calls never trap) or `trap` (every call traps;
    /// for debugging and differential tests).
    #[arg(long, value_name = "patch|trap", default_value = "patch", value_parser = ["patch", "trap"])]
    pub syscalls: String,
    /// At exit, print counts on stderr: system calls (by jump and by trap),
    /// patched sites, page faults, ticks, guest CPU time, the monitor's exits
    /// by kind. `--stats=all` adds the count of every system call by name.
    #[arg(long, value_name = "all", num_args = 0..=1, require_equals = true, default_missing_value = "on", value_parser = ["on", "all"])]
    pub stats: Option<String>,
    /// Stop the guest after this many seconds (exit status 124).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// A directory that becomes the guest's root file system; BINARY may then
    /// be a path inside it (e.g. /bin/app).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// With a dynamically linked host binary (no --rootfs): also put this
    /// host file or directory into the guest at the same path (repeatable).
    /// volt already gathers the binary's loader and libraries, and for
    /// Python its standard library (/usr/lib/pythonX.Y without
    /// site-packages and dist-packages).
    #[arg(long, value_name = "PATH")]
    pub include: Vec<PathBuf>,
    /// Let the library OS load the executable from the rootfs instead of the
    /// monitor placing its segments (slower; for testing the in-guest loader).
    #[arg(long, hide = true)]
    pub guest_loader: bool,
    /// Attach a network device: `tap:NAME` (created if missing; needs root
    /// or CAP_NET_ADMIN, or a tap made for you with `ip tuntap`). `none`:
    /// no network at all, not even the in-guest loopback (the smaller
    /// library OS built without it boots; socket(2) fails with
    /// EAFNOSUPPORT). Without `--net`, the guest has its loopback.
    #[arg(long, value_name = "tap:NAME|none", value_parser = parse_net)]
    pub net: Option<NetArg>,
    /// The guest's IPv4 address with prefix length, e.g. 10.0.7.2/24
    /// (with --net), or its address on --network (the prefix is the
    /// network's).
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    pub ip: Option<([u8; 4], u8)>,
    /// Join a volt network (`volt network create`): the guest gets an
    /// address on its bridge and an /etc/hosts naming the guests on it.
    #[arg(long, value_name = "NAME", conflicts_with = "net")]
    pub network: Option<String>,
    /// A name the other guests on the network know this one by (repeatable;
    /// a detached instance's --name is one).
    #[arg(long = "network-alias", value_name = "NAME", requires = "network")]
    pub network_aliases: Vec<String>,
    /// The guest's MAC address (default: derived from its address).
    #[arg(long, value_name = "MAC", requires = "net", value_parser = parse_mac, hide = true)]
    pub mac: Option<[u8; 6]>,
    /// Tie the --net tap to this interface both ways with a tc redirect
    /// (volt-runtime's pod networking: the guest takes the pod's address).
    #[arg(long, value_name = "IFACE", requires = "net", hide = true)]
    pub redirect: Option<String>,
    /// Join the network of service SERVICE (`volt service create`): the
    /// guest resolves `NAME.internal` (the services and replicas there)
    /// through voltd's DNS on the network's gateway.
    #[arg(long = "service-net", value_name = "SERVICE", conflicts_with_all = ["net", "network"])]
    pub service_net: Option<String>,
    /// A name server for the guest's /etc/resolv.conf (repeatable).
    #[arg(long = "dns", value_name = "ADDR")]
    pub dns: Vec<std::net::Ipv4Addr>,
    /// An /etc/hosts line for the guest: NAME:IP (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<String>,
    /// The guest's default gateway.
    #[arg(long, value_name = "ADDR", requires = "ip")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Publish a guest port on the host, as docker does:
    /// `[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]` (repeatable). Without
    /// `--net`, volt makes a tap of its own for it (needs root or
    /// CAP_NET_ADMIN), removed when volt ends.
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[HOST_IP:]HOST_PORT:GUEST_PORT[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// The program's working directory in the guest (default: the image's,
    /// else /); made if missing.
    #[arg(short = 'w', long, value_name = "DIR", value_parser = parse_workdir)]
    pub workdir: Option<String>,
    /// Mount a host directory or a named volume: `SRC:DST[:ro]`
    /// (repeatable). SRC with a `/` (or starting with `.`) is a host
    /// directory; otherwise a named volume, made if missing.
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// The x86-64 Linux executable to run (static, or dynamically linked:
    /// its loader and libraries are gathered from this host, or must be in
    /// --rootfs), or an image from `volt images`, then its arguments (for
    /// an image they replace its command). Everything after BINARY goes to
    /// the program, options included (`volt run python3 -m http.server`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "BINARY|IMAGE [ARGS]..."
    )]
    pub command: Vec<std::ffi::OsString>,
}

impl RunArgs {
    /// The `volt run` arguments that run the same thing in the foreground
    /// (what a detached instance's supervisor runs): every option but
    /// -d, --name and --restart, then the command.
    pub fn foreground_args(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut opt = |k: &str, val: String| {
            v.push(k.to_string());
            v.push(val);
        };
        if let Some(m) = self.memory {
            opt("--memory", format!("{}K", m >> 10));
        }
        for e in &self.env {
            opt("--env", e.clone());
        }
        if self.syscalls != "patch" {
            opt("--syscalls", self.syscalls.clone());
        }
        if let Some(t) = self.timeout {
            opt("--timeout", t.to_string());
        }
        if let Some(r) = &self.rootfs {
            opt("--rootfs", r.to_string_lossy().into_owned());
        }
        for i in &self.include {
            opt("--include", i.to_string_lossy().into_owned());
        }
        match &self.net {
            Some(NetArg::Tap(t)) => opt("--net", format!("tap:{t}")),
            Some(NetArg::None) => opt("--net", "none".into()),
            None => {}
        }
        if let Some((ip, prefix)) = self.ip {
            opt("--ip", format!("{}/{prefix}", std::net::Ipv4Addr::from(ip)));
        }
        if let Some(g) = self.gateway {
            opt("--gateway", g.to_string());
        }
        if let Some(n) = &self.network {
            opt("--network", n.clone());
            for alias in self.network_aliases.iter().chain(&self.name) {
                opt("--network-alias", alias.clone());
            }
        }
        for h in &self.add_hosts {
            opt("--add-host", h.clone());
        }
        for d in &self.dns {
            opt("--dns", d.to_string());
        }
        for p in &self.publish {
            opt("--publish", p.clone());
        }
        if let Some(w) = &self.workdir {
            opt("--workdir", w.clone());
        }
        for spec in &self.volumes {
            // Absolute, so that the supervisor mounts the same directory.
            let v = crate::volumes::parse(spec).and_then(|m| crate::volumes::resolve(&[m]));
            match v.as_deref() {
                Ok([one]) => opt("--volume", crate::volumes::spec_of(one)),
                _ => opt("--volume", spec.clone()),
            }
        }
        if self.timing {
            v.push("--timing".into());
        }
        if self.trace_syscalls {
            v.push("--trace-syscalls".into());
        }
        if let Some(s) = &self.stats {
            v.push(if s == "all" { "--stats=all" } else { "--stats" }.into());
        }
        if self.guest_loader {
            v.push("--guest-loader".into());
        }
        v.extend(
            self.command
                .iter()
                .map(|c| c.to_string_lossy().into_owned()),
        );
        v
    }

    /// The program (the first word of the command).
    pub fn binary(&self) -> PathBuf {
        self.command.first().map(PathBuf::from).unwrap_or_default()
    }

    /// Its arguments.
    pub fn args(&self) -> &[std::ffi::OsString] {
        self.command.get(1..).unwrap_or(&[])
    }
}

fn guest_env(specs: &[String]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for s in specs {
        if s.is_empty() || s.starts_with('=') {
            bail!("invalid --env '{s}' (expected KEY=VALUE)");
        }
        if s.contains('=') {
            out.push(s.as_bytes().to_vec());
        } else if let Some(v) = std::env::var_os(s) {
            let mut e = s.as_bytes().to_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            out.push(e);
        }
    }
    Ok(out)
}

/// The default `--memory`.
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// The stored image `volt run` names, if it names one rather than a file:
/// an existing host path always wins, and names that look like paths are
/// left to the file checks.
fn find_image(a: &RunArgs) -> Result<Option<(Store, Image)>> {
    let b = a.binary();
    let name = b.to_string_lossy();
    if a.rootfs.is_some()
        || !a.include.is_empty()
        || name.starts_with('.')
        || name.starts_with('/')
        || std::fs::symlink_metadata(&b).is_ok()
    {
        return Ok(None);
    }
    let data = crate::store::data_dir();
    if !data.join("images/index.json").exists() {
        if Reference::parse(&name).is_ok() && !name.contains('/') {
            bail!("{name}: no such file, and no such image (volt images lists them)");
        }
        return Ok(None);
    }
    let store = Store::open(&data)?;
    match store.find(&name)? {
        Some(img) => Ok(Some((store, img))),
        None if Reference::parse(&name).is_ok() => {
            bail!("{name}: no such file, and no such image (volt images lists them)")
        }
        None => Ok(None),
    }
}

/// `KEY=VALUE` list `over` applied on top of `base`.
fn merge_env(base: Vec<String>, over: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let key = |e: &[u8]| e.split(|&b| b == b'=').next().map(<[u8]>::to_vec);
    let mut out: Vec<Vec<u8>> = base.into_iter().map(String::into_bytes).collect();
    for e in over {
        let k = key(&e);
        out.retain(|b| key(b) != k);
        out.push(e);
    }
    out
}

/// `volt run -d` (and voltd's create): checks what can be checked now, so
/// that a typo fails here rather than in the log, records the instance and
/// starts its supervisor; the instance's ID.
pub fn detach(a: &RunArgs) -> Result<String> {
    let image = find_image(a)?.map(|(_, img)| img.reference.to_string());
    if image.is_none() && a.rootfs.is_none() && std::fs::metadata(a.binary()).is_err() {
        bail!("{}: no such file, and no such image", a.binary().display());
    }
    crate::instances::detach_id(a, image)
}

/// Parses `volt run` arguments (without `volt run`), for voltd.
pub fn parse_args(args: &[String]) -> Result<RunArgs> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }
    let it = std::iter::once("run".to_string()).chain(args.iter().cloned());
    <Wrap as clap::Parser>::try_parse_from(it)
        .map(|w| w.run)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.to_string().lines().next().unwrap_or("bad arguments")
            )
        })
}

/// `--service-net SERVICE`: the service's network, and voltd's resolver
/// on its gateway.
fn join_service_net(a: &mut RunArgs) -> Result<()> {
    let Some(svc) = a.service_net.take() else {
        return Ok(());
    };
    let name = crate::service::store::network_of(&svc)?;
    let mut db = crate::network::db()?;
    let net = crate::network::find(&mut db, &name)?
        .ok_or_else(|| anyhow::anyhow!("service {svc}: its network {name} is gone"))?;
    a.network = Some(name);
    a.dns.insert(0, net.gateway());
    Ok(())
}

/// The guest's /etc/resolv.conf for `--dns`.
pub fn resolv_conf(dns: &[std::net::Ipv4Addr]) -> String {
    let mut s = String::from("search internal\noptions ndots:1 timeout:2 attempts:2\n");
    for d in dns {
        s.push_str(&format!("nameserver {d}\n"));
    }
    s
}

pub fn run(mut a: RunArgs, started: Instant) -> Result<i32> {
    join_service_net(&mut a)?;
    let mounts = a
        .volumes
        .iter()
        .map(|s| crate::volumes::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let volumes = crate::volumes::resolve(&mounts)?;
    if a.detach {
        if let Some(h) = crate::remote::host()? {
            println!("{}", h.create(&a)?);
            return Ok(0);
        }
        let id = detach(&a)?;
        println!("{id}");
        return Ok(0);
    }
    if !a.publish.is_empty()
        && a.net.is_none()
        && a.network.is_none()
        && !hostnet::may_create_taps()
        && !publish::rootless::inside()
        // SAFETY: geteuid has no preconditions and cannot fail.
        && unsafe { libc::geteuid() } != 0
    {
        // Checked before pasta starts: a typo costs one line, as with root.
        return publish::rootless::run(&port_maps(&a)?);
    }
    let timeout = match a.timeout {
        Some(t) if !(t > 0.0 && t < 1e9) => bail!("invalid --timeout {t} (expected seconds > 0)"),
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    publish::rootless::started();
    let user_env = guest_env(&a.env)?;
    // Everything the user can get wrong is checked before a VM exists.
    let stored = match find_image(&a)? {
        Some((store, img)) => {
            tracing::info!(image = %img.reference, digest = %img.digest(), "running an image");
            Some(image::stored::pack_image(&store, &img, a.args())?)
        }
        None => None,
    };
    let (app, argv, env, image_memory, image_sites, image_workdir) = match stored {
        Some(s) => (
            s.app,
            s.argv.into_iter().map(String::into_bytes).collect(),
            merge_env(s.env, user_env),
            s.memory,
            Some(s.sites),
            s.workdir,
        ),
        None => {
            let mut argv = vec![a.binary().as_os_str().as_bytes().to_vec()];
            argv.extend(a.args().iter().map(|s| s.as_bytes().to_vec()));
            let app = image::pack(&a.binary(), a.rootfs.as_deref(), &a.include)?;
            (app, argv, user_env, None, None, None)
        }
    };
    let workdir = a.workdir.clone().or(image_workdir);
    let memory = a.memory.or(image_memory).unwrap_or(DEFAULT_MEMORY);
    // Packing may have read and freed megabytes (libraries, trees): give
    // the heap's free pages back, as every instance would keep them.
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let no_net = matches!(a.net, Some(NetArg::None));
    if no_net && !a.publish.is_empty() {
        bail!("-p needs the network: it cannot be combined with --net none");
    }
    if no_net && a.ip.is_some() {
        bail!("--ip needs a network device: it cannot be combined with --net none");
    }
    if a.ip.is_some() && a.net.is_none() && a.network.is_none() {
        bail!("--ip needs --net tap:NAME or --network NAME");
    }
    // An address on a volt network, held while this process runs.
    let held = match &a.network {
        Some(n) => Some(crate::network::lease(
            n,
            a.ip.map(|(ip, _)| std::net::Ipv4Addr::from(ip)),
            &a.network_aliases,
            &a.add_hosts,
        )?),
        None => None,
    };
    let joined_tap = format!("vt{}", std::process::id());
    let tap = match (&a.net, &held) {
        (Some(NetArg::Tap(t)), _) => Some(t.as_str()),
        (_, Some(_)) => Some(joined_tap.as_str()),
        _ => None,
    };
    let files = match &held {
        Some(h) => vec![("/etc/hosts".to_string(), h.hosts.clone().into_bytes())],
        None if !a.add_hosts.is_empty() => {
            let hosts = crate::network::hosts_file([0; 4].into(), &[], &[], &a.add_hosts)?;
            vec![("/etc/hosts".to_string(), hosts.into_bytes())]
        }
        None => Vec::new(),
    };
    let mut files = files;
    if !a.dns.is_empty() {
        files.push((
            "/etc/resolv.conf".to_string(),
            resolv_conf(&a.dns).into_bytes(),
        ));
    }
    let (variant, libos) = crate::libos_variant(!no_net);
    let (_, libos_end) = optivolt_vmm::builder::inspect_libos(libos)?;
    let rootfs_len: u64 = app.rootfs_slices().iter().map(|p| p.len() as u64).sum();
    let mut need = optivolt_vmm::min_memory(libos_end, rootfs_len, app.load_size);
    if tap.is_some() || !a.publish.is_empty() {
        need += optivolt_vmm::builder::net_region_size();
    }
    if memory < need {
        bail!(
            "--memory {} is too small for {}: it needs at least {} MiB",
            human(memory),
            a.binary().display(),
            need.div_ceil(1 << 20)
        );
    }
    let kvm = optivolt_vmm::check_kvm()?;
    // Published ports: host sockets first (a port in use stops us here),
    // then the network the guest is reached on.
    let maps = port_maps(&a)?;
    let auto = if !maps.is_empty() && tap.is_none() {
        if !hostnet::may_create_taps() {
            bail!("-p needs CAP_NET_ADMIN: volt creates a tap for the guest (an ordinary user's volt goes through pasta instead; or attach a tap you made with --net tap:NAME --ip ADDR/PREFIX)");
        }
        Some(hostnet::choose()?)
    } else {
        None
    };
    let bound = if maps.is_empty() {
        None
    } else {
        Some(proxy::bind(&maps)?)
    };
    let net = match (tap, &auto) {
        (Some(tap), _) if held.is_some() => held.as_ref().map(|h| NetConfig {
            netns: Some(crate::network::setup::netns_path(&h.net.name)),
            ..net_config(tap, h.ip.octets(), h.net.prefix, h.net.gateway().octets())
        }),
        (Some(tap), _) => {
            let (ipv4, prefix) = a.ip.unwrap_or(([0; 4], 0));
            let mut n = net_config(tap, ipv4, prefix, a.gateway.map_or([0; 4], |g| g.octets()));
            if let Some(mac) = a.mac {
                n.mac = mac;
            }
            Some(n)
        }
        (None, Some(n)) => Some(net_config(
            &n.tap,
            n.guest.octets(),
            hostnet::PREFIX,
            n.host.octets(),
        )),
        (None, None) => None,
    };
    if bound.is_some() && net.as_ref().is_some_and(|n| n.ipv4 == [0; 4]) {
        bail!("-p needs the guest's address: give --ip with --net");
    }

    // The sites the library OS may patch, found ahead of time (cached).
    let sites = match (a.syscalls == "patch", image_sites) {
        (false, _) => Vec::new(),
        (true, Some(s)) => s,
        (true, None) => site_table(&a, app.program_bytes(), &app.libraries),
    };
    let cfg = VmConfig {
        libos,
        rootfs: app.rootfs_slices(),
        rootfs_file: app.mapped_part(),
        program_file: app.program_file(),
        exec_path: app.exec_path.clone(),
        program: (!a.guest_loader).then_some(app.program_bytes()),
        sites: &sites,
        argv,
        env,
        memory,
        trace_syscalls: a.trace_syscalls,
        syscalls_trap: a.syscalls == "trap",
        stats: match a.stats.as_deref() {
            None => 0,
            Some("all") => 2,
            Some(_) => 1,
        },
        timing: a.timing,
        timeout,
        started,
        net,
        volumes,
        files,
        workdir,
    };
    let mut vm = Vm::create_with(kvm, &cfg)?;
    if let Some(n) = &auto {
        hostnet::configure(&n.tap, n.host, hostnet::PREFIX).map_err(|e| {
            anyhow::anyhow!(
                "cannot give the guest's tap {} the address {}: {e}",
                n.tap,
                n.host
            )
        })?;
    }
    if let (Some(h), Some(tap)) = (&held, tap) {
        crate::network::setup::enslave(&h.net.name, tap)?;
    }
    if let (Some(iface), Some(tap)) = (&a.redirect, tap) {
        crate::runtime::podnet::redirect(iface, tap)?;
    }
    if let (Some(b), Some(n)) = (bound, &cfg.net) {
        proxy::spawn(b, std::net::Ipv4Addr::from(n.ipv4), n.netns.clone())?;
    }
    if let Some(sock) = std::env::var_os(crate::snapshot::CONTROL_ENV) {
        crate::snapshot::control::serve(std::path::Path::new(&sock), vm.control())?;
    }
    // SIGTERM (volt stop), SIGINT (a terminal) and the like go to the program.
    vm.forward_signals();
    let outcome = vm.run()?;
    drop(cfg);
    if !matches!(outcome, Outcome::Exited(_) | Outcome::Snapshotted(_)) {
        eprintln!("volt: {outcome}");
    }
    let code = outcome.exit_code();
    if a.stats.is_some() {
        eprint!("{}", vm.stats());
    }
    if a.timing {
        let timing = vm.timing().clone();
        drop(vm);
        // Tearing the VM down is part of what a user waits for.
        let end = started.elapsed();
        eprint!("{timing}");
        eprintln!("  {:<12} {:>10.1}", "vm_closed", end.as_secs_f64() * 1e6);
        eprintln!(
            "  library OS variant: {variant} ({} KiB)",
            libos.len().div_ceil(1024)
        );
    }
    Ok(code)
}

/// The encoded table of patchable sites of the program (empty if it cannot
/// be read as an ELF: the library OS then patches by shape only).
fn site_table(a: &RunArgs, program: &[u8], libraries: &[PathBuf]) -> Vec<u8> {
    let host_path = match &a.rootfs {
        Some(r) => {
            let b = a.binary();
            r.join(b.strip_prefix("/").unwrap_or(&b))
        }
        None => a.binary(),
    };
    let (Ok(elf), Ok(bias)) = (
        optivolt_abi::elf::Elf::parse(program),
        optivolt_vmm::builder::program_bias(program),
    ) else {
        return Vec::new();
    };
    let mut table = image::sites::with_program(&image::sites::encode(
        &image::sites::sites_for(&host_path, &elf),
        bias,
    ));
    for lib in libraries {
        let Some(sites) = image::sites::sites_of_file(lib) else {
            continue;
        };
        let pairs = image::sites::encode(&sites, 0);
        image::sites::push_library(&mut table, lib.as_os_str().as_encoded_bytes(), &pairs);
    }
    table
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}

/// What `--net` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetArg {
    /// A tap device by name.
    Tap(String),
    /// No network at all (the library OS without the network).
    None,
}

fn parse_net(s: &str) -> Result<NetArg, String> {
    if s == "none" {
        return Ok(NetArg::None);
    }
    match s.strip_prefix("tap:") {
        Some(name)
            if !name.is_empty()
                && name.len() < 16
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/') =>
        {
            Ok(NetArg::Tap(name.to_string()))
        }
        _ => Err(format!(
            "invalid --net '{s}' (expected tap:NAME, NAME at most 15 characters, or none)"
        )),
    }
}

/// The `-p` mappings, parsed and checked for clashes.
fn port_maps(a: &RunArgs) -> Result<Vec<PortMapping>> {
    let maps = a
        .publish
        .iter()
        .map(|p| p.parse::<PortMapping>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    publish::check_unique(&maps).map_err(anyhow::Error::msg)?;
    Ok(maps)
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    crate::runtime::podnet::parse_mac(s)
        .ok_or_else(|| format!("--mac {s}: expected aa:bb:cc:dd:ee:ff"))
}

fn parse_workdir(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.contains('\0') {
        return Err(format!("--workdir {s}: an absolute guest path"));
    }
    Ok(s.to_string())
}

pub fn parse_cidr(s: &str) -> Result<([u8; 4], u8), String> {
    let bad =
        || format!("invalid --ip '{s}' (expected an IPv4 address with prefix, e.g. 10.0.7.2/24)");
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let a: std::net::Ipv4Addr = a.parse().map_err(|_| bad())?;
    let p: u8 = p
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(bad)?;
    Ok((a.octets(), p))
}

/// A guest's MAC address: locally administered, derived from its address.
pub fn guest_mac(ipv4: [u8; 4]) -> [u8; 6] {
    [0x02, 0x6f, ipv4[0], ipv4[1], ipv4[2], ipv4[3]]
}

fn net_config(tap: &str, ipv4: [u8; 4], prefix: u8, gateway: [u8; 4]) -> NetConfig {
    NetConfig {
        tap: tap.to_owned(),
        mac: guest_mac(ipv4),
        ipv4,
        prefix,
        gateway,
        netns: None,
    }
}
