//! Taking requests back: `AsyncCancel` by user_data, by file descriptor and
//! all at once; the races it can lose (`-ENOENT`, `-EALREADY`); and why a
//! ring must not be dropped with requests in flight.
//!
//! The rule throughout: memory a request uses is ours again only when that
//! request's own CQE has arrived. The cancel's CQE says only what the cancel
//! did.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use io_uring::{opcode, squeue, types, IoUring};
use uring_book::ex7_chains_deadlines_cancel::{self as ex7, res_text, Cqe};

/// Pushes `sqes` as one submission.
fn push(ring: &mut IoUring, sqes: &[squeue::Entry]) -> anyhow::Result<()> {
    // SAFETY: every caller keeps the memory its SQEs name until their CQEs
    // are reaped (it passes that memory to `ex7::complete`).
    unsafe { ring.submission().push_multiple(sqes) }.map_err(|_| anyhow!("SQ full"))
}

fn recv(sock: &UnixStream, buf: &mut [u8], user_data: u64) -> squeue::Entry {
    let fd = types::Fd(sock.as_raw_fd());
    opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32)
        .build()
        .user_data(user_data)
}

// ANCHOR: cancel_recv
/// A receive that would wait forever (user_data 1), then an AsyncCancel of
/// it (2), in one submission: the kernel parks the receive on the socket,
/// then the cancel finds it there. Returns both CQEs in the order they came.
pub fn cancel_idle_recv(
    ring: &mut IoUring,
    sock: &UnixStream,
) -> anyhow::Result<Vec<Cqe>> {
    let mut buf = vec![0u8; 64];
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    push(ring, &[recv(sock, &mut buf, 1), cancel])?;
    let (cqes, buf) = ex7::complete(ring, 2, buf)?;
    drop(buf); // ours again: the receive's own CQE is in
    Ok(cqes)
}
// ANCHOR_END: cancel_recv

/// A receive with data waiting (1) and a cancel of it (2), in one
/// submission: the receive completes first, so the cancel finds nothing.
pub fn cancel_completed(
    ring: &mut IoUring,
    sock: &UnixStream,
) -> anyhow::Result<Vec<Cqe>> {
    let mut buf = vec![0u8; 64];
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    push(ring, &[recv(sock, &mut buf, 1), cancel])?;
    Ok(ex7::complete(ring, 2, buf)?.0)
}

/// Bytes of dirty page cache the fsync of [`cancel_running`] writes out.
pub const FSYNC_BYTES: usize = 64 << 20;

// ANCHOR: cancel_running
/// An fsync (1) of `FSYNC_BYTES` of dirty pages, then a cancel (2) after
/// `wait`. fsync always runs in an io-wq worker, and a worker's fsync cannot
/// be stopped halfway: still queued, it is cancelled (0); running, the cancel
/// answers -EALREADY and the fsync finishes; done, the cancel finds nothing
/// (-ENOENT). Returns the CQEs in order and how long the fsync took.
pub fn cancel_running(
    ring: &mut IoUring,
    dir: &Path,
    wait: Duration,
) -> anyhow::Result<(Vec<Cqe>, Duration)> {
    let mut file = File::create(dir.join("dirty"))?;
    file.write_all(&vec![7u8; FSYNC_BYTES])?;
    let start = Instant::now();
    let fsync = opcode::Fsync::new(types::Fd(file.as_raw_fd())).build();
    push(ring, &[fsync.user_data(1)])?;
    let file = ex7::submit(ring, file)?; // the fsync is in the kernel
    std::thread::sleep(wait);
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    if let Err(err) = push(ring, &[cancel]) {
        return Err(ex7::leak(file, err)); // keep the descriptor open (rule 2)
    }
    let (cqes, _file) = ex7::complete(ring, 2, file)?;
    Ok((cqes, start.elapsed()))
}
// ANCHOR_END: cancel_running

/// Whether this kernel takes IORING_ASYNC_CANCEL_FD, _ALL and _ANY (5.19):
/// the probe cannot say, the table's trial can.
pub fn has_cancel_flags() -> bool {
    uring_book::ex7_probe::has("IORING_ASYNC_CANCEL_FD")
}

