//! Images end to end through the CLI: `volt build` from a directory, a
//! tarball, a cpio archive and an OCI archive made by umoci and skopeo;
//! `volt images`, `tag`, `rmi`, `image inspect`; `volt run IMAGE` printing
//! what the program prints natively; bad input refused in one line with
//! nothing stored.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

type Ctx = Scratch;

impl Scratch {
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    fn blobs(&self) -> usize {
        std::fs::read_dir(self.dir.join("data/images/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn copy_exec(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// Runs `prog args` natively with exactly `env`, in that order (as the
/// image gives it to the guest).
fn native_env(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("env")
        .arg("-i")
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(prog)
        .args(args)
        .output()
        .expect("run natively")
}

fn assert_same_output(native: &Output, uni: &Output) {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        s(&uni.stdout),
        s(&native.stdout),
        "stdout differs: {}",
        s(&uni.stderr)
    );
    assert_eq!(s(&uni.stderr), s(&native.stderr), "stderr differs");
    assert_eq!(uni.status.code(), native.status.code());
}

#[test]
fn an_image_built_from_a_directory_runs_as_the_program_runs_natively() {
    if !kvm_available("an_image_built_from_a_directory_runs_as_the_program_runs_natively") {
        return;
    }
    let c = Ctx::new("images", "dir");
    let prog = program("args", "musl");
    copy_exec(&prog, &c.dir.join("rootfs/app/args"));
    c.write(
        "Voltfile",
        "spec: v1\nname: args\nrootfs: ./rootfs\ncmd: [\"/app/args\", \"one\", \"two\"]\nenv: {GREETING: hello}\nmemory: 32M\n",
    );
    let out = c.ok(&["build", "."]);
    assert!(out.contains("tagged args:latest"), "{out}");
    let env = [("PATH", PATH), ("GREETING", "hello")];
    let native_run = native_env(&prog, &["one", "two"], &env);
    assert_same_output(&native_run, &c.volt(&["run", "args"]));
    // Arguments after the image replace its command, as with docker.
    let native_run = native_env(&prog, &["three"], &env);
    assert_same_output(&native_run, &c.volt(&["run", "args", "/app/args", "three"]));
    // -e adds to (and overrides) the image's environment.
    let o = c.volt(&["run", "-e", "GREETING=bye", "args"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("greeting=bye"));
    // The image asked for 32M; --memory still wins, and checks its size.
    let o = c.volt(&["run", "--memory", "1M", "args"]);
    one_line_error(&o, "too small");
}

#[test]
fn images_lists_tags_and_rmi_frees_the_blobs() {
    if !kvm_available("images_lists_tags_and_rmi_frees_the_blobs") {
        return;
    }
    let c = Ctx::new("images", "list");
    copy_exec(&program("hello", "musl"), &c.dir.join("rootfs/app/hello"));
    c.write(
        "Voltfile",
        "spec: v1\nrootfs: ./rootfs\ncmd: [/app/hello, image]\n",
    );
    let id = c.ok(&["build", "-q", "-t", "hello:1", "."]);
    let id = id.trim().strip_prefix("sha256:").unwrap().to_string();
    c.ok(&["tag", "hello:1", "localhost:5000/team/hello:2"]);
    let table = c.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[1].starts_with("hello ") && lines[1].contains(&id[..12]),
        "{table}"
    );
    assert!(lines[2].starts_with("localhost:5000/team/hello"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&c.ok(&["images", "-o", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[1]["tag"], "2");
    assert_eq!(json[0]["id"], format!("sha256:{id}"));
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["image", "inspect", "hello:1"])).unwrap();
    assert_eq!(inspect[0]["config"]["config"]["Cmd"][1], "image");
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", "localhost:5000/team/hello:2"]).stdout),
        "hello, image\n"
    );
    // -v logs the steps on stderr (and nothing else changes).
    let o = c.volt(&["-v", "run", "hello:1"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello, image\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("running an image"));
    // By ID prefix too.
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", &id[..8]]).stdout),
        "hello, image\n"
    );
    let blobs = c.blobs();
    assert_eq!(blobs, 3, "a manifest, a configuration, a layer");
    // A name removes that tag only; the blobs stay for the other.
    c.ok(&["rmi", "hello:1"]);
    assert_eq!(c.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(c.blobs(), blobs);
    // An ID removes every tag, and the blobs and the rootfs archive go.
    c.ok(&["rmi", &id[..12]]);
    assert_eq!(c.ok(&["images", "-q"]), "");
    assert_eq!(c.blobs(), 0);
    let rootfs = std::fs::read_dir(c.dir.join("data/images/rootfs"))
        .unwrap()
        .count();
    assert_eq!(rootfs, 0);
}

#[test]
fn tarball_and_cpio_sources_build_images_that_run() {
    if !kvm_available("tarball_and_cpio_sources_build_images_that_run") {
        return;
    }
    let c = Ctx::new("images", "archives");
    copy_exec(&program("hello", "musl"), &c.dir.join("rootfs/app/hello"));
    let st = Command::new("tar")
        .current_dir(c.dir.join("rootfs"))
        .args(["czf", "../rootfs.tar.gz", "."])
        .status()
        .unwrap();
    assert!(st.success());
    let mut w = optivolt_volt::image::rootfs::CpioWriter::new();
    w.dir("/app", 0o755).file(
        "/app/hello",
        0o755,
        0,
        &std::fs::read(c.dir.join("rootfs/app/hello")).unwrap(),
    );
    std::fs::write(c.dir.join("rootfs.cpio"), w.finish()).unwrap();
    c.write(
        "V.tar",
        "spec: v1\nrootfs: rootfs.tar.gz\ncmd: [/app/hello, tarball]\n",
    );
    c.write(
        "V.cpio",
        "spec: v1\nrootfs: rootfs.cpio\ncmd: [/app/hello, cpio]\n",
    );
    c.ok(&["build", "-f", "V.tar", "-t", "t", "."]);
    c.ok(&["build", "-f", "V.cpio", "-t", "c", "."]);
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", "t"]).stdout),
        "hello, tarball\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", "c"]).stdout),
        "hello, cpio\n"
    );
}

