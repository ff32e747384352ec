//! Exercise 3: registered (fixed) buffers and registered files.
//!
//! The exercise registers one file and a set of buffers with the ring, writes
//! each buffer with WriteFixed and reads it back with ReadFixed, both naming
//! the file by its index in the registered table (`types::Fixed`). Then it
//! times plain Read against ReadFixed, with and without the registered file.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use io_uring::{opcode, squeue, types, IoUring};
use uring_book::{diagnose, system, usage};

#[derive(clap::Args)]
pub struct Args {
    /// Buffers to register
    #[arg(
        long,
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub buffers: u16,
    /// Bytes per buffer (16 x 64 KiB = 1 MiB registered)
    #[arg(
        long,
        default_value_t = 64 * 1024,
        value_parser = clap::value_parser!(u32).range(4096..=1 << 30)
    )]
    pub buf_size: u32,
    /// Reads per variant and round in the measurement (0 skips it)
    #[arg(long, default_value_t = 50_000)]
    pub measure_ops: u32,
}

/// How a read names its file and its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `opcode::Read` with `types::Fd`: nothing registered.
    Read,
    /// `opcode::Read` with `types::Fixed`: the file is registered.
    ReadFixedFile,
    /// `opcode::ReadFixed` with `types::Fd`: the buffer is registered.
    ReadFixed,
    /// `opcode::ReadFixed` with `types::Fixed`: both are.
    ReadFixedBoth,
}

pub const VARIANTS: [Variant; 4] = [
    Variant::Read,
    Variant::ReadFixedFile,
    Variant::ReadFixed,
    Variant::ReadFixedBoth,
];

/// Reads per io_uring_enter in the measurement.
const BATCH: usize = 32;

/// Each variant is timed this many times; the best time counts.
const ROUNDS: usize = 3;

/// Size of each read in the measurement: a page, a common I/O size.
const MEASURE_READ: usize = 4096;

/// Registering pins every buffer in RAM (with CAP_IPC_LOCK, no limit stops
/// it): more than half of the machine's memory cannot be meant.
fn check_pinned_bytes(args: &Args) -> anyhow::Result<()> {
    let bytes = u64::from(args.buffers) * u64::from(args.buf_size);
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ram = pages.max(0) as u64 * page.max(0) as u64;
    const GIB: f64 = (1u64 << 30) as f64;
    if ram > 0 && bytes > ram / 2 {
        return Err(usage::error(format!(
            "--buffers {} x --buf-size {} is {:.1} GiB, more than half of this \
             machine's {:.1} GiB of RAM, all of which registering would pin",
            args.buffers,
            args.buf_size,
            bytes as f64 / GIB,
            ram as f64 / GIB
        )));
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    check_pinned_bytes(args)?;
    let (count, size) = (args.buffers as usize, args.buf_size as usize);
    // ANCHOR: setup
    // The buffers are declared before the ring, so they are dropped after
    // it. The kernel unpins them later still (the ring's teardown is
    // asynchronous); that is sound because nothing is in flight by then.
    let mut bufs: Vec<Vec<u8>> = (0..count).map(|_| vec![0u8; size]).collect();
    let mut ring = IoUring::new(count.max(BATCH).next_power_of_two() as u32)
        .map_err(diagnose::setup)?;
    // ANCHOR_END: setup

    // ANCHOR: register_buffers
    let iovecs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|buf| libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        })
        .collect();
    // SAFETY: each buffer stays allocated, unmoved and unresized until the
    // ring is dropped (see above), and every operation that names it is
    // reaped before that. The kernel pins its pages now.
    unsafe { ring.submitter().register_buffers(&iovecs) }
        .map_err(|err| diagnose::register_buffers(err, count * size))?;
    // ANCHOR_END: register_buffers

    let dir = uring_book::cleanup::tempdir()?;
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("ex3.dat"))?;
    // ANCHOR: register_files
    // Slot 0 of the ring's file table now holds its own reference to the
    // file; SQEs name it as types::Fixed(0).
    ring.submitter()
        .register_files(&[file.as_raw_fd()])
        .context("io_uring_register(IORING_REGISTER_FILES)")?;
    // ANCHOR_END: register_files
    let s = if count == 1 { "" } else { "s" };
    println!(
        "registered {count} buffer{s} of {} ({} pinned) and 1 file\n\
         RLIMIT_MEMLOCK {}, CAP_IPC_LOCK {}",
        system::human_bytes(Some(size as u64)),
        system::human_bytes(Some((count * size) as u64)),
        system::human_bytes(system::memlock_limit().ok().and_then(|l| l.soft)),
        if system::has_cap_ipc_lock() {
            "held"
        } else {
            "not held"
        },
    );

    for (i, buf) in bufs.iter_mut().enumerate() {
        let text = format!("buffer {i:04} ");
        buf.iter_mut()
            .zip(text.bytes().cycle())
            .for_each(|(b, t)| *b = t);
    }
    let written = bufs.clone();
    let sqes = write_read_fixed(&mut ring, &mut bufs, Dir::Write)?;
    println!(
        "WriteFixed: {count} buffer{s} to file offsets 0..{}, {sqes} SQEs",
        count * size
    );
    bufs.iter_mut().for_each(|buf| buf.fill(0));
    let sqes = write_read_fixed(&mut ring, &mut bufs, Dir::Read)?;
    if bufs != written {
        bail!("the buffers read back with ReadFixed differ from those written");
    }
    println!(
        "ReadFixed: {count} buffer{s} back, {sqes} SQEs; every byte equals what was \
         written"
    );

    if args.measure_ops > 0 {
        let ops = args.measure_ops as usize;
        println!(
            "\nmeasurement: {ops} reads of {MEASURE_READ} bytes, {BATCH} per \
             io_uring_enter, from the page cache;\nbest of {ROUNDS} rounds \
             (one machine, not a benchmark)"
        );
        // Rounds interleave the variants, so a slow moment of the machine
        // does not land on one variant only.
        let mut best = [Duration::MAX; VARIANTS.len()];
        for _ in 0..ROUNDS {
            for (variant, best) in VARIANTS.iter().zip(&mut best) {
                let took = measure(&mut ring, &file, &mut bufs[0], *variant, ops)?;
                *best = took.min(*best);
            }
        }
        for (variant, best) in VARIANTS.iter().zip(best) {
            let per_op = best.as_nanos() / ops as u128;
            println!("  {:<42} {per_op:>5} ns/read", describe(*variant));
        }
    }
    Ok(())
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Read,
    Write,
}

