//! Guest memory: one anonymous, lazily backed mapping starting at guest-physical 0.
//!
//! All accesses go through `vm-memory`, which bounds-checks every address and
//! length against the region, so nothing the guest passes can reach host memory
//! outside its RAM.
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::{Error, Result};

/// The guest's RAM.
pub type GuestRam = GuestMemoryMmap<()>;

/// Allocates `size` bytes of guest RAM (MAP_NORESERVE: host pages are only
/// consumed when touched).
pub fn create(size: u64) -> Result<GuestRam> {
    let size =
        usize::try_from(size).map_err(|_| Error::Memory("size does not fit the host".into()))?;
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)])
        .map_err(|e| Error::Memory(e.to_string()))
}

/// Checked read of `len` guest bytes at `addr`; `None` if any byte is outside RAM.
pub fn read_bytes(mem: &GuestRam, addr: u64, len: u64) -> Option<Vec<u8>> {
    let end = addr.checked_add(len)?;
    if len > isize::MAX as u64
        || !mem.address_in_range(GuestAddress(addr))
        || (len > 0 && !mem.address_in_range(GuestAddress(end - 1)))
    {
        return None;
    }
    let mut v = vec![0u8; len as usize];
    mem.read_slice(&mut v, GuestAddress(addr)).ok()?;
    Some(v)
}

/// Checked write of `data` at guest `addr`.
pub fn write_bytes(mem: &GuestRam, addr: u64, data: &[u8]) -> Result<()> {
    mem.write_slice(data, GuestAddress(addr))
        .map_err(|e| Error::Memory(format!("write of {} bytes at {addr:#x}: {e}", data.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let m = create(1 << 20).unwrap();
        write_bytes(&m, 0x1000, b"abc").unwrap();
        assert_eq!(read_bytes(&m, 0x1000, 3).unwrap(), b"abc");
        assert!(read_bytes(&m, (1 << 20) - 2, 3).is_none());
        assert!(read_bytes(&m, u64::MAX - 1, 4).is_none());
        assert!(read_bytes(&m, 1 << 30, 1).is_none());
        assert!(write_bytes(&m, (1 << 20) - 1, b"xy").is_err());
        assert_eq!(read_bytes(&m, 0, 0).unwrap(), b"");
    }
}

/// A plain-old-data wrapper so that the contract's `#[repr(C)]` structs can
/// be read from and written to guest memory with `vm-memory`'s checked
/// accessors.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct Pod<T>(pub T);

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: these contract structs are `#[repr(C)]`, contain only
        // integers and arrays of integers without padding, so every byte
        // pattern is a valid value and reading them from guest memory is sound.
        unsafe impl vm_memory::ByteValued for Pod<$t> {}
    )*};
}

pod!(
    optivolt_abi::boot::BootInfo,
    optivolt_abi::boot::Timestamps,
    optivolt_abi::hypercall::ConsoleWrite,
    optivolt_abi::hypercall::ConsoleRead,
    optivolt_abi::hypercall::Abort,
    optivolt_abi::hypercall::FaultReport,
    optivolt_abi::hypercall::Block,
    optivolt_abi::hypercall::Release,
    optivolt_abi::volume::VolumeCall,
    optivolt_abi::boot::SchedShared,
    optivolt_abi::boot::GuestCounters
);
