//! A small, bounds-checked ELF64 reader (x86-64, little-endian), shared by the
//! monitor (loading the library OS, checking the user's binary before any VM
//! starts) and the library OS (loading the application).
//!
//! ```
//! use optivolt_abi::elf::{Elf, ElfError};
//! assert_eq!(Elf::parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
//! ```

/// `e_type` of a fixed-address executable.
pub const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent executable or shared object.
pub const ET_DYN: u16 = 3;
/// `e_machine` for x86-64.
pub const EM_X86_64: u16 = 62;
/// Loadable segment.
pub const PT_LOAD: u32 = 1;
/// Dynamic linking information.
pub const PT_DYNAMIC: u32 = 2;
/// Program interpreter (dynamic loader) path.
pub const PT_INTERP: u32 = 3;
/// The program header table itself.
pub const PT_PHDR: u32 = 6;
/// Thread-local storage template.
pub const PT_TLS: u32 = 7;
/// Stack flags.
pub const PT_GNU_STACK: u32 = 0x6474_e551;
/// Segment is executable.
pub const PF_X: u32 = 1;
/// Segment is writable.
pub const PF_W: u32 = 2;
/// Segment is readable.
pub const PF_R: u32 = 4;
/// Size of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;

/// Why a file is not a loadable x86-64 ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic.
    NotElf,
    /// ELFCLASS32.
    Elf32,
    /// Big-endian or unknown data encoding.
    NotLittleEndian,
    /// Not x86-64; the machine number is given.
    WrongMachine(u16),
    /// Neither ET_EXEC nor ET_DYN.
    NotExecutable(u16),
    /// A header, table or segment lies outside the file or overflows.
    Truncated,
    /// A segment's sizes or alignment make no sense.
    BadSegment,
    /// The executable needs a dynamic loader (PT_INTERP).
    Dynamic,
    /// No PT_LOAD segment.
    NoLoadSegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::Elf32 => write!(f, "32-bit ELF files are not supported (need x86-64)"),
            ElfError::NotLittleEndian => write!(f, "not a little-endian ELF file"),
            ElfError::WrongMachine(m) => write!(f, "ELF file is for machine {m}, not x86-64"),
            ElfError::NotExecutable(t) => write!(f, "ELF file is not an executable (e_type {t})"),
            ElfError::Truncated => write!(f, "ELF file is truncated or its headers point outside it"),
            ElfError::BadSegment => write!(f, "ELF file has a malformed loadable segment"),
            ElfError::Dynamic => write!(
                f,
                "dynamically linked executables are not supported yet (it has a PT_INTERP); link it statically"
            ),
            ElfError::NoLoadSegments => write!(f, "ELF file has no loadable segment"),
        }
    }
}

/// One program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

/// A parsed, validated ELF64 file borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    /// `e_type`.
    pub e_type: u16,
    /// Entry point (unrelocated).
    pub entry: u64,
    /// File offset of the program header table.
    pub phoff: u64,
    /// Number of program headers.
    pub phnum: u16,
    /// Size of one program header.
    pub phentsize: u16,
}

