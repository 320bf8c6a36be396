//! Link flags for the freestanding guest binary (only the `optivolt-libos` bin
//! target sees them; the library and its host tests link normally).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--no-dynamic-linker",
        "-Wl,--build-id=none",
        "-Wl,-z,norelro",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-bin=optivolt-libos={arg}");
    }
    println!("cargo:rustc-link-arg-bin=optivolt-libos=-Wl,-T,{dir}/linker.ld");
}
