//! The userspace side of `-p`: listens on the published host addresses
//! and relays each TCP connection, or each UDP client's datagrams, to the
//! guest's port over the tap. One thread, one epoll loop (mio); everything
//! lives in this process, so nothing outlives `volt` however it ends.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

use super::{PortMapping, Proto};

/// Bytes buffered per direction of a relayed connection.
const BUF: usize = 64 * 1024;
/// Most UDP clients remembered per published port.
const UDP_CLIENTS: usize = 1024;
/// A UDP client's relay socket goes after this long without traffic.
const UDP_IDLE: Duration = Duration::from_secs(120);

/// Host sockets bound for the published ports, before the VM starts (so a
/// port in use is reported first).
pub struct Bound {
    tcp: Vec<(TcpListener, u16)>,
    udp: Vec<(UdpSocket, u16)>,
}

/// Binds every mapping's host address and port.
/// TCP connections relayed to the guest since the process started, and
/// those open now (the instance's metrics).
pub static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static OPEN_CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn bind(maps: &[PortMapping]) -> Result<Bound> {
    let mut b = Bound {
        tcp: Vec::new(),
        udp: Vec::new(),
    };
    for m in maps {
        let addr = SocketAddr::new(m.host_ip, m.host_port);
        match m.proto {
            Proto::Tcp => {
                let l = TcpListener::bind(addr)
                    .with_context(|| format!("cannot publish {m}: {addr}/tcp"))?;
                b.tcp.push((l, m.guest_port));
            }
            Proto::Udp => {
                let s = UdpSocket::bind(addr)
                    .with_context(|| format!("cannot publish {m}: {addr}/udp"))?;
                b.udp.push((s, m.guest_port));
            }
        }
    }
    Ok(b)
}

/// Relays the bound ports to `guest` on a thread of its own; with `netns`,
/// the guest is in that network namespace (a volt network), which the
/// thread enters, so that the sockets it opens to the guest are there while
/// the published ones stay on the host.
pub fn spawn(b: Bound, guest: Ipv4Addr, netns: Option<std::path::PathBuf>) -> Result<()> {
    let poll = Poll::new().context("cannot create the port-publishing poller")?;
    std::thread::Builder::new()
        .name("volt-proxy".into())
        .spawn(move || {
            if let Some(ns) = &netns {
                if let Err(e) = optivolt_vmm::devices::tap::enter_netns(ns) {
                    eprintln!("volt: port publishing stopped: {e}");
                    return;
                }
            }
            if let Err(e) = Relay::new(poll, b, guest).and_then(|mut r| r.run()) {
                eprintln!("volt: port publishing stopped: {e}");
            }
        })
        .context("cannot start the port-publishing thread")?;
    Ok(())
}

/// A byte queue from one socket to the other.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source reached end of stream.
    eof: bool,
    /// The end of stream was passed on.
    shut: bool,
}

