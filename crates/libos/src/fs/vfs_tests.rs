//! Unit tests of the VFS.
use super::*;

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn archive() -> &'static [u8] {
    let mut a = Vec::new();
    let mut add = |name: &str, mode: u32, data: &[u8]| {
        a.extend_from_slice(b"070701");
        for f in [
            1,
            mode,
            0,
            0,
            1,
            7,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ] {
            a.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        a.extend_from_slice(name.as_bytes());
        a.push(0);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
    };
    add("etc/app.conf", S_IFREG | 0o644, b"port=80\n");
    add("bin", S_IFDIR | 0o755, b"");
    add("bin/app", S_IFREG | 0o755, b"\x7fELF");
    add("app", S_IFLNK | 0o777, b"bin/app");
    add("loop", S_IFLNK | 0o777, b"loop");
    add("TRAILER!!!", 0, b"");
    leak(a)
}

#[test]
fn unpacks_and_resolves() {
    let mut fs = Vfs::new(0);
    assert_eq!(fs.unpack(archive()).unwrap(), 5);
    let conf = fs.lookup(ROOT, b"/etc/app.conf", true).unwrap();
    assert_eq!(fs.contents(conf).unwrap(), b"port=80\n");
    assert_eq!(fs.inode(conf).unwrap().mtime, 7);
    let app = fs.lookup(ROOT, b"/app", true).unwrap();
    assert_eq!(app, fs.lookup(ROOT, b"bin/../bin/./app", true).unwrap());
    let link = fs.lookup(ROOT, b"/app", false).unwrap();
    assert_eq!(fs.readlink(link).unwrap(), b"bin/app");
    assert_eq!(fs.lookup(ROOT, b"/loop", true), Err(ELOOP));
    assert_eq!(fs.lookup(ROOT, b"/etc/app.conf/x", true), Err(ENOTDIR));
    assert_eq!(fs.lookup(ROOT, b"/nope", true), Err(ENOENT));
    assert_eq!(fs.lookup(ROOT, b"/etc/app.conf/", true), Err(ENOTDIR));
    assert_eq!(fs.lookup(ROOT, b"/..", true).unwrap(), ROOT);
}

#[test]
fn copy_on_write_and_truncate() {
    let mut fs = Vfs::new(0);
    fs.unpack(archive()).unwrap();
    let conf = fs.lookup(ROOT, b"/etc/app.conf", true).unwrap();
    fs.write(conf, 5, b"8080\n").unwrap();
    assert_eq!(fs.contents(conf).unwrap(), b"port=8080\n");
    fs.write(conf, 12, b"!").unwrap();
    assert_eq!(fs.contents(conf).unwrap(), b"port=8080\n\0\0!");
    fs.truncate(conf, 4).unwrap();
    assert_eq!(fs.contents(conf).unwrap(), b"port");
    let mut b = [0u8; 8];
    assert_eq!(fs.read(conf, 10, &mut b).unwrap(), 0);
}

#[test]
fn create_unlink_rename_rmdir() {
    let mut fs = Vfs::new(0);
    let tmp = fs.mkdir(ROOT, b"tmp", 0o1777).unwrap();
    let a = fs.create(tmp, b"a", 0o644).unwrap();
    assert_eq!(fs.create(tmp, b"a", 0o644), Err(EEXIST));
    fs.write(a, 0, b"A").unwrap();
    let d = fs.mkdir(tmp, b"d", 0o755).unwrap();
    fs.rename(tmp, b"a", d, b"b").unwrap();
    assert_eq!(fs.lookup(ROOT, b"/tmp/a", true), Err(ENOENT));
    assert_eq!(fs.lookup(ROOT, b"/tmp/d/b", true).unwrap(), a);
    assert_eq!(fs.rmdir(tmp, b"d"), Err(ENOTEMPTY));
    assert_eq!(fs.rename(ROOT, b"tmp", d, b"x"), Err(EINVAL)); // into itself
    assert_eq!(fs.unlink(tmp, b"d"), Err(EISDIR));
    fs.unlink(d, b"b").unwrap();
    fs.rmdir(tmp, b"d").unwrap();
    assert_eq!(fs.inode(tmp).unwrap().nlink, 2);
    assert_eq!(fs.path_of(tmp).unwrap(), b"/tmp");
    let names: Vec<_> = fs
        .readdir(ROOT)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b".".to_vec(), b"..".to_vec(), b"tmp".to_vec()]);
}

#[test]
fn rename_over_existing() {
    let mut fs = Vfs::new(0);
    let x = fs.create(ROOT, b"x", 0o644).unwrap();
    fs.create(ROOT, b"y", 0o644).unwrap();
    fs.rename(ROOT, b"x", ROOT, b"y").unwrap();
    assert_eq!(fs.lookup(ROOT, b"y", true).unwrap(), x);
    let d = fs.mkdir(ROOT, b"d", 0o755).unwrap();
    assert_eq!(fs.rename(ROOT, b"y", ROOT, b"d"), Err(EISDIR));
    assert_eq!(fs.rename(ROOT, b"d", ROOT, b"y"), Err(ENOTDIR));
    let (p, n) = fs.lookup_parent(ROOT, b"/d/new").unwrap();
    assert_eq!((p, n), (d, &b"new"[..]));
}

#[test]
fn a_file_is_found_by_its_inode() {
    let mut fs = Vfs::new(0);
    fs.unpack(archive()).unwrap();
    let app = fs.lookup(ROOT, b"/app", true).unwrap();
    assert_eq!(fs.find_path(app).as_deref(), Some(&b"/bin/app"[..]));
    let conf = fs.lookup(ROOT, b"/etc/app.conf", true).unwrap();
    assert_eq!(fs.find_path(conf).as_deref(), Some(&b"/etc/app.conf"[..]));
    assert_eq!(fs.find_path(ROOT).as_deref(), Some(&b"/"[..]));
    assert_eq!(fs.find_path(9999), None);
}
