//! Exercise 7: linked operations, timeouts, cancellation and probing, on the
//! raw io-uring crate. One subcommand per idea; without one, a short
//! demonstration of all of them.
//!
//! The parts live in their own modules: `ex7_linked_copy` (a file copy of
//! linked read→write pairs), `ex7_broken_chain` (what a failure does to the
//! rest of a chain), `ex7_timeouts`, `ex7_cancel`, `ex7_probe` and
//! `ex7_copy_bench`. This module holds the command line and the few helpers
//! they share.

use std::io;

use anyhow::Context;
use io_uring::IoUring;
use uring_book::{
    ex7_broken_chain, ex7_cancel, ex7_copy_bench, ex7_linked_copy, ex7_probe,
    ex7_timeouts,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Copy SRC to DST with linked read→write pairs and verify the copy
    /// [default: make a file, copy it, verify]
    Copy(ex7_linked_copy::Args),
    /// Break a chain: a short read cancels the rest, HARDLINK does not
    Chain,
    /// Timeouts: relative, absolute, counted, removed, updated, linked
    Timeout,
    /// Cancel requests: by user_data, by file descriptor, all of them
    Cancel,
    /// What this kernel supports, and the choices made from it
    Probe(ex7_probe::Args),
    /// Time the linked copy against std::fs::copy and a read/write loop
    Bench(ex7_copy_bench::Args),
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Command::Copy(copy)) => ex7_linked_copy::run(copy),
        Some(Command::Chain) => ex7_broken_chain::run(),
        Some(Command::Timeout) => ex7_timeouts::run(),
        Some(Command::Cancel) => ex7_cancel::run(),
        Some(Command::Probe(probe)) => ex7_probe::run(probe),
        Some(Command::Bench(bench)) => ex7_copy_bench::run(bench),
        None => demo(),
    }
}

/// Every part once, quickly: what `cargo run` shows of exercise 7.
fn demo() -> anyhow::Result<()> {
    println!("== 7 copy: a linked copy of a file of test data\n");
    ex7_linked_copy::run(&ex7_linked_copy::Args {
        src: None,
        dst: None,
        size_mib: 8,
        block_kib: ex7_linked_copy::BLOCK_KIB,
        pairs: ex7_linked_copy::PAIRS,
    })?;
    println!("\n== 7 chain: what a short read does to a chain\n");
    ex7_broken_chain::run()?;
    println!("\n== 7 timeout: deadlines\n");
    ex7_timeouts::run()?;
    println!("\n== 7 cancel: taking requests back\n");
    ex7_cancel::run()?;
    println!("\n== 7 probe: what this kernel has\n");
    ex7_probe::run(&ex7_probe::Args { appendix: false })
}

/// One CQE as it came off the completion queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

impl std::fmt::Display for Cqe {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "user_data={} res={}", self.user_data, res_text(self.res))
    }
}

/// `-125 (ECANCELED)` for an error, the number alone otherwise.
pub fn res_text(res: i32) -> String {
    if res < 0 {
        format!("{res} ({})", uring_book::system::errno_name(-res))
    } else {
        res.to_string()
    }
}

/// io_uring_enter failures in a row after which [`complete`] gives up.
pub const FAILURES_BEFORE_GIVING_UP: usize = 3;

// ANCHOR: complete
/// Submits what is queued and reaps until `n` CQEs are in, then hands
/// `memory` back with them: whatever the kernel may write into comes back
/// only with the CQEs, as a buffer comes back from tokio-uring. If the ring
/// keeps failing, the CQEs may never come: `memory` is leaked, never freed
/// under the kernel.
pub fn complete<T>(
    ring: &mut IoUring,
    n: usize,
    memory: T,
) -> anyhow::Result<(Vec<Cqe>, T)> {
    let mut cqes = Vec::with_capacity(n);
    let mut failures = 0;
    while cqes.len() < n {
        match ring.submit_and_wait(n - cqes.len()) {
            Ok(_) => failures = 0,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                failures += 1;
                if failures == FAILURES_BEFORE_GIVING_UP {
                    std::mem::forget(memory);
                    return Err(err).context("io_uring_enter (memory in flight leaked)");
                }
            }
        }
        cqes.extend(ring.completion().map(|c| Cqe {
            user_data: c.user_data(),
            res: c.result(),
            flags: c.flags(),
        }));
    }
    Ok((cqes, memory))
}
// ANCHOR_END: complete

/// Gives up on `memory` that requests in flight may still use: it is leaked,
/// never freed under the kernel (rule 3), and the error says so.
pub fn leak<T>(memory: T, err: impl Into<anyhow::Error>) -> anyhow::Error {
    std::mem::forget(memory);
    err.into()
        .context("requests may still be in flight: their memory is leaked")
}

/// Submits what is queued and hands `memory` back. If io_uring_enter fails,
/// the queued requests may or may not have reached the kernel, so `memory`
/// is leaked.
pub fn submit<T>(ring: &mut IoUring, memory: T) -> anyhow::Result<T> {
    match ring.submit() {
        Ok(_) => Ok(memory),
        Err(err) => Err(leak(memory, err)),
    }
}

/// The CQE with this user_data.
pub fn find(cqes: &[Cqe], user_data: u64) -> anyhow::Result<Cqe> {
    cqes.iter()
        .copied()
        .find(|c| c.user_data == user_data)
        .with_context(|| format!("no CQE with user_data {user_data}"))
}

/// A new ring, or the diagnosis of why there is none.
pub fn ring(entries: u32) -> anyhow::Result<IoUring> {
    IoUring::new(entries).map_err(uring_book::diagnose::setup)
}
