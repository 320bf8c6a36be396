//! Building a VM: memory, images, privileged state, boot information.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvm_bindings::{kvm_msr_entry, kvm_userspace_memory_region, Msrs};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use optivolt_abi::boot::{cpu, flags, BootInfo, NetInfo, PhysRange, PreloadedImage};
use optivolt_abi::elf::Elf;
use optivolt_abi::header::{LibosHeader, EXCEPTION_VECTORS, HEADER_SIZE};
use optivolt_abi::layout::*;
use optivolt_abi::virtio::VirtioNetLayout;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::arch;
use crate::devices::net::{split_queue, NetDevice};
use crate::devices::net_worker::NetWorker;
use crate::devices::tap::{Tap, TapError};
use crate::memory::{self, write_bytes, GuestRam, Pod};
use crate::placement::{load_program, load_rootfs, load_sites};
pub use crate::placement::{place_program, program_bias, program_span};
use crate::vm::Vm;
use crate::{Error, Result, Timing};

/// What to run and how.
#[derive(Clone, Debug)]
pub struct VmConfig<'a> {
    /// The library OS ELF image.
    pub libos: &'a [u8],
    /// The rootfs (cpio `newc`), as consecutive pieces (so that a large file
    /// can be passed without copying it into one buffer first).
    pub rootfs: Vec<&'a [u8]>,
    /// Path of the program inside the rootfs.
    pub exec_path: String,
    /// The program's ELF bytes, if the monitor should place its segments in
    /// guest memory itself (faster: the guest maps them without copying).
    /// `None`: the library OS loads `exec_path` from the rootfs.
    pub program: Option<&'a [u8]>,
    /// The rootfs piece (by index) that is the whole content of this file:
    /// mapped into guest RAM from the host's page cache (private,
    /// copy-on-write), not copied, so instances share its pages.
    pub rootfs_file: Option<(usize, &'a std::fs::File)>,
    /// The file `program`'s bytes are in, and where they start in it (a
    /// page-aligned offset: 0 for the program's own file, or where an
    /// image's archive holds it): its read-only segments are then mapped
    /// from the host's page cache (shared by every instance) rather than
    /// copied.
    pub program_file: Option<(&'a std::fs::File, u64)>,
    /// The program's patchable `syscall` sites, as volt's scanner encodes them.
    pub sites: &'a [u8],
    /// The program's argv (argv[0] included).
    pub argv: Vec<Vec<u8>>,
    /// The program's environment, `KEY=VALUE`.
    pub env: Vec<Vec<u8>>,
    /// Guest RAM in bytes (rounded up to 2 MiB).
    pub memory: u64,
    /// Print every system call on stderr.
    pub trace_syscalls: bool,
    /// Never rewrite the application's `syscall` sites (`--syscalls trap`).
    pub syscalls_trap: bool,
    /// `--stats` (1) or `--stats=all` (2): the guest prints its counts at exit.
    pub stats: u8,
    /// Record boot timestamps.
    pub timing: bool,
    /// Stop the guest after this long.
    pub timeout: Option<Duration>,
    /// When the monitor process started (for `--timing`).
    pub started: Instant,
    /// A network device on a tap, if any.
    pub net: Option<NetConfig>,
    /// Host directories mounted in the guest.
    pub volumes: Vec<crate::volume::VolumeConfig>,
    /// Files added to (or replaced in) the guest's file system: absolute
    /// path and contents, without NUL bytes.
    pub files: Vec<(String, Vec<u8>)>,
    /// The program's working directory in the guest (`/` when `None`).
    pub workdir: Option<String>,
}

/// A network device attached to a host tap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The tap's name (created if it does not exist).
    pub tap: String,
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// The guest's IPv4 address and prefix length.
    pub ipv4: [u8; 4],
    pub prefix: u8,
    /// Default gateway, 0.0.0.0 for none.
    pub gateway: [u8; 4],
    /// The network namespace to make the tap in (a `/run/netns/NAME`
    /// file), or `None` for the monitor's own.
    pub netns: Option<std::path::PathBuf>,
}

