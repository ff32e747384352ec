//! Deadlines: `Timeout` (relative, absolute, with a completion count),
//! `TimeoutRemove` and `TimeoutUpdate`, a receive that gives up after a
//! `LinkTimeout`, and a wait for CQEs with a deadline that costs no SQE
//! (`submit_with_args`, IORING_FEAT_EXT_ARG).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use io_uring::{opcode, squeue, types, IoUring};
use uring_book::ex7_chains_deadlines_cancel::{self as ex7, res_text, Cqe};
use uring_book::ex7_probe;

/// CQEs, and how long it took until the last of them.
#[derive(Debug, Clone)]
pub struct Timed {
    pub cqes: Vec<Cqe>,
    pub took: Duration,
}

/// A duration as the kernel's `struct __kernel_timespec`.
pub fn timespec(d: Duration) -> types::Timespec {
    types::Timespec::new()
        .sec(d.as_secs())
        .nsec(d.subsec_nanos())
}

/// Pushes `sqes` and reaps `sqes.len()` CQEs, timing it. `memory` is what
/// the requests use; it comes back only with the CQEs. The SQEs must point
/// where a move of `memory` moves nothing: into the heap it owns, or into
/// the caller's own locals, which outlive this call.
fn run_timed<T>(
    ring: &mut IoUring,
    sqes: &[squeue::Entry],
    memory: T,
) -> anyhow::Result<(Timed, T)> {
    let start = Instant::now();
    // SAFETY: as said above; `complete` returns `memory`, or leaks it, once
    // every CQE is in.
    unsafe { ring.submission().push_multiple(sqes) }.map_err(|_| anyhow!("SQ full"))?;
    let (cqes, memory) = ex7::complete(ring, sqes.len(), memory)?;
    Ok((
        Timed {
            cqes,
            took: start.elapsed(),
        },
        memory,
    ))
}

// ANCHOR: relative
/// A timeout of `after` (user_data 1) that also completes once `count`
/// other CQEs have been posted (0: no count), submitted with `nops` NOPs.
pub fn relative(
    ring: &mut IoUring,
    after: Duration,
    count: u32,
    nops: u64,
) -> anyhow::Result<Timed> {
    let ts = timespec(after);
    let mut sqes = vec![opcode::Timeout::new(&ts).count(count).build().user_data(1)];
    sqes.extend((0..nops).map(|i| opcode::Nop::new().build().user_data(10 + i)));
    Ok(run_timed(ring, &sqes, ts)?.0)
}
// ANCHOR_END: relative

// ANCHOR: absolute
/// A timeout at a point in time: now + `after` on CLOCK_MONOTONIC, the clock
/// io_uring's timeouts use unless told otherwise.
pub fn absolute(ring: &mut IoUring, after: Duration) -> anyhow::Result<Timed> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let at = Duration::new(now.tv_sec as u64, now.tv_nsec as u32) + after;
    let ts = timespec(at);
    let timeout = opcode::Timeout::new(&ts)
        .flags(types::TimeoutFlags::ABS)
        .build()
        .user_data(1);
    Ok(run_timed(ring, &[timeout], ts)?.0)
}
// ANCHOR_END: absolute

// ANCHOR: remove_update
/// A 10-second timeout (user_data 1), then a TimeoutRemove of it (2).
pub fn remove(ring: &mut IoUring) -> anyhow::Result<Timed> {
    let ts = timespec(Duration::from_secs(10));
    let timeout = opcode::Timeout::new(&ts).build().user_data(1);
    let remove = opcode::TimeoutRemove::new(1).build().user_data(2);
    Ok(run_timed(ring, &[timeout, remove], ts)?.0)
}

/// A 10-second timeout that also ends after 1 CQE (user_data 1), then a
/// TimeoutUpdate (2) that makes it expire `to` from now. The update's own
/// CQE does not end it: an update drops the count.
pub fn update(ring: &mut IoUring, to: Duration) -> anyhow::Result<Timed> {
    let (long, short) = (timespec(Duration::from_secs(10)), timespec(to));
    let timeout = opcode::Timeout::new(&long).count(1).build().user_data(1);
    let update = opcode::TimeoutUpdate::new(1, &short).build().user_data(2);
    Ok(run_timed(ring, &[timeout, update], (long, short))?.0)
}
// ANCHOR_END: remove_update

