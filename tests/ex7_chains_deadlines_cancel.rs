//! Exercise 7: the linked copy copies every byte and survives short reads;
//! chains break as the man pages say; timeouts and cancels come back with
//! the exact `res` values of io_uring_prep_timeout(3),
//! io_uring_prep_link_timeout(3) and io_uring_prep_cancel(3); every failure
//! is one line and a non-zero exit.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use uring_book::ex7_chains_deadlines_cancel::{self as ex7, Cqe};
use uring_book::{
    ex7_broken_chain, ex7_cancel, ex7_linked_copy as copy, ex7_probe,
    ex7_timeouts as timeouts,
};

const ECANCELED: i32 = -libc::ECANCELED;
const ETIME: i32 = -libc::ETIME;

/// Runs the binary; a run that has not ended after 60 s is killed, so that
/// a command that hangs fails its test instead of stalling the suite.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("uring-book {args:?} still ran after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A failure is one line on stderr, `error: ...`, and exit status `code`.
fn one_error_line(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn res(cqes: &[Cqe], user_data: u64) -> i32 {
    cqes.iter().find(|c| c.user_data == user_data).unwrap().res
}

#[test]
fn copy_of_a_given_file_is_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    // Not a multiple of the block: the last pair is shorter.
    copy::write_test_file(&src, 3 * 1024 * 1024 + 12345).unwrap();
    std::fs::write(&dst, b"old content, longer than nothing").unwrap();
    let out = run(&[
        "7",
        "copy",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--block-kib",
        "64",
        "--pairs",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("every byte equal"), "{stdout}");
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&dst).unwrap());
}

#[test]
fn copy_without_paths_makes_copies_and_verifies_a_file() {
    let out = run(&["7", "copy", "--size-mib", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("copied 2 MiB"), "{stdout}");
    assert!(stdout.contains("size 2097152 = 2097152"), "{stdout}");
}

#[test]
fn copy_failures_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, b"something").unwrap();
    let s = src.to_str().unwrap();
    let missing = dir.path().join("missing");
    let err = one_error_line(&run(&["7", "copy", missing.to_str().unwrap(), s]), 1);
    assert!(
        err.contains("cannot open") && err.contains("ENOENT"),
        "{err}"
    );
    let d = dir.path().to_str().unwrap();
    let err = one_error_line(&run(&["7", "copy", d, "/tmp/x"]), 1);
    assert!(err.contains("is a directory"), "{err}");
    let nowhere = dir.path().join("no/such/dir/copy");
    let err = one_error_line(&run(&["7", "copy", s, nowhere.to_str().unwrap()]), 1);
    assert!(
        err.contains("cannot create") && err.contains("ENOENT"),
        "{err}"
    );
    // sysfs refuses new files, even to root: an unwritable destination.
    let err = one_error_line(&run(&["7", "copy", s, "/sys/kernel/uring-book-copy"]), 1);
    assert!(
        err.contains("cannot create /sys/kernel/uring-book-copy"),
        "{err}"
    );
    let err = one_error_line(&run(&["7", "copy", s, s]), 1);
    assert!(err.contains("the source itself"), "{err}");
    // Not truncated.
    assert_eq!(std::fs::read(&src).unwrap(), b"something");
    // Opening a FIFO would wait for a writer: it is refused before it is opened.
    let fifo = dir.path().join("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let dst = dir.path().join("dst");
    let d = dst.to_str().unwrap();
    for source in [fifo.to_str().unwrap(), "/dev/zero"] {
        let err = one_error_line(&run(&["7", "copy", source, d]), 1);
        assert!(err.contains("is not a regular file"), "{err}");
    }
    // A device is no destination the copy could write by offset and verify.
    let err = one_error_line(&run(&["7", "copy", s, "/dev/null"]), 1);
    assert!(err.contains("/dev/null is not a regular file"), "{err}");
    let err = one_error_line(&run(&["7", "copy", s, "/dev/full"]), 1);
    assert!(err.contains("/dev/full is not a regular file"), "{err}");
    let err = one_error_line(&run(&["7", "copy", s]), 2);
    assert!(err.contains("<DST>"), "{err}");
    let err = one_error_line(&run(&["7", "frob"]), 2);
    assert!(err.contains("exercise 7 has no command 'frob'"), "{err}");
}