// ANCHOR: fixed_sqe
/// The SQE that moves `len` bytes at `buf` (inside registered buffer
/// `index`) to or from offset `offset` of registered file 0.
fn fixed_sqe(dir: Dir, index: u16, buf: *mut u8, len: u32, offset: u64) -> squeue::Entry {
    let file = types::Fixed(0);
    match dir {
        Dir::Write => opcode::WriteFixed::new(file, buf, len, index)
            .offset(offset)
            .build(),
        Dir::Read => opcode::ReadFixed::new(file, buf, len, index)
            .offset(offset)
            .build(),
    }
    .user_data(index as u64)
}
// ANCHOR_END: fixed_sqe

/// Writes (or reads) registered buffer i at offset i * size of registered
/// file 0, all in one batch; short transfers are continued. Returns the
/// number of SQEs it took. After an error it reaps what is in flight before
/// returning it.
pub fn write_read_fixed(
    ring: &mut IoUring,
    bufs: &mut [Vec<u8>],
    dir: Dir,
) -> anyhow::Result<usize> {
    // Checked before the first push: an SQE left queued on an early return
    // would be submitted by the next io_uring_enter, buffer or not.
    if bufs.len() > ring.params().sq_entries() as usize {
        bail!("more buffers ({}) than SQ entries", bufs.len());
    }
    let mut done = vec![0usize; bufs.len()];
    let mut todo: Vec<usize> = (0..bufs.len()).collect();
    let (mut sqes, mut in_flight, mut failed, mut stalls) = (0, 0, None, 0);
    let size = bufs[0].len();
    while !todo.is_empty() || in_flight > 0 {
        for i in todo.drain(..) {
            let offset = (i * size + done[i]) as u64;
            let buf = &mut bufs[i][done[i]..];
            let sqe =
                fixed_sqe(dir, i as u16, buf.as_mut_ptr(), buf.len() as u32, offset);
            // SAFETY: bufs[i] is registered and outlives the ring; it is not
            // touched until its CQE is reaped, and this function returns only
            // when nothing is in flight or after leaking the buffers.
            if unsafe { ring.submission().push(&sqe) }.is_err() {
                failed.get_or_insert(anyhow!("SQ full"));
                break;
            }
            sqes += 1;
            in_flight += 1;
        }
        let entered = wait(ring, in_flight);
        let before = in_flight;
        for cqe in ring.completion() {
            in_flight -= 1;
            let i = cqe.user_data() as usize;
            match cqe.result() {
                res if res <= 0 => {
                    let why = if res == 0 {
                        "0 bytes".into()
                    } else {
                        diagnose::errno_text(&diagnose::cqe_error(res))
                    };
                    failed.get_or_insert(anyhow!("{dir:?}Fixed of buffer {i}: {why}"));
                }
                n => {
                    done[i] += n as usize;
                    if done[i] < bufs[i].len() {
                        todo.push(i); // short: continue with the rest
                    }
                }
            }
        }
        stalls = progress(entered, in_flight < before, &mut failed, stalls);
        if failed.is_some() {
            todo.clear(); // reap what is in flight, then give up
        }
        if stalls == STALLS_BEFORE_GIVING_UP && in_flight > 0 {
            bufs.iter_mut().for_each(leak);
            return Err(failed.unwrap_or_else(|| anyhow!("no progress")))
                .context(format!("{in_flight} operations in flight: buffers leaked"));
        }
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(sqes),
    }
}

