//! Solutions to chapter 2's "What to try next": the calls seen from outside,
//! a pipeline kept full, and a write and a read linked in one call.

/// Exercise 2.1: exercise 2 under a small strace, its io_uring_enter calls
/// grouped by the part of the exercise that made them.
pub mod count_calls {
    use std::process::Command;

    use anyhow::ensure;
    use uring_book::solutions::exercises_binary;
    use uring_book::solutions::trace::{self, Enter, Event};

    /// One part of exercise 2: its heading, its output, the calls it made.
    pub struct Part {
        pub title: String,
        pub output: String,
        pub calls: Vec<Enter>,
    }

    // ANCHOR: count_calls
    pub fn run() -> anyhow::Result<()> {
        let mut exercise = Command::new(exercises_binary()?);
        exercise.arg("2");
        let parts = parts(&trace::trace(exercise)?);
        for part in &parts {
            println!("{}: {} calls", part.title, part.calls.len());
            // The exercise's own count: its `io_uring_enter xN` lines.
            let counted: usize = part.output.lines().filter_map(enter_count).sum();
            if counted > 0 {
                ensure!(counted == part.calls.len(), "the exercise said {counted}");
                println!("  (the exercise counted {counted} too)");
            }
            for line in uniq(&part.calls) {
                println!("  {line}");
            }
        }
        Ok(())
    }
    // ANCHOR_END: count_calls

    /// Each call as strace prints it, repeated calls once with a count.
    fn uniq(calls: &[Enter]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut i = 0;
        while i < calls.len() {
            let n = calls[i..].iter().take_while(|&&c| c == calls[i]).count();
            lines.push(match n {
                1 => calls[i].to_string(),
                n => format!("{}  x{n}", calls[i]),
            });
            i += n;
        }
        lines
    }

    /// `io_uring_enter x16, consuming ...` gives 16.
    fn enter_count(line: &str) -> Option<usize> {
        let rest = line.trim_start().strip_prefix("io_uring_enter x")?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Splits the traced run at the exercise's `== N. ...` headings.
    pub fn parts(events: &[Event]) -> Vec<Part> {
        let mut parts = vec![Part {
            title: "before part 1".into(),
            output: String::new(),
            calls: Vec::new(),
        }];
        for event in events {
            match event {
                Event::Enter(call) => parts.last_mut().unwrap().calls.push(*call),
                Event::Stdout(bytes) => {
                    for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
                        if let Some(title) = line.strip_prefix("== ") {
                            parts.push(Part {
                                title: format!("part {}", title.trim_end()),
                                output: String::new(),
                                calls: Vec::new(),
                            });
                        }
                        parts.last_mut().unwrap().output.push_str(line);
                    }
                }
            }
        }
        parts.retain(|p| !(p.calls.is_empty() && p.title == "before part 1"));
        parts
    }
}

/// Exercise 2.2: `run_batch` with the pipeline kept full: wait for one
/// completion, not for all, and refill at once.
pub mod pipeline {
    use std::collections::VecDeque;
    use std::fs::File;
    use std::io::{ErrorKind, Read};
    use std::os::unix::io::{AsRawFd, RawFd};
    use std::time::Duration;

    use anyhow::{anyhow, ensure, Context};
    use io_uring::IoUring;
    use uring_book::diagnose;
    use uring_book::ex2_write_and_batch::{
        account, blocks, pipe, read_buffers, run_batch, sqe_for, verify, BatchStats, Dir,
        Op,
    };
    use uring_book::in_flight::InFlight;