/// A pipe that holds 4 KiB, read 64 KiB at a time: every read but the last
/// of each block is short, each breaks its link, and the copy still ends
/// byte for byte equal.
#[test]
fn short_reads_break_links_and_the_copy_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let size = 512 * 1024;
    let expected: Vec<u8> = (0..size).map(copy::test_byte).collect();
    let (rx, mut tx) = std::io::pipe().unwrap();
    assert!(unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) } >= 0);
    let data = expected.clone();
    let writer = std::thread::spawn(move || tx.write_all(&data));
    let dst = File::create(dir.path().join("dst")).unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let stats = copy::copy_linked(&mut ring, &rx, &dst, size, 64 * 1024, 1).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(stats.bytes, size);
    assert!(stats.short_reads >= 8, "{stats:?}");
    assert_eq!(stats.cancelled_writes, stats.short_reads, "{stats:?}");
    assert!(std::fs::read(dir.path().join("dst")).unwrap() == expected);
}

#[test]
fn a_copy_whose_source_shrank_fails_after_reaping_everything() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src");
    copy::write_test_file(&src_path, 100_000).unwrap();
    let (src, dst) = (
        File::open(&src_path).unwrap(),
        File::create(dir.path().join("d")).unwrap(),
    );
    let mut ring = IoUring::new(8).unwrap();
    // The copy is told the file is bigger than it is.
    let err =
        copy::copy_linked(&mut ring, &src, &dst, 300_000, 64 * 1024, 4).unwrap_err();
    assert!(format!("{err:#}").contains("did it shrink?"), "{err:#}");
    // Nothing is left in flight: the ring is idle and usable.
    let nop = opcode::Nop::new().build().user_data(7);
    unsafe { ring.submission().push(&nop).unwrap() };
    ring.submit_and_wait(1).unwrap();
    let cqes: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
    assert_eq!(cqes, [7]);
}

#[test]
fn a_short_read_cancels_the_rest_of_a_chain_unless_hardlinked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src"), ex7_broken_chain::SOURCE).unwrap();
    let src = File::open(dir.path().join("src")).unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let dst = File::create(dir.path().join("link")).unwrap();
    let cqes =
        ex7_broken_chain::three_links(&mut ring, &src, &dst, squeue::Flags::IO_LINK)
            .unwrap();
    assert_eq!(
        [res(&cqes, 1), res(&cqes, 2), res(&cqes, 3)],
        [36, ECANCELED, ECANCELED]
    );
    assert!(std::fs::read(dir.path().join("link")).unwrap().is_empty());

    let dst = File::create(dir.path().join("hard")).unwrap();
    let flags = squeue::Flags::IO_HARDLINK;
    let cqes = ex7_broken_chain::three_links(&mut ring, &src, &dst, flags).unwrap();
    assert_eq!([res(&cqes, 1), res(&cqes, 2), res(&cqes, 3)], [36, 64, 0]);
    let written = std::fs::read(dir.path().join("hard")).unwrap();
    assert_eq!(&written[..36], &ex7_broken_chain::SOURCE[64..]);
    assert_eq!(&written[36..], &[b'?'; 28][..]); // written, never read
}

#[test]
fn timeouts_end_as_io_uring_prep_timeout_3_says() {
    let mut ring = IoUring::new(16).unwrap();
    let t = timeouts::relative(&mut ring, Duration::from_millis(10), 0, 0).unwrap();
    assert_eq!(res(&t.cqes, 1), ETIME);
    // The count is reached by the two NOPs long before the 10 s.
    let t = timeouts::relative(&mut ring, Duration::from_secs(10), 2, 2).unwrap();
    assert_eq!(res(&t.cqes, 1), 0);
    let t = timeouts::absolute(&mut ring, Duration::from_millis(10)).unwrap();
    assert_eq!(res(&t.cqes, 1), ETIME);
    let t = timeouts::remove(&mut ring).unwrap();
    assert_eq!((res(&t.cqes, 2), res(&t.cqes, 1)), (0, ECANCELED));
    // The timeout had a count of 1, and the update's CQE did not end it:
    // TimeoutUpdate drops the count (the kernel makes it a plain timer).
    let t = timeouts::update(&mut ring, Duration::from_millis(10)).unwrap();
    assert_eq!((res(&t.cqes, 2), res(&t.cqes, 1)), (0, ETIME));
}

