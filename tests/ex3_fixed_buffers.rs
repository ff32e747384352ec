//! Exercise 3: fixed buffers and files move the right bytes; too little
//! RLIMIT_MEMLOCK is one clear line with the remedy.

mod common;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::process::Command;

use io_uring::IoUring;
use uring_book::ex3_fixed_buffers::{measure, write_read_fixed, Dir, Variant, VARIANTS};

#[test]
fn write_fixed_then_read_fixed_returns_every_byte() {
    let mut bufs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i + 1; 16 * 1024]).collect();
    let mut ring = IoUring::new(8).unwrap();
    let iovecs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: `bufs` outlives `ring` (declared first, dropped last).
    unsafe { ring.submitter().register_buffers(&iovecs) }.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    ring.submitter()
        .register_files(&[file.as_raw_fd()])
        .unwrap();

    let written = bufs.clone();
    assert_eq!(
        write_read_fixed(&mut ring, &mut bufs, Dir::Write).unwrap(),
        8
    );
    let expected: Vec<u8> = written.concat();
    assert!(std::fs::read(&path).unwrap() == expected, "file differs");

    bufs.iter_mut().for_each(|b| b.fill(0));
    assert_eq!(
        write_read_fixed(&mut ring, &mut bufs, Dir::Read).unwrap(),
        8
    );
    assert!(bufs == written, "buffers read back differ");

    // Every variant of the measurement reads successfully (its timing is not
    // checked: that belongs to the benchmark chapter).
    for variant in VARIANTS {
        measure(&mut ring, &file, &mut bufs[0], variant, 100).unwrap();
    }
}

#[test]
fn the_exercise_round_trips_and_measures() {
    let out = Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(["3", "--measure-ops", "64"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("registered 16 buffers of 64 KiB (1 MiB spanning "),
        "{text}"
    );
    assert!(
        text.contains("every byte equals what was written"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.ends_with("ns/read")).count(),
        4,
        "{text}"
    );
}

#[test]
fn a_small_memlock_limit_without_cap_ipc_lock_is_one_line_with_the_remedy() {
    // The child gets a 64 KiB RLIMIT_MEMLOCK and no CAP_IPC_LOCK, which would
    // exempt it from the limit.
    let bin = common::bin_for_any_user();
    let mut cmd = common::memlock_limited(65536, bin.path.to_str().unwrap());
    let out = common::run_with_own_budget(cmd.arg("3"), common::ring_did_not_fit);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: registering 1 MiB of buffers failed with ENOMEM"),
        "{err}"
    );
    assert!(err.contains("RLIMIT_MEMLOCK (64 KiB)"), "{err}");
    assert!(err.contains("lacks CAP_IPC_LOCK"), "{err}");
    assert!(err.contains("Fix: `ulimit -l"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing is done before the registration"
    );
}

#[test]
fn cap_ipc_lock_inside_a_user_namespace_is_explained() {
    // CAP_IPC_LOCK exempts from RLIMIT_MEMLOCK only in the initial user
    // namespace; a rootless container's does not count.
    let userns = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status();
    if !userns.is_ok_and(|s| s.success()) {
        eprintln!("skipped: this machine does not allow `unshare --user`");
        return;
    }
    // As root, `memlock_limited` switches to a user of its own (whose charges
    // no other test shares) and that user creates the namespace.
    let bin = common::bin_for_any_user();
    let mut cmd = common::memlock_limited(65536, "unshare");
    cmd.args(["--user", "--map-root-user", bin.path.to_str().unwrap(), "3"]);
    let out = common::run_with_own_budget(&mut cmd, common::ring_did_not_fit);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("failed with ENOMEM"), "{err}");
    assert!(err.contains("only inside a user namespace"), "{err}");
    assert!(err.contains("RLIMIT_MEMLOCK (64 KiB)"), "{err}");
}

#[test]
fn a_failing_measurement_reaps_every_read_before_returning() {
    // No buffer is registered, so every ReadFixed fails in its CQE. The
    // error must come back only after all 32 reads of the batch are reaped.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
    let file = File::open(&path).unwrap();
    let mut ring = IoUring::new(32).unwrap();
    ring.submitter()
        .register_files(&[file.as_raw_fd()])
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let err = measure(&mut ring, &file, &mut buf, Variant::ReadFixed, 100).unwrap_err();
    assert!(err.to_string().contains("ReadFixed returned -"), "{err:#}");
    // Nothing of the measurement is left: the next CQE is the next SQE's.
    let nop = io_uring::opcode::Nop::new().build().user_data(99);
    // SAFETY: a NOP has no buffer.
    unsafe { ring.submission().push(&nop) }.unwrap();
    ring.submit_and_wait(1).unwrap();
    let left: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
    assert_eq!(left, [99]);
}

#[test]
fn a_measurement_without_a_buffer_is_an_error_not_a_panic() {
    // After a give-up the buffer is leaked and its Vec left empty.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    let file = File::open(&path).unwrap();
    let mut ring = IoUring::new(8).unwrap();
    let err = measure(&mut ring, &file, &mut Vec::new(), Variant::Read, 10).unwrap_err();
    assert!(
        err.to_string().contains("no buffer to read into"),
        "{err:#}"
    );
}
