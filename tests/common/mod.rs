//! Helpers shared by the integration tests.
//!
//! Running a program under a lowered RLIMIT_MEMLOCK lives in the crate
//! (`uring_book::solutions::memlock_child`), because chapter 3's solutions do
//! it too; these are the tests' shorthands for it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use uring_book::solutions::memlock_child::{self, BinForAnyUser};

/// A command that runs `program` with RLIMIT_MEMLOCK set to `bytes` and
/// without CAP_IPC_LOCK, as a reader without privileges runs it (as root,
/// under a user id of its own; see `memlock_child`).
pub fn memlock_limited(bytes: u64, program: &str) -> Command {
    memlock_child::memlock_limited(bytes, Path::new(program))
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
/// value lives (as root, a copy in a temporary directory).
pub fn bin_for_any_user() -> BinForAnyUser {
    memlock_child::bin_for_any_user(Path::new(env!("CARGO_BIN_EXE_uring-book"))).unwrap()
}
