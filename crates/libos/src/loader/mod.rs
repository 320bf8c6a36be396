//! Loading the application: ELF segments and the initial process stack.
pub mod stack;

use optivolt_abi::elf::{Elf, ElfError, ProgramHeader, ET_DYN, PF_W, PF_X};

use crate::mm::vma::{PROT_EXEC, PROT_READ, PROT_WRITE};

/// Where and how to place each segment, computed before touching memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Added to every p_vaddr (0 for ET_EXEC).
    pub bias: u64,
    /// Relocated entry point.
    pub entry: u64,
    /// Relocated address of the program headers (AT_PHDR).
    pub phdr: u64,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u64,
    /// Page-aligned end of the highest segment: the initial program break.
    pub brk: u64,
}

/// Protection bits for a segment.
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

/// Plans the load of a static executable: ET_EXEC at its addresses, ET_DYN
/// (static-PIE) at `pie_base`. Every segment must lie below `user_top`.
pub fn plan(elf: &Elf<'_>, pie_base: u64, user_top: u64) -> Result<LoadPlan, ElfError> {
    if elf.interpreter().is_some() {
        return Err(ElfError::Dynamic);
    }
    let (lo, hi) = elf.load_bounds();
    let bias = if elf.e_type == ET_DYN {
        pie_base
            .checked_sub(lo & !0xfff)
            .ok_or(ElfError::BadSegment)?
    } else {
        0
    };
    let hi = hi.checked_add(bias).ok_or(ElfError::BadSegment)?;
    if hi > user_top || (lo.wrapping_add(bias)) < 0x1000 {
        return Err(ElfError::BadSegment);
    }
    let phdr = elf.phdr_vaddr().map(|p| p + bias).unwrap_or(0);
    Ok(LoadPlan {
        bias,
        entry: elf.entry.checked_add(bias).ok_or(ElfError::BadSegment)?,
        phdr,
        phnum: elf.phnum as u64,
        brk: crate::mm::page_up(hi).ok_or(ElfError::BadSegment)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prot_from_flags() {
        let ph = ProgramHeader {
            p_flags: 5,
            ..Default::default()
        };
        assert_eq!(segment_prot(&ph), PROT_READ | PROT_EXEC);
        let ph = ProgramHeader {
            p_flags: 6,
            ..Default::default()
        };
        assert_eq!(segment_prot(&ph), PROT_READ | PROT_WRITE);
    }
}
