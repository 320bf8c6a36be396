//! Builds the library OS (a freestanding guest ELF) with a nested cargo
//! invocation, so that `cargo build`/`cargo test` need no extra step, and
//! hands its path to `include_bytes!` through OPTIVOLT_LIBOS_PATH.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    let target_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let target_dir = target_root.join("guest");
    for dir in ["crates/libos", "crates/abi"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "optivolt-libos",
            "--features",
            "guest",
            "--bin",
            "optivolt-libos",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--config", "profile.release.panic=\"abort\""])
        .args(["--config", "profile.release.lto=true"])
        .args(["--config", "profile.release.codegen-units=1"])
        // Optimised for size: 300 KB of code instead of 430 KB keeps a C
        // hello bootable in 2 MiB of guest memory; the HTTP and system-call
        // benchmarks measured no slower (the time goes to traps, not code).
        .args(["--config", "profile.release.opt-level=\"s\""]);
    // The guest has its own flags (build.rs of the library OS): nothing from the
    // outer build or .cargo/config.toml (crt-static) may leak in. An empty
    // CARGO_ENCODED_RUSTFLAGS takes precedence over every other source.
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "");
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the library OS");
    if !status.success() {
        panic!("building the library OS failed ({status})");
    }
    let image = target_dir.join("x86_64-unknown-linux-gnu/release/optivolt-libos");
    println!("cargo:rustc-env=OPTIVOLT_LIBOS_PATH={}", image.display());
}
