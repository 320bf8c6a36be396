//! Reader for cpio `newc` archives (the rootfs format, see `docs/architecture.md`).
//!
//! ```
//! use optivolt_libos::fs::cpio::Archive;
//! // An archive holding only the trailer.
//! let mut a = Vec::new();
//! a.extend_from_slice(b"070701");
//! for f in [0u32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0] { a.extend_from_slice(format!("{f:08x}").as_bytes()); }
//! a.extend_from_slice(b"TRAILER!!!\0");
//! assert_eq!(Archive::new(&a).entries().count(), 0);
//! ```

/// File type bits of `mode`.
pub const S_IFMT: u32 = 0o170000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;

/// One archive member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Path without a leading `/` or `./`.
    pub name: &'a [u8],
    /// Mode bits including the file type.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds since the epoch).
    pub mtime: u32,
    /// Inode number from the archive.
    pub ino: u32,
    /// Contents (link target for symlinks).
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
}

/// A borrowed archive.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    data: &'a [u8],
}

fn hex8(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b.get(..8)? {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

fn align4(x: usize) -> Option<usize> {
    x.checked_add(3).map(|v| v & !3)
}

/// Strips `/` and `./` prefixes so that lookups are by relative path.
pub fn normalize(mut p: &[u8]) -> &[u8] {
    loop {
        if let Some(r) = p.strip_prefix(b"./") {
            p = r;
        } else if let Some(r) = p.strip_prefix(b"/") {
            p = r;
        } else {
            return p;
        }
    }
}

impl<'a> Archive<'a> {
    /// Wraps archive bytes. Parsing is lazy; malformed data ends iteration.
    pub fn new(data: &'a [u8]) -> Self {
        Archive { data }
    }

    /// Iterates over the members, stopping at the trailer or at the first malformed header.
    pub fn entries(&self) -> Entries<'a> {
        let raw = Entries {
            data: self.data,
            pos: 0,
            toc: None,
        };
        // An archive volt wrote starts with a table of contents: walking it
        // touches its pages only, not one page per member header.
        let mut probe = raw.clone();
        if let Some(first) = probe.next_raw() {
            if first.name == TOC_NAME && first.data.starts_with(TOC_MAGIC) {
                return Entries {
                    data: self.data,
                    pos: 0,
                    toc: Some(Toc {
                        table: first.data,
                        at: TOC_MAGIC.len() + 8,
                        left: word(first.data, TOC_MAGIC.len()).unwrap_or(0),
                    }),
                };
            }
        }
        raw
    }

    /// Finds a member by path (leading `/` ignored); follows no links.
    pub fn find(&self, path: &[u8]) -> Option<Entry<'a>> {
        let want = normalize(path);
        self.entries().find(|e| normalize(e.name) == want)
    }

    /// Finds a member by absolute path, following symbolic links in every
    /// component as the kernel does (40 at most); `None` if a component is
    /// missing or the links loop.
    pub fn resolve(&self, path: &[u8]) -> Option<Entry<'a>> {
        use alloc::vec::Vec;
        // The components still to walk, last first; links push theirs.
        let mut pending: Vec<Vec<u8>> = path
            .split(|&b| b == b'/')
            .rev()
            .map(|c| c.to_vec())
            .collect();
        let mut cur: Vec<u8> = Vec::new();
        let mut hops = 0;
        let mut last = None;
        while let Some(c) = pending.pop() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    let cut = cur.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    cur.truncate(cut);
                    last = None;
                    continue;
                }
                _ => {}
            }
            let before = cur.len();
            cur.push(b'/');
            cur.extend_from_slice(&c);
            let e = self.find(&cur)?;
            if e.is_symlink() {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                cur.truncate(before);
                if e.data.starts_with(b"/") {
                    cur.clear();
                }
                pending.extend(e.data.split(|&b| b == b'/').rev().map(|c| c.to_vec()));
                last = None;
            } else {
                last = Some(e);
            }
        }
        last
    }
}

/// Name of the table-of-contents member volt puts first.
pub const TOC_NAME: &[u8] = b".optivolt-toc";
/// What its data starts with; then the number of records (u64), then per
/// member: mode, mtime, name length (u32 each), 4 reserved bytes, the data's
/// offset in the archive and its length (u64 each), the name padded to 8.
pub const TOC_MAGIC: &[u8] = b"OVTOC001";

fn word(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn half(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Where a walk of the table of contents is.
#[derive(Clone, Debug)]
struct Toc<'a> {
    table: &'a [u8],
    at: usize,
    left: u64,
}

/// Iterator over archive members.
#[derive(Clone)]
pub struct Entries<'a> {
    data: &'a [u8],
    pos: usize,
    toc: Option<Toc<'a>>,
}

