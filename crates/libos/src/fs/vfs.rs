//! The in-memory virtual file system.
//!
//! The rootfs (cpio) is unpacked into a tree of inodes at boot; file contents
//! stay in the archive (borrowed) until a file is written, when they are
//! copied (copy-on-write). Everything is writable, as on a tmpfs. Devices and
//! generated files (/proc) are inodes whose contents the kernel provides.
//!
//! ```
//! use optivolt_libos::fs::vfs::{Vfs, ROOT};
//! let mut fs = Vfs::new(0);
//! let dir = fs.mkdir(ROOT, b"tmp", 0o777).unwrap();
//! let f = fs.create(dir, b"a.txt", 0o644).unwrap();
//! fs.write(f, 0, b"hello").unwrap();
//! let ino = fs.lookup(ROOT, b"/tmp/a.txt", true).unwrap();
//! let mut buf = [0u8; 5];
//! assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), 5);
//! assert_eq!(&buf, b"hello");
//! ```

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::cpio::{self, Archive};
use super::path::{components, split_last};
use crate::errno::*;

/// Inode number.
pub type Ino = usize;
/// The root directory.
pub const ROOT: Ino = 0;
/// Longest symlink chain followed.
pub const MAX_SYMLINKS: usize = 40;
/// Longest path accepted.
pub const PATH_MAX: usize = 4096;

/// File type bits.
pub const S_IFMT: u32 = 0o170000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010000;

/// Devices under /dev.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// /dev/null.
    Null,
    /// /dev/zero.
    Zero,
    /// /dev/random and /dev/urandom.
    Random,
    /// /dev/stdin, /dev/stdout, /dev/stderr: the console with that fd.
    Console(u8),
}

/// Files whose contents the kernel generates when they are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// /proc/self/maps.
    Maps,
    /// /proc/cpuinfo.
    CpuInfo,
    /// /proc/meminfo.
    MemInfo,
}

/// File contents.
#[derive(Clone, Debug)]
pub enum Data {
    /// Still the bytes of the rootfs archive.
    Borrowed(&'static [u8]),
    /// Written since boot.
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Borrowed(b) => b,
            Data::Owned(v) => v,
        }
    }
    fn owned(&mut self) -> &mut Vec<u8> {
        if let Data::Borrowed(b) = self {
            *self = Data::Owned(b.to_vec());
        }
        match self {
            Data::Owned(v) => v,
            Data::Borrowed(_) => unreachable!("converted above"),
        }
    }
}

/// What an inode is.
#[derive(Clone, Debug)]
pub enum Node {
    /// A regular file.
    File(Data),
    /// A directory: entries by name, and the parent.
    Dir {
        entries: BTreeMap<Vec<u8>, Ino>,
        parent: Ino,
    },
    /// A symbolic link.
    Symlink(Vec<u8>),
    /// A device.
    Device(Device),
    /// A generated file.
    Generated(Generated),
}

/// An inode.
#[derive(Clone, Debug)]
pub struct Inode {
    /// Contents.
    pub node: Node,
    /// Permission bits (the type is derived from `node`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Hard links.
    pub nlink: u32,
}

impl Inode {
    /// Full mode: type and permissions.
    pub fn mode(&self) -> u32 {
        let t = match self.node {
            Node::File(_) | Node::Generated(_) => S_IFREG,
            Node::Dir { .. } => S_IFDIR,
            Node::Symlink(_) => S_IFLNK,
            Node::Device(_) => S_IFCHR,
        };
        t | (self.perm & 0o7777)
    }
    /// Size in bytes (0 for devices and generated files).
    pub fn size(&self) -> u64 {
        match &self.node {
            Node::File(d) => d.bytes().len() as u64,
            Node::Symlink(t) => t.len() as u64,
            Node::Dir { entries, .. } => 4096.max(entries.len() as u64 * 32),
            _ => 0,
        }
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir { .. })
    }
}

/// A directory entry as getdents64 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Name.
    pub name: Vec<u8>,
    /// Inode.
    pub ino: Ino,
    /// DT_* type.
    pub dtype: u8,
}

/// The file system.
#[derive(Debug)]
pub struct Vfs {
    inodes: Vec<Option<Inode>>,
    free: Vec<Ino>,
    /// Directories a volume is mounted on, and which volume.
    mounts: BTreeMap<Ino, u32>,
    /// Time stamped on new and modified inodes.
    pub now: i64,
}