    // ANCHOR: run_pipelined
    /// `run_batch`, but refilling as soon as any operation completes.
    pub fn run_pipelined(
        ring: &mut IoUring,
        dir: Dir,
        fd: RawFd,
        ops: &mut [Op],
    ) -> anyhow::Result<BatchStats> {
        let cq_room = ring.params().cq_entries() as usize;
        let mut stats = BatchStats::for_ops(ops.len());
        let mut todo: VecDeque<usize> = (0..ops.len()).collect();
        let mut flight = InFlight::new(ring, ops)?;
        while !flight.is_idle() || (flight.ok() && !todo.is_empty()) {
            while flight.ok() && flight.pending() < cq_room {
                let Some(i) = todo.pop_front() else { break };
                let sqe = sqe_for(dir, fd, &mut flight.buffers()[i]);
                // SAFETY: as in run_batch: `flight` holds the buffer.
                if !unsafe { flight.push(sqe, i) } {
                    break;
                }
                stats.sqes += 1;
            }
            // The one change: wait for one CQE, take all that are there.
            flight.wait_for(1, |ops, i, res| {
                stats.order.push(i as u64);
                stats.results.push(res);
                if account(dir, i, &mut ops[i], res)? {
                    stats.short += 1;
                    todo.push_back(i);
                }
                Ok(())
            });
        }
        Ok(BatchStats::from_calls(stats, flight.finish()?))
    }
    // ANCHOR_END: run_pipelined

    /// The two loops, on a ring of 4 SQ and 8 CQ entries, over two workloads:
    /// a file, whose operations complete together, and a pipe drained slowly,
    /// whose writes complete one by one.
    pub fn run() -> anyhow::Result<()> {
        let mut ring = IoUring::new(4).map_err(diagnose::setup)?;
        let dir = uring_book::cleanup::tempdir()?;
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("ex2.dat"))?;
        println!("16 reads of 4 KiB from the page cache (they complete together):");
        for (name, run) in LOOPS {
            let mut written = blocks(16, 4096);
            run_batch(&mut ring, Dir::Write, file.as_raw_fd(), &mut written)?;
            let mut read = read_buffers(&written);
            let stats = run(&mut ring, Dir::Read, file.as_raw_fd(), &mut read)?;
            verify(&read, &written)?;
            show(name, &stats);
        }
        println!(
            "16 writes of 4 KiB into a pipe of 4 KiB, which a thread drains one block \
             a millisecond\n(they complete one by one):"
        );
        for (name, run) in LOOPS {
            let stats = into_slow_pipe(&mut ring, run)?;
            show(name, &stats);
        }
        Ok(())
    }

    type Loop = fn(&mut IoUring, Dir, RawFd, &mut [Op]) -> anyhow::Result<BatchStats>;

    const LOOPS: [(&str, Loop); 2] =
        [("run_batch", run_batch), ("run_pipelined", run_pipelined)];

    fn show(name: &str, stats: &BatchStats) {
        let waits: Vec<String> = stats
            .calls
            .iter()
            .map(|c| c.waited_for.to_string())
            .collect();
        println!(
            "  {name:<13} io_uring_enter x{:<2} waiting for {}",
            stats.enters,
            waits.join(" ")
        );
    }

    /// Writes 16 blocks into a pipe that holds one, while a thread reads a
    /// block a millisecond; checks that the reader got every block whole.
    fn into_slow_pipe(ring: &mut IoUring, run: Loop) -> anyhow::Result<BatchStats> {
        const BLOCK: usize = 4096; // PIPE_BUF: each write lands whole
        let (mut rx, tx) = pipe()?;
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, BLOCK as i32) } < 0 {
            return Err(std::io::Error::last_os_error()).context("F_SETPIPE_SZ");
        }
        let reader = std::thread::spawn(move || -> std::io::Result<Vec<Vec<u8>>> {
            let mut got = Vec::new();
            loop {
                std::thread::sleep(Duration::from_millis(1));
                let mut block = vec![0u8; BLOCK];
                match rx.read_exact(&mut block) {
                    Ok(()) => got.push(block),
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(got),
                    Err(e) => return Err(e),
                }
            }
        });
        let sent: Vec<Vec<u8>> = blocks(16, BLOCK).into_iter().map(|op| op.buf).collect();
        let mut ops: Vec<Op> = sent.iter().map(|b| Op::stream(b.clone())).collect();
        let stats = run(ring, Dir::Write, tx.as_raw_fd(), &mut ops);
        drop(tx); // end of file for the reader
        let mut got = reader.join().map_err(|_| anyhow!("reader panicked"))??;
        let stats = stats?;
        // Writes in flight together may land in any order.
        got.sort();
        ensure!(got == sent, "the reader did not get every block whole");
        Ok(stats)
    }
}

