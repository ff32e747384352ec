//! Solutions to chapter 3's "What to try next": the RLIMIT_MEMLOCK limit
//! found, O_DIRECT with registered buffers, and a registered file that
//! outlives its descriptor.

/// Exercise 3.1: exercise 3 under a 1 MiB RLIMIT_MEMLOCK, without
/// CAP_IPC_LOCK, with more and more buffers; then two copies at once.
pub mod find_limit {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Output, Stdio};

    use anyhow::{bail, ensure, Context};
    use uring_book::solutions::exercises_binary;
    use uring_book::solutions::memlock_child::{
        self, bin_for_any_user, fresh_user, memlock_limited, memlock_limited_as,
    };
    use uring_book::system;

    /// The limit: exactly 16 of exercise 3's 64 KiB buffers.
    pub const LIMIT: u64 = 1 << 20;

    /// What a failure to start a child means.
    const UNDER_LIMIT: &str = "running exercise 3 under prlimit (and setpriv as root): \
                               install util-linux";

    pub fn run() -> anyhow::Result<()> {
        // As root, each child runs as a user of its own, without CAP_IPC_LOCK.
        let bin = bin_for_any_user(&exercises_binary()?)?;
        // As any other user, the children share your charge with every other
        // process of yours that holds registered memory at that moment (a
        // test suite running beside this, say), and lose a run to it: measure
        // again, a few times, before believing a number that is too small.
        let attempts = if memlock_child::is_root() { 1 } else { 10 };
        for attempt in 1.. {
            match find_limit(&bin.path) {
                Err(e) if attempt < attempts => {
                    println!(
                        "(something else of yours held locked memory: {e:#}; again)\n"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(300 * attempt));
                }
                result => return result,
            }
        }
        unreachable!("the loop returns")
    }

    // ANCHOR: find_limit
    fn find_limit(bin: &Path) -> anyhow::Result<()> {
        println!("exercise 3, 64 KiB buffers, RLIMIT_MEMLOCK 1 MiB, no CAP_IPC_LOCK:");
        let (mut most, mut pages) = (0, 0);
        for buffers in 12..=16 {
            let out = memlock_limited(LIMIT, bin)
                .args(["3", "--measure-ops=0", &format!("--buffers={buffers}")])
                .output()
                .context(UNDER_LIMIT)?;
            println!("  --buffers={buffers}: {}", outcome(&out));
            if out.status.success() {
                (most, pages) = (buffers, pages_spanned(&out).unwrap_or(0));
            }
        }
        ensure!(most < 16, "16 buffers of 64 KiB fit under a 1 MiB limit");
        ensure!(most >= 12, "not even 12 of the 16 buffers fit");
        println!("at most {most} fit: 16 x 64 KiB is 1 MiB, but pages are charged whole");
        explain(most, pages);
        two_at_once(bin)
    }
    // ANCHOR_END: find_limit

    // ANCHOR: two_at_once
    /// Two copies at once, as one user: the second finds the first's charge.
    fn two_at_once(bin: &Path) -> anyhow::Result<()> {
        println!("\ntwo copies at once, as one user, 8 buffers each:");
        let (uid, eight) = (fresh_user(), ["3", "--buffers=8", "--measure-ops=1000000"]);
        let mut first = memlock_limited_as(uid, LIMIT, bin)
            .args(eight)
            .stdout(Stdio::piped())
            .spawn()
            .context(UNDER_LIMIT)?;
        // Keep reading its output open: a closed pipe would end it (SIGPIPE).
        let (mut line, mut output) =
            (String::new(), BufReader::new(first.stdout.take().unwrap()));
        output.read_line(&mut line)?;
        let second = memlock_limited_as(uid, LIMIT, bin)
            .args(&eight[..2])
            .arg("--measure-ops=0")
            .output();
        first.kill()?; // it would measure for a long time, holding its charge
        first.wait()?;
        drop(output);
        let second = second?;
        if !line.starts_with("registered") {
            bail!("the first copy failed on its own: {line}");
        }
        let first_said = line.split_once(" (").and_then(|(_, r)| r.split_once(')'));
        println!(
            "  first:  registered, {}",
            first_said.map_or("", |(spanned, _)| spanned)
        );
        println!("  second: {}", outcome(&second));
        ensure!(!second.status.success(), "both copies fit under one limit");
        Ok(())
    }
    // ANCHOR_END: two_at_once

    /// The arithmetic behind the limit, from what the children reported.
    fn explain(most: usize, pages: usize) {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let (limit_pages, per_buffer) = (LIMIT as usize / page, pages / most.max(1));
        let next = (most + 1) * per_buffer;
        let rings = system::rings_charged_to_memlock(system::kernel_version());
        print!(
            "each buffer spans {per_buffer} pages: {} would span {next}",
            most + 1
        );
        if next > limit_pages {
            println!(", over the limit's {limit_pages}");
        } else if rings {
            println!(
                " of the limit's {limit_pages},\nand Linux {} charges the ring's own \
                 pages too",
                system::kernel_release()
            );
        } else {
            println!(" of the limit's {limit_pages}, and something else holds the rest");
        }
    }

    /// `spanning 204 pages` in exercise 3's first line gives 204.
    fn pages_spanned(out: &Output) -> Option<usize> {
        let text = String::from_utf8_lossy(&out.stdout);
        let rest = text.split_once(" spanning ")?.1;
        rest.split(' ').next()?.parse().ok()
    }

    /// What exercise 3's run says about its registration, in a few words.
    fn outcome(out: &Output) -> String {
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        if out.status.success() {
            let first = stdout.lines().next().unwrap_or_default();
            return match first.split_once(" (").and_then(|(_, r)| r.split_once(')')) {
                Some((spanned, _)) => format!("registered, {spanned}"),
                None => first.to_string(),
            };
        }
        match stderr.split_once(" failed with ") {
            Some((what, rest)) => {
                let errno = rest.split([':', ' ']).next().unwrap_or(rest);
                format!("{} failed with {errno}", what.trim_start_matches("error: "))
            }
            None => stderr.trim_end().to_string(),
        }
    }
}

