//! Solutions to chapter 7's "What to try next": hard links in the copy, more
//! pairs in flight, a deadline on work a worker runs, and a synchronous
//! cancel.

/// Exercise 7.1: the copy's pair with `IO_HARDLINK`, fed a short read from a
/// pipe.
pub mod hard_links {
    use std::io::Write;
    use std::os::fd::{AsRawFd, RawFd};

    use anyhow::{anyhow, ensure};
    use io_uring::{opcode, squeue, types, IoUring};
    use uring_book::ex7_chains_deadlines_cancel::{self as ex7, res_text};
    use uring_book::ex7_linked_copy::{after_pair, linked_pair};

    /// Bytes each read asks for; the pipe holds only [`IN_PIPE`].
    pub const BLOCK: usize = 64 << 10;
    /// Bytes written into the pipe before the pair runs.
    pub const IN_PIPE: usize = 4 << 10;

    /// user_data as exercise 7's copy makes it: the slot, and which half.
    fn tag(slot: usize, half: u64) -> u64 {
        slot as u64 * 2 + half
    }
    const READ: u64 = 0;
    const WRITE: u64 = 1;

    // ANCHOR: hard_pair
    /// `linked_pair` with one change: `IO_HARDLINK` on the read, so the
    /// write runs whatever the read returned.
    pub fn hard_pair(
        src: RawFd,
        dst: RawFd,
        buf: &mut [u8],
        offset: u64,
        slot: usize,
    ) -> [squeue::Entry; 2] {
        let (ptr, len) = (buf.as_mut_ptr(), buf.len() as u32);
        let read = opcode::Read::new(types::Fd(src), ptr, len)
            .offset(offset)
            .build()
            .flags(squeue::Flags::IO_HARDLINK)
            .user_data(tag(slot, READ));
        let write = opcode::Write::new(types::Fd(dst), ptr, len)
            .offset(offset)
            .build()
            .user_data(tag(slot, WRITE));
        [read, write]
    }
    // ANCHOR_END: hard_pair

    type Pair = fn(RawFd, RawFd, &mut [u8], u64, usize) -> [squeue::Entry; 2];

    // ANCHOR: from_pipe
    /// One pair from a pipe that holds 4 KiB into a new file: the read is
    /// short, and `after_pair` judges what the write did.
    fn one_pair(ring: &mut IoUring, pair: Pair) -> anyhow::Result<(i32, i32, Vec<u8>)> {
        let (reader, mut writer) = uring_book::ex2_write_and_batch::pipe()?;
        writer.write_all(&[b'p'; IN_PIPE])?;
        let dir = uring_book::cleanup::tempdir()?;
        let dst = std::fs::File::create(dir.path().join("copy"))?;
        let mut buf = vec![b'?'; BLOCK]; // a byte no read wrote shows as '?'
        let sqes = pair(reader.as_raw_fd(), dst.as_raw_fd(), &mut buf, 0, 0);
        // SAFETY: `buf` and both files go to `complete`, which keeps them
        // until both CQEs are in (or leaks them).
        unsafe { ring.submission().push_multiple(&sqes) }.map_err(|_| anyhow!("full"))?;
        let (cqes, _kept) = ex7::complete(ring, 2, (buf, reader, dst))?;
        let (read, write) = (ex7::find(&cqes, 0)?.res, ex7::find(&cqes, 1)?.res);
        Ok((read, write, std::fs::read(dir.path().join("copy"))?))
    }
    // ANCHOR_END: from_pipe

    // ANCHOR: hard_links
    pub fn run() -> anyhow::Result<()> {
        let mut ring = ex7::ring(4)?;
        println!("one pair, a 64 KiB read from a pipe that holds 4 KiB:");
        for (name, pair) in [("IO_LINK", linked_pair as Pair), ("IO_HARDLINK", hard_pair)]
        {
            let (read, write, copy) = one_pair(&mut ring, pair)?;
            let unread = copy.iter().filter(|&&b| b == b'?').count();
            println!("  {name}: read res={read}, write res={}", res_text(write));
            println!("    the copy: {} bytes, {unread} never read", copy.len());
            match after_pair(0, BLOCK, read, write) {
                Ok(next) => println!("    after_pair: {next:?}"),
                Err(refused) => println!("    after_pair refuses: {refused}"),
            }
            let hard = name == "IO_HARDLINK";
            ensure!(read == IN_PIPE as i32, "the read returned {read}, not 4096");
            ensure!(
                hard == (write == BLOCK as i32),
                "{name}: the write returned {write}"
            );
            ensure!(hard == after_pair(0, BLOCK, read, write).is_err(), "{name}");
        }
        println!("repeat it by hand: set IO_HARDLINK in linked_pair, then");
        println!("  cargo run -- 7 chain");
        Ok(())
    }
    // ANCHOR_END: hard_links
}

