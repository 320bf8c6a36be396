//! TCP and UDP sockets over the in-guest loopback, on the host: a stack
//! without a device, polled by hand.
use alloc::vec::Vec;

use optivolt_abi::boot::BootInfo;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use super::stack;
use super::tcp::{self, Connect};
use super::udp;
use crate::errno::*;
use crate::task::testing::globals;
use crate::uapi::poll::*;

/// Most polls any wait below makes before the test fails.
const MAX_POLLS: usize = 300;

/// A fresh stack with only the loopback (init leaves the global alone when
/// there is no device, so the old one is dropped first).
fn fresh_stack() {
    *stack::NET.lock() = None;
    let mut boot = BootInfo::new();
    boot.tsc_khz = 1_000_000;
    assert_eq!(boot.net.present, 0, "no device");
    stack::init(&boot).expect("a stack without a device comes up");
}

fn localhost(port: u16) -> IpEndpoint {
    IpEndpoint::new(IpAddress::v4(127, 0, 0, 1), port)
}

fn loopback_addr() -> Option<Ipv4Address> {
    Some(Ipv4Address::new(127, 0, 0, 1))
}

/// Polls the stack until `done` holds; fails the test after [`MAX_POLLS`].
fn poll_until(what: &str, done: impl FnMut() -> bool) {
    poll_until_for(what, MAX_POLLS, done)
}

/// Polls the stack until `done` holds; fails the test after `max` polls.
fn poll_until_for(what: &str, max: usize, mut done: impl FnMut() -> bool) {
    for _ in 0..max {
        if done() {
            return;
        }
        stack::tick_poll();
        let _ = stack::idle_poll(None);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("{what}: not reached after {max} polls");
}

/// Polls a few times without expecting anything (lets timers and the
/// loopback settle).
fn poll_a_while() {
    for _ in 0..20 {
        stack::tick_poll();
        let _ = stack::idle_poll(None);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn listener(port: u16) -> tcp::Id {
    let l = tcp::open().unwrap();
    assert_eq!(tcp::bind(l, loopback_addr(), port), Ok(port));
    tcp::listen(l, 8).unwrap();
    l
}

/// A listener on `port`, a client connected to it and the accepted server
/// side: `(listener, client, server)`.
fn connected(port: u16) -> (tcp::Id, tcp::Id, tcp::Id) {
    let l = listener(port);
    let c = tcp::open().unwrap();
    assert_eq!(
        tcp::connect(c, localhost(port), true),
        Ok(Connect::InProgress),
        "a non-blocking connect is in progress first, as on Linux"
    );
    let mut accepted = None;
    poll_until("accept returns the connection", || match tcp::accept(l) {
        Ok(a) => {
            accepted = Some(a);
            true
        }
        Err(e) => {
            assert_eq!(e, EAGAIN, "accept while nothing waits");
            false
        }
    });
    let (srv, peer) = accepted.unwrap();
    assert_eq!(
        peer,
        tcp::local_endpoint(c).unwrap(),
        "the peer is the client"
    );
    poll_until("the client's connect is done", || {
        match tcp::connect(c, localhost(port), true) {
            Ok(Connect::Done) => true,
            Err(EALREADY) => false,
            r => panic!("connect reported {r:?}"),
        }
    });
    (l, c, srv)
}

/// Receives until `want` bytes came (or the test fails).
fn recv_exactly(id: tcp::Id, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    poll_until("the bytes arrive", || {
        while got.len() < want {
            match tcp::recv(id, &mut buf, false) {
                Ok(0) => panic!("end of stream after {} of {want} bytes", got.len()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(EAGAIN) => break,
                Err(e) => panic!("recv failed with {e}"),
            }
        }
        got.len() >= want
    });
    got
}

#[test]
fn a_tcp_connection_over_the_loopback_carries_bytes_both_ways() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5001);
    assert_eq!(tcp::send(c, b"hello, server"), Ok(13));
    assert_eq!(recv_exactly(s, 13), b"hello, server");
    assert_eq!(tcp::send(s, b"hello, client"), Ok(13));
    assert_eq!(recv_exactly(c, 13), b"hello, client");
    let mut buf = [0u8; 16];
    assert_eq!(tcp::recv(c, &mut buf, false), Err(EAGAIN), "nothing more");
    assert_eq!(tcp::peer(s), Ok(tcp::local_endpoint(c).unwrap()));
    assert_eq!(tcp::peer(c), Ok(localhost(5001)));
    for id in [c, s, l] {
        tcp::close(id);
    }
}

#[test]
fn a_tcp_stream_larger_than_the_buffers_arrives_intact_and_in_order() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5002);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    // A generous bound: under CPU contention a stall of the stream (a
    // retransmission time-out) was seen once in about fifty runs of the whole
    // suite; progress is printed to tell a stall from a slow machine.
    let mut polls = 0;
    poll_until_for("300 000 bytes cross", 10 * MAX_POLLS, || {
        polls += 1;
        if polls % 300 == 0 {
            std::eprintln!(
                "poll {polls}: sent {sent}, got {}, readiness client {:?} server {:?}",
                got.len(),
                tcp::readiness(c),
                tcp::readiness(s)
            );
        }
        match tcp::send(c, &data[sent..]) {
            Ok(n) => sent += n,
            Err(EAGAIN) => {}
            Err(e) => panic!("send failed with {e}"),
        }
        loop {
            match tcp::recv(s, &mut buf, false) {
                Ok(0) => panic!("unexpected end of stream"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(EAGAIN) => break,
                Err(e) => panic!("recv failed with {e}"),
            }
        }
        got.len() == data.len()
    });
    assert!(got == data, "the bytes arrive as sent");
    for id in [c, s, l] {
        tcp::close(id);
    }
}

#[test]
fn a_peeked_tcp_read_leaves_the_bytes_queued() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5003);
    tcp::send(c, b"abc").unwrap();
    poll_until("data readable", || tcp::readiness(s).0 & POLLIN != 0);
    let mut buf = [0u8; 8];
    assert_eq!(tcp::recv(s, &mut buf, true), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    let mut buf = [0u8; 8];
    assert_eq!(
        tcp::recv(s, &mut buf, false),
        Ok(3),
        "still there after the peek"
    );
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(tcp::recv(s, &mut buf, false), Err(EAGAIN));
    for id in [c, s, l] {
        tcp::close(id);
    }
}

