//! The rootfs archive the monitor maps into guests: cpio `newc` whose first
//! member, `.optivolt-toc`, is a table of contents (the library OS finds
//! every member without walking the headers), and whose ELF files of 16 KiB
//! or more start on a page, so that the library OS maps their pages from
//! the archive (shared by every instance) instead of copying them.
//!
//! Members come from host files (a gathered binary) or from memory (an
//! image's layers).
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::rootfs::{CpioWriter, S_IFDIR, S_IFLNK, S_IFREG};

/// Where a file member's bytes come from.
pub enum Source {
    /// A host file, read while the archive is written.
    Host(PathBuf),
    /// Bytes already in memory.
    Bytes(Vec<u8>),
}

/// One member, in archive order. Paths are absolute guest paths.
pub enum Member {
    Dir {
        path: String,
        perm: u32,
    },
    Link {
        path: String,
        target: String,
    },
    File {
        path: String,
        perm: u32,
        mtime: u32,
        data: Source,
    },
}

impl Member {
    fn path(&self) -> &str {
        match self {
            Member::Dir { path, .. } | Member::Link { path, .. } | Member::File { path, .. } => {
                path
            }
        }
    }
}

const MAGIC: &[u8] = b"OVTOC001";

/// A member's table-of-contents record (see the library OS's `fs::cpio`).
fn toc_record(out: &mut Vec<u8>, name: &str, mode: u32, mtime: u32, off: usize, len: usize) {
    let name = name.trim_start_matches('/');
    out.extend_from_slice(&mode.to_le_bytes());
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(off as u64).to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.resize(out.len().next_multiple_of(8), 0);
}

/// Whether a file's data should start on a page.
pub fn page_aligned(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF") && bytes.len() >= 16 << 10
}

/// Writes the archive of `members`.
pub fn write(members: &[Member]) -> Result<Vec<u8>> {
    // The table of contents comes first; its size depends only on the
    // names, so it is reserved now and filled in at the end.
    let toc_len = MAGIC.len()
        + 8
        + members
            .iter()
            .map(|m| 32 + m.path().trim_start_matches('/').len().next_multiple_of(8))
            .sum::<usize>();
    let mut w = CpioWriter::new();
    w.file(".optivolt-toc", 0o444, 0, &vec![0u8; toc_len]);
    let toc_at = w.last_data_offset();
    let mut toc = MAGIC.to_vec();
    toc.extend_from_slice(&(members.len() as u64).to_le_bytes());
    for m in members {
        match m {
            Member::Dir { path, perm } => {
                w.dir(path, *perm);
                toc_record(&mut toc, path, S_IFDIR | perm, 0, w.last_data_offset(), 0);
            }
            Member::Link { path, target } => {
                w.symlink(path, target);
                let at = w.last_data_offset();
                toc_record(&mut toc, path, S_IFLNK | 0o777, 0, at, target.len());
            }
            Member::File {
                path,
                perm,
                mtime,
                data,
            } => {
                let read;
                let bytes: &[u8] = match data {
                    Source::Host(host) => {
                        read = std::fs::read(host)
                            .with_context(|| format!("cannot read {}", host.display()))?;
                        &read
                    }
                    Source::Bytes(b) => b,
                };
                if page_aligned(bytes) {
                    w.file_page_aligned(path, *perm, *mtime, bytes);
                } else {
                    w.file(path, *perm, *mtime, bytes);
                }
                let (at, mode) = (w.last_data_offset(), S_IFREG | (*perm & 0o7777));
                toc_record(&mut toc, path, mode, *mtime, at, bytes.len());
            }
        }
    }
    debug_assert_eq!(toc.len(), toc_len);
    w.patch(toc_at, &toc);
    Ok(w.finish())
}

/// One member as the table of contents lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TocEntry {
    pub mode: u32,
    /// Where its data starts in the archive, and its length.
    pub offset: usize,
    pub len: usize,
}

