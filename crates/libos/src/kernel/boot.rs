//! Boot: from the monitor's hand-off to the application's first instruction.
use alloc::vec::Vec;

use optivolt_abi::boot::{BootInfo, PhysRange, PreloadedImage};
use optivolt_abi::elf::Elf;
use optivolt_abi::layout::{phys_to_virt, USER_PIE_BASE, USER_TOP};

use crate::arch::cpu;
use crate::arch::stamp;
use crate::fd::file::FdTable;
use crate::fs::cpio::Archive;
use crate::kernel::{Kernel, KERNEL};
use crate::loader::{self, stack, LoadPlan};
use crate::mm::frame::FrameAllocator;
use crate::mm::heap;
use crate::mm::paging::{PTE_NX, PTE_P, PTE_W};
use crate::mm::space::{pte_flags, Memory};
use crate::mm::vma::{Vma, VmaKind};
use crate::mm::{page_down, page_up, PAGE};
use crate::rand::Csprng;
use crate::task::process::Process;

/// Size of the main thread's stack area (like RLIMIT_STACK's default).
pub const STACK_SIZE: u64 = 8 << 20;
/// Bytes of the stack populated before the application starts; the rest is
/// backed on first touch.
pub const STACK_POPULATE: u64 = 64 << 10;

fn fail(msg: &str) -> ! {
    crate::arch::hypercall::abort(msg.as_bytes())
}

/// Heap size for a guest with `ram` bytes: kernel stacks (32 KiB a thread),
/// the VFS tree and bookkeeping; file contents written at run time live here
/// too, hence the generous upper bound. It grows later (see `heap`).
fn heap_size(ram: u64) -> u64 {
    (ram / 64).clamp(192 << 10, 32 << 20) & !(PAGE - 1)
}

/// Splits the strings of the command-line area.
fn cmdline(boot: &BootInfo) -> Vec<&'static [u8]> {
    let len = (boot.cmdline_len as u64).min(optivolt_abi::layout::CMDLINE_MAX) as usize;
    // SAFETY: the command-line area is a fixed region of guest RAM, mapped by
    // the physmap and never written after boot.
    let area: &'static [u8] =
        unsafe { core::slice::from_raw_parts(phys_to_virt(boot.cmdline) as *const u8, len) };
    let mut v: Vec<&[u8]> = area.split(|&c| c == 0).collect();
    v.pop(); // after the final NUL
    v
}