#[test]
fn tcp_readiness_follows_the_connection_and_its_data() {
    let _g = globals();
    fresh_stack();
    let fresh = tcp::open().unwrap();
    assert_eq!(
        tcp::readiness(fresh).0,
        POLLOUT | POLLWRNORM | POLLHUP,
        "an unconnected socket, as on Linux"
    );
    tcp::close(fresh);

    let l = listener(5004);
    assert_eq!(tcp::readiness(l).0, 0, "a listener with nobody waiting");
    let c = tcp::open().unwrap();
    assert_eq!(
        tcp::connect(c, localhost(5004), true),
        Ok(Connect::InProgress)
    );
    poll_until("the listener becomes readable", || {
        tcp::readiness(l).0 & POLLIN != 0
    });
    assert_eq!(tcp::readiness(l).0, POLLIN | POLLRDNORM);
    let (s, _) = tcp::accept(l).unwrap();
    assert_eq!(tcp::readiness(l).0, 0, "the queue is empty again");

    poll_until("the client is writable", || {
        tcp::readiness(c).0 & POLLOUT != 0
    });
    let (rc, _) = tcp::readiness(c);
    assert_eq!(rc, POLLOUT | POLLWRNORM, "connected, nothing to read");
    let (rs, gen_before) = tcp::readiness(s);
    assert_eq!(rs, POLLOUT | POLLWRNORM);

    tcp::send(c, b"x").unwrap();
    poll_until("the server is readable", || {
        tcp::readiness(s).0 & POLLIN != 0
    });
    let (rs, gen_after) = tcp::readiness(s);
    assert_eq!(rs, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
    assert_ne!(gen_before, gen_after, "data arriving is a new edge");

    let mut buf = [0u8; 4];
    assert_eq!(tcp::recv(s, &mut buf, false), Ok(1));
    assert_eq!(tcp::readiness(s).0 & POLLIN, 0, "read everything");
    for id in [c, s, l] {
        tcp::close(id);
    }
}

#[test]
fn a_connect_to_a_port_nobody_listens_on_is_refused_through_so_error() {
    let _g = globals();
    fresh_stack();
    let c = tcp::open().unwrap();
    assert_eq!(
        tcp::connect(c, localhost(5099), true),
        Ok(Connect::InProgress)
    );
    let mut first = 0;
    poll_until("the refusal shows as POLLERR", || {
        first = tcp::readiness(c).0;
        first & POLLERR != 0
    });
    assert_eq!(
        first,
        POLLOUT | POLLERR | POLLHUP,
        "a failed open is writable, in error and hung up"
    );
    assert_eq!(
        tcp::readiness(c).0 & (POLLERR | POLLHUP),
        POLLERR | POLLHUP,
        "still in error until SO_ERROR is read"
    );
    assert_eq!(tcp::take_error(c), Ok(ECONNREFUSED));
    assert_eq!(tcp::take_error(c), Ok(0), "SO_ERROR is reported once");
    assert_eq!(tcp::readiness(c).0 & POLLERR, 0, "no error left");
    tcp::close(c);
}

#[test]
fn the_readiness_of_a_refused_connect_is_the_same_on_every_look() {
    let _g = globals();
    fresh_stack();
    let c = tcp::open().unwrap();
    assert_eq!(
        tcp::connect(c, localhost(5096), true),
        Ok(Connect::InProgress)
    );
    let mut first = 0;
    poll_until("the refusal shows as POLLERR", || {
        first = tcp::readiness(c).0;
        first & POLLERR != 0
    });
    let second = tcp::readiness(c).0;
    assert_eq!(second, first, "looking twice changes nothing");
    assert_ne!(
        second & POLLOUT,
        0,
        "a refused socket stays writable (writes fail)"
    );
    tcp::close(c);
}

#[test]
fn a_second_connect_reports_the_refusal_of_the_first() {
    let _g = globals();
    fresh_stack();
    let c = tcp::open().unwrap();
    assert_eq!(
        tcp::connect(c, localhost(5098), true),
        Ok(Connect::InProgress)
    );
    let mut outcome = None;
    poll_until("connect reports the outcome", || {
        match tcp::connect(c, localhost(5098), true) {
            Err(EALREADY) => false,
            r => {
                outcome = Some(r);
                true
            }
        }
    });
    assert_eq!(outcome, Some(Err(ECONNREFUSED)));
    assert_eq!(tcp::take_error(c), Ok(0), "handed over by connect");
    tcp::close(c);
}

#[test]
fn a_blocking_connect_over_the_loopback_settles_at_once() {
    let _g = globals();
    fresh_stack();
    let l = listener(5005);
    let c = tcp::open().unwrap();
    assert_eq!(tcp::connect(c, localhost(5005), false), Ok(Connect::Done));
    assert_eq!(tcp::connect(c, localhost(5005), false), Err(EISCONN));
    let refused = tcp::open().unwrap();
    assert_eq!(
        tcp::connect(refused, localhost(5097), false),
        Err(ECONNREFUSED)
    );
    for id in [c, refused, l] {
        tcp::close(id);
    }
}

#[test]
fn binding_a_tcp_port_already_in_use_fails_with_eaddrinuse() {
    let _g = globals();
    fresh_stack();
    let l = listener(5006);
    let other = tcp::open().unwrap();
    assert_eq!(tcp::bind(other, loopback_addr(), 5006), Err(EADDRINUSE));
    assert_eq!(
        tcp::bind(other, None, 5006),
        Err(EADDRINUSE),
        "any overlaps"
    );
    tcp::with_opts(other, |o| o.reuseaddr = true).unwrap();
    assert_eq!(
        tcp::bind(other, None, 5006),
        Err(EADDRINUSE),
        "SO_REUSEADDR does not share a listening port"
    );
    assert_eq!(
        tcp::bind(other, None, 5007),
        Ok(5007),
        "another port is free"
    );
    assert_eq!(tcp::bind(other, None, 5008), Err(EINVAL), "bound once only");
    tcp::close(l);
    let again = tcp::open().unwrap();
    assert_eq!(
        tcp::bind(again, loopback_addr(), 5006),
        Ok(5006),
        "a closed listener frees its port"
    );
    for id in [other, again] {
        tcp::close(id);
    }
}

#[test]
fn a_port_0_bind_picks_an_ephemeral_port() {
    let _g = globals();
    fresh_stack();
    let a = tcp::open().unwrap();
    let p = tcp::bind(a, None, 0).unwrap();
    assert!(
        (32768..=60999).contains(&p),
        "{p} in Linux's ephemeral range"
    );
    assert_eq!(tcp::local_endpoint(a).unwrap().port, p);
    tcp::close(a);
}

#[test]
fn shutting_down_the_write_side_makes_the_peer_read_end_of_stream() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5009);
    tcp::send(c, b"last words").unwrap();
    tcp::shutdown(c, false, true).unwrap();
    assert_eq!(recv_exactly(s, 10), b"last words", "data before the FIN");
    let mut buf = [0u8; 16];
    poll_until("the server reads end of stream", || {
        match tcp::recv(s, &mut buf, false) {
            Ok(0) => true,
            Err(EAGAIN) => false,
            r => panic!("recv reported {r:?}"),
        }
    });
    let (rs, _) = tcp::readiness(s);
    assert_eq!(
        rs & (POLLIN | POLLRDHUP),
        POLLIN | POLLRDHUP,
        "readable: EOF"
    );
    assert_eq!(
        rs & POLLOUT,
        POLLOUT,
        "half closed: the server may still write"
    );
    assert_eq!(tcp::send(c, b"more"), Err(EPIPE), "the client shut writing");
    tcp::send(s, b"reply").unwrap();
    assert_eq!(
        recv_exactly(c, 5),
        b"reply",
        "the other direction still works"
    );
    for id in [c, s, l] {
        tcp::close(id);
    }
}

