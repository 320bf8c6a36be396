//! Rewriting `syscall` sites into jumps (function-call system calls for
//! unmodified binaries; see `syscall/patch.rs` for when a site is patched).
//!
//! A site `mov eax, imm32; syscall` (`b8 imm32 0f 05`, the shape of Go's
//! runtime stubs and of the C libraries' calls with a constant number) or
//! `mov rax, imm32; syscall` (`48 c7 c0 imm32 0f 05`, Go's other stubs) has
//! its `mov` overwritten with `jmp rel32` to a per-site trampoline that
//! holds the `mov` (position-independent, copied as it is).
//! The `syscall` itself stays, so a restart (RIP rewound by 2) still finds
//! a `syscall` there, and any branch that lands on it still works.
//!
//! The trampoline does what the `mov` and `syscall` did, with registers only
//! (never the application's stack: leaf functions keep data in the red zone)
//! and is preemptible anywhere: RCX = the return address and R11 = the flags
//! (CF, PF, AF, ZF, SF, OF, IF), as `syscall` leaves them, EAX = the number,
//! then an absolute jump to the library OS's entry, which returns to the
//! instruction after the `syscall` restoring the flags from R11.

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

/// What replaces a `mov` of `len` bytes at `site`: `jmp rel32` to the
/// trampoline, then `int3` up to the `syscall` (never reached: nothing jumps
/// into the middle of an instruction).
pub fn site_jump(site: u64, len: u64, trampoline: u64) -> Option<[u8; 7]> {
    if !(5..=7).contains(&len) {
        return None;
    }
    let r = rel32(site, 5, trampoline)?;
    Some([0xe9, r[0], r[1], r[2], r[3], 0xcc, 0xcc])
}

/// The trampoline at `at` for the site at `site` whose `mov` is `mov`,
/// entering the library OS at `entry`.
pub fn trampoline(
    at: u64,
    site: u64,
    mov: &[u8],
    entry: u64,
) -> Option<[u8; TRAMPOLINE_SIZE as usize]> {
    if !(5..=7).contains(&mov.len()) {
        return None;
    }
    let mut t = [0xccu8; TRAMPOLINE_SIZE as usize]; // int3 padding
    let mut n = 0usize;
    let mut put = |bytes: &[u8], n: &mut usize| {
        t[*n..*n + bytes.len()].copy_from_slice(bytes);
        *n += bytes.len();
    };
    put(&[0x9f], &mut n); //                     lahf
    put(&[0x0f, 0x90, 0xc0], &mut n); //          seto al
    put(&[0x44, 0x0f, 0xb6, 0xd8], &mut n); //    movzx r11d, al
    put(&[0x41, 0xc1, 0xe3, 0x0b], &mut n); //    shl r11d, 11 (OF)
    put(&[0x0f, 0xb6, 0xcc], &mut n); //          movzx ecx, ah
    put(&[0x41, 0x09, 0xcb], &mut n); //          or r11d, ecx
    put(&[0x41, 0x81, 0xcb, 0x00, 0x02, 0x00, 0x00], &mut n); // or r11d, 0x200 (IF)
    put(mov, &mut n); //                          the site's own mov
    let ret = site.checked_add(mov.len() as u64 + 2)?;
    let r = rel32(at + n as u64, 7, ret)?;
    put(&[0x48, 0x8d, 0x0d, r[0], r[1], r[2], r[3]], &mut n); // lea rcx, [rip + ret]
    put(&[0xff, 0x25, 0, 0, 0, 0], &mut n); //   jmp [rip + 0]
    put(&entry.to_le_bytes(), &mut n); //        the entry's address
    Some(t)
}

