//! `volt bench`: benchmarks that print median/min/max and ratios against
//! baselines measured in the same run (never pass/fail timings).
mod abi;
mod boot;
mod images;
mod net;
mod programs;
mod runstats;
mod runtime;
mod services;
mod snapshots;
mod stats;
mod suite;
mod voltd;
mod volumes;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Whole-process boot of a static hello: volt run vs. a plain process vs. the bare-KVM floor.
    Boot(boot::BootArgs),
    /// System-call and futex round trips, Go boot, smallest memory.
    Abi(abi::AbiArgs),
    /// A Go web server under wrk: as a process vs. as a unikernel behind -p;
    /// time to the first answer, idle CPU and memory (root; needs wrk, go).
    Net(net::NetArgs),
    /// Debian's python3 and redis-server, and the Go web server, as
    /// processes vs. unikernels: Python's start, http.server's first
    /// answer, PSS of idle instances, redis-benchmark (root).
    Programs(programs::ProgramsArgs),
    /// Images and instances: `volt run [-d] IMAGE` to the first HTTP 200
    /// against the bare binary, `volt ps` with hundreds of instances, `volt
    /// pull` of 50 MiB against skopeo (root; go, skopeo, docker-registry).
    Images(images::ImagesArgs),
    /// The OptiVolt report: the same workloads as a process, a container
    /// (runc) and a unikernel — boot, a web server, the seed's Python
    /// workload, idle cost, density — charts in OUT/index.html (root).
    Suite(suite::SuiteArgs),
    /// `ctr run` of a C hello under a private containerd: volt-runtime
    /// against runc (root; containerd, runc, skopeo).
    Runtime(runtime::RuntimeArgs),
    /// voltd: create -> running over the API for many instances, its own
    /// memory and idle CPU with them, a scrape.
    Voltd(voltd::VoltdArgs),
    /// Snapshots of the idle Go web server: time and size, and `volt
    /// restore` to the first HTTP 200 against `volt run` of the image (root; go).
    Snapshots(snapshots::SnapshotsArgs),
    /// voltd's services: wake from standby to the first byte through the
    /// balancer, the balancer against the replica directly under wrk,
    /// scale-out 1 -> 8 under load, memory per idle and standby replica
    /// (root; go, wrk, voltd beside volt).
    Services(services::ServicesArgs),
    /// File operations on a volume (`-v`) against the same program natively
    /// on the host directory and in the guest's in-memory /tmp.
    Volumes(volumes::VolumesArgs),
}

pub fn bench(a: BenchArgs) -> Result<i32> {
    match a.what {
        Bench::Boot(b) => boot::run(b),
        Bench::Abi(b) => abi::run(b),
        Bench::Net(b) => net::run(b),
        Bench::Programs(b) => programs::run(b),
        Bench::Images(b) => images::run(b),
        Bench::Suite(b) => suite::run(b),
        Bench::Volumes(b) => volumes::run(b),
        Bench::Runtime(b) => runtime::run(b),
        Bench::Voltd(b) => voltd::run(b),
        Bench::Snapshots(b) => snapshots::run(b),
        Bench::Services(b) => services::run(b),
    }
}
