//! Exercise 3: registered (fixed) buffers and registered files.
//!
//! The exercise registers one file and a set of buffers with the ring, writes
//! each buffer with WriteFixed and reads it back with ReadFixed, both naming
//! the file by its index in the registered table (`types::Fixed`). Then it
//! times plain Read against ReadFixed, with and without the registered file.

use std::fs::File;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use io_uring::{opcode, squeue, squeue::Entry, types, IoUring};
use uring_book::in_flight::InFlight;
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
        "registered {count} buffer{s} of {} ({} spanning {} pages of {}) and 1 file\n\
         RLIMIT_MEMLOCK {}, exempt from it (CAP_IPC_LOCK): {}",
        system::human_bytes(Some(size as u64)),
        system::human_bytes(Some((count * size) as u64)),
        pages_spanned(&bufs),
        system::human_bytes(Some(page_size() as u64)),
        system::human_bytes(system::memlock_limit().ok().and_then(|l| l.soft)),
        if system::exempt_from_memlock() {
            "yes"
        } else {
            "no"
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

/// The size of a base page, the unit RLIMIT_MEMLOCK is charged in.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The base pages the buffers touch: a buffer that does not start on a page
/// boundary spans one more page than its size. (A transparent huge page under
/// a buffer is charged whole, which no address can show.)
pub fn pages_spanned(bufs: &[Vec<u8>]) -> usize {
    let page = page_size();
    bufs.iter()
        .filter(|buf| !buf.is_empty())
        .map(|buf| {
            let start = buf.as_ptr() as usize;
            (start + buf.len()).div_ceil(page) - start / page
        })
        .sum()
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

// ANCHOR: write_read_fixed
/// Writes (or reads) registered buffer i at offset i * size of registered
/// file 0, continuing short transfers. Returns the number of SQEs it took.
pub fn write_read_fixed(
    ring: &mut IoUring,
    bufs: &mut [Vec<u8>],
    dir: Dir,
) -> anyhow::Result<usize> {
    let size = bufs.first().map_or(0, Vec::len);
    let (mut done, mut sqes) = (vec![0usize; bufs.len()], 0);
    let mut todo: Vec<usize> = (0..bufs.len()).collect();
    let mut flight = InFlight::new(ring, bufs)?;
    while !flight.is_idle() || (flight.ok() && !todo.is_empty()) {
        while let Some(i) = todo.pop().filter(|_| flight.ok()) {
            let rest = &mut flight.buffers()[i][done[i]..];
            let (ptr, len) = (rest.as_mut_ptr(), rest.len() as u32);
            let sqe = fixed_sqe(dir, i as u16, ptr, len, (i * size + done[i]) as u64);
            // SAFETY: registered buffer i is lent to `flight` until its CQE.
            if !unsafe { flight.push(sqe, i) } {
                break;
            }
            sqes += 1;
        }
        flight.wait_for(flight.pending(), |bufs, i, res| {
            if res <= 0 {
                let why = match res {
                    0 => "moved 0 bytes".into(),
                    _ => diagnose::errno_text(&diagnose::cqe_error(res)),
                };
                bail!("{dir:?}Fixed of buffer {i}: {why}");
            }
            done[i] += res as usize;
            if done[i] < bufs[i].len() {
                todo.push(i); // short: continue with the rest
            }
            Ok(())
        });
    }
    flight.finish()?;
    Ok(sqes)
}
// ANCHOR_END: write_read_fixed

fn describe(variant: Variant) -> &'static str {
    match variant {
        Variant::Read => "Read      + types::Fd (nothing registered)",
        Variant::ReadFixedFile => "Read      + types::Fixed (file registered)",
        Variant::ReadFixed => "ReadFixed + types::Fd (buffer registered)",
        Variant::ReadFixedBoth => "ReadFixed + types::Fixed (both)",
    }
}

// ANCHOR: read_sqe
/// A read of `len` bytes at `offset` into `ptr`, naming the file and the
/// buffer the way `variant` says: file 0 and buffer 0 when registered.
pub fn read_sqe(
    variant: Variant,
    fd: RawFd,
    ptr: *mut u8,
    len: u32,
    offset: u64,
) -> Entry {
    let (fd, fixed) = (types::Fd(fd), types::Fixed(0));
    match variant {
        Variant::Read => opcode::Read::new(fd, ptr, len).offset(offset).build(),
        Variant::ReadFixedFile => {
            opcode::Read::new(fixed, ptr, len).offset(offset).build()
        }
        Variant::ReadFixed => opcode::ReadFixed::new(fd, ptr, len, 0)
            .offset(offset)
            .build(),
        Variant::ReadFixedBoth => opcode::ReadFixed::new(fixed, ptr, len, 0)
            .offset(offset)
            .build(),
    }
}
// ANCHOR_END: read_sqe

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
    anyhow::ensure!(!buf.is_empty(), "no buffer to read into (leaked?)");
    let len = MEASURE_READ.min(buf.len());
    // The offsets cycle through the first `buf.len()` bytes of the file.
    let slots = buf.len() / len;
    let most = BATCH.min(ring.params().sq_entries() as usize);
    let (fd, mut issued, start) = (file.as_raw_fd(), 0, Instant::now());
    let mut flight = InFlight::new(ring, buf)?;
    while !flight.is_idle() || (flight.ok() && issued < ops) {
        // Queue until `most` reads are in flight, then submit and wait for all.
        while flight.ok() && issued < ops && flight.pending() < most {
            let (ptr, offset) = (flight.buffers().as_mut_ptr(), issued % slots * len);
            let sqe = read_sqe(variant, fd, ptr, len as u32, offset as u64);
            // SAFETY: every read lands in `buf`, lent to `flight` until all
            // are reaped; they overwrite each other: only the time counts.
            if !unsafe { flight.push(sqe, issued) } {
                break;
            }
            issued += 1;
        }
        flight.wait_for(flight.pending(), |_, _, res| match res == len as i32 {
            true => Ok(()),
            false => Err(anyhow!("{variant:?} returned {res}, not {len}")),
        });
    }
    flight.finish()?;
    Ok(start.elapsed())
}
// ANCHOR_END: measure