/// Exercise 3.2: `Read` against `ReadFixed` with `O_DIRECT`, on a disk.
pub mod o_direct {
    use std::ffi::CStr;
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    use std::path::PathBuf;
    use std::time::Instant;

    use anyhow::{anyhow, bail, ensure, Context};
    use io_uring::IoUring;
    use uring_book::diagnose;
    use uring_book::ex2_write_and_batch::filesystem;
    use uring_book::ex3_fixed_buffers::{read_sqe, Variant};
    use uring_book::in_flight::{InFlight, Leak};

    #[derive(clap::Args)]
    pub struct Args {
        /// A directory on a disk, where the test file goes (tmpfs has no disk)
        #[arg(long, default_value = "/var/tmp")]
        pub dir: PathBuf,
        /// Reads per variant and round
        #[arg(long, default_value_t = 2000)]
        pub reads: usize,
    }

    /// Bytes per read, and the unit the file is written in.
    pub const READ: usize = 4096;
    /// The test file: 1024 blocks of 4 KiB, 4 MiB.
    const BLOCKS: usize = 1024;
    /// Reads in flight at once.
    const IN_FLIGHT: usize = 32;
    /// Rounds per variant, interleaved.
    const ROUNDS: usize = 5;

    // ANCHOR: aligned
    /// A buffer whose first byte is aligned as O_DIRECT needs: a `Vec` with
    /// room to spare, used from its first aligned byte.
    pub struct AlignedBuf {
        vec: Vec<u8>,
        start: usize,
        len: usize,
    }

    impl AlignedBuf {
        pub fn new(len: usize, align: usize) -> AlignedBuf {
            let vec = vec![0u8; len + align];
            let start = vec.as_ptr().align_offset(align);
            AlignedBuf { vec, start, len }
        }

        pub fn as_mut_ptr(&mut self) -> *mut u8 {
            self.vec[self.start..][..self.len].as_mut_ptr()
        }

        pub fn as_slice(&self) -> &[u8] {
            &self.vec[self.start..][..self.len]
        }
    }
    // ANCHOR_END: aligned

    impl Leak for AlignedBuf {
        fn leak_buffers(&mut self) {
            self.vec.leak_buffers();
            self.len = 0;
        }
    }

