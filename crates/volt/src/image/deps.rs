//! What a dynamically linked program needs besides itself: its loader
//! (PT_INTERP) and the shared libraries of its DT_NEEDED entries, taken
//! recursively, found the way glibc's ld.so finds them:
//!
//! 1. a name with a `/` is a path;
//! 2. DT_RPATH of the object that needs it (and of the program), unless
//!    that object has a DT_RUNPATH;
//! 3. DT_RUNPATH of the object;
//! 4. the directories of `/etc/ld.so.conf` and the files it includes (what
//!    `ldconfig` puts in `/etc/ld.so.cache`);
//! 5. the default directories: `/lib/x86_64-linux-gnu`,
//!    `/usr/lib/x86_64-linux-gnu`, `/lib64`, `/usr/lib64`, `/lib`, `/usr/lib`.
//!
//! `$ORIGIN` (and `${ORIGIN}`) stands for the directory of the object.
//! Candidates that are not x86-64 ELF files are skipped, as ld.so skips
//! them. Paths are guest paths; a [`Tree`] says where each is on the host
//! (the host itself, or a `--rootfs` directory) and which symbolic links
//! lead there, so that the image can hold the same links.
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use optivolt_abi::elf::Elf;

const PT_DYNAMIC: u32 = 2;
const DT_NULL: i64 = 0;
const DT_NEEDED: i64 = 1;
const DT_STRTAB: i64 = 5;
const DT_STRSZ: i64 = 10;
const DT_RPATH: i64 = 15;
const DT_RUNPATH: i64 = 29;

const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The dynamic section's strings that matter for finding libraries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
}

/// Reads DT_NEEDED, DT_RPATH and DT_RUNPATH (none for a static program).
pub fn dynamic(elf: &Elf<'_>) -> Result<Dynamic> {
    let data = elf.data();
    let Some(dynh) = elf.program_headers().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(Dynamic::default());
    };
    let bad = || anyhow::anyhow!("malformed dynamic section");
    let start = usize::try_from(dynh.p_offset).map_err(|_| bad())?;
    let len = usize::try_from(dynh.p_filesz).map_err(|_| bad())?;
    let table = data
        .get(start..start.checked_add(len).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let mut entries = Vec::new();
    let (mut strtab, mut strsz) = (None, None);
    for e in table.chunks_exact(16) {
        let tag = i64::from_le_bytes(e[..8].try_into().map_err(|_| bad())?);
        let val = u64::from_le_bytes(e[8..].try_into().map_err(|_| bad())?);
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_NEEDED | DT_RPATH | DT_RUNPATH => entries.push((tag, val)),
            _ => {}
        }
    }
    if entries.is_empty() {
        return Ok(Dynamic::default());
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        bail!("dynamic section without a string table");
    };
    // DT_STRTAB is an address: find the file bytes of the segment holding it.
    let off = elf
        .load_segments()
        .find(|p| strtab >= p.p_vaddr && strtab < p.p_vaddr.saturating_add(p.p_filesz))
        .map(|p| strtab - p.p_vaddr + p.p_offset)
        .ok_or_else(bad)?;
    let off = usize::try_from(off).map_err(|_| bad())?;
    let size = usize::try_from(strsz).map_err(|_| bad())?;
    let strings = data
        .get(off..off.checked_add(size).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let string = |at: u64| -> Result<String> {
        let s = strings.get(at as usize..).ok_or_else(bad)?;
        let end = s.iter().position(|&b| b == 0).ok_or_else(bad)?;
        Ok(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let mut d = Dynamic::default();
    for (tag, val) in entries {
        let s = string(val)?;
        let list = || s.split(':').filter(|x| !x.is_empty()).map(String::from);
        match tag {
            DT_NEEDED => d.needed.push(s.clone()),
            DT_RPATH => d.rpath.extend(list()),
            _ => d.runpath.extend(list()),
        }
    }
    Ok(d)
}

/// Where guest paths are on the host: the host's own `/` or a rootfs.
pub struct Tree {
    root: PathBuf,
    /// The system's library directories, read once (see [`Tree::system_dirs`]).
    system: std::cell::OnceCell<Vec<String>>,
}

/// A guest path resolved on the host: the symbolic links walked through
/// (guest path → target) and the guest path of the file reached.
#[derive(Debug, Default)]
pub struct Resolved {
    pub links: Vec<(PathBuf, PathBuf)>,
    pub real: PathBuf,
}

impl Tree {
    pub fn host() -> Tree {
        Self::rootfs(Path::new("/"))
    }

    pub fn rootfs(root: &Path) -> Tree {
        Tree {
            root: root.into(),
            system: std::cell::OnceCell::new(),
        }
    }

    /// Where ld.so looks after a library's own paths: the directories of
    /// `/etc/ld.so.conf` (with its `include`s), then the default ones.
    pub fn system_dirs(&self) -> &[String] {
        self.system.get_or_init(|| {
            let mut dirs = self.ld_so_conf();
            dirs.extend(DEFAULT_DIRS.iter().map(|s| s.to_string()));
            dirs
        })
    }

    /// The host path of guest path `p` (no links followed).
    pub fn host_path(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// Follows `path` (absolute) as the guest's kernel would, never leaving
    /// the tree; `None` if something is missing or the links loop.
    pub fn resolve(&self, path: &Path) -> Option<Resolved> {
        let mut out = Resolved::default();
        let mut cur = PathBuf::from("/");
        let mut todo: Vec<std::ffi::OsString> = components(path);
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let meta = std::fs::symlink_metadata(self.host_path(&next)).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = std::fs::read_link(self.host_path(&next)).ok()?;
                out.links.push((next, target.clone()));
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                todo.extend(components(&target));
            } else {
                cur = next;
            }
        }
        out.real = cur;
        Some(out)
    }

    /// The directories `/etc/ld.so.conf` lists, with its `include`s.
    fn ld_so_conf(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        self.read_conf(Path::new("/etc/ld.so.conf"), &mut dirs, 0);
        dirs
    }

    fn read_conf(&self, file: &Path, dirs: &mut Vec<String>, depth: u32) {
        let Ok(text) = std::fs::read_to_string(self.host_path(file)) else {
            return;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pattern) = line.strip_prefix("include") {
                if depth < 8 {
                    for f in self.glob(pattern.trim(), file) {
                        self.read_conf(&f, dirs, depth + 1);
                    }
                }
            } else if line.starts_with('/') {
                dirs.push(line.to_string());
            }
        }
    }

    /// `include` patterns: a path whose last component may hold `*`.
    fn glob(&self, pattern: &str, from: &Path) -> Vec<PathBuf> {
        let p = Path::new(pattern);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            from.parent().unwrap_or(Path::new("/")).join(p)
        };
        let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
            return Vec::new();
        };
        let Some((pre, post)) = name.split_once('*') else {
            return vec![p.clone()];
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.host_path(dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                (n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len())
                    .then(|| dir.join(n))
            })
            .collect();
        found.sort();
        found
    }
}

