//! The monitor's standard fds as the guest sees them: what each is (so the
//! guest's `fstat` and `isatty` answer as the host's would) and reading
//! stdin without ever blocking the vCPU (the guest blocks its own thread
//! and asks [`crate::vcpu`]'s BLOCK to wake it when stdin is readable).
use std::os::fd::RawFd;

use optivolt_abi::boot::{stdio, StdioInfo};
use optivolt_abi::hypercall::ConsoleRead;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::hypercall::BadHypercall;
use crate::memory::{GuestRam, Pod};

/// Most bytes one stdin read moves.
pub const READ_MAX: u64 = 64 << 10;

/// What host fd `fd` is.
pub fn describe(fd: RawFd) -> StdioInfo {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat writes one `struct stat` into the live buffer.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return StdioInfo::default();
    }
    // SAFETY: fstat succeeded and filled the structure.
    let st = unsafe { st.assume_init() };
    let mut info = StdioInfo {
        mode: st.st_mode,
        size: if st.st_mode & libc::S_IFMT == libc::S_IFREG {
            st.st_size as u64
        } else {
            0
        },
        rdev: st.st_rdev,
        ..Default::default()
    };
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(fd) } == 1 {
        info.flags |= stdio::TTY;
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `struct winsize` into `ws`.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            info.rows = ws.ws_row;
            info.cols = ws.ws_col;
        }
    }
    info
}

/// Whether a read of `fd` would return at once (data, end of file or an
/// error), without waiting.
pub fn readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd; a zero timeout never sleeps.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc > 0
}

/// CONSOLE_READ: reads what host stdin has now into the guest's buffer;
/// stores the count, 0 at end of file, or -errno (`-EAGAIN`: nothing yet).
pub fn console_read(mem: &GuestRam, pa: u64) -> Result<(), BadHypercall> {
    let mut args: ConsoleRead = mem
        .read_obj::<Pod<ConsoleRead>>(GuestAddress(pa))
        .map(|p| p.0)
        .map_err(|_| {
            BadHypercall(format!(
                "console read arguments at {pa:#x} lie outside guest memory"
            ))
        })?;
    let len = args.buf.len.min(READ_MAX);
    let a = args.buf.addr;
    let inside = len == 0
        || a.checked_add(len).is_some_and(|end| {
            mem.address_in_range(GuestAddress(a)) && mem.address_in_range(GuestAddress(end - 1))
        });
    if !inside {
        return Err(BadHypercall(format!(
            "console read buffer {:#x}+{:#x} lies outside guest memory",
            args.buf.addr, args.buf.len
        )));
    }
    args.result = if !readable(0) {
        -(libc::EAGAIN as i64)
    } else if len == 0 {
        1
    } else {
        let mut data = vec![0u8; len as usize];
        // SAFETY: reads at most `len` bytes into the live buffer.
        let n = unsafe { libc::read(0, data.as_mut_ptr().cast(), data.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            // A closed stdin reads as an empty one.
            if e == libc::EBADF {
                0
            } else {
                -(e as i64)
            }
        } else {
            mem.write_slice(&data[..n as usize], GuestAddress(args.buf.addr))
                .map_err(|_| BadHypercall("console read buffer vanished".into()))?;
            n as i64
        }
    };
    mem.write_obj(Pod(args), GuestAddress(pa)).map_err(|_| {
        BadHypercall(format!(
            "console read arguments at {pa:#x} lie outside guest memory"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use optivolt_abi::hypercall::Segment;

    fn ask(mem: &GuestRam, buf: Segment) -> Result<i64, BadHypercall> {
        mem.write_obj(Pod(ConsoleRead { buf, result: 7 }), GuestAddress(0x100))
            .unwrap();
        console_read(mem, 0x100)?;
        Ok(mem
            .read_obj::<Pod<ConsoleRead>>(GuestAddress(0x100))
            .unwrap()
            .0
            .result)
    }

    #[test]
    fn buffers_outside_guest_memory_are_refused() {
        let m = crate::memory::create(1 << 20).unwrap();
        for (addr, len) in [(1 << 20, 1), ((1 << 20) - 2, 4), (u64::MAX - 1, 4)] {
            assert!(ask(&m, Segment { addr, len }).is_err(), "{addr:#x}+{len}");
        }
        assert!(
            console_read(&m, u64::MAX - 8).is_err(),
            "arguments beyond RAM"
        );
        // Inside: answered (whatever the test's stdin holds), never refused.
        assert!(ask(
            &m,
            Segment {
                addr: 0x1000,
                len: 16
            }
        )
        .is_ok());
        assert!(ask(&m, Segment { addr: 0, len: 0 }).is_ok());
    }

    #[test]
    fn a_closed_or_missing_fd_describes_as_nothing() {
        assert_eq!(describe(-1), StdioInfo::default());
    }
}
