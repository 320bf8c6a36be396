//! Debian's own servers as unikernels, reached through `-p`: Python's
//! http.server (the same bytes as natively), a prometheus_client exporter,
//! nginx and redis. Each runs in a network namespace of its own; each skips
//! loudly when its Debian package is missing (scripts/test.sh installs them).
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::kvm_available;
use common::net::{http, in_private_netns, spawn_volt, wait_for_http, Response};

fn have(test: &str, paths: &[&str]) -> bool {
    if let Some(p) = paths.iter().find(|p| !Path::new(p).exists()) {
        eprintln!("=== SKIPPED {test}: no {p} (scripts/test.sh installs it) ===");
        return false;
    }
    kvm_available(test)
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("servers")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A native server, killed when dropped.
struct Native(Child);

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn native(cmd: &str, args: &[&str], dir: &Path) -> Native {
    Native(
        Command::new(cmd)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the native server"),
    )
}

fn get(port: u16, path: &str) -> Response {
    http(addr(port), "GET", path, b"").expect("GET")
}

#[test]
fn python_http_server_answers_through_p_with_the_bytes_it_serves_natively() {
    let t = "python_http_server_answers_through_p_with_the_bytes_it_serves_natively";
    if !have(t, &["/usr/bin/python3"]) {
        return;
    }
    let www = scratch("http-server");
    std::fs::write(www.join("index.html"), b"<h1>hello from http.server</h1>\n").unwrap();
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(
        www.join("sub/data.bin"),
        (0..=255u8).cycle().take(70_000).collect::<Vec<_>>(),
    )
    .unwrap();
    let dir = www.to_str().unwrap().to_owned();
    in_private_netns(t, move || {
        let _n = native(
            "/usr/bin/python3",
            &[
                "-m",
                "http.server",
                "8001",
                "--bind",
                "127.0.0.1",
                "--directory",
                &dir,
            ],
            Path::new("/"),
        );
        let _u = spawn_volt(&[
            "-p",
            "127.0.0.1:8000:8000",
            "--include",
            &dir,
            "/usr/bin/python3",
            "-m",
            "http.server",
            "8000",
            "--directory",
            &dir,
        ]);
        wait_for_http(addr(8001), "/", Duration::from_secs(20));
        wait_for_http(addr(8000), "/", Duration::from_secs(30));
        for path in ["/", "/index.html", "/sub/", "/sub/data.bin", "/missing"] {
            let (n, u) = (get(8001, path), get(8000, path));
            assert_eq!(u.status, n.status, "{path}");
            assert_eq!(u.body, n.body, "{path}");
        }
        assert_eq!(get(8000, "/sub/data.bin").body.len(), 70_000);
    });
}

#[test]
fn a_prometheus_client_exporter_serves_metrics_that_parse() {
    let t = "a_prometheus_client_exporter_serves_metrics_that_parse";
    let lib = "/usr/lib/python3/dist-packages/prometheus_client";
    if !have(
        t,
        &[
            "/usr/bin/python3",
            lib,
            "/usr/lib/python3/dist-packages/decorator.py",
        ],
    ) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/python/exporter.py");
    let script = script.to_str().unwrap().to_owned();
    in_private_netns(t, move || {
        let _u = spawn_volt(&[
            "-p",
            "127.0.0.1:9100:9100",
            "--include",
            &script,
            "--include",
            lib,
            "--include",
            "/usr/lib/python3/dist-packages/decorator.py",
            "/usr/bin/python3",
            &script,
            "9100",
        ]);
        let r = wait_for_http(addr(9100), "/metrics", Duration::from_secs(30));
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).expect("UTF-8");
        // Parsed by the library's own parser, natively.
        let check = Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import sys\n\
                 from prometheus_client.parser import text_string_to_metric_families as f\n\
                 m = {s.name: s.value for fam in f(sys.stdin.read()) for s in fam.samples}\n\
                 print(m['optivolt_squares_sum'], m['optivolt_rounds_total'])",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        use std::io::Write;
        let mut child = check;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{text}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "41654167500.0 3.0\n",
            "{text}"
        );
    });
}

#[test]
fn nginx_serves_files_through_p() {
    let t = "nginx_serves_files_through_p";
    if !have(t, &["/usr/sbin/nginx"]) {
        return;
    }
    let d = scratch("nginx");
    std::fs::create_dir_all(d.join("www")).unwrap();
    let page: Vec<u8> = (0..100_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    std::fs::write(d.join("www/index.html"), b"hello from nginx\n").unwrap();
    std::fs::write(d.join("www/big.txt"), &page).unwrap();
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/nginx/nginx.conf"),
    )
    .unwrap()
    .replace("@DIR@", d.to_str().unwrap());
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let dir = d.to_str().unwrap().to_owned();
    in_private_netns(t, move || {
        let conf = format!("{dir}/nginx.conf");
        let _u = spawn_volt(&[
            "-p",
            "127.0.0.1:8080:8080",
            "--include",
            &dir,
            "--include",
            "/etc/passwd",
            "--include",
            "/etc/group",
            "--include",
            "/etc/nsswitch.conf",
            "/usr/sbin/nginx",
            "-c",
            &conf,
        ]);
        let r = wait_for_http(addr(8080), "/", Duration::from_secs(30));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello from nginx\n"[..])
        );
        assert_eq!(get(8080, "/big.txt").body, page);
        assert_eq!(get(8080, "/missing").status, 404);
    });
}

#[test]
fn redis_serves_redis_cli_and_a_benchmark_through_p() {
    let t = "redis_serves_redis_cli_and_a_benchmark_through_p";
    if !have(
        t,
        &[
            "/usr/bin/redis-server",
            "/usr/bin/redis-cli",
            "/usr/bin/redis-benchmark",
        ],
    ) {
        return;
    }
    in_private_netns(t, move || {
        let _u = spawn_volt(&[
            "-p",
            "127.0.0.1:6379:6379",
            "/usr/bin/redis-server",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]);
        let cli = |args: &[&str]| {
            Command::new("redis-cli")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let t0 = std::time::Instant::now();
        while cli(&["ping"]) != "PONG" {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "redis never answered"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(cli(&["set", "optivolt", "unikernel"]), "OK");
        assert_eq!(cli(&["get", "optivolt"]), "unikernel");
        assert_eq!(cli(&["incrby", "n", "41"]), "41");
        let b = Command::new("timeout")
            .args([
                "120",
                "redis-benchmark",
                "-q",
                "-n",
                "10000",
                "-t",
                "get,set",
            ])
            .output()
            .expect("redis-benchmark");
        let out = String::from_utf8_lossy(&b.stdout);
        assert!(b.status.success(), "{out}");
        assert!(out.contains("SET: ") && out.contains("GET: "), "{out}");
        assert!(!out.to_lowercase().contains("error"), "{out}");
    });
}
