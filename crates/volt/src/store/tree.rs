//! A root file system in memory: read from a directory, a tar stream (an
//! image layer, applied over what is there with the OCI whiteouts) or a
//! cpio `newc` archive; written as a layer (`tar`, gzip) or as the members
//! of the archive the monitor maps. Paths never leave the tree: `..`
//! components are refused and symbolic links are kept as links, resolved
//! only inside the tree.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::image::archive::{Member, Source};

/// One entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Dir {
        perm: u32,
        mtime: u32,
    },
    File {
        perm: u32,
        mtime: u32,
        data: Vec<u8>,
    },
    Link {
        target: String,
    },
}

/// A reader that, after its inner reader ends, reads up to `tail` zero
/// bytes: some tools (umoci 0.4's `insert`) write layers without the last
/// entry's padding and the end-of-archive blocks, which other runtimes
/// accept as the end. The digest of the layer is checked before this.
struct ZeroTail<R> {
    inner: R,
    tail: usize,
}

impl<R: Read> Read for ZeroTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let z = self.tail.min(buf.len());
        buf[..z].fill(0);
        self.tail -= z;
        Ok(z)
    }
}

/// Paths are relative (`usr/bin/app`), sorted, so parents come first.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

/// `a/./b//c` → `a/b/c`; `None` for `..` or an empty path.
pub fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Follows `path` through symbolic links, never above the root; `lookup`
/// says what a relative path is: missing (`None`), a link (its target) or
/// anything else. The relative real path, or `None` if something on the
/// way is missing or the links loop.
pub fn resolve_with(path: &str, lookup: impl Fn(&str) -> Option<Option<String>>) -> Option<String> {
    let split = |s: &str| -> Vec<String> {
        s.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(String::from)
            .collect()
    };
    let mut todo = split(path);
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        cur.push(c);
        if let Some(target) = lookup(&cur.join("/"))? {
            hops += 1;
            if hops > 40 {
                return None;
            }
            cur.pop();
            if target.starts_with('/') {
                cur.clear();
            }
            todo.extend(split(&target));
        }
    }
    Some(cur.join("/"))
}

fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

impl Tree {
    /// Adds `node` at `path`, creating missing parents (0755).
    pub fn insert(&mut self, path: String, node: Node) {
        for p in parents(&path) {
            if !matches!(self.nodes.get(p), Some(Node::Dir { .. })) {
                self.nodes.insert(
                    p.to_string(),
                    Node::Dir {
                        perm: 0o755,
                        mtime: 0,
                    },
                );
            }
        }
        if matches!(node, Node::Dir { .. }) {
            if let Some(Node::Dir { .. }) = self.nodes.get(&path) {
                // A directory again (a later layer): keep its children.
                self.nodes.insert(path, node);
                return;
            }
        }
        self.remove(&path);
        self.nodes.insert(path, node);
    }

    /// Removes `path` and everything under it.
    pub fn remove(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_children(path);
    }

