//! Helpers shared by the integration tests.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
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
    std::fs::copy(&bin, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_until_executable(&path);
    BinForAnyUser {
        path,
        _dir: Some(dir),
    }
}

/// Waits until `path` can be executed. A test on another thread that forks
/// while the copy is open for writing gives its child that descriptor until
/// the child execs, and exec(2) of a file open for writing fails with
/// ETXTBSY: under load, `prlimit` then exits 126 instead of running the copy.
fn wait_until_executable(path: &std::path::Path) {
    let start = std::time::Instant::now();
    loop {
        match Command::new(path).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                assert!(start.elapsed().as_secs() < 30, "{}: {e}", path.display());
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => {
                other.unwrap();
                return;
            }
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
