//! The fast path of [`super::gather`]: finding which cached rootfs a host
//! binary's image is without gathering it again. An index file, named by
//! the binary, its `--include`s and volt's version, lists the cached
//! archive, the libraries, and every host path the gathering looked at with
//! its device, inode, size and modification time: the files taken, the
//! directories walked (an added or removed file changes its directory's
//! time), the library search directories and ld.so's configuration. It
//! holds only while every one of them still stats the same.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What a host path was when the image was gathered.
fn stamp(p: &Path) -> String {
    match std::fs::symlink_metadata(p) {
        Ok(m) => format!(
            "{} {} {} {} {}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
        Err(_) => "-".into(),
    }
}

/// The index's name for `binary` with `include`.
pub fn name(exec: &Path, include: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    h.update(concat!("optivolt-index-3-", env!("CARGO_PKG_VERSION")).as_bytes());
    for p in std::iter::once(&exec.to_path_buf()).chain(include) {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        h.update(abs.as_os_str().as_encoded_bytes());
        h.update(b"\0");
    }
    let d = h.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// What an index says: the archive's key and the libraries.
pub struct Found {
    pub key: String,
    pub libraries: Vec<PathBuf>,
}

/// Reads the index at `path` and checks every stamp in it.
pub fn check(path: &Path) -> Option<Found> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut key = None;
    let mut libraries = Vec::new();
    for line in text.lines() {
        let (kind, rest) = line.split_once('\t')?;
        match kind {
            "cpio" => key = Some(rest.to_string()),
            "lib" => libraries.push(PathBuf::from(rest)),
            "stat" => {
                let (p, s) = rest.split_once('\t')?;
                if stamp(Path::new(p)) != s {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(Found {
        key: key?,
        libraries,
    })
}

/// Writes the index (best effort: without one the next run gathers again).
/// Paths with a tab or a newline are not indexed.
pub fn write(path: &Path, key: &str, libraries: &[PathBuf], looked_at: &[PathBuf]) {
    let mut out = format!("cpio\t{key}\n");
    let bad = |p: &Path| {
        let s = p.to_string_lossy();
        s.contains('\t') || s.contains('\n')
    };
    for l in libraries {
        if bad(l) {
            return;
        }
        out.push_str(&format!("lib\t{}\n", l.display()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in looked_at {
        if bad(p) {
            return;
        }
        if seen.insert(p) {
            out.push_str(&format!("stat\t{}\t{}\n", p.display(), stamp(p)));
        }
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, out).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_holds_until_a_path_it_names_changes() {
        let d = std::env::temp_dir().join(format!("volt-index-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("lib.so");
        std::fs::write(&f, b"v1").unwrap();
        // (The index outside the walked directory: writing it there would
        // change that directory.)
        let idx = d.with_extension("index");
        write(
            &idx,
            "abc",
            std::slice::from_ref(&f),
            &[f.clone(), d.clone()],
        );
        let found = check(&idx).expect("valid");
        assert_eq!(
            (found.key.as_str(), found.libraries),
            ("abc", vec![f.clone()])
        );
        // A new file in a directory it walked.
        std::fs::write(d.join("new"), b"").unwrap();
        assert!(check(&idx).is_none());
        write(&idx, "abc", &[], std::slice::from_ref(&f));
        assert!(check(&idx).is_some());
        std::fs::write(&f, b"version 2").unwrap();
        assert!(check(&idx).is_none(), "a file it took changed");
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_file(&idx);
    }
}
