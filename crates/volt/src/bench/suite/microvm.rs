//! The suite's microVM runtimes: a Linux kernel the user gives
//! (`--kernel VMLINUX`) booted by QEMU's `microvm` machine or by
//! Firecracker, with an initramfs whose `/init` is the workload's binary.
//! Only boot-to-exit workloads run there: the suite gives a microVM no
//! disk and no network. On nested-PVM hosts such a kernel may never reach
//! `/init`, so every run has a time limit and a run that reaches it says
//! so instead of giving a figure.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

/// Which monitor boots the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    Qemu,
    Firecracker,
}

/// A microVM runtime: its monitor's binary, the kernel, the time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicroVm {
    pub monitor: Monitor,
    pub bin: PathBuf,
    pub kernel: PathBuf,
    pub limit: Duration,
}

/// The kernel's command line: the serial console, `/init` from the
/// initramfs with `args`, and out (no reboot) when init ends.
fn cmdline(monitor: Monitor, args: &[String]) -> String {
    let base = match monitor {
        // QEMU -no-reboot turns the reboot after the panic into an exit.
        Monitor::Qemu => "console=ttyS0 earlyprintk=ttyS0 rdinit=/init panic=-1 quiet",
        // Firecracker ends when the guest resets through the i8042.
        Monitor::Firecracker => {
            "console=ttyS0 earlyprintk=ttyS0 rdinit=/init reboot=k panic=1 pci=off quiet"
        }
    };
    if args.is_empty() {
        base.to_string()
    } else {
        format!("{base} -- {}", args.join(" "))
    }
}

impl MicroVm {
    /// The command that boots `initrd` with `args` for init, in `memory`
    /// bytes; Firecracker's configuration is written into `work`.
    pub fn command(
        &self,
        initrd: &Path,
        args: &[String],
        memory: u64,
        work: &Path,
    ) -> Result<Command> {
        let line = cmdline(self.monitor, args);
        let mib = (memory >> 20).max(1);
        match self.monitor {
            Monitor::Qemu => {
                let mut c = Command::new(&self.bin);
                // The host's CPU, less IA32_ARCH_CAPABILITIES: QEMU 7.2
                // writes that MSR at reset, PVM refuses it, and QEMU aborts.
                c.args(["-M", "microvm", "-accel", "kvm", "-smp", "1"])
                    .args(["-cpu", "host,arch-capabilities=off"])
                    .arg("-m")
                    .arg(format!("{mib}M"))
                    .args(["-nodefaults", "-no-user-config", "-nographic"])
                    .args(["-serial", "stdio", "-no-reboot"])
                    .arg("-kernel")
                    .arg(&self.kernel)
                    .arg("-initrd")
                    .arg(initrd)
                    .arg("-append")
                    .arg(line);
                Ok(c)
            }
            Monitor::Firecracker => {
                let cfg = serde_json::json!({
                    "boot-source": {
                        "kernel_image_path": self.kernel,
                        "initrd_path": initrd,
                        "boot_args": line,
                    },
                    "drives": [],
                    "machine-config": { "vcpu_count": 1, "mem_size_mib": mib },
                });
                let file = work.join("firecracker.json");
                std::fs::write(&file, serde_json::to_vec_pretty(&cfg)?)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                let mut c = Command::new(&self.bin);
                c.arg("--no-api").arg("--config-file").arg(file);
                Ok(c)
            }
        }
    }
}

/// Writes an initramfs (the kernel's "newc" cpio format) holding `bin` as
/// `/init` into `dir`; its path. A dozen lines of a documented format, so
/// no cpio crate or tool is needed.
pub fn initramfs(dir: &Path, bin: &Path) -> Result<PathBuf> {
    let data = std::fs::read(bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let mut out = Vec::with_capacity(data.len() + 512);
    entry(&mut out, 1, "dev", 0o040755, &[]);
    entry(&mut out, 2, "init", 0o100755, &data);
    entry(&mut out, 0, "TRAILER!!!", 0, &[]);
    let path = dir.join(format!(
        "{}.cpio",
        bin.file_name().and_then(|n| n.to_str()).unwrap_or("init")
    ));
    let mut f = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(&out)?;
    Ok(path)
}

/// One newc entry: the header's thirteen 8-digit hex fields, the name with
/// its NUL, then the data, each padded to 4 bytes.
fn entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for v in fields {
        out.extend_from_slice(format!("{v:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initramfs_is_newc_with_init_and_a_trailer() {
        let dir = crate::store::build::tempdir("initramfs-test").unwrap();
        let bin = dir.path().join("hello");
        std::fs::write(&bin, b"\x7fELF-ish").unwrap();
        let p = initramfs(dir.path(), &bin).unwrap();
        let b = std::fs::read(p).unwrap();
        assert!(b.len().is_multiple_of(4));
        assert!(b.starts_with(b"070701"));
        let init = b.windows(5).position(|w| w == b"init\0").unwrap();
        // The header before the name: 6 + 13 * 8 bytes; its file size field
        // (the 7th) is the data's length.
        let h = &b[init - 110..init];
        assert_eq!(&h[6 + 6 * 8..6 + 7 * 8], b"00000008");
        assert_eq!(&h[6 + 8..6 + 2 * 8], b"000081ed");
        let data_at = (init + 5).div_ceil(4) * 4;
        assert_eq!(&b[data_at..data_at + 8], b"\x7fELF-ish");
        assert!(b.windows(11).any(|w| w == b"TRAILER!!!\0"));
    }

    #[test]
    fn the_command_lines_pass_the_arguments_to_init() {
        let l = cmdline(Monitor::Qemu, &["suite".into()]);
        assert!(l.contains("rdinit=/init") && l.ends_with("-- suite"), "{l}");
        assert!(!cmdline(Monitor::Firecracker, &[]).contains("--"));
    }
}
