#!/bin/sh
# The main job: build volt (and with it the library OS), build a static example
# program, and boot it as a unikernel with the boot-time breakdown (and, with
# gcc, the same program dynamically linked).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked -p optivolt-volt
VOLT=target/x86_64-unknown-linux-gnu/release/volt
mkdir -p target/examples
if command -v musl-gcc >/dev/null 2>&1; then
    musl-gcc -static -O2 -o target/examples/hello examples/hello.c
else
    gcc -static -O2 -o target/examples/hello examples/hello.c
fi
echo "\$ volt run --timing target/examples/hello world"
"$VOLT" run --timing target/examples/hello world
if command -v gcc >/dev/null 2>&1; then
    # The same program dynamically linked: volt gathers its loader and libc.
    gcc -O2 -o target/examples/hello-dyn examples/hello.c
    echo "\$ volt run target/examples/hello-dyn dynamic"
    "$VOLT" run target/examples/hello-dyn dynamic
fi
