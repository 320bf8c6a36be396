//! Test support for the network tests of `vmm` and `volt`: everything
//! runs inside a network namespace of its own, so no test touches the
//! machine's network.
use std::io;
use std::process::Command;

/// Runs `f` on a thread moved into a new network namespace (namespaces are
/// per thread; the processes it starts inherit it), with that namespace's
/// loopback up. Returns false, after one loud line naming `test`, where
/// creating a namespace is not allowed (not root).
pub fn in_private_netns(test: &str, f: impl FnOnce() + Send + 'static) -> bool {
    let test = test.to_owned();
    std::thread::spawn(move || {
        // SAFETY: unshare takes no pointers; it moves only this thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!(
                "=== SKIPPED {test}: cannot create a network namespace ({}); run the tests as root ===",
                io::Error::last_os_error()
            );
            return false;
        }
        assert!(ip(&["link", "set", "lo", "up"]), "cannot bring lo up");
        f();
        true
    })
    .join()
    .expect("test thread")
}

/// Runs `ip ARGS`; whether it succeeded.
pub fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
