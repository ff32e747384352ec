//! Exercise 2: write and read back through the ring, then many operations per
//! io_uring_enter: a batch, completions in any order, a full SQ, short writes.
//!
//! [`run_batch`] does all the work: it queues one SQE per operation, submits
//! when the SQ is full, waits, matches each CQE to its operation by
//! user_data and queues the rest of any short transfer again. It counts what
//! it did in [`BatchStats`], which the exercise prints and the tests check.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, bail, Context};
use io_uring::{opcode, types, IoUring};
use uring_book::{diagnose, usage};

#[derive(clap::Args)]
pub struct Args {
    /// Operations per batch
    #[arg(
        long,
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub ops: u32,
    /// Bytes each operation writes and reads
    #[arg(
        long,
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..=1 << 20)
    )]
    pub block_size: u32,
    /// SQ entries of the ring that shows a full SQ; rounded up to a power of
    /// two, it must stay below --ops
    #[arg(
        long,
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub small_ring: u32,
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Read,
    Write,
}

/// One read or write of `buf` at `offset`; `done` counts the bytes moved so far.
pub struct Op {
    pub offset: u64,
    pub buf: Vec<u8>,
    pub done: usize,
}

impl Op {
    pub fn new(offset: u64, buf: Vec<u8>) -> Op {
        Op {
            offset,
            buf,
            done: 0,
        }
    }
}

/// What one call of [`run_batch`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchStats {
    /// Operations asked for.
    pub ops: usize,
    /// SQEs pushed: one per operation, plus one per continued short transfer.
    pub sqes: usize,
    /// io_uring_enter calls made (through submit and submit_and_wait).
    pub enters: usize,
    /// SQEs the kernel says it consumed: the sum of what io_uring_enter returned.
    pub consumed: usize,
    /// Times a push found the SQ full, so we submitted before pushing again.
    pub full_sq: usize,
    /// Short transfers whose rest was queued again.
    pub short: usize,
    /// user_data of every CQE, in the order the CQEs arrived.
    pub order: Vec<u64>,
}

// ANCHOR: sqe
/// The SQE for the part of `op` not yet done; user_data is the op's index.
fn sqe_for(dir: Dir, fd: RawFd, op: &mut Op, index: usize) -> io_uring::squeue::Entry {
    let offset = op.offset + op.done as u64;
    let rest = &mut op.buf[op.done..];
    let (ptr, len) = (rest.as_mut_ptr(), rest.len() as u32);
    let entry = match dir {
        Dir::Read => opcode::Read::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build(),
        Dir::Write => opcode::Write::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build(),
    };
    entry.user_data(index as u64)
}
// ANCHOR_END: sqe

/// Calls io_uring_enter through the crate: submits every queued SQE and
/// waits for `want` completions. Counts the call; retries after a signal.
/// Returns how many SQEs the kernel consumed.
fn enter(ring: &IoUring, want: usize, stats: &mut BatchStats) -> anyhow::Result<usize> {
    loop {
        stats.enters += 1;
        match ring.submit_and_wait(want) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("io_uring_enter"),
            Ok(consumed) => {
                stats.consumed += consumed;
                return Ok(consumed);
            }
        }
    }
}

/// io_uring_enter calls in a row that neither consumed an SQE nor brought a
/// CQE, after which [`run_batch`] stops waiting for what is in flight.
pub const STALLS_BEFORE_GIVING_UP: usize = 3;