fn rd16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn rd32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn rd64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl<'a> Elf<'a> {
    /// Parses and validates the ELF header and every program header.
    /// A PT_INTERP is not an error here; see [`Elf::interpreter`].
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.len() < 4 || &data[0..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let class = *data.get(4).ok_or(ElfError::Truncated)?;
        if class == 1 {
            return Err(ElfError::Elf32);
        }
        if class != 2 {
            return Err(ElfError::NotElf);
        }
        if data.get(5) != Some(&1) {
            return Err(ElfError::NotLittleEndian);
        }
        if data.len() < 64 {
            return Err(ElfError::Truncated);
        }
        let t = ElfError::Truncated;
        let e_type = rd16(data, 16).ok_or(t)?;
        let machine = rd16(data, 18).ok_or(t)?;
        if machine != EM_X86_64 {
            return Err(ElfError::WrongMachine(machine));
        }
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::NotExecutable(e_type));
        }
        let elf = Elf {
            data,
            e_type,
            entry: rd64(data, 24).ok_or(t)?,
            phoff: rd64(data, 32).ok_or(t)?,
            phnum: rd16(data, 56).ok_or(t)?,
            phentsize: rd16(data, 54).ok_or(t)?,
        };
        if elf.phnum == 0 {
            return Err(ElfError::NoLoadSegments);
        }
        if (elf.phentsize as usize) < PHDR_SIZE {
            return Err(ElfError::Truncated);
        }
        let table_len = (elf.phentsize as u64)
            .checked_mul(elf.phnum as u64)
            .ok_or(t)?;
        let table_end = elf.phoff.checked_add(table_len).ok_or(t)?;
        if table_end > data.len() as u64 {
            return Err(t);
        }
        let mut loads = 0;
        for ph in elf.program_headers() {
            if ph.p_type == PT_LOAD {
                loads += 1;
                let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(t)?;
                if file_end > data.len() as u64 {
                    return Err(t);
                }
                if ph.p_filesz > ph.p_memsz || ph.p_vaddr.checked_add(ph.p_memsz).is_none() {
                    return Err(ElfError::BadSegment);
                }
                if ph.p_align > 1 && (ph.p_vaddr % 4096) != (ph.p_offset % 4096) {
                    return Err(ElfError::BadSegment);
                }
            }
        }
        if loads == 0 {
            return Err(ElfError::NoLoadSegments);
        }
        Ok(elf)
    }

    /// Parses, then refuses binaries that need a dynamic loader.
    pub fn parse_static(data: &'a [u8]) -> Result<Self, ElfError> {
        let elf = Self::parse(data)?;
        if elf.interpreter().is_some() {
            return Err(ElfError::Dynamic);
        }
        Ok(elf)
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The `i`-th program header (checked at parse time).
    pub fn program_header(&self, i: u16) -> Option<ProgramHeader> {
        if i >= self.phnum {
            return None;
        }
        let o = (self.phoff + i as u64 * self.phentsize as u64) as usize;
        let d = self.data;
        Some(ProgramHeader {
            p_type: rd32(d, o)?,
            p_flags: rd32(d, o + 4)?,
            p_offset: rd64(d, o + 8)?,
            p_vaddr: rd64(d, o + 16)?,
            p_filesz: rd64(d, o + 32)?,
            p_memsz: rd64(d, o + 40)?,
            p_align: rd64(d, o + 48)?,
        })
    }

    /// All program headers.
    pub fn program_headers(&self) -> impl Iterator<Item = ProgramHeader> + 'a {
        let me = *self;
        (0..self.phnum).filter_map(move |i| me.program_header(i))
    }

    /// The loadable segments.
    pub fn load_segments(&self) -> impl Iterator<Item = ProgramHeader> + 'a {
        self.program_headers().filter(|p| p.p_type == PT_LOAD)
    }

    /// The file bytes of a segment (`p_filesz` long; checked at parse time).
    pub fn segment_data(&self, ph: &ProgramHeader) -> &'a [u8] {
        let s = ph.p_offset as usize;
        &self.data[s..s + ph.p_filesz as usize]
    }

    /// The PT_INTERP path, if any.
    pub fn interpreter(&self) -> Option<&'a [u8]> {
        let ph = self.program_headers().find(|p| p.p_type == PT_INTERP)?;
        let s = ph.p_offset as usize;
        let e = s.checked_add(ph.p_filesz as usize)?;
        let raw = self.data.get(s..e)?;
        Some(raw.split(|&c| c == 0).next().unwrap_or(raw))
    }

    /// Lowest and highest (exclusive) virtual address of the loadable segments.
    pub fn load_bounds(&self) -> (u64, u64) {
        let mut lo = u64::MAX;
        let mut hi = 0;
        for p in self.load_segments() {
            lo = lo.min(p.p_vaddr);
            hi = hi.max(p.p_vaddr + p.p_memsz);
        }
        (lo, hi)
    }

    /// Virtual address of the program header table once loaded, if it is inside a segment.
    pub fn phdr_vaddr(&self) -> Option<u64> {
        if let Some(p) = self.program_headers().find(|p| p.p_type == PT_PHDR) {
            return Some(p.p_vaddr);
        }
        self.load_segments()
            .find(|p| p.p_offset <= self.phoff && self.phoff < p.p_offset + p.p_filesz)
            .map(|p| p.p_vaddr + (self.phoff - p.p_offset))
    }
}

