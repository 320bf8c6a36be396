//! [`BootInfo`]: the one structure the monitor hands to the library OS.
//!
//! The monitor writes it at [`crate::layout::BOOT_INFO_PA`] before the first
//! instruction and passes its physmap address in RDI. The guest may write only
//! the [`Timestamps`] part; the monitor treats everything it reads back as
//! untrusted.

/// `BootInfo::magic`: "OPTIVOLT" in little-endian ASCII.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"OPTIVOLT");

/// Bits of [`BootInfo::flags`].
pub mod flags {
    /// Print every system call strace-style on stderr.
    pub const TRACE_SYSCALLS: u32 = 1 << 0;
    /// The user asked for `--timing`; record boot timestamps.
    pub const TIMING: u32 = 1 << 1;
    /// `--syscalls trap`: never rewrite `syscall` sites into jumps.
    pub const SYSCALLS_TRAP: u32 = 1 << 2;
    /// `--stats`: print the guest's counts on stderr when the program exits.
    pub const STATS: u32 = 1 << 3;
    /// `--stats=all`: the counts per system call too.
    pub const STATS_ALL: u32 = 1 << 4;
}

/// Bits of [`BootInfo::cpu_features`]: what the monitor's CPUID says, so that the
/// guest never has to execute CPUID (an exit) on its boot path.
pub mod cpu {
    /// RDRAND is available.
    pub const RDRAND: u64 = 1 << 0;
    /// RDSEED is available.
    pub const RDSEED: u64 = 1 << 1;
    /// RD/WR{FS,GS}BASE are enabled (CR4.FSGSBASE).
    pub const FSGSBASE: u64 = 1 << 2;
}

/// Maximum number of free physical ranges described in [`BootInfo`].
pub const MAX_FREE_RANGES: usize = 8;

/// A range of guest-physical memory `[start, end)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// Length in bytes (0 for an inverted range).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most segments a [`PreloadedImage`] describes.
pub const MAX_PRELOADED_SEGMENTS: usize = 16;

/// One loadable segment placed by the monitor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreloadedSegment {
    /// Relocated virtual address of the segment's first byte.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// PROT_* bits.
    pub prot: u32,
    /// Reserved, zero.
    pub _reserved: u32,
}

/// The application's executable, already placed in guest-physical memory by
/// the monitor: the pages `[start, end)` of the address space are the
/// physically contiguous frames from `pa` (segment bytes copied, the rest
/// zero). The library OS maps them without copying; if `present` is 0 it loads
/// the executable from the rootfs itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreloadedImage {
    /// 1 if the monitor placed the image.
    pub present: u32,
    /// Valid entries in `segs`.
    pub nsegs: u32,
    /// Guest-physical address backing `start`.
    pub pa: u64,
    /// First page of the image (virtual).
    pub start: u64,
    /// End of the last page (virtual); the initial program break.
    pub end: u64,
    /// Entry point.
    pub entry: u64,
    /// AT_PHDR.
    pub phdr: u64,
    /// AT_PHNUM.
    pub phnum: u64,
    /// The segments, in address order.
    pub segs: [PreloadedSegment; MAX_PRELOADED_SEGMENTS],
}

/// Scheduler state the monitor reads (written by the guest).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedShared {
    /// Non-zero while more than one thread is runnable: the monitor then
    /// injects the timer interrupt (about every 10 ms) for preemption.
    pub want_tick: u32,
    /// Set by the monitor when a tick was due but the guest was inside the
    /// library OS (it is never interrupted there): the guest yields at the
    /// end of the system call in progress and clears it.
    pub tick_missed: u32,
    /// Signals sent to `volt run` from the host (bit N = signal N: SIGTERM
    /// from `volt stop`, SIGINT from a terminal), ORed in by the monitor
    /// while the vCPU is out of the guest; the guest takes and clears them
    /// when it next schedules and sends them to the program.
    pub host_signals: u32,
    /// Reserved, zero.
    pub _reserved: u32,
}

/// Totals the guest keeps up to date as it runs, for the monitor to read at
/// any time (voltd's metrics); like [`Timestamps`], never trusted for
/// anything but reporting.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestCounters {
    /// System calls that arrived by a jump from a patched site.
    pub syscalls_by_jump: u64,
    /// System calls that trapped (`syscall` instructions left as they are).
    pub syscalls_by_trap: u64,
    /// `syscall` sites rewritten into jumps.
    pub patched_sites: u64,
    /// Application page faults the library OS served.
    pub page_faults: u64,
}

