//! Servers in the guest reached through `volt run -p`, and clients in the
//! guest reaching the host: each test runs in a network namespace of its
//! own, with the published ports on its 127.0.0.1.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::net::{
    boot_on_tap_then, http, in_private_netns, links, read_response, spawn_volt, wait_for_http,
};
use common::{kvm_available, program, volt};

const WEB: &str = "127.0.0.1:8080";
const WEB_MAP: &str = "127.0.0.1:8080:8080";

fn web() -> SocketAddr {
    WEB.parse().expect("address")
}

/// Boots the Go web server with `--memory MEM -p 127.0.0.1:8080:8080` and
/// waits for its first answer.
fn serve_goweb(goweb: &std::path::Path, memory: &str) -> common::net::Volt {
    let p = goweb.to_str().expect("path");
    let v = spawn_volt(&["--memory", memory, "-p", WEB_MAP, p, "serve", ":8080"]);
    wait_for_http(web(), "/", Duration::from_secs(20));
    v
}

/// Nothing of the VM is left: no tap, the host port is free again.
fn assert_clean(port: u16) {
    assert!(links().is_empty(), "left behind: {:?}", links());
    TcpListener::bind(("127.0.0.1", port)).expect("the published port is still taken");
}

/// Boots `prog args` with `-p 127.0.0.1:8080:8080`, checks the greeting,
/// then stops volt with SIGTERM and checks nothing is left.
fn serves_through_p(
    test: &str,
    prog: std::path::PathBuf,
    args: &'static [&'static str],
    greeting: &'static str,
) {
    if !kvm_available(test) {
        return;
    }
    in_private_netns(test, move || {
        let p = prog.to_str().expect("path").to_owned();
        let mut a = vec!["-p", "127.0.0.1:8080:8080", &p];
        a.extend_from_slice(args);
        let v = spawn_volt(&a);
        let r = wait_for_http(web(), "/", Duration::from_secs(20));
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8_lossy(&r.body), greeting);
        assert_eq!(links().len(), 1, "volt's tap");
        // Keep-alive: several requests on one connection.
        let mut s = TcpStream::connect(web()).expect("connect");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        for _ in 0..5 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("request");
            let resp = read_response(&mut r).expect("response");
            assert_eq!(String::from_utf8_lossy(&resp.body), greeting);
        }
        drop((s, r));
        // volt passes SIGTERM on to the program, whose default action ends it.
        assert_eq!(
            v.stop(libc::SIGTERM),
            Some(143),
            "the program ends by the signal"
        );
        assert_clean(8080);
    });
}

#[test]
fn a_go_net_http_server_answers_through_p() {
    serves_through_p(
        "a_go_net_http_server_answers_through_p",
        program("goweb", "go"),
        &["serve", ":8080"],
        "hello from goweb\n",
    );
}

#[test]
fn a_rust_std_server_answers_through_p() {
    serves_through_p(
        "a_rust_std_server_answers_through_p",
        program("httpd", "rust"),
        &["0.0.0.0:8080"],
        "hello from rust std\n",
    );
}

#[test]
fn a_tokio_hyper_server_answers_through_p() {
    serves_through_p(
        "a_tokio_hyper_server_answers_through_p",
        program("hyperhello", "cargo"),
        &["0.0.0.0:8080"],
        "hello from tokio and hyper\n",
    );
}

#[test]
fn a_go_http_client_in_the_guest_fetches_from_the_host() {
    if !kvm_available("a_go_http_client_in_the_guest_fetches_from_the_host") {
        return;
    }
    let goweb = program("goweb", "go");
    in_private_netns(
        "a_go_http_client_in_the_guest_fetches_from_the_host",
        move || {
            // The host side's server, on the tap's address, listening before
            // the guest runs (a fast guest connects at once).
            let (v, l) = boot_on_tap_then(
                "ovcli0",
                &goweb,
                &[],
                &["get", "http://10.0.7.1:8099/hi"],
                || TcpListener::bind("10.0.7.1:8099").expect("bind on the tap"),
            );
            l.set_nonblocking(false).expect("blocking");
            let (mut c, _) = l.accept().expect("the guest connects");
            c.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).expect("request");
                assert!(n > 0, "the guest closed early");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(
                req.starts_with(b"GET /hi HTTP/1.1\r\n"),
                "{}",
                String::from_utf8_lossy(&req)
            );
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\nhello from host")
            .expect("answer");
            drop(c);
            let out = v.wait_with_output();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "200 hello from host",
                "stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success());
        },
    );
}