    fn remove_children(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Reads the directory `root` recursively (sockets, FIFOs and devices
    /// are not part of an image).
    pub fn from_dir(root: &Path) -> Result<Tree> {
        let mut t = Tree::default();
        t.add_dir(root, "")?;
        Ok(t)
    }

    fn add_dir(&mut self, root: &Path, rel: &str) -> Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = root.join(rel);
        let rd =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for e in rd {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let host = root.join(&path);
            let m = std::fs::symlink_metadata(&host)
                .with_context(|| format!("cannot stat {}", host.display()))?;
            let perm = m.permissions().mode() & 0o7777;
            let mtime = m.mtime().clamp(0, u32::MAX as i64) as u32;
            let ft = m.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&host)
                    .with_context(|| format!("cannot read link {}", host.display()))?;
                self.insert(
                    path,
                    Node::Link {
                        target: target.to_string_lossy().into_owned(),
                    },
                );
            } else if ft.is_dir() {
                self.insert(path.clone(), Node::Dir { perm, mtime });
                self.add_dir(root, &path)?;
            } else if ft.is_file() {
                if m.len() > u32::MAX as u64 {
                    bail!("{}: files over 4 GiB do not fit an image", host.display());
                }
                let data = std::fs::read(&host)
                    .with_context(|| format!("cannot read {}", host.display()))?;
                self.insert(path, Node::File { perm, mtime, data });
            }
        }
        Ok(())
    }

    /// Applies one layer (an uncompressed tar stream) over the tree, with
    /// the OCI whiteouts: `.wh.NAME` removes NAME from the layers below,
    /// `.wh..wh..opq` empties its directory of what the layers below put there.
    pub fn apply_tar<R: Read>(&mut self, r: R) -> Result<()> {
        let mut a = tar::Archive::new(ZeroTail {
            inner: r,
            tail: 1024,
        });
        let mut added: Vec<(String, Node)> = Vec::new();
        let mut hardlinks: Vec<(String, String)> = Vec::new();
        let mut whiteouts: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();
        for e in a.entries().context("the layer is not a tar archive")? {
            let mut e = e.context("the layer is not a valid tar archive")?;
            let raw = e
                .path()
                .context("a layer entry has an unreadable name")?
                .to_string_lossy()
                .into_owned();
            let Some(path) = clean(&raw) else {
                if raw.trim_matches(['/', '.']).is_empty() {
                    continue; // "./" itself
                }
                bail!("layer entry {raw:?} leaves the root file system");
            };
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                opaque.push(dir);
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                whiteouts.push(if dir.is_empty() {
                    gone.to_string()
                } else {
                    format!("{dir}/{gone}")
                });
                continue;
            }
            let h = e.header();
            let perm = h.mode().unwrap_or(0o644) & 0o7777;
            let mtime = h.mtime().unwrap_or(0).min(u32::MAX as u64) as u32;
            let kind = h.entry_type();
            if kind.is_dir() {
                added.push((path, Node::Dir { perm, mtime }));
            } else if kind.is_symlink() {
                let target = e
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                added.push((path, Node::Link { target }));
            } else if kind.is_hard_link() {
                let target = e
                    .link_name()
                    .ok()
                    .flatten()
                    .and_then(|t| clean(&t.to_string_lossy()));
                match target {
                    Some(t) => hardlinks.push((path, t)),
                    None => bail!("hard link {raw:?} leaves the root file system"),
                }
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let mut data = Vec::with_capacity(e.size().min(1 << 30) as usize);
                e.read_to_end(&mut data)
                    .with_context(|| format!("cannot read {raw:?} from the layer"))?;
                added.push((path, Node::File { perm, mtime, data }));
            }
            // Devices, FIFOs and the like are not part of an image.
        }
        for d in opaque {
            if d.is_empty() {
                self.nodes.clear();
            } else {
                self.remove_children(&d);
            }
        }
        for w in whiteouts {
            self.remove(&w);
        }
        for (p, n) in added {
            self.insert(p, n);
        }
        for (p, t) in hardlinks {
            match self.nodes.get(&t).cloned() {
                Some(n @ Node::File { .. }) => self.insert(p, n),
                _ => bail!("hard link {p:?} names {t:?}, which is not a file of the image"),
            }
        }
        Ok(())
    }

    /// Reads a cpio `newc` archive (as `cpio -H newc` and volt write it).
    pub fn from_cpio(b: &[u8]) -> Result<Tree> {
        let mut t = Tree::default();
        let mut at = 0usize;
        let field = |at: usize, i: usize| -> Result<u32> {
            let s = b
                .get(at + 6 + i * 8..at + 14 + i * 8)
                .context("truncated cpio header")?;
            u32::from_str_radix(std::str::from_utf8(s).unwrap_or("x"), 16)
                .context("bad cpio header field")
        };
        loop {
            match b.get(at..at + 6) {
                Some(b"070701") | Some(b"070702") => {}
                _ => bail!("not a cpio newc archive (at byte {at})"),
            }
            let mode = field(at, 1)?;
            let mtime = field(at, 5)?;
            let size = field(at, 6)? as usize;
            let namesize = field(at, 11)? as usize;
            let name_at = at + 110;
            let name = b
                .get(name_at..name_at + namesize.saturating_sub(1))
                .context("truncated cpio name")?;
            // volt's own archives pad names with NULs to align file data.
            let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
            let name = String::from_utf8_lossy(name).into_owned();
            let data_at = (name_at + namesize).next_multiple_of(4);
            let data = b
                .get(data_at..data_at + size)
                .context("truncated cpio data")?;
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                break;
            }
            if name == ".optivolt-toc" {
                continue;
            }
            let Some(path) = clean(&name) else {
                continue;
            };
            let perm = mode & 0o7777;
            let node = match mode & 0o170000 {
                0o040000 => Node::Dir { perm, mtime },
                0o100000 => Node::File {
                    perm,
                    mtime,
                    data: data.to_vec(),
                },
                0o120000 => Node::Link {
                    target: String::from_utf8_lossy(data).into_owned(),
                },
                _ => continue,
            };
            t.insert(path, node);
        }
        Ok(t)
    }

    /// The tree as an uncompressed tar stream (sorted, owner root, so the
    /// same tree always gives the same bytes).
    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        for (path, node) in &self.nodes {
            let mut h = tar::Header::new_ustar();
            h.set_uid(0);
            h.set_gid(0);
            match node {
                Node::Dir { perm, mtime } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*perm);
                    h.set_mtime(*mtime as u64);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                }
                Node::File { perm, mtime, data } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*perm);
                    h.set_mtime(*mtime as u64);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice())
                }
                Node::Link { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                }
            }
            .with_context(|| format!("cannot add {path} to the layer"))?;
        }
        b.into_inner().context("cannot finish the layer")
    }

    /// Follows `path` (absolute or relative to `/`) through the tree's
    /// links, as the guest would; the real path of what it names.
    pub fn resolve(&self, path: &str) -> Option<String> {
        resolve_with(path, |p| match self.nodes.get(p)? {
            Node::Link { target } => Some(Some(target.clone())),
            _ => Some(None),
        })
    }

    /// The file `path` names, through links.
    pub fn file(&self, path: &str) -> Option<(&str, &[u8])> {
        let real = self.resolve(path)?;
        match self.nodes.get_key_value(&real)? {
            (k, Node::File { data, .. }) => Some((k.as_str(), data.as_slice())),
            _ => None,
        }
    }

    /// Writes the tree under `dir` (directories, files with their
    /// permissions, links), for a container's rootfs.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (path, node) in &self.nodes {
            let p = dir.join(path);
            let r = match node {
                Node::Dir { perm, .. } => std::fs::create_dir_all(&p).and_then(|_| {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*perm | 0o700))
                }),
                Node::File { perm, data, .. } => std::fs::write(&p, data).and_then(|_| {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*perm))
                }),
                Node::Link { target } => std::os::unix::fs::symlink(target, &p),
            };
            r.with_context(|| format!("cannot write {}", p.display()))?;
        }
        Ok(())
    }

    /// The tree as archive members, in path order (parents first), with a
    /// `/tmp` the guest can write to.
    pub fn into_members(mut self) -> Vec<Member> {
        if !self.nodes.contains_key("tmp") {
            self.insert(
                "tmp".into(),
                Node::Dir {
                    perm: 0o1777,
                    mtime: 0,
                },
            );
        }
        self.nodes
            .into_iter()
            .map(|(p, n)| {
                let path = format!("/{p}");
                match n {
                    Node::Dir { perm, .. } => Member::Dir { path, perm },
                    Node::Link { target } => Member::Link { path, target },
                    Node::File { perm, mtime, data } => Member::File {
                        path,
                        perm,
                        mtime,
                        data: Source::Bytes(data),
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &[u8]) -> Node {
        Node::File {
            perm: 0o644,
            mtime: 1,
            data: data.to_vec(),
        }
    }

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in entries {
            let mut h = tar::Header::new_ustar();
            match d {
                Some(d) => {
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, p, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, p, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts_and_opaque_directories() {
        let mut t = Tree::default();
        t.apply_tar(
            &layer(&[
                ("etc/", None),
                ("etc/a", Some(b"1")),
                ("etc/b", Some(b"2")),
                ("var/x/y", Some(b"3")),
                ("keep", Some(b"4")),
            ])[..],
        )
        .unwrap();
        t.apply_tar(
            &layer(&[
                ("etc/.wh.a", Some(b"")),
                ("var/x/.wh..wh..opq", Some(b"")),
                ("var/x/z", Some(b"5")),
                ("keep", Some(b"6")),
            ])[..],
        )
        .unwrap();
        let names: Vec<&str> = t.nodes.keys().map(String::as_str).collect();
        assert_eq!(names, ["etc", "etc/b", "keep", "var", "var/x", "var/x/z"]);
        assert_eq!(t.nodes["keep"], file(b"6").clone_with_mtime(0));
    }

    impl Node {
        fn clone_with_mtime(&self, m: u32) -> Node {
            match self.clone() {
                Node::File { perm, data, .. } => Node::File {
                    perm,
                    mtime: m,
                    data,
                },
                n => n,
            }
        }
    }

    #[test]
    fn entries_that_leave_the_root_are_refused() {
        // The tar crate itself refuses to write "..", so forge the name.
        let mut raw = layer(&[("xx/evil", Some(b"x"))]);
        raw[..8].copy_from_slice(b"../evil\0");
        let mut h = tar::Header::from_byte_slice(&raw[..512]).clone();
        h.set_cksum();
        raw[..512].copy_from_slice(h.as_bytes());
        let e = Tree::default().apply_tar(&raw[..]).unwrap_err().to_string();
        assert!(e.contains("leaves the root"), "{e}");
        assert_eq!(clean("/a/./b//c"), Some("a/b/c".into()));
        assert_eq!(clean("a/../b"), None);
    }

    #[test]
    fn links_resolve_inside_the_tree_only() {
        let mut t = Tree::default();
        t.insert("usr/bin/python3.11".into(), file(b"py"));
        t.insert(
            "usr/bin/python3".into(),
            Node::Link {
                target: "python3.11".into(),
            },
        );
        t.insert(
            "bin".into(),
            Node::Link {
                target: "/usr/bin".into(),
            },
        );
        t.insert(
            "escape".into(),
            Node::Link {
                target: "../../../etc/passwd".into(),
            },
        );
        assert_eq!(t.file("/bin/python3").unwrap().0, "usr/bin/python3.11");
        assert!(t.file("/escape").is_none());
    }

    #[test]
    fn tar_and_cpio_round_trip() {
        let mut t = Tree::default();
        t.insert("a/b".into(), file(b"hello"));
        t.insert("a/l".into(), Node::Link { target: "b".into() });
        let tar = t.to_tar().unwrap();
        assert_eq!(tar, t.to_tar().unwrap(), "deterministic");
        let mut back = Tree::default();
        back.apply_tar(&tar[..]).unwrap();
        assert_eq!(back.nodes, t.nodes);
        // An ELF member volt aligns to a page (its name padded with NULs).
        let elf: Vec<u8> = b"\x7fELF"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(1, 20_000))
            .collect();
        t.insert("lib/x.so".into(), file(&elf));
        let cpio = crate::image::archive::write(&t.clone().into_members()).unwrap();
        let c = Tree::from_cpio(&cpio).unwrap();
        assert_eq!(c.file("/a/l").unwrap().1, b"hello");
        assert_eq!(c.file("/lib/x.so").unwrap().1, &elf[..]);
        assert!(matches!(c.nodes["tmp"], Node::Dir { perm: 0o1777, .. }));
    }
}