fn have(tool: &str, test: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    eprintln!(
        "=== SKIPPED {test}: {tool} is not installed (the README's test command installs it) ==="
    );
    false
}

#[test]
fn an_oci_image_made_by_umoci_and_skopeo_is_imported_runs_and_our_store_reads_back() {
    let name = "an_oci_image_made_by_umoci_and_skopeo_is_imported_runs_and_our_store_reads_back";
    if !kvm_available(name) || !have("umoci", name) || !have("skopeo", name) {
        return;
    }
    let c = Ctx::new("images", "oci");
    let hello = program("hello", "musl");
    let layout = c.dir.join("layout");
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci")
        .arg("new")
        .arg("--image")
        .arg(format!("{}:base", layout.display())));
    run(Command::new("umoci")
        .arg("insert")
        .arg("--image")
        .arg(format!("{}:base", layout.display()))
        .arg(&hello)
        .arg("/bin/hello"));
    run(Command::new("umoci")
        .arg("config")
        .arg("--image")
        .arg(format!("{}:base", layout.display()))
        .args(["--config.cmd", "hello", "--config.cmd", "umoci"]));
    run(Command::new("skopeo")
        .arg("copy")
        .arg("-q")
        .arg(format!("oci:{}:base", layout.display()))
        .arg(format!("oci-archive:{}", c.dir.join("img.tar").display())));
    // The image's own command (found on PATH), then the layout directly.
    c.write("V1", "spec: v1\nrootfs: oci-archive:img.tar\n");
    c.write(
        "V2",
        "spec: v1\nrootfs: oci:layout:base\ncmd: [hello, layout]\nmemory: 16M\n",
    );
    c.ok(&["build", "-f", "V1", "-t", "localhost:5000/imported:1", "."]);
    c.ok(&["build", "-f", "V2", "-t", "fromlayout", "."]);
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", "localhost:5000/imported:1"]).stdout),
        "hello, umoci\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", "fromlayout"]).stdout),
        "hello, layout\n"
    );
    // Our store is an OCI layout other tools read.
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "oci:{}:fromlayout:latest",
            c.dir.join("data/images").display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    // A blob that does not match its digest is refused, and nothing is stored.
    let before = c.blobs();
    let layer = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .filter_map(|e| e.ok())
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    c.write("V3", "spec: v1\nrootfs: oci:layout:base\n");
    one_line_error(
        &c.volt(&["build", "-f", "V3", "-t", "bad", "."]),
        "does not have that digest",
    );
    assert_eq!(c.blobs(), before);
    assert!(!c.ok(&["images"]).contains("bad"));
}

#[test]
fn a_dockerfile_is_built_with_buildah() {
    let name = "a_dockerfile_is_built_with_buildah";
    if !kvm_available(name) || !have("buildah", name) {
        return;
    }
    let c = Ctx::new("images", "dockerfile");
    copy_exec(&program("hello", "musl"), &c.dir.join("hello"));
    c.write(
        "Dockerfile",
        "FROM scratch\nCOPY hello /app/hello\nCMD [\"/app/hello\", \"dockerfile\"]\n",
    );
    c.write(
        "Voltfile",
        "spec: v1\nname: fromdf\nrootfs: ./Dockerfile\nenv: {A: b}\n",
    );
    c.ok(&["build", "."]);
    assert_eq!(
        String::from_utf8_lossy(&c.volt(&["run", "fromdf"]).stdout),
        "hello, dockerfile\n"
    );
    // buildah's storage is volt's, in the data directory.
    assert!(c.dir.join("data/buildah/root").is_dir());
    // A Dockerfile that does not build says so in one line.
    c.write("Dockerfile", "FROM scratch\nCOPY nothere /x\n");
    one_line_error(
        &c.volt(&["build", "-t", "bad", "."]),
        "buildah could not build",
    );
}