/// Entries per network queue.
pub const NET_QUEUE_SIZE: u16 = 256;

/// Guest memory the network device's region takes (queues and buffers).
pub fn net_region_size() -> u64 {
    VirtioNetLayout::new(NET_QUEUE_SIZE).map_or(0, |l| l.total as u64)
}

impl<'a> VmConfig<'a> {
    /// A configuration with 64 MiB of memory and no options.
    pub fn new(
        libos: &'a [u8],
        rootfs: Vec<&'a [u8]>,
        exec_path: &str,
        argv: Vec<Vec<u8>>,
    ) -> Self {
        VmConfig {
            libos,
            rootfs,
            exec_path: exec_path.to_string(),
            program: None,
            rootfs_file: None,
            program_file: None,
            sites: &[],
            argv,
            env: Vec::new(),
            memory: 64 << 20,
            trace_syscalls: false,
            syscalls_trap: false,
            stats: 0,
            timing: false,
            timeout: None,
            started: Instant::now(),
            net: None,
            volumes: Vec::new(),
            files: Vec::new(),
            workdir: None,
        }
    }
}

/// Opens /dev/kvm (and checks its API version): the cheapest way to fail
/// early with a clear message. Pass the handle to [`Vm::create_with`].
pub fn check_kvm() -> Result<Kvm> {
    Kvm::new().map_err(|e| Error::KvmOpen(std::io::Error::from_raw_os_error(e.errno())))
}

/// The library OS heap's minimum (see the library OS's boot code).
const LIBOS_MIN_HEAP: u64 = 192 << 10;
/// Stack populated before the application starts.
const STACK_POPULATE: u64 = 64 << 10;

/// Smallest guest RAM (bytes, a multiple of 2 MiB) that can boot an
/// application whose loadable segments span `app_load` bytes.
pub fn min_memory(libos_image_end: u64, rootfs_len: u64, app_load: u64) -> u64 {
    let fixed = libos_image_end + rootfs_len + LIBOS_MIN_HEAP + STACK_POPULATE + app_load;
    // Page tables for the application and the allocator's bookkeeping.
    let slack = 256 << 10;
    (fixed + slack).div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE
}

/// Checks a library OS image and returns its header and where it ends
/// (guest-physical).
pub fn inspect_libos(image: &[u8]) -> Result<(LibosHeader, u64)> {
    let elf = Elf::parse(image).map_err(|e| Error::LibosImage(e.to_string()))?;
    let (lo, hi) = elf.load_bounds();
    if lo != LIBOS_VA || hi <= lo || hi - lo > (64 << 20) {
        return Err(Error::LibosImage(format!(
            "segments at {lo:#x}..{hi:#x}, expected to start at {LIBOS_VA:#x}"
        )));
    }
    let first = elf
        .load_segments()
        .find(|p| p.p_vaddr == lo)
        .ok_or_else(|| Error::LibosImage("no first segment".into()))?;
    let h = LibosHeader::from_bytes(elf.segment_data(&first))
        .filter(|h| h.is_valid())
        .ok_or_else(|| {
            Error::LibosImage(
                "missing or incompatible OptiVolt header (rebuild the library OS)".into(),
            )
        })?;
    let inside = |a: u64| a >= lo && a < hi;
    if ![
        h.entry,
        h.syscall_entry,
        h.exception_table,
        h.interrupt_entry,
        h.timer_entry,
        h.page_fault_entry,
    ]
    .iter()
    .all(|&a| inside(a))
        || !(lo..=hi).contains(&h.boot_stack_top)
    {
        return Err(Error::LibosImage(
            "header addresses lie outside the image".into(),
        ));
    }
    let end = align_up(hi - PHYS_MAP_BASE, PAGE_SIZE).unwrap_or(u64::MAX);
    Ok((h, end))
}

