//! What the library OS does with each Linux system call (the `status` of a
//! row of [`super::table`]). `docs/syscalls.md` is generated from the rows
//! and the kernel's own numbering; a unit test fails when it is stale.

/// Support level of a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Implemented with Linux semantics.
    Full,
    /// Implemented; the note says what is missing.
    Partial(&'static str),
    /// Deliberately refused with the error in the note.
    Refused(&'static str),
    /// Not implemented (ENOSYS); the row is there for the tracer.
    Missing,
}

use super::table::ROWS;
use Status::*;

/// The status of `name`, `None` for calls that return ENOSYS.
pub fn status(name: &str) -> Option<Status> {
    ROWS.iter()
        .find(|r| r.name == name)
        .map(|r| r.status)
        .filter(|s| *s != Missing)
}

/// The text of `docs/syscalls.md`.
#[cfg(test)]
pub fn document() -> String {
    use core::fmt::Write;
    let mut out = String::new();
    let count = |f: fn(&Status) -> bool| ROWS.iter().filter(|r| f(&r.status)).count();
    let full = count(|s| *s == Full);
    let partial = count(|s| matches!(s, Partial(_)));
    let refused = count(|s| matches!(s, Refused(_)));
    let total = crate::uapi::unistd::ALL.len();
    let _ = writeln!(out, "# Linux system calls in OptiVolt\n");
    let _ = writeln!(
        out,
        "Generated from the kernel's x86-64 table (`<asm/unistd_64.h>`, see `tools/gen-syscall-table.py`) and \
         the rows of `crates/libos/src/syscall/table.rs` by `UPDATE_DOCS=1 cargo test -p optivolt-libos syscall_document`; \
         a test fails when this file is stale.\n"
    );
    let _ = writeln!(
        out,
        "{full} implemented, {partial} partially implemented, {refused} refused by design, {} not implemented (ENOSYS; \
         shown by `volt run --trace-syscalls`), of {total}.\n",
        total - full - partial - refused
    );
    let _ = writeln!(out, "| nr | name | status | notes |\n|---|---|---|---|");
    for (nr, name) in crate::uapi::unistd::ALL {
        let (st, note) = match status(name) {
            Some(Full) => ("implemented", ""),
            Some(Partial(n)) => ("partial", n),
            Some(Refused(n)) => ("refused", n),
            Some(Missing) | None => ("ENOSYS", ""),
        };
        let _ = writeln!(out, "| {nr} | `{name}` | {st} | {note} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/syscalls.md");
        let want = document();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "docs/syscalls.md is stale: run UPDATE_DOCS=1 cargo test -p optivolt-libos syscall_document");
    }
}
