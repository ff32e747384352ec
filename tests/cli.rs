//! The command line as a user meets it: help, bad arguments, doctor.

use std::process::Command;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_uring-book");

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_exercise_is_one_line_and_exit_2() {
    let (code, stdout, stderr) = run(&["42"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: no exercise or command '42'"),
        "{stderr}"
    );
}

#[test]
fn a_bad_flag_is_one_line_and_exit_2() {
    let (code, _, stderr) = run(&["--frobnicate"]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--frobnicate"), "{stderr}");
}

#[test]
fn help_lists_doctor_and_every_exercise_one_line_each() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("doctor"), "{stdout}");
    for exercise in uring_book::exercises::EXERCISES {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", exercise.number)))
            .unwrap_or_else(|| {
                panic!("exercise {} is not in --help:\n{stdout}", exercise.number)
            });
        assert!(line.contains(exercise.about), "{line}");
    }
}

#[test]
fn every_exercise_has_its_own_help() {
    for exercise in uring_book::exercises::EXERCISES {
        let (code, stdout, _) = run(&[exercise.number, "--help"]);
        assert_eq!(code, Some(0), "exercise {}", exercise.number);
        assert!(stdout.contains(exercise.about), "{stdout}");
    }
}

#[test]
fn doctor_passes_on_a_machine_with_io_uring() {
    let (code, stdout, _) = run(&["doctor"]);
    assert_eq!(code, Some(0), "{stdout}");
    for name in [
        "kernel",
        "io_uring_disabled",
        "seccomp",
        "io_uring_setup",
        "opcodes",
    ] {
        assert!(
            stdout.contains(&format!("ok    {name:<18}")),
            "{name}:\n{stdout}"
        );
    }
    assert!(stdout.contains("RLIMIT_MEMLOCK"), "{stdout}");
    assert!(stdout.contains("RLIMIT_NOFILE"), "{stdout}");
    assert!(
        stdout.ends_with("Everything the book needs is here.\n"),
        "{stdout}"
    );
    assert!(stdout.lines().all(|l| l.len() <= 90), "{stdout}");
}

/// Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK, registering 1 MiB of
/// buffers fails with ENOMEM; with a limit of 0 even io_uring_setup does.
#[test]
fn doctor_explains_a_small_memlock_limit() {
    // `ring_fits`: whether the limit leaves room for the ring, so that a ring
    // refused must be another test's charge (see `run_with_own_budget`).
    let doctor = |limit: u64, ring_fits: bool| {
        let bin = common::bin_for_any_user();
        let mut cmd = common::memlock_limited(limit, bin.path.to_str().unwrap());
        let out = common::run_with_own_budget(cmd.arg("doctor"), |out| {
            ring_fits && common::ring_did_not_fit(out)
        });
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (code, stdout) = doctor(65536, true);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  register_buffers   1 MiB failed with ENOMEM"),
        "{stdout}"
    );
    assert!(stdout.contains("RLIMIT_MEMLOCK (64 KiB)"), "{stdout}");
    assert!(stdout.contains("ulimit -l"), "{stdout}");

    // Kernels 5.12 to 6.13 charge the rings to the memory cgroup instead, so
    // only the others refuse even to create a ring under a limit of 0.
    let version = uring_book::system::kernel_version().unwrap();
    if !((5, 12)..(6, 14)).contains(&version) {
        let (code, stdout) = doctor(0, false);
        assert_eq!(code, Some(1), "{stdout}");
        assert!(
            stdout.contains("FAIL  io_uring_setup     failed with ENOMEM"),
            "{stdout}"
        );
        assert!(
            stdout.contains("charged to RLIMIT_MEMLOCK (0 bytes)"),
            "{stdout}"
        );
    }
}

/// `uring-book 1 | head`: when the reader of the output has gone, the program
/// stops quietly, as `cat` would, instead of panicking in println!.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write to `writer` now fails with EPIPE
    let out = Command::new(BIN).arg("1").stdout(writer).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

/// fio and perf are optional: without them doctor warns, says what the
/// benchmark loses and how to install them, and still passes.
#[test]
fn doctor_names_what_missing_fio_and_perf_cost() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("doctor")
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for tool in ["fio", "perf"] {
        assert!(
            stdout.contains(&format!(
                "warn  {tool:<18} not installed (optional: the book runs without it)"
            )),
            "{stdout}"
        );
    }
    let flat = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("no fio rows and no `vs fio` column"),
        "{flat}"
    );
    assert!(
        flat.contains("Install it: sudo apt-get install fio"),
        "{flat}"
    );
    assert!(
        flat.contains("syscalls/msg and switches/msg columns are empty"),
        "{flat}"
    );
    assert!(
        flat.contains("Install it: sudo apt-get install linux-perf"),
        "{flat}"
    );
    assert!(stdout.lines().all(|l| l.len() <= 90), "{stdout}");
    assert!(
        stdout.ends_with("Everything the book needs is here.\n"),
        "{stdout}"
    );
}
