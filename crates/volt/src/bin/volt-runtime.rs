//! `volt-runtime`: an OCI runtime with runc's command line, so that
//! containerd (its runc shim) and Kubernetes run OptiVolt unikernels.
fn main() {
    std::process::exit(optivolt_volt::runtime::main());
}
