//! Solutions to chapter 1's "What to try next": one byte at a time, two reads
//! in flight, and a ring without its index array.

/// Exercise 1.1: read a file with 1-byte and with 64 KiB reads, time both, and
/// count the io_uring_enter calls of each from outside, as strace does.
pub mod one_byte {
    use std::path::Path;
    use std::process::Command;
    use std::time::Instant;

    use anyhow::ensure;
    use io_uring::IoUring;
    use uring_book::diagnose;
    use uring_book::ex1_basic_read::{open, read_to_end};
    use uring_book::solutions::{exercises_binary, trace};

    #[derive(clap::Args)]
    pub struct Args {
        /// Size of the file to read, in KiB (every read is traced: keep it small)
        #[arg(
            long,
            default_value_t = 64,
            value_parser = clap::value_parser!(u32).range(1..=16 * 1024)
        )]
        pub size_kib: u32,
    }

    /// The buffer sizes to compare, as `--buf-size` of exercise 1.
    pub const BUF_SIZES: [usize; 2] = [1, 64 * 1024];

    /// Rounds of timing, each reading the file once per buffer size.
    pub const ROUNDS: usize = 5;

    // ANCHOR: one_byte
    pub fn run(args: &Args) -> anyhow::Result<()> {
        let len = args.size_kib as usize * 1024;
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let dir = uring_book::cleanup::tempdir()?;
        let path = dir.path().join("data");
        std::fs::write(&path, &data)?;
        let timed = time_reads(&path, &data)?;
        println!("{} bytes, median of {ROUNDS} rounds", data.len());
        println!("--buf-size  reads  io_uring_enter  ns per read  ns per byte");
        let mut costs = Vec::new();
        for (&buf_size, &(reads, ns)) in BUF_SIZES.iter().zip(&timed) {
            // Counted from outside, as `strace -c` does: exercise 1 as a child.
            let mut child = Command::new(exercises_binary()?);
            child.args(["1".as_ref(), path.as_os_str()]);
            child.arg(format!("--buf-size={buf_size}"));
            let enters = trace::enters(&trace::trace(child)?).len();
            ensure!(enters == reads, "{enters} calls for {reads} reads");
            let (per_read, per_byte) = (ns / reads as f64, ns / data.len() as f64);
            println!(
                "{buf_size:>10} {reads:>6} {enters:>15} {per_read:>12.0} {per_byte:>12.2}"
            );
            costs.push((per_read, per_byte));
        }
        let (small, big) = (costs[0], costs[1]);
        println!(
            "a read cost {:.0} times as much with 64 KiB buffers,",
            big.0 / small.0
        );
        println!(
            "a byte {:.0} times as much with 1-byte buffers",
            small.1 / big.1
        );
        Ok(())
    }
    // ANCHOR_END: one_byte

    /// Reads the file with exercise 1's `read_to_end` and each of BUF_SIZES,
    /// in ROUNDS interleaved rounds, and checks the bytes. Returns, for each
    /// size, the reads it took and the median time in nanoseconds. Only the
    /// reads are timed: `time` would add the program's start-up.
    fn time_reads(path: &Path, data: &[u8]) -> anyhow::Result<Vec<(usize, f64)>> {
        let mut ns = vec![Vec::new(); BUF_SIZES.len()];
        let mut reads = vec![0; BUF_SIZES.len()];
        for _ in 0..ROUNDS {
            for (i, &buf_size) in BUF_SIZES.iter().enumerate() {
                let mut ring = IoUring::new(8).map_err(diagnose::setup)?;
                let start = Instant::now();
                let (content, cqes) = read_to_end(&mut ring, &open(path)?, buf_size)?;
                ns[i].push(start.elapsed().as_nanos() as f64);
                ensure!(content == data, "the bytes read differ from the file");
                reads[i] = cqes.len();
            }
        }
        Ok(reads
            .into_iter()
            .zip(ns)
            .map(|(reads, mut ns)| {
                ns.sort_by(f64::total_cmp);
                (reads, ns[ns.len() / 2])
            })
            .collect())
    }
}

/// Exercise 1.2: exercise 1's `read_to_end` with two reads in flight.
pub mod two_in_flight {
    use std::fs::File;
    use std::os::unix::io::AsRawFd;

    use anyhow::{anyhow, bail, ensure};
    use io_uring::{opcode, types, IoUring};
    use uring_book::diagnose::{self, cqe_error, errno_text};
    use uring_book::ex1_basic_read::{open, read_to_end, DEFAULT_TEXT};
    use uring_book::ex7_chains_deadlines_cancel::{complete, find, Cqe};
    use uring_book::system;