/// Guest TSC readings taken at boot milestones (0 = not reached). Written by
/// the guest, read by the monitor for `--timing`; never trusted for anything else.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Timestamps {
    /// First instruction of the library OS.
    pub libos_entry: u64,
    /// The library OS is initialised (memory, rootfs); the loader starts.
    pub libos_ready: u64,
    /// Jump to the application's entry point.
    pub app_entry: u64,
    /// The application called exit/exit_group.
    pub app_exit: u64,
}

/// The network device, if the monitor attached one. Its shared region
/// (queues and buffers, laid out by [`crate::virtio::VirtioNetLayout`] for
/// `queue_size`) is excluded from the free ranges; the guest kicks the
/// device with [`crate::hypercall::NET_KICK`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetInfo {
    /// Non-zero when a device is attached.
    pub present: u8,
    /// IPv4 prefix length of `ipv4`.
    pub prefix: u8,
    /// Entries per queue (a power of two).
    pub queue_size: u16,
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// Reserved, zero.
    pub _reserved: [u8; 6],
    /// The guest's IPv4 address (0.0.0.0 = none).
    pub ipv4: [u8; 4],
    /// Default gateway (0.0.0.0 = none).
    pub gateway: [u8; 4],
    /// The shared region, guest-physical.
    pub region: PhysRange,
}

/// Boot information for the library OS. See the module documentation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// [`crate::ABI_VERSION`].
    pub version: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Guest RAM in bytes, starting at guest-physical 0.
    pub ram_size: u64,
    /// Guest-physical address of the PML4 the vCPU runs on.
    pub page_table_root: u64,
    /// Where the library OS image was loaded (guest-physical).
    pub libos: PhysRange,
    /// The rootfs (cpio `newc`), guest-physical; empty if none.
    pub rootfs: PhysRange,
    /// Memory the library OS may use freely (frames, heap), guest-physical.
    pub free: [PhysRange; MAX_FREE_RANGES],
    /// Number of valid entries in `free`.
    pub free_count: u32,
    /// Number of argv strings in the command-line area (after the exec path).
    pub argc: u32,
    /// Number of environment strings (after argv).
    pub envc: u32,
    /// Bytes used in the command-line area.
    pub cmdline_len: u32,
    /// Guest-physical address of the command-line area: the path of the program
    /// inside the rootfs, then `argc` argv strings, then `envc` `KEY=VALUE`
    /// strings, each NUL-terminated.
    pub cmdline: u64,
    /// TSC frequency in kHz.
    pub tsc_khz: u64,
    /// Guest TSC at the moment `wallclock_ns` was sampled.
    pub boot_tsc: u64,
    /// Host wall-clock time (ns since the Unix epoch) at `boot_tsc`.
    pub wallclock_ns: u64,
    /// Random seed from the host (getrandom(2)).
    pub entropy: [u8; 32],
    /// [`cpu`] feature bits.
    pub cpu_features: u64,
    /// AT_HWCAP for the application (CPUID.1:EDX).
    pub hwcap: u64,
    /// AT_HWCAP2 for the application.
    pub hwcap2: u64,
    /// First hypercall port; hypercall `n` is an `out` to `hypercall_port + n`.
    pub hypercall_port: u16,
    /// Reserved, zero.
    pub _reserved0: [u16; 3],
    /// The executable, if the monitor placed it.
    pub image: PreloadedImage,
    /// Boot milestones written by the guest.
    pub timestamps: Timestamps,
    /// Scheduler flags written by the guest.
    pub sched: SchedShared,
    /// Running totals the guest keeps for the monitor's live metrics.
    pub counters: GuestCounters,
    /// The network device.
    pub net: NetInfo,
    /// The program's patchable `syscall` sites found ahead of time (empty if
    /// none): sorted `(syscall address, window start)` pairs of u64s at
    /// link-time addresses.
    pub sites: PhysRange,
    /// What the host's fds 0, 1 and 2 are, so that the guest's look the same.
    pub stdio: [StdioInfo; 3],
    /// Number of volumes: after the environment, the command-line area holds
    /// one string per volume, `r` or `w` (read-only or not) then the guest
    /// path where it is mounted. Volume `i` is the `i`-th of them.
    pub volumes: u32,
    /// Number of files the monitor adds to the guest's file system (its
    /// `/etc/hosts`, say): after the volumes, two strings each, the absolute
    /// path then the contents (which hold no NUL).
    pub files: u32,
    /// 1 when one more string follows the files: the program's working
    /// directory (absolute; made if missing, as runc does).
    pub workdir: u32,
    /// Reserved, zero.
    pub _reserved1: u32,
}

