//! `volt run`.
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use optivolt_vmm::{Outcome, Vm, VmConfig};

use crate::{image, size, LIBOS};

#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Guest memory, e.g. 4M, 128M, 1G (a bare number is MiB).
    #[arg(short, long, default_value = "64M", value_parser = size::parse)]
    pub memory: u64,
    /// Set an environment variable in the guest (KEY=VALUE, or KEY to copy it from here).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Print the boot-time breakdown on stderr.
    #[arg(long)]
    pub timing: bool,
    /// Print every system call the guest makes on stderr (strace-style).
    #[arg(long)]
    pub trace_syscalls: bool,
    /// Stop the guest after this many seconds (exit status 124).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// A directory that becomes the guest's root file system; BINARY may then
    /// be a path inside it (e.g. /bin/app).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Let the library OS load the executable from the rootfs instead of the
    /// monitor placing its segments (slower; for testing the in-guest loader).
    #[arg(long, hide = true)]
    pub guest_loader: bool,
    /// The static x86-64 Linux executable to run.
    pub binary: PathBuf,
    /// Arguments passed to the program.
    #[arg(allow_hyphen_values = true)]
    pub args: Vec<std::ffi::OsString>,
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

pub fn run(a: RunArgs, started: Instant) -> Result<i32> {
    let timeout = match a.timeout {
        Some(t) if !(t > 0.0 && t < 1e9) => bail!("invalid --timeout {t} (expected seconds > 0)"),
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let env = guest_env(&a.env)?;
    // Everything the user can get wrong is checked before a VM exists.
    let app = image::pack(&a.binary, a.rootfs.as_deref())?;
    let (_, libos_end) = optivolt_vmm::builder::inspect_libos(LIBOS)?;
    let rootfs_len: u64 = app.rootfs_slices().iter().map(|p| p.len() as u64).sum();
    let need = optivolt_vmm::min_memory(libos_end, rootfs_len, app.load_size);
    if a.memory < need {
        bail!(
            "--memory {} is too small for {}: it needs at least {} MiB",
            human(a.memory),
            a.binary.display(),
            need.div_ceil(1 << 20)
        );
    }
    let kvm = optivolt_vmm::check_kvm()?;

    let mut argv = vec![a.binary.as_os_str().as_bytes().to_vec()];
    argv.extend(a.args.iter().map(|s| s.as_bytes().to_vec()));
    let cfg = VmConfig {
        libos: LIBOS,
        rootfs: app.rootfs_slices(),
        exec_path: app.exec_path.clone(),
        program: (!a.guest_loader).then_some(&app.program[..]),
        argv,
        env,
        memory: a.memory,
        trace_syscalls: a.trace_syscalls,
        timing: a.timing,
        timeout,
        started,
    };
    let mut vm = Vm::create_with(kvm, &cfg)?;
    let outcome = vm.run()?;
    drop(cfg);
    if !matches!(outcome, Outcome::Exited(_)) {
        eprintln!("volt: {outcome}");
    }
    let code = outcome.exit_code();
    if a.timing {
        let timing = vm.timing().clone();
        drop(vm);
        // Tearing the VM down is part of what a user waits for.
        let end = started.elapsed();
        eprint!("{timing}");
        eprintln!("  {:<12} {:>10.1}", "vm_closed", end.as_secs_f64() * 1e6);
    }
    Ok(code)
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}