#[test]
fn udp_is_published_too() {
    if !kvm_available("udp_is_published_too") {
        return;
    }
    let echo = program("udpecho", "musl");
    in_private_netns("udp_is_published_too", move || {
        let p = echo.to_str().expect("path").to_owned();
        let v = spawn_volt(&["-p", "127.0.0.1:5555:7777/udp", &p, "7777", "1000"]);
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let t = Instant::now();
        let mut buf = [0u8; 64];
        let n = loop {
            s.send_to(b"ping over -p", "127.0.0.1:5555").expect("send");
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                break n;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no UDP echo");
        };
        assert_eq!(&buf[..n], b"echo: ping over -p");
        assert_eq!(v.stop(libc::SIGINT), Some(130));
        assert!(links().is_empty(), "left behind: {:?}", links());
    });
}

#[test]
fn a_thousand_connections_with_ten_keep_alive_requests_each() {
    if !kvm_available("a_thousand_connections_with_ten_keep_alive_requests_each") {
        return;
    }
    let goweb = program("goweb", "go");
    in_private_netns(
        "a_thousand_connections_with_ten_keep_alive_requests_each",
        move || {
            let v = serve_goweb(&goweb, "512M");
            // Every connection is open before any request is sent.
            const CONNS: usize = 1000;
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(CONNS));
            let threads: Vec<_> = (0..CONNS)
                .map(|_| {
                    let barrier = barrier.clone();
                    std::thread::Builder::new()
                        .stack_size(128 << 10)
                        .spawn(move || -> Result<usize, String> {
                            let s = TcpStream::connect_timeout(&web(), Duration::from_secs(30));
                            barrier.wait();
                            let mut s = s.map_err(|e| format!("connect: {e}"))?;
                            s.set_read_timeout(Some(Duration::from_secs(60)))
                                .map_err(|e| e.to_string())?;
                            let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
                            let mut ok = 0;
                            for _ in 0..10 {
                                s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                                    .map_err(|e| format!("request: {e}"))?;
                                let resp =
                                    read_response(&mut r).map_err(|e| format!("response: {e}"))?;
                                if resp.status == 200 && resp.body == b"hello from goweb\n" {
                                    ok += 1;
                                }
                            }
                            Ok(ok)
                        })
                        .expect("thread")
                })
                .collect();
            let mut answered = 0;
            let mut errors = Vec::new();
            for t in threads {
                match t.join().expect("client thread") {
                    Ok(n) => answered += n,
                    Err(e) => errors.push(e),
                }
            }
            assert!(
                errors.is_empty(),
                "{} connections failed, e.g. {:?}",
                errors.len(),
                &errors[..errors.len().min(3)]
            );
            assert_eq!(answered, CONNS * 10);
            assert_eq!(v.stop(libc::SIGTERM), Some(143));
            assert_clean(8080);
        },
    );
}

/// The bytes /bytes?n=N sends.
fn pattern(n: usize) -> impl Iterator<Item = u8> {
    (0..n).map(|i| ((i % 65536) * 7) as u8)
}

