//! Serving hypercalls. Every address and length the guest passes is checked
//! against guest RAM before it is used; a bad one ends the VM (the guest can
//! crash only itself).
use std::io::Write;

use optivolt_abi::hypercall::{
    self as hc, Abort, ConsoleWrite, FaultReport, ABORT_MSG_MAX, CONSOLE_MAX_SEGS,
};
use vm_memory::{Bytes, GuestAddress};

use crate::memory::{read_bytes, GuestRam, Pod};

/// Most bytes one console hypercall may move (the guest sees a short write beyond).
pub const CONSOLE_MAX_BYTES: u64 = 1 << 20;

/// Why a hypercall was refused. The VM is stopped with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHypercall(pub String);

fn read_args<T>(mem: &GuestRam, pa: u64, what: &str) -> Result<T, BadHypercall>
where
    Pod<T>: vm_memory::ByteValued,
{
    mem.read_obj::<Pod<T>>(GuestAddress(pa))
        .map(|p| p.0)
        .map_err(|_| {
            BadHypercall(format!(
                "{what} arguments at {pa:#x} lie outside guest memory"
            ))
        })
}

/// Where console output goes.
pub trait ConsoleSink {
    /// Writes `data` to host fd 1 or 2.
    fn write(&mut self, fd: u32, data: &[u8]) -> std::io::Result<()>;
}

/// The monitor's own stdout and stderr, flushed on every write so that the
/// guest's output interleaves with the host's in order.
pub struct StdioSink;

impl ConsoleSink for StdioSink {
    fn write(&mut self, fd: u32, data: &[u8]) -> std::io::Result<()> {
        if fd == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(data)?;
            e.flush()
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(data)?;
            o.flush()
        }
    }
}

/// CONSOLE_WRITE: gathers the guest's segments and writes them; stores the
/// byte count (or -errno) back into the argument struct.
pub fn console_write(
    mem: &GuestRam,
    pa: u64,
    sink: &mut dyn ConsoleSink,
) -> Result<(), BadHypercall> {
    let args: ConsoleWrite = read_args(mem, pa, "console write")?;
    if args.fd != 1 && args.fd != 2 {
        return Err(BadHypercall(format!("console write to fd {}", args.fd)));
    }
    if args.nsegs as usize > CONSOLE_MAX_SEGS {
        return Err(BadHypercall(format!(
            "console write with {} segments (at most {CONSOLE_MAX_SEGS})",
            args.nsegs
        )));
    }
    let mut data = Vec::new();
    for s in &args.segs[..args.nsegs as usize] {
        let room = CONSOLE_MAX_BYTES - data.len() as u64;
        let len = s.len.min(room);
        let bytes = read_bytes(mem, s.addr, len).ok_or_else(|| {
            BadHypercall(format!(
                "console write segment {:#x}+{:#x} lies outside guest memory",
                s.addr, s.len
            ))
        })?;
        data.extend_from_slice(&bytes);
        if len < s.len {
            break;
        }
    }
    let result: i64 = match sink.write(args.fd, &data) {
        Ok(()) => data.len() as i64,
        Err(e) => -(e.raw_os_error().unwrap_or(libc::EIO) as i64),
    };
    // `result` is the third field (offset 8) of ConsoleWrite.
    mem.write_obj(result, GuestAddress(pa + 8))
        .map_err(|_| BadHypercall("console write result".into()))
}

