//! Solutions to chapter 4's "What to try next": the open that starts an io-wq
//! worker, a submission queue too small for the reads in flight, and a socket
//! dropped while a read still holds it.

/// Exercise 4.1: the threads listed before and after the file is created,
/// and after the first write, in two runs on two threads.
pub mod worker_cause {
    use std::path::Path;

    use anyhow::{anyhow, ensure};
    use tokio_uring::fs::File;
    use uring_book::diagnose;
    use uring_book::ex4_tokio_uring_file::{byte_at, thread_names, CHUNK, CHUNKS};

    /// The io-wq workers of this process: threads named `iou-wrk-<tid>`.
    pub fn workers() -> Vec<String> {
        let mut names = thread_names();
        names.retain(|name| name.starts_with("iou-wrk-"));
        names
    }

    // ANCHOR: write_file_watched
    /// `write_file`, with the workers listed before the create, after it,
    /// and after the first write.
    pub async fn write_file_watched(path: &Path) -> anyhow::Result<[Vec<String>; 3]> {
        let before = workers();
        let file = File::create(path).await?; // openat with O_CREAT | O_TRUNC
        let after_create = workers();
        let data: Vec<u8> = (0..CHUNKS * CHUNK).map(byte_at).collect();
        let (res, _) = file.write_all_at(data, 0).await;
        res?;
        let after_write = workers();
        file.close().await?;
        Ok([before, after_create, after_write])
    }
    // ANCHOR_END: write_file_watched

    // ANCHOR: two_runs
    pub fn run() -> anyhow::Result<()> {
        let mut started = Vec::new();
        for attempt in 1..=2 {
            // A thread per run: a new submitting thread, a new io-wq.
            let (tid, seen) = std::thread::spawn(|| -> anyhow::Result<_> {
                let dir = uring_book::cleanup::tempdir()?;
                let rt = diagnose::tokio_uring_runtime(64)?;
                let seen = rt.block_on(write_file_watched(&dir.path().join("f")))?;
                // SAFETY: gettid has no preconditions.
                Ok((unsafe { libc::gettid() }, seen))
            })
            .join()
            .map_err(|_| anyhow!("the run's thread panicked"))??;
            let [before, created, written] = seen;
            let new: Vec<String> = created
                .into_iter()
                .filter(|w| !before.contains(w))
                .collect();
            println!("run {attempt}, on thread {tid}:");
            println!("  before File::create: {}", list(&before));
            println!("  after File::create:  {} new", list(&new));
            println!("  after the write:     {}", list(&written));
            ensure!(!new.is_empty(), "File::create started no io-wq worker");
            started.push(new);
        }
        ensure!(
            started[0] != started[1],
            "both runs started the same worker"
        );
        println!("the create started the worker; its name changed with the thread");
        Ok(())
    }
    // ANCHOR_END: two_runs

    fn list(names: &[String]) -> String {
        match names {
            [] => "no worker".into(),
            names => names.join(", "),
        }
    }
}

/// Exercise 4.2: 16 reads in flight on a ring of 4 entries, their
/// io_uring_enter calls traced and compared with a ring of 64.
pub mod overfill {
    use std::path::Path;
    use std::process::Command;
    use std::rc::Rc;

    use anyhow::{ensure, Context};
    use tokio_uring::fs::File;
    use uring_book::diagnose;
    use uring_book::ex4_tokio_uring_file::{byte_at, CHUNK};
    use uring_book::solutions::ch02::count_calls::parts;
    use uring_book::solutions::{exercises_binary, trace};

    /// Reads in flight: more than the small ring's 4 entries.
    pub const CHUNKS: usize = 16;

    #[derive(clap::Args)]
    pub struct Args {
        /// Only read back, on a ring of this many entries (the traced child)
        #[arg(long, hide = true)]
        pub ring: Option<u32>,
    }

