//! The freestanding guest binary: everything lives in the library; this file
//! only makes it a `no_std`, `no_main` executable (see `arch::entry` for `_start`).
#![no_std]
#![no_main]

extern crate optivolt_libos;
