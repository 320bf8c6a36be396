//! x86-64 glue for a library OS that lives at CPL 3 (see `docs/architecture.md`).
//!
//! * [`entry`] — the image header, `_start`, the CPL-0 `syscall` stub and the
//!   CPL-3 system-call, exception and interrupt entry code (assembly).
//! * [`hypercall`] — the port-I/O hypercalls.
//! * [`cpu`] — RDTSC, FS base, RDRAND.
pub mod cpu;
pub mod entry;
pub mod hypercall;