type R<T> = Result<T, i64>;

impl Vfs {
    /// An empty file system with a root directory.
    pub fn new(now: i64) -> Self {
        let root = Inode {
            node: Node::Dir {
                entries: BTreeMap::new(),
                parent: ROOT,
            },
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: now,
            nlink: 2,
        };
        Vfs {
            inodes: alloc::vec![Some(root)],
            free: Vec::new(),
            mounts: BTreeMap::new(),
            now,
        }
    }

    /// The inode `ino`.
    pub fn inode(&self, ino: Ino) -> R<&Inode> {
        self.inodes.get(ino).and_then(|i| i.as_ref()).ok_or(ENOENT)
    }

    fn inode_mut(&mut self, ino: Ino) -> R<&mut Inode> {
        self.inodes
            .get_mut(ino)
            .and_then(|i| i.as_mut())
            .ok_or(ENOENT)
    }

    fn alloc(&mut self, node: Node, perm: u32) -> Ino {
        let nlink = if matches!(node, Node::Dir { .. }) {
            2
        } else {
            1
        };
        let i = Inode {
            node,
            perm,
            uid: 0,
            gid: 0,
            mtime: self.now,
            nlink,
        };
        match self.free.pop() {
            Some(n) => {
                self.inodes[n] = Some(i);
                n
            }
            None => {
                self.inodes.push(Some(i));
                self.inodes.len() - 1
            }
        }
    }

