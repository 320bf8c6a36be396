//! Helpers for tests that need a network: a private network namespace per
//! test (nothing touches the machine's own network), a guest on a tap, and
//! a small HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::volt;

#[allow(unused_imports)]
pub use optivolt_testnet::{in_private_netns, ip};

/// Starts `program` as a unikernel on tap `tap` (guest 10.0.7.2/24), waits
/// for volt to create the tap, and gives the host side 10.0.7.1/24.
pub fn boot_on_tap(tap: &str, program: &Path, volt_args: &[&str], args: &[&str]) -> Volt {
    boot_on_tap_then(tap, program, volt_args, args, || ()).0
}

/// As [`boot_on_tap`], running `ready` once the host's address exists but
/// before the link is up (so a server it starts listens before the guest
/// can reach it: a fast guest connects at once).
pub fn boot_on_tap_then<T>(
    tap: &str,
    program: &Path,
    volt_args: &[&str],
    args: &[&str],
    ready: impl FnOnce() -> T,
) -> (Volt, T) {
    let guest = Volt(Some(
        volt()
            .args(["run", "--net", &format!("tap:{tap}"), "--ip", "10.0.7.2/24"])
            .args(volt_args)
            .arg(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // The tap exists once volt has opened it.
    let t = Instant::now();
    while !ip(&["link", "show", tap]) {
        assert!(t.elapsed() < Duration::from_secs(5), "no tap after 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ip(&["addr", "add", "10.0.7.1/24", "dev", tap]));
    let r = ready();
    assert!(ip(&["link", "set", tap, "up"]));
    (guest, r)
}

/// An HTTP response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Reads one response (Content-Length or chunked body) from `r`.
pub fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, line.clone()))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk"))?;
            let at = body.len();
            body.resize(at + n, 0);
            r.read_exact(&mut body[at..])?;
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
            if n == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response { status, body })
}

/// One request on a fresh connection.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    read_response(&mut BufReader::new(s))
}

/// GETs `path` until it answers (the guest is booting), at most `limit`.
pub fn wait_for_http(addr: SocketAddr, path: &str, limit: Duration) -> Response {
    let t = Instant::now();
    loop {
        match http(addr, "GET", path, b"") {
            Ok(r) => return r,
            Err(e) => assert!(
                t.elapsed() < limit,
                "no answer from {addr} after {limit:?}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Network interfaces in this namespace other than the loopback.
pub fn links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
        .filter(|n| n != "lo")
        .collect()
}

/// A running `volt`, killed if the test ends (or panics) without stopping
/// it, so a failing test leaves no VM behind.
pub struct Volt(Option<Child>);

impl Volt {
    /// Sends `sig` and waits; the exit status code (`None`: killed by it).
    pub fn stop(mut self, sig: i32) -> Option<i32> {
        let mut c = self.0.take().expect("running");
        // SAFETY: signals our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
        c.wait().expect("wait for volt").code()
    }

    /// Waits for volt to end by itself.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0
            .take()
            .expect("running")
            .wait()
            .expect("wait for volt")
    }

    /// Waits for volt to end by itself, collecting its output.
    pub fn wait_with_output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("wait for volt")
    }
}

impl Drop for Volt {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `volt run` with `args` (stdout and stderr piped).
pub fn spawn_volt(args: &[&str]) -> Volt {
    Volt(Some(
        volt()
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start volt"),
    ))
}

/// Whether `path` exists (for programs given by path).
pub fn exists(p: &Path) -> bool {
    p.exists()
}
