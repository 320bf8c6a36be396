//! Finding the program's `syscall` sites ahead of time, with a real
//! disassembler (iced-x86), so that the library OS can rewrite the sites
//! whose shape it cannot tell from the bytes alone (musl's `mov %r8,%rax;
//! syscall`, Go's `Syscall6`). For each `syscall` we look for a window of
//! whole instructions right before it, at least 5 bytes long (room for a
//! `jmp rel32`), that the library OS may move into a trampoline unchanged:
//! no control flow, nothing RIP-relative, and no direct branch target
//! inside it (its first instruction may be one). Sites without such a
//! window keep trapping. The guest still checks the `syscall` bytes before
//! it patches, and patches only sites that trap.
//!
//! The result is cached by the binary's size, modification time, inode and
//! device, so a program is disassembled once.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, OpKind};
use optivolt_abi::elf::Elf;

/// Shortest window: a `jmp rel32`.
const MIN_WINDOW: u64 = 5;
/// Longest window we move (the trampoline has room for it).
pub const MAX_WINDOW: u64 = 24;

/// One patchable site: the `syscall`'s address and the start of its window
/// (link-time addresses; the guest adds its load bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SiteWindow {
    /// Address of the `syscall` instruction.
    pub syscall: u64,
    /// Address of the window's first instruction.
    pub start: u64,
}

/// Whether an instruction may be moved unchanged into a trampoline.
fn movable(i: &Instruction) -> bool {
    if i.flow_control() != FlowControl::Next || i.is_ip_rel_memory_operand() {
        return false;
    }
    // Nothing that reads RIP in another way, and no syscall-like instruction.
    !matches!(
        i.code(),
        Code::Syscall | Code::Sysenter | Code::Int_imm8 | Code::Int3
    ) && (0..i.op_count()).all(|n| i.op_kind(n) != OpKind::NearBranch64)
}

/// The patchable sites of the executable segments of `elf`.
pub fn scan(elf: &Elf<'_>) -> Vec<SiteWindow> {
    let mut out: Vec<SiteWindow> = elf
        .load_segments()
        .filter(|p| p.p_flags & 1 != 0)
        .flat_map(|ph| windows_in(elf.segment_data(&ph), ph.p_vaddr))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How many instructions before a `syscall` are remembered while decoding
/// (a window is at most [`MAX_WINDOW`] bytes, and instructions are at least 1).
const RECENT: usize = MAX_WINDOW as usize;

/// A decoded instruction, as much as the window rules need.
#[derive(Clone, Copy, Default)]
struct Seen {
    ip: u64,
    next: u64,
    movable: bool,
}

/// The sites of one piece of code loaded at `ip`, decoded linearly in one
/// pass (only the last few instructions are kept, not the whole listing).
fn windows_in(code: &[u8], ip: u64) -> Vec<SiteWindow> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut i = Instruction::default();
    let mut recent = [Seen::default(); RECENT];
    let mut n = 0usize; // instructions decoded
    let mut targets = HashSet::new();
    // Per syscall: the instruction starts of the longest movable run before
    // it (nearest first), cut to the first one that makes it long enough.
    let mut candidates: Vec<(u64, Vec<u64>)> = Vec::new();
    while d.can_decode() {
        d.decode_out(&mut i);
        if i.flow_control() != FlowControl::Next
            && i.op_count() > 0
            && i.op0_kind() == OpKind::NearBranch64
        {
            targets.insert(i.near_branch_target());
        }
        if i.code() == Code::Syscall {
            let mut starts = Vec::new();
            let mut start = i.ip();
            for back in 1..=RECENT.min(n) {
                let prev = recent[(n - back) % RECENT];
                if prev.next != start || !prev.movable || i.ip() - prev.ip > MAX_WINDOW {
                    break;
                }
                start = prev.ip;
                starts.push(start);
                if i.ip() - start >= MIN_WINDOW {
                    break;
                }
            }
            candidates.push((i.ip(), starts));
        }
        recent[n % RECENT] = Seen {
            ip: i.ip(),
            next: i.next_ip(),
            movable: movable(&i),
        };
        n += 1;
    }
    // A branch target may begin a window, never lie inside it: a window
    // stops at the nearest start that is a target.
    candidates
        .into_iter()
        .filter_map(|(syscall, starts)| {
            let cut = starts
                .iter()
                .position(|s| targets.contains(s))
                .map_or(starts.len(), |p| p + 1);
            let start = *starts[..cut].last()?;
            (syscall - start >= MIN_WINDOW).then_some(SiteWindow { syscall, start })
        })
        .collect()
}

