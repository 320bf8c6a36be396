//! Linux's user-space ABI as constants, in one place (gVisor's `abi/linux`):
//! system-call numbers, and the flags and values the handlers decode.
pub mod fcntl;
pub mod poll;
pub mod signal;
pub mod socket;
pub mod unistd;