#[test]
fn shutting_down_the_read_side_reads_end_of_stream_at_once() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5010);
    tcp::shutdown(s, true, false).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(tcp::recv(s, &mut buf, false), Ok(0));
    assert_ne!(tcp::readiness(s).0 & POLLIN, 0, "readable: end of stream");
    for id in [c, s, l] {
        tcp::close(id);
    }
}

#[test]
fn closing_a_connection_without_unread_data_ends_it_with_fin() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5011);
    tcp::close(s);
    let mut buf = [0u8; 4];
    poll_until("the client reads end of stream", || {
        match tcp::recv(c, &mut buf, false) {
            Ok(0) => true,
            Err(EAGAIN) => false,
            r => panic!("recv reported {r:?}"),
        }
    });
    for id in [c, l] {
        tcp::close(id);
    }
}

#[test]
fn closing_a_connection_with_unread_data_resets_the_peer() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5012);
    tcp::send(c, b"never read").unwrap();
    poll_until("the server has the data", || {
        tcp::readiness(s).0 & POLLIN != 0
    });
    tcp::close(s);
    let mut buf = [0u8; 4];
    poll_until("the client sees the reset", || {
        match tcp::recv(c, &mut buf, false) {
            Err(ECONNRESET) => true,
            Err(EAGAIN) => false,
            r => panic!("recv reported {r:?}, expected ECONNRESET"),
        }
    });
    let (rc, _) = tcp::readiness(c);
    assert_eq!(
        rc & (POLLIN | POLLHUP),
        POLLIN | POLLHUP,
        "reset: readable, hung up"
    );
    assert_eq!(rc & POLLOUT, 0, "not writable after a reset");
    for id in [c, l] {
        tcp::close(id);
    }
}

