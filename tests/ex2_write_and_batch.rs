//! Exercise 2: one batch is one io_uring_enter, every user_data comes back
//! exactly once, a full SQ is flushed and retried, short writes are continued.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::process::Command;

use io_uring::IoUring;
use uring_book::ex2_write_and_batch::{
    blocks, out_of_order, read_buffers, run_batch, short_writes, BatchStats, Dir, Op,
};

fn scratch() -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir().unwrap();
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("data"))
        .unwrap();
    (dir, file)
}

/// Each of 0..n exactly once, in whatever order.
fn each_once(stats: &BatchStats, n: usize) {
    let mut seen = stats.order.clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..n as u64).collect::<Vec<_>>(), "{stats:?}");
}

/// Writes `n` blocks through `ring`, reads them back, checks every byte.
fn round_trip(ring: &mut IoUring, n: usize) -> (BatchStats, BatchStats) {
    let (_dir, file) = scratch();
    let mut written = blocks(n, 4096);
    let w = run_batch(ring, Dir::Write, file.as_raw_fd(), &mut written).unwrap();
    let mut read = read_buffers(&written);
    let r = run_batch(ring, Dir::Read, file.as_raw_fd(), &mut read).unwrap();
    for (i, (r, w)) in read.iter().zip(&written).enumerate() {
        assert!(r.buf == w.buf, "block {i} differs");
        assert_eq!(r.done, 4096);
    }
    // The file holds exactly the blocks, each at its offset.
    let on_disk = std::fs::read(_dir.path().join("data")).unwrap();
    let expected: Vec<u8> = written.iter().flat_map(|op| op.buf.clone()).collect();
    assert!(on_disk == expected, "file content differs");
    (w, r)
}

#[test]
fn a_batch_of_sixteen_is_one_io_uring_enter() {
    let mut ring = IoUring::new(16).unwrap();
    let (w, r) = round_trip(&mut ring, 16);
    for s in [&w, &r] {
        assert_eq!(
            (s.ops, s.sqes, s.enters, s.full_sq, s.short),
            (16, 16, 1, 0, 0),
            "{s:?}"
        );
        each_once(s, 16);
    }
}

#[test]
fn a_full_sq_is_submitted_and_the_push_retried() {
    let mut ring = IoUring::new(4).unwrap();
    assert_eq!(ring.params().sq_entries(), 4);
    let (w, r) = round_trip(&mut ring, 16);
    for s in [&w, &r] {
        assert!(s.full_sq > 0, "the full-SQ path was not taken: {s:?}");
        assert!(s.enters > 1, "{s:?}");
        assert_eq!(s.sqes, 16, "{s:?}");
        each_once(s, 16);
    }
}

#[test]
fn the_first_submitted_completes_last() {
    let (_dir, file) = scratch();
    std::fs::write(_dir.path().join("data"), b"something to read").unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let order = out_of_order(&mut ring, &file, 4).unwrap();
    assert_eq!(order.len(), 5, "{order:?}");
    assert_eq!(order.last(), Some(&0), "{order:?}");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
}

#[test]
fn short_writes_into_a_small_pipe_are_continued() {
    let mut ring = IoUring::new(8).unwrap();
    let (stats, sent, got) = short_writes(&mut ring, 64 * 1024, 4096).unwrap();
    assert!(
        got == sent,
        "the reader got {} of {} bytes",
        got.len(),
        sent.len()
    );
    assert!(stats.short > 0, "no short write: {stats:?}");
    // Each short write cost one more SQE, all for the same op.
    assert_eq!(stats.sqes, stats.short + 1, "{stats:?}");
    assert!(stats.order.iter().all(|&u| u == 0), "{stats:?}");
}

#[test]
fn the_exercise_reports_one_enter_per_batch() {
    let out = Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(["2", "--ops", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "writes: 8 ops, 8 SQEs, 0 short\n  io_uring_enter x1, consuming 8 SQEs"
        ),
        "{text}"
    );
    assert!(text.contains("every block read back equals"), "{text}");
    assert!(text.contains("the reader got all 65536 bytes"), "{text}");
}

#[test]
fn zero_ops_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(["2", "--ops", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_failed_op_is_reported_only_after_the_others_in_flight_are_reaped() {
    use std::io::Write;
    // Two reads of one empty pipe: op 0 asks for 0 bytes and completes at
    // once with 0, which run_batch treats as an error; op 1 waits for data,
    // which a thread writes a little later.
    let (rx, tx) = std::io::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        let mut tx = tx;
        std::thread::sleep(std::time::Duration::from_millis(50));
        tx.write_all(b"late").unwrap();
    });
    let mut ring = IoUring::new(8).unwrap();
    let mut ops = vec![Op::new(0, Vec::new()), Op::new(0, vec![0; 4])];
    let err = run_batch(&mut ring, Dir::Read, rx.as_raw_fd(), &mut ops).unwrap_err();
    writer.join().unwrap();
    assert!(err.to_string().contains("Read 0 moved 0 bytes"), "{err:#}");
    // The error came back only after op 1's CQE: its bytes are in its buffer.
    assert_eq!((ops[1].done, &ops[1].buf[..]), (4, &b"late"[..]));
    // Nothing of the batch is left: the next CQE is the next SQE's.
    let nop = io_uring::opcode::Nop::new().build().user_data(99);
    // SAFETY: a NOP has no buffer.
    unsafe { ring.submission().push(&nop) }.unwrap();
    ring.submit_and_wait(1).unwrap();
    let left: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
    assert_eq!(left, [99]);
}

#[test]
fn when_the_ring_keeps_failing_the_buffers_are_leaked_not_freed() {
    // A ring created disabled refuses io_uring_enter (EBADFD) until it is
    // enabled, but push still fills its SQ: run_batch cannot submit what it
    // queued and must not free the buffers those SQEs name.
    let (dir, file) = scratch();
    let mut ring = IoUring::builder().setup_r_disabled().build(8).unwrap();
    let mut written = blocks(16, 4096);
    let expected: Vec<u8> = written[..8].iter().flat_map(|op| op.buf.clone()).collect();
    let err =
        run_batch(&mut ring, Dir::Write, file.as_raw_fd(), &mut written).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("gave up on 8 operations in flight"), "{msg}");
    assert!(msg.contains("os error 77"), "EBADFD: {msg}");
    assert!(
        written.iter().all(|op| op.buf.is_empty()),
        "buffers not leaked"
    );
    // The 8 SQEs are still queued. Once the ring is enabled they run, from
    // memory that was leaked and so is still there: the file gets the blocks.
    ring.submitter().register_enable_rings().unwrap();
    assert_eq!(ring.submit_and_wait(8).unwrap(), 8);
    let res: Vec<i32> = ring.completion().map(|c| c.result()).collect();
    assert_eq!(res, [4096; 8]);
    assert!(std::fs::read(dir.path().join("data")).unwrap() == expected);
}
