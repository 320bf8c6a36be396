//! Writing cpio `newc` archives: the rootfs format of OptiVolt images.

/// File type: regular file.
pub const S_IFREG: u32 = 0o100000;
/// File type: directory.
pub const S_IFDIR: u32 = 0o040000;
/// File type: symbolic link.
pub const S_IFLNK: u32 = 0o120000;

/// Builds an archive in memory.
#[derive(Default)]
pub struct CpioWriter {
    buf: Vec<u8>,
    ino: u32,
    /// Archive bytes emitted before `buf` (alignment is relative to the archive).
    base: usize,
    /// Where the data of the member written last starts (archive offset).
    last_data: usize,
}

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// An archive with room reserved for `bytes` of content.
    pub fn with_capacity(bytes: usize) -> Self {
        CpioWriter {
            buf: Vec::with_capacity(bytes + 512),
            ino: 0,
            base: 0,
            last_data: 0,
        }
    }

    fn pad(&mut self) {
        while !(self.base + self.buf.len()).is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn entry(&mut self, path: &str, mode: u32, mtime: u32, data: &[u8]) {
        self.entry_header(path, mode, mtime, data.len());
        self.last_data = self.base + self.buf.len();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// The header and name of an entry whose `len` data bytes follow.
    fn entry_header(&mut self, path: &str, mode: u32, mtime: u32, len: usize) {
        self.entry_header_padded(path, mode, mtime, len, 1);
    }

    /// A header whose name field is padded with NULs so that the data that
    /// follows starts at a multiple of `align` bytes into the archive
    /// (readers take the name up to its first NUL).
    fn entry_header_padded(&mut self, path: &str, mode: u32, mtime: u32, len: usize, align: usize) {
        self.ino += 1;
        let name = path.trim_start_matches('/');
        let at = self.base + self.buf.len() + 110;
        let mut namesize = name.len() + 1;
        while !(at + namesize).next_multiple_of(4).is_multiple_of(align) {
            namesize += 1;
        }
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == S_IFDIR { 2 } else { 1 },
            mtime,
            len as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.resize(self.buf.len() + namesize - name.len(), 0);
        self.pad();
    }

    /// Adds a regular file whose data starts on a page of the archive, so
    /// that the library OS can map its pages instead of copying them (shared
    /// libraries).
    pub fn file_page_aligned(
        &mut self,
        path: &str,
        perm: u32,
        mtime: u32,
        data: &[u8],
    ) -> &mut Self {
        self.entry_header_padded(path, S_IFREG | (perm & 0o7777), mtime, data.len(), 4096);
        self.last_data = self.base + self.buf.len();
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, mtime: u32, data: &[u8]) -> &mut Self {
        self.entry(path, S_IFREG | (perm & 0o7777), mtime, data);
        self
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, perm: u32) -> &mut Self {
        self.entry(path, S_IFDIR | (perm & 0o7777), 0, b"");
        self
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, S_IFLNK | 0o777, 0, target.as_bytes());
        self
    }

    /// Appends the trailer and returns the bytes.
    /// Where the data of the member written last starts in the archive.
    pub fn last_data_offset(&self) -> usize {
        self.last_data
    }

    /// Overwrites bytes written before, at archive offset `at`.
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        let i = at - self.base;
        self.buf[i..i + bytes.len()].copy_from_slice(bytes);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 0, b"");
        self.buf
    }
}

/// An archive holding one regular file, split around its data: (everything
/// before the data, everything after it). The data itself is not copied.
pub fn single_file(path: &str, perm: u32, mtime: u32, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut w = CpioWriter::new();
    w.entry_header(path, S_IFREG | (perm & 0o7777), mtime, len);
    let head = std::mem::take(&mut w.buf);
    w.base = head.len() + len;
    w.pad();
    (head, w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use optivolt_libos::fs::cpio::Archive;

    #[test]
    fn page_aligned_files_start_on_a_page_and_read_back() {
        let mut w = CpioWriter::new();
        w.dir("/lib", 0o755)
            .file_page_aligned("/lib/libc.so.6", 0o755, 1, b"\x7fELF libc")
            .file("/etc/x", 0o644, 1, b"x")
            .file_page_aligned("/lib/libm.so.6", 0o755, 1, b"\x7fELF libm");
        let bytes = w.finish();
        let a = Archive::new(&bytes);
        for (name, data) in [
            (&b"/lib/libc.so.6"[..], &b"\x7fELF libc"[..]),
            (b"/lib/libm.so.6", b"\x7fELF libm"),
        ] {
            let e = a.find(name).unwrap();
            assert_eq!(e.data, data);
            let off = e.data.as_ptr() as usize - bytes.as_ptr() as usize;
            assert_eq!(off % 4096, 0, "{}", String::from_utf8_lossy(name));
        }
        assert_eq!(a.find(b"/etc/x").unwrap().data, b"x");
        assert_eq!(a.entries().count(), 4);
    }

    #[test]
    fn round_trips_through_the_guest_reader() {
        let mut w = CpioWriter::new();
        w.dir("/bin", 0o755)
            .file("/bin/hello", 0o755, 7, b"\x7fELF-bytes")
            .symlink("/hello", "bin/hello");
        let bytes = w.finish();
        assert_eq!(bytes.len() % 4, 0);
        let a = Archive::new(&bytes);
        let names: Vec<_> = a
            .entries()
            .map(|e| String::from_utf8(e.name.to_vec()).unwrap())
            .collect();
        assert_eq!(names, ["bin", "bin/hello", "hello"]);
        let f = a.find(b"/bin/hello").unwrap();
        assert!(f.is_file());
        assert_eq!(f.mode & 0o7777, 0o755);
        assert_eq!(f.mtime, 7);
        assert_eq!(f.data, b"\x7fELF-bytes");
        assert_eq!(a.find(b"hello").unwrap().data, b"bin/hello");
    }

    #[test]
    fn single_file_split_equals_the_whole() {
        for data in [&b""[..], b"x", b"abcd", b"abcde", b"\x7fELF0123456"] {
            let mut w = CpioWriter::new();
            w.file("/bin/app", 0o755, 9, data);
            let whole = w.finish();
            let (head, tail) = single_file("/bin/app", 0o755, 9, data.len());
            let split = [head.as_slice(), data, tail.as_slice()].concat();
            assert_eq!(split, whole, "{data:?}");
        }
    }

    #[test]
    fn matches_gnu_cpio_layout() {
        // Header (110) + "a\0" padded to 112, then 1 data byte padded to 4.
        let mut w = CpioWriter::new();
        w.file("a", 0o644, 0, b"x");
        let b = w.finish();
        assert_eq!(&b[..6], b"070701");
        assert_eq!(&b[110..112], b"a\0");
        assert_eq!(b[112], b'x');
        assert_eq!(&b[116..122], b"070701");
    }
}