#[test]
fn so_linger_zero_closes_with_a_reset() {
    let _g = globals();
    fresh_stack();
    let (l, c, s) = connected(5013);
    tcp::with_opts(s, |o| o.linger = Some(0)).unwrap();
    tcp::close(s);
    let mut buf = [0u8; 4];
    poll_until("the client sees the reset", || {
        match tcp::recv(c, &mut buf, false) {
            Err(ECONNRESET) => true,
            Err(EAGAIN) => false,
            r => panic!("recv reported {r:?}, expected ECONNRESET"),
        }
    });
    for id in [c, l] {
        tcp::close(id);
    }
}

#[test]
fn tcp_calls_on_unusable_sockets_fail_as_on_linux() {
    let _g = globals();
    fresh_stack();
    let a = tcp::open().unwrap();
    assert_eq!(tcp::send(a, b"x"), Err(ENOTCONN));
    let mut buf = [0u8; 1];
    assert_eq!(tcp::recv(a, &mut buf, false), Err(ENOTCONN));
    assert_eq!(
        tcp::accept(a).map(|_| ()),
        Err(EINVAL),
        "accept on a non-listener"
    );
    assert_eq!(
        tcp::connect(a, localhost(0), true),
        Err(ECONNREFUSED),
        "port 0"
    );
    let l = listener(5014);
    assert_eq!(tcp::connect(l, localhost(5014), true), Err(EINVAL));
    assert!(tcp::is_listening(l));
    assert!(!tcp::is_listening(a));
    assert_eq!(
        tcp::bind(a, Some(Ipv4Address::new(10, 1, 2, 3)), 1),
        Err(EADDRNOTAVAIL),
        "not an address of this host"
    );
    tcp::close(a);
    assert_eq!(tcp::send(a, b"x"), Err(EBADF), "closed");
    tcp::close(l);
}