/// Both ends of a receive with a plain Timeout beside it can complete before
/// the first reap (data waiting, a deadline of zero): the function must then
/// take nothing back, and still return.
#[test]
fn a_plain_timeout_and_its_receive_may_both_be_done_at_once() {
    let mut ring = IoUring::new(16).unwrap();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let mut buf = vec![0; 64];
    for _ in 0..50 {
        peer.write_all(b"hello").unwrap();
        let (o, back) =
            timeouts::recv_plain_timeout(&mut ring, &ours, buf, Duration::ZERO).unwrap();
        assert_eq!(o.recv, 5, "{:?}", o.order);
        assert!([ETIME, ECANCELED].contains(&o.timer), "{:?}", o.order);
        buf = back;
    }
    // Nothing was left in flight.
    let nop = opcode::Nop::new().build().user_data(77);
    unsafe { ring.submission().push(&nop).unwrap() };
    ring.submit_and_wait(1).unwrap();
    let left: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
    assert_eq!(left, [77]);
}

/// Both outcomes of a receive with a deadline, linked (LinkTimeout) and
/// with the plain-Timeout fallback: the same `res` on each side.
#[test]
fn a_receive_with_a_deadline_ends_either_way() {
    let mut ring = IoUring::new(16).unwrap();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let deadline = Duration::from_millis(30);
    for linked in [true, false] {
        let recv = |ring: &mut IoUring, buf| {
            if linked {
                timeouts::recv_linked_timeout(ring, &ours, buf, deadline)
            } else {
                timeouts::recv_plain_timeout(ring, &ours, buf, deadline)
            }
        };
        peer.write_all(b"hello").unwrap();
        let (won, buf) = recv(&mut ring, vec![0; 64]).unwrap();
        assert_eq!((won.recv, won.timer), (5, ECANCELED), "linked: {linked}");
        assert_eq!(&buf[..5], b"hello");
        let (lost, _) = recv(&mut ring, buf).unwrap();
        assert_eq!(
            (lost.recv, lost.timer),
            (ECANCELED, ETIME),
            "linked: {linked}"
        );
        // The receive asks for the buffer's length, never more.
        peer.write_all(b"hi, and more").unwrap();
        let (short, buf) = recv(&mut ring, vec![0; 2]).unwrap();
        assert_eq!((short.recv, &buf[..]), (2, &b"hi"[..]), "linked: {linked}");
        let (rest, buf) = recv(&mut ring, vec![0; 64]).unwrap();
        assert_eq!(&buf[..rest.recv as usize], b", and more");
    }
}

#[test]
fn a_wait_with_a_deadline_returns_early_or_times_out_on_both_paths() {
    let mut ring = IoUring::new(16).unwrap();
    for path in [
        timeouts::DeadlinePath::ExtArg,
        timeouts::DeadlinePath::TimeoutSqe,
    ] {
        let nop = opcode::Nop::new().build().user_data(5);
        unsafe { ring.submission().push(&nop).unwrap() };
        let (cqes, timed_out) =
            timeouts::wait_with_deadline(&mut ring, 1, Duration::from_secs(10), path)
                .unwrap();
        assert!(!timed_out, "{path:?}");
        assert_eq!(
            cqes.iter().map(|c| c.user_data).collect::<Vec<_>>(),
            [5],
            "{path:?}"
        );
        let (cqes, timed_out) =
            timeouts::wait_with_deadline(&mut ring, 1, Duration::from_millis(10), path)
                .unwrap();
        assert!(timed_out && cqes.is_empty(), "{path:?}: {cqes:?}");
    }
}

#[test]
fn cancels_end_as_io_uring_prep_cancel_3_says() {
    let mut ring = IoUring::new(16).unwrap();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let cqes = ex7_cancel::cancel_idle_recv(&mut ring, &ours).unwrap();
    assert_eq!((res(&cqes, 1), res(&cqes, 2)), (ECANCELED, 0));
    peer.write_all(b"hello").unwrap();
    let cqes = ex7_cancel::cancel_completed(&mut ring, &ours).unwrap();
    assert_eq!((res(&cqes, 1), res(&cqes, 2)), (5, -libc::ENOENT));
    if ex7_cancel::has_cancel_flags() {
        let cqes = ex7_cancel::cancel_fd_all(&mut ring, &ours).unwrap();
        assert_eq!(res(&cqes, 4), 3);
        assert!((1..=3).all(|ud| res(&cqes, ud) == ECANCELED), "{cqes:?}");
        cancel_flags_one_by_one(&mut ring, &ours);
    }
}

