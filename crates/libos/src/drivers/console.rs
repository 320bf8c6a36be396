//! Console output through the CONSOLE_WRITE hypercall: one exit per call,
//! carrying up to 16 guest-physical segments.
use core::fmt::Write;

use optivolt_abi::hypercall::{self as hc, ConsoleWrite, Segment};
use optivolt_abi::layout::virt_to_phys;

use crate::arch::hypercall;
use crate::util::BufWriter;

/// Collects segments and flushes them in as few exits as possible.
pub struct Batch {
    args: ConsoleWrite,
    total: i64,
}

impl Batch {
    /// A batch for host fd 1 (stdout) or 2 (stderr).
    pub fn new(fd: u32) -> Self {
        Batch {
            args: ConsoleWrite {
                fd,
                ..Default::default()
            },
            total: 0,
        }
    }

    /// Adds guest-physical `[pa, pa + len)`; flushes when the batch is full.
    pub fn push(&mut self, pa: u64, len: u64) -> Result<(), i64> {
        if len == 0 {
            return Ok(());
        }
        if self.args.nsegs as usize == hc::CONSOLE_MAX_SEGS {
            self.flush()?;
        }
        self.args.segs[self.args.nsegs as usize] = Segment { addr: pa, len };
        self.args.nsegs += 1;
        Ok(())
    }

    /// Sends what is queued.
    pub fn flush(&mut self) -> Result<(), i64> {
        if self.args.nsegs == 0 {
            return Ok(());
        }
        self.args.result = 0;
        hypercall::call_with(hc::CONSOLE_WRITE, &mut self.args);
        self.args.nsegs = 0;
        if self.args.result < 0 {
            // The monitor reports -errno; errors travel as positive errno here.
            return Err(-self.args.result);
        }
        self.total += self.args.result;
        Ok(())
    }

    /// Flushes and returns the bytes written.
    pub fn finish(mut self) -> Result<i64, i64> {
        self.flush()?;
        Ok(self.total)
    }
}

/// Writes library-OS memory (statics, heap, stack: all in the physmap).
pub fn write_kernel(fd: u32, bytes: &[u8]) {
    let Some(pa) = virt_to_phys(bytes.as_ptr() as u64) else {
        return;
    };
    let mut b = Batch::new(fd);
    // The physmap is physically contiguous, so one segment suffices.
    if b.push(pa, bytes.len() as u64).is_ok() {
        let _ = b.finish();
    }
}

/// Writes a formatted line to the guest's stderr from inside the library OS.
pub fn kernel_log(args: core::fmt::Arguments<'_>) {
    let mut buf = [0u8; 256];
    let mut w = BufWriter::new(&mut buf);
    let _ = w.write_fmt(args);
    let n = w.len();
    write_kernel(2, &buf[..n]);
}

/// Reads what the host's stdin holds now into library-OS memory `buf`:
/// bytes read, 0 at end of file, or an errno (EAGAIN: nothing yet).
pub fn read_stdin(buf: &mut [u8]) -> Result<usize, i64> {
    let Some(pa) = virt_to_phys(buf.as_ptr() as u64) else {
        return Err(crate::errno::EFAULT);
    };
    let mut args = hc::ConsoleRead {
        buf: Segment {
            addr: pa,
            len: buf.len() as u64,
        },
        result: 0,
    };
    hypercall::call_with(hc::CONSOLE_READ, &mut args);
    match args.result {
        r if r < 0 => Err(-r),
        r => Ok((r as usize).min(buf.len())),
    }
}

/// Whether a read of the host's stdin would return at once (data or end of
/// file). One exit.
pub fn stdin_ready() -> bool {
    let mut args = hc::ConsoleRead {
        buf: Segment { addr: 0, len: 0 },
        // What a host unit test (no monitor) sees: ready, and then empty.
        result: 1,
    };
    hypercall::call_with(hc::CONSOLE_READ, &mut args);
    args.result > 0
}