/// io_uring_enter calls in a row that neither consumed an SQE nor brought a
/// CQE, after which a loop stops waiting for what is in flight.
const STALLS_BEFORE_GIVING_UP: usize = 3;

/// submit_and_wait, again after a signal interrupts the wait. Returns how
/// many SQEs the kernel consumed.
fn wait(ring: &IoUring, want: usize) -> anyhow::Result<usize> {
    loop {
        match ring.submit_and_wait(want) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.context("io_uring_enter"),
        }
    }
}

/// The new count of io_uring_enter calls in a row without progress, after
/// `entered`; keeps its error in `failed` unless there was one already.
fn progress(
    entered: anyhow::Result<usize>,
    reaped: bool,
    failed: &mut Option<anyhow::Error>,
    stalls: usize,
) -> usize {
    match entered {
        Ok(consumed) if consumed > 0 || reaped => 0,
        Ok(_) => stalls + 1,
        Err(err) => {
            failed.get_or_insert(err);
            stalls + 1
        }
    }
}

/// Gives up on a buffer the kernel may still write into: it is never freed.
/// That is sound and lets the process report its error in one line, which
/// abort() would not.
fn leak(buf: &mut Vec<u8>) {
    std::mem::forget(std::mem::take(buf));
}

fn describe(variant: Variant) -> &'static str {
    match variant {
        Variant::Read => "Read      + types::Fd (nothing registered)",
        Variant::ReadFixedFile => "Read      + types::Fixed (file registered)",
        Variant::ReadFixed => "ReadFixed + types::Fd (buffer registered)",
        Variant::ReadFixedBoth => "ReadFixed + types::Fixed (both)",
    }
}

// ANCHOR: measure
/// Times `ops` reads of MEASURE_READ bytes from `file` (registered as file 0)
/// into `buf` (registered buffer 0), BATCH (or the SQ size, if smaller) per
/// io_uring_enter.
pub fn measure(
    ring: &mut IoUring,
    file: &File,
    buf: &mut Vec<u8>,
    variant: Variant,
    ops: usize,
) -> anyhow::Result<Duration> {
    let len = MEASURE_READ.min(buf.len());
    // The offsets cycle through the first `buf.len()` bytes of the file.
    let slots = buf.len() / len;
    let (fd, fixed, ptr) = (
        types::Fd(file.as_raw_fd()),
        types::Fixed(0),
        buf.as_mut_ptr(),
    );
    let most = BATCH.min(ring.params().sq_entries() as usize);
    let (mut issued, mut reaped, mut failed, mut stalls) = (0, 0, None, 0);
    let start = Instant::now();
    // After an error, issue nothing more but reap every read in flight.
    while reaped < issued || (issued < ops && failed.is_none()) {
        // Queue until `most` reads are in flight, then submit and wait for all.
        while issued < ops && issued - reaped < most && failed.is_none() {
            let (off, l) = ((issued % slots * len) as u64, len as u32);
            let sqe = match variant {
                Variant::Read => opcode::Read::new(fd, ptr, l).offset(off).build(),
                Variant::ReadFixedFile => {
                    opcode::Read::new(fixed, ptr, l).offset(off).build()
                }
                Variant::ReadFixed => {
                    opcode::ReadFixed::new(fd, ptr, l, 0).offset(off).build()
                }
                Variant::ReadFixedBoth => {
                    opcode::ReadFixed::new(fixed, ptr, l, 0).offset(off).build()
                }
            };
            // SAFETY: `buf` (registered buffer 0) and `file` outlive every
            // read: all are reaped before this function returns, or `buf` is
            // leaked. The reads all land in the same buffer: only their
            // timing matters here.
            if unsafe { ring.submission().push(&sqe) }.is_err() {
                failed = Some(anyhow!("SQ full"));
                break;
            }
            issued += 1;
        }
        let entered = wait(ring, issued - reaped);
        let before = reaped;
        for cqe in ring.completion() {
            reaped += 1;
            if cqe.result() != len as i32 {
                let res = cqe.result();
                failed.get_or_insert(anyhow!("{variant:?} returned {res}, not {len}"));
            }
        }
        stalls = progress(entered, reaped > before, &mut failed, stalls);
        if stalls == STALLS_BEFORE_GIVING_UP && reaped < issued {
            leak(buf);
            return Err(failed.unwrap_or_else(|| anyhow!("no progress"))).context(
                format!("{} reads in flight: buffer leaked", issued - reaped),
            );
        }
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(start.elapsed()),
    }
}
// ANCHOR_END: measure