/// Readable (PROT_READ).
pub const PROT_READ: u32 = 1;
/// Writable (PROT_WRITE).
pub const PROT_WRITE: u32 = 2;
/// Executable (PROT_EXEC).
pub const PROT_EXEC: u32 = 4;

/// PROT_* bits for a segment's p_flags.
pub fn segment_prot(ph: &ProgramHeader) -> u32 {
    let mut p = PROT_READ;
    if ph.p_flags & PF_W != 0 {
        p |= PROT_WRITE;
    }
    if ph.p_flags & PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

/// Where a static executable goes in the application's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Added to every p_vaddr (0 for ET_EXEC).
    pub bias: u64,
    /// Relocated entry point.
    pub entry: u64,
    /// Relocated address of the program headers (AT_PHDR), 0 if not loaded.
    pub phdr: u64,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u64,
    /// First page of the image (relocated, page aligned).
    pub start: u64,
    /// Page-aligned end of the highest segment: the initial program break.
    pub end: u64,
}

/// Plans the load: ET_EXEC at its addresses, ET_DYN (static-PIE) at
/// `pie_base`. Every segment must lie in `[0x1000, user_top)`, and so must
/// the program header table when it is loaded (AT_PHDR): a PT_PHDR pointing
/// outside the image is refused, not relocated (it could overflow).
pub fn plan(elf: &Elf<'_>, pie_base: u64, user_top: u64) -> Result<LoadPlan, ElfError> {
    let (lo, hi) = elf.load_bounds();
    let lo_page = lo & !0xfff;
    let bias = if elf.e_type == ET_DYN {
        pie_base.checked_sub(lo_page).ok_or(ElfError::BadSegment)?
    } else {
        0
    };
    let start = lo_page.checked_add(bias).ok_or(ElfError::BadSegment)?;
    let end = hi
        .checked_add(bias)
        .and_then(|h| h.checked_add(0xfff))
        .ok_or(ElfError::BadSegment)?
        & !0xfff;
    if end > user_top || start < 0x1000 {
        return Err(ElfError::BadSegment);
    }
    let phdr = match elf.phdr_vaddr() {
        None => 0,
        Some(v) => {
            // PT_PHDR's p_vaddr is not checked at parse time (it is not a
            // PT_LOAD); the table must be part of the loaded image.
            let table = elf.phentsize as u64 * elf.phnum as u64;
            let at = v.checked_add(bias).ok_or(ElfError::BadSegment)?;
            match at.checked_add(table) {
                Some(table_end) if at >= start && table_end <= end => at,
                _ => return Err(ElfError::BadSegment),
            }
        }
    };
    Ok(LoadPlan {
        bias,
        entry: elf.entry.checked_add(bias).ok_or(ElfError::BadSegment)?,
        phdr,
        phnum: elf.phnum as u64,
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_exec_and_pie() {
        let b = minimal(ET_EXEC, false);
        let e = Elf::parse(&b).unwrap();
        let p = plan(&e, 0x5555_0000_0000, 0x7000_0000_0000).unwrap();
        assert_eq!(
            (p.bias, p.entry, p.start, p.end),
            (0, 0x401000, 0x400000, 0x402000)
        );
        let b = minimal(ET_DYN, false);
        let e = Elf::parse(&b).unwrap();
        let p = plan(&e, 0x5555_0000_0000, 0x7000_0000_0000).unwrap();
        assert_eq!(p.bias, 0x5555_0000_0000 - 0x400000);
        assert_eq!(p.start, 0x5555_0000_0000);
        assert!(plan(&e, 0x5555_0000_0000, 0x1000).is_err());
        // A PT_INTERP does not change where the program goes.
        let b = minimal(ET_DYN, true);
        assert_eq!(
            plan(&Elf::parse(&b).unwrap(), 0x5555_0000_0000, 0x7000_0000_0000),
            Ok(p)
        );
    }

    fn minimal(e_type: u16, with_interp: bool) -> [u8; 64 + 2 * PHDR_SIZE + 32] {
        let mut b = [0u8; 64 + 2 * PHDR_SIZE + 32];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[24..32].copy_from_slice(&0x401000u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        b[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&0x400000u64.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&((64 + 2 * PHDR_SIZE) as u64).to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&0x2000u64.to_le_bytes());
        b[ph + 48..ph + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        let ph2 = 64 + PHDR_SIZE;
        let t = if with_interp { PT_INTERP } else { PT_GNU_STACK };
        b[ph2..ph2 + 4].copy_from_slice(&t.to_le_bytes());
        b[ph2 + 8..ph2 + 16].copy_from_slice(&((64 + 2 * PHDR_SIZE) as u64).to_le_bytes());
        b[ph2 + 32..ph2 + 40].copy_from_slice(&5u64.to_le_bytes());
        let s = 64 + 2 * PHDR_SIZE;
        b[s..s + 5].copy_from_slice(b"/ld\0\0");
        b
    }

    #[test]
    fn parses_a_static_executable() {
        let b = minimal(ET_EXEC, false);
        let e = Elf::parse_static(&b).unwrap();
        assert_eq!(e.entry, 0x401000);
        assert_eq!(e.load_segments().count(), 1);
        assert_eq!(e.load_bounds(), (0x400000, 0x402000));
        assert_eq!(e.phdr_vaddr(), Some(0x400040));
    }

    #[test]
    fn refuses_what_it_cannot_load() {
        assert_eq!(Elf::parse(b"hello").unwrap_err(), ElfError::NotElf);
        let mut b = minimal(ET_EXEC, false);
        b[4] = 1;
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::Elf32);
        let mut b = minimal(ET_EXEC, false);
        b[18] = 3;
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::WrongMachine(3));
        let b = minimal(1, false);
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotExecutable(1));
        let b = minimal(ET_DYN, true);
        assert_eq!(Elf::parse_static(&b).unwrap_err(), ElfError::Dynamic);
        assert_eq!(Elf::parse(&b).unwrap().interpreter(), Some(&b"/ld"[..]));
        let b = minimal(ET_EXEC, false);
        assert_eq!(Elf::parse(&b[..100]).unwrap_err(), ElfError::Truncated);
    }

    #[test]
    fn refuses_a_pt_phdr_outside_the_image_instead_of_overflowing() {
        // Found by tests/elf_props.rs: a PT_PHDR near the top of the address
        // space made `p_vaddr + bias` overflow (a panic in debug builds, a
        // wrapped AT_PHDR in release ones).
        for (e_type, vaddr) in [
            (ET_DYN, u64::MAX),
            (ET_DYN, 0x1000_0000),
            (ET_EXEC, 0x10_0000),
        ] {
            let mut b = minimal(e_type, false);
            let ph2 = 64 + PHDR_SIZE;
            b[ph2..ph2 + 4].copy_from_slice(&PT_PHDR.to_le_bytes());
            b[ph2 + 16..ph2 + 24].copy_from_slice(&vaddr.to_le_bytes());
            let e = Elf::parse(&b).unwrap();
            assert_eq!(
                plan(&e, 0x5555_0000_0000, 0x7000_0000_0000),
                Err(ElfError::BadSegment)
            );
        }
        // Inside the image it is AT_PHDR, relocated.
        let mut b = minimal(ET_DYN, false);
        let ph2 = 64 + PHDR_SIZE;
        b[ph2..ph2 + 4].copy_from_slice(&PT_PHDR.to_le_bytes());
        b[ph2 + 16..ph2 + 24].copy_from_slice(&0x400040u64.to_le_bytes());
        let p = plan(&Elf::parse(&b).unwrap(), 0x5555_0000_0000, 0x7000_0000_0000).unwrap();
        assert_eq!(p.phdr, 0x5555_0000_0040);
    }

    #[test]
    fn rejects_segments_outside_the_file() {
        let mut b = minimal(ET_EXEC, false);
        b[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::Truncated);
        let mut b = minimal(ET_EXEC, false);
        b[64 + 32..64 + 40].copy_from_slice(&0x3000u64.to_le_bytes());
        assert!(Elf::parse(&b).is_err());
    }
}
