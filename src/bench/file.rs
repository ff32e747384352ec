//! The file workloads: sequential write and read of a large file, and random
//! 4 KiB reads, each done with std (blocking syscalls), a pool of threads
//! doing blocking preads, and io_uring with several requests in flight.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use io_uring::{opcode, squeue, squeue::Entry, types, IoUring};

use uring_book::bench::record::Measured;
use uring_book::bench::stats::{Latencies, Rng, Window};
use uring_book::diagnose;

/// The block size of the random-read workloads.
pub const BLOCK: usize = 4096;

/// Memory aligned to 4 KiB, as O_DIRECT requires of its buffers.
pub struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len.max(BLOCK), BLOCK).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, layout }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for layout.size() initialized bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes it exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    /// The address of byte `at`, for a submission entry.
    fn at(&self, at: usize) -> *mut u8 {
        assert!(at <= self.layout.size());
        // SAFETY: within the allocation.
        unsafe { self.ptr.add(at) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in new().
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

// SAFETY: AlignedBuf owns its memory like a Vec<u8> does.
unsafe impl Send for AlignedBuf {}

/// The byte the test file holds at `offset`: the write workloads write it,
/// tests read it back. Every 4 KiB block holds the same bytes, so a buffer
/// filled once serves any chunk that starts on a block boundary.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % BLOCK as u64 % 251) as u8
}

fn fill_pattern(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(offset + i as u64);
    }
}

/// Opens the test file for reading, with O_DIRECT when asked.
pub fn open_for_reads(path: &Path, direct: bool) -> anyhow::Result<File> {
    let flags = if direct { libc::O_DIRECT } else { 0 };
    OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

fn create(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))
}

/// Drops the file's pages from the page cache, so that the next read comes
/// from the device. Dirty pages are written first: DONTNEED skips them.
pub fn evict(path: &Path) -> anyhow::Result<()> {
    let file = File::open(path)?;
    file.sync_all()?;
    // SAFETY: an fadvise hint on an open descriptor.
    let rc =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("posix_fadvise");
    }
    Ok(())
}

/// Whether the file can be read without blocking: preadv2(2) with
/// RWF_NOWAIT fails with EOPNOTSUPP when the file is not opened with
/// FMODE_NOWAIT (tmpfs, on every kernel since 4.14). Since Linux 6.5 io_uring
/// decides the same way: a buffered read of a file without FMODE_NOWAIT goes
/// straight to an io-wq thread. Before 6.5 io_uring tried such reads inline
/// anyway, so the probe predicts io_uring's behaviour from 6.5 on only.
pub fn supports_nowait_reads(path: &Path) -> anyhow::Result<bool> {
    // Buffered, whatever the workload uses: O_DIRECT would want aligned buffers.
    let file = File::open(path)?;
    let mut buf = [0u8; 512];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: one iovec over a live local buffer.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    if n >= 0 {
        return Ok(true);
    }
    match std::io::Error::last_os_error() {
        // EAGAIN: supported, the data just was not cached.
        e if e.raw_os_error() == Some(libc::EAGAIN) => Ok(true),
        e if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        e => Err(e).context("preadv2(RWF_NOWAIT)"),
    }
}

/// Reads the whole file once so that its pages are in the page cache.
pub fn warm(path: &Path) -> anyhow::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while file.read(&mut buf)? > 0 {}
    Ok(())
}

/// Sequential write with std: `write_all` of each chunk, then fsync.
pub fn seq_write_std(path: &Path, size: u64, chunk: usize) -> anyhow::Result<Measured> {
    let mut file = create(path)?;
    let mut buf = vec![0u8; chunk];
    fill_pattern(&mut buf, 0);
    let mut latencies = Latencies::new();
    let window = Window::start();
    let mut offset = 0u64;
    while offset < size {
        let len = chunk.min((size - offset) as usize);
        let started = Instant::now();
        file.write_all(&buf[..len])?;
        latencies.record(started.elapsed());
        offset += len as u64;
    }
    // The data is on the device only after fsync; both engines pay for it.
    file.sync_all()?;
    Ok(Measured::of_window(window.stop(), size, latencies))
}

