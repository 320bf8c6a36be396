//! The vDSO: a small ELF shared object the application finds through
//! `AT_SYSINFO_EHDR`, as on Linux, so the C libraries and Go read the
//! clocks without a system call (each system call traps through the
//! hypervisor here, see `docs/architecture.md`). This module builds the
//! image; the functions it names are in [`clock`] (guest only).

#[cfg(feature = "guest")]
pub mod clock;

use alloc::vec;
use alloc::vec::Vec;

/// A function the vDSO exports: its name and address.
#[derive(Clone, Copy, Debug)]
pub struct Export<'a> {
    pub name: &'a str,
    pub addr: u64,
}

const EHDR: usize = 64;
const PHDR: usize = 56;
const SYM: usize = 24;
const DYN: usize = 16;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
/// The version Linux gives its vDSO symbols (Go insists on finding it).
pub const VERSION: &str = "LINUX_2.6";
const SONAME: &str = "linux-vdso.so.1";
const VERDEF: usize = 20;
const VERDAUX: usize = 8;

/// The SysV ELF hash (version definitions carry it).
pub fn elf_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for c in name.bytes() {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}
/// STB_GLOBAL, STT_FUNC.
const GLOBAL_FUNC: u8 = 0x12;
/// Any defined section: readers skip symbols with index 0 (undefined).
const SHNDX_TEXT: u16 = 1;

fn put(v: &mut [u8], at: usize, bytes: &[u8]) {
    v[at..at + bytes.len()].copy_from_slice(bytes);
}

