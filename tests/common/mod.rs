//! Helpers shared by the integration tests.
//!
//! Running a program under a lowered RLIMIT_MEMLOCK lives in the crate
//! (`uring_book::solutions::memlock_child`), because chapter 3's solutions do
//! it too; these are the tests' shorthands for it.

use std::path::Path;
use std::process::Command;

use uring_book::solutions::memlock_child::{self, BinForAnyUser};

/// A command that runs `program` with RLIMIT_MEMLOCK set to `bytes` and
/// without CAP_IPC_LOCK, as a reader without privileges runs it (as root,
/// under a user id of its own; see `memlock_child`).
pub fn memlock_limited(bytes: u64, program: &str) -> Command {
    memlock_child::memlock_limited(bytes, Path::new(program))
}

/// The `uring-book` binary where any user can run it, for as long as this
/// value lives (as root, a copy in a temporary directory).
pub fn bin_for_any_user() -> BinForAnyUser {
    memlock_child::bin_for_any_user(Path::new(env!("CARGO_BIN_EXE_uring-book"))).unwrap()
}
