//! The kernel context: the state every system call works on, boot, and
//! the fault and panic paths.
//!
//! All of it runs at CPL 3 with interrupts disabled (the system-call and
//! exception gates clear IF), on one vCPU; the global state is behind a spin
//! lock so that SMP stays possible.
pub mod boot;
pub mod fault;
pub mod sites;

use optivolt_abi::boot::BootInfo;
use spin::Mutex;

use crate::rand::Csprng;

/// Everything the library OS knows.
pub struct Kernel {
    /// A copy of the boot information.
    pub boot: BootInfo,
    /// Page tables, frames and the application's address space.
    pub mem: crate::mm::space::Memory,
    /// The (single) process.
    pub proc: crate::task::process::Process,
    /// Randomness for getrandom(2) when RDRAND is missing.
    pub rng: Csprng,
    /// `--trace-syscalls`.
    pub trace: bool,
    /// The file system (rootfs unpacked, writable), built on first use.
    pub fs: LazyVfs,
    /// Open descriptors.
    pub fds: crate::fd::file::FdTable,
    /// Current directory.
    pub cwd: crate::fs::resolve::Loc,
    /// Whether trapped `syscall` sites are rewritten into jumps.
    pub patching: bool,
    /// Where the trampolines of patched sites go: below the program's code,
    /// and below the dynamic loader for the libraries it maps.
    pub trampolines: alloc::vec::Vec<crate::arch::patch::Trampolines>,
    /// The sites volt found ahead of time, the program's and the libraries'.
    pub sites: sites::Sites,
}

impl Kernel {
    /// Nanoseconds since boot (MONOTONIC), from the TSC: no exit.
    pub fn uptime_ns(&self) -> u64 {
        crate::time::ticks_to_ns(
            crate::arch::cpu::rdtsc().wrapping_sub(self.boot.boot_tsc),
            self.boot.tsc_khz,
        )
    }

    /// The value of clock `clock` in nanoseconds.
    pub fn clock_ns(&self, clock: u64) -> Result<u64, i64> {
        let up = self.uptime_ns();
        match clock {
            0 | 5 | 11 => Ok(self.boot.wallclock_ns + up), // REALTIME, REALTIME_COARSE, TAI
            1 | 4 | 6 | 7 | 8 | 9 => Ok(up), // MONOTONIC(_RAW/_COARSE), BOOTTIME(_ALARM)
            2 => Ok(crate::time::ticks_to_ns(
                crate::task::sched::cpu_ticks(true),
                self.boot.tsc_khz,
            )), // PROCESS_CPUTIME
            3 => Ok(crate::time::ticks_to_ns(
                crate::task::sched::cpu_ticks(false),
                self.boot.tsc_khz,
            )), // THREAD_CPUTIME
            _ => Err(crate::errno::EINVAL),
        }
    }
}

/// The VFS, unpacked from the rootfs the first time a system call needs it:
/// a program that never opens a file never pays for it (first touches of
/// code and heap pages cost microseconds each under PVM).
pub struct LazyVfs {
    cell: core::cell::OnceCell<crate::fs::vfs::Vfs>,
    rootfs: &'static [u8],
    exec_path: alloc::vec::Vec<u8>,
    now: i64,
    /// Where each volume is mounted.
    volumes: alloc::vec::Vec<&'static [u8]>,
    /// Files the monitor adds: path, contents.
    added: alloc::vec::Vec<(&'static [u8], &'static [u8])>,
}

impl LazyVfs {
    /// A VFS to be unpacked from `rootfs`, with /proc/self/exe → `exec_path`,
    /// and volume `i` mounted on `volumes[i]`.
    pub fn new(
        rootfs: &'static [u8],
        exec_path: &[u8],
        now: i64,
        volumes: alloc::vec::Vec<&'static [u8]>,
        added: alloc::vec::Vec<(&'static [u8], &'static [u8])>,
    ) -> Self {
        LazyVfs {
            cell: core::cell::OnceCell::new(),
            rootfs,
            exec_path: exec_path.to_vec(),
            now,
            volumes,
            added,
        }
    }

    fn build(&self) -> crate::fs::vfs::Vfs {
        let mut fs = crate::fs::vfs::Vfs::new(self.now);
        if fs.unpack(self.rootfs).is_err()
            || crate::fs::special::populate(&mut fs, &self.exec_path).is_err()
        {
            crate::arch::hypercall::abort(b"could not unpack the rootfs");
        }
        for (path, data) in &self.added {
            if crate::fs::special::add_file(&mut fs, path, data).is_err() {
                crate::arch::hypercall::abort(b"could not add a file the monitor gave");
            }
        }
        for (i, at) in self.volumes.iter().enumerate() {
            // The mount point: what the image has there (through its
            // symlinks), else new directories, as docker makes them.
            let dir = match fs.lookup(crate::fs::vfs::ROOT, at, true) {
                Ok(d) => Ok(d),
                Err(_) => fs.mkdir_all(at, 0o755),
            };
            if dir.and_then(|d| fs.mount(d, i as u32)).is_err() {
                crate::arch::hypercall::abort(
                    b"a volume's mount point is not a directory in the image",
                );
            }
        }
        fs
    }
}

impl core::ops::Deref for LazyVfs {
    type Target = crate::fs::vfs::Vfs;
    fn deref(&self) -> &crate::fs::vfs::Vfs {
        self.cell.get_or_init(|| self.build())
    }
}

impl core::ops::DerefMut for LazyVfs {
    fn deref_mut(&mut self) -> &mut crate::fs::vfs::Vfs {
        if self.cell.get().is_none() {
            let fs = self.build();
            let _ = self.cell.set(fs);
        }
        match self.cell.get_mut() {
            Some(fs) => fs,
            None => crate::arch::hypercall::abort(b"VFS initialisation failed"),
        }
    }
}

/// The kernel state, set once by [`boot`].
pub static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);