    pub fn run(args: &Args) -> anyhow::Result<()> {
        let dir =
            File::open(&args.dir).with_context(|| args.dir.display().to_string())?;
        let on = filesystem(&dir);
        if on == "tmpfs" {
            bail!(
                "{} is on tmpfs, which accepts O_DIRECT since Linux 6.6 but has no \
                 device behind it: there is nothing to measure. Pass --dir with a \
                 directory on a disk",
                args.dir.display()
            );
        }
        let tmp = uring_book::cleanup::tempfile_in(&args.dir, "uring-book-direct")?;
        let path = tmp.path();
        // Written through the page cache and flushed to the disk; every
        // O_DIRECT read below then goes to the device.
        let mut file = File::create(path)?;
        for block in 0..BLOCKS {
            file.write_all(&pattern(block))?;
        }
        file.sync_all()?;
        // ANCHOR: open
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => anyhow!(
                    "{} ({on}) refuses O_DIRECT (EINVAL): pass --dir on another disk",
                    args.dir.display()
                ),
                _ => e.into(),
            })?;
        let (mem_align, offset_align) = dio_alignment(&file)?;
        ensure!(
            offset_align <= READ,
            "offsets must be aligned to {offset_align}"
        );
        let mut buf = AlignedBuf::new(READ, mem_align.max(4096));
        // ANCHOR_END: open
        println!(
            "{} is on {on}; statx says O_DIRECT needs memory aligned to {mem_align} \
             and offsets to {offset_align}",
            args.dir.display()
        );
        let mut ring = IoUring::new(IN_FLIGHT as u32).map_err(diagnose::setup)?;
        let iovec = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: READ,
        };
        // SAFETY: `buf` is declared before `ring`, so it outlives the
        // registration; nothing is in flight when the ring drops.
        unsafe { ring.submitter().register_buffers(&[iovec]) }
            .map_err(|e| diagnose::register_buffers(e, READ))?;

        // Each variant reads block 7 into the buffer: it must be block 7.
        for variant in [Variant::Read, Variant::ReadFixed] {
            measure_direct(&mut ring, &file, &mut buf, variant, 7..8)?;
            ensure!(
                buf.as_slice() == pattern(7),
                "{variant:?} read the wrong bytes"
            );
        }
        println!(
            "Read and ReadFixed both read block 7 back exactly, with O_DIRECT\n\
             {} reads of {READ} bytes per variant and round, {IN_FLIGHT} in flight, \
             {ROUNDS} rounds interleaved:",
            args.reads
        );
        let mut ns = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            for (i, variant) in
                [Variant::Read, Variant::ReadFixed].into_iter().enumerate()
            {
                let start = round * args.reads;
                let took = measure_direct(
                    &mut ring,
                    &file,
                    &mut buf,
                    variant,
                    start..start + args.reads,
                )?;
                ns[i].push(took);
            }
        }
        report(&ns);
        Ok(())
    }

    // ANCHOR: measure_direct
    /// Reads the blocks `reads` (modulo the file's size) with O_DIRECT,
    /// IN_FLIGHT at a time, into `buf` (registered buffer 0). Returns the
    /// time per read in nanoseconds.
    pub fn measure_direct(
        ring: &mut IoUring,
        file: &File,
        buf: &mut AlignedBuf,
        variant: Variant,
        reads: std::ops::Range<usize>,
    ) -> anyhow::Result<f64> {
        ensure!(buf.len > 0, "no buffer to read into (leaked?)");
        let (fd, count, start) = (file.as_raw_fd(), reads.len(), Instant::now());
        let mut blocks = reads.map(|n| n % BLOCKS);
        let mut flight = InFlight::new(ring, buf)?;
        loop {
            while flight.ok() && flight.pending() < IN_FLIGHT {
                let Some(block) = blocks.next() else { break };
                let ptr = flight.buffers().as_mut_ptr();
                let sqe = read_sqe(variant, fd, ptr, READ as u32, (block * READ) as u64);
                // SAFETY: every read lands in `buf`, lent to `flight` until all
                // are reaped; they overwrite each other: only the time counts.
                if !unsafe { flight.push(sqe, block) } {
                    break;
                }
            }
            if flight.is_idle() {
                break;
            }
            flight.wait_for(flight.pending(), |_, _, res| match res == READ as i32 {
                true => Ok(()),
                false => Err(anyhow!("{variant:?} returned {res}, not {READ}")),
            });
        }
        flight.finish()?;
        Ok(start.elapsed().as_nanos() as f64 / count as f64)
    }
    // ANCHOR_END: measure_direct

    /// Block `n` of the test file: its number, over and over.
    fn pattern(n: usize) -> Vec<u8> {
        format!("block {n:06} ")
            .bytes()
            .cycle()
            .take(READ)
            .collect()
    }

    /// The alignments O_DIRECT needs on this file, from statx(2) with
    /// `STATX_DIOALIGN` (Linux 6.1); 512 for both before that.
    fn dio_alignment(file: &File) -> anyhow::Result<(usize, usize)> {
        // SAFETY: plain data that statx fills.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        let empty: &CStr = c"";
        // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH.
        let r = unsafe {
            libc::statx(
                file.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_DIOALIGN,
                &mut stx,
            )
        };
        if r != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 {
            return Ok((512, 512));
        }
        if stx.stx_dio_mem_align == 0 {
            bail!("statx says this file does not support O_DIRECT");
        }
        Ok((
            stx.stx_dio_mem_align as usize,
            stx.stx_dio_offset_align as usize,
        ))
    }

    /// Median and spread of each variant, and whether the gap is a tie.
    fn report(ns: &[Vec<f64>; 2]) {
        let stats = |v: &Vec<f64>| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let names = [
            "Read      (a buffer by address)",
            "ReadFixed (registered buffer 0)",
        ];
        let mut medians = Vec::new();
        let mut widest = 0.0f64;
        for (name, v) in names.iter().zip(ns) {
            let (median, lo, hi) = stats(v);
            println!("  {name}  median {median:>7.0} ns/read, spread {lo:.0}-{hi:.0}");
            medians.push(median);
            widest = widest.max(hi - lo);
        }
        let saved = medians[0] - medians[1];
        let verdict = if saved.abs() <= widest {
            "inside the spread: a tie"
        } else if saved > 0.0 {
            "outside the spread: ReadFixed is faster"
        } else {
            "outside the spread: Read is faster"
        };
        println!(
            "  ReadFixed saved {saved:.0} ns per read ({:.1} %), {verdict}",
            100.0 * saved / medians[0]
        );
    }
}