// ANCHOR: run_batch
/// Reads or writes every op in `ops` on `fd`, as many per io_uring_enter as
/// the rings allow, until each op has moved all its bytes. After an error it
/// queues nothing more and reaps what is in flight before returning it.
pub fn run_batch(
    ring: &mut IoUring,
    dir: Dir,
    fd: RawFd,
    ops: &mut [Op],
) -> anyhow::Result<BatchStats> {
    let mut stats = BatchStats {
        ops: ops.len(),
        ..Default::default()
    };
    // More operations in flight than CQ entries could overflow the CQ.
    let cq_room = ring.params().cq_entries() as usize;
    let mut todo: VecDeque<usize> = (0..ops.len()).collect();
    // in_flight: pushed and not yet completed (queued in the SQ or with the
    // kernel). failed: the first error, returned once nothing is in flight.
    let (mut in_flight, mut failed, mut stalls) = (0, None, 0);
    while !todo.is_empty() || in_flight > 0 {
        while in_flight < cq_room && failed.is_none() {
            let Some(&i) = todo.front() else { break };
            let sqe = sqe_for(dir, fd, &mut ops[i], i);
            // SAFETY: ops[i].buf outlives the operation: `ops` is borrowed for
            // this whole function, which returns only when nothing is in
            // flight or after leaking the buffers (give_up), and the buffer
            // is not touched before its CQE.
            if unsafe { ring.submission().push(&sqe) }.is_ok() {
                todo.pop_front();
                stats.sqes += 1;
                in_flight += 1;
                continue;
            }
            // The SQ is full: submitting hands its SQEs to the kernel, which
            // frees their slots. If it took none, stop rather than spin.
            stats.full_sq += 1;
            match enter(ring, 0, &mut stats) {
                Ok(0) => failed = Some(anyhow!("io_uring_enter consumed no SQE")),
                Ok(_) => {}
                Err(err) => failed = Some(err),
            }
        }
        // Submit what is queued and wait for all of it (a signal may end the
        // wait early: the loop then waits again).
        let entered = enter(ring, in_flight, &mut stats);
        let before = in_flight;
        for cqe in ring.completion() {
            in_flight -= 1;
            // user_data says which op this is: CQEs come in any order.
            let i = cqe.user_data() as usize;
            stats.order.push(cqe.user_data());
            match account(dir, i, &mut ops[i], cqe.result()) {
                Ok(true) => {
                    stats.short += 1; // a short transfer: queue the rest
                    todo.push_back(i);
                }
                Ok(false) => {}
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        match entered {
            Ok(consumed) if consumed > 0 || in_flight < before => stalls = 0,
            Ok(_) => stalls += 1,
            Err(err) => (failed, stalls) = (failed.or(Some(err)), stalls + 1),
        }
        if failed.is_some() {
            todo.clear(); // queue nothing more, but reap what is in flight
        }
        if stalls == STALLS_BEFORE_GIVING_UP && in_flight > 0 {
            return Err(give_up(ops, in_flight, failed));
        }
    }
    failed.map_or(Ok(stats), Err)
}
// ANCHOR_END: run_batch

// ANCHOR: helpers
/// What a CQE's result means for `op`: Ok(true) if bytes remain to move,
/// Ok(false) if it is done, an error if it failed or moved nothing.
fn account(dir: Dir, i: usize, op: &mut Op, res: i32) -> anyhow::Result<bool> {
    if res < 0 {
        let err = diagnose::errno_text(&diagnose::cqe_error(res));
        bail!("{dir:?} {i} failed: {err}");
    }
    if res == 0 {
        let (done, len) = (op.done, op.buf.len());
        bail!("{dir:?} {i} moved 0 bytes with {done} of {len} done (end of file?)");
    }
    op.done += res as usize;
    Ok(op.done < op.buf.len())
}

/// The ring keeps failing, so we cannot learn when the kernel is done with
/// the buffers, and freeing one it still uses lets it write into freed
/// memory. Leaking them all is sound and keeps the process alive to report
/// the error in one line, which abort() would not. SQEs may still be queued
/// in the SQ: should the ring ever be entered again, they run on memory that
/// is still there, but on a descriptor the caller may have closed since.
fn give_up(
    ops: &mut [Op],
    in_flight: usize,
    failed: Option<anyhow::Error>,
) -> anyhow::Error {
    for op in ops.iter_mut() {
        std::mem::forget(std::mem::take(&mut op.buf));
    }
    let err = failed.unwrap_or_else(|| anyhow!("io_uring_enter makes no progress"));
    err.context(format!(
        "gave up on {in_flight} operations in flight, leaking their buffers"
    ))
}
// ANCHOR_END: helpers

/// `count` blocks of `size` bytes, each filled with its own number, so a
/// block read back from the wrong offset cannot pass for the right one.
pub fn blocks(count: usize, size: usize) -> Vec<Op> {
    (0..count)
        .map(|i| {
            let text = format!("block {i:04} ");
            let buf = text.bytes().cycle().take(size).collect();
            Op::new((i * size) as u64, buf)
        })
        .collect()
}

/// Empty buffers for reading back what `written` wrote.
pub fn read_buffers(written: &[Op]) -> Vec<Op> {
    written
        .iter()
        .map(|op| Op::new(op.offset, vec![0; op.buf.len()]))
        .collect()
}

// ANCHOR: out_of_order
/// Submits a read of an empty pipe (user_data 0) and then `n` reads of
/// `file` (user_data 1..=n) in one io_uring_enter. The file reads complete;
/// the pipe read waits for data, which arrives only after they did. Returns
/// the user_data of each CQE in arrival order.
pub fn out_of_order(
    ring: &mut IoUring,
    file: &File,
    n: usize,
) -> anyhow::Result<Vec<u64>> {
    // Checked before the first push: an SQE left queued in the SQ on an early
    // return would be submitted by the next io_uring_enter, buffer long gone.
    let sq = ring.submission();
    if sq.capacity() - sq.len() < n + 1 {
        bail!("the SQ has no room for {} SQEs", n + 1);
    }
    drop(sq);
    let (pipe_rx, mut pipe_tx) = pipe()?;
    let mut bufs = vec![[0u8; 16]; n + 1];
    for (i, buf) in bufs.iter_mut().enumerate() {
        let fd = if i == 0 { &pipe_rx } else { file }.as_raw_fd();
        let read = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
            .build()
            .user_data(i as u64);
        // SAFETY: `bufs` lives until every CQE is reaped, or is leaked below.
        // The kernel holds its own reference to each file once it has the SQE.
        unsafe { ring.submission().push(&read) }.expect("room checked above");
    }
    let mut order = Vec::new();
    // Wait for n CQEs: the n file reads. The pipe read cannot complete yet.
    let result = reap_until(ring, &mut order, n).and_then(|()| {
        pipe_tx.write_all(b"now")?;
        reap_until(ring, &mut order, n + 1)
    });
    if result.is_err() {
        // The pipe read may be pending: closing the write end completes it
        // (0 bytes, end of file). If even that cannot be reaped, leak the
        // buffers rather than free memory the kernel may write into.
        drop(pipe_tx);
        if reap_until(ring, &mut order, n + 1).is_err() {
            std::mem::forget(bufs);
        }
    }
    result.map(|()| order)
}

/// Reaps CQEs until `order` holds the user_data of `total`; an error only
/// after io_uring_enter failed STALLS_BEFORE_GIVING_UP times in a row.
fn reap_until(
    ring: &mut IoUring,
    order: &mut Vec<u64>,
    total: usize,
) -> anyhow::Result<()> {
    let mut stalls = 0;
    while order.len() < total {
        match ring.submit_and_wait(total - order.len()) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if stalls + 1 == STALLS_BEFORE_GIVING_UP => {
                return Err(err).context("io_uring_enter");
            }
            Err(_) => stalls += 1,
            Ok(_) => stalls = 0,
        }
        order.extend(ring.completion().map(|cqe| cqe.user_data()));
    }
    Ok(())
}
// ANCHOR_END: out_of_order

/// A pipe as (read end, write end).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    unsafe {
        Ok((
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        ))
    }
}

