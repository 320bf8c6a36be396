//! Snapshots end to end: a Go web server's in-memory counter survives
//! `volt snapshot` and two `volt restore`s running side by side, a restored
//! instance can be saved again, `--stop` ends an instance for good, and a
//! truncated, damaged or foreign file is refused with one line before any
//! VM starts. Everything runs inside a private network namespace.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::net::{http, in_private_netns, wait_for_http};
use common::*;

/// `volt run -d --name NAME [EXTRA…] -p 127.0.0.1:PORT:8080 goweb serve :8080`.
fn serve(c: &Scratch, goweb: &str, name: &str, port: u16, extra: &[&str]) {
    let publish = format!("127.0.0.1:{port}:8080");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend(["-p", publish.as_str(), goweb, "serve", ":8080"]);
    c.ok(&args);
}

fn count(port: u16) -> u64 {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = wait_for_http(addr, "/count", Duration::from_secs(20));
    assert_eq!(r.status, 200);
    String::from_utf8_lossy(&r.body).trim().parse().unwrap()
}

#[test]
fn a_go_server_restored_twice_continues_from_its_saved_counter() {
    let test = "a_go_server_restored_twice_continues_from_its_saved_counter";
    if !kvm_available(test) {
        return;
    }
    let web = program("goweb", "go");
    in_private_netns(test, move || {
        let c = Scratch::new("snapshot", "counter");
        let w = web.to_str().unwrap();
        serve(&c, w, "web", 8080, &[]);
        for want in 1..=3 {
            assert_eq!(count(8080), want);
        }
        let out = c.ok(&["snapshot", "web", "web.snap"]);
        assert!(
            out.contains("web.snap") && out.contains("MiB on disk"),
            "{out}"
        );
        // The original goes on.
        assert_eq!(count(8080), 4);
        // Two restores at once, each from the saved counter.
        c.ok(&[
            "restore",
            "-d",
            "--name",
            "r1",
            "-p",
            "127.0.0.1:8081:8080",
            "web.snap",
        ]);
        c.ok(&[
            "restore",
            "-d",
            "--name",
            "r2",
            "-p",
            "127.0.0.1:8082:8080",
            "web.snap",
        ]);
        assert_eq!(count(8081), 4);
        assert_eq!(count(8082), 4);
        assert_eq!(count(8081), 5);
        assert_eq!(count(8080), 5);
        let r = http("127.0.0.1:8082".parse().unwrap(), "GET", "/", b"").unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "hello from goweb\n");
        // A restored instance is saved again (its memory is partly still
        // the first file's) and restored from the new file.
        c.ok(&["snapshot", "r1", "r1.snap"]);
        std::fs::remove_file(c.dir.join("web.snap")).unwrap();
        c.ok(&[
            "restore",
            "-d",
            "--name",
            "r3",
            "-p",
            "127.0.0.1:8083:8080",
            "r1.snap",
        ]);
        assert_eq!(count(8083), 6);
        assert_eq!(count(8082), 5, "r2 does not see r1's or r3's requests");
        // --stop: saved, then ended for good (its restart policy does not apply).
        serve(&c, w, "st", 8084, &["--restart", "always"]);
        assert_eq!(count(8084), 1);
        c.ok(&["snapshot", "--stop", "st", "st.snap"]);
        let t = std::time::Instant::now();
        loop {
            let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", "st"])).unwrap();
            if v[0]["state"] == "exited" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "st still {}", v[0]);
            std::thread::sleep(Duration::from_millis(50));
        }
        c.ok(&[
            "restore",
            "-d",
            "--name",
            "st2",
            "-p",
            "127.0.0.1:8084:8080",
            "st.snap",
        ]);
        assert_eq!(count(8084), 2);
    });
}