/// The size of the image for `exports`.
pub fn image_size(exports: &[Export<'_>]) -> usize {
    let nsyms = exports.len() + 1;
    let names: usize = exports.iter().map(|e| e.name.len() + 1).sum();
    let strings = 1 + SONAME.len() + 1 + VERSION.len() + 1 + names;
    layout(nsyms).str_off + strings
}

struct Layout {
    dyn_off: usize,
    hash_off: usize,
    sym_off: usize,
    versym_off: usize,
    verdef_off: usize,
    str_off: usize,
}

const NDYN: usize = 9;

fn layout(nsyms: usize) -> Layout {
    let dyn_off = EHDR + 2 * PHDR;
    let hash_off = dyn_off + NDYN * DYN;
    let hash_len = 4 * (2 + 1 + nsyms);
    let sym_off = (hash_off + hash_len).next_multiple_of(8);
    let versym_off = sym_off + nsyms * SYM;
    let verdef_off = (versym_off + 2 * nsyms).next_multiple_of(4);
    let str_off = verdef_off + 2 * (VERDEF + VERDAUX);
    Layout {
        dyn_off,
        hash_off,
        sym_off,
        versym_off,
        verdef_off,
        str_off,
    }
}

/// Writes the image for loading at `base` into `v` (exactly
/// [`image_size`] bytes, zeroed): ELF header, one PT_LOAD and one
/// PT_DYNAMIC header, the dynamic section, a SysV hash table with a single
/// bucket, the symbols (all of version `LINUX_2.6`, with the version
/// tables) and their names. Symbol values are relative to `base` (what
/// readers add the load offset to), so the functions can live anywhere.
pub fn build_into(v: &mut [u8], base: u64, exports: &[Export<'_>]) {
    let nsyms = exports.len() + 1; // index 0 is the null symbol
    let Layout {
        dyn_off,
        hash_off,
        sym_off,
        versym_off,
        verdef_off,
        str_off,
    } = layout(nsyms);
    let ndyn = NDYN;
    let mut strings = vec![0u8];
    let soname_at = strings.len() as u32;
    strings.extend_from_slice(SONAME.as_bytes());
    strings.push(0);
    let version_at = strings.len() as u32;
    strings.extend_from_slice(VERSION.as_bytes());
    strings.push(0);
    let mut names = Vec::new();
    for e in exports {
        names.push(strings.len() as u32);
        strings.extend_from_slice(e.name.as_bytes());
        strings.push(0);
    }
    let total = str_off + strings.len();
    assert_eq!(v.len(), total, "image_size disagrees with the layout");
    let v = &mut v[..];

    // ELF header: 64-bit, little-endian, ET_DYN, x86-64.
    put(v, 0, &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    put(v, 16, &3u16.to_le_bytes());
    put(v, 18, &62u16.to_le_bytes());
    put(v, 20, &1u32.to_le_bytes());
    put(v, 32, &(EHDR as u64).to_le_bytes()); // e_phoff
    put(v, 52, &(EHDR as u16).to_le_bytes());
    put(v, 54, &(PHDR as u16).to_le_bytes());
    put(v, 56, &2u16.to_le_bytes());
    put(v, 58, &64u16.to_le_bytes()); // e_shentsize

    let phdr = |v: &mut [u8], at: usize, ty: u32, flags: u32, off: usize, len: usize| {
        put(v, at, &ty.to_le_bytes());
        put(v, at + 4, &flags.to_le_bytes());
        for (i, x) in [off, off, off, len, len, 8].iter().enumerate() {
            put(v, at + 8 + 8 * i, &(*x as u64).to_le_bytes());
        }
    };
    phdr(v, EHDR, PT_LOAD, 5, 0, total);
    phdr(v, EHDR + PHDR, PT_DYNAMIC, 4, dyn_off, ndyn * DYN);

    let dynamic = [
        (DT_HASH, hash_off as u64),
        (DT_STRTAB, str_off as u64),
        (DT_SYMTAB, sym_off as u64),
        (DT_STRSZ, strings.len() as u64),
        (DT_SYMENT, SYM as u64),
        (DT_VERSYM, versym_off as u64),
        (DT_VERDEF, verdef_off as u64),
        (DT_VERDEFNUM, 2),
        (DT_NULL, 0),
    ];
    for (i, (tag, val)) in dynamic.iter().enumerate() {
        put(v, dyn_off + i * DYN, &tag.to_le_bytes());
        put(v, dyn_off + i * DYN + 8, &val.to_le_bytes());
    }

    // One bucket: every lookup walks the chain 1 → 2 → … → 0.
    let mut words = vec![1u32, nsyms as u32, if nsyms > 1 { 1 } else { 0 }];
    for i in 0..nsyms {
        let next = if i == 0 || i + 1 == nsyms { 0 } else { i + 1 };
        words.push(next as u32);
    }
    for (i, w) in words.iter().enumerate() {
        put(v, hash_off + 4 * i, &w.to_le_bytes());
    }

    for (i, e) in exports.iter().enumerate() {
        let at = sym_off + (i + 1) * SYM;
        put(v, at, &names[i].to_le_bytes());
        v[at + 4] = GLOBAL_FUNC;
        put(v, at + 6, &SHNDX_TEXT.to_le_bytes());
        put(v, at + 8, &e.addr.wrapping_sub(base).to_le_bytes());
    }
    // Symbol versions: 0 (local) for the null symbol, 2 for the others.
    for i in 1..nsyms {
        put(v, versym_off + 2 * i, &2u16.to_le_bytes());
    }
    // Two definitions, each with one name: the base (the file) and LINUX_2.6.
    for (i, (flags, name, at)) in [(1u16, SONAME, soname_at), (0, VERSION, version_at)]
        .into_iter()
        .enumerate()
    {
        let d = verdef_off + i * (VERDEF + VERDAUX);
        put(v, d, &1u16.to_le_bytes()); // vd_version
        put(v, d + 2, &flags.to_le_bytes());
        put(v, d + 4, &(i as u16 + 1).to_le_bytes()); // vd_ndx
        put(v, d + 6, &1u16.to_le_bytes()); // vd_cnt
        put(v, d + 8, &elf_hash(name).to_le_bytes());
        put(v, d + 12, &(VERDEF as u32).to_le_bytes()); // vd_aux
        let next = if i == 0 { VERDEF + VERDAUX } else { 0 };
        put(v, d + 16, &(next as u32).to_le_bytes());
        put(v, d + VERDEF, &at.to_le_bytes()); // vda_name
    }
    put(v, str_off, &strings);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(base: u64, exports: &[Export<'_>]) -> Vec<u8> {
        let mut v = vec![0u8; image_size(exports)];
        build_into(&mut v, base, exports);
        v
    }

    fn u64_at(v: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(v[at..at + 8].try_into().unwrap())
    }
    fn u32_at(v: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(v[at..at + 4].try_into().unwrap())
    }

    /// Looks a symbol up the way the C libraries and Go do: program headers
    /// → dynamic section → hash chain → name → load offset + value.
    fn lookup(v: &[u8], base: u64, name: &str) -> Option<u64> {
        let phoff = u64_at(v, 32) as usize;
        let phnum = u16::from_le_bytes([v[56], v[57]]) as usize;
        let (mut load, mut dynamic) = (None, None);
        for i in 0..phnum {
            let p = phoff + i * PHDR;
            match u32_at(v, p) {
                PT_LOAD => load = Some(base + u64_at(v, p + 8) - u64_at(v, p + 16)),
                PT_DYNAMIC => dynamic = Some(u64_at(v, p + 8) as usize),
                _ => {}
            }
        }
        let (load, mut d) = (load?, dynamic?);
        let (mut hash, mut strtab, mut symtab) = (0, 0, 0);
        loop {
            let (tag, val) = (u64_at(v, d), u64_at(v, d + 8) as usize);
            match tag {
                DT_NULL => break,
                DT_HASH => hash = val,
                DT_STRTAB => strtab = val,
                DT_SYMTAB => symtab = val,
                _ => {}
            }
            d += DYN;
        }
        let nchain = u32_at(v, hash + 4) as usize;
        let mut i = u32_at(v, hash + 8) as usize;
        while i != 0 {
            let s = symtab + i * SYM;
            let n = strtab + u32_at(v, s) as usize;
            let end = n + v[n..].iter().position(|&c| c == 0)?;
            if &v[n..end] == name.as_bytes() && v[s + 4] == GLOBAL_FUNC {
                return Some(load.wrapping_add(u64_at(v, s + 8)));
            }
            assert!(i < nchain);
            i = u32_at(v, hash + 12 + 4 * i) as usize;
        }
        None
    }

    /// Finds the index of version `name` the way Go does (it needs it).
    fn version_index(v: &[u8], name: &str) -> Option<u16> {
        let d = 64 + 2 * 56;
        let (mut verdef, mut strtab) = (0, 0);
        for i in 0.. {
            let (tag, val) = (u64_at(v, d + 16 * i), u64_at(v, d + 16 * i + 8) as usize);
            match tag {
                DT_NULL => break,
                DT_VERDEF => verdef = val,
                DT_STRTAB => strtab = val,
                _ => {}
            }
        }
        let mut def = verdef;
        loop {
            let flags = u16::from_le_bytes([v[def + 2], v[def + 3]]);
            let aux = def + u32_at(v, def + 12) as usize;
            let n = strtab + u32_at(v, aux) as usize;
            let end = n + v[n..].iter().position(|&c| c == 0)?;
            if flags & 1 == 0
                && u32_at(v, def + 8) == elf_hash(name)
                && &v[n..end] == name.as_bytes()
            {
                return Some(u16::from_le_bytes([v[def + 4], v[def + 5]]));
            }
            match u32_at(v, def + 16) {
                0 => return None,
                next => def += next as usize,
            }
        }
    }

    #[test]
    fn the_linux_version_is_defined() {
        let v = build(
            0x1000,
            &[Export {
                name: "__vdso_time",
                addr: 0x2000,
            }],
        );
        assert_eq!(version_index(&v, VERSION), Some(2));
        assert_eq!(elf_hash("LINUX_2.6"), 0x03ae_75f6);
    }

    #[test]
    fn symbols_resolve_to_their_functions_anywhere() {
        let base = 0x7f00_0000_0000;
        let ex = [
            Export {
                name: "__vdso_clock_gettime",
                addr: 0x7e00_0010_1234,
            },
            Export {
                name: "__vdso_gettimeofday",
                addr: 0x7e00_0010_5678,
            },
        ];
        let v = build(base, &ex);
        assert_eq!(&v[..4], b"\x7fELF");
        assert_eq!(
            lookup(&v, base, "__vdso_clock_gettime"),
            Some(0x7e00_0010_1234)
        );
        assert_eq!(
            lookup(&v, base, "__vdso_gettimeofday"),
            Some(0x7e00_0010_5678)
        );
        assert_eq!(lookup(&v, base, "__vdso_time"), None);
    }
}
