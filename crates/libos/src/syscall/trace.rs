//! strace-style formatting of system calls for `--trace-syscalls`.

use core::fmt::{self, Write};

use super::table;
use crate::errno;
use crate::uapi::unistd;

/// How many arguments a call takes (so the trace shows no junk registers):
/// its row's arity, all six for calls without a row.
pub fn arity(nr: u64) -> usize {
    table::lookup(nr).map_or(6, |r| r.arity as usize)
}

/// Which arguments of a call are paths (printed as strings, as strace does).
pub fn path_args(nr: u64) -> &'static [usize] {
    table::lookup(nr).map_or(&[], |r| r.paths)
}

/// Writes `name(arg, …) = result`, fetching path arguments with `fetch`
/// (`None` when unreadable: the pointer is shown).
pub fn format_call_with<W: Write>(
    out: &mut W,
    nr: u64,
    args: &[u64; 6],
    ret: i64,
    mut fetch: impl FnMut(u64) -> Option<alloc::vec::Vec<u8>>,
) -> fmt::Result {
    let paths = path_args(nr);
    match unistd::name(nr) {
        Some(n) => write!(out, "{n}(")?,
        None => write!(out, "syscall_{nr}(")?,
    }
    for (i, a) in args.iter().take(arity(nr)).enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        if i == 0 && *a as u32 as i32 == -100 && paths.iter().any(|&p| p > 0) {
            out.write_str("AT_FDCWD")?;
            continue;
        }
        if paths.contains(&i) {
            if let Some(p) = fetch(*a) {
                out.write_char('"')?;
                for &c in p.iter().take(96) {
                    match c {
                        b'"' | b'\\' => write!(out, "\\{}", c as char)?,
                        0x20..=0x7e => out.write_char(c as char)?,
                        _ => write!(out, "\\x{c:02x}")?,
                    }
                }
                out.write_str(if p.len() > 96 { "\"..." } else { "\"" })?;
                continue;
            }
        }
        let signed = *a as i64;
        if (-4096..4096).contains(&signed) {
            write!(out, "{signed}")?;
        } else {
            write!(out, "{a:#x}")?;
        }
    }
    if (-4095..0).contains(&ret) {
        writeln!(out, ") = -1 {} ({})", errno::name(-ret), -ret)
    } else if ret > 0xffff {
        writeln!(out, ") = {ret:#x}")
    } else {
        writeln!(out, ") = {ret}")
    }
}

/// Writes `name(arg, …) = result` (with the errno name for failures).
pub fn format_call<W: Write>(out: &mut W, nr: u64, args: &[u64; 6], ret: i64) -> fmt::Result {
    format_call_with(out, nr, args, ret, |_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_strace() {
        let mut s = String::new();
        format_call(&mut s, unistd::WRITE, &[1, 0x7ffc_0000, 12, 9, 9, 9], 12).unwrap();
        assert_eq!(s, "write(1, 0x7ffc0000, 12) = 12\n");
        let mut s = String::new();
        format_call(
            &mut s,
            unistd::RSEQ,
            &[0x1000, 32, 0, 0x53053053, 0, 0],
            -errno::ENOSYS,
        )
        .unwrap();
        assert_eq!(s, "rseq(0x1000, 32, 0, 0x53053053) = -1 ENOSYS (38)\n");
        let mut s = String::new();
        format_call(&mut s, 9999, &[0; 6], 0).unwrap();
        assert!(s.starts_with("syscall_9999("));
    }

    #[test]
    fn paths_are_shown_as_strings() {
        let mut s = String::new();
        let fetch = |p: u64| (p == 0x1000).then(|| b"/etc/a \"b\"\n".to_vec());
        format_call_with(
            &mut s,
            unistd::OPENAT,
            &[(-100i64) as u64, 0x1000, 0, 0, 0, 0],
            -errno::ENOENT,
            fetch,
        )
        .unwrap();
        assert_eq!(
            s,
            "openat(AT_FDCWD, \"/etc/a \\\"b\\\"\\x0a\", 0, 0) = -1 ENOENT (2)\n"
        );
        let mut s = String::new();
        format_call_with(&mut s, unistd::OPEN, &[0x2000, 0, 0, 0, 0, 0], 3, |_| None).unwrap();
        assert_eq!(s, "open(0x2000, 0, 0) = 3\n");
    }
}