    // ANCHOR: two_in_flight
    /// Reads `file` with two reads in flight; returns the bytes and the CQEs.
    pub fn read_to_end_two(
        ring: &mut IoUring,
        file: &File,
        buf_size: usize,
    ) -> anyhow::Result<(Vec<u8>, Vec<Vec<Cqe>>)> {
        let fd = types::Fd(file.as_raw_fd());
        let mut bufs = [vec![0u8; buf_size], vec![0u8; buf_size]];
        let (mut content, mut calls) = (Vec::new(), Vec::new());
        loop {
            let reads: Vec<_> = (0..2)
                .map(|i| {
                    opcode::Read::new(fd, bufs[i].as_mut_ptr(), buf_size as u32)
                        .offset((content.len() + i * buf_size) as u64)
                        .build()
                        .user_data(i as u64)
                })
                .collect();
            // SAFETY: rules 1 and 2: `complete` gives `bufs` back only with
            // both CQEs, or leaks them (rule 3); `file` outlives the call.
            unsafe { ring.submission().push_multiple(&reads) }
                .map_err(|_| anyhow!("the submission queue is full"))?;
            let (cqes, back) = complete(ring, 2, bufs)?;
            bufs = back;
            // Rule 4: each buffer by its read's user_data, not by arrival.
            let [first, second] = [bytes(find(&cqes, 0)?)?, bytes(find(&cqes, 1)?)?];
            calls.push(cqes);
            content.extend_from_slice(&bufs[0][..first]);
            // Rule 5: after a short first read, the second one left a gap.
            if first == buf_size {
                content.extend_from_slice(&bufs[1][..second]);
            }
            if first == 0 || (first == buf_size && second == 0) {
                return Ok((content, calls)); // a read of 0: the end of the file
            }
        }
    }
    // ANCHOR_END: two_in_flight

    /// The bytes a read moved, or its error (rule 5: a negative `res` is
    /// `-errno`).
    fn bytes(cqe: Cqe) -> anyhow::Result<usize> {
        match cqe.res {
            res if res < 0 => bail!("a read failed: {}", errno_text(&cqe_error(res))),
            n => Ok(n as usize),
        }
    }

    /// Reads exercise 1's file both ways and compares bytes and calls.
    pub fn run() -> anyhow::Result<()> {
        let dir = uring_book::cleanup::tempdir()?;
        let path = dir.path().join("ex1.txt");
        std::fs::write(&path, DEFAULT_TEXT)?;
        let mut ring = IoUring::new(8).map_err(diagnose::setup)?;
        let (two, calls) = read_to_end_two(&mut ring, &open(&path)?, 64)?;
        for (n, cqes) in calls.iter().enumerate() {
            let shown: Vec<String> = cqes
                .iter()
                .map(|c| format!("user_data={} res={}", c.user_data, res(c.res)))
                .collect();
            println!("round {}: {}", n + 1, shown.join(", "));
        }
        let (one, cqes) = read_to_end(&mut ring, &open(&path)?, 64)?;
        ensure!(
            two == DEFAULT_TEXT.as_bytes(),
            "two reads in flight read wrong bytes"
        );
        ensure!(one == two, "exercise 1 and this solution disagree");
        let reads: usize = calls.iter().map(Vec::len).sum();
        println!(
            "two in flight: {} bytes in {reads} reads, {} rounds of submit_and_wait(2)",
            two.len(),
            calls.len()
        );
        println!(
            "exercise 1:    {} bytes in {} reads, {} rounds of submit_and_wait(1); equal",
            one.len(),
            cqes.len(),
            cqes.len()
        );
        Ok(())
    }

    fn res(res: i32) -> String {
        match res {
            r if r < 0 => format!("{r} ({})", system::errno_name(-r)),
            r => r.to_string(),
        }
    }
}

/// Exercise 1.3: `IORING_SETUP_NO_SQARRAY` (Linux 6.6), through the crate and
/// in a ring built by hand.
pub mod no_sqarray {
    use std::io;
    use std::mem::size_of;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::ptr;
    use std::sync::atomic::{AtomicU32, Ordering};

    use anyhow::{bail, ensure, Context};
    use io_uring::IoUring;
    use uring_book::diagnose;
    use uring_book::ex1_basic_read::{open, read_to_end, DEFAULT_TEXT};
    use uring_book::ex1_raw_ring::{
        Cqe, Map, Params, Sqe, IORING_ENTER_GETEVENTS, IORING_OFF_CQ_RING,
        IORING_OFF_SQES, IORING_OFF_SQ_RING, IORING_OP_NOP,
    };

    /// `IORING_SETUP_NO_SQARRAY`, from `<linux/io_uring.h>`.
    pub const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;

    pub fn run() -> anyhow::Result<()> {
        with_the_crate()?;
        by_hand()
    }

    // ANCHOR: with_the_crate
    /// Exercise 1's read loop on a ring without the SQ index array.
    fn with_the_crate() -> anyhow::Result<()> {
        let dir = uring_book::cleanup::tempdir()?;
        let path = dir.path().join("ex1.txt");
        std::fs::write(&path, DEFAULT_TEXT)?;
        let mut ring = IoUring::builder()
            .setup_no_sqarray()
            .build(8)
            .map_err(no_sqarray_refused)?;
        let (content, cqes) = read_to_end(&mut ring, &open(&path)?, 64)?;
        ensure!(content == DEFAULT_TEXT.as_bytes(), "the bytes read differ");
        let (bytes, reads) = (content.len(), cqes.len());
        println!("setup_no_sqarray(): {bytes} bytes in {reads} reads, equal to the file");
        Ok(())
    }
    // ANCHOR_END: with_the_crate