/// One of the host's standard fds as the monitor found it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StdioInfo {
    /// `st_mode` (type and permission bits); 0 if the fd is closed.
    pub mode: u32,
    /// [`stdio::TTY`] when it is a terminal.
    pub flags: u32,
    /// `st_size` of a regular file.
    pub size: u64,
    /// `st_rdev` of a device.
    pub rdev: u64,
    /// The terminal's size: rows and columns (0 if not a terminal).
    pub rows: u16,
    pub cols: u16,
    /// Reserved, zero.
    pub _reserved: u32,
}

/// [`StdioInfo::flags`] bits.
pub mod stdio {
    /// The fd is a terminal (`isatty`).
    pub const TTY: u32 = 1;
}

impl BootInfo {
    /// An empty (invalid) boot info with magic and version filled in.
    pub const fn new() -> Self {
        BootInfo {
            magic: BOOT_MAGIC,
            version: crate::ABI_VERSION,
            flags: 0,
            ram_size: 0,
            page_table_root: 0,
            libos: PhysRange { start: 0, end: 0 },
            rootfs: PhysRange { start: 0, end: 0 },
            free: [PhysRange { start: 0, end: 0 }; MAX_FREE_RANGES],
            free_count: 0,
            argc: 0,
            envc: 0,
            cmdline_len: 0,
            cmdline: 0,
            tsc_khz: 0,
            boot_tsc: 0,
            wallclock_ns: 0,
            entropy: [0; 32],
            cpu_features: 0,
            hwcap: 0,
            hwcap2: 0,
            hypercall_port: crate::hypercall::PORT_BASE,
            _reserved0: [0; 3],
            image: PreloadedImage {
                present: 0,
                nsegs: 0,
                pa: 0,
                start: 0,
                end: 0,
                entry: 0,
                phdr: 0,
                phnum: 0,
                segs: [PreloadedSegment {
                    vaddr: 0,
                    memsz: 0,
                    prot: 0,
                    _reserved: 0,
                }; MAX_PRELOADED_SEGMENTS],
            },
            timestamps: Timestamps {
                libos_entry: 0,
                libos_ready: 0,
                app_entry: 0,
                app_exit: 0,
            },
            sched: SchedShared {
                want_tick: 0,
                tick_missed: 0,
                host_signals: 0,
                _reserved: 0,
            },
            counters: GuestCounters {
                syscalls_by_jump: 0,
                syscalls_by_trap: 0,
                patched_sites: 0,
                page_faults: 0,
            },
            net: NetInfo {
                present: 0,
                prefix: 0,
                queue_size: 0,
                mac: [0; 6],
                _reserved: [0; 6],
                ipv4: [0; 4],
                gateway: [0; 4],
                region: PhysRange { start: 0, end: 0 },
            },
            sites: PhysRange { start: 0, end: 0 },
            stdio: [StdioInfo {
                mode: 0,
                flags: 0,
                size: 0,
                rdev: 0,
                rows: 0,
                cols: 0,
                _reserved: 0,
            }; 3],
            volumes: 0,
            files: 0,
            workdir: 0,
            _reserved1: 0,
        }
    }

    /// Whether magic and version match this build.
    pub fn is_valid(&self) -> bool {
        self.magic == BOOT_MAGIC && self.version == crate::ABI_VERSION
    }
}

impl Default for BootInfo {
    fn default() -> Self {
        Self::new()
    }
}

/// Byte offset of [`BootInfo::sched`].
pub const SCHED_OFFSET: usize = core::mem::offset_of!(BootInfo, sched);

/// Byte offset of [`BootInfo::timestamps`], for a monitor reading them back.
pub const TIMESTAMPS_OFFSET: usize = core::mem::offset_of!(BootInfo, timestamps);

/// Byte offset of [`BootInfo::counters`].
pub const COUNTERS_OFFSET: usize = core::mem::offset_of!(BootInfo, counters);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_in_its_page() {
        assert!(core::mem::size_of::<BootInfo>() <= 4096);
        assert!(BootInfo::new().is_valid());
        assert_eq!(TIMESTAMPS_OFFSET % 8, 0);
        assert_eq!(COUNTERS_OFFSET % 8, 0);
    }
}
