//! Helpers shared by the integration tests.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
    if !is_root() {
        let mut cmd = Command::new("prlimit");
        cmd.args([&limit, program]);
        return cmd;
    }
    let uid =
        40_000 + (std::process::id() % 1000) * 20 + NEXT.fetch_add(1, Ordering::Relaxed);
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .args(["prlimit", &limit, program])
        // The checkout may be in a directory only root can enter.
        .current_dir("/");
    cmd
}

/// Runs `cmd`, made by [`memlock_limited`], until the limit it measures is
/// its own: again, for at most 10 s, while `charged_by_others` says the
/// child was stopped by locked memory it did not charge.
///
/// Without root, every test of a binary is one user, and the kernel checks
/// that user's whole charge (rings since 6.14, registered buffers) against
/// the child's limit. A test running beside it, or one that has just ended,
/// holds some of it: a ring keeps its charge for tens of milliseconds after
/// its process exits, until the asynchronous teardown has run.
pub fn run_with_own_budget(
    cmd: &mut Command,
    charged_by_others: impl Fn(&Output) -> bool,
) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cmd.output().expect("setpriv and prlimit (util-linux) run");
        if !charged_by_others(&out) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a child said that not even its ring fitted in the limit: a line
/// that names io_uring_setup and ENOMEM, as exercise 3 and doctor print it.
pub fn ring_did_not_fit(out: &Output) -> bool {
    [&out.stdout, &out.stderr].iter().any(|bytes| {
        String::from_utf8_lossy(bytes)
            .lines()
            .any(|l| l.contains("io_uring_setup") && l.contains("failed with ENOMEM"))
    })
}

/// The `uring-book` binary where any user can run it, for as long as this
/// value lives. As root, [`memlock_limited`] runs it as another user, who may
/// not be able to reach the checkout's target directory, so it is copied to
/// a temporary directory that is removed on drop.
pub struct BinForAnyUser {
    pub path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

pub fn bin_for_any_user() -> BinForAnyUser {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_uring-book"));
    if !is_root() {
        return BinForAnyUser {
            path: bin,
            _dir: None,
        };
    }
    let dir = tempfile::Builder::new()
        .prefix("uring-book-bin")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("uring-book");
    // Copied by another process: had this one opened the copy for writing, a
    // child forked meanwhile by another test's thread could still hold that
    // descriptor when the copy runs, and exec would fail with ETXTBSY.
    let copied = Command::new("install")
        .args(["-m", "0755"])
        .arg(&bin)
        .arg(&path)
        .status()
        .expect("install (coreutils) runs");
    assert!(copied.success(), "copying {} failed", bin.display());
    BinForAnyUser {
        path,
        _dir: Some(dir),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