/// Entry from `_start`, on the boot stack, at CPL 3.
#[no_mangle]
extern "C" fn ov_libos_main(boot_ptr: *const BootInfo) -> ! {
    stamp(|t| &mut t.libos_entry);
    // SAFETY: the monitor passes the physmap address of BootInfo in RDI.
    let boot = unsafe { *boot_ptr };
    if !boot.is_valid() || boot.free_count == 0 {
        fail("boot info has a bad magic or version, or no free memory");
    }

    // The heap comes first (the frame allocator needs it), carved from the
    // largest free range.
    let n = (boot.free_count as usize).min(boot.free.len());
    let mut ranges = alloc_free_ranges_without_heap(&boot.free[..n]);
    let hsize = heap_size(boot.ram_size);
    let Some(hr) = ranges
        .iter_mut()
        .filter(|r| r.len() >= hsize + PAGE)
        .max_by_key(|r| r.len())
    else {
        fail("not enough memory for the library OS heap")
    };
    let hstart = page_up(hr.start).unwrap_or(hr.start);
    hr.start = hstart + hsize;
    // SAFETY: the range is free RAM reported by the monitor, removed from the
    // ranges handed to the frame allocator below.
    unsafe { heap::init(phys_to_virt(hstart), hsize) };

    let frames = FrameAllocator::new(&ranges);
    let mut mem = Memory::new(boot.page_table_root, frames);
    mem.shared = (
        page_up(boot.rootfs.start).unwrap_or(0),
        page_down(boot.rootfs.end),
    );

    let strings = cmdline(&boot);
    let argc = boot.argc as usize;
    let envc = boot.envc as usize;
    if strings.len() < 1 + argc + envc {
        fail("malformed command line from the monitor");
    }
    let exec_path = strings[0];
    let argv = &strings[1..1 + argc];
    let envp = &strings[1 + argc..1 + argc + envc];
    // Then one string per volume: `r` or `w`, and where it is mounted.
    let volumes: Vec<&[u8]> = strings
        .iter()
        .skip(1 + argc + envc)
        .take(boot.volumes as usize)
        .filter_map(|v| v.get(1..))
        .collect();
    if volumes.len() != boot.volumes as usize {
        fail("malformed volume list from the monitor");
    }
    // Then the files the monitor adds: path, contents.
    let added: Vec<(&[u8], &[u8])> = strings
        .get(1 + argc + envc + volumes.len()..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .take(boot.files as usize)
        .map(|pc| (pc[0], pc[1]))
        .collect();
    if added.len() != boot.files as usize {
        fail("malformed file list from the monitor");
    }
    let workdir: Option<&'static [u8]> = match boot.workdir {
        0 => None,
        _ => match strings.get(1 + argc + envc + volumes.len() + 2 * added.len()) {
            Some(w) if w.starts_with(b"/") => Some(*w),
            _ => fail("malformed working directory from the monitor"),
        },
    };

    // SAFETY: the rootfs range was loaded by the monitor into guest RAM, is
    // never handed to the frame allocator and lives as long as the VM; user
    // mappings of its pages are read-only (mm::shared).
    let rootfs: &'static [u8] = unsafe {
        core::slice::from_raw_parts(
            phys_to_virt(boot.rootfs.start) as *const u8,
            boot.rootfs.len() as usize,
        )
    };
    let app = if boot.image.present == 1 {
        map_preloaded(&mut mem, &boot.image, boot.ram_size)
    } else {
        load_from_rootfs(&mut mem, rootfs, exec_path)
    };
    let app = match app {
        Ok(a) => a,
        Err(msg) => fail(msg),
    };
    #[cfg(feature = "net")]
    if let Err(msg) = crate::net::stack::init(&boot) {
        fail(msg);
    }
    stamp(|t| &mut t.libos_ready);
    mem.brk_start = app.end;
    mem.brk = app.end;
    let mut trampolines: Vec<_> = reserve_trampolines(&mut mem, app.start)
        .into_iter()
        .collect();

    // The stack: an 8 MiB area whose top is populated now.
    let stack_top = USER_TOP;
    let sv = Vma {
        start: stack_top - STACK_SIZE,
        end: stack_top,
        prot: 3,
        kind: VmaKind::Stack,
    };
    if mem.map(sv, false).is_err()
        || mem
            .populate(stack_top - STACK_POPULATE, stack_top, 3)
            .is_err()
    {
        fail("out of memory for the stack (try a larger --memory)");
    }
    // A dynamically linked program starts in its loader, placed like
    // Linux places it: top-down below the stack. The libraries it maps go
    // below it, so a second pool of trampolines just under it keeps their
    // system-call sites in reach of a `jmp rel32`.
    let mut sites = crate::kernel::sites::Sites::new(site_table(&boot));
    let interp = match load_interpreter(&mut mem, rootfs, exec_path) {
        Ok(Some((i, name))) => {
            trampolines.extend(reserve_trampolines(&mut mem, i.start));
            sites.note_loaded(name, i.start, i.end, i.bias);
            Some(i)
        }
        Ok(None) => None,
        Err(msg) => fail(msg),
    };

    let mut rng = Csprng::new(boot.entropy);
    let mut random = [0u8; 16];
    if boot.cpu_features & optivolt_abi::boot::cpu::RDRAND != 0 {
        if let (Some(a), Some(b)) = (cpu::rdrand(), cpu::rdrand()) {
            rng.reseed(&[a.to_le_bytes(), b.to_le_bytes()].concat());
        }
    }
    rng.fill(&mut random);
    let auxv = [
        (stack::AT_PHDR, app.phdr),
        (stack::AT_PHENT, optivolt_abi::elf::PHDR_SIZE as u64),
        (stack::AT_PHNUM, app.phnum),
        (stack::AT_PAGESZ, PAGE),
        (stack::AT_BASE, interp.as_ref().map_or(0, |i| i.bias)),
        (stack::AT_FLAGS, 0),
        (stack::AT_ENTRY, app.entry),
        (stack::AT_UID, 0),
        (stack::AT_EUID, 0),
        (stack::AT_GID, 0),
        (stack::AT_EGID, 0),
        (stack::AT_SECURE, 0),
        (stack::AT_HWCAP, boot.hwcap),
        (stack::AT_HWCAP2, boot.hwcap2),
        (stack::AT_CLKTCK, 100),
        (stack::AT_SYSINFO_EHDR, crate::vdso::clock::init(&boot)),
        (stack::AT_MINSIGSTKSZ, crate::task::signal::MIN_SIGSTACK),
    ];
    let spec = stack::StackSpec {
        argv,
        envp,
        auxv: &auxv,
        execfn: exec_path,
        platform: b"x86_64",
        random,
    };
    let img = stack::build(&spec, stack_top);
    if img.bytes.len() as u64 > STACK_POPULATE / 2 {
        fail("argv and environment are too large");
    }
    if mem.copy_to_user(img.rsp, &img.bytes).is_err() {
        fail("could not write the initial stack");
    }

    // The file system is unpacked from the rootfs on first use.
    let fs = crate::kernel::LazyVfs::new(
        rootfs,
        exec_path,
        (boot.wallclock_ns / 1_000_000_000) as i64,
        volumes,
        added,
    );
    let trace = boot.flags & optivolt_abi::boot::flags::TRACE_SYSCALLS != 0;
    let mut fs = fs;
    let cwd = match workdir {
        // Only a program with a working directory pays for the VFS now.
        Some(w) => match crate::fs::resolve::resolve(
            &fs,
            &mut crate::fs::volume::Host,
            &crate::fs::resolve::Loc::Mem(crate::fs::vfs::ROOT),
            w,
            true,
        ) {
            Ok(l) if l.is_dir(&fs) => l,
            Ok(_) => fail("the working directory is not a directory"),
            Err(_) => match fs.mkdir_all(w, 0o755) {
                Ok(d) => crate::fs::resolve::Loc::Mem(d),
                Err(_) => fail("cannot make the working directory"),
            },
        },
        None => crate::fs::resolve::Loc::Mem(crate::fs::vfs::ROOT),
    };
    *KERNEL.lock() = Some(Kernel {
        boot,
        mem,
        proc: Process::new(exec_path.to_vec()),
        rng,
        trace,
        fs,
        fds: FdTable::with_console(),
        cwd,
        patching: boot.flags & optivolt_abi::boot::flags::SYSCALLS_TRAP == 0,
        trampolines,
        sites,
    });

    extern "C" {
        static ov_boot_stack_top: u8;
    }
    // Only the symbol's address is taken.
    let boot_stack_top = core::ptr::addr_of!(ov_boot_stack_top) as u64;
    crate::task::sched::init(boot_stack_top, boot.tsc_khz);
    #[cfg(feature = "net")]
    crate::task::sched::set_idle_hook(crate::net::stack::idle_poll);
    stamp(|t| &mut t.app_entry);
    let entry = interp.as_ref().map_or(app.entry, |i| i.entry);
    // SAFETY: the entry point (the program's, or its loader's) and the
    // stack were just mapped; from here on the boot stack serves as the
    // system-call stack.
    unsafe { crate::arch::entry::ov_enter_user(entry, img.rsp) }
}