    // ANCHOR: read_back_n
    /// `read_back` with `chunks` reads in flight at once, one task each.
    pub async fn read_back_n(path: &Path, chunks: usize) -> anyhow::Result<()> {
        let file = Rc::new(File::open(path).await?);
        let tasks: Vec<_> = (0..chunks)
            .map(|i| {
                let file = file.clone();
                let pos = (i * CHUNK) as u64;
                // read_exact_at retries short reads, as read_chunk does.
                tokio_uring::spawn(async move {
                    let (res, buf) = file.read_exact_at(vec![0u8; CHUNK], pos).await;
                    res.map(|()| buf)
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let chunk = task.await?.with_context(|| format!("reading chunk {i}"))?;
            let start = i * CHUNK;
            let wrong = (0..CHUNK).find(|&j| chunk[j] != byte_at(start + j));
            ensure!(wrong.is_none(), "chunk {i} differs from what was written");
        }
        println!("{chunks} chunks read back, all as written");
        Ok(())
    }
    // ANCHOR_END: read_back_n

    /// The traced child: writes the file, then reads it back on a ring of
    /// `entries`, with headings that split its calls.
    fn child(entries: u32) -> anyhow::Result<()> {
        let dir = uring_book::cleanup::tempdir()?;
        let path = dir.path().join("ex4.dat");
        let data: Vec<u8> = (0..CHUNKS * CHUNK).map(byte_at).collect();
        std::fs::write(&path, data)?;
        let rt = diagnose::tokio_uring_runtime(entries)?;
        rt.block_on(async {
            println!("== read back");
            read_back_n(&path, CHUNKS).await?;
            println!("== done");
            Ok(())
        })
    }

    // ANCHOR: overfill
    pub fn run(args: &Args) -> anyhow::Result<()> {
        if let Some(entries) = args.ring {
            return child(entries);
        }
        let mut calls = Vec::new();
        for entries in [64, 4] {
            let mut cmd = Command::new(exercises_binary()?);
            cmd.args(["solution", "4.2", &format!("--ring={entries}")]);
            let events = trace::trace(cmd)?;
            let part = parts(&events)
                .into_iter()
                .find(|p| p.title == "part read back");
            let enters = part.context("the child printed no `== read back`")?.calls;
            let most = enters.iter().map(|c| c.to_submit).max().unwrap_or(0);
            print!("ring of {entries:>2} entries: {CHUNKS} reads, all as written; ");
            println!("io_uring_enter x{}, at most {most} SQEs each", enters.len());
            ensure!(
                most <= entries,
                "a call submitted more SQEs than the SQ holds"
            );
            calls.push(enters.len());
        }
        ensure!(calls[1] > calls[0], "the small ring made no more calls");
        println!("the full SQ was flushed early: more calls, every read correct");
        Ok(())
    }
    // ANCHOR_END: overfill
}

/// Exercise 4.3: `dropped_read` with `drop(ours)` in place of `shutdown`: the
/// orphaned read keeps the socket open, and the peer sees no end of stream.
pub mod drop_socket {
    use std::io::{self, Read};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use anyhow::{bail, ensure};
    use uring_book::diagnose;

    /// How long the peer waits for the end of stream; the exercise's 10 s,
    /// shortened.
    pub const PEER_WAIT: Duration = Duration::from_secs(1);

    /// What the program does with its end of the socket.
    #[derive(Clone, Copy, Debug)]
    pub enum Close {
        Shutdown,
        Drop,
    }

    // ANCHOR: give_up
    /// Leaves a read orphaned, gives the socket up as `close` says, and
    /// returns what the peer's next read got, and after how long.
    pub async fn give_up(close: Close) -> anyhow::Result<(io::Result<usize>, Duration)> {
        let (ours, mut peer) = UnixStream::pair()?;
        peer.set_read_timeout(Some(PEER_WAIT))?;
        let ours = tokio_uring::net::UnixStream::from_std(ours);
        let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
        tokio::select! {
            _ = ours.read(vec![0; 16]) => bail!("the read completed, yet nothing came"),
            _ = sleep(10) => {} // the read future is dropped; its read is not
        }
        match close {
            Close::Shutdown => ours.shutdown(std::net::Shutdown::Both)?,
            Close::Drop => drop(ours), // the orphaned read still holds the socket
        }
        sleep(10).await;
        let start = Instant::now();
        let got = peer.read(&mut [0u8; 16]);
        // `peer` closes on return: the orphaned read gets 0 and lets go.
        Ok((got, start.elapsed()))
    }
    // ANCHOR_END: give_up

    pub fn run() -> anyhow::Result<()> {
        let rt = diagnose::tokio_uring_runtime(64)?;
        for close in [Close::Shutdown, Close::Drop] {
            let (got, took) = rt.block_on(give_up(close))?;
            let text = match &got {
                Ok(n) => format!("{n} bytes, the end of stream"),
                Err(err) => diagnose::errno_text(err),
            };
            println!("{close:?}: the peer's read returns {text} after {took:.1?}");
            match close {
                Close::Shutdown => ensure!(got.is_ok_and(|n| n == 0), "no end of stream"),
                Close::Drop => ensure!(
                    got.is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock),
                    "the peer's read did not time out: the socket was closed"
                ),
            }
        }
        println!("drop left the socket open: the peer waited {PEER_WAIT:?} for nothing");
        Ok(())
    }
}