#[test]
fn two_hundred_fifty_six_mib_each_way_arrive_intact() {
    if !kvm_available("two_hundred_fifty_six_mib_each_way_arrive_intact") {
        return;
    }
    use sha2::{Digest, Sha256};
    let goweb = program("goweb", "go");
    in_private_netns(
        "two_hundred_fifty_six_mib_each_way_arrive_intact",
        move || {
            const N: usize = 256 << 20;
            let v = serve_goweb(&goweb, "256M");
            // Host to guest: the guest hashes what it received.
            let mut data = vec![0u8; N];
            let mut x: u32 = 12345;
            for b in data.iter_mut() {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                *b = (x >> 24) as u8;
            }
            let want = hex(&Sha256::digest(&data));
            let r = http(web(), "POST", "/sha256", &data).expect("upload");
            assert_eq!(String::from_utf8_lossy(&r.body), format!("{N} {want}\n"));
            // Guest to host.
            let r = http(web(), "GET", &format!("/bytes?n={N}"), b"").expect("download");
            assert_eq!(r.body.len(), N);
            let want: Vec<u8> = pattern(N).collect();
            assert_eq!(hex(&Sha256::digest(&r.body)), hex(&Sha256::digest(&want)));
            assert_eq!(v.stop(libc::SIGTERM), Some(143));
            assert_clean(8080);
        },
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_guest_that_ends_abruptly_leaves_the_host_clean() {
    if !kvm_available("a_guest_that_ends_abruptly_leaves_the_host_clean") {
        return;
    }
    let goweb = program("goweb", "go");
    in_private_netns(
        "a_guest_that_ends_abruptly_leaves_the_host_clean",
        move || {
            let v = serve_goweb(&goweb, "64M");
            // Connections open, one mid-request, when the guest exits.
            let mut idle = TcpStream::connect(web()).expect("connect");
            let mut busy = TcpStream::connect(web()).expect("connect");
            busy.write_all(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\npartial",
            )
            .expect("partial request");
            let _ = http(web(), "GET", "/exit", b"");
            let status = v.wait();
            assert_eq!(status.code(), Some(3), "the guest's exit status");
            let mut buf = [0u8; 16];
            idle.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            assert!(
                matches!(idle.read(&mut buf), Ok(0) | Err(_)),
                "connection still served"
            );
            assert!(
                matches!(busy.read(&mut buf), Ok(0) | Err(_)),
                "connection still served"
            );
            assert_clean(8080);
            assert!(TcpStream::connect(web()).is_err(), "someone still listens");
        },
    );
}

#[test]
fn bad_publish_input_fails_in_one_line_and_leaves_nothing() {
    if !kvm_available("bad_publish_input_fails_in_one_line_and_leaves_nothing") {
        return;
    }
    let goweb = program("goweb", "go");
    let volt_bin = env!("CARGO_BIN_EXE_volt").to_owned();
    in_private_netns(
        "bad_publish_input_fails_in_one_line_and_leaves_nothing",
        move || {
            let one_line = |out: std::process::Output, what: &str| {
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                assert_eq!(out.status.code(), Some(125), "{what}: {err}");
                assert_eq!(err.lines().count(), 1, "{what}: {err}");
                assert!(out.stdout.is_empty(), "{what}: the program ran");
                assert!(links().is_empty(), "{what}: left behind {:?}", links());
                err
            };
            // A port already in use.
            let taken = TcpListener::bind(WEB).expect("bind");
            let out = volt()
                .args(["run", "-p", "127.0.0.1:8080:80"])
                .arg(&goweb)
                .args(["serve", ":80"])
                .output()
                .expect("volt");
            let err = one_line(out, "port in use");
            assert!(
                err.contains("127.0.0.1:8080") && err.contains("in use"),
                "{err}"
            );
            drop(taken);
            // Invalid mappings.
            for bad in [
                "8080",
                "x:80",
                "80:0",
                "70000:80",
                "80:80/sctp",
                "1.2.3:80:80",
            ] {
                let out = volt()
                    .args(["run", "-p", bad])
                    .arg(&goweb)
                    .output()
                    .expect("volt");
                let err = one_line(out, bad);
                assert!(err.contains("-p"), "{bad}: {err}");
            }
            // Two mappings of one host port.
            let out = volt()
                .args(["run", "-p", "8080:80", "-p", "127.0.0.1:8080:81"])
                .arg(&goweb)
                .output()
                .expect("volt");
            one_line(out, "duplicate");
            // No permission to make a tap.
            let out = Command::new("setpriv")
                .args(["--bounding-set=-net_admin", "--inh-caps=-net_admin"])
                .arg(&volt_bin)
                .args(["run", "-p", "127.0.0.1:8080:80"])
                .arg(&goweb)
                .output();
            match out {
            Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("setpriv:") => {
                let err = one_line(o, "no CAP_NET_ADMIN");
                assert!(err.contains("CAP_NET_ADMIN"), "{err}");
            }
            _ => eprintln!("=== SKIPPED the no-CAP_NET_ADMIN case: setpriv cannot drop the capability here ==="),
        }
            TcpListener::bind(WEB).expect("port free afterwards");
        },
    );
}
