//! Adapts a [`NetDevice`] to smoltcp's token-based `phy::Device`.
//!
//! smoltcp asks for a receive token before it looks at the frame, while our
//! drivers hand frames to a callback and recycle the buffer at once, so a
//! received frame is copied once into a reusable buffer here. Transmission
//! builds the frame in place in the device's buffer.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::drivers::net::NetDevice;

/// A [`NetDevice`] as smoltcp sees it.
pub struct StackDevice<D: NetDevice> {
    dev: D,
    rx_buf: Vec<u8>,
}

impl<D: NetDevice> StackDevice<D> {
    pub fn new(dev: D) -> Self {
        let max = dev.max_frame_len();
        Self {
            dev,
            rx_buf: vec![0; max],
        }
    }

    /// The device underneath, e.g. to flush it after a poll of the stack.
    pub fn inner(&mut self) -> &mut D {
        &mut self.dev
    }
}

/// A received frame, already copied out of the ring.
pub struct RxToken<'a>(&'a [u8]);

/// The right to queue one frame on the device.
pub struct TxToken<'a, D: NetDevice>(&'a mut D);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<D: NetDevice> phy::TxToken for TxToken<'_, D> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        let _ = self.0.transmit(len, &mut |buf| {
            if let Some(f) = f.take() {
                out = Some(f(buf));
            }
        });
        match (out, f) {
            (Some(r), _) => r,
            // The device refused after all (a token is handed out only when
            // a buffer is free, so only an oversized frame gets here): the
            // frame is built and dropped, as on a lossy wire.
            (None, Some(f)) => f(&mut vec![0; len]),
            (None, None) => unreachable!("the closure ran but produced nothing"),
        }
    }
}

impl<D: NetDevice> phy::Device for StackDevice<D> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let mut len = 0;
        let buf = &mut self.rx_buf;
        if !self.dev.receive(&mut |frame| {
            len = frame.len().min(buf.len());
            buf[..len].copy_from_slice(&frame[..len]);
        }) {
            return None;
        }
        Some((RxToken(&self.rx_buf[..len]), TxToken(&mut self.dev)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        if self.dev.can_transmit() {
            Some(TxToken(&mut self.dev))
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.dev.max_frame_len();
        caps
    }
}