impl Pipe {
    fn new() -> Self {
        Self {
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    /// Moves bytes from `from` to `to` until both would block. `Err` ends
    /// the connection.
    fn pump(&mut self, from: &mut TcpStream, to: &mut TcpStream) -> io::Result<()> {
        loop {
            let mut progress = false;
            if !self.eof && self.end < self.buf.len() {
                match from.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.end += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                    Err(e) => return Err(e),
                }
            }
            if self.start < self.end {
                match to.write(&self.buf[self.start..self.end]) {
                    Ok(n) => {
                        self.start += n;
                        progress = n > 0;
                        if self.start == self.end {
                            self.start = 0;
                            self.end = 0;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                    Err(e) => return Err(e),
                }
            }
            if self.eof && self.start == self.end && !self.shut {
                let _ = to.shutdown(Shutdown::Write);
                self.shut = true;
            }
            if !progress {
                return Ok(());
            }
        }
    }
}

struct Conn {
    client: TcpStream,
    guest: TcpStream,
    up: Pipe,
    down: Pipe,
    connected: bool,
}

struct UdpPort {
    sock: UdpSocket,
    guest_port: u16,
    clients: HashMap<SocketAddr, usize>,
}

struct UdpClient {
    port: usize,
    peer: SocketAddr,
    sock: UdpSocket,
    last: Instant,
}

struct Relay {
    poll: Poll,
    guest: Ipv4Addr,
    tcp: Vec<(TcpListener, u16)>,
    udp: Vec<UdpPort>,
    conns: HashMap<usize, Conn>,
    udp_clients: HashMap<usize, UdpClient>,
    next: usize,
}

// Tokens: listeners, then UDP ports, then two per connection / one per
// UDP client from `FIRST_DYNAMIC` on.
const FIRST_DYNAMIC: usize = 1 << 20;

impl Relay {
    fn new(poll: Poll, b: Bound, guest: Ipv4Addr) -> Result<Self> {
        let mut tcp = b.tcp;
        for (i, (l, _)) in tcp.iter_mut().enumerate() {
            poll.registry().register(l, Token(i), Interest::READABLE)?;
        }
        let mut udp = Vec::new();
        for (i, (mut s, guest_port)) in b.udp.into_iter().enumerate() {
            poll.registry()
                .register(&mut s, Token(tcp.len() + i), Interest::READABLE)?;
            udp.push(UdpPort {
                sock: s,
                guest_port,
                clients: HashMap::new(),
            });
        }
        Ok(Self {
            poll,
            guest,
            tcp,
            udp,
            conns: HashMap::new(),
            udp_clients: HashMap::new(),
            next: FIRST_DYNAMIC,
        })
    }

    fn run(&mut self) -> Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_secs(10))) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if t < self.tcp.len() {
                    self.accept(t);
                } else if t < FIRST_DYNAMIC {
                    self.udp_from_client(t - self.tcp.len());
                } else if self.udp_clients.contains_key(&t) {
                    self.udp_from_guest(t);
                } else {
                    self.service(t & !1);
                }
            }
            self.expire_udp();
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            let (client, _) = match self.tcp[i].0.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let to = SocketAddr::V4(SocketAddrV4::new(self.guest, self.tcp[i].1));
            let Ok(guest) = TcpStream::connect(to) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = guest.set_nodelay(true);
            let id = self.next;
            self.next += 2;
            let mut c = Conn {
                client,
                guest,
                up: Pipe::new(),
                down: Pipe::new(),
                connected: false,
            };
            let rw = Interest::READABLE | Interest::WRITABLE;
            let r = self.poll.registry();
            if r.register(&mut c.client, Token(id), rw).is_ok()
                && r.register(&mut c.guest, Token(id + 1), rw).is_ok()
            {
                self.conns.insert(id, c);
                CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                OPEN_CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn service(&mut self, id: usize) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.connected {
            match c.guest.peer_addr() {
                Ok(_) => c.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => {
                    // Still connecting, unless it failed.
                    if matches!(c.guest.take_error(), Ok(Some(_)) | Err(_)) {
                        self.close(id);
                    }
                    return;
                }
                Err(_) => {
                    self.close(id);
                    return;
                }
            }
        }
        let ok = c.up.pump(&mut c.client, &mut c.guest).is_ok()
            && c.down.pump(&mut c.guest, &mut c.client).is_ok();
        if !ok || (c.up.shut && c.down.shut) {
            self.close(id);
        }
    }

    fn close(&mut self, id: usize) {
        if let Some(mut c) = self.conns.remove(&id) {
            OPEN_CONNECTIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let r = self.poll.registry();
            let _ = r.deregister(&mut c.client);
            let _ = r.deregister(&mut c.guest);
        }
    }

    fn udp_from_client(&mut self, i: usize) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = match self.udp[i].sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(_) => return,
            };
            let token = match self.udp[i].clients.get(&from) {
                Some(t) => *t,
                None => match self.new_udp_client(i, from) {
                    Some(t) => t,
                    None => continue,
                },
            };
            if let Some(c) = self.udp_clients.get_mut(&token) {
                c.last = Instant::now();
                let _ = c.sock.send(&buf[..n]);
            }
        }
    }

    fn new_udp_client(&mut self, i: usize, from: SocketAddr) -> Option<usize> {
        if self.udp[i].clients.len() >= UDP_CLIENTS {
            // Forget the quietest client.
            let old = self
                .udp_clients
                .iter()
                .filter(|(_, c)| c.port == i)
                .min_by_key(|(_, c)| c.last)
                .map(|(t, _)| *t)?;
            self.drop_udp_client(old);
        }
        let mut sock =
            UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))).ok()?;
        sock.connect(SocketAddr::V4(SocketAddrV4::new(
            self.guest,
            self.udp[i].guest_port,
        )))
        .ok()?;
        let t = self.next;
        self.next += 2;
        self.poll
            .registry()
            .register(&mut sock, Token(t), Interest::READABLE)
            .ok()?;
        self.udp[i].clients.insert(from, t);
        self.udp_clients.insert(
            t,
            UdpClient {
                port: i,
                peer: from,
                sock,
                last: Instant::now(),
            },
        );
        Some(t)
    }

    fn udp_from_guest(&mut self, t: usize) {
        let mut buf = vec![0u8; 65536];
        let Some(c) = self.udp_clients.get_mut(&t) else {
            return;
        };
        while let Ok(n) = c.sock.recv(&mut buf) {
            c.last = Instant::now();
            let _ = self.udp[c.port].sock.send_to(&buf[..n], c.peer);
        }
    }

    fn drop_udp_client(&mut self, t: usize) {
        if let Some(mut c) = self.udp_clients.remove(&t) {
            let _ = self.poll.registry().deregister(&mut c.sock);
            self.udp[c.port].clients.remove(&c.peer);
        }
    }

    fn expire_udp(&mut self) {
        let old: Vec<usize> = self
            .udp_clients
            .iter()
            .filter(|(_, c)| c.last.elapsed() > UDP_IDLE)
            .map(|(t, _)| *t)
            .collect();
        for t in old {
            self.drop_udp_client(t);
        }
    }
}