/// ABORT: the library OS's message, bounded.
pub fn abort_message(mem: &GuestRam, pa: u64) -> Result<String, BadHypercall> {
    let a: Abort = read_args(mem, pa, "abort")?;
    let len = a.len.min(ABORT_MSG_MAX);
    let bytes = read_bytes(mem, a.msg, len).ok_or_else(|| {
        BadHypercall(format!(
            "abort message {:#x}+{:#x} lies outside guest memory",
            a.msg, a.len
        ))
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// FAULT: the guest's register dump.
pub fn fault_report(mem: &GuestRam, pa: u64) -> Result<FaultReport, BadHypercall> {
    read_args(mem, pa, "fault report")
}

/// RELEASE: drops the host pages behind the guest's ranges (they read back
/// as zero, as fresh anonymous memory does). Returns the bytes released.
pub fn release(mem: &GuestRam, pa: u64) -> Result<u64, BadHypercall> {
    use vm_memory::GuestMemoryBackend;
    let r: optivolt_abi::hypercall::Release = read_args(mem, pa, "release")?;
    if r.count as usize > r.ranges.len() {
        return Err(BadHypercall(format!("release of {} ranges", r.count)));
    }
    let mut total = 0;
    for s in &r.ranges[..r.count as usize] {
        if s.addr % 4096 != 0 || s.len % 4096 != 0 || s.len == 0 {
            return Err(BadHypercall(format!(
                "release of unaligned range {:#x}+{:#x}",
                s.addr, s.len
            )));
        }
        let end = s
            .addr
            .checked_add(s.len)
            .ok_or_else(|| BadHypercall("release range overflows".into()))?;
        if !mem.address_in_range(GuestAddress(s.addr))
            || !mem.address_in_range(GuestAddress(end - 1))
        {
            return Err(BadHypercall(format!(
                "release range {:#x}+{:#x} lies outside guest memory",
                s.addr, s.len
            )));
        }
        let host = mem
            .get_host_address(GuestAddress(s.addr))
            .map_err(|_| BadHypercall("release range outside guest memory".into()))?;
        // SAFETY: [host, host+len) was just checked to be inside the guest's
        // single private anonymous mapping; MADV_DONTNEED only drops its pages.
        unsafe { libc::madvise(host.cast(), s.len as usize, libc::MADV_DONTNEED) };
        total += s.len;
    }
    Ok(total)
}

/// Decodes an `out` to a hypercall port into (hypercall number, value).
pub fn decode(port: u16, data: &[u8]) -> Option<(u16, u32)> {
    let nr = port
        .checked_sub(hc::PORT_BASE)
        .filter(|&n| n < hc::PORT_COUNT)?;
    let mut v = [0u8; 4];
    let n = data.len().min(4);
    v[..n].copy_from_slice(&data[..n]);
    Some((nr, u32::from_le_bytes(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{create, write_bytes};
    use optivolt_abi::hypercall::Segment;

    const RAM: u64 = 1 << 20;

    #[derive(Default)]
    struct Capture(Vec<(u32, Vec<u8>)>);
    impl ConsoleSink for Capture {
        fn write(&mut self, fd: u32, data: &[u8]) -> std::io::Result<()> {
            self.0.push((fd, data.to_vec()));
            Ok(())
        }
    }

    fn put(mem: &GuestRam, pa: u64, cw: ConsoleWrite) {
        mem.write_obj(Pod(cw), GuestAddress(pa)).unwrap();
    }

    fn segs(list: &[(u64, u64)]) -> [Segment; CONSOLE_MAX_SEGS] {
        let mut s = [Segment::default(); CONSOLE_MAX_SEGS];
        for (i, &(addr, len)) in list.iter().enumerate() {
            s[i] = Segment { addr, len };
        }
        s
    }

    #[test]
    fn gathers_segments_and_reports_the_count() {
        let mem = create(RAM).unwrap();
        write_bytes(&mem, 0x2000, b"hello, ").unwrap();
        write_bytes(&mem, 0x3000, b"world\n").unwrap();
        put(
            &mem,
            0x1000,
            ConsoleWrite {
                fd: 1,
                nsegs: 2,
                result: 0,
                segs: segs(&[(0x2000, 7), (0x3000, 6)]),
            },
        );
        let mut c = Capture::default();
        console_write(&mem, 0x1000, &mut c).unwrap();
        assert_eq!(c.0, vec![(1, b"hello, world\n".to_vec())]);
        let back: ConsoleWrite = read_args(&mem, 0x1000, "x").unwrap();
        assert_eq!(back.result, 13);
    }

    #[test]
    fn out_of_range_arguments_end_the_vm_without_touching_host_memory() {
        let mem = create(RAM).unwrap();
        let mut c = Capture::default();
        // The argument struct itself outside RAM, straddling its end, or at u32::MAX.
        for pa in [RAM, RAM - 8, u32::MAX as u64] {
            assert!(console_write(&mem, pa, &mut c).is_err(), "{pa:#x}");
        }
        // Segments outside RAM, straddling the end, overflowing.
        for (addr, len) in [
            (RAM, 1),
            (RAM - 4, 8),
            (u64::MAX - 2, 8),
            (0x1000, u64::MAX),
        ] {
            put(
                &mem,
                0x1000,
                ConsoleWrite {
                    fd: 1,
                    nsegs: 1,
                    result: 0,
                    segs: segs(&[(addr, len)]),
                },
            );
            assert!(
                console_write(&mem, 0x1000, &mut c).is_err(),
                "{addr:#x}+{len:#x}"
            );
        }
        // Too many segments, a bad fd.
        put(
            &mem,
            0x1000,
            ConsoleWrite {
                fd: 1,
                nsegs: 17,
                result: 0,
                segs: segs(&[]),
            },
        );
        assert!(console_write(&mem, 0x1000, &mut c).is_err());
        put(
            &mem,
            0x1000,
            ConsoleWrite {
                fd: 7,
                nsegs: 0,
                result: 0,
                segs: segs(&[]),
            },
        );
        assert!(console_write(&mem, 0x1000, &mut c).is_err());
        assert!(c.0.is_empty());
    }

    #[test]
    fn huge_lengths_are_capped() {
        let mem = create(4 << 20).unwrap();
        put(
            &mem,
            0x1000,
            ConsoleWrite {
                fd: 2,
                nsegs: 1,
                result: 0,
                segs: segs(&[(0x10000, 3 << 20)]),
            },
        );
        let mut c = Capture::default();
        console_write(&mem, 0x1000, &mut c).unwrap();
        assert_eq!(c.0[0].1.len() as u64, CONSOLE_MAX_BYTES);
    }

    #[test]
    fn abort_and_fault_arguments_are_checked() {
        let mem = create(RAM).unwrap();
        write_bytes(&mem, 0x2000, b"boom").unwrap();
        mem.write_obj(
            Pod(Abort {
                msg: 0x2000,
                len: 4,
            }),
            GuestAddress(0x1000),
        )
        .unwrap();
        assert_eq!(abort_message(&mem, 0x1000).unwrap(), "boom");
        mem.write_obj(
            Pod(Abort {
                msg: RAM - 1,
                len: 4,
            }),
            GuestAddress(0x1000),
        )
        .unwrap();
        assert!(abort_message(&mem, 0x1000).is_err());
        assert!(fault_report(&mem, RAM - 16).is_err());
    }

    #[test]
    fn release_checks_ranges_and_zeroes() {
        use optivolt_abi::hypercall::Release;
        let mem = create(RAM).unwrap();
        write_bytes(&mem, 0x4000, b"data").unwrap();
        let mut r = Release {
            count: 1,
            ..Default::default()
        };
        r.ranges[0] = Segment {
            addr: 0x4000,
            len: 0x1000,
        };
        mem.write_obj(Pod(r), GuestAddress(0x1000)).unwrap();
        assert_eq!(release(&mem, 0x1000).unwrap(), 0x1000);
        assert_eq!(read_bytes(&mem, 0x4000, 4).unwrap(), [0, 0, 0, 0]);
        for (addr, len) in [
            (RAM, 0x1000),
            (RAM - 0x1000, 0x2000),
            (0x4001, 0x1000),
            (0x4000, 0),
            (!0xfff, 0x2000),
        ] {
            r.ranges[0] = Segment { addr, len };
            mem.write_obj(Pod(r), GuestAddress(0x1000)).unwrap();
            assert!(release(&mem, 0x1000).is_err(), "{addr:#x}+{len:#x}");
        }
        r.count = 33;
        mem.write_obj(Pod(r), GuestAddress(0x1000)).unwrap();
        assert!(release(&mem, 0x1000).is_err());
    }

    #[test]
    fn decodes_ports() {
        assert_eq!(decode(hc::PORT_BASE + 1, &[42, 0, 0, 0]), Some((1, 42)));
        assert_eq!(decode(hc::PORT_BASE + 16, &[0; 4]), None);
        assert_eq!(decode(0x3f8, &[0; 4]), None);
        assert_eq!(decode(hc::PORT_BASE, &[7]), Some((0, 7)));
    }
}