impl<'a> Entries<'a> {
    /// The next member from the table of contents; `None` at its end or at
    /// anything out of bounds.
    fn next_toc(&mut self) -> Option<Entry<'a>> {
        let data = self.data;
        let t = self.toc.as_mut()?;
        if t.left == 0 {
            return None;
        }
        let r = t.at;
        let mode = half(t.table, r)?;
        let mtime = half(t.table, r + 4)?;
        let nlen = half(t.table, r + 8)? as usize;
        let off = usize::try_from(word(t.table, r + 16)?).ok()?;
        let len = usize::try_from(word(t.table, r + 24)?).ok()?;
        let name = t.table.get(r + 32..(r + 32).checked_add(nlen)?)?;
        let body = data.get(off..off.checked_add(len)?)?;
        t.at = (r + 32 + nlen).next_multiple_of(8);
        t.left -= 1;
        Some(Entry {
            name,
            mode,
            uid: 0,
            gid: 0,
            mtime,
            ino: 0,
            data: body,
        })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.toc.is_some() {
            return self.next_toc();
        }
        self.next_raw()
    }
}

impl<'a> Entries<'a> {
    /// The next member by its cpio header.
    fn next_raw(&mut self) -> Option<Entry<'a>> {
        let h = self.data.get(self.pos..self.pos.checked_add(110)?)?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return None;
        }
        let f = |i: usize| hex8(&h[6 + i * 8..]);
        let ino = f(0)?;
        let mode = f(1)?;
        let uid = f(2)?;
        let gid = f(3)?;
        let mtime = f(5)?;
        let filesize = f(6)? as usize;
        let namesize = f(11)? as usize;
        if namesize == 0 {
            return None;
        }
        let name_start = self.pos + 110;
        // Up to the first NUL: volt pads some names with NULs so that the
        // file's data starts on a page (the guest can then map it).
        let name = self
            .data
            .get(name_start..name_start.checked_add(namesize - 1)?)?;
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let data_start = align4(name_start.checked_add(namesize)?)?;
        let data = self
            .data
            .get(data_start..data_start.checked_add(filesize)?)?;
        self.pos = align4(data_start + filesize)?;
        if name == b"TRAILER!!!" {
            self.pos = self.data.len();
            return None;
        }
        Some(Entry {
            name,
            mode,
            uid,
            gid,
            mtime,
            ino,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        out.extend_from_slice(b"070701");
        let fields = [
            1,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    #[test]
    fn finds_members_and_stops_at_trailer() {
        let mut a = Vec::new();
        member(&mut a, "bin", S_IFDIR | 0o755, b"");
        member(&mut a, "bin/hello", S_IFREG | 0o755, b"\x7fELF...");
        member(&mut a, "lnk", S_IFLNK | 0o777, b"bin/hello");
        member(&mut a, "TRAILER!!!", 0, b"");
        member(&mut a, "after", S_IFREG, b"x");
        let ar = Archive::new(&a);
        assert_eq!(ar.entries().count(), 3);
        let e = ar.find(b"/bin/hello").unwrap();
        assert!(e.is_file());
        assert_eq!(e.data, b"\x7fELF...");
        assert!(ar.find(b"./lnk").unwrap().is_symlink());
        assert!(ar.find(b"bin").unwrap().is_dir());
        assert!(ar.find(b"after").is_none());
    }

    #[test]
    fn resolve_follows_links_in_every_component_and_stops_loops() {
        let mut a = Vec::new();
        member(&mut a, "lib", S_IFDIR | 0o755, b"");
        member(&mut a, "lib/x86_64-linux-gnu", S_IFDIR | 0o755, b"");
        member(
            &mut a,
            "lib/x86_64-linux-gnu/ld.so.2",
            S_IFREG | 0o755,
            b"LD",
        );
        member(&mut a, "lib64", S_IFLNK | 0o777, b"lib");
        member(
            &mut a,
            "lib/ld-linux.so.2",
            S_IFLNK | 0o777,
            b"x86_64-linux-gnu/ld.so.2",
        );
        member(
            &mut a,
            "abs",
            S_IFLNK | 0o777,
            b"/lib/../lib64/ld-linux.so.2",
        );
        member(&mut a, "loop", S_IFLNK | 0o777, b"loop");
        member(&mut a, "TRAILER!!!", 0, b"");
        let ar = Archive::new(&a);
        // A relative link inside a directory reached through another link.
        assert_eq!(
            ar.resolve(b"/lib64/ld-linux.so.2").map(|e| e.data),
            Some(&b"LD"[..])
        );
        // An absolute link with `..` in it.
        assert_eq!(ar.resolve(b"/abs").map(|e| e.data), Some(&b"LD"[..]));
        assert!(ar.resolve(b"/lib64").is_some_and(|e| e.is_dir()));
        assert!(ar.resolve(b"/loop").is_none());
        assert!(ar.resolve(b"/lib/missing").is_none());
        assert!(ar.resolve(b"/").is_none());
    }

    #[test]
    fn malformed_input_ends_iteration() {
        let mut a = Vec::new();
        member(&mut a, "x", S_IFREG, b"abc");
        for cut in 0..a.len() {
            // Never panics, whatever the truncation.
            let _ = Archive::new(&a[..cut]).entries().count();
        }
        let mut bad = a.clone();
        bad[6] = b'z';
        assert_eq!(Archive::new(&bad).entries().count(), 0);
        // A huge file size must not overflow.
        let mut huge = a.clone();
        huge[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"ffffffff");
        assert_eq!(Archive::new(&huge).entries().count(), 0);
    }
}