/// Loads the library OS image; returns its header, exception entry points
/// (for the IDT) and where it lies.
fn load_libos(
    mem: &GuestRam,
    image: &[u8],
) -> Result<(LibosHeader, [u64; EXCEPTION_VECTORS], PhysRange)> {
    let (h, end) = inspect_libos(image)?;
    let elf = Elf::parse(image).map_err(|e| Error::LibosImage(e.to_string()))?;
    for ph in elf.load_segments() {
        write_bytes(mem, ph.p_vaddr - PHYS_MAP_BASE, elf.segment_data(&ph))?;
    }
    let mut table = [0u64; EXCEPTION_VECTORS];
    let raw = memory::read_bytes(
        mem,
        h.exception_table - PHYS_MAP_BASE,
        (EXCEPTION_VECTORS * 8) as u64,
    )
    .ok_or_else(|| Error::LibosImage("exception table outside memory".into()))?;
    for (i, t) in table.iter_mut().enumerate() {
        *t = u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    }
    debug_assert_eq!(HEADER_SIZE, std::mem::size_of::<LibosHeader>());
    let range = PhysRange {
        start: LIBOS_PA,
        end,
    };
    Ok((h, table, range))
}

/// The command-line area: the exec path, argv and the environment, each
/// NUL-terminated.
fn cmdline(cfg: &VmConfig<'_>) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    let mounts: Vec<Vec<u8>> = cfg
        .volumes
        .iter()
        .map(|m| {
            [
                if m.readonly { &b"r"[..] } else { b"w" },
                m.guest.as_bytes(),
            ]
            .concat()
        })
        .collect();
    for s in std::iter::once(cfg.exec_path.as_bytes())
        .chain(cfg.argv.iter().map(|a| a.as_slice()))
        .chain(cfg.env.iter().map(|e| e.as_slice()))
        .chain(mounts.iter().map(|m| m.as_slice()))
        .chain(
            cfg.files
                .iter()
                .flat_map(|(p, c)| [p.as_bytes(), c.as_slice()]),
        )
        .chain(cfg.workdir.iter().map(|w| w.as_bytes()))
    {
        if s.contains(&0) {
            return Err(Error::Program(
                "an argument, variable or added file holds a NUL byte".into(),
            ));
        }
        v.extend_from_slice(s);
        v.push(0);
    }
    if v.len() as u64 > CMDLINE_MAX {
        return Err(Error::CmdlineTooLong {
            len: v.len(),
            max: CMDLINE_MAX as usize,
        });
    }
    Ok(v)
}

/// What the guest's CPUID tells the library OS.
pub(crate) struct CpuInfo {
    /// AT_HWCAP (CPUID.1:EDX).
    hwcap: u64,
    /// [`cpu`] feature bits.
    features: u64,
}

impl CpuInfo {
    /// Whether the guest may use RDFSBASE and friends.
    fn fsgsbase(&self) -> bool {
        self.features & cpu::FSGSBASE != 0
    }
}

/// Gives the vCPU the guest's CPUID; returns what the library OS learns from it.
fn setup_cpuid(vcpu: &VcpuFd) -> Result<CpuInfo> {
    let cpuid = crate::cpuid::guest_cpuid()?;
    let mut info = CpuInfo {
        hwcap: 0,
        features: 0,
    };
    for e in cpuid.as_slice() {
        if e.function == 1 {
            info.hwcap = e.edx as u64;
            if e.ecx & (1 << 30) != 0 {
                info.features |= cpu::RDRAND;
            }
        }
        if e.function == 7 && e.index == 0 {
            if e.ebx & (1 << 18) != 0 {
                info.features |= cpu::RDSEED;
            }
            if e.ebx & 1 != 0 {
                info.features |= cpu::FSGSBASE;
            }
        }
    }
    vcpu.set_cpuid2(&cpuid).map_err(Error::kvm("set CPUID"))?;
    Ok(info)
}

