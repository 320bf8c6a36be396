//! Rewriting `syscall` sites into jumps (function-call system calls for
//! unmodified binaries; see `syscall/patch.rs` for when a site is patched).
//!
//! A site is a `syscall` and the run of whole instructions right before it
//! that the trampoline takes over: the `mov eax|rax, imm32` of the shape the
//! library OS recognises itself (`b8 imm32 0f 05`, `48 c7 c0 imm32 0f 05`:
//! Go's runtime stubs, the C libraries' calls with a constant number), or a
//! window volt's disassembler found ahead of time. That run is overwritten
//! with `jmp rel32` to a per-site trampoline holding it (it is
//! position-independent, so it moves as it is). The `syscall` itself stays,
//! so a restart (RIP rewound by 2) still finds a `syscall` there, and any
//! branch that lands on it still works.
//!
//! The trampoline runs the moved instructions, then does what `syscall` does
//! to registers, with registers only (never the application's stack: leaf
//! functions keep data in the red zone), preemptible anywhere: RCX = the
//! return address and R11 = the flags, then an absolute jump to the library
//! OS's entry, which returns after the `syscall` restoring the flags from R11.

/// Bytes reserved for each trampoline.
pub const TRAMPOLINE_SIZE: u64 = 128;

/// The longest window of instructions a trampoline takes over.
pub const MAX_WINDOW: usize = 24;

/// How many bytes before a `syscall` the site reader looks at.
pub const LOOK_BEHIND: usize = 10;

/// A patchable site: the `mov` that loads the number, right before `syscall`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Length of the `mov` (5 or 7 bytes); the site starts that many bytes
    /// before the `syscall`.
    pub mov_len: u64,
    /// The value it leaves in RAX.
    pub rax: u64,
}

/// Whether `b` could be a prefix (legacy or REX) of the instruction after it.
fn is_prefix(b: u8) -> bool {
    matches!(
        b,
        0x40..=0x4f | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x3e | 0x26 | 0x36 | 0x64 | 0x65
    )
}

/// The patchable site ending with the `syscall` right before `ret`, from the
/// [`LOOK_BEHIND`] bytes before `ret`: `mov eax, imm32` or `mov rax,
/// imm32` immediately before `0f 05`, with no prefix in front of the `mov`
/// (then its first byte would belong to another instruction: `41 b8` is
/// `mov r8d, imm32`).
pub fn site_at(before: &[u8; LOOK_BEHIND]) -> Option<Site> {
    let n = LOOK_BEHIND;
    if before[n - 2..] != [0x0f, 0x05] {
        return None;
    }
    let imm = |at: usize| {
        u32::from_le_bytes([before[at], before[at + 1], before[at + 2], before[at + 3]])
    };
    if before[n - 7] == 0xb8 && !is_prefix(before[n - 8]) {
        return Some(Site {
            mov_len: 5,
            rax: imm(n - 6) as u64,
        });
    }
    if before[n - 9..n - 6] == [0x48, 0xc7, 0xc0] && !is_prefix(before[n - 10]) {
        return Some(Site {
            mov_len: 7,
            rax: imm(n - 6) as i32 as i64 as u64,
        });
    }
    None
}

/// `rel32` for a 5- or 7-byte instruction at `from` of length `len` that
/// reaches `to`, if it is within ±2 GiB.
fn rel32(from: u64, len: u64, to: u64) -> Option<[u8; 4]> {
    let next = from.checked_add(len)?;
    let d = (to as i128) - (next as i128);
    i32::try_from(d).ok().map(i32::to_le_bytes)
}

