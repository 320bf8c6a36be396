//! `volt compose` and `volt network`: services on a project network that
//! find each other by name.
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::net::{http, in_private_netns};
use common::*;

/// A build context: a Voltfile and `rootfs/app/NAME` = `prog`.
fn context(dir: &Path, prog: &Path, name: &str, cmd: &str) {
    std::fs::create_dir_all(dir.join("rootfs/app")).unwrap();
    std::fs::copy(prog, dir.join("rootfs/app").join(name)).unwrap();
    std::fs::write(
        dir.join("Voltfile"),
        format!("spec: v1\nname: {name}\nrootfs: ./rootfs\ncmd: {cmd}\nmemory: 64M\n"),
    )
    .unwrap();
}

#[test]
fn two_services_where_one_calls_the_other_by_name() {
    if !kvm_available("two_services_where_one_calls_the_other_by_name") {
        return;
    }
    in_private_netns("two_services_where_one_calls_the_other_by_name", || {
        let s = Scratch::new("compose", "two");
        let proj = s.dir.join("proj");
        context(
            &proj.join("web"),
            &program("goweb", "go"),
            "goweb",
            r#"["/app/goweb", "serve", ":8080"]"#,
        );
        context(
            &proj.join("client"),
            &program("httpget", "musl"),
            "httpget",
            r#"["/app/httpget", "web", "8080", "/"]"#,
        );
        std::fs::write(
            proj.join("compose.yaml"),
            "name: ctest\nservices:\n  web:\n    build: ./web\n    ports: [\"127.0.0.1:18080:8080\"]\n    restart: on-failure\n    \
             volumes: [\"data:/data\", \"./conf:/etc/web:ro\"]\n  client:\n    build: ./client\n    depends_on: [web]\n\
             volumes:\n  data: {}\n",
        )
        .unwrap();
        std::fs::create_dir_all(proj.join("conf")).unwrap();
        let compose = |args: &[&str]| {
            let mut a = vec!["compose", "-f", "proj/compose.yaml"];
            a.extend_from_slice(args);
            s.volt(&a)
        };
        let up = compose(&["up", "-d"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let ps = String::from_utf8_lossy(&compose(&["ps"]).stdout).into_owned();
        assert!(
            ps.contains("ctest-web-1") && ps.contains("ctest-client-1"),
            "{ps}"
        );
        // The client resolved "web" through its /etc/hosts and got the page.
        let deadline = Instant::now() + Duration::from_secs(30);
        let logs = loop {
            let l = String::from_utf8_lossy(&compose(&["logs", "client"]).stdout).into_owned();
            if l.contains("hello from goweb") || Instant::now() > deadline {
                break l;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(logs.contains("ctest-client-1 | hello from goweb"), "{logs}");
        // The published port reaches the web service on the project network.
        let r = http("127.0.0.1:18080".parse().unwrap(), "GET", "/", b"").unwrap();
        assert_eq!(r.body, b"hello from goweb\n");
        let nets = s.ok(&["network", "ls", "-q"]);
        assert_eq!(nets, "ctest_default\n");
        let rm = s.volt(&["network", "rm", "ctest_default"]);
        one_line_error(&rm, "in use by");
        let down = compose(&["down"]);
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
        assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
        assert_eq!(s.ok(&["network", "ls", "-q"]), "");
        assert!(!Path::new("/run/netns/volt-ctest_default").exists());
    });
}

#[test]
fn networks_and_their_bad_input() {
    let s = Scratch::new("compose", "networks");
    let bad = s.volt(&["compose", "-f", "nope.yaml", "ps"]);
    one_line_error(&bad, "nope.yaml");
    std::fs::write(
        s.dir.join("compose.yaml"),
        "services:\n  a:\n    image: x\n    cap_add: [ALL]\n",
    )
    .unwrap();
    one_line_error(
        &s.volt(&["compose", "-p", "x", "ps"]),
        "\"cap_add\" is not supported",
    );
    one_line_error(
        &s.volt(&["run", "--network", "missing", "/bin/true"]),
        "no such network: missing",
    );
    one_line_error(
        &s.volt(&["network", "rm", "missing"]),
        "no such network: missing",
    );
    one_line_error(&s.volt(&["network", "create", "a/b"]), "not a network name");
    if !in_private_netns("networks_and_their_bad_input", move || {
        let made = s.ok(&["network", "create", "--subnet", "10.77.5.0/24", "vnt1"]);
        assert_eq!(made, "vnt1 10.77.5.0/24\n");
        one_line_error(&s.volt(&["network", "create", "vnt1"]), "already exists");
        let v: serde_json::Value =
            serde_json::from_str(&s.ok(&["network", "inspect", "vnt1"])).unwrap();
        assert_eq!(v[0]["gateway"], "10.77.5.1");
        assert!(Path::new("/run/netns/volt-vnt1").exists());
        let o = s.volt(&[
            "run",
            "--network",
            "vnt1",
            "--ip",
            "10.77.6.9/24",
            "/bin/true",
        ]);
        one_line_error(&o, "not a guest address of network vnt1");
        s.ok(&["network", "rm", "vnt1"]);
        assert!(!Path::new("/run/netns/volt-vnt1").exists());
    }) {}
}