/// The guest's random seed.
fn entropy() -> [u8; 32] {
    let mut e = [0u8; 32];
    // SAFETY: getrandom writes at most `e.len()` bytes into `e`.
    let n = unsafe { libc::getrandom(e.as_mut_ptr().cast(), e.len(), 0) };
    if n != e.len() as isize {
        // Never boot with a predictable seed: mix in time and address entropy.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let a = &e as *const _ as u64;
        e[..16].copy_from_slice(&t.to_le_bytes());
        e[16..24].copy_from_slice(&a.to_le_bytes());
    }
    e
}

impl Vm {
    /// Creates the VM and prepares everything up to the first instruction.
    pub fn create(cfg: &VmConfig<'_>) -> Result<Vm> {
        Self::create_with(check_kvm()?, cfg)
    }

    /// As [`Vm::create`], with an already opened /dev/kvm.
    ///
    /// The boot path, step by step; every check that needs no VM comes first.
    pub fn create_with(kvm: Kvm, cfg: &VmConfig<'_>) -> Result<Vm> {
        let mut timing = Timing::new(cfg.started, cfg.timing);
        let sizes = check_sizes(cfg)?;
        let cmd = cmdline(cfg)?;
        let volumes =
            crate::volume::Volumes::open(&cfg.volumes).map_err(|e| Error::Volume(e.to_string()))?;
        let tap = open_tap(cfg.net.as_ref());
        let net_layout = net_layout()?;

        let (vm, mem) = create_vm(&kvm, sizes.ram)?;
        timing.mark_vm_created();

        let (root, _) = arch::build_page_tables(&mem, sizes.ram)?;
        let (header, exceptions, libos) = load_libos(&mem, cfg.libos)?;
        arch::write_descriptor_tables(&mem, &header, &exceptions)?;
        let rootfs = load_rootfs(&mem, &cfg.rootfs, cfg.rootfs_file, libos.end, &sizes)?;
        let (image, free_start) =
            load_program(&mem, cfg.program, cfg.program_file, rootfs.end, sizes.ram)?;
        let (sites, free_start) = load_sites(&mem, cfg.sites, free_start)?;
        write_bytes(&mem, CMDLINE_PA, &cmd)?;

        let (vcpu, cpu) = create_vcpu(&vm)?;
        setup_regs(&vcpu, root, &header, cpu.fsgsbase())?;
        let tsc_khz = tsc_khz(&vcpu)?;

        let (free, net_info) = place_net(cfg.net.as_ref(), &sizes, free_start, &net_layout)?;
        let placed = Placed {
            root,
            libos,
            rootfs,
            free,
            image,
            net: net_info,
            sites,
        };
        let bi = boot_info(cfg, sizes.ram, &placed, cmd.len(), &cpu, tsc_khz);
        let clock = sample_clock(&vcpu)?;
        write_boot_info(&mem, bi, &clock)?;
        let tap = join_tap(tap)?;
        timing.mark_vcpu_ready();

        let live = Arc::new(crate::live::Live::default());
        let (wake, net) = attach_devices(&mem, tap, bi.net.region.start, &net_layout, &live)?;
        let net_addr = net_info.map(|n| crate::snapshot::NetAddr {
            mac: n.mac,
            ipv4: n.ipv4,
            prefix: n.prefix,
            gateway: n.gateway,
            region: n.region.start,
        });
        let control = crate::snapshot::control::Control::new(wake.clone(), live, mem.clone());
        Ok(Vm {
            kvm,
            _vm: vm,
            vcpu,
            mem,
            tsc_khz,
            tsc_sample: clock.tsc,
            mono_sample: clock.mono,
            timing,
            stats: crate::ExitStats::default(),
            timeout: cfg.timeout,
            net,
            net_addr,
            wake,
            volumes,
            volume_configs: cfg.volumes.clone(),
            backing: None,
            leftover: None,
            control,
        })
    }
}

/// Guest RAM and what must fit in it, known before any VM exists.
pub(crate) struct Sizes {
    /// Guest RAM in bytes.
    pub(crate) ram: u64,
    /// The rootfs's bytes (all pieces).
    pub(crate) rootfs_len: u64,
    /// The smallest RAM that boots this image (without a network device).
    need: u64,
}

