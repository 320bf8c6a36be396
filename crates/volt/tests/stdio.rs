//! The guest's fds 0, 1 and 2 are what the host gave volt: a pipe is a
//! FIFO, a file a regular file, /dev/null a character device, none of them
//! a terminal; stdin's data reaches the program, with end of file after it.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs `cmd` with `input` on a pipe as its stdin.
fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    feeder.join().expect("feeder");
    out
}

#[test]
fn piped_stdin_reaches_the_program_and_fds_look_as_natively() {
    if !kvm_available("piped_stdin_reaches_the_program_and_fds_look_as_natively") {
        return;
    }
    let input: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    for kind in ["musl", "glibc"] {
        let p = program("catlike", kind);
        let n = with_stdin(Command::new(&p), &input);
        assert_eq!(n.stdout, input);
        assert!(String::from_utf8_lossy(&n.stderr).contains("fd 0: fifo tty=0"));
        for mode in [&[][..], &["--syscalls", "trap"]] {
            let mut c = volt();
            c.arg("run").args(mode).arg(&p);
            let u = with_stdin(c, &input);
            assert_same(&n, &u);
        }
    }
}

#[test]
fn stdin_from_a_file_and_from_dev_null() {
    if !kvm_available("stdin_from_a_file_and_from_dev_null") {
        return;
    }
    let p = program("catlike", "musl");
    let file = p.with_file_name("catlike-input.txt");
    std::fs::write(&file, b"from a file\n").unwrap();
    let run = |native: bool, stdin: Stdio| {
        let mut c = if native {
            Command::new(&p)
        } else {
            let mut c = volt();
            c.arg("run").arg(&p);
            c
        };
        c.stdin(stdin).output().unwrap()
    };
    let f = || Stdio::from(std::fs::File::open(&file).unwrap());
    let (n, u) = (run(true, f()), run(false, f()));
    assert_same(&n, &u);
    assert!(String::from_utf8_lossy(&u.stderr).contains("fd 0: file tty=0"));
    assert_eq!(u.stdout, b"from a file\n");
    let (n, u) = (run(true, Stdio::null()), run(false, Stdio::null()));
    assert_same(&n, &u);
    assert!(String::from_utf8_lossy(&u.stderr).contains("fd 0: chr tty=0"));
}

#[test]
fn stdout_and_stderr_on_one_pipe_interleave_as_natively() {
    if !kvm_available("stdout_and_stderr_on_one_pipe_interleave_as_natively") {
        return;
    }
    for kind in ["glibc", "dyn", "musl"] {
        let p = program("interleave", kind);
        // `2>&1`: both on the pipe the test reads.
        let shell = |cmd: String| {
            Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let n = shell(format!("exec '{}' 2>&1", p.display()));
        let u = shell(format!(
            "exec '{}' run '{}' 2>&1",
            env!("CARGO_BIN_EXE_volt"),
            p.display()
        ));
        assert_eq!(
            String::from_utf8_lossy(&u.stdout),
            String::from_utf8_lossy(&n.stdout),
            "{kind}"
        );
        if kind != "musl" {
            // glibc buffers a pipe fully: every err line comes first.
            assert!(String::from_utf8_lossy(&n.stdout).starts_with("err 0\nerr 1\nerr 2\n"));
        }
    }
}
