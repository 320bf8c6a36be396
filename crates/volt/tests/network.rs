//! The guest on a network: a tap created by `volt run --net tap:NAME`
//! inside a private network namespace (so nothing touches the machine's
//! own network), the host side configured by the test.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::net::{boot_on_tap, boot_on_tap_then, in_private_netns, ip};
use common::{kvm_available, program, volt};

#[test]
fn the_guest_answers_ping_through_its_tap() {
    if !kvm_available("the_guest_answers_ping_through_its_tap") {
        return;
    }
    let sleeper = program("sleeper", "musl");
    in_private_netns("the_guest_answers_ping_through_its_tap", move || {
        let guest = boot_on_tap("ovping0", &sleeper, &[], &["3"]);
        let ping = Command::new("ping")
            .args(["-c", "3", "-i", "0.2", "-W", "2", "10.0.7.2"])
            .output()
            .expect("run ping (the README's test command installs iputils-ping)");
        let out = String::from_utf8_lossy(&ping.stdout);
        let st = guest.wait();
        assert!(ping.status.success(), "{out}");
        assert!(out.contains("3 received"), "{out}");
        assert!(st.success(), "{st}");
        // The tap goes with the monitor.
        assert!(!ip(&["link", "show", "ovping0"]), "tap left behind");
    });
}

#[test]
fn bad_network_options_fail_in_one_line() {
    let hello = program("hello", "musl");
    for args in [
        &["--net", "bridge:x"][..],
        &["--net", "tap:"],
        &["--net", "tap:a-name-far-too-long"],
        &["--net", "tap:ov0", "--ip", "10.0.7.2"],
        &["--net", "tap:ov0", "--ip", "10.0.7.300/24"],
        &["--ip", "10.0.7.2/24"],
    ] {
        let out = volt().arg("run").args(args).arg(&hello).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("--net") || err.contains("--ip"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn without_cap_net_admin_the_tap_error_comes_before_any_vm() {
    if !kvm_available("without_cap_net_admin_the_tap_error_comes_before_any_vm") {
        return;
    }
    let hello = program("hello", "musl");
    let volt_bin = env!("CARGO_BIN_EXE_volt").to_owned();
    in_private_netns(
        "without_cap_net_admin_the_tap_error_comes_before_any_vm",
        move || {
            let out = Command::new("setpriv")
                .args(["--bounding-set=-net_admin", "--inh-caps=-net_admin"])
                .arg(&volt_bin)
                .args(["run", "--net", "tap:ovperm0", "--ip", "10.0.7.2/24"])
                .arg(&hello)
                .output();
            let out = match out {
                Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("setpriv:") => o,
                _ => {
                    eprintln!("=== SKIPPED the no-CAP_NET_ADMIN case: setpriv cannot drop the capability here ===");
                    return;
                }
            };
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains("cannot create tap ovperm0") && err.contains("CAP_NET_ADMIN"),
                "{err}"
            );
            assert!(out.stdout.is_empty(), "the program ran");
            assert!(!ip(&["link", "show", "ovperm0"]), "tap left behind");
        },
    );
}

#[test]
fn a_udp_echo_server_in_the_guest_answers_the_host() {
    if !kvm_available("a_udp_echo_server_in_the_guest_answers_the_host") {
        return;
    }
    let server = program("udpecho", "musl");
    in_private_netns(
        "a_udp_echo_server_in_the_guest_answers_the_host",
        move || {
            let guest = boot_on_tap("ovudp0", &server, &["--timeout", "20"], &["7777", "3"]);
            let sock = std::net::UdpSocket::bind("10.0.7.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 2048];
            for i in 0..3 {
                let msg = format!("datagram {i}");
                // UDP may be lost before the guest's ARP entry exists: resend
                // until answered, for at most 10 s.
                let deadline = Instant::now() + Duration::from_secs(10);
                let n = loop {
                    assert!(Instant::now() < deadline, "no echo for {msg}");
                    sock.send_to(msg.as_bytes(), "10.0.7.2:7777").unwrap();
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        assert_eq!(from.to_string(), "10.0.7.2:7777");
                        break n;
                    }
                };
                assert_eq!(String::from_utf8_lossy(&buf[..n]), format!("echo: {msg}"));
            }
            let out = guest.wait_with_output();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.starts_with("listening on 7777\n"), "{stdout}");
            assert_eq!(stdout.matches("echoed").count(), 3, "{stdout}");
            assert!(stdout.contains("from 10.0.7.1"), "{stdout}");
        },
    );
}

#[test]
fn a_connected_udp_client_in_the_guest_reaches_the_host() {
    if !kvm_available("a_connected_udp_client_in_the_guest_reaches_the_host") {
        return;
    }
    let client = program("udpclient", "musl");
    in_private_netns(
        "a_connected_udp_client_in_the_guest_reaches_the_host",
        move || {
            // Bound before the link is up: a fast guest sends at once.
            let (guest, sock) = boot_on_tap_then(
                "ovcli0",
                &client,
                &["--timeout", "20"],
                &["10.0.7.1", "9999"],
                || std::net::UdpSocket::bind("10.0.7.1:9999").unwrap(),
            );
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf).expect("a datagram from the guest");
            assert_eq!(&buf[..n], b"hello");
            assert_eq!(from.ip().to_string(), "10.0.7.2");
            sock.send_to(b"world", from).unwrap();
            let out = guest.wait_with_output();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout, "reply from 10.0.7.1:9999: world\n");
        },
    );
}

#[test]
fn udp_over_the_loopback_works_with_a_device_attached() {
    if !kvm_available("udp_over_the_loopback_works_with_a_device_attached") {
        return;
    }
    let p = program("udpself", "musl");
    let native = common::native(&p, &[], &[]);
    assert!(native.status.success(), "{native:?}");
    in_private_netns(
        "udp_over_the_loopback_works_with_a_device_attached",
        move || {
            // With a device, UDP sockets live on its interface; their
            // loopback twins carry 127.0.0.1.
            let prog = p.to_str().expect("path");
            let out =
                common::net::spawn_volt(&["--net", "tap:ovudp1", "--ip", "10.0.7.2/24", prog])
                    .wait_with_output();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&native.stdout)
            );
            // Without one, everything is on the loopback.
            let out = common::unikernel(&p, &[], &[], &[]);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&native.stdout)
            );
        },
    );
}
