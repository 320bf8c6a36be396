//! `volt`: run ordinary Linux programs as OptiVolt unikernels. The binary's
//! entry point is in `main.rs`; everything else is here.
use std::time::Instant;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod compose;
pub mod energy;
pub mod image;
pub mod images;
pub mod instance;
pub mod instances;
pub mod network;
pub mod procfs;
pub mod publish;
pub mod remote;
pub mod restart;
pub mod run;
pub mod runtime;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod voltfile;
pub mod volumes;

/// The library OS image with the network (smoltcp, virtio-net, sockets),
/// built by build.rs.
pub static LIBOS: &[u8] = include_bytes!(env!("OPTIVOLT_LIBOS_PATH"));
/// The library OS image without the network (`volt run --net none`).
pub static LIBOS_NONET: &[u8] = include_bytes!(env!("OPTIVOLT_LIBOS_NONET_PATH"));

/// The library OS variant for a run: its name (for `--timing`) and image.
pub fn libos_variant(network: bool) -> (&'static str, &'static [u8]) {
    if network {
        ("net", LIBOS)
    } else {
        ("nonet", LIBOS_NONET)
    }
}

#[derive(Parser)]
#[command(
    name = "volt",
    version,
    about = "Run ordinary Linux programs as KVM unikernels",
    propagate_version = true
)]
struct Cli {
    /// Log what volt does on stderr (-v: steps, -vv: details), given before
    /// the command (`volt -v run …`: after it, `-v` is `run`'s volume);
    /// RUST_LOG (e.g. `RUST_LOG=optivolt_volt=debug`) overrides it.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Talk to voltd there (unix:///PATH or tcp://ADDR:PORT) for ps, run -d,
    /// stop, start, restart, rm, logs and inspect; VOLT_HOST does the same.
    #[arg(long, global = true, value_name = "URL")]
    host: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Sets up `tracing` on stderr when asked for (-v or RUST_LOG): otherwise
/// nothing is installed, and log calls cost next to nothing.
fn init_logging(verbose: u8) {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    if verbose == 0 && !from_env {
        return;
    }
    let filter = if from_env {
        tracing_subscriber::EnvFilter::from_default_env()
    } else {
        tracing_subscriber::EnvFilter::new(if verbose == 1 { "info" } else { "debug" })
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[derive(Subcommand)]
enum Command {
    /// Boot an x86-64 Linux binary or an image as a unikernel and wait for it.
    Run(Box<run::RunArgs>),
    /// Build an image from a Voltfile.
    Build(images::BuildArgs),
    /// List images.
    Images(images::ListArgs),
    /// Remove images (a name removes that tag, an ID every tag).
    Rmi(images::RmiArgs),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Send an image to a registry.
    Push(images::TransferArgs),
    /// Fetch an image from a registry.
    Pull(images::TransferArgs),
    /// Store credentials for a registry (checked first).
    Login(images::LoginArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// List instances (running ones; -a for all).
    Ps(instances::PsArgs),
    /// Print an instance's output.
    Logs(instances::LogsArgs),
    /// Stop instances: SIGTERM, then SIGKILL after -t seconds.
    Stop(instances::StopArgs),
    /// Start stopped instances again.
    Start(instances::NamesArgs),
    /// Stop, then start instances.
    Restart(instances::StopArgs),
    /// Remove instances (-f: running ones too).
    Rm(instances::RmArgs),
    /// Print instances as JSON.
    Inspect(instances::NamesArgs),
    /// Run the services of a compose file (compose.yaml) together.
    Compose(compose::ComposeArgs),
    /// Manage networks (bridges guests share; `volt run --network`).
    #[command(subcommand)]
    Network(network::cli::NetworkCommand),
    /// Manage volumes (host directories and named volumes for `volt run -v`).
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Manage services: replicas behind voltd's load balancer, scaled to
    /// zero and back, updated one replica at a time.
    #[command(subcommand)]
    Service(service::cli::ServiceCommand),
    /// Save a running instance's VM to a file (restore it with `volt restore`).
    Snapshot(snapshot::SnapshotArgs),
    /// Save running instances and stop them; `volt start` restores them.
    Standby(instances::NamesArgs),
    /// Start an instance from a file written by `volt snapshot`.
    Restore(snapshot::RestoreArgs),
    /// Benchmarks (boot time against a process and the bare-KVM floor).
    Bench(bench::BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print volt's manual page (roff: `volt man | man -l -`).
    Man,
    /// The supervisor of a detached instance (started by volt itself).
    #[command(name = "__supervise", hide = true)]
    Supervise { id: String },
}

/// The `volt` executable: this one, or (for voltd and volt-runtime) the
/// `volt` beside it, else on PATH.
pub fn volt_exe() -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    if me.file_name().is_some_and(|n| n == "volt") {
        return Ok(me);
    }
    let beside = me.with_file_name("volt");
    if beside.exists() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("volt"))
        .find(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("volt not found beside {} or on PATH", me.display()))
}

/// Parses the command line and runs the command; returns the exit status.
pub fn real_main(started: Instant) -> i32 {
    // std::env::args works without the Rust runtime: glibc hands argv to std's
    // .init_array hook.
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Some(h) = &cli.host {
        // SAFETY: set before any other thread exists; read by remote::host.
        unsafe { std::env::set_var("VOLT_HOST", h) };
    }
    let result = match cli.command {
        Command::Run(a) => run::run(*a, started),
        Command::Build(a) => images::build(a),
        Command::Images(a) => images::list(a),
        Command::Rmi(a) => images::rmi(a),
        Command::Tag(a) => images::tag(a),
        Command::Push(a) => images::push(a),
        Command::Pull(a) => images::pull(a),
        Command::Login(a) => images::login(a),
        Command::Image(c) => images::image(c),
        Command::Ps(a) => instances::ps(a),
        Command::Logs(a) => instances::logs_cmd(a),
        Command::Stop(a) => instances::stop(a),
        Command::Start(a) => instances::start(a),
        Command::Restart(a) => instances::restart(a),
        Command::Rm(a) => instances::rm(a),
        Command::Inspect(a) => instances::inspect(a),
        Command::Volume(c) => volumes::volume(c),
        Command::Network(c) => network::cli::network(c),
        Command::Compose(a) => compose::compose(a),
        Command::Service(c) => service::cli::service(c),
        Command::Snapshot(a) => snapshot::snapshot_cmd(a),
        Command::Standby(a) => snapshot::standby_cmd(a),
        Command::Restore(a) => snapshot::restore_cmd(a, started),
        Command::Bench(a) => bench::bench(a),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "volt", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map(|_| 0)
                .map_err(anyhow::Error::from)
        }
        Command::Supervise { id } => instance::supervise::supervise(&id),
    };
    match result {
        Ok(code) => code & 0xff,
        Err(e) => {
            eprintln!("volt: {e:#}");
            optivolt_abi::exit::VOLT_ERROR
        }
    }
}
