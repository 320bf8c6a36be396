#!/bin/sh
# Every test: installs what the tests need (as root, with apt-get), then runs
# formatting and lint checks and the whole test suite. Tests that boot VMs run
# wherever /dev/kvm exists and say loudly when they skip.
set -eu
cd "$(dirname "$0")/.."
need=""
command -v musl-gcc >/dev/null 2>&1 || need="$need musl-tools"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need="$need libc6-dev"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v go >/dev/null 2>&1 || need="$need golang-go"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v ping >/dev/null 2>&1 || need="$need iputils-ping"
[ -x /usr/bin/python3 ] || need="$need python3"
# Debian's own servers, run as unikernels by tests/servers.rs.
[ -x /usr/sbin/nginx ] || need="$need nginx-light"
[ -x /usr/bin/redis-server ] || need="$need redis-server"
[ -x /usr/bin/redis-benchmark ] || need="$need redis-tools"
[ -d /usr/lib/python3/dist-packages/prometheus_client ] || need="$need python3-prometheus-client"
# OCI images made by other tools, imported and read back by tests/images.rs.
command -v skopeo >/dev/null 2>&1 || need="$need skopeo"
command -v umoci >/dev/null 2>&1 || need="$need umoci"
command -v buildah >/dev/null 2>&1 || need="$need buildah"
# A registry on 127.0.0.1 for tests/registry.rs.
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
command -v htpasswd >/dev/null 2>&1 || need="$need apache2-utils"
# Headless Chromium renders the suite's report in tests/suite.rs.
command -v chromium >/dev/null 2>&1 || need="$need chromium"
# podman (with runc) as one of the suite's runtimes (tests/suite.rs).
command -v podman >/dev/null 2>&1 || need="$need podman"
command -v runc >/dev/null 2>&1 || need="$need runc"
command -v crun >/dev/null 2>&1 || need="$need crun"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
# QEMU (microvm) as the suite's microVM runtime, with Debian's cloud kernel.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
# containerd and ctr for volt-runtime (tests/containerd.rs).
command -v containerd >/dev/null 2>&1 || need="$need containerd"
# A real Prometheus scrapes voltd (crates/voltd/tests/prometheus.rs).
[ -x /usr/bin/prometheus ] || need="$need prometheus"
# A venv for openapi-spec-validator (PyPI), which checks docs/openapi.json.
python3 -c 'import ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
# Rootless -p (tests/rootless.rs) and setpriv to become an ordinary user.
command -v pasta >/dev/null 2>&1 || need="$need passt"
command -v setpriv >/dev/null 2>&1 || need="$need util-linux"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
    else
        echo "test.sh: missing$need; run as root so that apt-get can install them" >&2
        exit 1
    fi
fi
# A Linux kernel for the suite's microVM rows (tests/suite.rs): Debian's
# cloud kernel, unpacked from its package, not installed.
if ! ls target/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    mkdir -p target/kernel
    (cd target/kernel && apt-get download -qq "$pkg" 2>/dev/null && dpkg-deb -x "$pkg"_*.deb . && rm -f "$pkg"_*.deb)
fi
if [ ! -x target/pyvenv/bin/openapi-spec-validator ]; then
    python3 -m venv target/pyvenv && target/pyvenv/bin/pip install -q openapi-spec-validator
fi
[ -e /dev/kvm ] || echo "=== WARNING: /dev/kvm is missing: every test that boots a VM will be SKIPPED ===" >&2
python3 .ci/layers.py
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The guest binary too (its own flags: no crt-static, panic=abort).
CARGO_ENCODED_RUSTFLAGS= cargo clippy --locked -p optivolt-libos --features guest --bin optivolt-libos \
    --target-dir target/guest-clippy --config 'profile.dev.panic="abort"' -- -D warnings
# ... and its variant without the network (volt run --net none).
CARGO_ENCODED_RUSTFLAGS= cargo clippy --locked -p optivolt-libos --no-default-features --features guest --bin optivolt-libos \
    --target-dir target/guest-clippy --config 'profile.dev.panic="abort"' -- -D warnings
cargo test --locked --workspace
# The library OS without the network, on the host.
cargo test --locked -p optivolt-libos --no-default-features --lib
