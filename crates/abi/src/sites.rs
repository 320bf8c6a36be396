//! The table of patchable `syscall` sites volt hands the guest
//! (`BootInfo::sites`): the program's sites, then, for each shared library
//! volt put in the image, that library's sites at its link-time addresses
//! (the guest adds the load bias when the library is mapped executable).
//!
//! Layout, all little-endian u64s: the program's byte count, then its
//! sorted `(syscall address, window start)` pairs; then per library: the
//! path's byte count, the path padded with zeros to 8 bytes, the pairs'
//! byte count, the sorted pairs.

/// A parsed table: the program's pairs and an iterator over the libraries.
pub struct Table<'a> {
    pub program: &'a [u8],
    rest: &'a [u8],
}

fn word(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl<'a> Table<'a> {
    /// Reads `data`; a malformed table reads as empty (patching then
    /// falls back to the shape rule).
    pub fn parse(data: &'a [u8]) -> Table<'a> {
        let empty = Table {
            program: &[],
            rest: &[],
        };
        let Some(n) = word(data, 0).and_then(|n| usize::try_from(n).ok()) else {
            return empty;
        };
        match data.get(8..8usize.saturating_add(n)) {
            Some(p) if n % 16 == 0 => Table {
                program: p,
                rest: &data[8 + n..],
            },
            _ => empty,
        }
    }

    /// The libraries' (path, pairs), in order; stops at anything malformed.
    pub fn libraries(&self) -> Libraries<'a> {
        Libraries { rest: self.rest }
    }
}

pub struct Libraries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Libraries<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rest;
        let plen = usize::try_from(word(r, 0)?).ok()?;
        let path = r.get(8..8usize.checked_add(plen)?)?;
        let at = 8usize.checked_add(plen)?.next_multiple_of(8);
        let n = usize::try_from(word(r, at)?).ok()?;
        let pairs = r.get(at + 8..(at + 8).checked_add(n)?)?;
        if n % 16 != 0 {
            return None;
        }
        self.rest = &r[at + 8 + n..];
        Some((path, pairs))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn with_program(pairs: &[u8]) -> Vec<u8> {
        let mut v = (pairs.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(pairs);
        v
    }

    fn push_library(out: &mut Vec<u8>, path: &[u8], pairs: &[u8]) {
        out.extend_from_slice(&(path.len() as u64).to_le_bytes());
        out.extend_from_slice(path);
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
        out.extend_from_slice(pairs);
    }

    #[test]
    fn tables_round_trip_and_malformed_ones_read_as_empty() {
        let prog = [1u8; 32];
        let mut t = with_program(&prog);
        push_library(&mut t, b"/lib/x86_64-linux-gnu/libc.so.6", &[2u8; 16]);
        push_library(&mut t, b"/l", &[]);
        let p = Table::parse(&t);
        assert_eq!(p.program, &prog);
        let libs: Vec<_> = p.libraries().collect();
        assert_eq!(libs.len(), 2);
        assert_eq!(libs[0].0, b"/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(libs[0].1, &[2u8; 16]);
        assert_eq!(libs[1], (&b"/l"[..], &[][..]));
        assert!(Table::parse(&t[..5]).program.is_empty());
        assert_eq!(Table::parse(&t[..t.len() - 3]).libraries().count(), 1);
        assert!(Table::parse(&[]).program.is_empty());
    }
}