/// Exercise 7.2: the linked copy with 1, 4 and 16 pairs in flight, and
/// with blocks of 1 MiB, cold and warm, interleaved.
pub mod more_in_flight {
    use std::path::Path;
    use std::time::Instant;

    use anyhow::ensure;
    use uring_book::bench::file;
    use uring_book::bench::stats::{compare, Spread, Verdict};
    use uring_book::ex7_copy_bench::{copy_with, Cache, Method};
    use uring_book::ex7_linked_copy as copy;
    use uring_book::usage;

    #[derive(clap::Args)]
    pub struct Args {
        /// Size of the file copied, in MiB
        #[arg(long, default_value_t = 16, value_parser = usage::at_least_one::<u64>)]
        pub size_mib: u64,
        /// Timed runs of each setting in each cache state
        #[arg(long, default_value_t = 5, value_parser = usage::at_least_one::<usize>)]
        pub repeats: usize,
    }

    /// (pairs, block KiB): exercise 7's default first, then the exercise's.
    pub const SETTINGS: [(usize, usize); 4] = [(4, 256), (1, 256), (16, 256), (4, 1024)];

    // ANCHOR: one_copy
    /// One linked copy of `src` in `cache` state, in MiB/s.
    fn one_copy(
        (src, dst): (&Path, &Path),
        cache: Cache,
        (pairs, block_kib): (usize, usize),
        check: bool,
    ) -> anyhow::Result<f64> {
        match cache {
            Cache::Cold => file::evict(src)?,
            Cache::Warm => file::warm(src)?,
        }
        let start = Instant::now();
        let bytes = copy_with(Method::Linked, src, dst, block_kib << 10, pairs)?;
        let secs = start.elapsed().as_secs_f64();
        if check {
            ensure!(
                copy::verify(src, dst)?.equal(),
                "the copy differs from its source"
            );
        }
        std::fs::remove_file(dst)?; // no run writes back the last one's pages
        Ok(bytes as f64 / (1 << 20) as f64 / secs)
    }
    // ANCHOR_END: one_copy

    /// Every setting's runs, cold then warm: `runs[cache][setting]`, MiB/s.
    fn measure(
        args: &Args,
        src: &Path,
        dst: &Path,
    ) -> anyhow::Result<[Vec<Vec<f64>>; 2]> {
        let n = SETTINGS.len();
        let mut runs = [vec![Vec::new(); n], vec![Vec::new(); n]];
        for rep in 0..args.repeats.max(2) {
            for (c, cache) in [Cache::Cold, Cache::Warm].into_iter().enumerate() {
                // The order rotates, so that a slow moment hits every setting.
                for i in (0..n).map(|i| (i + rep) % n) {
                    let mib_s = one_copy((src, dst), cache, SETTINGS[i], rep == 0)?;
                    runs[c][i].push(mib_s);
                }
            }
        }
        Ok(runs)
    }

    // ANCHOR: more_in_flight
    pub fn run(args: &Args) -> anyhow::Result<()> {
        let dir = uring_book::cleanup::tempdir()?;
        let (src, dst) = (dir.path().join("source"), dir.path().join("copy"));
        copy::write_test_file(&src, args.size_mib << 20)?;
        let runs = measure(args, &src, &dst)?;
        println!(
            "the linked copy of {} MiB, {} runs each:",
            args.size_mib,
            runs[0][0].len()
        );
        println!("  cache  pairs  block     MiB/s (lowest-highest)");
        for (cache, runs) in ["cold", "warm"].into_iter().zip(runs) {
            let spreads: Vec<Spread> = runs.into_iter().filter_map(Spread::of).collect();
            for ((pairs, kib), s) in SETTINGS.into_iter().zip(&spreads) {
                let verdict = match compare(s, &spreads[0]) {
                    _ if std::ptr::eq(s, &spreads[0]) => "exercise 7's default".into(),
                    Verdict::Higher | Verdict::Lower => {
                        format!("{:.2}x the default", s.median / spreads[0].median)
                    }
                    Verdict::Tie | Verdict::OneRun => "a tie with the default".into(),
                };
                let (block, range) =
                    (format!("{kib} KiB"), format!("({:.0}-{:.0})", s.min, s.max));
                println!(
                    "  {cache:<5}  {pairs:>5}  {block:<8} {:>6.0} {range:<11} {verdict}",
                    s.median
                );
            }
        }
        println!("repeat it by hand: cargo run --release -- 7 bench --pairs 1");
        Ok(())
    }
    // ANCHOR_END: more_in_flight
}