#[test]
fn a_dynamically_linked_program_runs_from_an_image_with_its_loader() {
    if !kvm_available("a_dynamically_linked_program_runs_from_an_image_with_its_loader") {
        return;
    }
    let c = Ctx::new("images", "dynamic");
    let prog = program("args", "dyn");
    let root = c.dir.join("rootfs");
    copy_exec(&prog, &root.join("app/args"));
    for lib in [
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        let real = std::fs::canonicalize(lib).unwrap();
        copy_exec(&real, &root.join(lib.trim_start_matches('/')));
    }
    std::fs::create_dir_all(root.join("lib64")).unwrap();
    std::os::unix::fs::symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    c.write(
        "Voltfile",
        "spec: v1\nname: dyn\nrootfs: rootfs\nentrypoint: [/app/args]\ncmd: [x]\n",
    );
    c.ok(&["build", "."]);
    let env = [("PATH", PATH)];
    assert_same_output(&native_env(&prog, &["x"], &env), &c.volt(&["run", "dyn"]));
    // With an entrypoint, arguments replace only the cmd.
    assert_same_output(
        &native_env(&prog, &["y", "z"], &env),
        &c.volt(&["run", "dyn", "y", "z"]),
    );
    // Without its loader the build says so, and stores nothing.
    std::fs::remove_file(root.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")).unwrap();
    let blobs = c.blobs();
    one_line_error(
        &c.volt(&["build", "-t", "broken", "."]),
        "its loader /lib64/ld-linux-x86-64.so.2 is not in the image",
    );
    assert_eq!(c.blobs(), blobs);
}

#[test]
fn bad_voltfiles_and_unknown_images_fail_in_one_line() {
    let c = Ctx::new("images", "bad");
    copy_exec(&program("hello", "musl"), &c.dir.join("rootfs/app/hello"));
    std::fs::write(c.dir.join("rootfs/app/notes.txt"), "not a program").unwrap();
    let cases = [
        (
            "spec: v1\nrootfs: rootfs\ncmd: [/app/hello]\nmemroy: 4M\n",
            "Voltfile:4:1: unknown field `memroy`",
        ),
        (
            "spec: v1\nrootfs: rootfs\ncmd: [/app/hello]\nmemory: lots\n",
            "Voltfile:4:9: memory: invalid size",
        ),
        (
            "spec: v1\nrootfs: rootfs\ncmd: /app/hello\n",
            "Voltfile:3:6: cmd: invalid type",
        ),
        ("spec: v9\nrootfs: rootfs\n", "Voltfile:1:7: "),
        (
            "spec: v1\nrootfs: rootfs\ncmd: [/app/nothing]\n",
            "/app/nothing: no such file in the image",
        ),
        (
            "spec: v1\nrootfs: rootfs\ncmd: [/app/notes.txt]\n",
            "/app/notes.txt: not an ELF",
        ),
        (
            "spec: v1\nrootfs: missing\ncmd: [/app/hello]\n",
            "no such directory",
        ),
        ("spec: v1\nrootfs: rootfs\n", "no command"),
        ("spec: v1\nrootfs: ./Dockerfile\ncmd: [x]\n", "Dockerfile"),
    ];
    for (text, needle) in cases {
        c.write("Voltfile", text);
        one_line_error(&c.volt(&["build", "-t", "x", "."]), needle);
    }
    assert_eq!(c.blobs(), 0, "nothing stored by a failed build");
    one_line_error(&c.volt(&["build", "-t", "x", "nowhere"]), "no Voltfile");
    c.write("Voltfile", "spec: v1\nrootfs: rootfs\ncmd: [/app/hello]\n");
    one_line_error(&c.volt(&["build", "."]), "no name");
    one_line_error(
        &c.volt(&["build", "-t", "Bad Name", "."]),
        "invalid image reference",
    );
    one_line_error(
        &c.volt(&["run", "nosuchimage"]),
        "no such file, and no such image",
    );
    one_line_error(&c.volt(&["rmi", "nosuchimage"]), "no such image");
    one_line_error(&c.volt(&["tag", "nosuchimage", "x"]), "no such image");
    one_line_error(
        &c.volt(&["image", "inspect", "nosuchimage"]),
        "no such image",
    );
}
