//! Keeping listeners' pools of Listen sockets filled, reaping orphans, and
//! the readiness snapshots epoll reads.
use super::*;

/// After a poll: moves handshakes and established connections of the
/// listeners along, refills their pools, updates the gates, and frees
/// orphans that finished. Returns whether a pool got new sockets.
pub(in crate::net) fn maintain(s: &mut Stack) -> bool {
    let mut refilled = false;
    let mut eth_gate: BTreeMap<u16, PortGate> = BTreeMap::new();
    let mut lo_gate: BTreeMap<u16, PortGate> = BTreeMap::new();
    let ids: Vec<Id> = s
        .tcp
        .socks
        .iter()
        .filter(|(_, t)| matches!(t.state, State::Listening(_)))
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        let Some(mut t) = s.tcp.socks.remove(&id) else {
            continue;
        };
        if let State::Listening(l) = &mut t.state {
            refilled |= maintain_listener(s, l, t.local, &t.opts);
            for (net, gate) in [(Net::Eth, &mut eth_gate), (Net::Lo, &mut lo_gate)] {
                let free = l.spare.iter().filter(|k| k.net == net).count() as u32;
                let full = l.ready.len() + l.embryos.len() >= l.backlog;
                let port = t.local.map(|(_, p)| p).unwrap_or(0);
                let g = gate.entry(port).or_insert(PortGate {
                    free: 0,
                    full: true,
                });
                g.free += free;
                g.full &= full;
            }
        }
        s.tcp.socks.insert(id, t);
    }
    if let Some(e) = s.eth.as_mut() {
        e.dev.gate.set(eth_gate);
    }
    s.lo.dev.gate.set(lo_gate);
    reap_orphans(s);
    refilled
}

pub(super) fn maintain_listener(
    s: &mut Stack,
    l: &mut Listener,
    local: Option<(Option<Ipv4Address>, u16)>,
    opts: &Opts,
) -> bool {
    // Sort the pool and the handshakes by state.
    let mut keep_spare = Vec::new();
    let mut keep_embryos = Vec::new();
    for k in l.spare.drain(..).chain(l.embryos.drain(..)) {
        match sock_mut(s, k).state() {
            TcpState::Listen => keep_spare.push(k),
            TcpState::SynReceived => keep_embryos.push(k),
            TcpState::Closed | TcpState::TimeWait => remove(s, k),
            _ => l.ready.push_back(k),
        }
    }
    l.spare = keep_spare;
    l.embryos = keep_embryos;
    // Refill up to SPARE per interface while the backlog has room.
    let Some((addr, port)) = local else {
        return false;
    };
    let mut refilled = false;
    for net in [Net::Eth, Net::Lo] {
        let serves = match (net, addr) {
            (Net::Eth, Some(a)) => Some(a) == s.own_addr(),
            (Net::Eth, None) => s.eth.is_some(),
            (Net::Lo, _) => true,
        };
        if !serves || s.set(net).is_none() {
            continue;
        }
        loop {
            let have = l.spare.iter().filter(|k| k.net == net).count();
            let busy = l.ready.len() + l.embryos.len();
            let spare = if net == Net::Eth { SPARE_ETH } else { SPARE_LO };
            if have >= spare || busy + have >= l.backlog {
                break;
            }
            let mut t = new_socket(opts);
            let ep = IpListenEndpoint {
                addr: addr.map(IpAddress::Ipv4),
                port,
            };
            if t.listen(ep).is_err() {
                break;
            }
            let Some(set) = s.set(net) else { break };
            let h = set.add(t);
            l.spare.push(Sock { net, h });
            refilled = true;
        }
    }
    refilled
}

pub(super) fn reap_orphans(s: &mut Stack) {
    let now = now().total_micros();
    let orphans = core::mem::take(&mut s.tcp.orphans);
    for (k, since) in orphans {
        let sk = sock_mut(s, k);
        match sk.state() {
            TcpState::Closed | TcpState::TimeWait => remove(s, k),
            _ if now - since > ORPHAN_TIMEOUT_US => {
                sk.abort();
                s.tcp.orphans.push((k, since));
            }
            _ => s.tcp.orphans.push((k, since)),
        }
    }
}

pub(super) fn snap_of(s: &mut Stack, id: Id) -> Option<Snap> {
    let me = s.tcp.socks.get(&id)?;
    Some(match &me.state {
        State::Fresh => Snap::default(),
        State::Listening(l) => Snap {
            ready: l.ready.len() + 1,
            ..Snap::default()
        },
        State::Stream { sock, .. } => {
            let k = *sock;
            let sk = sock_mut(s, k);
            Snap {
                state: sk.state() as u8 + 1,
                recv_queue: sk.recv_queue(),
                send_queue: sk.send_queue(),
                ready: 0,
            }
        }
    })
}

/// Records what the application just saw of socket `id` (after it read or
/// wrote), so the next change the stack makes counts as a new edge.
pub(super) fn resnap(s: &mut Stack, id: Id) {
    if let Some(n) = snap_of(s, id) {
        if let Some(me) = s.tcp.socks.get_mut(&id) {
            me.snap = n;
        }
    }
}

/// After a poll that changed sockets: bumps the generation of every socket
/// whose state differs from what was last seen (per-socket epoll edges).
pub(in crate::net) fn refresh(s: &mut Stack) {
    let ids: Vec<Id> = s.tcp.socks.keys().copied().collect();
    for id in ids {
        let Some(n) = snap_of(s, id) else { continue };
        if let Some(me) = s.tcp.socks.get_mut(&id) {
            if me.snap != n {
                me.snap = n;
                s.tcp.touch(id);
            }
        }
    }
}
