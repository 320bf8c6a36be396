//! The `syscall` sites volt found ahead of time (`BootInfo::sites`, laid out
//! as `optivolt_abi::sites` says): the program's at their final addresses,
//! and each shared library's at link-time addresses, which become real ones
//! when the library is mapped executable (by the dynamic loader's `mmap`, or
//! by the boot for the loader itself).
use alloc::vec::Vec;

use optivolt_abi::elf::{Elf, PF_X};
use optivolt_abi::sites::Table;

use super::Kernel;
use crate::fd::file::FileKind;
use crate::mm::page_down;

/// One library's table.
struct Library {
    path: &'static [u8],
    pairs: &'static [u8],
    /// Where its bytes are in the rootfs, once looked up (`Some(None)`:
    /// not in the file system).
    data: Option<Option<usize>>,
}

/// An executable mapping of a library: `[start, end)` holds its code at
/// link-time address + `bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mapped {
    start: u64,
    end: u64,
    bias: u64,
    lib: usize,
}

/// The tables, and where the libraries are.
#[derive(Default)]
pub struct Sites {
    program: &'static [u8],
    libs: Vec<Library>,
    maps: Vec<Mapped>,
}

fn strip(p: &[u8]) -> &[u8] {
    crate::fs::cpio::normalize(p)
}

impl Sites {
    /// Reads volt's table (a malformed one reads as empty).
    pub fn new(blob: &'static [u8]) -> Sites {
        let t = Table::parse(blob);
        Sites {
            program: t.program,
            libs: t
                .libraries()
                .map(|(path, pairs)| Library {
                    path,
                    pairs,
                    data: None,
                })
                .collect(),
            maps: Vec::new(),
        }
    }

    /// The program's `(syscall, window start)` pairs.
    pub fn program(&self) -> &'static [u8] {
        self.program
    }

    /// The table and bias of the library mapped executable at `at`.
    pub fn library_at(&self, at: u64) -> Option<(&'static [u8], u64)> {
        let m = self.maps.iter().find(|m| (m.start..m.end).contains(&at))?;
        Some((self.libs.get(m.lib)?.pairs, m.bias))
    }

    /// Records that the library at guest path `path` was loaded with `bias`
    /// over `[start, end)` (the dynamic loader, placed at boot).
    pub fn note_loaded(&mut self, path: &[u8], start: u64, end: u64, bias: u64) {
        if let Some(lib) = self.libs.iter().position(|l| strip(l.path) == strip(path)) {
            self.forget(start, end);
            self.maps.push(Mapped {
                start,
                end,
                bias,
                lib,
            });
        }
    }

    /// `[start, end)` no longer holds what it held (munmap, a mapping over
    /// it, mremap): its sites are no longer known.
    pub fn forget(&mut self, start: u64, end: u64) {
        self.maps.retain(|m| m.end <= start || m.start >= end);
    }
}

impl Kernel {
    /// `mmap` made `[start, start + len)` executable from `fd` at file
    /// offset `off`: if the file is a library volt listed, its sites there
    /// become known. The bias is that of the executable segment the offset
    /// is the start of.
    pub fn note_exec_mapping(&mut self, fd: u64, start: u64, len: u64, off: u64) {
        self.sites.forget(start, start.saturating_add(len));
        if self.sites.libs.is_empty() {
            return;
        }
        let Ok(file) = self.fds.file(fd) else {
            return;
        };
        let FileKind::Inode(ino) = file.lock().kind else {
            return;
        };
        let Ok(data) = self.fs.contents(ino) else {
            return;
        };
        let ptr = data.as_ptr() as usize;
        let fs = &self.fs;
        let found = self.sites.libs.iter_mut().position(|l| {
            let at = *l.data.get_or_insert_with(|| {
                let ino = fs.lookup(crate::fs::vfs::ROOT, l.path, true).ok()?;
                fs.contents(ino).ok().map(|d| d.as_ptr() as usize)
            });
            at == Some(ptr)
        });
        let Some(lib) = found else {
            return;
        };
        let Ok(data) = self.fs.contents(ino) else {
            return;
        };
        let Ok(elf) = Elf::parse(data) else {
            return;
        };
        let Some(seg) = elf
            .load_segments()
            .find(|p| p.p_flags & PF_X != 0 && page_down(p.p_offset) == off)
        else {
            return;
        };
        let bias = start.wrapping_sub(page_down(seg.p_vaddr));
        self.sites.maps.push(Mapped {
            start,
            end: start.saturating_add(len),
            bias,
            lib,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static [u8] {
        let mut v = alloc::vec::Vec::new();
        v.extend_from_slice(&16u64.to_le_bytes());
        v.extend_from_slice(&0x1005u64.to_le_bytes());
        v.extend_from_slice(&0x1000u64.to_le_bytes());
        let path = b"/lib/libc.so.6";
        v.extend_from_slice(&(path.len() as u64).to_le_bytes());
        v.extend_from_slice(path);
        v.resize(v.len().next_multiple_of(8), 0);
        v.extend_from_slice(&16u64.to_le_bytes());
        v.extend_from_slice(&0x2a07u64.to_le_bytes());
        v.extend_from_slice(&0x2a00u64.to_le_bytes());
        alloc::boxed::Box::leak(v.into_boxed_slice())
    }

    #[test]
    fn a_library_s_sites_are_known_where_it_is_mapped_until_it_goes() {
        let mut s = Sites::new(table());
        assert_eq!(s.program().len(), 16);
        assert!(s.library_at(0x7000_2a07).is_none(), "not mapped yet");
        s.note_loaded(b"lib/libc.so.6", 0x7000_0000, 0x7010_0000, 0x7000_0000);
        let (pairs, bias) = s.library_at(0x7000_2a07).expect("mapped");
        assert_eq!((pairs.len(), bias), (16, 0x7000_0000));
        s.note_loaded(b"/lib/other.so", 0x8000_0000, 0x8010_0000, 0);
        assert!(s.library_at(0x8000_0000).is_none(), "not a listed library");
        s.forget(0x7000_1000, 0x7000_2000);
        assert!(
            s.library_at(0x7000_2a07).is_none(),
            "an unmap over part of it"
        );
    }
}