/// The table of contents of an archive [`write`] made, by relative path.
pub fn read_toc(a: &[u8]) -> Option<std::collections::HashMap<String, TocEntry>> {
    let hexfield = |i: usize| -> Option<usize> {
        let s = a.get(6 + i * 8..14 + i * 8)?;
        usize::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
    };
    if a.get(..6) != Some(b"070701") {
        return None;
    }
    let namesize = hexfield(11)?;
    if a.get(110..110 + namesize)? != b".optivolt-toc\0" {
        return None;
    }
    let size = hexfield(6)?;
    let at = (110 + namesize).next_multiple_of(4);
    let toc = a.get(at..at.checked_add(size)?)?;
    if toc.get(..8)? != MAGIC {
        return None;
    }
    let word =
        |o: usize| -> Option<u64> { Some(u64::from_le_bytes(toc.get(o..o + 8)?.try_into().ok()?)) };
    let half =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(toc.get(o..o + 4)?.try_into().ok()?)) };
    let n = word(8)? as usize;
    let mut out = std::collections::HashMap::with_capacity(n.min(1 << 20));
    let mut o = 16;
    for _ in 0..n {
        let mode = half(o)?;
        let nlen = half(o + 8)? as usize;
        let offset = word(o + 16)? as usize;
        let len = word(o + 24)? as usize;
        let name = toc.get(o + 32..o + 32 + nlen)?;
        offset.checked_add(len).filter(|&e| e <= a.len())?;
        out.insert(
            String::from_utf8_lossy(name).into_owned(),
            TocEntry { mode, offset, len },
        );
        o += 32 + nlen.next_multiple_of(8);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_contents_lists_every_member_as_its_headers_do() {
        use optivolt_libos::fs::cpio::Archive;
        let elf: Vec<u8> = b"\x7fELF"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(7, 20_000))
            .collect();
        let d = std::env::temp_dir().join(format!("volt-toc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let small = d.join("a.txt");
        std::fs::write(&small, b"hello").unwrap();
        let members = vec![
            Member::Dir {
                path: "/d".into(),
                perm: 0o755,
            },
            Member::Link {
                path: "/d/link".into(),
                target: "a.txt".into(),
            },
            Member::File {
                path: "/d/lib.so".into(),
                perm: 0o755,
                mtime: 7,
                data: Source::Bytes(elf.clone()),
            },
            Member::File {
                path: "/d/a.txt".into(),
                perm: 0o644,
                mtime: 9,
                data: Source::Host(small),
            },
        ];
        let bytes = write(&members).unwrap();
        let a = Archive::new(&bytes);
        let got: Vec<_> = a
            .entries()
            .map(|e| (e.name.to_vec(), e.mode, e.data.to_vec()))
            .collect();
        assert_eq!(got.len(), 4, "the table itself is not a member");
        assert_eq!(got[0], (b"d".to_vec(), 0o040755, vec![]));
        assert_eq!(got[1], (b"d/link".to_vec(), 0o120777, b"a.txt".to_vec()));
        assert_eq!(got[2], (b"d/lib.so".to_vec(), 0o100755, elf.clone()));
        assert_eq!(got[3], (b"d/a.txt".to_vec(), 0o100644, b"hello".to_vec()));
        // The shared object's data still starts on a page.
        let e = a.find(b"d/lib.so").unwrap();
        assert_eq!(
            (e.data.as_ptr() as usize - bytes.as_ptr() as usize) % 4096,
            0
        );
        let toc = read_toc(&bytes).unwrap();
        assert_eq!(toc.len(), 4);
        let t = toc["d/lib.so"];
        assert_eq!((t.mode, t.len, t.offset % 4096), (0o100755, elf.len(), 0));
        assert_eq!(&bytes[t.offset..t.offset + t.len], &elf[..]);
        assert_eq!(
            &bytes[toc["d/link"].offset..][..5],
            b"a.txt",
            "a link's data is its target"
        );
        assert!(read_toc(b"070701 not an archive").is_none());
        let _ = std::fs::remove_dir_all(&d);
    }
}