/// Where the boot path put things in guest memory, for [`BootInfo`].
struct Placed {
    /// Guest-physical address of the PML4.
    root: u64,
    /// The library OS image.
    libos: PhysRange,
    /// The rootfs.
    rootfs: PhysRange,
    /// Memory left to the library OS.
    free: PhysRange,
    /// The preloaded program (not `present` if none).
    image: PreloadedImage,
    /// The network device, if any.
    net: Option<NetInfo>,
    /// The table of patchable sites.
    sites: PhysRange,
}

/// The guest TSC and the host clocks, sampled together.
pub(crate) struct ClockSample {
    /// Guest TSC.
    pub(crate) tsc: u64,
    /// Host monotonic clock.
    pub(crate) mono: Instant,
    /// Host wall clock, ns since the Unix epoch.
    wall_ns: u64,
}

/// A tap being opened on a thread of its own.
pub(crate) type PendingTap = std::thread::JoinHandle<std::result::Result<Tap, TapError>>;

/// Sizes guest RAM and checks that the image fits, before any VM exists.
fn check_sizes(cfg: &VmConfig<'_>) -> Result<Sizes> {
    let ram = align_up(cfg.memory.max(MIN_RAM), LARGE_PAGE_SIZE)
        .ok_or(Error::Memory("size overflows".into()))?;
    let (_, libos_end) = inspect_libos(cfg.libos)?;
    let rootfs_len: u64 = cfg.rootfs.iter().map(|p| p.len() as u64).sum();
    let program_span = cfg.program.map(program_span).unwrap_or(0);
    let sites_span = align_up(cfg.sites.len() as u64, PAGE_SIZE).unwrap_or(u64::MAX);
    let need = min_memory(
        libos_end,
        rootfs_len,
        program_span.saturating_add(sites_span),
    );
    if ram < need {
        return Err(Error::MemoryTooSmall {
            need_mib: need.div_ceil(1 << 20),
            have_mib: ram >> 20,
        });
    }
    Ok(Sizes {
        ram,
        rootfs_len,
        need,
    })
}

/// Starts opening the tap, if any, on a thread of its own: creating a network
/// device costs milliseconds, overlapped with building the VM (its error still
/// comes before the guest runs, from [`join_tap`]).
pub(crate) fn open_tap(net: Option<&NetConfig>) -> Option<PendingTap> {
    net.map(|n| {
        let name = n.tap.clone();
        let netns = n.netns.clone();
        std::thread::spawn(move || {
            // A tap is made in its creator's namespace: this thread's.
            if let Some(ns) = netns {
                crate::devices::tap::enter_netns(&ns)?;
            }
            Tap::open(&name)
        })
    })
}

/// The network device's queues and buffers, as laid out in its region.
pub(crate) fn net_layout() -> Result<VirtioNetLayout> {
    VirtioNetLayout::new(NET_QUEUE_SIZE).ok_or_else(|| Error::Net("bad queue size".into()))
}

/// Creates the KVM VM and its RAM, registered as memory slot 0.
fn create_vm(kvm: &Kvm, ram: u64) -> Result<(VmFd, GuestRam)> {
    let vm = kvm.create_vm().map_err(Error::kvm("create VM"))?;
    let mem = memory::create(ram)?;
    register_ram(&vm, &mem)?;
    Ok((vm, mem))
}

/// Registers guest RAM as the VM's memory slot 0.
pub(crate) fn register_ram(vm: &VmFd, mem: &GuestRam) -> Result<()> {
    let region = mem
        .iter()
        .next()
        .ok_or_else(|| Error::Memory("no region".into()))?;
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| Error::Memory(e.to_string()))?;
    let slot = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: region.len(),
        userspace_addr: host as u64,
    };
    // SAFETY: the region is a live mapping of `memory_size` bytes owned by
    // `mem`, which `Vm` keeps alive for as long as `vm` exists.
    unsafe { vm.set_user_memory_region(slot) }.map_err(Error::kvm("set memory region"))?;
    Ok(())
}