/// `_FD` without `_ALL` cancels the first match and answers 0, as a cancel
/// by user_data does; `_ANY` on a ring with nothing in flight answers 0.
fn cancel_flags_one_by_one(ring: &mut IoUring, sock: &UnixStream) {
    let mut bufs = vec![vec![0u8; 16]; 2];
    for (ud, buf) in (1..).zip(&mut bufs) {
        let fd = types::Fd(sock.as_raw_fd());
        let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), 16).build();
        unsafe { ring.submission().push(&recv.user_data(ud)).unwrap() };
    }
    let by_fd = types::CancelBuilder::fd(types::Fd(sock.as_raw_fd()));
    let first = opcode::AsyncCancel2::new(by_fd).build().user_data(3);
    unsafe { ring.submission().push(&first).unwrap() };
    let (cqes, bufs) = ex7::complete(ring, 2, bufs).unwrap();
    assert_eq!(res(&cqes, 3), 0, "{cqes:?}");
    assert_eq!(cqes.iter().filter(|c| c.res == ECANCELED).count(), 1);
    let any = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build();
    unsafe { ring.submission().push(&any.user_data(4)).unwrap() };
    let (cqes, _bufs) = ex7::complete(ring, 2, bufs).unwrap();
    assert_eq!(res(&cqes, 4), 1, "the one receive left: {cqes:?}");
    let any = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build();
    unsafe { ring.submission().push(&any.user_data(5)).unwrap() };
    let (cqes, ()) = ex7::complete(ring, 1, ()).unwrap();
    assert_eq!(res(&cqes, 5), 0, "nothing in flight: {cqes:?}");
}

/// A splice from an empty pipe blocks in an io-wq worker. A cancel cannot
/// take it back cleanly: it answers -EALREADY, and the worker's wait is
/// interrupted, so the splice ends at once with an error of its own.
#[test]
fn a_cancel_interrupts_a_worker_that_waits() {
    let mut ring = IoUring::new(8).unwrap();
    let (rx, _tx) = std::io::pipe().unwrap();
    let null = File::options().write(true).open("/dev/null").unwrap();
    let (from, to) = (types::Fd(rx.as_raw_fd()), types::Fd(null.as_raw_fd()));
    let splice = opcode::Splice::new(from, -1, to, -1, 4)
        .build()
        .user_data(1);
    unsafe { ring.submission().push(&splice).unwrap() };
    ring.submit().unwrap();
    // Cancel only once a worker waits in the pipe: earlier, the cancel finds
    // the splice still queued and answers 0, which is another test's case.
    wait_for_a_worker_in("pipe");
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    unsafe { ring.submission().push(&cancel).unwrap() };
    let (cqes, ()) = ex7::complete(&mut ring, 2, ()).unwrap();
    assert_eq!(res(&cqes, 2), -libc::EALREADY, "{cqes:?}");
    // -EINTR, or the kernel's own -ERESTARTSYS (512) that a splice lets out.
    assert!(res(&cqes, 1) < 0 && res(&cqes, 1) != ECANCELED, "{cqes:?}");
}

/// Waits until an io-wq worker of this process sleeps in a kernel function
/// whose name contains `kernel_fn` (its `wchan`), or five seconds pass.
fn wait_for_a_worker_in(kernel_fn: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let tasks = std::fs::read_dir("/proc/self/task").unwrap().flatten();
        let waiting = tasks.into_iter().any(|task| {
            let read = |file| std::fs::read_to_string(task.path().join(file));
            read("comm").is_ok_and(|c| c.starts_with("iou-wrk"))
                && read("wchan").is_ok_and(|w| w.contains(kernel_fn))
        });
        if waiting {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no io-wq worker waited in {kernel_fn} within five seconds");
}

/// Whichever moment the cancel meets the fsync at, the pair of results is
/// one of the three the man page allows, and the fsync's own CQE comes.
#[test]
fn a_cancel_racing_an_fsync_gets_one_of_three_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let (cqes, _) =
        ex7_cancel::cancel_running(&mut ring, dir.path(), Duration::from_millis(1))
            .unwrap();
    let pair = (res(&cqes, 2), res(&cqes, 1));
    let allowed = [(0, ECANCELED), (-libc::EALREADY, 0), (-libc::ENOENT, 0)];
    assert!(allowed.contains(&pair), "{pair:?}");
}

#[test]
fn shutdown_reaps_every_request_before_the_ring_goes() {
    let mut ring = IoUring::new(8).unwrap();
    let (ours, _peer) = UnixStream::pair().unwrap();
    let mut bufs = vec![vec![0u8; 16]; 3];
    for (ud, buf) in (1..).zip(&mut bufs) {
        let fd = types::Fd(ours.as_raw_fd());
        let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), 16)
            .build()
            .user_data(ud);
        unsafe { ring.submission().push(&recv).unwrap() };
    }
    ring.submit().unwrap();
    let (cqes, bufs) = ex7_cancel::shutdown(ring, &[1, 2, 3], bufs).unwrap();
    assert!((1..=3).all(|ud| res(&cqes, ud) == ECANCELED), "{cqes:?}");
    assert_eq!(bufs.len(), 3);
}