#[test]
fn a_listener_accepts_several_connections_in_order() {
    let _g = globals();
    fresh_stack();
    let l = listener(5015);
    let clients: Vec<tcp::Id> = (0..4)
        .map(|_| {
            let c = tcp::open().unwrap();
            assert_eq!(
                tcp::connect(c, localhost(5015), true),
                Ok(Connect::InProgress)
            );
            c
        })
        .collect();
    let mut peers = Vec::new();
    poll_until("four connections accepted", || {
        while let Ok((s, peer)) = tcp::accept(l) {
            peers.push((s, peer));
        }
        peers.len() == clients.len()
    });
    let want: Vec<IpEndpoint> = clients
        .iter()
        .map(|c| tcp::local_endpoint(*c).unwrap())
        .collect();
    let got: Vec<IpEndpoint> = peers.iter().map(|(_, p)| *p).collect();
    assert_eq!(got, want);
    for (s, _) in peers {
        tcp::close(s);
    }
    for c in clients {
        tcp::close(c);
    }
    tcp::close(l);
}

fn udp_bound(port: u16) -> stack::Sock {
    let k = udp::open().unwrap();
    assert_eq!(
        k.net,
        stack::Net::Lo,
        "no device: sockets live on the loopback"
    );
    assert_eq!(udp::bind(k, loopback_addr(), port), Ok(port));
    k
}

#[test]
fn a_udp_datagram_over_the_loopback_arrives_with_its_sender() {
    let _g = globals();
    fresh_stack();
    let a = udp_bound(6001);
    let b = udp_bound(6002);
    let (r, w, gen_before) = udp::readiness(b);
    assert!(!r, "nothing queued yet");
    assert!(w, "writable");
    assert_eq!(udp::send(a, localhost(6002), b"ping"), Ok(4));
    poll_until("the datagram is readable", || udp::readiness(b).0);
    let (r, w, gen_after) = udp::readiness(b);
    assert!(r && w);
    assert_ne!(gen_before, gen_after, "the arrival is a new edge");
    let mut buf = [0u8; 16];
    assert_eq!(udp::recv(b, &mut buf, false), Ok((4, localhost(6001))));
    assert_eq!(&buf[..4], b"ping");
    assert_eq!(udp::recv(b, &mut buf, false), Err(EAGAIN));
    assert!(!udp::readiness(b).0, "read everything");
    assert_eq!(udp::local_endpoint(b), localhost(6002));
    udp::close(a);
    udp::close(b);
}

#[test]
fn udp_datagrams_keep_their_boundaries_and_order() {
    let _g = globals();
    fresh_stack();
    let a = udp_bound(6003);
    let b = udp_bound(6004);
    for msg in [&b"one"[..], b"two!", b"three"] {
        udp::send(a, localhost(6004), msg).unwrap();
    }
    poll_until("readable", || udp::readiness(b).0);
    let mut buf = [0u8; 64];
    for msg in [&b"one"[..], b"two!", b"three"] {
        let (n, from) = udp::recv(b, &mut buf, false).unwrap();
        assert_eq!(&buf[..n], msg);
        assert_eq!(from, localhost(6003));
    }
    udp::close(a);
    udp::close(b);
}

#[test]
fn a_udp_read_into_a_short_buffer_truncates_and_reports_the_full_length() {
    let _g = globals();
    fresh_stack();
    let a = udp_bound(6005);
    let b = udp_bound(6006);
    let msg: Vec<u8> = (0..100u8).collect();
    udp::send(a, localhost(6006), &msg).unwrap();
    udp::send(a, localhost(6006), b"next").unwrap();
    poll_until("readable", || udp::readiness(b).0);
    let mut small = [0u8; 10];
    assert_eq!(
        udp::recv(b, &mut small, true),
        Ok((100, localhost(6005))),
        "peek"
    );
    assert_eq!(udp::recv(b, &mut small, false), Ok((100, localhost(6005))));
    assert_eq!(small[..], msg[..10]);
    let mut buf = [0u8; 16];
    assert_eq!(
        udp::recv(b, &mut buf, false),
        Ok((4, localhost(6005))),
        "the rest of the truncated datagram is gone, as on Linux"
    );
    assert_eq!(&buf[..4], b"next");
    udp::close(a);
    udp::close(b);
}

