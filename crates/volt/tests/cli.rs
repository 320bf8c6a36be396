//! The CLI's own surface: shell completions and the manual page cover the
//! commands users type.
mod common;

use common::volt;

fn stdout(args: &[&str]) -> String {
    let o = volt().args(args).output().expect("run volt");
    assert!(
        o.status.success(),
        "volt {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn completions_and_the_manual_page_know_every_command() {
    let bash = stdout(&["completion", "bash"]);
    assert!(bash.contains("_volt()"), "{bash}");
    let zsh = stdout(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef volt"), "{zsh}");
    let man = stdout(&["man"]);
    assert!(man.contains(".TH volt 1"), "{man}");
    for cmd in [
        "run", "build", "images", "push", "pull", "ps", "logs", "stop", "rm", "bench",
    ] {
        assert!(bash.contains(cmd), "bash completion lacks {cmd}");
        assert!(man.contains(cmd), "the manual page lacks {cmd}");
    }
    // The supervisor's entry is volt's own business.
    assert!(!man.contains("__supervise"));
}
