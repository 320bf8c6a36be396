//! Resolution across mounts, against a model of a host directory.
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::*;
use crate::fs::vfs::S_IFREG;

/// A host directory: relative path → what is there.
#[derive(Default)]
struct Model {
    entries: BTreeMap<Vec<u8>, Kind>,
    walks: usize,
}

enum Kind {
    Dir,
    File,
    Link(&'static [u8]),
}

impl Model {
    fn with(list: &[(&str, Kind)]) -> Model {
        let mut m = Model::default();
        for (p, k) in list {
            let k = match k {
                Kind::Dir => Kind::Dir,
                Kind::File => Kind::File,
                Kind::Link(t) => Kind::Link(t),
            };
            m.entries.insert(p.as_bytes().to_vec(), k);
        }
        m
    }
}

fn stat(mode: u32) -> VolumeStat {
    VolumeStat {
        mode,
        ..Default::default()
    }
}

impl Walker for Model {
    fn walk(&mut self, vol: u32, rel: &[u8], nofollow_last: bool) -> R<Walked> {
        assert_eq!(vol, 0);
        assert!(optivolt_abi::volume::valid_relative(rel), "{rel:?}");
        self.walks += 1;
        if rel.is_empty() {
            return Ok(Walked::Found(stat(S_IFDIR | 0o755)));
        }
        let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let mut end = 0;
        for (i, p) in parts.iter().enumerate() {
            end += p.len() + usize::from(i > 0);
            let last = i + 1 == parts.len();
            match self.entries.get(&rel[..end]) {
                None => return Err(ENOENT),
                Some(Kind::Link(t)) if !(last && nofollow_last) => {
                    return Ok(Walked::Link {
                        prefix: end,
                        target: t.to_vec(),
                    })
                }
                Some(Kind::Link(_)) => return Ok(Walked::Found(stat(S_IFLNK | 0o777))),
                Some(Kind::File) if !last => return Err(ENOTDIR),
                Some(Kind::File) => return Ok(Walked::Found(stat(S_IFREG | 0o644))),
                Some(Kind::Dir) => {
                    if last {
                        return Ok(Walked::Found(stat(S_IFDIR | 0o755)));
                    }
                }
            }
        }
        unreachable!()
    }
}

/// A VFS with /etc/passwd, /srv, and volume 0 on /data.
fn setup() -> Vfs {
    let mut fs = Vfs::new(0);
    let etc = fs.mkdir(ROOT, b"etc", 0o755).unwrap();
    fs.create(etc, b"passwd", 0o644).unwrap();
    let data = fs.mkdir(ROOT, b"data", 0o755).unwrap();
    fs.mkdir(ROOT, b"srv", 0o755).unwrap();
    fs.symlink(ROOT, b"d", b"/data/sub").unwrap();
    fs.mount(data, 0).unwrap();
    fs
}

fn model() -> Model {
    Model::with(&[
        ("sub", Kind::Dir),
        ("sub/f", Kind::File),
        ("up", Kind::Link(b"..")),
        ("abs", Kind::Link(b"/etc/passwd")),
        ("rel", Kind::Link(b"sub/f")),
        ("loop", Kind::Link(b"loop")),
        ("sub/back", Kind::Link(b"../../etc")),
    ])
}

fn host(rel: &str) -> HostPath {
    HostPath {
        vol: 0,
        rel: rel.as_bytes().to_vec(),
    }
}

fn go(fs: &Vfs, m: &mut Model, path: &str, follow: bool) -> R<Loc> {
    resolve(fs, m, &Loc::Mem(ROOT), path.as_bytes(), follow)
}

fn host_of(l: R<Loc>) -> HostPath {
    match l {
        Ok(Loc::Host(h, _)) => h,
        other => panic!("not in the volume: {other:?}"),
    }
}

#[test]
fn plain_paths_in_a_volume_take_one_walk() {
    let fs = setup();
    let mut m = model();
    assert_eq!(host_of(go(&fs, &mut m, "/data/sub/f", true)), host("sub/f"));
    assert_eq!(m.walks, 1);
    assert_eq!(host_of(go(&fs, &mut m, "/data", true)), host(""));
    assert_eq!(go(&fs, &mut m, "/data/nope", true), Err(ENOENT));
    assert_eq!(go(&fs, &mut m, "/data/sub/f/x", true), Err(ENOTDIR));
    assert_eq!(go(&fs, &mut m, "/data/sub/f/", true), Err(ENOTDIR));
}

#[test]
fn dotdot_at_the_root_of_a_volume_leaves_it() {
    let fs = setup();
    let mut m = model();
    let etc = fs.lookup(ROOT, b"/etc/passwd", true).unwrap();
    assert_eq!(
        go(&fs, &mut m, "/data/../etc/passwd", true),
        Ok(Loc::Mem(etc))
    );
    assert_eq!(
        go(&fs, &mut m, "/data/sub/../../etc/passwd", true),
        Ok(Loc::Mem(etc))
    );
    // Many `..` never climb above the guest's root, and never into the host.
    assert_eq!(
        go(&fs, &mut m, "/data/sub/../../../../../etc/passwd", true),
        Ok(Loc::Mem(etc))
    );
}

#[test]
fn symlinks_in_a_volume_mean_what_they_mean_in_the_guest() {
    let fs = setup();
    let mut m = model();
    let passwd = fs.lookup(ROOT, b"/etc/passwd", true).unwrap();
    // An absolute target is the guest's /etc/passwd, not the host's.
    assert_eq!(go(&fs, &mut m, "/data/abs", true), Ok(Loc::Mem(passwd)));
    // Not followed: the link itself, in the volume.
    assert_eq!(host_of(go(&fs, &mut m, "/data/abs", false)), host("abs"));
    assert_eq!(host_of(go(&fs, &mut m, "/data/rel", true)), host("sub/f"));
    // `up` → `..` from the volume's root: the directory it is mounted on.
    assert_eq!(
        go(&fs, &mut m, "/data/up/etc/passwd", true),
        Ok(Loc::Mem(passwd))
    );
    assert_eq!(
        go(&fs, &mut m, "/data/sub/back/passwd", true),
        Ok(Loc::Mem(passwd))
    );
    assert_eq!(go(&fs, &mut m, "/data/loop", true), Err(ELOOP));
    // A VFS symlink into the volume.
    assert_eq!(host_of(go(&fs, &mut m, "/d/f", true)), host("sub/f"));
}

#[test]
fn relative_paths_start_in_a_volume_directory() {
    let fs = setup();
    let mut m = model();
    let cwd = go(&fs, &mut m, "/data/sub", true).unwrap();
    let r = resolve(&fs, &mut m, &cwd, b"f", true);
    assert_eq!(host_of(r), host("sub/f"));
    let r = resolve(&fs, &mut m, &cwd, b"../..", true);
    assert_eq!(r, Ok(Loc::Mem(ROOT)));
    let (dir, name) = resolve_parent(&fs, &mut m, &cwd, b"new").unwrap();
    assert_eq!(name, b"new");
    assert!(matches!(dir, Loc::Host(ref h, _) if *h == host("sub")));
}

#[test]
fn mount_points_cannot_be_removed_or_renamed() {
    let mut fs = setup();
    assert_eq!(fs.rmdir(ROOT, b"data"), Err(EBUSY));
    assert_eq!(fs.rename(ROOT, b"data", ROOT, b"x"), Err(EBUSY));
    assert_eq!(fs.rename(ROOT, b"srv", ROOT, b"data"), Err(EBUSY));
}

#[test]
fn without_mounts_resolution_is_the_vfs_lookup() {
    let mut fs = Vfs::new(0);
    let etc = fs.mkdir(ROOT, b"etc", 0o755).unwrap();
    let f = fs.create(etc, b"f", 0o644).unwrap();
    let mut m = model();
    assert_eq!(go(&fs, &mut m, "/etc/f", true), Ok(Loc::Mem(f)));
    assert_eq!(m.walks, 0);
}