/// Exercise 7.3: `cancel_running` with a `LinkTimeout` on the fsync instead
/// of the cancel; beside it, the same deadline on a receive that waits.
pub mod deadline_on_work {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, bail, ensure};
    use io_uring::{opcode, squeue, types, IoUring};
    use uring_book::ex7_cancel::FSYNC_BYTES;
    use uring_book::ex7_chains_deadlines_cancel::{self as ex7, res_text, Cqe};

    /// The deadline the exercise asks for.
    pub const LIMIT: Duration = Duration::from_millis(1);

    // ANCHOR: fsync_deadline
    /// `cancel_running` with the change: the fsync (1) is linked to a
    /// `LinkTimeout` of `limit` (2), and no cancel follows.
    pub fn fsync_with_deadline(
        ring: &mut IoUring,
        dir: &Path,
        limit: Duration,
    ) -> anyhow::Result<(Vec<Cqe>, Duration)> {
        let mut file = File::create(dir.join("dirty"))?;
        file.write_all(&vec![7u8; FSYNC_BYTES])?;
        let start = Instant::now();
        let fsync = opcode::Fsync::new(types::Fd(file.as_raw_fd())).build();
        let limit = types::Timespec::from(limit);
        let sqes = [
            fsync.flags(squeue::Flags::IO_LINK).user_data(1),
            opcode::LinkTimeout::new(&limit).build().user_data(2),
        ];
        // SAFETY: `file` and `limit` go to `complete`, which keeps them until
        // both CQEs are in.
        unsafe { ring.submission().push_multiple(&sqes) }.map_err(|_| anyhow!("full"))?;
        let (cqes, _kept) = ex7::complete(ring, 2, (file, limit))?;
        Ok((cqes, start.elapsed()))
    }
    // ANCHOR_END: fsync_deadline

    /// The same deadline on a receive that would wait for ever.
    fn recv_with_deadline(
        ring: &mut IoUring,
        limit: Duration,
    ) -> anyhow::Result<Vec<Cqe>> {
        let (ours, _peer) = UnixStream::pair()?;
        let mut buf = vec![0u8; 64];
        let fd = types::Fd(ours.as_raw_fd());
        let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), 64).build();
        let limit = types::Timespec::from(limit);
        let sqes = [
            recv.flags(squeue::Flags::IO_LINK).user_data(1),
            opcode::LinkTimeout::new(&limit).build().user_data(2),
        ];
        // SAFETY: as above, `buf`, the socket and `limit` go to `complete`.
        unsafe { ring.submission().push_multiple(&sqes) }.map_err(|_| anyhow!("full"))?;
        Ok(ex7::complete(ring, 2, (buf, ours, limit))?.0)
    }

    // ANCHOR: deadline_on_work
    pub fn run() -> anyhow::Result<()> {
        let version = uring_book::system::kernel_version();
        if version.is_some_and(|v| v < (6, 15)) {
            bail!("this solution predicts the behaviour of Linux 6.15 and later");
        }
        let mut ring = ex7::ring(8)?;
        let dir = uring_book::cleanup::tempdir()?;
        let (cqes, took) = fsync_with_deadline(&mut ring, dir.path(), LIMIT)?;
        println!(
            "an fsync of {} MiB of dirty pages, linked to a 1 ms LinkTimeout:",
            FSYNC_BYTES >> 20
        );
        show(&cqes, "the fsync", "the timer");
        println!(
            "  the fsync's CQE came after {:.1} ms",
            took.as_secs_f64() * 1e3
        );
        let (fsync, timer) = (ex7::find(&cqes, 1)?.res, ex7::find(&cqes, 2)?.res);
        ensure!(
            fsync == 0 && timer == -libc::ECANCELED,
            "the timer interrupted the fsync"
        );
        let tmp = "put TMPDIR on a disk";
        ensure!(
            took > 2 * LIMIT,
            "the fsync beat the deadline, so it shows nothing: {tmp}"
        );
        let cqes = recv_with_deadline(&mut ring, LIMIT)?;
        println!("a Recv that waits for data, linked to the same LinkTimeout:");
        show(&cqes, "the recv", "the timer");
        let (recv, timer) = (ex7::find(&cqes, 1)?.res, ex7::find(&cqes, 2)?.res);
        ensure!(
            recv == -libc::ECANCELED && timer == -libc::ETIME,
            "the wait outlived the timer"
        );
        println!("repeat it by hand: cargo run -- solution 7.3");
        Ok(())
    }
    // ANCHOR_END: deadline_on_work

    fn show(cqes: &[Cqe], one: &str, two: &str) {
        for c in cqes {
            let name = if c.user_data == 1 { one } else { two };
            println!(
                "  cqe user_data={} res={:<16} {name}",
                c.user_data,
                res_text(c.res)
            );
        }
    }
}