    fn entries(&self, dir: Ino) -> R<&BTreeMap<Vec<u8>, Ino>> {
        match &self.inode(dir)?.node {
            Node::Dir { entries, .. } => Ok(entries),
            _ => Err(ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> R<&mut BTreeMap<Vec<u8>, Ino>> {
        match &mut self.inode_mut(dir)?.node {
            Node::Dir { entries, .. } => Ok(entries),
            _ => Err(ENOTDIR),
        }
    }

    /// The parent of directory `dir`.
    pub fn parent(&self, dir: Ino) -> R<Ino> {
        match &self.inode(dir)?.node {
            Node::Dir { parent, .. } => Ok(*parent),
            _ => Err(ENOTDIR),
        }
    }

    /// Mounts volume `vol` on directory `dir`: paths that reach `dir` go on
    /// in the volume (see `fs::resolve`).
    pub fn mount(&mut self, dir: Ino, vol: u32) -> R<()> {
        if !self.inode(dir)?.is_dir() {
            return Err(ENOTDIR);
        }
        if self.mounts.values().any(|&v| v == vol) {
            return Err(EBUSY);
        }
        self.mounts.insert(dir, vol);
        Ok(())
    }

    /// The volume mounted on `dir`, if any.
    pub fn mounted(&self, dir: Ino) -> Option<u32> {
        self.mounts.get(&dir).copied()
    }

    /// The directory volume `vol` is mounted on.
    pub fn mount_point(&self, vol: u32) -> Option<Ino> {
        self.mounts.iter().find(|(_, &v)| v == vol).map(|(&d, _)| d)
    }

    /// Whether any volume is mounted (path resolution is simpler without).
    pub fn has_mounts(&self) -> bool {
        !self.mounts.is_empty()
    }

    /// The entry `name` of directory `dir` (`.` and `..` included).
    pub fn child(&self, dir: Ino, name: &[u8]) -> R<Ino> {
        if name == b".." {
            return self.parent(dir);
        }
        if name == b"." || name.is_empty() {
            self.entries(dir)?;
            return Ok(dir);
        }
        if name.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        self.entries(dir)?.get(name).copied().ok_or(ENOENT)
    }

    fn walk(&self, start: Ino, path: &[u8], follow_last: bool, depth: &mut usize) -> R<Ino> {
        if path.len() > PATH_MAX {
            return Err(ENAMETOOLONG);
        }
        if path.is_empty() {
            return Err(ENOENT);
        }
        let mut cur = if path.starts_with(b"/") { ROOT } else { start };
        let comps: Vec<&[u8]> = components(path).collect();
        let trailing_slash = path.ends_with(b"/");
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            if !self.inode(cur)?.is_dir() {
                return Err(ENOTDIR);
            }
            let next = self.child(cur, c)?;
            if let Node::Symlink(target) = &self.inode(next)?.node {
                if !last || follow_last || trailing_slash {
                    *depth += 1;
                    if *depth > MAX_SYMLINKS {
                        return Err(ELOOP);
                    }
                    let t = target.clone();
                    cur = self.walk(cur, &t, true, depth)?;
                    continue;
                }
            }
            cur = next;
        }
        if trailing_slash && !self.inode(cur)?.is_dir() {
            return Err(ENOTDIR);
        }
        Ok(cur)
    }

    /// Resolves `path` relative to directory `cwd`, following symlinks (the
    /// last one only if `follow_last`).
    pub fn lookup(&self, cwd: Ino, path: &[u8], follow_last: bool) -> R<Ino> {
        let mut depth = 0;
        self.walk(cwd, path, follow_last, &mut depth)
    }

    /// Resolves everything but the last component: (directory, name).
    pub fn lookup_parent<'p>(&self, cwd: Ino, path: &'p [u8]) -> R<(Ino, &'p [u8])> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        let (dir, name) = split_last(path);
        let d = if dir.is_empty() {
            cwd
        } else {
            self.lookup(cwd, dir, true)?
        };
        if !self.inode(d)?.is_dir() {
            return Err(ENOTDIR);
        }
        if name.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        Ok((d, name))
    }

    fn insert(&mut self, dir: Ino, name: &[u8], node: Node, perm: u32) -> R<Ino> {
        if name.is_empty() || name == b"." || name == b".." || name == b"/" {
            return Err(EEXIST);
        }
        if self.entries(dir)?.contains_key(name) {
            return Err(EEXIST);
        }
        let is_dir = matches!(node, Node::Dir { .. });
        let ino = self.alloc(node, perm);
        let now = self.now;
        self.entries_mut(dir)?.insert(name.to_vec(), ino);
        let d = self.inode_mut(dir)?;
        d.mtime = now;
        if is_dir {
            d.nlink += 1;
        }
        Ok(ino)
    }

    /// Creates an empty regular file.
    pub fn create(&mut self, dir: Ino, name: &[u8], perm: u32) -> R<Ino> {
        self.insert(dir, name, Node::File(Data::Owned(Vec::new())), perm)
    }

    /// Creates a regular file over archive bytes.
    pub fn create_borrowed(
        &mut self,
        dir: Ino,
        name: &[u8],
        perm: u32,
        data: &'static [u8],
    ) -> R<Ino> {
        self.insert(dir, name, Node::File(Data::Borrowed(data)), perm)
    }

    /// Creates a directory.
    pub fn mkdir(&mut self, dir: Ino, name: &[u8], perm: u32) -> R<Ino> {
        self.insert(
            dir,
            name,
            Node::Dir {
                entries: BTreeMap::new(),
                parent: dir,
            },
            perm,
        )
    }

    /// Creates a symbolic link.
    pub fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8]) -> R<Ino> {
        if target.is_empty() {
            return Err(ENOENT);
        }
        self.insert(dir, name, Node::Symlink(target.to_vec()), 0o777)
    }

    /// Creates a device node.
    pub fn mknod(&mut self, dir: Ino, name: &[u8], dev: Device, perm: u32) -> R<Ino> {
        self.insert(dir, name, Node::Device(dev), perm)
    }

    /// Creates a generated file.
    pub fn generated(&mut self, dir: Ino, name: &[u8], g: Generated) -> R<Ino> {
        self.insert(dir, name, Node::Generated(g), 0o444)
    }

    fn drop_link(&mut self, ino: Ino) {
        if let Ok(i) = self.inode_mut(ino) {
            i.nlink = i.nlink.saturating_sub(1);
            // Contents are freed when the last link goes; open files keep the
            // inode number, so we keep the inode itself (no reuse) until then.
            if i.nlink == 0 {
                if let Node::File(d) = &mut i.node {
                    *d = Data::Owned(Vec::new());
                }
            }
        }
    }

    /// Removes a non-directory entry.
    pub fn unlink(&mut self, dir: Ino, name: &[u8]) -> R<()> {
        let ino = self.child(dir, name)?;
        if self.inode(ino)?.is_dir() {
            return Err(EISDIR);
        }
        self.entries_mut(dir)?.remove(name);
        self.inode_mut(dir)?.mtime = self.now;
        self.drop_link(ino);
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, dir: Ino, name: &[u8]) -> R<()> {
        if name == b"." {
            return Err(EINVAL);
        }
        if name == b".." {
            return Err(ENOTEMPTY);
        }
        let ino = self.child(dir, name)?;
        if self.mounts.contains_key(&ino) {
            return Err(EBUSY);
        }
        if !self.entries(ino)?.is_empty() {
            return Err(ENOTEMPTY);
        }
        self.entries_mut(dir)?.remove(name);
        let now = self.now;
        let d = self.inode_mut(dir)?;
        d.nlink = d.nlink.saturating_sub(1);
        d.mtime = now;
        if let Ok(i) = self.inode_mut(ino) {
            i.nlink = 0;
        }
        Ok(())
    }

    fn is_ancestor(&self, anc: Ino, mut d: Ino) -> bool {
        loop {
            if d == anc {
                return true;
            }
            match self.parent(d) {
                Ok(p) if p != d => d = p,
                _ => return false,
            }
        }
    }

    /// Renames `odir/oname` to `ndir/nname`, replacing a compatible target.
    pub fn rename(&mut self, odir: Ino, oname: &[u8], ndir: Ino, nname: &[u8]) -> R<()> {
        if oname.is_empty()
            || nname.is_empty()
            || oname == b"."
            || oname == b".."
            || nname == b"."
            || nname == b".."
        {
            return Err(EINVAL);
        }
        let ino = self.child(odir, oname)?;
        self.entries(ndir)?;
        if self.mounts.contains_key(&ino)
            || self
                .child(ndir, nname)
                .is_ok_and(|e| self.mounts.contains_key(&e))
        {
            return Err(EBUSY);
        }
        let moving_dir = self.inode(ino)?.is_dir();
        if moving_dir && self.is_ancestor(ino, ndir) {
            return Err(EINVAL);
        }
        if let Ok(existing) = self.child(ndir, nname) {
            if existing == ino {
                return Ok(());
            }
            let e_dir = self.inode(existing)?.is_dir();
            match (moving_dir, e_dir) {
                (true, false) => return Err(ENOTDIR),
                (false, true) => return Err(EISDIR),
                (true, true) => self.rmdir(ndir, nname)?,
                (false, false) => self.unlink(ndir, nname)?,
            }
        }
        self.entries_mut(odir)?.remove(oname);
        self.entries_mut(ndir)?.insert(nname.to_vec(), ino);
        if moving_dir && odir != ndir {
            if let Node::Dir { parent, .. } = &mut self.inode_mut(ino)?.node {
                *parent = ndir;
            }
            self.inode_mut(odir)?.nlink -= 1;
            self.inode_mut(ndir)?.nlink += 1;
        }
        let now = self.now;
        self.inode_mut(odir)?.mtime = now;
        self.inode_mut(ndir)?.mtime = now;
        Ok(())
    }

    /// A symlink's target.
    pub fn readlink(&self, ino: Ino) -> R<&[u8]> {
        match &self.inode(ino)?.node {
            Node::Symlink(t) => Ok(t),
            _ => Err(EINVAL),
        }
    }

    /// Reads a regular file at `off`.
    pub fn read(&self, ino: Ino, off: u64, buf: &mut [u8]) -> R<usize> {
        match &self.inode(ino)?.node {
            Node::File(d) => {
                let b = d.bytes();
                let start = (off.min(b.len() as u64)) as usize;
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
            Node::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    /// The whole contents of a regular file.
    pub fn contents(&self, ino: Ino) -> R<&[u8]> {
        match &self.inode(ino)?.node {
            Node::File(d) => Ok(d.bytes()),
            Node::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    /// Writes a regular file at `off` (extending it, zero-filling any hole).
    pub fn write(&mut self, ino: Ino, off: u64, data: &[u8]) -> R<usize> {
        let now = self.now;
        let i = self.inode_mut(ino)?;
        i.mtime = now;
        match &mut i.node {
            Node::File(d) => {
                let end = off.checked_add(data.len() as u64).ok_or(EFBIG)?;
                if end > (1 << 40) {
                    return Err(EFBIG);
                }
                let v = d.owned();
                if (v.len() as u64) < end {
                    v.try_reserve((end as usize).saturating_sub(v.len()))
                        .map_err(|_| ENOSPC)?;
                    v.resize(end as usize, 0);
                }
                v[off as usize..end as usize].copy_from_slice(data);
                Ok(data.len())
            }
            Node::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    /// Sets a regular file's length.
    pub fn truncate(&mut self, ino: Ino, len: u64) -> R<()> {
        if len > (1 << 40) {
            return Err(EFBIG);
        }
        let now = self.now;
        let i = self.inode_mut(ino)?;
        i.mtime = now;
        match &mut i.node {
            Node::File(d) => {
                let v = d.owned();
                v.try_reserve((len as usize).saturating_sub(v.len()))
                    .map_err(|_| ENOSPC)?;
                v.resize(len as usize, 0);
                Ok(())
            }
            Node::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    /// Changes permission bits.
    pub fn chmod(&mut self, ino: Ino, perm: u32) -> R<()> {
        self.inode_mut(ino)?.perm = perm & 0o7777;
        Ok(())
    }

    /// Directory listing with "." and ".." first, then by name.
    pub fn readdir(&self, dir: Ino) -> R<Vec<DirEntry>> {
        let entries = self.entries(dir)?;
        let mut v = Vec::with_capacity(entries.len() + 2);
        v.push(DirEntry {
            name: b".".to_vec(),
            ino: dir,
            dtype: 4,
        });
        v.push(DirEntry {
            name: b"..".to_vec(),
            ino: self.parent(dir)?,
            dtype: 4,
        });
        for (name, &ino) in entries {
            v.push(DirEntry {
                name: name.clone(),
                ino,
                dtype: dtype(self.inode(ino)?.mode()),
            });
        }
        Ok(v)
    }

    /// A path to `ino` (any inode): the first directory entry found that
    /// names it (a search over every directory, for /proc/self/maps).
    pub fn find_path(&self, ino: Ino) -> Option<Vec<u8>> {
        if ino == ROOT {
            return Some(b"/".to_vec());
        }
        self.inodes.iter().enumerate().find_map(|(dir, i)| {
            let Node::Dir { entries, .. } = &i.as_ref()?.node else {
                return None;
            };
            let (name, _) = entries.iter().find(|(_, &e)| e == ino)?;
            let mut p = self.path_of(dir as Ino).ok()?;
            if p != b"/" {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            Some(p)
        })
    }

    /// The absolute path of directory `dir`.
    pub fn path_of(&self, mut dir: Ino) -> R<Vec<u8>> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        while dir != ROOT {
            let p = self.parent(dir)?;
            let name = self
                .entries(p)?
                .iter()
                .find(|(_, &i)| i == dir)
                .map(|(n, _)| n.clone())
                .ok_or(ENOENT)?;
            parts.push(name);
            dir = p;
            if parts.len() > PATH_MAX / 2 {
                return Err(ENAMETOOLONG);
            }
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }

    /// Creates every missing directory of `path` (absolute); returns the last.
    pub fn mkdir_all(&mut self, path: &[u8], perm: u32) -> R<Ino> {
        let mut cur = ROOT;
        for c in components(path) {
            cur = match self.child(cur, c) {
                Ok(i) => i,
                Err(ENOENT) => self.mkdir(cur, c, perm)?,
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    /// Unpacks a cpio archive (whose bytes live for the VM's lifetime).
    pub fn unpack(&mut self, archive: &'static [u8]) -> R<usize> {
        let mut n = 0;
        for e in Archive::new(archive).entries() {
            let name = cpio::normalize(e.name);
            if name.is_empty() || name == b"." {
                if e.is_dir() {
                    self.chmod(ROOT, e.mode)?;
                }
                continue;
            }
            let (parent, last) = split_last(name);
            let dir = self.mkdir_all(parent, 0o755)?;
            let perm = e.mode & 0o7777;
            let made = if e.is_dir() {
                match self.child(dir, last) {
                    Ok(existing) => {
                        self.chmod(existing, perm)?;
                        existing
                    }
                    Err(_) => self.mkdir(dir, last, perm)?,
                }
            } else if e.is_symlink() {
                self.symlink(dir, last, e.data)?
            } else if e.is_file() {
                self.create_borrowed(dir, last, perm, e.data)?
            } else {
                continue; // devices, fifos: not from an image
            };
            if let Ok(i) = self.inode_mut(made) {
                i.mtime = e.mtime as i64;
                i.uid = e.uid;
                i.gid = e.gid;
            }
            n += 1;
        }
        Ok(n)
    }
}

/// DT_* for a mode.
pub fn dtype(mode: u32) -> u8 {
    match mode & S_IFMT {
        S_IFREG => 8,
        S_IFDIR => 4,
        S_IFLNK => 10,
        S_IFCHR => 2,
        S_IFIFO => 1,
        _ => 0,
    }
}

#[cfg(test)]
#[path = "vfs_tests.rs"]
mod tests;
