//! Every solution to "What to try next", run through the binary as a reader
//! runs it (`cargo run -- solution N.M`), with assertions on what it printed.
//! Each solution also checks its own result and fails if it is wrong; these
//! tests check that the output says what the book says it does.

use std::process::Command;

use uring_book::solutions::SOLUTIONS;

const BIN: &str = env!("CARGO_BIN_EXE_uring-book");

/// Runs `uring-book solution ARGS...`: (exit code, stdout, stderr).
fn solution(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("solution")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a solution that must succeed and returns its output.
fn ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = solution(args);
    assert_eq!(code, Some(0), "solution {args:?}:\n{stdout}\n{stderr}");
    stdout
}

/// The line of `text` that starts with `prefix` (after indentation), split
/// into words.
fn row<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn help_lists_every_solution_one_line_each() {
    let (code, stdout, _) = solution(&["--help"]);
    assert_eq!(code, Some(0));
    for s in SOLUTIONS {
        let line = row(&stdout, &format!("{} ", s.id)).join(" ");
        assert!(line.ends_with(s.about), "{line}");
    }
    // The top-level help names the command.
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("solution "));
}

#[test]
fn without_an_exercise_it_lists_them_and_exits_2() {
    let (code, stdout, stderr) = solution(&[]);
    assert_eq!(code, Some(2));
    assert!((stdout + &stderr).contains("1.1"));
}