/// Exercise 7.4: `cancel_fd_all` with `register_sync_cancel` instead of the
/// `AsyncCancel2` SQE.
pub mod sync_cancel {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use anyhow::{anyhow, bail, ensure};
    use io_uring::types::{CancelBuilder, Fd};
    use io_uring::{opcode, IoUring};
    use uring_book::ex7_chains_deadlines_cancel::{self as ex7, res_text, Cqe};

    // ANCHOR: cancel_fd_sync
    /// Three receives on one socket (user_data 1-3), cancelled by one call
    /// that returns once they are done: no cancel SQE, no cancel CQE.
    pub fn cancel_fd_all_sync(
        ring: &mut IoUring,
        sock: &UnixStream,
    ) -> anyhow::Result<Vec<Cqe>> {
        let fd = Fd(sock.as_raw_fd());
        let mut bufs = vec![vec![0u8; 64]; 3];
        let recvs: Vec<_> = (1..)
            .zip(&mut bufs)
            .map(|(ud, b)| {
                opcode::Recv::new(fd, b.as_mut_ptr(), 64)
                    .build()
                    .user_data(ud)
            })
            .collect();
        // SAFETY: `bufs` goes to `complete` below, or is leaked.
        unsafe { ring.submission().push_multiple(&recvs) }
            .map_err(|_| anyhow!("full"))?;
        let bufs = ex7::submit(ring, bufs)?; // the call sees only what the kernel has
        let all = CancelBuilder::fd(fd).all();
        if let Err(err) = ring.submitter().register_sync_cancel(None, all) {
            return Err(ex7::leak(bufs, err)); // the receives may still be waiting
        }
        Ok(ex7::complete(ring, 3, bufs)?.0)
    }
    // ANCHOR_END: cancel_fd_sync

    /// `IORING_REGISTER_SYNC_CANCEL` (6.0): an older kernel answers EINVAL,
    /// this one ENOENT, since no request has this user_data.
    fn has_sync_cancel(ring: &IoUring) -> bool {
        let nothing = CancelBuilder::user_data(u64::MAX);
        let answer = ring.submitter().register_sync_cancel(None, nothing);
        answer.err().and_then(|e| e.raw_os_error()) != Some(libc::EINVAL)
    }

    // ANCHOR: sync_cancel
    pub fn run() -> anyhow::Result<()> {
        let mut ring = ex7::ring(8)?;
        if !has_sync_cancel(&ring) {
            bail!("register_sync_cancel needs Linux 6.0 (IORING_REGISTER_SYNC_CANCEL)");
        }
        let (ours, _peer) = UnixStream::pair()?;
        println!("three Recvs on one socket, then register_sync_cancel(FD | ALL):");
        let cqes = cancel_fd_all_sync(&mut ring, &ours)?;
        for c in &cqes {
            println!("  cqe user_data={} res={}", c.user_data, res_text(c.res));
        }
        ensure!(
            cqes.iter().all(|c| c.res == -libc::ECANCELED),
            "a Recv was not cancelled"
        );
        let mut ids: Vec<u64> = cqes.iter().map(|c| c.user_data).collect();
        ids.sort();
        ensure!(ids == [1, 2, 3], "the CQEs were for {ids:?}");
        ensure!(ring.completion().is_empty(), "a fourth CQE came");
        println!(
            "  three CQEs, all the receives' own: the call itself reported the cancel"
        );
        println!("repeat it by hand: cargo run -- solution 7.4");
        Ok(())
    }
    // ANCHOR_END: sync_cancel
}