/// Room for the trampolines of patched `syscall` sites: 1,024 of them.
const TRAMPOLINE_AREA: u64 = 1024 * crate::arch::patch::TRAMPOLINE_SIZE;

/// The table of sites the monitor placed, if it is where guest RAM is.
fn site_table(boot: &BootInfo) -> &'static [u8] {
    let r = boot.sites;
    let len = r.end.wrapping_sub(r.start);
    if r.start == 0 || r.end < r.start || r.end > boot.ram_size || !len.is_multiple_of(8) {
        return &[];
    }
    // SAFETY: a range of guest RAM the monitor filled before boot and never
    // hands to the frame allocator (it is not among the free ranges).
    unsafe { core::slice::from_raw_parts(phys_to_virt(r.start) as *const u8, len as usize) }
}

/// Reserves the trampolines' area just below the program's lowest address
/// (within ±2 GiB of its code, a guard page in between, never near page 0);
/// its pages are made when the first trampoline is written.
fn reserve_trampolines(
    mem: &mut Memory,
    image_start: u64,
) -> Option<crate::arch::patch::Trampolines> {
    let end = page_down(image_start).checked_sub(PAGE)?;
    let start = end.checked_sub(TRAMPOLINE_AREA)?;
    if start < (1 << 20) || mem.vmas.overlaps(start, end) {
        return None;
    }
    let v = Vma {
        start,
        end,
        prot: crate::mm::vma::PROT_READ | crate::mm::vma::PROT_EXEC,
        kind: VmaKind::Anonymous,
    };
    mem.map(v, false).ok()?;
    Some(crate::arch::patch::Trampolines::new(start, end))
}