/// Creates the vCPU and gives it the guest's CPUID.
pub(crate) fn create_vcpu(vm: &VmFd) -> Result<(VcpuFd, CpuInfo)> {
    let vcpu = vm.create_vcpu(0).map_err(Error::kvm("create vCPU"))?;
    let cpu = setup_cpuid(&vcpu)?;
    Ok((vcpu, cpu))
}

/// Sets the first instruction's privileged state: page tables, segments and
/// control registers, registers, system-call MSRs.
fn setup_regs(vcpu: &VcpuFd, root: u64, header: &LibosHeader, fsgsbase: bool) -> Result<()> {
    let sregs = vcpu.get_sregs().map_err(Error::kvm("get sregs"))?;
    vcpu.set_sregs(&arch::sregs(sregs, root, fsgsbase))
        .map_err(Error::kvm("set sregs"))?;
    vcpu.set_regs(&arch::regs(header))
        .map_err(Error::kvm("set regs"))?;
    let msrs = arch::msrs(header.syscall_entry)?;
    vcpu.set_msrs(&msrs).map_err(Error::kvm("set MSRs"))?;
    Ok(())
}

/// The guest's TSC frequency.
pub(crate) fn tsc_khz(vcpu: &VcpuFd) -> Result<u64> {
    Ok(vcpu
        .get_tsc_khz()
        .map_err(Error::kvm("get TSC frequency"))? as u64)
}

/// Reserves the network device's region at the top of RAM, if there is a
/// device; returns the free memory left (from `free_start`) and the device's
/// description.
fn place_net(
    net: Option<&NetConfig>,
    sizes: &Sizes,
    free_start: u64,
    layout: &VirtioNetLayout,
) -> Result<(PhysRange, Option<NetInfo>)> {
    let ram = sizes.ram;
    let Some(n) = net else {
        let free = PhysRange {
            start: free_start,
            end: ram,
        };
        return Ok((free, None));
    };
    let start = ram.saturating_sub(layout.total as u64) & !(PAGE_SIZE - 1);
    let need_net = sizes.need + layout.total as u64;
    if ram < need_net || start < free_start {
        return Err(Error::MemoryTooSmall {
            need_mib: need_net.div_ceil(1 << 20),
            have_mib: ram >> 20,
        });
    }
    let info = NetInfo {
        present: 1,
        prefix: n.prefix,
        queue_size: NET_QUEUE_SIZE,
        mac: n.mac,
        _reserved: [0; 6],
        ipv4: n.ipv4,
        gateway: n.gateway,
        region: PhysRange {
            start,
            end: start + layout.total as u64,
        },
    };
    let free = PhysRange {
        start: free_start,
        end: start,
    };
    Ok((free, Some(info)))
}

/// Fills in the boot information, all but the clock sample ([`write_boot_info`]).
fn boot_info(
    cfg: &VmConfig<'_>,
    ram: u64,
    placed: &Placed,
    cmdline_len: usize,
    cpu: &CpuInfo,
    tsc_khz: u64,
) -> BootInfo {
    let mut bi = BootInfo::new();
    bi.flags = if cfg.trace_syscalls {
        flags::TRACE_SYSCALLS
    } else {
        0
    } | if cfg.timing { flags::TIMING } else { 0 }
        | if cfg.syscalls_trap {
            flags::SYSCALLS_TRAP
        } else {
            0
        }
        | match cfg.stats {
            0 => 0,
            1 => flags::STATS,
            _ => flags::STATS | flags::STATS_ALL,
        };
    bi.ram_size = ram;
    bi.page_table_root = placed.root;
    bi.libos = placed.libos;
    bi.rootfs = placed.rootfs;
    if let Some(n) = placed.net {
        bi.net = n;
    }
    bi.free[0] = placed.free;
    bi.image = placed.image;
    bi.sites = placed.sites;
    bi.free_count = 1;
    bi.argc = cfg.argv.len() as u32;
    bi.envc = cfg.env.len() as u32;
    bi.volumes = cfg.volumes.len() as u32;
    bi.files = cfg.files.len() as u32;
    bi.workdir = u32::from(cfg.workdir.is_some());
    bi.cmdline = CMDLINE_PA;
    bi.cmdline_len = cmdline_len as u32;
    bi.tsc_khz = tsc_khz;
    bi.entropy = entropy();
    bi.cpu_features = cpu.features;
    bi.hwcap = cpu.hwcap;
    bi.hwcap2 = if cpu.fsgsbase() { 1 << 1 } else { 0 };
    bi.stdio = [0, 1, 2].map(crate::stdio::describe);
    bi
}

