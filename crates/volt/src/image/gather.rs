//! A dynamically linked host binary's image: the binary at its own path,
//! its loader and libraries at theirs (with the links that lead there),
//! gathered as ld.so would find them on this host ([`super::deps`]); for
//! an interpreter, the trees it reads at start; and what `--include` names.
//!
//! The packed rootfs is cached by content in `~/.cache/optivolt/rootfs`
//! (the key hashes every entry's path, kind, and its host file's device,
//! inode, size and modification time), so a second run packs nothing, and
//! the monitor maps the cached file into each guest from the page cache:
//! every instance of the image shares those pages.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use optivolt_abi::elf::Elf;
use sha2::{Digest, Sha256};

use super::archive::{Member, Source};
use super::{deps, mtime_of, AppImage, MappedFile, Part, Program};

/// One member of the image, in archive order.
#[derive(Debug)]
enum Entry {
    Dir(PathBuf),
    Link(PathBuf, PathBuf),
    /// A regular file: guest path, host path, permission bits.
    File(PathBuf, PathBuf, u32),
}

/// Builds (or takes from the cache) the image of `binary`, whose bytes are
/// `data`.
pub fn pack_dynamic(
    binary: &Path,
    data: MappedFile,
    load_size: u64,
    include: &[PathBuf],
) -> Result<AppImage> {
    let exec = std::path::absolute(binary)
        .with_context(|| format!("cannot make {} absolute", binary.display()))?;
    let index =
        cache_dir().map(|d| d.join(format!("{}.index", super::index::name(&exec, include))));
    // Seen before, and nothing it looked at changed: the cached archive.
    let quick = index
        .as_deref()
        .and_then(super::index::check)
        .and_then(|f| {
            let p = cache_dir()?.join(format!("{}.cpio", f.key));
            let m = MappedFile::open_lazy(&p).ok()?;
            // Used now: the cache's eviction goes by modification time.
            let _ = m.file().set_modified(std::time::SystemTime::now());
            Some((m, f.libraries))
        });
    let (file, libraries) = match quick {
        Some(x) => x,
        None => {
            let (entries, libraries) = manifest(binary, &exec, &data, include)?;
            let key = key_of(&entries);
            let cached = cache_dir().map(|d| d.join(format!("{key}.cpio")));
            let file = match cached.as_ref().and_then(|p| MappedFile::open_lazy(p).ok()) {
                Some(f) => f,
                None => {
                    let bytes = write_cpio(&entries)?;
                    let f = store(cached.as_deref(), &bytes)?;
                    if let (Some(dir), Some(p)) = (cache_dir(), cached.as_deref()) {
                        prune(&dir, p, cache_limit());
                    }
                    f
                }
            };
            if let (Some(idx), Some(_)) = (&index, &cached) {
                super::index::write(
                    idx,
                    &key,
                    &libraries,
                    &looked_at(&deps::Tree::host(), &entries, include),
                );
            }
            (file, libraries)
        }
    };
    Ok(AppImage {
        rootfs: vec![Part::File(file)],
        exec_path: exec.to_string_lossy().into_owned(),
        load_size,
        program: Program::Mapped(data),
        libraries,
    })
}