/// Maps the executable the monitor placed in guest-physical memory: no copy,
/// and every page is touched only through the application's own addresses.
fn map_preloaded(
    mem: &mut Memory,
    img: &PreloadedImage,
    ram: u64,
) -> Result<LoadPlan, &'static str> {
    let len = img
        .end
        .checked_sub(img.start)
        .ok_or("bad preloaded image")?;
    if img.nsegs as usize > img.segs.len()
        || img.pa.checked_add(len).is_none_or(|e| e > ram)
        || img.end > USER_TOP - STACK_SIZE
        || !img.start.is_multiple_of(PAGE)
        || !img.pa.is_multiple_of(PAGE)
    {
        return Err("the monitor's preloaded image is malformed");
    }
    let mut mapped_to = img.start;
    for seg in &img.segs[..img.nsegs as usize] {
        let s = page_down(seg.vaddr);
        let e = page_up(seg.vaddr.saturating_add(seg.memsz)).ok_or("bad segment")?;
        if s < img.start || e > img.end || s > e {
            return Err("the monitor's preloaded image is malformed");
        }
        let mut va = s;
        while va < e {
            let pa = img.pa + (va - img.start);
            let old = mem.pt.entry(va);
            let mut flags = pte_flags(seg.prot);
            if old & PTE_P != 0 {
                // A page shared with the previous segment gets both protections.
                if old & PTE_W != 0 {
                    flags |= PTE_W;
                }
                if old & PTE_NX == 0 {
                    flags &= !PTE_NX;
                }
            }
            mem.pt
                .set_entry(va, pa | flags)
                .map_err(|_| "out of memory for page tables")?;
            va += PAGE;
        }
        let vs = s.max(mapped_to);
        if vs < e {
            mem.vmas
                .insert(Vma {
                    start: vs,
                    end: e,
                    prot: seg.prot,
                    kind: VmaKind::Image,
                })
                .map_err(|_| "overlapping segments in the preloaded image")?;
            mapped_to = e;
        }
        if s < vs {
            let shared_prot = mem.vmas.find(s).map(|v| v.prot).unwrap_or(0) | seg.prot;
            let _ = mem.vmas.protect(s, s + PAGE, shared_prot);
        }
    }
    Ok(LoadPlan {
        bias: 0,
        entry: img.entry,
        phdr: img.phdr,
        phnum: img.phnum,
        start: img.start,
        end: img.end,
    })
}

/// Loads the executable from the rootfs (when the monitor did not place it).
fn load_from_rootfs(
    mem: &mut Memory,
    rootfs: &[u8],
    path: &[u8],
) -> Result<LoadPlan, &'static str> {
    let file = Archive::new(rootfs)
        .resolve(path)
        .ok_or("the program is not in the rootfs")?;
    if !file.is_file() {
        return Err("the program is not a regular file");
    }
    let elf = Elf::parse(file.data).map_err(|_| "the program is not an x86-64 ELF executable")?;
    load_elf(mem, &elf, USER_PIE_BASE)
}