// ANCHOR: short_writes
/// Writes `total` bytes into a pipe that holds only `capacity` bytes while a
/// thread reads the other end. Each write takes what fits and completes
/// short; run_batch queues the rest. Returns the stats and what the reader got.
pub fn short_writes(
    ring: &mut IoUring,
    total: usize,
    capacity: usize,
) -> anyhow::Result<(BatchStats, Vec<u8>, Vec<u8>)> {
    let (mut pipe_rx, pipe_tx) = pipe()?;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(pipe_tx.as_raw_fd(), libc::F_SETPIPE_SZ, capacity as i32) }
        < 0
    {
        return Err(io::Error::last_os_error()).context("F_SETPIPE_SZ");
    }
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        pipe_rx.read_to_end(&mut got).map(|_| got)
    });
    // One op at offset 0: a pipe has no offsets, the kernel ignores them.
    let mut ops = blocks(1, total);
    let stats = run_batch(ring, Dir::Write, pipe_tx.as_raw_fd(), &mut ops)?;
    drop(pipe_tx); // end of file for the reader
    let got = reader
        .join()
        .map_err(|_| anyhow!("reader thread panicked"))??;
    let sent = std::mem::take(&mut ops[0].buf);
    Ok((stats, sent, got))
}
// ANCHOR_END: short_writes