/// Everything the image holds, in order: directories (every parent of
/// every entry), links, the libraries, the trees, the program.
fn manifest(
    binary: &Path,
    exec: &Path,
    data: &[u8],
    include: &[PathBuf],
) -> Result<(Vec<Entry>, Vec<PathBuf>)> {
    let tree = deps::Tree::host();
    let elf = Elf::parse(data).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
    let mut need = deps::closure(&tree, exec, &elf)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", binary.display()))?;
    // The program itself, through whatever links its path has.
    let me = tree
        .resolve(exec)
        .with_context(|| format!("cannot resolve {}", exec.display()))?;
    need.links.extend(me.links.iter().cloned());
    need.files.remove(&me.real);
    // Trees taken whole: what the interpreter reads at start, and --include.
    let mut trees: Vec<PathBuf> = interpreter_trees(&me.real);
    for i in include {
        let abs = std::path::absolute(i).with_context(|| format!("--include {}", i.display()))?;
        std::fs::symlink_metadata(&abs).with_context(|| format!("--include {}", i.display()))?;
        trees.push(abs);
    }
    // The shared objects in those trees (Python's extension modules) bring
    // their own libraries.
    let mut tree_entries = Vec::new();
    for t in &trees {
        walk(t, &mut tree_entries)?;
    }
    for e in &tree_entries {
        if let Entry::File(_, host, _) = e {
            if host.to_string_lossy().contains(".so") {
                if let Ok(bytes) = std::fs::read(host) {
                    if let Ok(elf) = Elf::parse(&bytes) {
                        need.add_libraries_of(&tree, host, &elf);
                    }
                }
            }
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    let parents_of = |p: &Path, dirs: &mut std::collections::BTreeSet<PathBuf>| {
        let mut d = p.parent();
        while let Some(x) = d.filter(|x| *x != Path::new("/")) {
            dirs.insert(x.to_path_buf());
            d = x.parent();
        }
    };
    for p in need
        .files
        .iter()
        .chain(need.links.iter().map(|(l, _)| l))
        .chain(trees.iter())
        .chain(std::iter::once(&me.real))
    {
        parents_of(p, &mut dirs);
    }
    let mut out: Vec<Entry> = dirs.iter().cloned().map(Entry::Dir).collect();
    out.push(Entry::Dir("/tmp".into()));
    for (l, t) in &need.links {
        if !dirs.contains(l) {
            out.push(Entry::Link(l.clone(), t.clone()));
        }
    }
    for f in &need.files {
        out.push(Entry::File(f.clone(), tree.host_path(f), 0o755));
    }
    let taken: std::collections::BTreeSet<PathBuf> = out
        .iter()
        .map(|e| match e {
            Entry::Dir(p) | Entry::Link(p, _) | Entry::File(p, ..) => p.clone(),
        })
        .chain(std::iter::once(me.real.clone()))
        .collect();
    // The program and its libraries before the trees: the library OS finds
    // the loader and the program by walking the archive from its start.
    out.push(Entry::File(me.real.clone(), binary.to_path_buf(), 0o755));
    out.extend(tree_entries.into_iter().filter(|e| match e {
        Entry::Dir(p) | Entry::Link(p, _) | Entry::File(p, ..) => !taken.contains(p),
    }));
    Ok((out, need.files.iter().cloned().collect()))
}

/// Entries for host path `root` (a file, a link or a directory, recursively
/// and sorted), at the same paths in the guest.
fn walk(root: &Path, out: &mut Vec<Entry>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(root)
        .with_context(|| format!("cannot stat {}", root.display()))?;
    let ft = m.file_type();
    if ft.is_symlink() {
        let t = std::fs::read_link(root)
            .with_context(|| format!("cannot read link {}", root.display()))?;
        out.push(Entry::Link(root.to_path_buf(), t));
    } else if ft.is_dir() {
        if skip_in_interpreter_tree(root) {
            return Ok(());
        }
        out.push(Entry::Dir(root.to_path_buf()));
        let mut children: Vec<PathBuf> = std::fs::read_dir(root)
            .with_context(|| format!("cannot read {}", root.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot read {}", root.display()))?;
        children.sort();
        for c in children {
            walk(&c, out)?;
        }
    } else if ft.is_file() {
        if m.len() > u32::MAX as u64 {
            anyhow::bail!(
                "{}: files over 4 GiB do not fit a cpio newc rootfs",
                root.display()
            );
        }
        out.push(Entry::File(
            root.to_path_buf(),
            root.to_path_buf(),
            m.permissions().mode() & 0o7777,
        ));
    }
    // Sockets, FIFOs and device nodes are not part of an image.
    Ok(())
}

/// Every host path whose change would change the image: the entries' host
/// files and directories, the library search directories and ld.so's
/// configuration.
fn looked_at(tree: &deps::Tree, entries: &[Entry], include: &[PathBuf]) -> Vec<PathBuf> {
    // The guest's /tmp is made, not taken from the host's, unless an
    // --include takes the host's /tmp (or what holds it) whole.
    let tmp_taken = include.iter().any(|i| {
        let abs = std::path::absolute(i).unwrap_or_else(|_| i.clone());
        Path::new("/tmp").starts_with(abs)
    });
    let mut v: Vec<PathBuf> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Dir(p) if p == Path::new("/tmp") && !tmp_taken => None,
            Entry::Dir(p) | Entry::Link(p, _) => Some(p.clone()),
            Entry::File(_, host, _) => Some(host.clone()),
        })
        .collect();
    v.extend(["/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ld.so.cache"].map(PathBuf::from));
    v.extend(tree.system_dirs().iter().map(PathBuf::from));
    v
}

/// The cache key: what each entry is and which host file version it holds.
fn key_of(entries: &[Entry]) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    h.update(concat!("optivolt-rootfs-3-", env!("CARGO_PKG_VERSION")).as_bytes());
    for e in entries {
        match e {
            Entry::Dir(p) => {
                h.update(b"d\0");
                h.update(p.as_os_str().as_encoded_bytes());
            }
            Entry::Link(p, t) => {
                h.update(b"l\0");
                h.update(p.as_os_str().as_encoded_bytes());
                h.update(b"\0");
                h.update(t.as_os_str().as_encoded_bytes());
            }
            Entry::File(p, host, perm) => {
                h.update(b"f\0");
                h.update(p.as_os_str().as_encoded_bytes());
                let m = std::fs::metadata(host).ok();
                let stamp = m.map(|m| {
                    [
                        m.dev(),
                        m.ino(),
                        m.size(),
                        m.mtime() as u64,
                        m.mtime_nsec() as u64,
                    ]
                });
                for v in stamp
                    .unwrap_or_default()
                    .iter()
                    .chain([*perm as u64].iter())
                {
                    h.update(v.to_le_bytes());
                }
            }
        }
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The archive of `entries` (see [`super::archive`]).
fn write_cpio(entries: &[Entry]) -> Result<Vec<u8>> {
    let members: Vec<Member> = entries
        .iter()
        .map(|e| match e {
            Entry::Dir(p) => Member::Dir {
                path: p.to_string_lossy().into_owned(),
                perm: if p == Path::new("/tmp") {
                    0o1777
                } else {
                    0o755
                },
            },
            Entry::Link(p, t) => Member::Link {
                path: p.to_string_lossy().into_owned(),
                target: t.to_string_lossy().into_owned(),
            },
            Entry::File(p, host, perm) => Member::File {
                path: p.to_string_lossy().into_owned(),
                perm: *perm,
                mtime: mtime_of(host),
                data: Source::Host(host.clone()),
            },
        })
        .collect();
    super::archive::write(&members)
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("optivolt/rootfs"))
}

/// Writes the packed rootfs to the cache (atomically: a temporary file
/// renamed) and maps it; without a usable cache, to an unlinked temporary
/// file.
/// The most the rootfs cache may hold: `$VOLT_CACHE_MAX` (a size such as
/// `2G`), else 4 GiB.
fn cache_limit() -> u64 {
    std::env::var("VOLT_CACHE_MAX")
        .ok()
        .and_then(|s| super::size::parse(&s).ok())
        .unwrap_or(4 << 30)
}

/// Deletes the least recently used archives of the cache in `dir` until
/// it holds at most `limit` bytes, never `keep` (just written). An index
/// whose archive is gone only makes the next run gather again.
fn prune(dir: &Path, keep: &Path, limit: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cpio"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, p) in files {
        if total <= limit {
            break;
        }
        if p != keep && std::fs::remove_file(&p).is_ok() {
            total -= len;
        }
    }
}

fn store(path: Option<&Path>, bytes: &[u8]) -> Result<MappedFile> {
    if let Some(p) = path {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, p).is_ok() {
            if let Ok(f) = MappedFile::open_lazy(p) {
                return Ok(f);
            }
        }
        let _ = std::fs::remove_file(&tmp);
    }
    let tmp = std::env::temp_dir().join(format!("volt-rootfs-{}.cpio", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    let f = MappedFile::open_lazy(&tmp).with_context(|| format!("cannot map {}", tmp.display()));
    let _ = std::fs::remove_file(&tmp);
    f
}

/// The directories an interpreter reads at start, by the name of its real
/// file: `pythonX.Y` gets `/usr/lib/pythonX.Y` (the standard library with
/// `lib-dynload`; `site-packages` and `dist-packages`, third-party code,
/// are left out: add what a script imports with `--include`).
fn interpreter_trees(real: &Path) -> Vec<PathBuf> {
    let Some(name) = real.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let version = name.strip_prefix("python").filter(|v| {
        let mut parts = v.split('.');
        parts.next().is_some_and(|m| m.parse::<u32>().is_ok())
            && parts.next().is_some_and(|m| m.parse::<u32>().is_ok())
            && parts.next().is_none()
    });
    match version {
        Some(v) => [format!("/usr/lib/python{v}")]
            .into_iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect(),
        None => Vec::new(),
    }
}

/// `/usr/lib/pythonX.Y/{site,dist}-packages`: third-party code.
fn skip_in_interpreter_tree(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n == "site-packages" || n == "dist-packages")
        && p.parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python") && n.contains('.'))
        && p.parent().and_then(|d| d.parent()) == Some(Path::new("/usr/lib"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_gets_its_stdlib_and_nothing_third_party() {
        assert_eq!(
            interpreter_trees(Path::new("/usr/bin/bash")),
            Vec::<PathBuf>::new()
        );
        assert!(skip_in_interpreter_tree(Path::new(
            "/usr/lib/python3.11/dist-packages"
        )));
        assert!(!skip_in_interpreter_tree(Path::new(
            "/usr/lib/python3/dist-packages"
        )));
        assert!(!skip_in_interpreter_tree(Path::new(
            "/usr/lib/python3.11/lib-dynload"
        )));
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_archives_within_its_limit() {
        let d = std::env::temp_dir().join(format!("volt-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        for (i, name) in ["old.cpio", "mid.cpio", "new.cpio", "kept.cpio"]
            .iter()
            .enumerate()
        {
            let p = d.join(name);
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(10 * i as u64))
                .unwrap();
        }
        std::fs::write(d.join("x.index"), b"not an archive").unwrap();
        // "old" is the oldest but it was just written: it stays.
        prune(&d, &d.join("old.cpio"), 2500);
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["kept.cpio", "old.cpio", "x.index"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_key_changes_with_a_file_and_not_without() {
        let d = std::env::temp_dir().join(format!("volt-gather-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("a");
        std::fs::write(&f, b"one").unwrap();
        let e = || {
            vec![
                Entry::Dir(d.clone()),
                Entry::File(f.clone(), f.clone(), 0o644),
            ]
        };
        let k1 = key_of(&e());
        assert_eq!(k1, key_of(&e()));
        std::fs::write(&f, b"three").unwrap();
        assert_ne!(k1, key_of(&e()));
        let _ = std::fs::remove_dir_all(&d);
    }
}