fn components(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Everything a program needs in its image, as guest paths.
#[derive(Debug, Default)]
pub struct Closure {
    /// Regular files: the loader and the libraries (not the program).
    pub files: BTreeSet<PathBuf>,
    /// Symbolic links met on the way, with their targets.
    pub links: BTreeSet<(PathBuf, PathBuf)>,
    /// The DT_NEEDED names already looked for.
    names: BTreeSet<String>,
}

impl Closure {
    fn add(&mut self, r: &Resolved) {
        self.links.extend(r.links.iter().cloned());
        self.files.insert(r.real.clone());
    }
}

/// Whether `data` is an x86-64 ELF file ld.so could load.
fn loadable(data: &[u8]) -> bool {
    Elf::parse(data).is_ok()
}

/// The loader and libraries `program` (at guest path `exec`) needs, found
/// in `tree`; a library or loader that cannot be found is an error naming it.
pub fn closure(tree: &Tree, exec: &Path, program: &Elf<'_>) -> Result<Closure> {
    let mut c = Closure::default();
    let Some(interp) = program.interpreter() else {
        return Ok(c);
    };
    let interp = String::from_utf8_lossy(interp).into_owned();
    let r = tree
        .resolve(Path::new(&interp))
        .filter(|r| tree.host_path(&r.real).is_file())
        .with_context(|| format!("its dynamic loader {interp} (PT_INTERP) is not there"))?;
    c.add(&r);
    let top = dynamic(program).with_context(|| format!("{}", exec.display()))?;
    let exec_dir = exec.parent().unwrap_or(Path::new("/")).to_path_buf();
    let top_rpath = if top.runpath.is_empty() {
        origin(&top.rpath, &exec_dir)
    } else {
        Vec::new()
    };
    c.add_needed(tree, exec, &top, &top_rpath, true)?;
    Ok(c)
}

impl Closure {
    /// Adds the libraries shared object `object` (a guest path in `tree`)
    /// needs, as far as they are found: for modules an interpreter may load
    /// (Python's `lib-dynload`), where a missing library fails only that
    /// module's import, natively too.
    pub fn add_libraries_of(&mut self, tree: &Tree, object: &Path, elf: &Elf<'_>) {
        if let Ok(d) = dynamic(elf) {
            let _ = self.add_needed(tree, object, &d, &[], false);
        }
    }

    /// Finds `d.needed` and what they need in turn; with `strict`, the first
    /// library not found is an error.
    fn add_needed(
        &mut self,
        tree: &Tree,
        by: &Path,
        d: &Dynamic,
        top_rpath: &[String],
        strict: bool,
    ) -> Result<()> {
        let dir = by.parent().unwrap_or(Path::new("/")).to_path_buf();
        // (needed name, the object that needs it, its lists, its directory)
        let mut todo: Vec<(String, PathBuf, Dynamic, PathBuf)> = d
            .needed
            .iter()
            .rev()
            .map(|n| (n.clone(), by.to_path_buf(), clone_dyn(d), dir.clone()))
            .collect();
        while let Some((name, by, d, dir)) = todo.pop() {
            if !self.names.insert(name.clone()) {
                continue;
            }
            let mut dirs: Vec<String> = Vec::new();
            if d.runpath.is_empty() {
                dirs.extend(origin(&d.rpath, &dir));
                dirs.extend(top_rpath.iter().cloned());
            }
            dirs.extend(origin(&d.runpath, &dir));
            dirs.extend(tree.system_dirs().iter().cloned());
            let candidates: Vec<PathBuf> = if name.contains('/') {
                vec![PathBuf::from(&name)]
            } else {
                dirs.iter().map(|d| Path::new(d).join(&name)).collect()
            };
            let found = candidates.iter().find_map(|p| {
                let r = tree.resolve(p)?;
                let data = std::fs::read(tree.host_path(&r.real)).ok()?;
                loadable(&data).then_some((r, data))
            });
            let Some((r, data)) = found else {
                if !strict {
                    continue;
                }
                bail!(
                    "library {name} not found (needed by {}; looked in {})",
                    by.display(),
                    dirs.join(":")
                );
            };
            self.add(&r);
            let elf =
                Elf::parse(&data).map_err(|e| anyhow::anyhow!("{}: {e}", r.real.display()))?;
            let sub = dynamic(&elf).with_context(|| format!("{}", r.real.display()))?;
            let sub_dir = r.real.parent().unwrap_or(Path::new("/")).to_path_buf();
            for n in sub.needed.iter().rev() {
                todo.push((n.clone(), r.real.clone(), clone_dyn(&sub), sub_dir.clone()));
            }
        }
        Ok(())
    }
}

fn clone_dyn(d: &Dynamic) -> Dynamic {
    Dynamic {
        needed: Vec::new(),
        rpath: d.rpath.clone(),
        runpath: d.runpath.clone(),
    }
}

/// Substitutes `$ORIGIN` in each directory.
fn origin(dirs: &[String], dir: &Path) -> Vec<String> {
    let o = dir.to_string_lossy();
    dirs.iter()
        .map(|d| d.replace("${ORIGIN}", &o).replace("$ORIGIN", &o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_binary(p: &str) -> Option<Vec<u8>> {
        std::fs::read(p).ok()
    }

    #[test]
    fn a_host_program_needs_libc_and_its_loader() {
        let Some(data) = host_binary("/bin/true") else {
            eprintln!("deps: SKIPPING: no /bin/true");
            return;
        };
        let elf = Elf::parse(&data).expect("ELF");
        let d = dynamic(&elf).expect("dynamic");
        assert!(d.needed.iter().any(|n| n.starts_with("libc.so")), "{d:?}");
        let c = closure(&Tree::host(), Path::new("/bin/true"), &elf).expect("closure");
        assert!(
            c.files
                .iter()
                .any(|f| f.to_string_lossy().contains("libc.so")),
            "{c:?}"
        );
        assert!(
            c.files
                .iter()
                .any(|f| f.to_string_lossy().contains("ld-linux-x86-64")),
            "{c:?}"
        );
        for f in &c.files {
            assert!(Path::new(f).is_file(), "{}", f.display());
        }
    }

    #[test]
    fn a_missing_library_is_named() {
        let Some(data) = host_binary("/bin/true") else {
            return;
        };
        let elf = Elf::parse(&data).expect("ELF");
        // An empty tree: not even the loader is there.
        let empty = std::env::temp_dir().join(format!("volt-deps-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("dir");
        let err = closure(&Tree::rootfs(&empty), Path::new("/bin/true"), &elf)
            .expect_err("nothing is there");
        assert!(format!("{err:#}").contains("dynamic loader"), "{err:#}");
        // The loader alone: libc is missing, and named.
        let r = Tree::host()
            .resolve(Path::new(
                &String::from_utf8_lossy(elf.interpreter().expect("interp")).into_owned(),
            ))
            .expect("host loader");
        let dest = empty.join(r.real.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("dirs");
        std::fs::copy(&r.real, &dest).expect("copy");
        for (l, t) in &r.links {
            let at = empty.join(l.strip_prefix("/").expect("absolute"));
            std::fs::create_dir_all(at.parent().expect("parent")).expect("dirs");
            let _ = std::os::unix::fs::symlink(t, &at);
        }
        let err =
            closure(&Tree::rootfs(&empty), Path::new("/bin/true"), &elf).expect_err("no libc");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("library libc.so.6 not found (needed by /bin/true"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn origin_is_the_objects_directory() {
        assert_eq!(
            origin(
                &["$ORIGIN/../lib".into(), "${ORIGIN}".into()],
                Path::new("/opt/app/bin")
            ),
            ["/opt/app/bin/../lib", "/opt/app/bin"]
        );
    }
}
