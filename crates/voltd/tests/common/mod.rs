//! A real voltd on a fresh data directory with a ticker image, and a tiny
//! HTTP client for its Unix socket and TCP port.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "a-test-token-of-some-length";

pub fn volt_bin() -> PathBuf {
    let v = PathBuf::from(env!("CARGO_BIN_EXE_voltd")).with_file_name("volt");
    assert!(
        v.exists(),
        "{} is missing: run the tests with cargo test --workspace",
        v.display()
    );
    v
}

pub fn kvm(test: &str) -> bool {
    if std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("=== SKIPPED {test}: /dev/kvm is not usable ===");
        return false;
    }
    true
}

pub struct Daemon {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Daemon {
    /// A fresh data directory with the ticker image, and voltd on it.
    pub fn new(name: &str) -> Daemon {
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

    pub fn start(&mut self) {
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

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn unix(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let s = UnixStream::connect(&self.sock).unwrap();
        exchange(s, method, path, body, None)
    }

    pub fn tcp(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        exchange(s, method, path, "", token)
    }

    pub fn json(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
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

pub fn exchange(
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
