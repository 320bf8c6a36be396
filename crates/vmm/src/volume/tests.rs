//! The host end of volumes: confinement, read-only volumes, bad guest input.
use std::os::unix::fs::symlink;

use super::*;
use optivolt_abi::hypercall::Segment;

const ARGS: u64 = 0x1000;
const PATH: u64 = 0x2000;
const PATH2: u64 = 0x3000;
const BUF: u64 = 0x4000;

struct Fixture {
    _dir: tempdir::Dir,
    root: PathBuf,
    outside: PathBuf,
    mem: GuestRam,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn fixture(name: &str) -> Fixture {
    let base = std::env::temp_dir().join(format!("ov-vol-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("vol");
    let outside = base.join("secret");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(&outside, b"host secret").unwrap();
    std::fs::write(root.join("sub/f"), b"hello").unwrap();
    symlink(&outside, root.join("abs")).unwrap();
    symlink("../secret", root.join("rel")).unwrap();
    symlink("..", root.join("sub/up")).unwrap();
    Fixture {
        _dir: tempdir::Dir(base),
        root,
        outside,
        mem: crate::memory::create(1 << 20).unwrap(),
    }
}

impl Fixture {
    fn volumes(&self, readonly: bool) -> Volumes {
        Volumes::open(&[VolumeConfig {
            host: self.root.clone(),
            guest: "/data".into(),
            readonly,
        }])
        .unwrap()
    }

    fn call(&self, v: &mut Volumes, mut c: VolumeCall, path: &[u8], path2: &[u8]) -> VolumeCall {
        crate::memory::write_bytes(&self.mem, PATH, path).unwrap();
        crate::memory::write_bytes(&self.mem, PATH2, path2).unwrap();
        c.path = Segment {
            addr: PATH,
            len: path.len() as u64,
        };
        c.path2 = Segment {
            addr: PATH2,
            len: path2.len() as u64,
        };
        if c.buf.len == 0 {
            c.buf = Segment {
                addr: BUF,
                len: 4096,
            };
        }
        self.mem.write_obj(Pod(c), GuestAddress(ARGS)).unwrap();
        v.serve(&self.mem, ARGS).unwrap();
        self.mem
            .read_obj::<Pod<VolumeCall>>(GuestAddress(ARGS))
            .unwrap()
            .0
    }

    fn op(&self, v: &mut Volumes, o: u32, path: &[u8], flags: u64) -> i64 {
        let c = VolumeCall {
            op: o,
            flags,
            ..Default::default()
        };
        self.call(v, c, path, b"").result
    }

    fn read(&self, v: &mut Volumes, handle: u64) -> Vec<u8> {
        let c = VolumeCall {
            op: op::READ,
            handle,
            ..Default::default()
        };
        let r = self.call(v, c, b"", b"");
        assert!(r.result >= 0, "read: {}", r.result);
        read_bytes(&self.mem, BUF, r.result as u64).unwrap()
    }
}

#[test]
fn files_inside_are_read_and_written() {
    let f = fixture("rw");
    let mut v = f.volumes(false);
    let h = f.op(&mut v, op::OPEN, b"sub/f", libc::O_RDONLY as u64);
    assert!(h >= 0);
    assert_eq!(f.read(&mut v, h as u64), b"hello");
    let c = VolumeCall {
        op: op::OPEN,
        flags: (libc::O_WRONLY | libc::O_CREAT) as u64,
        mode: 0o640,
        ..Default::default()
    };
    let w = f.call(&mut v, c, b"sub/new", b"").result;
    assert!(w >= 0);
    crate::memory::write_bytes(&f.mem, BUF, b"written").unwrap();
    let c = VolumeCall {
        op: op::WRITE,
        handle: w as u64,
        buf: Segment { addr: BUF, len: 7 },
        ..Default::default()
    };
    assert_eq!(f.call(&mut v, c, b"", b"").result, 7);
    assert_eq!(std::fs::read(f.root.join("sub/new")).unwrap(), b"written");
    assert_eq!(f.op(&mut v, op::MKDIR, b"d", 0), 0);
    assert!(f.root.join("d").is_dir());
    let c = VolumeCall {
        op: op::RENAME,
        ..Default::default()
    };
    assert_eq!(f.call(&mut v, c, b"sub/new", b"d/moved").result, 0);
    assert!(f.root.join("d/moved").exists());
}

#[test]
fn symlinks_are_reported_to_the_guest_never_followed_on_the_host() {
    let f = fixture("links");
    let mut v = f.volumes(false);
    let c = f.call(
        &mut v,
        VolumeCall {
            op: op::WALK,
            ..Default::default()
        },
        b"abs",
        b"",
    );
    assert_eq!(c.result, 1, "a link, for the guest to resolve");
    assert_eq!(c.offset, 3);
    let target = read_bytes(&f.mem, BUF, c.stat.size).unwrap();
    assert_eq!(target, f.outside.as_os_str().as_encoded_bytes());
    let c = f.call(
        &mut v,
        VolumeCall {
            op: op::WALK,
            ..Default::default()
        },
        b"sub/up/rel",
        b"",
    );
    assert_eq!(
        (c.result, c.offset),
        (1, 6),
        "the first link on the way: sub/up"
    );
    // Whatever the guest sends, nothing it opens, reads or changes is outside.
    for p in [&b"abs"[..], b"rel", b"sub/up/secret", b"sub/up/rel"] {
        for flags in [libc::O_RDONLY, libc::O_RDWR, libc::O_WRONLY | libc::O_TRUNC] {
            let r = f.op(&mut v, op::OPEN, p, flags as u64);
            assert!(r < 0, "open {:?} gave a handle", String::from_utf8_lossy(p));
        }
        assert!(f.op(&mut v, op::CHMOD, p, 0) < 0);
    }
    for p in [
        &b".."[..],
        b"../secret",
        b"/etc/passwd",
        b"sub/../..",
        b"./sub",
        b"sub//f",
    ] {
        assert_eq!(
            f.op(&mut v, op::OPEN, p, 0),
            -(libc::EINVAL as i64),
            "{p:?}"
        );
        assert_eq!(
            f.op(&mut v, op::WALK, p, 0),
            -(libc::EINVAL as i64),
            "{p:?}"
        );
        assert!(f.op(&mut v, op::UNLINK, p, 0) < 0);
    }
    // A link made by the guest to outside stays a link: writing through it fails.
    let c = VolumeCall {
        op: op::SYMLINK,
        ..Default::default()
    };
    assert_eq!(f.call(&mut v, c, b"mine", b"/etc/shadow").result, 0);
    let c = VolumeCall {
        op: op::OPEN,
        flags: (libc::O_WRONLY | libc::O_CREAT) as u64,
        ..Default::default()
    };
    assert_eq!(
        f.call(&mut v, c, b"mine", b"").result,
        -(libc::ELOOP as i64)
    );
    assert_eq!(std::fs::read(&f.outside).unwrap(), b"host secret");
}

#[test]
fn a_directory_swapped_for_a_symlink_is_refused() {
    let f = fixture("race");
    let mut v = f.volumes(false);
    // The guest resolved sub/f; then a host process replaces sub with a link out.
    std::fs::rename(f.root.join("sub"), f.root.join("sub.old")).unwrap();
    symlink(f.outside.parent().unwrap(), f.root.join("sub")).unwrap();
    assert_eq!(
        f.op(&mut v, op::OPEN, b"sub/secret", 0),
        -(libc::ELOOP as i64)
    );
    assert_eq!(
        f.op(&mut v, op::UNLINK, b"sub/secret", 0),
        -(libc::ELOOP as i64)
    );
    assert!(f.outside.exists());
}

#[test]
fn read_only_volumes_refuse_every_change() {
    let f = fixture("ro");
    let mut v = f.volumes(true);
    let h = f.op(&mut v, op::OPEN, b"sub/f", libc::O_RDONLY as u64);
    assert_eq!(f.read(&mut v, h as u64), b"hello");
    let erofs = -(libc::EROFS as i64);
    assert_eq!(f.op(&mut v, op::OPEN, b"sub/f", libc::O_RDWR as u64), erofs);
    assert_eq!(
        f.op(
            &mut v,
            op::OPEN,
            b"x",
            (libc::O_WRONLY | libc::O_CREAT) as u64
        ),
        erofs
    );
    for o in [op::MKDIR, op::UNLINK, op::RMDIR, op::CHMOD, op::UTIMES] {
        assert_eq!(f.op(&mut v, o, b"sub/f", 0), erofs, "op {o}");
    }
    let c = VolumeCall {
        op: op::WRITE,
        handle: h as u64,
        buf: Segment { addr: BUF, len: 1 },
        ..Default::default()
    };
    assert_eq!(f.call(&mut v, c, b"", b"").result, erofs);
    assert_eq!(std::fs::read(f.root.join("sub/f")).unwrap(), b"hello");
}

#[test]
fn special_files_are_not_opened() {
    let f = fixture("fifo");
    let mut v = f.volumes(false);
    let p = std::ffi::CString::new(f.root.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o600) }, 0);
    assert_eq!(
        f.op(&mut v, op::OPEN, b"pipe", libc::O_RDONLY as u64),
        -(libc::ENXIO as i64)
    );
}

#[test]
fn bad_handles_and_addresses() {
    let f = fixture("bad");
    let mut v = f.volumes(false);
    assert_eq!(f.op(&mut v, op::CLOSE, b"", 0), -(libc::EBADF as i64));
    let c = VolumeCall {
        op: op::READ,
        handle: 99,
        ..Default::default()
    };
    assert_eq!(f.call(&mut v, c, b"", b"").result, -(libc::EBADF as i64));
    let c = VolumeCall {
        op: op::OPEN,
        volume: 7,
        ..Default::default()
    };
    assert_eq!(
        f.call(&mut v, c, b"sub/f", b"").result,
        -(libc::ENODEV as i64)
    );
    // Buffers and arguments outside guest RAM end the VM, with a message.
    let h = f.op(&mut v, op::OPEN, b"sub/f", 0) as u64;
    for buf in [
        Segment {
            addr: (1 << 20) - 2,
            len: 4,
        },
        Segment {
            addr: u64::MAX - 1,
            len: 8,
        },
    ] {
        let c = VolumeCall {
            op: op::READ,
            handle: h,
            buf,
            ..Default::default()
        };
        f.mem.write_obj(Pod(c), GuestAddress(ARGS)).unwrap();
        assert!(v.serve(&f.mem, ARGS).is_err());
    }
    let c = VolumeCall {
        op: op::WALK,
        path: Segment {
            addr: 0,
            len: 1 << 40,
        },
        ..Default::default()
    };
    f.mem.write_obj(Pod(c), GuestAddress(ARGS)).unwrap();
    assert!(v.serve(&f.mem, ARGS).is_err());
    assert!(v.serve(&f.mem, (1 << 20) - 8).is_err());
    // A guest cannot hold more than MAX_HANDLES files open.
    let mut last = 0;
    for _ in 0..MAX_HANDLES + 1 {
        last = f.op(&mut v, op::OPEN, b"sub/f", 0);
    }
    assert_eq!(last, -(libc::EMFILE as i64));
}

#[test]
fn directories_list_in_pieces() {
    let f = fixture("dir");
    for i in 0..300 {
        std::fs::write(f.root.join(format!("sub/file-{i:03}")), b"").unwrap();
    }
    let mut v = f.volumes(false);
    let h = f.op(
        &mut v,
        op::OPEN,
        b"sub",
        (libc::O_RDONLY | libc::O_DIRECTORY) as u64,
    ) as u64;
    let mut names = Vec::new();
    loop {
        let c = VolumeCall {
            op: op::READDIR,
            handle: h,
            offset: names.len() as u64,
            buf: Segment {
                addr: BUF,
                len: 1024,
            },
            ..Default::default()
        };
        let r = f.call(&mut v, c, b"", b"");
        assert!(r.result >= 0);
        if r.result == 0 {
            break;
        }
        let data = read_bytes(&f.mem, BUF, r.result as u64).unwrap();
        let mut at = 0;
        while at < data.len() {
            let len = u16::from_le_bytes([data[at + 8], data[at + 9]]) as usize;
            names.push(String::from_utf8(data[at + 16..at + 16 + len].to_vec()).unwrap());
            at = (at + 16 + len).div_ceil(8) * 8;
        }
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("file-")).count(), 300);
    assert!(names.contains(&"f".to_string()) && names.contains(&"..".to_string()));
}

#[test]
fn a_missing_volume_is_an_error_before_boot() {
    let f = fixture("missing");
    let e = Volumes::open(&[VolumeConfig {
        host: f.root.join("nope"),
        guest: "/x".into(),
        readonly: false,
    }]);
    assert!(matches!(e, Err(VolumeError::Open(..))));
    let e = Volumes::open(&[VolumeConfig {
        host: f.root.join("sub/f"),
        guest: "/x".into(),
        readonly: false,
    }]);
    assert!(matches!(e, Err(VolumeError::NotDir(..))));
}
