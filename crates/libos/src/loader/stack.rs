//! The initial process stack, exactly as Linux's `create_elf_tables` lays it
//! out: argc, argv pointers, NULL, envp pointers, NULL, auxv pairs, AT_NULL,
//! then (higher) the random bytes, the platform string and the strings.

use alloc::vec::Vec;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// What goes on the stack.
pub struct StackSpec<'a> {
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    /// Auxiliary vector entries other than the string/random ones, which are added here.
    pub auxv: &'a [(u64, u64)],
    pub execfn: &'a [u8],
    pub platform: &'a [u8],
    pub random: [u8; 16],
}

/// A built stack image: `bytes` belong at `[rsp, top)`.
pub struct StackImage {
    pub rsp: u64,
    pub bytes: Vec<u8>,
}

/// Builds the image for a stack whose highest address is `top` (exclusive).
pub fn build(spec: &StackSpec<'_>, top: u64) -> StackImage {
    // Strings area, filled downwards from `top`.
    let mut strings: Vec<u8> = Vec::new();
    let push_str = |s: &[u8], strings: &mut Vec<u8>| -> u64 {
        // Offsets from the start of the strings area are fixed up below.
        let off = strings.len() as u64;
        strings.extend_from_slice(s);
        strings.push(0);
        off
    };
    let argv_off: Vec<u64> = spec
        .argv
        .iter()
        .map(|s| push_str(s, &mut strings))
        .collect();
    let envp_off: Vec<u64> = spec
        .envp
        .iter()
        .map(|s| push_str(s, &mut strings))
        .collect();
    let execfn_off = push_str(spec.execfn, &mut strings);
    let platform_off = push_str(spec.platform, &mut strings);
    let random_off = strings.len() as u64;
    strings.extend_from_slice(&spec.random);
    // Leave 8 bytes of zero at the very top, as Linux does.
    let strings_start = (top - 8 - strings.len() as u64) & !0xf;
    let at = |off: u64| strings_start + off;

    let mut words: Vec<u64> = Vec::new();
    words.push(spec.argv.len() as u64);
    words.extend(argv_off.iter().map(|&o| at(o)));
    words.push(0);
    words.extend(envp_off.iter().map(|&o| at(o)));
    words.push(0);
    for &(k, v) in spec.auxv {
        words.push(k);
        words.push(v);
    }
    for (k, v) in [
        (AT_RANDOM, at(random_off)),
        (AT_EXECFN, at(execfn_off)),
        (AT_PLATFORM, at(platform_off)),
    ] {
        words.push(k);
        words.push(v);
    }
    words.push(AT_NULL);
    words.push(0);

    // rsp must be 16-byte aligned at the entry point.
    let rsp = (strings_start - words.len() as u64 * 8) & !0xf;
    let mut bytes = alloc::vec![0u8; (top - rsp) as usize];
    for (i, w) in words.iter().enumerate() {
        let o = i * 8;
        bytes[o..o + 8].copy_from_slice(&w.to_le_bytes());
    }
    let so = (strings_start - rsp) as usize;
    bytes[so..so + strings.len()].copy_from_slice(&strings);
    StackImage { rsp, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(img: &StackImage, addr: u64) -> u64 {
        let o = (addr - img.rsp) as usize;
        u64::from_le_bytes(img.bytes[o..o + 8].try_into().unwrap())
    }

    fn cstr(img: &StackImage, addr: u64) -> Vec<u8> {
        let o = (addr - img.rsp) as usize;
        img.bytes[o..]
            .iter()
            .take_while(|&&c| c != 0)
            .copied()
            .collect()
    }

    #[test]
    fn layout_matches_linux() {
        let top = 0x7000_0000u64;
        let spec = StackSpec {
            argv: &[b"./hello", b"world"],
            envp: &[b"A=1"],
            auxv: &[(AT_PAGESZ, 4096), (AT_ENTRY, 0x401000)],
            execfn: b"/hello",
            platform: b"x86_64",
            random: [7; 16],
        };
        let img = build(&spec, top);
        assert_eq!(img.rsp % 16, 0);
        assert_eq!(img.rsp + img.bytes.len() as u64, top);
        let sp = img.rsp;
        assert_eq!(word(&img, sp), 2);
        assert_eq!(cstr(&img, word(&img, sp + 8)), b"./hello");
        assert_eq!(cstr(&img, word(&img, sp + 16)), b"world");
        assert_eq!(word(&img, sp + 24), 0);
        assert_eq!(cstr(&img, word(&img, sp + 32)), b"A=1");
        assert_eq!(word(&img, sp + 40), 0);
        // auxv
        let mut a = sp + 48;
        let mut seen = std::collections::HashMap::new();
        loop {
            let (k, v) = (word(&img, a), word(&img, a + 8));
            if k == AT_NULL {
                break;
            }
            seen.insert(k, v);
            a += 16;
        }
        assert_eq!(seen[&AT_PAGESZ], 4096);
        assert_eq!(cstr(&img, seen[&AT_EXECFN]), b"/hello");
        assert_eq!(cstr(&img, seen[&AT_PLATFORM]), b"x86_64");
        let r = (seen[&AT_RANDOM] - img.rsp) as usize;
        assert_eq!(&img.bytes[r..r + 16], &[7; 16]);
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn pointers_land_on_their_strings_for_any_length() {
        for n in 0..40 {
            let env = "E=".to_string() + &"x".repeat(n);
            let spec = StackSpec {
                argv: &[b"./args-musl", b"x"],
                envp: &[env.as_bytes()],
                auxv: &[(AT_PAGESZ, 4096)],
                execfn: b"/args-musl",
                platform: b"x86_64",
                random: [1; 16],
            };
            let top = 0x7d00_0000_0000u64;
            let img = build(&spec, top);
            let word = |a: u64| {
                u64::from_le_bytes(img.bytes[(a - img.rsp) as usize..][..8].try_into().unwrap())
            };
            let s = |a: u64| -> Vec<u8> {
                img.bytes[(a - img.rsp) as usize..]
                    .iter()
                    .take_while(|&&c| c != 0)
                    .copied()
                    .collect()
            };
            assert_eq!(word(img.rsp), 2);
            assert_eq!(s(word(img.rsp + 8)), b"./args-musl", "n={n}");
            assert_eq!(s(word(img.rsp + 16)), b"x", "n={n}");
            assert_eq!(s(word(img.rsp + 32)), env.as_bytes(), "n={n}");
        }
    }
}