/// Exercise 2.3: part 1 of exercise 2 as one io_uring_enter: a write linked
/// to the read that checks it.
pub mod linked {
    use std::fs::File;
    use std::os::unix::io::AsRawFd;

    use anyhow::{anyhow, ensure};
    use io_uring::{opcode, squeue::Flags, types, IoUring};
    use uring_book::diagnose;
    use uring_book::ex7_chains_deadlines_cancel::{complete, find, Cqe};

    // ANCHOR: linked
    /// Writes `data` at offset 0 of `file` and reads it back, in one
    /// io_uring_enter: the read is linked to the write, so it starts only
    /// once the write has written every byte. Returns both CQEs and the bytes.
    pub fn write_then_read(
        ring: &mut IoUring,
        file: &File,
        data: Vec<u8>,
    ) -> anyhow::Result<(Cqe, Cqe, Vec<u8>)> {
        let fd = types::Fd(file.as_raw_fd());
        let mut back = vec![0u8; data.len()];
        let write = opcode::Write::new(fd, data.as_ptr(), data.len() as u32)
            .offset(0)
            .build()
            .flags(Flags::IO_LINK)
            .user_data(0);
        let read = opcode::Read::new(fd, back.as_mut_ptr(), back.len() as u32)
            .offset(0)
            .build()
            .user_data(1);
        // SAFETY: rules 1 and 2: `complete` gives both buffers back only with
        // both CQEs, or leaks them; `file` outlives the call. Both SQEs go in,
        // or neither does: a lone write would outlive `data`.
        unsafe { ring.submission().push_multiple(&[write, read]) }
            .map_err(|_| anyhow!("the SQ is full"))?;
        let (cqes, (_data, back)) = complete(ring, 2, (data, back))?;
        Ok((find(&cqes, 0)?, find(&cqes, 1)?, back))
    }
    // ANCHOR_END: linked

    pub fn run() -> anyhow::Result<()> {
        let dir = uring_book::cleanup::tempdir()?;
        let data = b"Written through io_uring, read back the same way.\n".to_vec();
        let mut ring = IoUring::new(4).map_err(diagnose::setup)?;
        let file = new_file(&dir, "whole")?;
        let (w, r, back) = write_then_read(&mut ring, &file, data.clone())?;
        println!("write: {w}\nread:  {r}");
        ensure!(
            w.res == data.len() as i32 && r.res == w.res,
            "a short transfer"
        );
        ensure!(back == data, "the bytes read back differ");
        println!("both submitted by one io_uring_enter; the bytes read back are equal");

        // A file size limit of 16 bytes makes the write short.
        let limit = 16;
        let file = new_file(&dir, "short")?;
        let (w, r, _) = with_file_size_limit(limit, || {
            write_then_read(&mut ring, &file, data.clone())
        })??;
        println!("\nwith RLIMIT_FSIZE at {limit} bytes:\nwrite: {w}\nread:  {r}");
        ensure!(w.res == limit as i32, "the write was not cut short");
        ensure!(r.res == -libc::ECANCELED, "the read was not cancelled");
        println!("the short write broke the chain: the read never ran");
        Ok(())
    }

    fn new_file(dir: &uring_book::cleanup::TempDir, name: &str) -> anyhow::Result<File> {
        Ok(File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join(name))?)
    }

    /// Runs `f` with the soft RLIMIT_FSIZE at `bytes` and SIGXFSZ ignored (a
    /// write at the limit then fails with EFBIG instead of killing us), and
    /// puts both back afterwards.
    fn with_file_size_limit<T>(bytes: u64, f: impl FnOnce() -> T) -> anyhow::Result<T> {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills a local struct.
        if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut old) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let lower = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: old.rlim_max,
        };
        // SAFETY: setrlimit and signal with valid arguments; both restored.
        unsafe {
            let handler = libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lower) != 0 {
                libc::signal(libc::SIGXFSZ, handler);
                return Err(std::io::Error::last_os_error().into());
            }
            let result = f();
            libc::setrlimit(libc::RLIMIT_FSIZE, &old);
            libc::signal(libc::SIGXFSZ, handler);
            Ok(result)
        }
    }
}
