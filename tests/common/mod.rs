//! Helpers shared by the integration tests.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A command that runs `program` with RLIMIT_MEMLOCK set to `bytes` and
/// without CAP_IPC_LOCK, as a reader without privileges runs it.
///
/// The kernel charges locked memory per *user*, and a ring's charge outlives
/// its process for a moment (teardown is asynchronous). Tests that run in
/// parallel as the same user would see each other's charges, so as root each
/// call runs under a user id of its own, which also drops every capability.
/// Without root, the limit alone is what a reader gets.
pub fn memlock_limited(bytes: u64, program: &str) -> Command {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let limit = format!("--memlock={bytes}");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let uid = 40_000
            + (std::process::id() % 1000) * 20
            + NEXT.fetch_add(1, Ordering::Relaxed);
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .args(["prlimit", &limit, program]);
        cmd
    } else {
        let mut cmd = Command::new("prlimit");
        cmd.args([&limit, program]);
        cmd
    }
}
