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
use uring_book::in_flight::{Call, InFlight, Leak};
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

/// The offset that means "no offset": the file's own position, and besides 0
/// the only offset a pipe or a socket accepts (io_uring_prep_write(3)).
pub const STREAM: u64 = u64::MAX;

impl Op {
    pub fn new(offset: u64, buf: Vec<u8>) -> Op {
        Op {
            offset,
            buf,
            done: 0,
        }
    }

    /// An op on a pipe or a socket, which has no offsets.
    pub fn stream(buf: Vec<u8>) -> Op {
        Op::new(STREAM, buf)
    }
}

impl Leak for Op {
    fn leak_buffers(&mut self) {
        self.buf.leak_buffers();
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
    /// The op index of every CQE, in the order the CQEs arrived.
    pub order: Vec<u64>,
    /// The result (`res`) of every CQE, in the same order.
    pub results: Vec<i32>,
    /// Every io_uring_enter call, in order.
    pub calls: Vec<Call>,
}

// ANCHOR: sqe
/// The SQE for the part of `op` not yet done.
pub fn sqe_for(dir: Dir, fd: RawFd, op: &mut Op) -> io_uring::squeue::Entry {
    let offset = match op.offset {
        STREAM => STREAM,
        start => start + op.done as u64,
    };
    let rest = &mut op.buf[op.done..];
    let (ptr, len) = (rest.as_mut_ptr(), rest.len() as u32);
    match dir {
        Dir::Read => opcode::Read::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build(),
        Dir::Write => opcode::Write::new(types::Fd(fd), ptr, len)
            .offset(offset)
            .build(),
    }
}
// ANCHOR_END: sqe

// ANCHOR: run_batch
/// Reads or writes every op in `ops` on `fd`, as many per io_uring_enter as
/// the rings allow, until each op has moved all its bytes.
pub fn run_batch(
    ring: &mut IoUring,
    dir: Dir,
    fd: RawFd,
    ops: &mut [Op],
) -> anyhow::Result<BatchStats> {
    // More operations in flight than CQ entries could overflow the CQ.
    let cq_room = ring.params().cq_entries() as usize;
    let mut stats = BatchStats::for_ops(ops.len());
    let mut todo: VecDeque<usize> = (0..ops.len()).collect();
    let mut flight = InFlight::new(ring, ops)?;
    while !flight.is_idle() || (flight.ok() && !todo.is_empty()) {
        while flight.ok() && flight.pending() < cq_room {
            let Some(i) = todo.pop_front() else { break };
            let sqe = sqe_for(dir, fd, &mut flight.buffers()[i]);
            // SAFETY: the buffer is lent to `flight`, which gives it back
            // only once no operation uses it, or leaks it.
            if !unsafe { flight.push(sqe, i) } {
                break;
            }
            stats.sqes += 1;
        }
        // Submit what is queued and wait for all of it.
        flight.wait_for(flight.pending(), |ops, i, res| {
            stats.order.push(i as u64);
            stats.results.push(res);
            if account(dir, i, &mut ops[i], res)? {
                stats.short += 1; // a short transfer: queue the rest
                todo.push_back(i);
            }
            Ok(())
        });
    }
    Ok(BatchStats::from_calls(stats, flight.finish()?))
}
// ANCHOR_END: run_batch

impl BatchStats {
    pub fn for_ops(ops: usize) -> BatchStats {
        BatchStats {
            ops,
            ..Default::default()
        }
    }

