//! `InFlight`, the helper that decides when buffers may go: a CQE it did not
//! ask for is an error and never a completion of one of its operations, a
//! ring with someone else's SQEs queued is refused, and a panic with an
//! operation in flight leaks the buffer instead of freeing it.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use io_uring::{opcode, types, IoUring};
use uring_book::ex2_write_and_batch::{blocks, run_batch, Dir, Op};
use uring_book::in_flight::InFlight;

fn scratch() -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    (dir, file)
}

#[test]
fn a_stray_cqe_is_an_error_not_a_completion() {
    // A NOP submitted and never reaped leaves a CQE with user_data 0 behind,
    // the user_data that op 0 of a naive batch would also carry.
    let mut ring = IoUring::new(8).unwrap();
    let nop = opcode::Nop::new().build().user_data(0);
    // SAFETY: a NOP has no buffer.
    unsafe { ring.submission().push(&nop) }.unwrap();
    ring.submit_and_wait(1).unwrap();

    let (dir, file) = scratch();
    let mut written = blocks(4, 4096);
    let err =
        run_batch(&mut ring, Dir::Write, file.as_raw_fd(), &mut written).unwrap_err();
    assert!(
        err.to_string()
            .contains("a CQE of no operation here: user_data 0x0"),
        "{err:#}"
    );
    // The stray CQE completed nothing: every op still ran to its end, and the
    // error came back only after all of them.
    assert!(written.iter().all(|op| op.done == 4096));
    let expected: Vec<u8> = written.iter().flat_map(|op| op.buf.clone()).collect();
    assert!(std::fs::read(dir.path().join("data")).unwrap() == expected);
}

#[test]
fn a_ring_with_sqes_of_someone_else_queued_is_refused() {
    let mut ring = IoUring::new(8).unwrap();
    let nop = opcode::Nop::new().build().user_data(7);
    // SAFETY: a NOP has no buffer.
    unsafe { ring.submission().push(&nop) }.unwrap();
    let (_dir, file) = scratch();
    let mut written = blocks(2, 4096);
    let err =
        run_batch(&mut ring, Dir::Write, file.as_raw_fd(), &mut written).unwrap_err();
    assert!(
        err.to_string()
            .contains("1 SQEs of an earlier batch queued"),
        "{err:#}"
    );
    assert!(written.iter().all(|op| op.done == 0), "nothing was queued");
}

#[test]
fn a_panic_with_a_read_in_flight_leaks_the_buffer() {
    let (rx, mut tx) = std::io::pipe().unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let mut bufs = [vec![0u8; 4]];
    let addr = bufs[0].as_ptr() as usize;
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let mut flight = InFlight::new(&mut ring, &mut bufs[..]).unwrap();
        let buf = &mut flight.buffers()[0];
        let read = opcode::Read::new(types::Fd(rx.as_raw_fd()), buf.as_mut_ptr(), 4);
        // SAFETY: the buffer is lent to `flight`; the test is about its fate.
        assert!(unsafe { flight.push(read.build(), 0) });
        flight.wait_for(0, |_, _, _| Ok(())); // submit, do not wait
        panic!("a bug while the read is in flight");
    }));
    assert!(caught.is_err());
    assert!(bufs[0].is_empty(), "the buffer was given back, not leaked");

    // The read completes now, into memory that is still allocated.
    tx.write_all(b"late").unwrap();
    ring.submit_and_wait(1).unwrap();
    let res: Vec<i32> = ring.completion().map(|c| c.result()).collect();
    assert_eq!(res, [4]);
    // SAFETY: the leaked allocation is never freed, so it can still be read.
    let landed = unsafe { std::slice::from_raw_parts(addr as *const u8, 4) };
    assert_eq!(landed, b"late");
}

#[test]
fn an_op_without_offset_uses_the_file_position() {
    // Op::stream passes offset -1, which a pipe needs; on a regular file it
    // means the file position, which the write then moves.
    let (dir, mut file) = scratch();
    file.write_all(b"0123456789").unwrap();
    file.seek(SeekFrom::Start(4)).unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let mut ops = vec![Op::stream(b"abc".to_vec())];
    run_batch(&mut ring, Dir::Write, file.as_raw_fd(), &mut ops).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("data")).unwrap(),
        b"0123abc789"
    );
    assert_eq!(file.stream_position().unwrap(), 7);
}