/// The trampoline at `at` for a site found ahead of time: `window` is the
/// run of whole, position-independent instructions (no control flow, no
/// RIP-relative operand: the host's disassembler checked) that ends at the
/// `syscall` at `syscall_at`. They run first, unchanged; then R11 gets the
/// flags they left (CF PF ZF SF OF, IF; with `cmov`, which clobbers
/// nothing but RCX and R11, as `syscall` does: RAX already holds the
/// number), RCX the return address, and the jump to `entry`.
pub fn trampoline_moved(
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

/// What replaces a window of `len` bytes: `jmp rel32`, then `int3` up to the
/// `syscall` (nothing branches into the window: the host checked).
pub fn window_jump(site: u64, len: usize, trampoline: u64) -> Option<[u8; MAX_WINDOW]> {
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

    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
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
        assert_eq!(j[5..], [0xcc, 0xcc], "never reached");
        assert!(
            site_jump(0x40_1000, 5, 0x40_1000 + (3 << 30)).is_none(),
            "beyond 2 GiB"
        );
        assert!(site_jump(0x40_1000, 4, 0x3f_0000).is_none());
    }

    #[test]
    fn the_trampoline_sets_rax_rcx_r11_and_jumps_to_the_entry_without_the_stack() {
        let (at, site, entry) = (0x3f_0040u64, 0x40_1234u64, 0x7e00_0010_2000u64);
        let t = trampoline(at, site, &[0xb8, 110, 0, 0, 0], entry).unwrap();
        let code = disasm(&t, at);
        assert_eq!(
            code,
            [
                "lahf",
                "seto al",
                "movzx r11d,al",
                "shl r11d,0Bh",
                "movzx ecx,ah",
                "or r11d,ecx",
                "or r11d,200h",
                "mov eax,6Eh",
                "lea rcx,[40123Bh]",
                "jmp qword ptr [3F006Bh]", // the 8 bytes right after it
            ]
        );
        let used: usize = {
            let mut d = Decoder::with_ip(64, &t, at, DecoderOptions::NONE);
            let mut n = 0;
            for ins in &mut d {
                n += ins.len();
                if ins.mnemonic() == iced_x86::Mnemonic::Jmp {
                    break;
                }
            }
            n
        };
        assert_eq!(
            &t[used..used + 8],
            &entry.to_le_bytes(),
            "the jump's target"
        );
        assert!(used + 8 <= TRAMPOLINE_SIZE as usize);
        let t7 = trampoline(at, site, &[0x48, 0xc7, 0xc0, 0xe4, 0, 0, 0], entry).unwrap();
        let code7 = disasm(&t7, at);
        assert_eq!(code7[7], "mov rax,0E4h");
        assert_eq!(code7[8], "lea rcx,[40123Dh]", "returns after a 9-byte site");
        // Nothing in it touches memory through RSP or pushes.
        let mut d = Decoder::with_ip(64, &t[..used], at, DecoderOptions::NONE);
        for ins in &mut d {
            assert!(!ins.is_stack_instruction(), "{ins}");
            assert_ne!(ins.memory_base(), iced_x86::Register::RSP, "{ins}");
        }
    }

    #[test]
    fn a_moved_window_runs_first_then_the_flags_go_to_r11_with_cmov() {
        let (at, entry) = (0x3f_0000u64, 0x7e00_0010_2000u64);
        // Go's Syscall6 tail: mov rsi,rcx; mov rdi,rbx; then syscall at 0x40268c.
        let window = [0x48, 0x89, 0xce, 0x48, 0x89, 0xdf];
        let t = trampoline_moved(at, 0x40_268c, &window, entry).unwrap();
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
        assert!(
            trampoline_moved(at, 0x40_268c, &longest, entry).is_some(),
            "fits"
        );
        assert!(trampoline_moved(at, 0x40_268c, &[0x90; 4], entry).is_none());
        let j = window_jump(0x40_2686, 6, at).unwrap();
        assert_eq!(disasm(&j[..5], 0x40_2686), ["jmp 00000000003F0000h"]);
    }

    #[test]
    fn trampolines_are_handed_out_until_the_region_is_full() {
        let mut r = Trampolines::new(0x1000, 0x1000 + 2 * TRAMPOLINE_SIZE);
        assert_eq!(r.take(), Some(0x1000));
        assert_eq!(r.take(), Some(0x1000 + TRAMPOLINE_SIZE));
        assert_eq!(r.take(), None);
        assert!(r.contains(0x1000) && !r.contains(0x1000 + 2 * TRAMPOLINE_SIZE));
    }
}
