//! Adapts a [`NetDevice`] to smoltcp's token-based `phy::Device`.
//!
//! smoltcp asks for a receive token before it looks at the frame, while our
//! drivers hand frames to a callback and recycle the buffer at once, so a
//! received frame is copied once into a reusable buffer here. Transmission
//! builds the frame in place in the device's buffer.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::drivers::net::NetDevice;
use crate::net::gate::{SynGate, Verdict};

/// A [`NetDevice`] as smoltcp sees it.
pub struct StackDevice<D: NetDevice> {
    dev: D,
    rx_buf: Vec<u8>,
    /// Length of a frame in `rx_buf` the gate held back.
    held: Option<usize>,
    /// Admission of connection requests.
    pub gate: SynGate,
}

impl<D: NetDevice> StackDevice<D> {
    pub fn new(dev: D) -> Self {
        let max = dev.max_frame_len();
        Self {
            dev,
            rx_buf: vec![0; max],
            held: None,
            gate: SynGate::default(),
        }
    }

    /// The device underneath, e.g. to flush it after a poll of the stack.
    pub fn inner(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Whether the gate held a frame back during the last poll.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }
}

/// Frames carried by Ethernet type IPv4 are shown to the gate.
fn gate_frame(gate: &mut SynGate, frame: &[u8]) -> Verdict {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => gate.admit(&frame[14..]),
        _ => Verdict::Pass,
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
        let len = loop {
            let len = match self.held.take() {
                Some(len) => len,
                None => {
                    let mut len = 0;
                    let buf = &mut self.rx_buf;
                    if !self.dev.receive(&mut |frame| {
                        len = frame.len().min(buf.len());
                        buf[..len].copy_from_slice(&frame[..len]);
                    }) {
                        return None;
                    }
                    len
                }
            };
            match gate_frame(&mut self.gate, &self.rx_buf[..len]) {
                Verdict::Pass => break len,
                Verdict::Drop => continue,
                Verdict::Hold => {
                    self.held = Some(len);
                    return None;
                }
            }
        };
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

/// The in-guest loopback: IP packets sent are received again, in order.
pub struct LoopDevice {
    queue: VecDeque<Vec<u8>>,
    /// Admission of connection requests.
    pub gate: SynGate,
    holding: bool,
}

/// MTU of the loopback: the largest IPv4 packet (Linux says 65536, but an
/// IPv4 total length cannot exceed 65535).
pub const LOOPBACK_MTU: usize = 65535;

impl LoopDevice {
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            gate: SynGate::default(),
            holding: false,
        }
    }

    /// Whether the gate held a packet back during the last poll.
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// Whether packets wait to be received.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }
}

impl Default for LoopDevice {
    fn default() -> Self {
        Self::new()
    }
}

/// A packet taken off the loopback queue.
pub struct LoopRx(Vec<u8>);

/// The right to queue one packet on the loopback.
pub struct LoopTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for LoopRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for LoopTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut p = vec![0; len];
        let r = f(&mut p);
        self.0.push_back(p);
        r
    }
}

impl phy::Device for LoopDevice {
    type RxToken<'a> = LoopRx;
    type TxToken<'a> = LoopTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.holding = false;
        loop {
            let p = self.queue.front()?;
            match self.gate.admit(p) {
                Verdict::Pass => break,
                Verdict::Drop => {
                    self.queue.pop_front();
                }
                Verdict::Hold => {
                    self.holding = true;
                    return None;
                }
            }
        }
        let p = self.queue.pop_front()?;
        Some((LoopRx(p), LoopTx(&mut self.queue)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        Some(LoopTx(&mut self.queue))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = LOOPBACK_MTU;
        caps
    }
}
