//! Shared helpers for the integration tests: building the test programs,
//! running them natively and under `volt`, skipping VM tests without KVM.
#![allow(dead_code)]

pub mod net;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `volt` binary under test.
pub fn volt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_volt"))
}

/// True when VM tests can run; otherwise prints one loud line and returns false.
pub fn kvm_available(test: &str) -> bool {
    if Path::new("/dev/kvm").exists() {
        return true;
    }
    eprintln!("=== SKIPPED {test}: /dev/kvm does not exist on this machine; no VM was booted ===");
    false
}

fn programs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("programs");
    std::fs::create_dir_all(&d).expect("create the test-program directory");
    d
}

fn build(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run the compiler for {what}: {e} (the README's test command installs musl-tools)"));
    assert!(
        out.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds (once per test binary) and returns the path of a test program.
/// `kind`: "musl" (musl-gcc -static), "glibc" (gcc -static), "dyn" (gcc, dynamic), "rust" (rustc +crt-static),
/// "go" (a directory with main.go), "cargo" (a directory with a Cargo project).
pub fn program(name: &str, kind: &str) -> PathBuf {
    static LOCK: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _g = LOCK
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let out = out_dir().join(format!("{name}-{kind}"));
    // Built before, and not older than its source (a `.c`/`.rs` file or a
    // directory with its sources): reuse it.
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let dir = programs_dir().join(name);
    let sources: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => ["c", "rs"]
            .iter()
            .map(|x| programs_dir().join(format!("{name}.{x}")))
            .collect(),
    };
    let newest = sources.iter().filter_map(|p| modified(p)).max();
    if let Some(built) = modified(&out) {
        if newest.is_none_or(|n| n <= built) {
            return out;
        }
    }
    let tmp = out.with_extension("tmp");
    match kind {
        "musl" => build(
            Command::new("musl-gcc")
                .args(["-static", "-O2", "-o"])
                .arg(&tmp)
                .arg(programs_dir().join(format!("{name}.c"))),
            name,
        ),
        "glibc" => build(
            Command::new("gcc")
                .args(["-static", "-O2", "-o"])
                .arg(&tmp)
                .arg(programs_dir().join(format!("{name}.c"))),
            name,
        ),
        "dyn" => build(
            Command::new("gcc")
                .args(["-O2", "-o"])
                .arg(&tmp)
                .arg(programs_dir().join(format!("{name}.c"))),
            name,
        ),
        "rust" => build(
            Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
                .args([
                    "-O",
                    "-C",
                    "target-feature=+crt-static",
                    "--edition",
                    "2021",
                    "-o",
                ])
                .arg(&tmp)
                .arg(programs_dir().join(format!("{name}.rs"))),
            name,
        ),
        "go" => {
            let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            build(
                Command::new("go")
                    .args(["build", "-trimpath", "-o"])
                    .arg(out.with_extension("tmp"))
                    .arg("main.go")
                    .current_dir(programs_dir().join(name))
                    .env("CGO_ENABLED", "0")
                    .env("GOCACHE", tmp.join("gocache"))
                    .env("GOPATH", tmp.join("gopath"))
                    .env("HOME", &tmp)
                    .env("GOFLAGS", "-buildvcs=false"),
                name,
            )
        }
        "cargo" => {
            // A Cargo project of its own (its lock file pins the crates),
            // linked statically.
            let dir = programs_dir().join(name);
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-target"));
            build(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .args([
                        "build",
                        "--release",
                        "--locked",
                        "--target",
                        "x86_64-unknown-linux-gnu",
                    ])
                    .arg("--manifest-path")
                    .arg(dir.join("Cargo.toml"))
                    .arg("--target-dir")
                    .arg(&target)
                    .env("RUSTFLAGS", "-C target-feature=+crt-static")
                    .env_remove("CARGO_ENCODED_RUSTFLAGS"),
                name,
            );
            std::fs::copy(
                target.join("x86_64-unknown-linux-gnu/release").join(name),
                &tmp,
            )
            .expect("copy the built program");
        }
        _ => panic!("unknown program kind {kind}"),
    }
    std::fs::rename(&tmp, &out).expect("move the built program");
    out
}

/// Runs `prog args` natively with exactly `env`, from the program's directory as `./name`.
pub fn native(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = prog.parent().expect("program directory");
    let rel = format!(
        "./{}",
        prog.file_name()
            .and_then(|n| n.to_str())
            .expect("program name")
    );
    // Bounded like the unikernel runs (volt run --timeout 60).
    Command::new("timeout")
        .arg("60")
        .arg(&rel)
        .current_dir(dir)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run natively")
}

/// Runs `volt run [opts] ./name args` from the program's directory with `--env` for each of `env`.
pub fn unikernel(prog: &Path, opts: &[&str], args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = prog.parent().expect("program directory");
    let rel = format!(
        "./{}",
        prog.file_name()
            .and_then(|n| n.to_str())
            .expect("program name")
    );
    let mut c = volt();
    c.current_dir(dir)
        .arg("run")
        .args(opts)
        .arg("--timeout")
        .arg("60");
    for (k, v) in env {
        c.arg("--env").arg(format!("{k}={v}"));
    }
    c.arg(&rel)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run volt")
}

/// Asserts that two runs printed the same and exited the same.
pub fn assert_same(native: &Output, uni: &Output) {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        s(&uni.stdout),
        s(&native.stdout),
        "stdout differs (unikernel stderr: {})",
        s(&uni.stderr)
    );
    assert_eq!(s(&uni.stderr), s(&native.stderr), "stderr differs");
    assert_eq!(
        uni.status.code(),
        native.status.code(),
        "exit status differs (stderr: {})",
        s(&uni.stderr)
    );
}

/// The differential test: `prog args` natively, then as a unikernel with
/// `opts` twice — with patched system-call sites (the default) and with
/// every call trapping (`--syscalls trap`). Both must print and exit as
/// natively; returns the patched run.
pub fn differential(prog: &Path, opts: &[&str], args: &[&str], env: &[(&str, &str)]) -> Output {
    let n = native(prog, args, env);
    same_in_both_modes(&n, |extra| {
        let all: Vec<&str> = opts.iter().chain(extra).copied().collect();
        unikernel(prog, &all, args, env)
    })
}

/// Runs `run` with no extra `volt run` options and with `--syscalls trap`,
/// and asserts each printed and exited as `native`; returns the first.
pub fn same_in_both_modes(native: &Output, run: impl Fn(&[&str]) -> Output) -> Output {
    let trapped = run(&["--syscalls", "trap"]);
    assert_same(native, &trapped);
    let patched = run(&[]);
    assert_same(native, &patched);
    patched
}

/// A scratch directory with volt state of its own (`VOLT_DATA_DIR` in it),
/// for the tests of images, registries and instances. Instances a test
/// leaves behind are removed when it ends, even when it fails.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    /// `$CARGO_TARGET_TMPDIR/GROUP/NAME`, fresh, with an empty `rootfs/app`.
    pub fn new(group: &str, name: &str) -> Scratch {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(group)
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rootfs/app")).expect("create the scratch directory");
        Scratch { dir }
    }

    /// `volt ARGS` in the directory, with its state there.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = volt();
        c.current_dir(&self.dir)
            .env("VOLT_DATA_DIR", self.dir.join("data"))
            .args(args);
        c
    }

    pub fn volt(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run volt")
    }

    /// What `volt ARGS` printed on stdout, whatever its status.
    pub fn out(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.volt(args).stdout).into_owned()
    }

    /// What `volt ARGS` printed on stdout; it must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.volt(args);
        assert!(
            o.status.success(),
            "volt {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.dir.join("data/volt.db").exists() {
            return;
        }
        if let Ok(v) =
            serde_json::from_str::<serde_json::Value>(&self.out(&["ps", "-a", "-o", "json"]))
        {
            for i in v.as_array().into_iter().flatten() {
                let _ = self.volt(&["rm", "-f", i["id"].as_str().unwrap_or("")]);
            }
        }
    }
}

/// A failure with exactly one line on stderr, volt's, saying `needle`.
pub fn one_line_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "expected a failure: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(
        err.starts_with("volt: ") && err.contains(needle),
        "expected {needle:?} in: {err}"
    );
}