#[test]
fn damaged_or_foreign_snapshots_are_refused_before_a_vm_starts() {
    let test = "damaged_or_foreign_snapshots_are_refused_before_a_vm_starts";
    if !kvm_available(test) {
        return;
    }
    let web = program("goweb", "go");
    in_private_netns(test, move || {
        let c = Scratch::new("snapshot", "damaged");
        let w = web.to_str().unwrap();
        serve(&c, w, "web", 8080, &[]);
        assert_eq!(count(8080), 1);
        c.ok(&["snapshot", "web", "good.snap"]);
        // A snapshot that cannot be written: one line, and the VM goes on.
        one_line_error(
            &c.volt(&["snapshot", "web", "/nonexistent-dir/x.snap"]),
            "cannot create the snapshot file",
        );
        assert_eq!(count(8080), 2);
        c.ok(&["rm", "-f", "web"]);
        let good = std::fs::read(c.dir.join("good.snap")).unwrap();
        let len = good.len() as u64;

        // Truncated: shorter than its header says.
        std::fs::copy(c.dir.join("good.snap"), c.dir.join("short.snap")).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(c.dir.join("short.snap"))
            .unwrap();
        f.set_len(len - 4096 * 100).unwrap();
        drop(f);
        // The state damaged: one byte flipped in it.
        let mut bad = good.clone();
        bad[4096 + 40] ^= 0x5a;
        std::fs::write(c.dir.join("flipped.snap"), &bad).unwrap();
        // The header damaged.
        let mut bad = good.clone();
        bad[20] ^= 1;
        std::fs::write(c.dir.join("header.snap"), &bad).unwrap();
        drop(good);
        std::fs::write(c.dir.join("text.snap"), b"not a snapshot at all\n").unwrap();

        for (file, needle) in [
            ("short.snap", "truncated"),
            ("flipped.snap", "corrupt"),
            ("header.snap", "corrupt"),
            ("text.snap", "not an OptiVolt snapshot"),
            ("missing.snap", "No such file"),
        ] {
            one_line_error(&c.volt(&["restore", file]), needle);
            let d = c.volt(&["restore", "-d", "--name", "x", file]);
            one_line_error(&d, needle);
        }
        // Nothing was created.
        let ps = c.ok(&["ps", "-a", "-q"]);
        assert!(ps.trim().is_empty(), "{ps}");
        // A snapshot of an instance that is not running.
        one_line_error(
            &c.volt(&["snapshot", "nosuch", "x.snap"]),
            "no such instance",
        );
        // The undamaged file still restores.
        c.ok(&[
            "restore",
            "-d",
            "--name",
            "ok",
            "-p",
            "127.0.0.1:8080:8080",
            "good.snap",
        ]);
        assert_eq!(count(8080), 2);
    });
}

#[test]
fn a_networked_instance_comes_back_on_its_network_from_standby() {
    let test = "a_networked_instance_comes_back_on_its_network_from_standby";
    if !kvm_available(test) {
        return;
    }
    let web = program("goweb", "go");
    let get = program("httpget", "musl");
    in_private_netns(test, move || {
        let c = Scratch::new("snapshot", "network");
        let _ = c.volt(&["network", "rm", "snapnet"]);
        c.ok(&["network", "create", "snapnet"]);
        let w = web.to_str().unwrap();
        serve(&c, w, "srv", 8080, &["--network", "snapnet"]);
        assert_eq!(count(8080), 1);
        assert_eq!(count(8080), 2);
        c.ok(&["standby", "srv"]);
        let v: serde_json::Value = serde_json::from_str(&c.ok(&["inspect", "srv"])).unwrap();
        assert_eq!(v[0]["state"], "standby", "{}", v[0]);
        assert!(std::net::TcpStream::connect("127.0.0.1:8080").is_err());
        // Out of standby: where it was, on its network, at its address.
        c.ok(&["start", "srv"]);
        assert_eq!(count(8080), 3);
        let out = c.ok(&[
            "run",
            "--network",
            "snapnet",
            get.to_str().unwrap(),
            "srv",
            "8080",
            "/count",
        ]);
        assert!(
            out.contains('4'),
            "a guest on the network reaches it by name: {out}"
        );
        // A restore that does not fit the network is refused before a VM starts.
        c.ok(&["snapshot", "srv", "srv.snap"]);
        let _ = c.volt(&["network", "rm", "othernet"]);
        c.ok(&["network", "create", "othernet"]);
        one_line_error(
            &c.volt(&["restore", "--network", "othernet", "srv.snap"]),
            "was not on network othernet",
        );
        one_line_error(
            &c.volt(&["restore", "--network", "snapnet", "srv.snap"]),
            "in use on network snapnet",
        );
        c.ok(&["rm", "-f", "srv"]);
        c.ok(&["network", "rm", "snapnet"]);
        c.ok(&["network", "rm", "othernet"]);
    });
}