/// Samples the guest TSC and the host clocks together: the guest derives its
/// clocks from this pair without ever exiting.
pub(crate) fn sample_clock(vcpu: &VcpuFd) -> Result<ClockSample> {
    let mut tsc = Msrs::from_entries(&[kvm_msr_entry {
        index: arch::MSR_TSC,
        ..Default::default()
    }])
    .map_err(|e| Error::Memory(format!("MSR list: {e:?}")))?;
    let mono = Instant::now();
    let wall_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    vcpu.get_msrs(&mut tsc)
        .map_err(Error::kvm("read guest TSC"))?;
    let tsc = tsc.as_slice().first().map(|e| e.data).unwrap_or(0);
    Ok(ClockSample { tsc, mono, wall_ns })
}

/// Completes the boot information with the clock sample and writes it to
/// its page.
fn write_boot_info(mem: &GuestRam, mut bi: BootInfo, clock: &ClockSample) -> Result<()> {
    bi.boot_tsc = clock.tsc;
    bi.wallclock_ns = clock.wall_ns;
    mem.write_obj(Pod(bi), GuestAddress(BOOT_INFO_PA))
        .map_err(|e| Error::Memory(e.to_string()))
}

/// Waits for the tap [`open_tap`] started opening.
pub(crate) fn join_tap(tap: Option<PendingTap>) -> Result<Option<Tap>> {
    match tap {
        Some(t) => Ok(Some(
            t.join()
                .map_err(|_| Error::Net("the tap thread panicked".into()))?
                .map_err(|e| Error::Net(e.to_string()))?,
        )),
        None => Ok(None),
    }
}

/// Creates the devices' wake-up eventfd and starts the network device on
/// its region, if there is a tap.
fn attach_devices(
    mem: &GuestRam,
    tap: Option<Tap>,
    net_region: u64,
    net_layout: &VirtioNetLayout,
    live: &Arc<crate::live::Live>,
) -> Result<(Arc<EventFd>, Option<NetWorker>)> {
    let wake = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Net(e.to_string()))?);
    let net = match tap {
        Some(tap) => Some(start_net_at(
            mem,
            net_region,
            net_layout,
            tap,
            wake.clone(),
            live.clone(),
            |_| {},
        )?),
        None => None,
    };
    Ok((wake, net))
}

/// Builds the device model on the region's queues, lets `adjust` set where
/// they stand (a restored device), and starts its thread.
pub(crate) fn start_net_at(
    mem: &GuestRam,
    region: u64,
    layout: &VirtioNetLayout,
    tap: Tap,
    wake: Arc<EventFd>,
    live: Arc<crate::live::Live>,
    adjust: impl FnOnce(&mut NetDevice),
) -> Result<NetWorker> {
    let queue = |at: usize| -> Result<Queue> {
        let base = region + at as u64;
        let q = layout.queue;
        split_queue(
            q.size,
            base + q.desc as u64,
            base + q.avail as u64,
            base + q.used as u64,
        )
        .map_err(|e| Error::Net(e.to_string()))
    };
    let mut dev = NetDevice::new(queue(layout.rx_queue)?, queue(layout.tx_queue)?);
    adjust(&mut dev);
    NetWorker::spawn_counted(mem.clone(), dev, tap, wake, live)
        .map_err(|e| Error::Net(e.to_string()))
}