// ANCHOR: cancel_fd
/// Three receives on one socket (user_data 1-3), then one cancel (4) of
/// every request on that descriptor: its res is how many it found.
pub fn cancel_fd_all(ring: &mut IoUring, sock: &UnixStream) -> anyhow::Result<Vec<Cqe>> {
    let mut bufs = vec![vec![0u8; 64]; 3];
    let mut sqes: Vec<_> = (1..)
        .zip(&mut bufs)
        .map(|(ud, b)| recv(sock, b, ud))
        .collect();
    let all = types::CancelBuilder::fd(types::Fd(sock.as_raw_fd())).all();
    sqes.push(opcode::AsyncCancel2::new(all).build().user_data(4));
    push(ring, &sqes)?;
    Ok(ex7::complete(ring, 4, bufs)?.0)
}
// ANCHOR_END: cancel_fd

/// user_data of the cancels [`shutdown`] submits.
pub const CANCEL: u64 = 99;

// ANCHOR: shutdown
/// The sound way to end a ring: cancel what is in flight (`in_flight`, by
/// user_data), reap until every one of those requests has its own CQE, and
/// only then drop the ring and hand `memory` back.
pub fn shutdown<T>(
    mut ring: IoUring,
    in_flight: &[u64],
    memory: T,
) -> anyhow::Result<(Vec<Cqe>, T)> {
    let cancels: Vec<_> = if has_cancel_flags() {
        let any = types::CancelBuilder::any(); // one SQE for everything (5.19)
        vec![opcode::AsyncCancel2::new(any).build().user_data(CANCEL)]
    } else {
        let one = |&ud| opcode::AsyncCancel::new(ud).build().user_data(CANCEL);
        in_flight.iter().map(one).collect()
    };
    if let Err(err) = push(&mut ring, &cancels) {
        return Err(ex7::leak(memory, err)); // the requests are still in flight
    }
    let (cqes, memory) =
        ex7::complete(&mut ring, in_flight.len() + cancels.len(), memory)?;
    drop(ring); // nothing in flight: dropping cannot free memory under the kernel
    Ok((cqes, memory))
}
// ANCHOR_END: shutdown

/// What happened when a ring was dropped with a write in flight.
pub struct Dropped {
    pub total: u64,
    pub drop_took: Duration,
    pub size_at_drop: u64,
    pub size_later: u64,
    pub later: Duration,
}

/// Bytes the write of [`drop_with_write_in_flight`] writes.
pub const DROP_WRITE_BYTES: usize = 64 << 20;

// ANCHOR: drop_in_flight
/// Drops a ring while a write of `DROP_WRITE_BYTES` from our buffer runs in
/// an io-wq worker (IOSQE_ASYNC puts it there), then watches the file.
pub fn drop_with_write_in_flight(dir: &Path) -> anyhow::Result<Dropped> {
    let path = dir.join("written-after-drop");
    let file = File::create(&path)?;
    let mut ring = ex7::ring(4)?;
    // Leaked from the start: once the ring is dropped, nothing can tell us
    // when the kernel is done reading it, so it must never be freed.
    let buf: &'static [u8] = vec![b'x'; DROP_WRITE_BYTES].leak();
    let fd = types::Fd(file.as_raw_fd());
    let write = opcode::Write::new(fd, buf.as_ptr(), buf.len() as u32)
        .build()
        .flags(squeue::Flags::ASYNC);
    // SAFETY: `buf` is never freed.
    unsafe { ring.submission().push(&write) }.map_err(|_| anyhow!("SQ full"))?;
    ring.submit()?;
    wait_for(|| file.metadata().map(|m| m.len() > 0))?; // the worker has begun
    let start = Instant::now();
    drop(ring);
    let drop_took = start.elapsed();
    let size_at_drop = file.metadata()?.len();
    let total = DROP_WRITE_BYTES as u64;
    wait_for(|| file.metadata().map(|m| m.len() == total))?;
    let (size_later, later) = (file.metadata()?.len(), start.elapsed());
    Ok(Dropped {
        total,
        drop_took,
        size_at_drop,
        size_later,
        later,
    })
}
// ANCHOR_END: drop_in_flight

