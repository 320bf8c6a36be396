//! voltd's API against a real voltd (Unix socket and TCP), with instances
//! of a real image.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "a-test-token-of-some-length";

fn volt_bin() -> PathBuf {
    let v = PathBuf::from(env!("CARGO_BIN_EXE_voltd")).with_file_name("volt");
    assert!(
        v.exists(),
        "{} is missing: run the tests with cargo test --workspace",
        v.display()
    );
    v
}

fn kvm(test: &str) -> bool {
    if std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("=== SKIPPED {test}: /dev/kvm is not usable ===");
        return false;
    }
    true
}

struct Daemon {
    dir: PathBuf,
    sock: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Daemon {
    /// A fresh data directory with the ticker image, and voltd on it.
    fn new(name: &str) -> Daemon {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("voltd")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ctx/rootfs/app")).unwrap();
        let src = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../volt/tests/programs/ticker.c"
        );
        let st = Command::new("musl-gcc")
            .args(["-static", "-O2", "-o"])
            .arg(dir.join("ctx/rootfs/app/ticker"))
            .arg(src)
            .status()
            .unwrap();
        assert!(st.success(), "musl-gcc");
        std::fs::write(
            dir.join("ctx/Voltfile"),
            "spec: v1\nname: ticker\nrootfs: ./rootfs\ncmd: [\"/app/ticker\", \"0\"]\nmemory: 32M\n",
        )
        .unwrap();
        let o = Command::new(volt_bin())
            .env("VOLT_DATA_DIR", dir.join("data"))
            .args(["build", "-q", "-t", "ticker:1"])
            .arg(dir.join("ctx"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut d = Daemon {
            sock: dir.join("v.sock"),
            dir,
            port,
            child: None,
        };
        d.start();
        d
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_voltd"))
            .env("VOLT_DATA_DIR", self.dir.join("data"))
            .arg("--listen")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--listen")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--token-file")
            .arg(self.dir.join("token"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.sock).is_err() {
            assert!(Instant::now() < until, "voltd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn unix(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let s = UnixStream::connect(&self.sock).unwrap();
        exchange(s, method, path, body, None)
    }

    fn tcp(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        exchange(s, method, path, "", token)
    }

    fn json(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (st, b) = self.unix(method, path, body);
        (
            st,
            serde_json::from_str(&b).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Every instance goes, then voltd.
        if let Some((_, serde_json::Value::Array(v))) = self
            .child
            .as_ref()
            .map(|_| self.json("GET", "/v1/instances", ""))
        {
            for i in v {
                let _ = self.unix(
                    "DELETE",
                    &format!(
                        "/v1/instances/{}?force=true",
                        i["id"].as_str().unwrap_or("")
                    ),
                    "",
                );
            }
        }
        self.kill9();
    }
}

fn exchange(
    mut s: impl Read + Write,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: voltd\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, b)) if head.to_lowercase().contains("transfer-encoding: chunked") => dechunk(b),
        Some((_, b)) => b.to_string(),
        None => String::new(),
    };
    (status, body)
}

fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = b.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        b = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn the_whole_lifecycle_of_an_instance() {
    if !kvm("the_whole_lifecycle_of_an_instance") {
        return;
    }
    let d = Daemon::new("lifecycle");
    let (st, v) = d.json(
        "POST",
        "/v1/instances",
        r#"{"name":"t1","image":"ticker:1","memory":"32M","restart":"on-failure"}"#,
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["name"], "t1");
    assert_eq!(v["state"], "running");
    let (st, list) = d.json("GET", "/v1/instances", "");
    assert_eq!(st, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // Its output, then followed as it comes.
    std::thread::sleep(Duration::from_millis(400));
    let (st, logs) = d.unix("GET", "/v1/instances/t1/logs?tail=2", "");
    assert_eq!(st, 200);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    let first: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap()).unwrap();
    assert!(first["l"].as_str().unwrap().starts_with("tick "), "{first}");
    let (st, m) = d.json("GET", "/v1/instances/t1/metrics", "");
    assert_eq!(st, 200);
    assert!(
        m["cpu_seconds"].as_f64().is_some() && m["rss_bytes"].as_u64().unwrap_or(0) > 0,
        "{m}"
    );
    // The name is taken.
    let (st, e) = d.json(
        "POST",
        "/v1/instances",
        r#"{"name":"t1","image":"ticker:1"}"#,
    );
    assert_eq!((st, e["code"].as_str()), (409, Some("conflict")), "{e}");
    // Stop (the follower of its log ends with it), start, delete.
    let follower = {
        let sock = d.sock.clone();
        std::thread::spawn(move || {
            exchange(
                UnixStream::connect(sock).unwrap(),
                "GET",
                "/v1/instances/t1/logs?follow=true",
                "",
                None,
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (st, v) = d.json("POST", "/v1/instances/t1/stop?timeout=5", "");
    assert_eq!((st, v["state"].as_str()), (200, Some("stopped")), "{v}");
    let (st, followed) = follower.join().unwrap();
    assert_eq!(st, 200);
    assert!(followed.lines().count() > 2, "{followed}");
    let (st, v) = d.json("POST", "/v1/instances/t1/start", "");
    assert_eq!((st, v["state"].as_str()), (200, Some("running")), "{v}");
    let (st, e) = d.json("DELETE", "/v1/instances/t1", "");
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("conflict")),
        "running, no force"
    );
    let (st, _) = d.unix("DELETE", "/v1/instances/t1?force=true", "");
    assert_eq!(st, 204);
    let (st, e) = d.json("GET", "/v1/instances/t1", "");
    assert_eq!((st, e["code"].as_str()), (404, Some("not_found")));
}

#[test]
fn tcp_needs_the_token_and_bad_requests_are_json_problems() {
    if !kvm("tcp_needs_the_token_and_bad_requests_are_json_problems") {
        return;
    }
    let d = Daemon::new("bad");
    assert_eq!(d.tcp("GET", "/v1/instances", None).0, 401);
    let (st, b) = d.tcp("GET", "/v1/instances", Some("wrong-token-wrong-token"));
    assert_eq!(st, 401);
    assert!(b.contains("\"code\":\"unauthorized\""), "{b}");
    assert_eq!(d.tcp("GET", "/v1/instances", Some(TOKEN)).0, 200);
    for (body, status, needle) in [
        ("{not json", 400, "bad_request"),
        (r#"{"image":"ticker:1","colour":"red"}"#, 422, "colour"),
        (r#"{"image":"nope:1"}"#, 404, "no such image"),
        (r#"{"image":"ticker:1","memory":"lots"}"#, 400, "memory"),
    ] {
        let (st, b) = d.unix("POST", "/v1/instances", body);
        assert_eq!(st, status, "{body}: {b}");
        assert!(b.contains(needle), "{body}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).expect("a JSON problem");
        assert!(v["code"].is_string() && v["message"].is_string(), "{b}");
    }
    let big = format!(
        r#"{{"image":"ticker:1","args":["{}"]}}"#,
        "x".repeat(100 << 10)
    );
    let (st, b) = d.unix("POST", "/v1/instances", &big);
    assert_eq!(st, 413, "{b}");
    // Nothing was half-made.
    let (_, list) = d.json("GET", "/v1/instances", "");
    assert_eq!(list, serde_json::json!([]));
    let (st, b) = d.unix("GET", "/v1/nothing", "");
    assert_eq!(st, 404);
    assert!(b.contains("not_found"));
    // The served document is the checked-in one.
    let (st, doc) = d.unix("GET", "/v1/openapi.json", "");
    assert_eq!(st, 200);
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap();
    assert_eq!(doc.trim_end(), file.trim_end());
}

#[test]
fn instances_outlive_voltd_and_are_scraped() {
    if !kvm("instances_outlive_voltd_and_are_scraped") {
        return;
    }
    let mut d = Daemon::new("survive");
    for n in ["a", "b", "c"] {
        let (st, v) = d.json(
            "POST",
            "/v1/instances",
            &format!(r#"{{"name":"{n}","image":"ticker:1"}}"#),
        );
        assert_eq!(st, 201, "{v}");
    }
    let pids = |d: &Daemon| -> Vec<i64> {
        let (_, v) = d.json("GET", "/v1/instances", "");
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["pid"].as_i64().unwrap_or(0))
            .collect()
    };
    let before = pids(&d);
    d.kill9();
    assert!(
        before
            .iter()
            .all(|p| Path::new(&format!("/proc/{p}")).exists()),
        "the VMs outlive voltd"
    );
    d.start();
    let (_, v) = d.json("GET", "/v1/instances", "");
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["state"] == "running"));
    assert_eq!(pids(&d), before);
    // One scrape has them all, without a token.
    let (st, text) = d.tcp("GET", "/metrics", None);
    assert_eq!(st, 200);
    for n in ["a", "b", "c"] {
        assert!(
            text.contains(&format!(
                "volt_instance_running{{instance=\"{n}\",image=\"ticker:1\"}} 1"
            )),
            "{text}"
        );
    }
    assert!(text.contains("volt_instance_cpu_seconds{"), "{text}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}