    /// `stats` with the counts of io_uring_enter `calls` filled in.
    pub fn from_calls(stats: BatchStats, calls: Vec<Call>) -> BatchStats {
        BatchStats {
            enters: calls.len(),
            consumed: calls.iter().map(|c| c.consumed).sum(),
            full_sq: calls.iter().filter(|c| c.full_sq).count(),
            calls,
            ..stats
        }
    }
}

// ANCHOR: account
/// What a CQE's result means for `op`: Ok(true) if bytes remain to move,
/// Ok(false) if it is done, an error if it failed or moved nothing.
pub fn account(dir: Dir, i: usize, op: &mut Op, res: i32) -> anyhow::Result<bool> {
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
// ANCHOR_END: account

/// `size` bytes of `block {i:04} ` over and over: block `i`'s own content.
fn block(i: usize, size: usize) -> Vec<u8> {
    let text = format!("block {i:04} ");
    text.bytes().cycle().take(size).collect()
}

/// `count` blocks of `size` bytes, each filled with its own number, so a
/// block read back from the wrong offset cannot pass for the right one.
pub fn blocks(count: usize, size: usize) -> Vec<Op> {
    (0..count)
        .map(|i| Op::new((i * size) as u64, block(i, size)))
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
/// Submits a read of an empty pipe (op 0) and then `n` reads of `file`
/// (ops 1..=n) in one io_uring_enter. The file reads complete; the pipe read
/// waits for data, which arrives only after they did. Returns the op of each
/// CQE in arrival order.
pub fn out_of_order(
    ring: &mut IoUring,
    file: &File,
    n: usize,
) -> anyhow::Result<Vec<u64>> {
    let (pipe_rx, pipe_tx) = pipe()?;
    let mut bufs = vec![vec![0u8; 16]; n + 1];
    let mut flight = InFlight::new(ring, &mut bufs[..])?;
    for i in 0..=n {
        let fd = if i == 0 { &pipe_rx } else { file }.as_raw_fd();
        let buf = &mut flight.buffers()[i];
        let read = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), 16).build();
        // SAFETY: `flight` holds the buffers until every read is reaped, or
        // leaks them; the kernel holds its own reference to each file.
        if !unsafe { flight.push(read, i) } {
            break;
        }
    }
    let (mut order, mut pipe_tx) = (Vec::new(), Some(pipe_tx));
    while !flight.is_idle() {
        // Once the file reads are in, or after an error, write to the pipe
        // (or close it: end of file), so that the pipe read completes too.
        if order.len() == n || !flight.ok() {
            if let Some(mut tx) = pipe_tx.take().filter(|_| flight.ok()) {
                tx.write_all(b"now")
                    .unwrap_or_else(|e| flight.fail(e.into()));
            }
        }
        flight.wait_for(1, |_, i, _| {
            order.push(i as u64);
            Ok(())
        });
    }
    flight.finish()?;
    Ok(order)
}
// ANCHOR_END: out_of_order

/// A pipe as (read end, write end).
pub fn pipe() -> io::Result<(File, File)> {
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
    // One op, and no offset: a pipe has none.
    let mut ops = vec![Op::stream(block(0, total))];
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
    println!("  CQEs by op, in arrival order: {}", order.join(" "));
}

/// The io_uring_enter calls one by one: what each consumed and waited for.
fn show_calls(s: &BatchStats) {
    for (n, call) in s.calls.iter().enumerate() {
        let why = if call.full_sq {
            " (the SQ was full)"
        } else {
            ""
        };
        println!(
            "    call {}: consumed {} SQEs, waited for {} CQEs{why}",
            n + 1,
            call.consumed,
            call.waited_for
        );
    }
}

/// Repeated values once with a count: `4096 x15, 2048`.
fn runs(values: &[i32]) -> String {
    let mut out: Vec<(i32, usize)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => out.push((v, 1)),
        }
    }
    let shown: Vec<String> = out
        .iter()
        .map(|&(v, n)| {
            if n == 1 {
                v.to_string()
            } else {
                format!("{v} x{n}")
            }
        })
        .collect();
    shown.join(", ")
}

/// The name of the filesystem `file` is on, as statfs(2) tells it.
pub fn filesystem(file: &File) -> String {
    // SAFETY: statfs is plain data that fstatfs fills or leaves alone.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return "an unknown filesystem".into();
    }
    match fs.f_type as u64 {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("a filesystem of type {other:#x}"),
    }
}

/// Kernel worker threads (io-wq) of this process: the threads named iou-wrk-*.
pub fn io_wq_workers() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("iou-wrk"))
        .count()
}

/// Checks that every op's buffer equals the one it should have read back.
pub fn verify(read: &[Op], written: &[Op]) -> anyhow::Result<()> {
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
    println!(
        "  the file is on {}; io-wq worker threads (iou-wrk-*) now: {}",
        filesystem(&file),
        io_wq_workers()
    );

    println!("\n== 3. Completions in any order");
    let k = (n - 1).clamp(1, 4);
    let order = out_of_order(&mut ring, &file, k)?;
    let order: Vec<String> = order.iter().map(|u| u.to_string()).collect();
    println!("submitted: 0 (an empty pipe), then 1-{k} (the file)");
    println!("completed: {}", order.join(" "));

    let small = args.small_ring;
    let mut small_ring = IoUring::new(small).map_err(diagnose::setup)?;
    let (sq, cq) = (
        small_ring.params().sq_entries(),
        small_ring.params().cq_entries(),
    );
    println!(
        "\n== 4. A full SQ: {n} writes through a ring of {sq} SQ and {cq} CQ entries"
    );
    let mut written = blocks(n, size);
    let w = run_batch(&mut small_ring, Dir::Write, fd, &mut written)?;
    let mut read = read_buffers(&written);
    let r = run_batch(&mut small_ring, Dir::Read, fd, &mut read)?;
    verify(&read, &written)?;
    show("writes", &w);
    show_calls(&w);
    show("reads", &r);

    let (total, capacity) = (64 * 1024, 4096);
    println!("\n== 5. Short writes: {total} bytes into a pipe that holds {capacity}");
    let (s, sent, got) = short_writes(&mut ring, total, capacity)?;
    show("write", &s);
    println!("  bytes moved by each CQE: {}", runs(&s.results));
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