#[test]
fn an_unknown_solution_is_one_line_and_exit_2() {
    let (code, stdout, stderr) = solution(&["9.9"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: no solution '9.9' (solutions: 1.1, "));
}

/// A bad option of a solution is a usage error, named, before anything runs.
#[test]
fn bad_options_of_a_solution_are_usage_errors() {
    for (args, says) in [
        (
            &["6.1", "--dir", "/nonexistent"][..],
            "/nonexistent: ENOENT",
        ),
        (&["6.2", "--dir", "/proc/self/status"], "is not a directory"),
        (&["7.2", "--size-mib", "0"], "must be at least 1"),
        (&["7.2", "--repeats", "x"], "'x' is not a whole number"),
        (&["8.4", "--conns", "0"], "must be at least 1"),
        (&["8.4", "--repeats", "0"], "must be at least 1"),
    ] {
        let (code, stdout, stderr) = solution(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?} ran: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{stderr}"
        );
    }
}

#[test]
fn one_byte_reads_cost_one_enter_each() {
    let out = ok(&["1.1", "--size-kib", "16"]);
    // --buf-size, reads, io_uring_enter (traced), ns per read, ns per byte
    let one = row(&out, "1 ");
    assert_eq!(one[1..3], ["16385", "16385"], "{out}");
    let big = row(&out, "65536 ");
    assert_eq!(big[1..3], ["2", "2"], "{out}");
    assert!(out.contains("a byte "), "{out}");
}

#[test]
fn two_reads_in_flight_halve_the_calls() {
    let out = ok(&["1.2"]);
    assert!(
        out.contains(
            "two in flight: 194 bytes in 6 reads, 3 rounds of submit_and_wait(2)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "exercise 1:    194 bytes in 5 reads, 5 rounds of submit_and_wait(1)"
        ),
        "{out}"
    );
    assert!(
        out.contains("round 2: user_data=0 res=64, user_data=1 res=2"),
        "{out}"
    );
}

#[test]
fn no_sqarray_works_with_the_crate_and_by_hand() {
    let out = ok(&["1.3"]);
    assert!(
        out.contains("194 bytes in 5 reads, equal to the file"),
        "{out}"
    );
    assert!(
        out.contains("sq_off.array=0, so the old length would be 16 bytes"),
        "{out}"
    );
    assert!(out.contains("its CQE: user_data=0x1234 res=0"), "{out}");
}

#[test]
fn the_traced_calls_match_the_exercises_own_count() {
    let out = ok(&["2.1"]);
    let part5 = out.split("part 5.").nth(1).expect(&out);
    assert!(part5.contains(": 16 calls"), "{out}");
    assert!(part5.contains("(the exercise counted 16 too)"), "{out}");
    assert!(
        part5.contains(", 1, 1, IORING_ENTER_GETEVENTS, NULL, 128) = 1  x16"),
        "{out}"
    );
    let part4 = out.split("part 4.").nth(1).expect(&out);
    assert!(part4.contains("(the exercise counted 8 too)"), "{out}");
}

#[test]
fn a_full_pipeline_waits_for_one_and_batches_wait_for_all() {
    let out = ok(&["2.2"]);
    let (file, pipe) = out.split_once("into a pipe").expect(&out);
    for part in [file, pipe] {
        assert!(
            part.contains("run_batch     io_uring_enter x4  waiting for 0 8 0 8"),
            "{out}"
        );
        // run_pipelined io_uring_enter xN waiting for 0 1 ...
        let words = row(part, "run_pipelined");
        let calls: usize = words[2].trim_start_matches('x').parse().unwrap();
        assert!(calls >= 4, "{out}");
        assert_eq!(words[5..].len(), calls, "{out}");
        assert!(words[5..].iter().all(|w| *w == "0" || *w == "1"), "{out}");
    }
}

#[test]
fn a_short_write_breaks_the_chain() {
    let out = ok(&["2.3"]);
    assert!(out.contains("write: user_data=0 res=50\nread:  user_data=1 res=50"));
    assert!(
        out.contains(
            "write: user_data=0 res=16\nread:  user_data=1 res=-125 (ECANCELED)"
        ),
        "{out}"
    );
}

#[test]
fn the_memlock_limit_is_found_below_16_buffers() {
    let out = ok(&["3.1"]);
    assert!(
        out.contains("--buffers=12: registered, 768 KiB spanning "),
        "{out}"
    );
    assert!(
        out.contains("--buffers=16: registering 1 MiB of buffers failed with ENOMEM"),
        "{out}"
    );
    assert!(
        out.contains("second: registering 512 KiB of buffers failed with ENOMEM"),
        "{out}"
    );
}

#[test]
fn o_direct_reads_the_right_blocks_both_ways() {
    let out = ok(&["3.2", "--reads", "200"]);
    assert!(
        out.contains("Read and ReadFixed both read block 7 back exactly, with O_DIRECT"),
        "{out}"
    );
    assert_eq!(out.matches(" ns/read, spread ").count(), 2, "{out}");
    assert!(out.contains("ReadFixed saved "), "{out}");
}

#[test]
fn o_direct_on_tmpfs_is_refused_with_the_reason() {
    // /dev/shm is a tmpfs on Linux distributions and in Docker containers.
    let (code, stdout, stderr) = solution(&["3.2", "--dir", "/dev/shm"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/dev/shm is on tmpfs"), "{stderr}");
    assert!(stderr.contains("Pass --dir"), "{stderr}");
}

#[test]
fn a_registered_file_outlives_its_descriptor() {
    let out = ok(&["3.3"]);
    assert!(out.contains("F_GETFD) fails with EBADF"), "{out}");
    assert!(
        out.contains("read via types::Fixed(0): user_data=0 res=45"),
        "{out}"
    );
    assert!(
        out.contains("after unregister_files(): user_data=0 res=-9 (EBADF)"),
        "{out}"
    );
}

#[test]
fn the_create_starts_the_worker_named_after_its_thread() {
    let out = ok(&["4.1"]);
    assert_eq!(
        out.matches("before File::create: no worker").count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.matches("after File::create:  iou-wrk-").count(),
        2,
        "{out}"
    );
    assert!(out.contains("its name changed with the thread"), "{out}");
}

#[test]
fn a_small_ring_takes_more_calls_and_reads_everything() {
    let out = ok(&["4.2"]);
    let small = row(&out, "ring of  4 entries:").join(" ");
    assert!(small.contains("16 reads, all as written;"), "{out}");
    assert!(small.ends_with("at most 4 SQEs each"), "{out}");
    assert!(row(&out, "ring of 64 entries:")
        .join(" ")
        .contains("all as written"));
}

#[test]
fn a_dropped_socket_stays_open_under_its_orphaned_read() {
    let out = ok(&["4.3"]);
    assert!(
        out.contains("Shutdown: the peer's read returns 0 bytes, the end of stream"),
        "{out}"
    );
    assert!(
        out.contains("Drop: the peer's read returns EAGAIN (Resource temporarily"),
        "{out}"
    );
}

#[test]
fn the_idle_timeout_closes_the_silent_client_only() {
    let out = ok(&["5.1"]);
    assert!(
        out.contains("silent client: one line echoed, then closed"),
        "{out}"
    );
    assert!(
        out.contains("chatty client: 15 lines 100 ms apart"),
        "{out}"
    );
    assert!(out.contains("server: echoed [6, 120] bytes"), "{out}");
}

#[test]
fn a_512_byte_buffer_takes_eight_reads_a_message() {
    let out = ok(&["5.2"]);
    // buffer 512: N msgs/s (runs A to B), R reads per message
    let small = row(&out, "buffer   512:");
    let reads: f64 = small[small.len() - 4].parse().unwrap();
    assert!(reads >= 8.0, "{out}");
    assert!(row(&out, "buffer 16384:")
        .join(" ")
        .ends_with("reads per message"));
    let verdicts = [
        "as expected",
        "unexpected, rerun",
        "a tie: the runs overlap",
    ];
    assert!(verdicts.iter().any(|v| out.contains(v)), "{out}");
}

#[test]
fn a_client_that_never_reads_meets_backpressure() {
    let out = ok(&["5.3"]);
    assert!(
        out.contains(
            "the client's writes block; the server's Send-Q and memory stay flat"
        ),
        "{out}"
    );
    assert!(out.contains("by hand: ss -tnm 'sport = :"), "{out}");
}

#[test]
fn the_depths_are_measured_on_the_disk() {
    let out = ok(&["6.1"]);
    for depth in ["1:", "4:", "16:"] {
        assert!(row(&out, &format!("depth {depth:>3}")).contains(&"reads/s"));
    }
    assert!(out.contains("--workloads direct --dir /var/tmp"), "{out}");
    let (code, _, stderr) = solution(&["6.1", "--dir", "/dev/shm"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is tmpfs"), "{stderr}");
}

#[test]
fn littles_law_holds_at_every_depth() {
    let out = ok(&["6.2"]);
    for depth in [1, 2, 4, 8, 16, 32, 64] {
        // depth, reads/s, p50, p99, in flight
        let cells = row(&out, &format!("{depth} "));
        assert_eq!(cells.len(), 5, "{out}");
    }
    assert!(out.contains("--depths 1,2,4,8,16,32,64"), "{out}");
}

/// 6.3 and 6.4 need perf; without it they say so.
fn needs_perf(id: &str) -> Option<String> {
    if uring_book::bench::echo::perf_available() {
        return Some(ok(&[id]));
    }
    let (code, _, stderr) = solution(&[id]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("install perf"), "{stderr}");
    None
}

#[test]
fn tokio_makes_two_calls_a_message_or_more() {
    let Some(out) = needs_perf("6.3") else { return };
    for conns in [1, 2, 4, 8, 16] {
        let cells = row(&out, &format!("{conns} "));
        let tokio: f64 = cells[1].parse().unwrap();
        assert!(tokio >= 2.0, "{out}");
    }
}

#[test]
fn the_profile_compares_the_chapters_rows() {
    let Some(out) = needs_perf("6.4") else { return };
    assert!(out.contains("tokio-uring, hottest in run 1:"), "{out}");
    assert!(out.contains("tokio-uring+coop, hottest in run 1:"), "{out}");
    assert!(out.contains("__pv_queued_spin_lock_slowpath: "), "{out}");
    assert!(out.contains("irqentry_exit_to_user_mode: "), "{out}");
}

#[test]
fn a_hard_link_writes_what_the_short_read_never_filled() {
    let out = ok(&["7.1"]);
    assert!(
        out.contains("IO_LINK: read res=4096, write res=-125 (ECANCELED)"),
        "{out}"
    );
    assert!(
        out.contains("IO_HARDLINK: read res=4096, write res=65536"),
        "{out}"
    );
    assert!(
        out.contains("the copy: 65536 bytes, 61440 never read"),
        "{out}"
    );
    assert!(out.contains("after_pair refuses: the write after a short read"));
}

#[test]
fn more_pairs_in_flight_are_compared_with_the_default() {
    let out = ok(&["7.2", "--size-mib", "4", "--repeats", "2"]);
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" KiB ")).collect();
    assert_eq!(rows.len(), 8, "{out}");
    for row in rows {
        let verdict = [
            "exercise 7's default",
            "a tie with the default",
            "x the default",
        ];
        assert!(verdict.iter().any(|v| row.ends_with(v)), "{row}");
    }
}

#[test]
fn a_link_timeout_bounds_a_wait_not_an_fsync() {
    let out = ok(&["7.3"]);
    assert!(
        out.contains("user_data=1 res=0                the fsync"),
        "{out}"
    );
    assert!(
        out.contains("user_data=2 res=-125 (ECANCELED) the timer"),
        "{out}"
    );
    assert!(
        out.contains("user_data=2 res=-62 (ETIME)      the timer"),
        "{out}"
    );
    assert!(
        out.contains("user_data=1 res=-125 (ECANCELED) the recv"),
        "{out}"
    );
}

#[test]
fn a_sync_cancel_leaves_only_the_receives_cqes() {
    let out = ok(&["7.4"]);
    assert_eq!(out.matches("res=-125 (ECANCELED)").count(), 3, "{out}");
    assert!(out.contains("three CQEs, all the receives' own"), "{out}");
}

/// The CQEs-per-buffer column of the table row that starts with `ring`.
fn per_buffer(out: &str, ring: &str) -> f64 {
    row(out, ring).last().unwrap().parse().unwrap()
}

#[test]
fn an_incremental_buffer_serves_many_cqes() {
    let out = ok(&["8.1"]);
    assert_eq!(per_buffer(&out, "4096 x 4 KiB"), 1.0, "{out}");
    assert!(
        per_buffer(&out, "64 x 64 KiB, IOU_PBUF_RING_INC") > 2.0,
        "{out}"
    );
}

#[test]
fn a_bundle_holds_several_buffers_per_cqe() {
    let out = ok(&["8.2"]);
    let words = row(&out, "RecvMulti ");
    assert_eq!(words[1], words[2], "one buffer per CQE: {out}");
    let bundle = row(&out, "RecvMultiBundle");
    assert!(bundle[3].parse::<f64>().unwrap() > 1.5, "{out}");
}

#[test]
fn a_send_deadline_closes_only_the_client_that_stopped_reading() {
    let out = ok(&["8.3"]);
    assert!(
        out.contains("sends cancelled by their deadline: 1\n"),
        "{out}"
    );
    assert!(
        out.contains("the client that does not read: closed "),
        "{out}"
    );
    assert!(out.contains("messages echoed and verified"), "{out}");
}

#[test]
fn a_small_cq_ends_multishot_receives() {
    let out = ok(&["8.4", "--repeats", "2"]);
    assert!(
        out.contains(
            "sq_entries 4096 and cq_entries 64: io_uring_setup fails with EINVAL"
        ),
        "{out}"
    );
    assert_eq!(row(&out, "16384 (default)")[2], "0", "{out}");
    // Whether a CQ of 64 fills depends on timing: either verdict may come.
    let verdicts = [
        "re-arms with a CQ of 64: receives ended for lack of room in every run",
        "re-arms with a CQ of 64: a tie: the CQ of 64 filled in some runs only",
    ];
    assert!(verdicts.iter().any(|v| out.contains(v)), "{out}");
}
