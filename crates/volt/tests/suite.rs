//! The benchmark suite's harness (not its figures): a short run writes the
//! four report files, with a row per runtime that ran and the reason for
//! each that did not.
mod common;

use common::*;

#[test]
fn a_short_suite_run_writes_the_report() {
    if !kvm_available("a_short_suite_run_writes_the_report") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("=== SKIPPED a_short_suite_run_writes_the_report: volt bench suite needs root (a network namespace) ===");
        return;
    }
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("suite-report");
    let _ = std::fs::remove_dir_all(&out);
    // scripts/test.sh unpacks Debian's cloud kernel there for the qemu row.
    let kernel = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/kernel/boot"
    ))
    .into_iter()
    .flatten()
    .flatten()
    .map(|e| e.path())
    .find(|p| p.to_string_lossy().contains("vmlinuz"));
    let mut cmd = volt();
    cmd.args(["bench", "suite", "--only", "hello", "--runs", "2"])
        .args([
            "--runtimes",
            "process,podman,unikernel,firecracker,qemu",
            "--microvm-timeout",
            "10",
            "--out",
        ])
        .arg(&out);
    if let Some(k) = &kernel {
        cmd.arg("--kernel").arg(k);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let m = json["measurements"].as_array().unwrap();
    // Every runtime has its numbers, or says why not.
    let rts = json["runtimes"].as_array().unwrap();
    assert_eq!(rts.len(), 5);
    for rt in rts {
        let name = rt["name"].as_str().unwrap();
        let ran = m.iter().filter(|x| x["runtime"] == name).count();
        match rt["skipped"].as_str() {
            Some(why) => assert!(ran == 0 && !why.is_empty(), "{name}"),
            None => assert_eq!(ran, 1, "{name}: hello measured once"),
        }
    }
    for x in m {
        assert_eq!(x["samples"].as_array().unwrap().len(), 2);
        assert!(x["median"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        m.len(),
        rts.iter().filter(|r| r["skipped"].is_null()).count()
    );
    let fc = &rts[3];
    assert_eq!(fc["name"], "firecracker");
    assert!(fc["skipped"].as_str().unwrap().contains("guest kernel"));
    // QEMU was tried with the kernel (when there is one): booted to hello's
    // exit, or the report says what happened (here: the time limit).
    let qemu = &rts[4];
    assert_eq!(qemu["name"], "qemu");
    if kernel.is_some() {
        if let Some(why) = qemu["skipped"].as_str() {
            assert!(why.contains("every workload failed; "), "{why}");
        }
    }
    let md = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(md.contains("| boot to exit (ms) |"), "{md}");
    assert!(md.contains("\"Boot time < 50 ms\""), "{md}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + m.len());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 1);
    renders_in_chromium(&out.join("index.html"));
    // results.json validates against the schema in docs/ (jsonschema, in
    // the venv scripts/test.sh makes).
    let py = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/pyvenv/bin/python"
    );
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/suite-results.schema.json"
    );
    if std::path::Path::new(py).exists() {
        let check = std::process::Command::new(py)
            .args(["-c", "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"])
            .arg(out.join("results.json"))
            .arg(schema)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    } else {
        eprintln!(
            "=== SKIPPED the schema check of results.json: no {py} (scripts/test.sh makes it) ==="
        );
    }
}

/// The report's page in headless Chromium: a screenshot with the charts on
/// it (not blank), and no console errors.
fn renders_in_chromium(page: &std::path::Path) {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("=== SKIPPED the Chromium check of index.html: no chromium (apt-get install chromium) ===");
        return;
    };
    let shot = page.with_file_name("screenshot.png");
    let profile = page.with_file_name("chromium-profile");
    let o = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,1600")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(shot.exists(), "no screenshot: {err}");
    if let Some(l) = err.lines().find(|l| l.contains("CONSOLE")) {
        panic!("a console message from the page: {l}");
    }
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    let mut dark = 0usize;
    for p in px.chunks(step) {
        colours.insert(p[..3.min(p.len())].to_vec());
        if p.iter().take(3).all(|&c| c < 128) {
            dark += 1;
        }
    }
    assert!(colours.len() > 8, "a blank page: {} colours", colours.len());
    assert!(dark > 500, "no text or bars drawn ({dark} dark pixels)");
}

#[test]
fn bad_suite_input_is_one_line() {
    for (args, needle) in [
        (
            &["--runtimes", "process,lxc"][..],
            "unknown runtime \"lxc\"",
        ),
        (&["--only", "hello,fly"], "unknown workload \"fly\""),
        (
            &["--out", "/proc/no-such/report"],
            "cannot create the output directory",
        ),
        (&["--runs", "0"], "--runs must be at least 1"),
    ] {
        let o = volt().args(["bench", "suite"]).args(args).output().unwrap();
        one_line_error(&o, needle);
    }
    // Without wrk on PATH, the web workload says so.
    let o = volt()
        .args(["bench", "suite", "--only", "web", "--out"])
        .arg(std::env::temp_dir().join("suite-no-wrk"))
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    one_line_error(&o, "needs wrk");
}