/// Sequential read with std: `read` of each chunk until end of file.
pub fn seq_read_std(path: &Path, chunk: usize) -> anyhow::Result<Measured> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; chunk];
    let mut latencies = Latencies::new();
    let mut bytes = 0u64;
    let window = Window::start();
    loop {
        let started = Instant::now();
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        latencies.record(started.elapsed());
        bytes += n as u64;
    }
    Ok(Measured::of_window(window.stop(), bytes, latencies))
}

/// Pushes one entry, making room first if the submission queue is full, and
/// counts the system calls that took.
fn push(
    ring: &mut IoUring,
    entry: &squeue::Entry,
    syscalls: &mut u64,
) -> anyhow::Result<()> {
    // SAFETY: every entry points into a buffer that outlives the ring's use of
    // it: the callers keep their buffers until every completion is reaped.
    while unsafe { ring.submission().push(entry) }.is_err() {
        // Without SQPOLL, submitting empties the queue. With SQPOLL the poller
        // empties it by itself, and may post a completion before it moves the
        // queue's head on: wait for it, entering the kernel only if it sleeps.
        if !ring.params().is_setup_sqpoll() || ring.submission().need_wakeup() {
            ring.submit()?;
            *syscalls += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    Ok(())
}

// ANCHOR: sequential
/// One request slot of a sequential transfer: which part of the file it
/// moves and how much of that is done (a short read or write continues).
#[derive(Clone, Copy)]
struct Chunk {
    offset: u64,
    len: usize,
    done: usize,
    started: Instant,
}

/// Writes (or reads) `size` bytes sequentially in chunks, `depth` of them in
/// flight at once, each slot with its own part of one buffer.
fn uring_sequential(
    file: &File,
    size: u64,
    chunk: usize,
    depth: usize,
    write: bool,
) -> anyhow::Result<Measured> {
    let mut ring =
        IoUring::new(depth.next_power_of_two() as u32).map_err(diagnose::setup)?;
    let mut buf = AlignedBuf::new(chunk * depth);
    if write {
        for slot in 0..depth {
            fill_pattern(&mut buf.as_mut_slice()[slot * chunk..][..chunk], 0);
        }
    }
    let fd = types::Fd(file.as_raw_fd());
    let entry = |slot: usize, c: &Chunk| {
        let ptr = buf.at(slot * chunk + c.done);
        let len = (c.len - c.done) as u32;
        let offset = c.offset + c.done as u64;
        let e = if write {
            opcode::Write::new(fd, ptr, len).offset(offset).build()
        } else {
            opcode::Read::new(fd, ptr, len).offset(offset).build()
        };
        e.user_data(slot as u64)
    };
    let mut slots = vec![None::<Chunk>; depth];
    let (mut next, mut bytes, mut syscalls) = (0u64, 0u64, 0u64);
    let mut latencies = Latencies::new();
    let window = Window::start();
    loop {
        // Give every idle slot the next chunk of the file.
        for (slot, state) in slots.iter_mut().enumerate() {
            if state.is_none() && next < size {
                let len = chunk.min((size - next) as usize);
                let c = Chunk {
                    offset: next,
                    len,
                    done: 0,
                    started: Instant::now(),
                };
                push(&mut ring, &entry(slot, &c), &mut syscalls)?;
                *state = Some(c);
                next += len as u64;
            }
        }
        if slots.iter().all(Option::is_none) {
            break;
        }
        ring.submit_and_wait(1)?;
        syscalls += 1;
        let done: Vec<(usize, i32)> = ring
            .completion()
            .map(|cqe| (cqe.user_data() as usize, cqe.result()))
            .collect();
        for (slot, res) in done {
            let mut c = slots[slot].take().expect("a completion for a busy slot");
            if res < 0 {
                let err = diagnose::cqe_error(res);
                bail!(
                    "{} at offset {}: {err}",
                    if write { "write" } else { "read" },
                    c.offset
                );
            }
            if res == 0 {
                bail!(
                    "unexpected end of file at offset {}",
                    c.offset + c.done as u64
                );
            }
            c.done += res as usize;
            if c.done < c.len {
                // A short transfer: ask for the rest, from where it stopped.
                push(&mut ring, &entry(slot, &c), &mut syscalls)?;
                slots[slot] = Some(c);
                continue;
            }
            latencies.record(c.started.elapsed());
            bytes += c.len as u64;
        }
    }
    // Counted before the fsync, which always goes to a worker.
    let io_wq = io_wq_workers();
    if write {
        let fsync = opcode::Fsync::new(fd).build().user_data(u64::MAX);
        push(&mut ring, &fsync, &mut syscalls)?;
        ring.submit_and_wait(1)?;
        syscalls += 1;
        let cqe = ring.completion().next().context("fsync completion")?;
        if cqe.result() < 0 {
            bail!("fsync: {}", diagnose::cqe_error(cqe.result()));
        }
    }
    Ok(Measured {
        syscalls: Some(syscalls),
        io_wq_workers: Some(io_wq),
        ..Measured::of_window(window.stop(), bytes, latencies)
    })
}
// ANCHOR_END: sequential

pub fn seq_write_uring(
    path: &Path,
    size: u64,
    chunk: usize,
    depth: usize,
) -> anyhow::Result<Measured> {
    let file = create(path)?;
    on_fresh_thread(|| uring_sequential(&file, size, chunk, depth, true))
}

pub fn seq_read_uring(
    path: &Path,
    chunk: usize,
    depth: usize,
) -> anyhow::Result<Measured> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    on_fresh_thread(|| uring_sequential(&file, size, chunk, depth, false))
}

/// Random 4 KiB preads by `threads` threads for `duration`: with one thread
/// this is plain std, with more it is what a pool of blocking threads (as
/// behind tokio::fs and spawn_blocking) can do at best.
pub fn rand_read_threads(
    file: &File,
    threads: usize,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<Measured> {
    let blocks = file.metadata()?.len() / BLOCK as u64;
    let stop = AtomicBool::new(false);
    let window = Window::start();
    let results: Vec<anyhow::Result<Latencies>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let stop = &stop;
                s.spawn(move || -> anyhow::Result<Latencies> {
                    let mut rng = Rng::new(seed + t as u64);
                    let mut buf = AlignedBuf::new(BLOCK);
                    let mut latencies = Latencies::new();
                    // One clock read per read, as the io_uring loop takes one
                    // per round: each read starts when the previous one ended.
                    // At least one read each, even when a loaded machine starts
                    // the thread only after `duration` has passed.
                    let mut last = Instant::now();
                    loop {
                        let offset = rng.below(blocks) * BLOCK as u64;
                        file.read_exact_at(buf.as_mut_slice(), offset)?;
                        let now = Instant::now();
                        latencies.record(now - last);
                        last = now;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().expect("reader thread"))
            .collect()
    });
    let spent = window.stop();
    let mut latencies = Latencies::new();
    for r in results {
        latencies.merge(r?);
    }
    let ops = latencies.len() as u64;
    Ok(Measured {
        // read_exact_at makes one pread per block unless a read comes up short.
        syscalls: Some(ops),
        ..Measured::of_window(spent, ops * BLOCK as u64, latencies)
    })
}

/// When the random-read loop hands new reads to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Submit {
    /// All new reads of a round go in the io_uring_enter that also waits for
    /// the next completion.
    #[default]
    PerRound,
    /// As soon as this many new reads are queued: 1 submits each read on its
    /// own (as fio does), 2 batches below the block layer's plug (io_uring
    /// plugs calls of more than two requests), 3 is the smallest plugged call.
    Every(usize),
}

/// How the io_uring engine is set up; the default reads at depth 0 (set
/// `depth`), a round at a time, without registration or SQPOLL.
#[derive(Debug, Clone, Copy, Default)]
pub struct UringOpts {
    /// Reads in flight.
    pub depth: usize,
    /// Registered buffers: IORING_OP_READ_FIXED.
    pub fixed_bufs: bool,
    /// A registered file, named by its index (types::Fixed).
    pub fixed_file: bool,
    /// A kernel thread polls the submission queue (IORING_SETUP_SQPOLL).
    pub sqpoll: bool,
    pub submit: Submit,
}

// ANCHOR: random_setup
/// The ring of the random-read engine: room for `depth` reads, SQPOLL if
/// asked, and the buffers and the file registered if asked.
fn random_ring(
    file: &File,
    opts: UringOpts,
    buf: &AlignedBuf,
) -> anyhow::Result<IoUring> {
    let mut builder = IoUring::builder();
    if opts.sqpoll {
        builder.setup_sqpoll(1000); // the poller sleeps after 1 s without work
    }
    let ring = builder
        .build(opts.depth.next_power_of_two() as u32)
        .map_err(diagnose::setup)?;
    if opts.fixed_bufs {
        let iovecs: Vec<libc::iovec> = (0..opts.depth)
            .map(|slot| libc::iovec {
                iov_base: buf.at(slot * BLOCK).cast(),
                iov_len: BLOCK,
            })
            .collect();
        // SAFETY: the caller keeps `buf` alive until it drops the ring.
        unsafe { ring.submitter().register_buffers(&iovecs) }
            .map_err(|e| diagnose::register_buffers(e, opts.depth * BLOCK))?;
    }
    if opts.fixed_file {
        ring.submitter().register_files(&[file.as_raw_fd()])?;
    }
    Ok(ring)
}
// ANCHOR_END: random_setup

// ANCHOR: random_entry
/// A read of block `slot` of `buf` at `at`, tagged with the slot: by file
/// descriptor or by registered index, into a plain or a registered buffer.
fn read_entry(
    o: UringOpts,
    file: &File,
    buf: &AlignedBuf,
    slot: usize,
    at: u64,
) -> Entry {
    let (ptr, len, fd) = (buf.at(slot * BLOCK), BLOCK as u32, file.as_raw_fd());
    let index = slot as u16; // registered buffer `slot` is block `slot`
    let e = match (o.fixed_file, o.fixed_bufs) {
        (false, false) => opcode::Read::new(types::Fd(fd), ptr, len)
            .offset(at)
            .build(),
        (true, false) => opcode::Read::new(types::Fixed(0), ptr, len)
            .offset(at)
            .build(),
        (false, true) => opcode::ReadFixed::new(types::Fd(fd), ptr, len, index)
            .offset(at)
            .build(),
        (true, true) => opcode::ReadFixed::new(types::Fixed(0), ptr, len, index)
            .offset(at)
            .build(),
    };
    e.user_data(slot as u64)
}
// ANCHOR_END: random_entry

// ANCHOR: random_loop
/// Random 4 KiB reads with io_uring for `duration`, `opts.depth` of them in
/// flight: each completion is replaced by a new read at once.
fn uring_random(
    file: &File,
    opts: UringOpts,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<Measured> {
    let blocks = file.metadata()?.len() / BLOCK as u64;
    let buf = AlignedBuf::new(opts.depth * BLOCK);
    let mut ring = random_ring(file, opts, &buf)?;
    let mut rng = Rng::new(seed);
    let at = |rng: &mut Rng| rng.below(blocks) * BLOCK as u64;
    let mut next = |slot| read_entry(opts, file, &buf, slot, at(&mut rng));
    let (mut latencies, mut syscalls) = (Latencies::new(), 0u64);
    let (window, deadline) = (Window::start(), Instant::now() + duration);
    // When each slot's read was handed over: its user_data is the index.
    let mut started = vec![Instant::now(); opts.depth];
    for (slot, start) in started.iter_mut().enumerate() {
        push(&mut ring, &next(slot), &mut syscalls)?;
        *start = Instant::now();
    }
    let (mut in_flight, mut done) = (opts.depth, Vec::with_capacity(opts.depth));
    while in_flight > 0 {
        enter(&mut ring, opts, &mut syscalls)?;
        done.extend(ring.completion());
        let now = Instant::now(); // one clock read for the whole round
        for cqe in done.drain(..) {
            let slot = cqe.user_data() as usize;
            check_read(cqe.result())?;
            latencies.record(now - started[slot]);
            in_flight -= 1;
            if now < deadline {
                push(&mut ring, &next(slot), &mut syscalls)?;
                (started[slot], in_flight) = (now, in_flight + 1);
                submit_early(&mut ring, opts.submit, &mut syscalls)?;
            }
        }
    }
    // ANCHOR_END: random_loop
    let spent = window.stop();
    let bytes = latencies.len() as u64 * BLOCK as u64;
    Ok(Measured {
        syscalls: Some(syscalls),
        io_wq_workers: Some(io_wq_workers()),
        ..Measured::of_window(spent, bytes, latencies)
    })
}

/// Every read lies inside the file, so an error or a short read is a fault,
/// not something to retry.
fn check_read(res: i32) -> anyhow::Result<()> {
    if res < 0 {
        bail!("read: {}", diagnose::cqe_error(res));
    }
    if res as usize != BLOCK {
        bail!("read returned {res} bytes of {BLOCK}");
    }
    Ok(())
}

// ANCHOR: random_enter
/// Hands the queued reads to the kernel and waits for a completion,
/// counting the system calls that takes.
fn enter(ring: &mut IoUring, opts: UringOpts, syscalls: &mut u64) -> anyhow::Result<()> {
    if !opts.sqpoll {
        ring.submit_and_wait(1)?;
        *syscalls += 1;
        return Ok(());
    }
    // The kernel thread picks up new entries by itself. Enter the kernel
    // only to wait when no completion is there yet, as liburing's
    // io_uring_wait_cqe does, or to wake the poller when it sleeps.
    if ring.completion().is_empty() {
        ring.submit_and_wait(1)?;
        *syscalls += 1;
    } else if ring.submission().need_wakeup() {
        ring.submit()?;
        *syscalls += 1;
    }
    Ok(())
}
// ANCHOR_END: random_enter

// ANCHOR: random_submit
/// With `Submit::Every(n)`, submits as soon as `n` new reads are queued;
/// what is left when a round ends goes with the next `enter`.
fn submit_early(
    ring: &mut IoUring,
    submit: Submit,
    syscalls: &mut u64,
) -> anyhow::Result<()> {
    if let Submit::Every(n) = submit {
        if ring.submission().len() >= n {
            ring.submit()?;
            *syscalls += 1;
        }
    }
    Ok(())
}
// ANCHOR_END: random_submit

pub fn rand_read_uring(
    file: &File,
    opts: UringOpts,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<Measured> {
    on_fresh_thread(|| uring_random(file, opts, duration, seed))
}

/// Runs `f` on a new thread. io_uring gives each thread that submits its own
/// io-wq (its pool of worker threads, named `iou-wrk-<tid>`), so on a fresh
/// thread the workers counted afterwards are this run's only.
fn on_fresh_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("benchmark thread"))
}

/// The io-wq workers of the calling thread: requests that could not be done
/// without blocking were handed to them. Workers stay a while after their
/// last request, so counting at the end of a run sees them. An SQPOLL ring's
/// poller (`iou-sqp-<our tid>`) submits with an io-wq of its own, whose
/// workers are named after the poller: they count too. In a container, where
/// the names carry pids this process cannot see, it counts every worker of
/// the process.
pub fn io_wq_workers() -> u32 {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() }.to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let threads: Vec<(String, String)> = tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            Some((
                t.file_name().to_string_lossy().into(),
                comm.trim_end().into(),
            ))
        })
        .collect();
    // The kernel names these threads with the pid of the initial PID
    // namespace. Inside a container that is not the tid this process sees,
    // so no name matches: count every worker of the process instead.
    let named_elsewhere = threads.iter().any(|(_, comm)| {
        let owner = comm
            .strip_prefix("iou-wrk-")
            .or_else(|| comm.strip_prefix("iou-sqp-"));
        owner.is_some_and(|o| !threads.iter().any(|(tid, _)| tid == o))
    });
    if named_elsewhere {
        return threads
            .iter()
            .filter(|(_, comm)| comm.starts_with("iou-wrk-"))
            .count() as u32;
    }
    let pollers = threads
        .iter()
        .filter(|(_, comm)| *comm == format!("iou-sqp-{me}"));
    let owners: Vec<&str> = std::iter::once(me.as_str())
        .chain(pollers.map(|(tid, _)| tid.as_str()))
        .collect();
    threads
        .iter()
        .filter(|(_, comm)| owners.iter().any(|o| *comm == format!("iou-wrk-{o}")))
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_file(dir: &Path, size: u64) -> std::path::PathBuf {
        let path = dir.join("data");
        seq_write_uring(&path, size, 64 << 10, 4).unwrap();
        path
    }

    #[test]
    fn uring_write_puts_the_pattern_on_disk_and_uring_read_gets_it_back() {
        let dir = tempfile::tempdir().unwrap();
        // Not a multiple of the chunk size: the last chunk is short.
        let size = (1 << 20) + 5000;
        let path = test_file(dir.path(), size);
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, size);
        assert!(data
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern_byte(i as u64)));
        let read = seq_read_uring(&path, 64 << 10, 4).unwrap();
        assert_eq!(read.bytes, size);
        assert_eq!(read.ops, 17);
    }

    #[test]
    fn std_sequential_engines_move_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let w = seq_write_std(&path, 1 << 20, 256 << 10).unwrap();
        assert_eq!((w.ops, w.bytes), (4, 1 << 20));
        evict(&path).unwrap();
        let r = seq_read_std(&path, 256 << 10).unwrap();
        assert_eq!((r.ops, r.bytes), (4, 1 << 20));
    }

    #[test]
    fn every_random_read_engine_completes_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = test_file(dir.path(), 1 << 20);
        let file = open_for_reads(&path, false).unwrap();
        let short = Duration::from_millis(20);
        let pool = rand_read_threads(&file, 3, short, 1).unwrap();
        assert!(pool.ops > 0 && pool.latencies.len() as u64 == pool.ops);
        let plain = UringOpts {
            depth: 8,
            ..UringOpts::default()
        };
        let every = |n| UringOpts {
            submit: Submit::Every(n),
            ..plain
        };
        let variants = [
            plain,
            every(1),
            every(2),
            every(3),
            UringOpts {
                fixed_bufs: true,
                ..plain
            },
            UringOpts {
                fixed_file: true,
                ..plain
            },
            UringOpts {
                fixed_bufs: true,
                fixed_file: true,
                ..plain
            },
            UringOpts {
                sqpoll: true,
                ..plain
            },
        ];
        for opts in variants {
            let m = rand_read_uring(&file, opts, short, 1).unwrap();
            assert!(m.ops >= 8, "{opts:?}: {m:?}");
            assert_eq!(m.bytes, m.ops * BLOCK as u64);
            // Every completion was counted once: as many latencies as reads.
            assert_eq!(m.latencies.len() as u64, m.ops);
        }
    }

    #[test]
    fn the_workers_of_an_sqpoll_poller_count_too() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let fs = uring_book::bench::machine::file_system(dir.path()).unwrap();
        if fs.kind != "ext4" {
            return; // ext4 hands every buffered write to io-wq; others may not
        }
        let file = create(&dir.path().join("written")).unwrap();
        let workers = on_fresh_thread(|| {
            let mut ring: IoUring =
                IoUring::builder().setup_sqpoll(1000).build(4).unwrap();
            let data = [7u8; BLOCK];
            let fd = types::Fd(file.as_raw_fd());
            let write = opcode::Write::new(fd, data.as_ptr(), BLOCK as u32).build();
            // SAFETY: `data` outlives the wait for the write's completion.
            unsafe { ring.submission().push(&write).unwrap() };
            ring.submit_and_wait(1).unwrap();
            assert_eq!(ring.completion().next().unwrap().result(), BLOCK as i32);
            io_wq_workers()
        });
        assert!(workers >= 1, "the poller's worker was not counted");
    }

    #[test]
    fn nowait_probe_answers_for_disk_and_tmpfs() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = test_file(dir.path(), 64 << 10);
        // ext4, xfs and btrfs support RWF_NOWAIT reads; this crate lives on one.
        let disk = supports_nowait_reads(&path).unwrap();
        let fs = uring_book::bench::machine::file_system(dir.path()).unwrap();
        if ["ext4", "xfs", "btrfs"].contains(&fs.kind.as_str()) {
            assert!(disk);
        }
        if Path::new("/dev/shm").is_dir() {
            let shm = tempfile::tempdir_in("/dev/shm").unwrap();
            let path = test_file(shm.path(), 64 << 10);
            // Any answer but an error: which one depends on the kernel.
            supports_nowait_reads(&path).unwrap();
        }
    }

    #[test]
    fn direct_reads_work_where_o_direct_does() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        if !uring_book::bench::machine::supports_o_direct(dir.path()).unwrap() {
            return; // this file system refuses O_DIRECT; detection is tested elsewhere
        }
        let path = test_file(dir.path(), 1 << 20);
        let file = open_for_reads(&path, true).unwrap();
        let opts = UringOpts {
            depth: 4,
            ..UringOpts::default()
        };
        let m = rand_read_uring(&file, opts, Duration::from_millis(20), 7).unwrap();
        assert!(m.ops >= 4);
        let s = rand_read_threads(&file, 1, Duration::from_millis(20), 7).unwrap();
        assert!(s.ops > 0);
    }
}