/// The table the library OS reads: `(syscall, window start)` pairs of
/// little-endian u64s, sorted by `syscall`, moved by `bias` (where the
/// program is loaded).
/// The whole table (`optivolt_abi::sites`), starting with the program's pairs.
pub fn with_program(pairs: &[u8]) -> Vec<u8> {
    let mut v = (pairs.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(pairs);
    v
}

/// Appends a library's section: its guest path and its pairs.
pub fn push_library(table: &mut Vec<u8>, path: &[u8], pairs: &[u8]) {
    table.extend_from_slice(&(path.len() as u64).to_le_bytes());
    table.extend_from_slice(path);
    table.resize(table.len().next_multiple_of(8), 0);
    table.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    table.extend_from_slice(pairs);
}

pub fn encode(sites: &[SiteWindow], bias: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(sites.len() * 16);
    for s in sites {
        v.extend_from_slice(&s.syscall.wrapping_add(bias).to_le_bytes());
        v.extend_from_slice(&s.start.wrapping_add(bias).to_le_bytes());
    }
    v
}

fn decode(t: &[u8]) -> Option<Vec<SiteWindow>> {
    if !t.len().is_multiple_of(16) {
        return None;
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    Some(
        t.chunks_exact(16)
            .map(|c| SiteWindow {
                syscall: word(&c[..8]),
                start: word(&c[8..]),
            })
            .collect(),
    )
}

fn cache_path(binary: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(binary).ok()?;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("optivolt/sites").join(format!(
        "{:x}-{:x}-{:x}-{:x}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime_nsec() as u64 ^ ((m.mtime() as u64) << 30),
        env!("CARGO_PKG_VERSION")
    )))
}

/// The sites of the file at `path`, from the cache without reading the
/// file when it was scanned before; `None` if it is not an ELF file.
pub fn sites_of_file(path: &Path) -> Option<Vec<SiteWindow>> {
    if let Some(cached) = cache_path(path)
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|t| decode(&t))
    {
        return Some(cached);
    }
    let bytes = std::fs::read(path).ok()?;
    let elf = Elf::parse(&bytes).ok()?;
    Some(sites_for(path, &elf))
}

/// The sites of `binary` (its bytes parsed in `elf`), from the cache when
/// it was scanned before. A cache that cannot be read or written is only
/// slower.
pub fn sites_for(binary: &Path, elf: &Elf<'_>) -> Vec<SiteWindow> {
    let path = cache_path(binary);
    if let Some(cached) = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|t| decode(&t))
    {
        return cached;
    }
    let sites = scan(elf);
    if let Some(p) = &path {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, encode(&sites, 0)).is_ok() {
            let _ = std::fs::rename(&tmp, p);
        }
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(code: &[u8]) -> Vec<(u64, u64)> {
        windows_in(code, 0x1000)
            .into_iter()
            .map(|w| (w.syscall, w.start))
            .collect()
    }

    #[test]
    fn go_syscall6_gets_its_last_register_moves_as_a_window() {
        // mov r10,rsi; mov rdx,rdi; mov rsi,rcx; mov rdi,rbx; syscall; ret
        let code = [
            0x49, 0x89, 0xf2, 0x48, 0x89, 0xfa, 0x48, 0x89, 0xce, 0x48, 0x89, 0xdf, 0x0f, 0x05,
            0xc3,
        ];
        assert_eq!(windows(&code), [(0x100c, 0x1006)], "two 3-byte moves");
    }

    #[test]
    fn a_branch_target_inside_the_window_stops_it() {
        // 0x1000: mov esi,1 (5)  0x1005: mov rax,r8 (3)  0x1008: syscall
        // 0x100a: jmp 0x1005  (a loop back to the second instruction)
        let code = [0xbe, 1, 0, 0, 0, 0x4c, 0x89, 0xc0, 0x0f, 0x05, 0xeb, 0xf9];
        assert_eq!(
            windows(&code),
            [],
            "only 3 bytes before the syscall are safe"
        );
    }

    #[test]
    fn rip_relative_and_control_flow_end_the_window() {
        // mov rax,[rip+0] (7) ; syscall
        let code = [0x48, 0x8b, 0x05, 0, 0, 0, 0, 0x0f, 0x05];
        assert_eq!(windows(&code), []);
        // call +0 ; mov rax,r8 ; mov rdi,rbx ; syscall — the call ends it
        let code = [
            0xe8, 0, 0, 0, 0, 0x4c, 0x89, 0xc0, 0x48, 0x89, 0xdf, 0x0f, 0x05,
        ];
        assert_eq!(
            windows(&code),
            [(0x100b, 0x1005)],
            "6 bytes of moves after the call"
        );
    }

    #[test]
    fn the_table_is_pairs_of_le_u64_moved_by_the_bias() {
        let w = SiteWindow {
            syscall: 0x1008,
            start: 0x1002,
        };
        let t = encode(&[w], 0x40_0000);
        assert_eq!(t.len(), 16);
        assert_eq!(u64::from_le_bytes(t[..8].try_into().unwrap()), 0x401008);
        assert_eq!(u64::from_le_bytes(t[8..].try_into().unwrap()), 0x401002);
        assert_eq!(decode(&encode(&[w], 0)), Some(vec![w]), "the cache's form");
        assert_eq!(decode(&[0; 15]), None);
    }
}