/// The trampoline at `at` for the site whose `syscall` is at `syscall_at`:
/// `window` is the run of whole, position-independent instructions right
/// before it (no control flow, no RIP-relative operand: the `mov` of a
/// shape, or a window the host's disassembler checked). They run first,
/// unchanged; then R11 gets the flags they left (CF PF ZF SF OF, and IF;
/// with `cmov`, which clobbers nothing but RCX and R11, as `syscall` does:
/// RAX already holds the number; AF is not kept, no instruction of 64-bit
/// mode but `pushf`/`lahf` reads it), RCX the return address, and the jump
/// to `entry`.
pub fn trampoline(
    at: u64,
    syscall_at: u64,
    window: &[u8],
    entry: u64,
) -> Option<[u8; TRAMPOLINE_SIZE as usize]> {
    if !(5..=MAX_WINDOW).contains(&window.len()) {
        return None;
    }
    let mut t = [0xccu8; TRAMPOLINE_SIZE as usize];
    let mut n = 0usize;
    let mut put = |bytes: &[u8], n: &mut usize| {
        t[*n..*n + bytes.len()].copy_from_slice(bytes);
        *n += bytes.len();
    };
    put(window, &mut n);
    put(&[0x41, 0xbb, 0x02, 0x02, 0x00, 0x00], &mut n); // mov r11d, 0x202 (IF)
                                                        // For each flag: lea rcx, [r11 + bit]; cmovCC r11, rcx.
    for (bit, cc) in [
        (0x1u32, 0x42u8),
        (0x4, 0x4a),
        (0x40, 0x44),
        (0x80, 0x48),
        (0x800, 0x40),
    ] {
        if bit < 0x80 {
            put(&[0x49, 0x8d, 0x4b, bit as u8], &mut n);
        } else {
            let [a, b, c, d] = bit.to_le_bytes();
            put(&[0x49, 0x8d, 0x8b, a, b, c, d], &mut n);
        }
        put(&[0x4c, 0x0f, cc, 0xd9], &mut n);
    }
    let ret = syscall_at.checked_add(2)?;
    let r = rel32(at + n as u64, 7, ret)?;
    put(&[0x48, 0x8d, 0x0d, r[0], r[1], r[2], r[3]], &mut n); // lea rcx, [rip + ret]
    put(&[0xff, 0x25, 0, 0, 0, 0], &mut n); //                   jmp [rip + 0]
    put(&entry.to_le_bytes(), &mut n);
    Some(t)
}

/// What replaces a window of `len` bytes at `site`: `jmp rel32` to the
/// trampoline, then `int3` up to the `syscall` (never reached: nothing
/// branches into a window, and a `mov` is one instruction).
pub fn site_jump(site: u64, len: usize, trampoline: u64) -> Option<[u8; MAX_WINDOW]> {
    if !(5..=MAX_WINDOW).contains(&len) {
        return None;
    }
    let r = rel32(site, 5, trampoline)?;
    let mut j = [0xccu8; MAX_WINDOW];
    j[..5].copy_from_slice(&[0xe9, r[0], r[1], r[2], r[3]]);
    Some(j)
}

/// A bump allocator of trampolines in a region of the application's address
/// space near its code.
#[derive(Clone, Copy, Debug)]
pub struct Trampolines {
    /// The region.
    pub start: u64,
    /// Its end (exclusive).
    pub end: u64,
    next: u64,
}

