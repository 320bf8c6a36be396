//! Network devices as the TCP/IP stack sees them: a small trait that moves
//! whole Ethernet frames and knows nothing of the stack above.

pub mod virtio;

/// No transmit buffer is free; retry after the device has used some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFull;

/// An Ethernet device.
pub trait NetDevice {
    /// The device's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Largest frame, Ethernet header included, the device carries.
    fn max_frame_len(&self) -> usize;
    /// Hands the next received frame to `f`; `false` when none is waiting.
    fn receive(&mut self, f: &mut dyn FnMut(&[u8])) -> bool;
    /// Whether [`Self::transmit`] has a free buffer now.
    fn can_transmit(&mut self) -> bool;
    /// Queues a frame of `len` bytes that `fill` writes in place.
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), TxFull>;
    /// Makes queued frames and returned buffers visible to the device.
    /// Returns whether the device must be told (one doorbell for the batch).
    fn flush(&mut self) -> bool;
}