    /// Before Linux 6.6 io_uring_setup refuses the flag with EINVAL.
    fn no_sqarray_refused(err: io::Error) -> anyhow::Error {
        match err.raw_os_error() {
            Some(libc::EINVAL) => anyhow::anyhow!(
                "io_uring_setup refused IORING_SETUP_NO_SQARRAY with EINVAL: it needs \
                 Linux 6.6, and this is {}",
                uring_book::system::kernel_release()
            ),
            _ => diagnose::setup(err),
        }
    }

    /// `src/ex1_raw_ring.rs` with `IORING_SETUP_NO_SQARRAY`: set up, map, push
    /// one NOP, enter, reap.
    fn by_hand() -> anyhow::Result<()> {
        // ANCHOR: raw_setup
        let mut p = Params {
            flags: IORING_SETUP_NO_SQARRAY,
            ..Params::default()
        };
        // SAFETY: io_uring_setup reads and fills one io_uring_params.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, &mut p) };
        if fd < 0 {
            return Err(no_sqarray_refused(io::Error::last_os_error()));
        }
        // SAFETY: the descriptor is new and ours.
        let ring = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let (s, c) = (&p.sq_off, &p.cq_off);
        let old_len = s.array as usize + p.sq_entries as usize * size_of::<u32>();
        // No array: the SQ ring ends with the last field the kernel gave an
        // offset for. (Both rings share one region since 5.4.)
        let fields = [
            s.head,
            s.tail,
            s.ring_mask,
            s.ring_entries,
            s.flags,
            s.dropped,
        ];
        let sq_len = *fields.iter().max().unwrap() as usize + size_of::<u32>();
        let cq_len = c.cqes as usize + p.cq_entries as usize * size_of::<Cqe>();
        let sq = Map::new(&ring, sq_len, IORING_OFF_SQ_RING).context("mmap SQ ring")?;
        let sqes_len = p.sq_entries as usize * size_of::<Sqe>();
        let sqes = Map::new(&ring, sqes_len, IORING_OFF_SQES).context("mmap SQEs")?;
        let cq = Map::new(&ring, cq_len, IORING_OFF_CQ_RING).context("mmap CQ ring")?;
        println!(
            "by hand, IORING_SETUP_NO_SQARRAY: sq_off.array={}, so the old length \
             would be {old_len} bytes;\nthe SQ ring's fields end at byte {sq_len}, \
             so that is the length mapped instead",
            s.array
        );
        // ANCHOR_END: raw_setup
        // SAFETY: the offsets come from the kernel and lie inside the mappings.
        let (sq_tail, cq_head, cq_tail): (&AtomicU32, &AtomicU32, &AtomicU32) =
            unsafe { (&*sq.at(s.tail), &*cq.at(c.head), &*cq.at(c.tail)) };
        // SAFETY: as above; the masks never change after setup.
        let (sq_mask, cq_mask) =
            unsafe { (*sq.at::<u32>(s.ring_mask), *cq.at::<u32>(c.ring_mask)) };
        // ANCHOR: raw_push
        // Without the array, ring position tail & mask *is* the SQE slot.
        let tail = sq_tail.load(Ordering::Relaxed);
        let slot = tail & sq_mask;
        let nop = Sqe {
            opcode: IORING_OP_NOP,
            fd: -1,
            user_data: 0x1234,
            ..Default::default()
        };
        // SAFETY: slot < sq_entries: inside the SQE mapping.
        unsafe { sqes.at::<Sqe>(slot * size_of::<Sqe>() as u32).write(nop) };
        sq_tail.store(tail.wrapping_add(1), Ordering::Release);
        // ANCHOR_END: raw_push
        // SAFETY: plain syscall: submit 1, wait for 1, no signal mask.
        let submitted = unsafe {
            let (fd, flags) = (ring.as_raw_fd(), IORING_ENTER_GETEVENTS);
            let no_mask = ptr::null::<libc::sigset_t>();
            libc::syscall(libc::SYS_io_uring_enter, fd, 1u32, 1u32, flags, no_mask, 0)
        };
        ensure!(
            submitted == 1,
            "io_uring_enter: {}",
            io::Error::last_os_error()
        );
        let head = cq_head.load(Ordering::Relaxed);
        if head == cq_tail.load(Ordering::Acquire) {
            bail!("io_uring_enter returned but the CQ is empty");
        }
        // SAFETY: head != tail: the entry at head & mask is the kernel's.
        let cqe = unsafe { cq.at::<Cqe>(c.cqes).add((head & cq_mask) as usize).read() };
        cq_head.store(head.wrapping_add(1), Ordering::Release);
        ensure!(cqe.user_data == 0x1234 && cqe.res == 0, "not the NOP's CQE");
        println!(
            "pushed a NOP in SQE slot {slot} (tail & mask); io_uring_enter returned \
             {submitted};\nits CQE: user_data={:#x} res={}",
            cqe.user_data, cqe.res
        );
        Ok(())
    }
}