/// How a receive with a deadline ended: each side's `res`, in the order the
/// CQEs came, and the receive's buffer.
#[derive(Debug)]
pub struct RecvOutcome {
    pub recv: i32,
    pub timer: i32,
    pub order: Vec<Cqe>,
    pub took: Duration,
}

// ANCHOR: link_timeout
/// Receives into `buf` from `sock`, giving up after `deadline`: a Recv
/// (user_data 1) flagged IO_LINK, then a LinkTimeout (2) that applies to it.
pub fn recv_linked_timeout(
    ring: &mut IoUring,
    sock: &UnixStream,
    buf: Vec<u8>,
    deadline: Duration,
) -> anyhow::Result<(RecvOutcome, Vec<u8>)> {
    // The timespec is boxed: `memory` moves below, and the SQE must point
    // to an address that does not move with it (rule 1).
    let mut memory = (buf, Box::new(timespec(deadline)));
    let (buf, ts) = (&mut memory.0, &*memory.1);
    let fd = types::Fd(sock.as_raw_fd());
    let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32)
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(1);
    let timer = opcode::LinkTimeout::new(ts).build().user_data(2);
    let (timed, (buf, _)) = run_timed(ring, &[recv, timer], memory)?;
    let outcome = RecvOutcome {
        recv: ex7::find(&timed.cqes, 1)?.res,
        timer: ex7::find(&timed.cqes, 2)?.res,
        order: timed.cqes,
        took: timed.took,
    };
    Ok((outcome, buf))
}
// ANCHOR_END: link_timeout

/// The same with a plain Timeout (2) beside the Recv (1) instead of linked
/// to it, as a kernel without LinkTimeout needs, or a deadline for several
/// requests that are no chain. Whichever completes first, the other is taken
/// back: the timer with a TimeoutRemove, the receive with an AsyncCancel (3).
pub fn recv_plain_timeout(
    ring: &mut IoUring,
    sock: &UnixStream,
    buf: Vec<u8>,
    deadline: Duration,
) -> anyhow::Result<(RecvOutcome, Vec<u8>)> {
    let start = Instant::now();
    // The timespec is boxed: `memory` moves below, and the SQE must point
    // to an address that does not move with it (rule 1).
    let mut memory = (buf, Box::new(timespec(deadline)));
    let (buf, ts) = (&mut memory.0, &*memory.1);
    let fd = types::Fd(sock.as_raw_fd());
    let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32)
        .build()
        .user_data(1);
    let timer = opcode::Timeout::new(ts).build().user_data(2);
    // SAFETY: `memory` holds the buffer and the timespec; it is handed back
    // only by `complete`, once every CQE is in, or leaked.
    unsafe { ring.submission().push_multiple(&[recv, timer]) }
        .map_err(|_| anyhow!("SQ full"))?;
    let (mut order, memory) = ex7::complete(ring, 1, memory)?;
    let seen = |ud| order.iter().any(|c: &Cqe| c.user_data == ud);
    let mut expected = 2;
    if !(seen(1) && seen(2)) {
        let undo = if seen(1) {
            opcode::TimeoutRemove::new(2).build().user_data(3)
        } else {
            opcode::AsyncCancel::new(1).build().user_data(3)
        };
        // SAFETY: the remove or cancel names no memory.
        if unsafe { ring.submission().push(&undo) }.is_err() {
            return Err(ex7::leak(memory, anyhow!("SQ full")));
        }
        expected = 3;
    }
    let (rest, (buf, _)) = ex7::complete(ring, expected - order.len(), memory)?;
    order.extend(rest);
    let outcome = RecvOutcome {
        recv: ex7::find(&order, 1)?.res,
        timer: ex7::find(&order, 2)?.res,
        order,
        took: start.elapsed(),
    };
    Ok((outcome, buf))
}

/// How to wait for CQEs with a deadline on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlinePath {
    /// io_uring_enter takes the timeout itself (IORING_FEAT_EXT_ARG, 5.11).
    ExtArg,
    /// A Timeout SQE wakes the wait (what liburing did before 5.11).
    TimeoutSqe,
}