#[test]
fn a_large_udp_datagram_crosses_the_loopback_whole_and_a_larger_one_is_refused() {
    let _g = globals();
    fresh_stack();
    let a = udp_bound(6007);
    let b = udp_bound(6008);
    let big: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(udp::send(a, localhost(6008), &big), Ok(big.len()));
    poll_until("readable", || udp::readiness(b).0);
    let mut buf = alloc::vec![0u8; 65536];
    let (n, _) = udp::recv(b, &mut buf, false).unwrap();
    assert_eq!(n, big.len());
    assert!(buf[..n] == big[..], "intact");
    let too_big = alloc::vec![0u8; 64 * 1024 + 1];
    assert_eq!(udp::send(a, localhost(6008), &too_big), Err(EMSGSIZE));
    udp::close(a);
    udp::close(b);
}

#[test]
fn binding_a_udp_port_in_use_fails_and_port_0_picks_an_ephemeral_one() {
    let _g = globals();
    fresh_stack();
    let a = udp_bound(6009);
    let b = udp::open().unwrap();
    assert_eq!(udp::bind(b, loopback_addr(), 6009), Err(EADDRINUSE));
    assert_eq!(udp::bind(b, None, 6009), Err(EADDRINUSE));
    assert_eq!(
        udp::bind(b, Some(Ipv4Address::new(192, 0, 2, 1)), 6010),
        Err(EADDRNOTAVAIL)
    );
    let p = udp::bind(b, None, 0).unwrap();
    assert!(
        (32768..=60999).contains(&p),
        "{p} in Linux's ephemeral range"
    );
    assert_eq!(udp::local_endpoint(b).port, p);
    udp::close(a);
    let c = udp::open().unwrap();
    assert_eq!(udp::bind(c, None, 6009), Ok(6009), "closing freed the port");
    udp::close(b);
    udp::close(c);
}

#[test]
fn an_unbound_udp_socket_gets_an_ephemeral_port_on_first_send() {
    let _g = globals();
    fresh_stack();
    let a = udp::open().unwrap();
    let b = udp_bound(6011);
    assert_eq!(udp::local_endpoint(a).port, 0, "unbound");
    udp::send(a, localhost(6011), b"hi").unwrap();
    let port = udp::local_endpoint(a).port;
    assert!((32768..=60999).contains(&port));
    poll_until("readable", || udp::readiness(b).0);
    let mut buf = [0u8; 4];
    let (n, from) = udp::recv(b, &mut buf, false).unwrap();
    assert_eq!((n, from.port), (2, port));
    // The reply reaches the ephemeral port.
    udp::send(b, from, b"yo").unwrap();
    poll_until("the reply is readable", || udp::readiness(a).0);
    assert_eq!(udp::recv(a, &mut buf, false), Ok((2, localhost(6011))));
    udp::close(a);
    udp::close(b);
}

#[test]
fn a_connected_udp_socket_only_takes_datagrams_from_its_peer() {
    let _g = globals();
    fresh_stack();
    let peer = udp_bound(6012);
    let stranger = udp_bound(6013);
    let me = udp_bound(6014);
    udp::connect(me, localhost(6012)).unwrap();
    assert_eq!(udp::peer(me), Some(localhost(6012)));
    udp::send(stranger, localhost(6014), b"spam").unwrap();
    udp::send(peer, localhost(6014), b"mail").unwrap();
    poll_until("readable", || udp::readiness(me).0);
    let mut buf = [0u8; 8];
    assert_eq!(udp::recv(me, &mut buf, false), Ok((4, localhost(6012))));
    assert_eq!(&buf[..4], b"mail");
    poll_a_while();
    assert_eq!(
        udp::recv(me, &mut buf, false),
        Err(EAGAIN),
        "the stranger's was dropped"
    );
    for k in [peer, stranger, me] {
        udp::close(k);
    }
}
