//! Path resolution across the VFS and the volumes mounted in it.
//!
//! Resolution goes one component at a time, as Linux's does: a symlink —
//! in the VFS or in a volume — is followed in the guest's own tree, so an
//! absolute target inside a volume means the guest's `/`, and `..` at a
//! volume's root leaves it for the directory it is mounted on. The host is
//! asked once per run of plain names (one exit for most paths): it walks
//! them and stops at the first symlink, which the guest then splices in.
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::path::{components, split_last};
use super::vfs::{Ino, Node, Vfs, MAX_SYMLINKS, PATH_MAX, ROOT, S_IFDIR, S_IFLNK, S_IFMT};
use super::volume::{HostPath, VolumeStat, Walked, Walker};
use crate::errno::*;

type R<T> = Result<T, i64>;

/// Where a path leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    /// An inode of the VFS.
    Mem(Ino),
    /// A file or directory in a volume, and its metadata at resolution.
    Host(HostPath, VolumeStat),
}

impl Loc {
    /// Whether this is a directory.
    pub fn is_dir(&self, fs: &Vfs) -> bool {
        match self {
            Loc::Mem(i) => fs.inode(*i).is_ok_and(|n| n.is_dir()),
            Loc::Host(_, st) => st.mode & S_IFMT == S_IFDIR,
        }
    }
}

/// Resolves `path` from directory `start`, following symlinks (the last one
/// only if `follow_last`).
pub fn resolve(
    fs: &Vfs,
    host: &mut dyn Walker,
    start: &Loc,
    path: &[u8],
    follow_last: bool,
) -> R<Loc> {
    if path.len() > PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    if path.is_empty() {
        return Err(ENOENT);
    }
    if !fs.has_mounts() {
        if let Loc::Mem(cwd) = start {
            return fs.lookup(*cwd, path, follow_last).map(Loc::Mem);
        }
    }
    let trailing_slash = path.ends_with(b"/");
    let mut cur = if path.starts_with(b"/") {
        Cur::Mem(ROOT)
    } else {
        Cur::from(start)
    };
    let mut queue: VecDeque<Vec<u8>> = components(path).map(|c| c.to_vec()).collect();
    let follow_last = follow_last || trailing_slash;
    let mut links = 0usize;
    let mut last_stat: Option<VolumeStat> = None;
    while let Some(c) = queue.pop_front() {
        if c.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        match cur {
            Cur::Mem(dir) => {
                if !fs.inode(dir)?.is_dir() {
                    return Err(ENOTDIR);
                }
                let next = fs.child(dir, &c)?;
                if let Node::Symlink(target) = &fs.inode(next)?.node {
                    if !queue.is_empty() || follow_last {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(ELOOP);
                        }
                        splice(&mut queue, target);
                        if target.starts_with(b"/") {
                            cur = Cur::Mem(ROOT);
                        }
                        continue;
                    }
                }
                cur = match fs.mounted(next) {
                    Some(vol) if c != b".." => {
                        last_stat = None;
                        Cur::Host(HostPath {
                            vol,
                            rel: Vec::new(),
                        })
                    }
                    _ => Cur::Mem(next),
                };
            }
            Cur::Host(ref mut hp) => {
                if c == b".." {
                    last_stat = None;
                    match hp.parent() {
                        Some(p) => *hp = p,
                        None => {
                            let at = fs.mount_point(hp.vol).ok_or(ENOENT)?;
                            cur = Cur::Mem(fs.parent(at)?);
                        }
                    }
                    continue;
                }
                // A run of plain names: one walk on the host.
                let mut trial = hp.join(&c);
                while queue.front().is_some_and(|n| n != b"..") {
                    let n = queue.pop_front().unwrap_or_default();
                    if n.len() > 255 {
                        return Err(ENAMETOOLONG);
                    }
                    trial = trial.join(&n);
                }
                let nofollow = queue.is_empty() && !follow_last;
                match host.walk(trial.vol, &trial.rel, nofollow)? {
                    Walked::Found(st) => {
                        if !queue.is_empty() && st.mode & S_IFMT != S_IFDIR {
                            return Err(ENOTDIR);
                        }
                        last_stat = Some(st);
                        *hp = trial;
                    }
                    Walked::Link { prefix, target } => {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(ELOOP);
                        }
                        let rel = &trial.rel;
                        let prefix = prefix.min(rel.len());
                        // What came after the link goes back on the queue.
                        let rest = rel.get(prefix + 1..).unwrap_or(&[]);
                        for n in rest.rsplit(|&b| b == b'/').filter(|n| !n.is_empty()) {
                            queue.push_front(n.to_vec());
                        }
                        let link = HostPath {
                            vol: trial.vol,
                            rel: rel[..prefix].to_vec(),
                        };
                        let dir = link.parent().unwrap_or(HostPath {
                            vol: trial.vol,
                            rel: Vec::new(),
                        });
                        last_stat = None;
                        splice(&mut queue, &target);
                        if target.starts_with(b"/") {
                            cur = Cur::Mem(ROOT);
                        } else {
                            *hp = dir;
                        }
                    }
                }
            }
        }
    }
    match cur {
        Cur::Mem(ino) => {
            if trailing_slash && !fs.inode(ino)?.is_dir() {
                return Err(ENOTDIR);
            }
            Ok(Loc::Mem(ino))
        }
        Cur::Host(hp) => {
            let st = match last_stat {
                Some(st) => st,
                // Ended on a directory reached by `..` or the volume's root.
                None => match host.walk(hp.vol, &hp.rel, false)? {
                    Walked::Found(st) => st,
                    Walked::Link { .. } => return Err(ELOOP),
                },
            };
            if trailing_slash && st.mode & S_IFMT != S_IFDIR {
                return Err(ENOTDIR);
            }
            Ok(Loc::Host(hp, st))
        }
    }
}

/// Resolves everything but the last component: (directory, name). The name
/// is empty for `/` or a path ending in `/`.
pub fn resolve_parent<'p>(
    fs: &Vfs,
    host: &mut dyn Walker,
    start: &Loc,
    path: &'p [u8],
) -> R<(Loc, &'p [u8])> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    let (dir, name) = split_last(path);
    let d = if dir.is_empty() {
        start.clone()
    } else {
        resolve(fs, host, start, dir, true)?
    };
    if !d.is_dir(fs) {
        return Err(ENOTDIR);
    }
    if name.len() > 255 {
        return Err(ENAMETOOLONG);
    }
    // `..` or `.` as the last name: the directory they lead to decides.
    Ok((d, name))
}

/// Whether a volume's stat is a symlink.
pub fn is_link(st: &VolumeStat) -> bool {
    st.mode & S_IFMT == S_IFLNK
}

/// The cursor of a resolution.
enum Cur {
    Mem(Ino),
    Host(HostPath),
}

impl Cur {
    fn from(l: &Loc) -> Cur {
        match l {
            Loc::Mem(i) => Cur::Mem(*i),
            Loc::Host(hp, _) => Cur::Host(hp.clone()),
        }
    }
}

/// Puts a symlink target's components in front of what is left.
fn splice(queue: &mut VecDeque<Vec<u8>>, target: &[u8]) {
    let parts: Vec<&[u8]> = components(target).collect();
    for p in parts.into_iter().rev() {
        queue.push_front(p.to_vec());
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