fn show(what: &str, s: &BatchStats) {
    let order: Vec<String> = s.order.iter().map(|u| u.to_string()).collect();
    let ops = if s.ops == 1 { "op" } else { "ops" };
    println!(
        "{what}: {} {ops}, {} SQEs, {} short",
        s.ops, s.sqes, s.short
    );
    println!(
        "  io_uring_enter x{}, consuming {} SQEs ({} of the calls on a full SQ)",
        s.enters, s.consumed, s.full_sq
    );
    println!("  CQEs by user_data, in arrival order: {}", order.join(" "));
}

/// Checks that every op's buffer equals the one it should have read back.
fn verify(read: &[Op], written: &[Op]) -> anyhow::Result<()> {
    for (i, (r, w)) in read.iter().zip(written).enumerate() {
        if r.buf != w.buf {
            bail!("block {i} read back differs from what was written");
        }
    }
    Ok(())
}

/// Part 4 shows a full SQ only if the small ring has fewer SQ entries than
/// there are operations; the kernel rounds the entries up to a power of two.
fn check_small_ring(args: &Args) -> anyhow::Result<()> {
    let (small, ops) = (args.small_ring, args.ops);
    let entries = small.next_power_of_two();
    if small >= ops {
        return Err(usage::error(format!(
            "--small-ring {small} must be smaller than --ops {ops}, \
             or part 4 never fills the SQ"
        )));
    }
    if entries >= ops {
        return Err(usage::error(format!(
            "--small-ring {small} becomes {entries} SQ entries (the kernel rounds \
             up to a power of two), not fewer than --ops {ops}: part 4 never fills the SQ"
        )));
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    check_small_ring(args)?;
    let (n, size) = (args.ops as usize, args.block_size as usize);
    // Room for the whole batch, and at least 8 for part 3's five reads.
    let entries = n.max(8).next_power_of_two() as u32;
    let mut ring = IoUring::new(entries).map_err(diagnose::setup)?;
    let dir = uring_book::cleanup::tempdir()?;
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("ex2.dat"))?;
    let fd = file.as_raw_fd();

    println!("== 1. Write, read back, verify");
    // ANCHOR: write_read
    let mut written = vec![Op::new(
        0,
        b"Written through io_uring, read back the same way.\n".to_vec(),
    )];
    let w = run_batch(&mut ring, Dir::Write, fd, &mut written)?;
    let mut read = read_buffers(&written);
    let r = run_batch(&mut ring, Dir::Read, fd, &mut read)?;
    verify(&read, &written)?;
    // ANCHOR_END: write_read
    println!(
        "wrote {} bytes in {} SQE, read {} back in {} SQE: equal",
        written[0].done, w.sqes, read[0].done, r.sqes
    );

    println!(
        "\n== 2. A batch: {n} writes, then {n} reads, ring of {} SQ entries",
        ring.params().sq_entries()
    );
    let mut written = blocks(n, size);
    let w = run_batch(&mut ring, Dir::Write, fd, &mut written)?;
    let mut read = read_buffers(&written);
    let r = run_batch(&mut ring, Dir::Read, fd, &mut read)?;
    verify(&read, &written)?;
    show("writes", &w);
    show("reads", &r);
    println!("  every block read back equals the block written at its offset");

    println!("\n== 3. Completions in any order");
    let k = (n - 1).clamp(1, 4);
    let order = out_of_order(&mut ring, &file, k)?;
    let order: Vec<String> = order.iter().map(|u| u.to_string()).collect();
    println!("submitted: 0 (an empty pipe), then 1-{k} (the file)");
    println!("completed: {}", order.join(" "));

    let small = args.small_ring;
    println!("\n== 4. A full SQ: {n} writes through a ring of {small} SQ entries");
    let mut small_ring = IoUring::new(small).map_err(diagnose::setup)?;
    let mut written = blocks(n, size);
    let w = run_batch(&mut small_ring, Dir::Write, fd, &mut written)?;
    let mut read = read_buffers(&written);
    let r = run_batch(&mut small_ring, Dir::Read, fd, &mut read)?;
    verify(&read, &written)?;
    show("writes", &w);
    show("reads", &r);

    let (total, capacity) = (64 * 1024, 4096);
    println!("\n== 5. Short writes: {total} bytes into a pipe that holds {capacity}");
    let (s, sent, got) = short_writes(&mut ring, total, capacity)?;
    show("write", &s);
    if got != sent {
        bail!(
            "the pipe's reader got {} bytes, not the {} written",
            got.len(),
            sent.len()
        );
    }
    println!("  the reader got all {} bytes, in order", got.len());
    Ok(())
}