/// The better way this kernel offers.
pub fn deadline_path(ring: &IoUring) -> DeadlinePath {
    if ring.params().is_feature_ext_arg() {
        DeadlinePath::ExtArg
    } else {
        DeadlinePath::TimeoutSqe
    }
}

/// user_data of the Timeout SQE of [`DeadlinePath::TimeoutSqe`].
pub const WAIT_TIMER: u64 = u64::MAX;

// ANCHOR: wait_deadline
/// Submits what is queued and waits until `want` CQEs are in or `timeout`
/// has passed. Returns the CQEs that came, and whether time ran out.
pub fn wait_with_deadline(
    ring: &mut IoUring,
    want: usize,
    timeout: Duration,
    path: DeadlinePath,
) -> anyhow::Result<(Vec<Cqe>, bool)> {
    let ts = timespec(timeout);
    let cqes: Vec<Cqe> = match path {
        DeadlinePath::ExtArg => {
            let args = types::SubmitArgs::new().timespec(&ts);
            // ETIME: time ran out. But a call that also submits SQEs returns
            // how many it submitted, time out or not: count the CQEs instead.
            match ring.submitter().submit_with_args(want, &args) {
                Err(e)
                    if !matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) =>
                {
                    return Err(e.into());
                }
                _ => ring.completion().map(cqe).collect(),
            }
        }
        DeadlinePath::TimeoutSqe => wait_with_timeout_sqe(ring, want, &ts)?,
    };
    let timed_out = cqes.len() < want;
    Ok((cqes, timed_out))
}
// ANCHOR_END: wait_deadline

/// The wait of [`wait_with_deadline`] before 5.11: a Timeout SQE that
/// completes after `want` other CQEs, or with -ETIME at the deadline.
fn wait_with_timeout_sqe(
    ring: &mut IoUring,
    want: usize,
    ts: &types::Timespec,
) -> anyhow::Result<Vec<Cqe>> {
    let timer = opcode::Timeout::new(ts).count(want as u32).build();
    // SAFETY: the kernel copies `ts` when it takes the SQE, below.
    unsafe { ring.submission().push(&timer.user_data(WAIT_TIMER)) }
        .map_err(|_| anyhow!("SQ full"))?;
    let mut cqes = Vec::new();
    loop {
        let (got, ()) = ex7::complete(ring, 1, ())?;
        let done = got.iter().any(|c| c.user_data == WAIT_TIMER);
        cqes.extend(got.into_iter().filter(|c| c.user_data != WAIT_TIMER));
        if done {
            return Ok(cqes);
        }
    }
}