impl Trampolines {
    /// Trampolines in `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        Trampolines {
            start,
            end,
            next: start,
        }
    }

    /// The next free trampoline's address, if one is left.
    pub fn take(&mut self) -> Option<u64> {
        let at = self.next;
        let e = at.checked_add(TRAMPOLINE_SIZE)?;
        if e > self.end {
            return None;
        }
        self.next = e;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

    fn disasm(code: &[u8], ip: u64) -> Vec<String> {
        let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
        let mut f = IntelFormatter::new();
        let mut out = Vec::new();
        let mut ins = Instruction::default();
        while d.can_decode() {
            d.decode_out(&mut ins);
            let mut s = String::new();
            f.format(&ins, &mut s);
            out.push(s);
            if ins.mnemonic() == iced_x86::Mnemonic::Jmp {
                break;
            }
        }
        out
    }

    #[test]
    fn only_a_mov_of_rax_right_before_syscall_is_a_site() {
        let eax = Site {
            mov_len: 5,
            rax: 39,
        };
        assert_eq!(
            site_at(&[0x90, 0x90, 0x90, 0xb8, 0x27, 0, 0, 0, 0x0f, 0x05]),
            Some(eax)
        );
        assert_eq!(
            site_at(&[0x90, 0x90, 0x41, 0xb8, 0x27, 0, 0, 0, 0x0f, 0x05]),
            None,
            "mov r8d"
        );
        assert_eq!(
            site_at(&[0x90, 0x90, 0x66, 0xb8, 0x27, 0, 0, 0, 0x0f, 0x05]),
            None,
            "prefixed"
        );
        assert_eq!(
            site_at(&[0x90, 0x90, 0x90, 0x48, 0x89, 0xdf, 0x90, 0x90, 0x0f, 0x05]),
            None
        );
        assert_eq!(
            site_at(&[0x90, 0x90, 0x90, 0xb8, 0x27, 0, 0, 0, 0x0f, 0x0b]),
            None
        );
        let rax = Site {
            mov_len: 7,
            rax: 0xe4,
        };
        assert_eq!(
            site_at(&[0x90, 0x48, 0xc7, 0xc0, 0xe4, 0, 0, 0, 0x0f, 0x05]),
            Some(rax)
        );
        let neg = site_at(&[0x90, 0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x05]);
        assert_eq!(neg.map(|s| s.rax), Some(u64::MAX), "sign-extended");
        assert_eq!(
            site_at(&[0xf0, 0x48, 0xc7, 0xc0, 0xe4, 0, 0, 0, 0x0f, 0x05]),
            None
        );
    }

    #[test]
    fn the_site_jumps_to_its_trampoline() {
        let j = site_jump(0x40_1000, 5, 0x3f_0000).unwrap();
        assert_eq!(disasm(&j[..5], 0x40_1000), ["jmp 00000000003F0000h"]);
        assert!(j[5..].iter().all(|&b| b == 0xcc), "never reached");
        assert!(
            site_jump(0x40_1000, 5, 0x40_1000 + (3 << 30)).is_none(),
            "beyond 2 GiB"
        );
        assert!(site_jump(0x40_1000, 4, 0x3f_0000).is_none());
    }

    #[test]
    fn a_shape_sites_mov_moves_into_the_trampoline_and_returns_after_the_syscall() {
        let (at, entry) = (0x3f_0080u64, 0x7e00_0010_2000u64);
        // mov eax, 110 at 0x401234; syscall at 0x401239.
        let t = trampoline(at, 0x40_1239, &[0xb8, 110, 0, 0, 0], entry).unwrap();
        let code = disasm(&t, at);
        assert_eq!(code[0], "mov eax,6Eh");
        assert_eq!(
            code[code.len() - 2],
            "lea rcx,[40123Bh]",
            "after the syscall"
        );
        let t7 = trampoline(at, 0x40_123b, &[0x48, 0xc7, 0xc0, 0xe4, 0, 0, 0], entry).unwrap();
        let code7 = disasm(&t7, at);
        assert_eq!(code7[0], "mov rax,0E4h");
        assert_eq!(
            code7[code7.len() - 2],
            "lea rcx,[40123Dh]",
            "after a 9-byte site"
        );
        let j = site_jump(0x40_1234, 7, at).unwrap();
        assert_eq!(disasm(&j[..5], 0x40_1234), ["jmp 00000000003F0080h"]);
        assert_eq!(j[5..7], [0xcc, 0xcc], "never reached");
    }

    #[test]
    fn a_moved_window_runs_first_then_the_flags_go_to_r11_with_cmov() {
        let (at, entry) = (0x3f_0000u64, 0x7e00_0010_2000u64);
        // Go's Syscall6 tail: mov rsi,rcx; mov rdi,rbx; then syscall at 0x40268c.
        let window = [0x48, 0x89, 0xce, 0x48, 0x89, 0xdf];
        let t = trampoline(at, 0x40_268c, &window, entry).unwrap();
        let code = disasm(&t, at);
        assert_eq!(
            code,
            [
                "mov rsi,rcx",
                "mov rdi,rbx",
                "mov r11d,202h",
                "lea rcx,[r11+1]",
                "cmovb r11,rcx",
                "lea rcx,[r11+4]",
                "cmovp r11,rcx",
                "lea rcx,[r11+40h]",
                "cmove r11,rcx",
                "lea rcx,[r11+80h]",
                "cmovs r11,rcx",
                "lea rcx,[r11+800h]",
                "cmovo r11,rcx",
                "lea rcx,[40268Eh]",
                "jmp qword ptr [3F0047h]", // the 8 bytes right after it
            ]
        );
        let mut d = Decoder::with_ip(64, &t, at, DecoderOptions::NONE);
        for ins in &mut d {
            assert!(!ins.is_stack_instruction(), "{ins}");
            if ins.mnemonic() == iced_x86::Mnemonic::Jmp {
                let after = (ins.next_ip() - at) as usize;
                assert_eq!(&t[after..after + 8], &entry.to_le_bytes());
                break;
            }
        }
        let longest = [0x90u8; MAX_WINDOW];
        assert!(trampoline(at, 0x40_268c, &longest, entry).is_some(), "fits");
        assert!(trampoline(at, 0x40_268c, &[0x90; 4], entry).is_none());
        let j = site_jump(0x40_2686, 6, at).unwrap();
        assert_eq!(disasm(&j[..5], 0x40_2686), ["jmp 00000000003F0000h"]);
    }

    #[test]
    fn trampolines_are_handed_out_until_the_region_is_full() {
        let mut r = Trampolines::new(0x1000, 0x1000 + 2 * TRAMPOLINE_SIZE);
        assert_eq!(r.take(), Some(0x1000));
        assert_eq!(r.take(), Some(0x1000 + TRAMPOLINE_SIZE));
        assert_eq!(r.take(), None);
    }
}