/// Loads the dynamic loader the program names (PT_INTERP) from the rootfs,
/// if it names one, at the highest free place below the stack; returns
/// where, and its path in the rootfs (links followed).
fn load_interpreter<'r>(
    mem: &mut Memory,
    rootfs: &'r [u8],
    exec_path: &[u8],
) -> Result<Option<(LoadPlan, &'r [u8])>, &'static str> {
    let ar = Archive::new(rootfs);
    let Some(prog) = ar.resolve(exec_path) else {
        return Ok(None);
    };
    let Some(path) = Elf::parse(prog.data).ok().and_then(|e| e.interpreter()) else {
        return Ok(None);
    };
    let path = path.split(|&b| b == 0).next().unwrap_or(path);
    let file = ar
        .resolve(path)
        .filter(|f| f.is_file())
        .ok_or("the program's dynamic loader (PT_INTERP) is not in the rootfs")?;
    let ld = Elf::parse(file.data).map_err(|_| "the dynamic loader is not an x86-64 ELF file")?;
    if ld.interpreter().is_some() || ld.e_type != optivolt_abi::elf::ET_DYN {
        return Err("the dynamic loader is not a position-independent ELF of its own");
    }
    let (lo, hi) = ld.load_bounds();
    let span = page_up(hi)
        .ok_or("bad dynamic loader")?
        .saturating_sub(page_down(lo));
    let base = mem
        .find_free(span)
        .map_err(|_| "no room for the dynamic loader")?;
    load_elf(mem, &ld, base).map(|p| Some((p, file.name)))
}

/// Maps `elf`'s segments (an ET_DYN one at `base`) and copies their bytes.
fn load_elf(mem: &mut Memory, elf: &Elf<'_>, base: u64) -> Result<LoadPlan, &'static str> {
    let plan = loader::plan(elf, base, USER_TOP - STACK_SIZE)
        .map_err(|_| "the program's segments do not fit the address space")?;
    // Map each page once with its final protection (segments may share a
    // boundary page: it gets the union), then copy the file bytes through the
    // physmap; the rest stays zero.
    let mut mapped_to = 0u64;
    let mut prev_prot = 0u32;
    for ph in elf.load_segments() {
        let seg_start = page_down(ph.p_vaddr + plan.bias);
        let end = page_up(ph.p_vaddr + plan.bias + ph.p_memsz).ok_or("bad segment")?;
        let prot = loader::segment_prot(&ph);
        if seg_start < mapped_to && (prot | prev_prot) != prev_prot {
            mem.protect(mapped_to - PAGE, mapped_to, prot | prev_prot)
                .map_err(|_| "bad segment protections")?;
        }
        let start = seg_start.max(mapped_to);
        if start < end {
            let v = Vma {
                start,
                end,
                prot,
                kind: VmaKind::Image,
            };
            mem.map(v, true)
                .map_err(|_| "out of memory loading the program (try a larger --memory)")?;
            mapped_to = end;
            prev_prot = prot;
        }
        mem.load(ph.p_vaddr + plan.bias, elf.segment_data(&ph))
            .map_err(|_| "could not copy a program segment")?;
    }
    Ok(plan)
}

/// Copies the monitor's free ranges (they live in BootInfo, not on the heap yet).
fn alloc_free_ranges_without_heap(r: &[PhysRange]) -> FixedRanges {
    let mut f = FixedRanges {
        r: [PhysRange::default(); optivolt_abi::boot::MAX_FREE_RANGES],
        n: 0,
    };
    for x in r {
        if f.n < f.r.len() && !x.is_empty() {
            f.r[f.n] = *x;
            f.n += 1;
        }
    }
    f
}

/// A small fixed-capacity list of ranges (usable before the heap exists).
struct FixedRanges {
    r: [PhysRange; optivolt_abi::boot::MAX_FREE_RANGES],
    n: usize,
}

impl core::ops::Deref for FixedRanges {
    type Target = [PhysRange];
    fn deref(&self) -> &[PhysRange] {
        &self.r[..self.n]
    }
}

impl core::ops::DerefMut for FixedRanges {
    fn deref_mut(&mut self) -> &mut [PhysRange] {
        &mut self.r[..self.n]
    }
}