fn cqe(c: io_uring::cqueue::Entry) -> Cqe {
    Cqe {
        user_data: c.user_data(),
        res: c.result(),
        flags: c.flags(),
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn res_of(t: &Timed, user_data: u64) -> anyhow::Result<String> {
    Ok(res_text(ex7::find(&t.cqes, user_data)?.res))
}

/// The five timers of the first part of `cargo run -- 7 timeout`. Flags the
/// kernel lacks are skipped with a line that says so.
fn timers(ring: &mut IoUring) -> anyhow::Result<()> {
    let t = relative(ring, Duration::from_millis(50), 0, 0)?;
    let took = ms(t.took);
    println!(
        "Timeout 50 ms:                   res={} after {took}",
        res_of(&t, 1)?
    );
    let t = relative(ring, Duration::from_secs(1), 2, 2)?;
    let (res, took) = (res_of(&t, 1)?, ms(t.took));
    println!(
        "Timeout 1 s, count 2, 2 NOPs:    res={res} after {took}: the count came first"
    );
    if ex7_probe::has("IORING_TIMEOUT_ABS") {
        let t = absolute(ring, Duration::from_millis(50))?;
        let took = ms(t.took);
        println!(
            "Timeout ABS at now + 50 ms:      res={} after {took}",
            res_of(&t, 1)?
        );
    } else {
        println!("Timeout ABS: this kernel lacks IORING_TIMEOUT_ABS (5.5)");
    }
    let t = remove(ring)?;
    let (rm, timer) = (res_of(&t, 2)?, res_of(&t, 1)?);
    println!("TimeoutRemove of a 10 s timeout: remove res={rm}, timeout res={timer}");
    if ex7_probe::has("IORING_TIMEOUT_UPDATE") {
        let t = update(ring, Duration::from_millis(20))?;
        let (up, timer, took) = (res_of(&t, 2)?, res_of(&t, 1)?, ms(t.took));
        let what = "TimeoutUpdate, count 1 -> 20 ms:";
        println!("{what} update res={up}, timeout res={timer} after {took}");
    } else {
        println!("TimeoutUpdate: this kernel lacks IORING_TIMEOUT_UPDATE (5.11)");
    }
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    let mut ring = ex7::ring(16)?;
    uring_book::ex7_probe::require(&ring, &[opcode::Timeout::CODE, opcode::Recv::CODE])?;
    timers(&mut ring)?;

    // A linked timeout where the kernel has one, a plain one otherwise.
    let deadline = Duration::from_millis(100);
    let linked = ex7_probe::probe(&ring)?.is_supported(opcode::LinkTimeout::CODE);
    let recv = if linked {
        println!("\nRecv linked to a LinkTimeout of {}:", ms(deadline));
        recv_linked_timeout
    } else {
        println!(
            "\nRecv beside a Timeout of {} (no LinkTimeout before 5.5):",
            ms(deadline)
        );
        recv_plain_timeout
    };
    let (ours, mut peer) = UnixStream::pair()?;
    peer.write_all(b"hello")?;
    let (won, buf) = recv(&mut ring, &ours, vec![0; 64], deadline)?;
    show("data already there", &won, &buf);
    let (lost, buf) = recv(&mut ring, &ours, buf, deadline)?;
    show("no data", &lost, &buf);

    println!("\nWaiting up to 50 ms for a CQE that does not come (an idle Recv):");
    for path in [DeadlinePath::ExtArg, DeadlinePath::TimeoutSqe] {
        if path == DeadlinePath::ExtArg && deadline_path(&ring) != path {
            println!("  submit_with_args: this kernel lacks IORING_FEAT_EXT_ARG (5.11)");
            continue;
        }
        let mut buf = vec![0u8; 64];
        let (fd, len) = (types::Fd(ours.as_raw_fd()), buf.len() as u32);
        let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), len)
            .build()
            .user_data(7);
        // SAFETY: `buf` lives until the Recv's CQE, reaped below, or leaks.
        unsafe { ring.submission().push(&recv) }.map_err(|_| anyhow!("SQ full"))?;
        let start = Instant::now();
        let (cqes, timed_out) =
            match wait_with_deadline(&mut ring, 1, Duration::from_millis(50), path) {
                Ok(waited) => waited,
                Err(err) => return Err(ex7::leak(buf, err)),
            };
        let how = match path {
            DeadlinePath::ExtArg => "submit_with_args (EXT_ARG):  ",
            DeadlinePath::TimeoutSqe => "a Timeout SQE (the fallback):",
        };
        println!(
            "  {how} timed out: {timed_out}, after {}, {} CQEs of ours",
            ms(start.elapsed()),
            cqes.len()
        );
        let cancel = opcode::AsyncCancel::new(7).build().user_data(8);
        // SAFETY: names no memory.
        if unsafe { ring.submission().push(&cancel) }.is_err() {
            return Err(ex7::leak(buf, anyhow!("SQ full")));
        }
        ex7::complete(&mut ring, 2, buf)?;
    }
    Ok(())
}

fn show(what: &str, o: &RecvOutcome, buf: &[u8]) {
    let got = if o.recv > 0 {
        format!(
            ", got {:?}",
            String::from_utf8_lossy(&buf[..o.recv as usize])
        )
    } else {
        String::new()
    };
    println!("  {what} (after {}{got}):", ms(o.took));
    for c in &o.order {
        let who = if c.user_data == 1 {
            "recv"
        } else {
            "link timeout"
        };
        println!(
            "    cqe user_data={} ({who}) res={}",
            c.user_data,
            res_text(c.res)
        );
    }
}