/// Exercise 3.3: register a file, close its descriptor, and read through the
/// ring's slot anyway; then unregister and see the slot fail.
pub mod closed_file {
    use std::fs::File;
    use std::io;
    use std::os::unix::io::AsRawFd;

    use anyhow::{anyhow, ensure, Context};
    use io_uring::{opcode, types, IoUring};
    use uring_book::diagnose;
    use uring_book::ex7_chains_deadlines_cancel::{complete, Cqe};

    pub const TEXT: &str = "read through slot 0 of the ring's file table\n";

    // ANCHOR: closed_file
    pub fn run() -> anyhow::Result<()> {
        let dir = uring_book::cleanup::tempdir()?;
        let path = dir.path().join("registered.txt");
        std::fs::write(&path, TEXT)?;
        let mut ring = IoUring::new(4).map_err(diagnose::setup)?;
        let file = File::open(&path)?;
        let fd = file.as_raw_fd();
        ring.submitter()
            .register_files(&[fd])
            .context("io_uring_register(IORING_REGISTER_FILES)")?;
        drop(file); // close(2): descriptor `fd` is gone
                    // SAFETY: fcntl on a number that is no longer a descriptor: EBADF.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
        let errno = io::Error::last_os_error();
        ensure!(closed, "descriptor {fd} is still open");
        println!(
            "after drop(file): fcntl({fd}, F_GETFD) fails with {}",
            diagnose::errno_text(&errno)
        );

        let (cqe, text) = read_slot_0(&mut ring)?;
        ensure!(text == TEXT.as_bytes(), "slot 0 read the wrong bytes");
        println!(
            "read via types::Fixed(0): {cqe}, the file's {} bytes",
            text.len()
        );

        ring.submitter()
            .unregister_files()
            .context("unregister_files")?;
        let (cqe, _) = read_slot_0(&mut ring)?;
        ensure!(
            cqe.res == -libc::EBADF,
            "slot 0 still reads after unregister"
        );
        println!("after unregister_files(): {cqe}");
        Ok(())
    }
    // ANCHOR_END: closed_file

    /// One read of up to 4 KiB at offset 0 of registered file 0.
    fn read_slot_0(ring: &mut IoUring) -> anyhow::Result<(Cqe, Vec<u8>)> {
        let mut buf = vec![0u8; 4096];
        let read = opcode::Read::new(types::Fixed(0), buf.as_mut_ptr(), 4096)
            .offset(0)
            .build()
            .user_data(0);
        // SAFETY: `complete` hands `buf` back only with the CQE, or leaks it.
        unsafe { ring.submission().push(&read) }
            .map_err(|_| anyhow!("the SQ is full"))?;
        let (cqes, mut buf) = complete(ring, 1, buf)?;
        let cqe = cqes[0];
        buf.truncate(cqe.res.max(0) as usize);
        Ok((cqe, buf))
    }
}