/// The write goes on after the drop: the file reaches its full size.
#[test]
fn dropping_a_ring_does_not_stop_a_write_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let d = ex7_cancel::drop_with_write_in_flight(dir.path()).unwrap();
    assert_eq!(d.size_later, d.total);
    assert!(d.size_at_drop > 0);
}

#[test]
fn einval_is_told_apart_with_the_probe() {
    let ring = IoUring::new(4).unwrap();
    let probe = ex7_probe::probe(&ring).unwrap();
    let lacks = ex7_probe::explain_einval(&probe, 250);
    assert!(lacks.contains("does not know opcode 250"), "{lacks}");
    let bad = ex7_probe::explain_einval(&probe, opcode::LinkTimeout::CODE);
    assert!(bad.contains("exists here"), "{bad}");
    let err = ex7_probe::require(&ring, &[opcode::Read::CODE, 250]).unwrap_err();
    assert!(
        err.to_string().contains("does not support opcode 250"),
        "{err}"
    );
    ex7_probe::require(&ring, &[opcode::Read::CODE, opcode::Write::CODE]).unwrap();
}

#[test]
fn every_part_runs_in_the_demonstration() {
    let out = run(&["7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for part in ["7 copy", "7 chain", "7 timeout", "7 cancel", "7 probe"] {
        assert!(stdout.contains(&format!("== {part}:")), "{part}:\n{stdout}");
    }
    assert!(stdout.lines().all(|l| l.chars().count() <= 90), "{stdout}");
}

/// The benchmark runs and reports; its numbers are not checked here.
#[test]
fn the_benchmark_runs_small() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(&[
        "7",
        "bench",
        "--size-mib",
        "2",
        "--repeats",
        "1",
        "--dir",
        d,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("verdict, cold:") && stdout.contains("verdict, warm:"));
}

/// A LinkTimeout bounds a wait, not work that an io-wq worker has started. A
/// splice always runs in a worker; this one waits 300 ms for data, under a
/// deadline of 50 ms. Since Linux 6.15 the kernel arms a link timeout when
/// the request's issue call returns, which in a worker is when the splice is
/// done: the timer never fires. Older kernels fire it and interrupt the
/// worker. The splice's own CQE says which happened.
#[test]
fn a_link_timeout_does_not_take_back_a_splice_in_a_worker() {
    let mut ring = IoUring::new(8).unwrap();
    let (rx, mut tx) = std::io::pipe().unwrap();
    let null = File::options().write(true).open("/dev/null").unwrap();
    let (from, to) = (types::Fd(rx.as_raw_fd()), types::Fd(null.as_raw_fd()));
    let splice = opcode::Splice::new(from, -1, to, -1, 4)
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(1);
    let ts = types::Timespec::new().nsec(50_000_000);
    let timer = opcode::LinkTimeout::new(&ts).build().user_data(2);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        tx.write_all(b"late") // EPIPE is fine: the splice may be over
    });
    unsafe { ring.submission().push_multiple(&[splice, timer]).unwrap() };
    let start = Instant::now();
    let (cqes, _ts) = ex7::complete(&mut ring, 2, ts).unwrap();
    let took = start.elapsed();
    let _ = writer.join().unwrap();
    let pair = (res(&cqes, 1), res(&cqes, 2));
    if uring_book::system::kernel_version() >= Some((6, 15)) {
        assert_eq!(pair, (4, ECANCELED), "{cqes:?}");
        assert!(took >= Duration::from_millis(250), "{took:?}");
    } else {
        let interrupted = pair.0 < 0 && pair.0 != ECANCELED;
        let timer = [-libc::ENOENT, -libc::EALREADY, ETIME].contains(&pair.1);
        let cancelled_queued = pair == (ECANCELED, ETIME);
        assert!(
            pair == (4, ECANCELED) || (interrupted && timer) || cancelled_queued,
            "{cqes:?}"
        );
    }
}

/// On tmpfs, evicting the source from the page cache does nothing: the
/// benchmark says its cold runs are warm instead of reporting them as cold.
#[test]
fn the_benchmark_says_when_its_cold_runs_are_warm() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        return; // no tmpfs at the usual place
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(&[
        "7",
        "bench",
        "--size-mib",
        "1",
        "--repeats",
        "1",
        "--dir",
        d,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("the cold runs below are warm"), "{stdout}");
}
