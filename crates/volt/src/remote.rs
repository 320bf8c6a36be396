//! The CLI on voltd's API: with `--host` or `VOLT_HOST` (`unix:///PATH` or
//! `tcp://ADDR:PORT`; a token in `VOLT_TOKEN` or the file `VOLT_TOKEN_FILE`),
//! `ps`, `run -d`, `stop`, `start`, `restart`, `rm`, `logs` and `inspect`
//! go through voltd and print what they print alone. A small HTTP/1.1
//! client on hyper's connection API, over the socket or TCP.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use crate::instances::{LogsArgs, Shown};

enum Target {
    Unix(PathBuf),
    Tcp(String),
}

/// A voltd to talk to.
pub struct Host {
    target: Target,
    token: Option<String>,
}

/// Where voltd listens by default (`voltd --listen unix:///run/volt.sock`).
pub const DEFAULT_SOCKET: &str = "/run/volt.sock";

/// The voltd the user named, if any.
pub fn host() -> Result<Option<Host>> {
    let Some(h) = std::env::var_os("VOLT_HOST") else {
        return Ok(None);
    };
    let h = h.to_string_lossy().into_owned();
    let target = if let Some(p) = h.strip_prefix("unix://") {
        Target::Unix(PathBuf::from(p))
    } else if let Some(a) = h.strip_prefix("tcp://") {
        Target::Tcp(a.to_string())
    } else {
        bail!("VOLT_HOST={h}: expected unix:///PATH or tcp://ADDR:PORT");
    };
    let token = match (
        std::env::var("VOLT_TOKEN"),
        std::env::var_os("VOLT_TOKEN_FILE"),
    ) {
        (Ok(t), _) => Some(t),
        (_, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read VOLT_TOKEN_FILE {}", f.to_string_lossy()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
        _ => None,
    };
    Ok(Some(Host { target, token }))
}

/// An answer: status and body.
struct Answer(u16, Vec<u8>);

/// What sees a streamed body, piece by piece.
type OnChunk<'a> = Option<&'a mut dyn FnMut(&[u8]) -> Result<()>>;

impl Host {
    /// voltd on a Unix socket, with the token from the environment if any.
    pub fn unix(path: &str) -> Result<Host> {
        Ok(Host {
            target: Target::Unix(PathBuf::from(path)),
            token: std::env::var("VOLT_TOKEN").ok(),
        })
    }

    /// A JSON call; a problem object becomes the error.
    pub fn call_json(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        self.call(method, path, body)
    }

    fn where_(&self) -> String {
        match &self.target {
            Target::Unix(p) => format!("unix://{}", p.display()),
            Target::Tcp(a) => format!("tcp://{a}"),
        }
    }

    /// One request; `each_chunk` sees the body as it comes (for followed logs).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        mut each_chunk: OnChunk<'_>,
    ) -> Result<Answer> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "voltd")
                .header("content-type", "application/json");
            if let Some(t) = &self.token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let data = body.map(|b| b.to_string()).unwrap_or_default();
            let req = req.body(Full::new(Bytes::from(data)))?;
            let cant =
                |e: std::io::Error| anyhow::anyhow!("cannot reach voltd at {}: {e}", self.where_());
            let resp = match &self.target {
                Target::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await.map_err(cant)?;
                    send(hyper_util::rt::TokioIo::new(s), req).await?
                }
                Target::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a).await.map_err(cant)?;
                    send(hyper_util::rt::TokioIo::new(s), req).await?
                }
            };
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut all = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("reading voltd's answer")?;
                if let Some(d) = frame.data_ref() {
                    match (&mut each_chunk, status) {
                        (Some(f), 200) => f(d)?,
                        _ => all.extend_from_slice(d),
                    }
                }
            }
            Ok(Answer(status, all))
        })
    }

    /// The JSON of a 2xx answer; a problem object becomes the error.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let Answer(st, b) = self.request(method, path, body, None)?;
        let v: serde_json::Value = if b.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&b)
                .with_context(|| format!("voltd answered {st} with something else than JSON"))?
        };
        if !(200..300).contains(&st) {
            let msg = v["message"].as_str().unwrap_or("no message");
            bail!("{msg}");
        }
        Ok(v)
    }

    pub fn instances(&self) -> Result<Vec<Shown>> {
        let v = self.call("GET", "/v1/instances", None)?;
        v.as_array().into_iter().flatten().map(shown).collect()
    }

    pub fn instance(&self, name: &str) -> Result<Shown> {
        shown(&self.call("GET", &format!("/v1/instances/{}", enc(name)), None)?)
    }

    pub fn post(&self, path: &str) -> Result<()> {
        self.call("POST", path, None).map(|_| ())
    }

    pub fn delete(&self, path: &str) -> Result<()> {
        self.call("DELETE", path, None).map(|_| ())
    }

    /// Every name is checked first, as without voltd; then `f` on each, printing its name.
    pub fn each(&self, names: &[String], f: impl Fn(&Host, &str) -> Result<()>) -> Result<i32> {
        let found = names
            .iter()
            .map(|n| self.instance(n))
            .collect::<Result<Vec<_>>>()?;
        for i in found {
            f(self, &enc(&i.id))?;
            println!("{}", i.name);
        }
        Ok(0)
    }

    /// `volt snapshot` through voltd (the file is written by voltd's host).
    pub fn snapshot(
        &self,
        name: &str,
        file: &std::path::Path,
        stop: bool,
    ) -> Result<crate::snapshot::control::Taken> {
        let body = serde_json::json!({ "path": file, "stop": stop });
        let path = format!("/v1/instances/{}/snapshot", enc(name));
        let v = self.call("POST", &path, Some(body))?;
        serde_json::from_value(v).context("voltd's snapshot answer")
    }

    /// `volt restore -d FILE` through voltd (the file is on voltd's host):
    /// the new instance's ID.
    pub fn restore(
        &self,
        name: Option<&str>,
        file: &std::path::Path,
        ports: &[String],
        restart: Option<crate::restart::Policy>,
    ) -> Result<String> {
        let body = serde_json::json!({
            "name": name,
            "snapshot": file,
            "ports": ports,
            "restart": restart.map(|r| r.to_string()),
        });
        let v = self.call("POST", "/v1/instances", Some(body))?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// `volt run -d IMAGE` through voltd: the new instance's ID.
    pub fn create(&self, a: &crate::run::RunArgs) -> Result<String> {
        let image = a.binary().to_string_lossy().into_owned();
        if a.rootfs.is_some()
            || !a.include.is_empty()
            || image.starts_with('/')
            || image.starts_with('.')
        {
            bail!("with VOLT_HOST, volt run -d takes an image from voltd's store (voltd pulls it: POST /v1/images/pull), not a file");
        }
        let env: serde_json::Map<String, serde_json::Value> = a
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.into())),
                None => bail!("--env {e}: give KEY=VALUE with VOLT_HOST"),
            })
            .collect::<Result<_>>()?;
        let body = serde_json::json!({
            "name": a.name,
            "image": image,
            "args": a.args().iter().map(|s| s.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "env": env,
            "memory": a.memory.map(|m| format!("{}K", m >> 10)),
            "ports": a.publish,
            "restart": a.restart.as_ref().map(|r| r.to_string()),
            "volumes": a.volumes,
            "network": a.network,
        });
        let v = self.call("POST", "/v1/instances", Some(body))?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    pub fn logs(&self, a: &LogsArgs) -> Result<i32> {
        let id = self.instance(&a.instance)?.id;
        let mut q = format!("/v1/instances/{}/logs?follow={}", enc(&id), a.follow);
        if let Some(n) = a.tail {
            q.push_str(&format!("&tail={n}"));
        }
        let from = a
            .since
            .map(|s| (crate::instance::now() - s.as_secs() as i64) * 1_000_000_000);
        let mut pending = Vec::new();
        let timestamps = a.timestamps;
        let mut print = |chunk: &[u8]| -> Result<()> {
            pending.extend_from_slice(chunk);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                if let Ok(e) = serde_json::from_slice::<crate::instance::logs::Entry>(&line) {
                    if from.is_none_or(|f| e.t >= f) {
                        crate::instance::logs::print(&[e], timestamps)?;
                    }
                }
            }
            Ok(())
        };
        let Answer(st, b) = self.request("GET", &q, None, Some(&mut print))?;
        if st != 200 {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            bail!("{}", v["message"].as_str().unwrap_or("voltd refused"));
        }
        Ok(0)
    }
}

async fn send<T>(
    io: T,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("talking HTTP to voltd")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tx.send_request(req)
        .await
        .context("sending the request to voltd")
}

/// A path segment, percent-encoded where needed.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// voltd's instance object as the CLI shows it (`state` there is the
/// control plane's name; volt's own is `volt_state`).
fn shown(v: &serde_json::Value) -> Result<Shown> {
    let mut o = v.clone();
    if let Some(m) = o.as_object_mut() {
        let vs = m.remove("volt_state").unwrap_or_default();
        m.insert("state".into(), vs);
    }
    serde_json::from_value(o).context("voltd's instance object")
}
