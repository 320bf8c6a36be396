//! Registries end to end: Debian's docker-registry on 127.0.0.1, `volt
//! push` → `rmi` → `pull` → `run` with digests checked against what
//! skopeo reads; an image pushed by skopeo pulled and run; a registry that
//! is down; a pull that resumes an interrupted download, and one whose
//! partial download is corrupt.
mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Registry {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_registry(dir: &std::path::Path) -> Option<Registry> {
    start_registry_with(dir, "")
}

/// A registry whose config ends with `extra` (an `auth:` section).
fn start_registry_with(dir: &std::path::Path, extra: &str) -> Option<Registry> {
    let port = free_port();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let r = Registry {
        child,
        port,
        _dir: dir.to_path_buf(),
    };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(r)
}

type Ctx = Scratch;

impl Scratch {
    fn cmd_stdin(&self, args: &[&str]) -> Command {
        let mut c = volt();
        c.current_dir(&self.dir)
            .env("VOLT_DATA_DIR", self.dir.join("data"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn blobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("data/images/blobs/sha256"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Builds `name` from the hello program printing `word`.
    fn hello_image(&self, name: &str, word: &str) {
        let dst = self.dir.join("rootfs/app/hello");
        std::fs::copy(program("hello", "musl"), dst).unwrap();
        std::fs::write(
            self.dir.join("Voltfile"),
            format!("spec: v1\nrootfs: ./rootfs\ncmd: [/app/hello, {word}]\n"),
        )
        .unwrap();
        self.ok(&["build", "-q", "-t", name, "."]);
    }
}

fn needs(test: &str) -> bool {
    if !kvm_available(test) {
        return false;
    }
    for tool in ["docker-registry", "skopeo"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            eprintln!("=== SKIPPED {test}: {tool} is not installed (the README's test command installs it) ===");
            return false;
        }
    }
    true
}

fn skopeo_digest(reference: &str) -> String {
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn push_rmi_pull_run_against_a_local_registry_with_the_digests_skopeo_reads() {
    let name = "push_rmi_pull_run_against_a_local_registry_with_the_digests_skopeo_reads";
    if !needs(name) {
        return;
    }
    let c = Ctx::new("registry", "roundtrip");
    let reg = start_registry(&c.dir.join("registry")).unwrap();
    let image = format!("localhost:{}/team/hello:1", reg.port);
    c.hello_image(&image, "registry");
    let pushed = c.ok(&["push", "-q", &image]).trim().to_string();
    assert!(
        pushed.starts_with("sha256:") && pushed.len() == 71,
        "{pushed}"
    );
    assert_eq!(
        skopeo_digest(&image),
        pushed,
        "skopeo reads what volt pushed"
    );
    // Pushing again sends no blob the registry has (and still succeeds).
    assert_eq!(c.ok(&["push", "-q", &image]).trim(), pushed);
    c.ok(&["rmi", &image]);
    assert!(c.blobs().is_empty(), "{:?}", c.blobs());
    let pulled = c.ok(&["pull", "-q", &image]).trim().to_string();
    assert_eq!(pulled, pushed);
    assert_eq!(c.blobs().len(), 3);
    let out = c.volt(&["run", &image]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, registry\n");
    // An image pushed by skopeo (from our store, an OCI layout) comes back too.
    let other = format!("localhost:{}/skopeo/hello:2", reg.port);
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}:{image}",
            c.dir.join("data/images").display()
        ))
        .arg(format!("docker://{other}"))
        .status()
        .unwrap();
    assert!(st.success());
    c.ok(&["rmi", &image]);
    c.ok(&["pull", &other]);
    let out = c.volt(&["run", &other]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, registry\n");
}

#[test]
fn a_registry_that_is_down_or_an_unknown_image_fails_in_one_line_storing_nothing() {
    let name = "a_registry_that_is_down_or_an_unknown_image_fails_in_one_line_storing_nothing";
    if !needs(name) {
        return;
    }
    let c = Ctx::new("registry", "down");
    let port = free_port();
    for (args, needle) in [
        (
            vec!["pull".to_string(), format!("localhost:{port}/x:1")],
            "cannot be reached".to_string(),
        ),
        (
            vec!["pull".into(), "web:1".into()],
            "names no registry".into(),
        ),
        (
            vec!["push".into(), format!("localhost:{port}/none:1")],
            "no such image".into(),
        ),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = c.volt(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0));
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&needle), "{needle} in {err}");
    }
    let reg = start_registry(&c.dir.join("registry")).unwrap();
    let o = c.volt(&["pull", &format!("localhost:{}/nothing:1", reg.port)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("manifest unknown"), "{err}");
    assert!(c.blobs().is_empty());
    assert_eq!(c.ok(&["images", "-q"]), "");
}

#[test]
fn a_pull_resumes_a_partial_download_and_refuses_a_corrupt_one() {
    let name = "a_pull_resumes_a_partial_download_and_refuses_a_corrupt_one";
    if !needs(name) {
        return;
    }
    let c = Ctx::new("registry", "resume");
    let reg = start_registry(&c.dir.join("registry")).unwrap();
    let image = format!("localhost:{}/resume:1", reg.port);
    c.hello_image(&image, "resumed");
    c.ok(&["push", &image]);
    // The layer is the biggest blob; keep its bytes, then empty the store.
    let blobs = c.dir.join("data/images/blobs/sha256");
    let (layer, bytes) = std::fs::read_dir(&blobs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .max_by_key(|(_, b)| b.len())
        .unwrap();
    c.ok(&["rmi", &image]);
    // A download that stopped half-way: the pull goes on from there.
    std::fs::write(
        blobs.join(format!("{layer}.partial")),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    c.ok(&["pull", &image]);
    assert_eq!(std::fs::read(blobs.join(&layer)).unwrap(), bytes);
    assert!(!blobs.join(format!("{layer}.partial")).exists());
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", &image]).stdout),
        "hello, resumed\n"
    );
    // A partial download with wrong bytes: the digest check refuses it and
    // nothing is stored; the next pull starts over and succeeds.
    c.ok(&["rmi", &image]);
    let mut bad = bytes[..bytes.len() / 2].to_vec();
    bad[0] ^= 0xff;
    std::fs::write(blobs.join(format!("{layer}.partial")), &bad).unwrap();
    let o = c.volt(&["pull", &image]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(c.blobs().is_empty(), "{:?}", c.blobs());
    assert_eq!(c.ok(&["images", "-q"]), "");
    c.ok(&["pull", &image]);
    assert_eq!(std::fs::read(blobs.join(&layer)).unwrap(), bytes);
}

#[test]
fn login_checks_credentials_and_push_and_pull_use_them() {
    let name = "login_checks_credentials_and_push_and_pull_use_them";
    if !needs(name) {
        return;
    }
    let c = Ctx::new("registry", "login");
    let regdir = c.dir.join("registry");
    std::fs::create_dir_all(&regdir).unwrap();
    let Ok(o) = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
    else {
        eprintln!("=== SKIPPED {name}: htpasswd is not installed (the README's test command installs apache2-utils) ===");
        return;
    };
    std::fs::write(regdir.join("htpasswd"), &o.stdout).unwrap();
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: volt-test\n    path: {}\n",
        regdir.join("htpasswd").display()
    );
    let reg = start_registry_with(&regdir, &auth).unwrap();
    let registry = format!("localhost:{}", reg.port);
    let image = format!("{registry}/private/hello:1");
    c.hello_image(&image, "private");
    // Without credentials: refused, in one line.
    let o = c.volt(&["push", &image]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not authorized") && err.lines().count() == 1,
        "{err}"
    );
    let login = |password: &str| {
        let mut ch = c
            .cmd_stdin(&["login", &registry, "-u", "alice", "--password-stdin"])
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(ch.stdin.take().unwrap(), "{password}").unwrap();
        ch.wait_with_output().unwrap()
    };
    let o = login("wrong");
    assert!(String::from_utf8_lossy(&o.stderr).contains("login refused"));
    assert!(
        !c.dir.join("data/auth.json").exists(),
        "nothing stored for a refused login"
    );
    assert!(login("s3cret").status.success());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(c.dir.join("data/auth.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    c.ok(&["push", &image]);
    c.ok(&["rmi", &image]);
    c.ok(&["pull", &image]);
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", &image]).stdout),
        "hello, private\n"
    );
}
