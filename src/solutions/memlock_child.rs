//! Running a program the way a reader without privileges runs it: with a
//! lowered RLIMIT_MEMLOCK and without CAP_IPC_LOCK, even when you are root.
//!
//! The kernel charges registered buffers per *user*, and a ring's charge
//! outlives its process for a moment (the teardown is asynchronous). Programs
//! that run at once, or back to back, as the same user would see each other's
//! charges. So as root each call runs its program under a user id of its own,
//! which also drops every capability. Without root, the limit alone is what
//! the reader gets. The tests use the same two functions.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A command that runs `program` with RLIMIT_MEMLOCK set to `bytes` and
/// without CAP_IPC_LOCK, under a user of its own: `setpriv` to a fresh user id
/// as root, then `prlimit`. Add the program's arguments with `.arg`.
pub fn memlock_limited(bytes: u64, program: &Path) -> Command {
    memlock_limited_as(fresh_user(), bytes, program)
}

/// A user id that no other call of this process has used: from 40000 up, 20
/// apart per process, so that tests running at once do not share one.
pub fn fresh_user() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    40_000 + (std::process::id() % 1000) * 20 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// [`memlock_limited`] as user `uid` (when root; otherwise as yourself), so
/// that programs can share one user's charge on purpose.
pub fn memlock_limited_as(uid: u32, bytes: u64, program: &Path) -> Command {
    let limit = format!("--memlock={bytes}");
    if !is_root() {
        let mut cmd = Command::new("prlimit");
        cmd.arg(&limit).arg(program);
        return cmd;
    }
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .args(["prlimit", &limit])
        .arg(program)
        // The checkout may be in a directory only root can enter.
        .current_dir("/");
    cmd
}

/// A program where any user can run it, for as long as this value lives.
pub struct BinForAnyUser {
    pub path: PathBuf,
    _dir: Option<uring_book::cleanup::TempDir>,
}

/// `bin`, or as root a copy of it in a temporary directory that any user can
/// enter: [`memlock_limited`] runs it as another user, who may not be able to
/// reach the checkout's target directory. The copy is removed on drop.
pub fn bin_for_any_user(bin: &Path) -> io::Result<BinForAnyUser> {
    if !is_root() {
        return Ok(BinForAnyUser {
            path: bin.to_path_buf(),
            _dir: None,
        });
    }
    let dir = uring_book::cleanup::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let path = dir
        .path()
        .join(bin.file_name().unwrap_or("program".as_ref()));
    // Copied by another process: had this one opened the copy for writing, a
    // child forked meanwhile by another thread could still hold that
    // descriptor when the copy runs, and exec would fail with ETXTBSY.
    let copied = std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(bin)
        .arg(&path)
        .status()?;
    if !copied.success() {
        return Err(io::Error::other(format!(
            "install(1) could not copy {} to {}",
            bin.display(),
            path.display()
        )));
    }
    Ok(BinForAnyUser {
        path,
        _dir: Some(dir),
    })
}

/// Whether this process runs as root, which may give each child a user of
/// its own.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
