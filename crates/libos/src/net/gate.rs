//! Admission of incoming TCP connection requests.
//!
//! smoltcp answers a SYN for which no socket is listening with a reset. A
//! listening socket of ours is a pool of smoltcp sockets in the `Listen`
//! state, each taking one connection, so a burst of SYNs larger than the
//! pool would be reset although the application's backlog has room. The
//! devices therefore ask the gate about every SYN before smoltcp sees it:
//! let it through while the pool has a free socket, hold it (and end the
//! poll, so the kernel can refill the pool and poll again) while the backlog
//! has room, and drop it when the backlog is full — as Linux does, the
//! client then retransmits.

use alloc::collections::BTreeMap;

/// What to do with a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the stack.
    Pass,
    /// Keep it for the next poll.
    Hold,
    /// Throw it away.
    Drop,
}

/// The state of one listening port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortGate {
    /// Listening smoltcp sockets not yet given a SYN in this poll.
    pub free: u32,
    /// Whether the backlog is full (no socket can be added).
    pub full: bool,
}

/// Listening ports and their free sockets.
#[derive(Debug, Default)]
pub struct SynGate {
    ports: BTreeMap<u16, PortGate>,
}

impl SynGate {
    /// Replaces the table (after the kernel refilled its pools).
    pub fn set(&mut self, ports: BTreeMap<u16, PortGate>) {
        self.ports = ports;
    }

    /// Decides about an IPv4 packet (without link-layer header).
    pub fn admit(&mut self, ip: &[u8]) -> Verdict {
        let Some(port) = syn_port(ip) else {
            return Verdict::Pass;
        };
        match self.ports.get_mut(&port) {
            None => Verdict::Pass,
            Some(g) if g.free > 0 => {
                g.free -= 1;
                Verdict::Pass
            }
            Some(g) if g.full => Verdict::Drop,
            Some(_) => Verdict::Hold,
        }
    }
}

/// The destination port of a TCP SYN (without ACK) in an IPv4 packet.
fn syn_port(ip: &[u8]) -> Option<u16> {
    let (&vihl, _) = ip.split_first()?;
    if vihl >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    // Only first fragments carry the TCP header.
    let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
    if frag != 0 {
        return None;
    }
    let ihl = usize::from(vihl & 0xf) * 4;
    let tcp = ip.get(ihl..)?;
    let flags = *tcp.get(13)?;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    if flags & (SYN | ACK) != SYN {
        return None;
    }
    Some(u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(flags: u8, port: u16) -> [u8; 40] {
        let mut p = [0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[20 + 2..20 + 4].copy_from_slice(&port.to_be_bytes());
        p[20 + 13] = flags;
        p
    }

    fn gate(port: u16, free: u32, full: bool) -> SynGate {
        let mut g = SynGate::default();
        g.set([(port, PortGate { free, full })].into_iter().collect());
        g
    }

    #[test]
    fn syns_use_free_sockets_then_wait_or_drop() {
        let mut g = gate(80, 2, false);
        let syn = packet(0x02, 80);
        assert_eq!(g.admit(&syn), Verdict::Pass);
        assert_eq!(g.admit(&syn), Verdict::Pass);
        assert_eq!(g.admit(&syn), Verdict::Hold);
        let mut g = gate(80, 0, true);
        assert_eq!(g.admit(&syn), Verdict::Drop);
    }

    #[test]
    fn other_packets_pass() {
        let mut g = gate(80, 0, true);
        assert_eq!(g.admit(&packet(0x12, 80)), Verdict::Pass, "SYN-ACK");
        assert_eq!(g.admit(&packet(0x10, 80)), Verdict::Pass, "ACK");
        assert_eq!(g.admit(&packet(0x02, 81)), Verdict::Pass, "closed port");
        let mut udp = packet(0x02, 80);
        udp[9] = 17;
        assert_eq!(g.admit(&udp), Verdict::Pass);
        let mut frag = packet(0x02, 80);
        frag[7] = 1;
        assert_eq!(g.admit(&frag), Verdict::Pass, "later fragment");
        assert_eq!(g.admit(&[0x45, 0]), Verdict::Pass, "truncated");
    }
}
