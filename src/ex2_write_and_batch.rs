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
use uring_book::diagnose;

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
    /// SQ entries of the ring that shows a full SQ (fewer than --ops)
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
fn enter(ring: &IoUring, want: usize, stats: &mut BatchStats) -> anyhow::Result<()> {
    loop {
        stats.enters += 1;
        match ring.submit_and_wait(want) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("io_uring_enter"),
            Ok(consumed) => {
                stats.consumed += consumed;
                return Ok(());
            }
        }
    }
}

/// Reads or writes every op in `ops` on `fd`, as many per io_uring_enter as
/// the rings allow, until each op has moved all its bytes.
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
    let (mut in_flight, mut failed) = (0, None);
    while !todo.is_empty() || in_flight > 0 {
        // ANCHOR: queue
        while in_flight < cq_room {
            let Some(i) = todo.pop_front() else { break };
            let sqe = sqe_for(dir, fd, &mut ops[i], i);
            // SAFETY: ops[i].buf outlives the operation: `ops` is borrowed
            // for this whole function, which returns only when nothing is
            // in flight, and the buffer is not touched before its CQE.
            while unsafe { ring.submission().push(&sqe) }.is_err() {
                // The SQ is full. Submitting hands its SQEs to the kernel,
                // which frees their slots; then the push is tried again.
                stats.full_sq += 1;
                enter(ring, 0, &mut stats)?;
            }
            stats.sqes += 1;
            in_flight += 1;
        }
        // ANCHOR_END: queue

        // ANCHOR: reap
        // One io_uring_enter submits what is queued and waits for all of it
        // (a signal may end the wait early: the loop then waits again).
        enter(ring, in_flight, &mut stats)?;
        for cqe in ring.completion() {
            in_flight -= 1;
            // user_data says which op this is: CQEs come in any order.
            let i = cqe.user_data() as usize;
            stats.order.push(cqe.user_data());
            let op = &mut ops[i];
            match cqe.result() {
                res if res < 0 => {
                    let err = diagnose::errno_text(&diagnose::cqe_error(res));
                    failed.get_or_insert(anyhow!("{dir:?} {i} failed: {err}"));
                }
                0 => {
                    failed.get_or_insert(anyhow!(
                        "{dir:?} {i} moved 0 bytes with {} of {} done (end of file?)",
                        op.done,
                        op.buf.len()
                    ));
                }
                n => {
                    op.done += n as usize;
                    if op.done < op.buf.len() {
                        // A short transfer: queue the rest as a new SQE.
                        stats.short += 1;
                        todo.push_back(i);
                    }
                }
            }
        }
        if failed.is_some() {
            // Queue nothing more, but reap what is in flight before
            // returning: the kernel may still be using those buffers.
            todo.clear();
        }
        // ANCHOR_END: reap
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(stats),
    }
}

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
/// the user_data of each CQE in arrival order. The SQ must hold n + 1 SQEs.
pub fn out_of_order(
    ring: &mut IoUring,
    file: &File,
    n: usize,
) -> anyhow::Result<Vec<u64>> {
    let (pipe_rx, mut pipe_tx) = pipe()?;
    let mut bufs = vec![[0u8; 16]; n + 1];
    for (i, buf) in bufs.iter_mut().enumerate() {
        let fd = if i == 0 {
            pipe_rx.as_raw_fd()
        } else {
            file.as_raw_fd()
        };
        let read = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
            .build()
            .user_data(i as u64);
        // SAFETY: `bufs` and both descriptors live until every CQE is reaped.
        unsafe { ring.submission().push(&read) }.map_err(|_| anyhow!("SQ full"))?;
    }
    let mut order = Vec::new();
    // Wait for n CQEs: the n file reads. The pipe read cannot complete yet.
    while order.len() < n {
        ring.submit_and_wait(n - order.len())?;
        order.extend(ring.completion().map(|cqe| cqe.user_data()));
    }
    pipe_tx.write_all(b"now")?;
    while order.len() < n + 1 {
        ring.submit_and_wait(1)?;
        order.extend(ring.completion().map(|cqe| cqe.user_data()));
    }
    Ok(order)
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

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (n, size) = (args.ops as usize, args.block_size as usize);
    // Room for the whole batch, and at least 8 for part 3's five reads.
    let entries = n.max(8).next_power_of_two() as u32;
    let mut ring = IoUring::new(entries).map_err(diagnose::setup)?;
    let dir = tempfile::tempdir()?;
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
    // ANCHOR: batch
    let mut written = blocks(n, size);
    let w = run_batch(&mut ring, Dir::Write, fd, &mut written)?;
    let mut read = read_buffers(&written);
    let r = run_batch(&mut ring, Dir::Read, fd, &mut read)?;
    verify(&read, &written)?;
    // ANCHOR_END: batch
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
