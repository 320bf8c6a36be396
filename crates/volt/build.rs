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
    for dir in ["crates/libos", "crates/abi"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    // The variants volt embeds: with the network (smoltcp, virtio-net,
    // sockets) and without it (`volt run --net none`).
    build_variant(
        &workspace,
        &target_root.join("guest"),
        "guest,net",
        "OPTIVOLT_LIBOS_PATH",
    );
    build_variant(
        &workspace,
        &target_root.join("guest-nonet"),
        "guest",
        "OPTIVOLT_LIBOS_NONET_PATH",
    );
}

/// Builds the library OS with `features` into `target_dir` and hands its
/// path to the compiler in `env`.
fn build_variant(
    workspace: &std::path::Path,
    target_dir: &std::path::Path,
    features: &str,
    env: &str,
) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "optivolt-libos",
            "--no-default-features",
            "--features",
            features,
            "--bin",
            "optivolt-libos",
        ])
        .arg("--target-dir")
        .arg(target_dir)
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
    println!("cargo:rustc-env={env}={}", image.display());
}