/// Polls `done` every 100 µs for up to 10 seconds.
fn wait_for(mut done: impl FnMut() -> std::io::Result<bool>) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done()? {
        if start.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("waited 10 s for the write in flight");
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}

fn show(cqes: &[Cqe], names: &[(u64, &str)]) {
    for c in cqes {
        let name = names
            .iter()
            .find(|(ud, _)| *ud == c.user_data)
            .map_or("", |n| n.1);
        println!(
            "  cqe user_data={} res={:<18} {name}",
            c.user_data,
            res_text(c.res)
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn run() -> anyhow::Result<()> {
    let mut ring = ex7::ring(16)?;
    uring_book::ex7_probe::require(
        &ring,
        &[
            opcode::AsyncCancel::CODE,
            opcode::Recv::CODE,
            opcode::Fsync::CODE,
        ],
    )?;
    let (ours, mut peer) = UnixStream::pair()?;

    println!("cancel a Recv that waits for data (user_data 1) with AsyncCancel (2):");
    let cqes = cancel_idle_recv(&mut ring, &ours)?;
    show(
        &cqes,
        &[
            (1, "the recv: its buffer is ours again"),
            (2, "the cancel: found it"),
        ],
    );

    println!("\ncancel a Recv that had data waiting, in the same submission:");
    peer.write_all(b"hello")?;
    let cqes = cancel_completed(&mut ring, &ours)?;
    show(
        &cqes,
        &[
            (1, "the recv: it completed first"),
            (2, "the cancel: too late"),
        ],
    );

    let dir = tempfile::tempdir()?;
    println!(
        "\ncancel an fsync of {} MiB of dirty pages 2 ms after it starts:",
        FSYNC_BYTES >> 20
    );
    let (cqes, took) = cancel_running(&mut ring, dir.path(), Duration::from_millis(2))?;
    let fsync = match ex7::find(&cqes, 2)?.res {
        0 => "the fsync: cancelled before a worker took it",
        r if r == -libc::EALREADY => "the fsync: a worker was running it; it finished",
        _ => "the fsync: it had finished already",
    };
    show(&cqes, &[(1, fsync), (2, "the cancel")]);
    println!("  the fsync's CQE came after {}", ms(took));

    if has_cancel_flags() {
        println!("\ncancel three Recvs on one socket with one AsyncCancel2 (FD | ALL):");
        let cqes = cancel_fd_all(&mut ring, &ours)?;
        let recvs = [(1, "a recv"), (2, "a recv"), (3, "a recv")];
        show(
            &cqes,
            &[&recvs[..], &[(4, "the cancel: how many it cancelled")]].concat(),
        );
    } else {
        println!("\ncancel by file descriptor: this kernel lacks IORING_ASYNC_CANCEL_FD (5.19)");
    }

    println!(
        "\ndrop a ring while a {} MiB write from our buffer is in flight:",
        DROP_WRITE_BYTES >> 20
    );
    let d = drop_with_write_in_flight(dir.path())?;
    println!(
        "  drop returned after {}; the file then held {} MiB, and {} MiB {} later:\n  \
         the kernel went on reading our buffer after the drop, so we leaked it",
        ms(d.drop_took),
        d.size_at_drop >> 20,
        d.size_later >> 20,
        ms(d.later)
    );

    println!(
        "\nthe sound order: cancel, reap every CQE, then drop (two Recvs in flight):"
    );
    let mut ring = ex7::ring(8)?;
    let mut bufs = vec![vec![0u8; 64]; 2];
    let recvs: Vec<_> = (1..)
        .zip(&mut bufs)
        .map(|(ud, b)| recv(&ours, b, ud))
        .collect();
    push(&mut ring, &recvs)?;
    let bufs = ex7::submit(&mut ring, bufs)?;
    let (cqes, bufs) = shutdown(ring, &[1, 2], bufs)?;
    show(
        &cqes,
        &[(1, "recv 1"), (2, "recv 2"), (CANCEL, "the cancel")],
    );
    println!(
        "  ring dropped with nothing in flight; {} buffers back",
        bufs.len()
    );
    Ok(())
}
