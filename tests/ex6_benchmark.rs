//! Exercise 6, the benchmark, run as a user runs it: a tiny run of every
//! workload, checked for sane results (never for speed), and its errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use uring_book::bench::echo::{
    chapter6_servers, perf_available, process_cpu_time, ServerProcess, ECHO_SERVERS,
};
use uring_book::bench::record::{from_json, Record};

const EXE: &str = env!("CARGO_BIN_EXE_uring-book");

fn run(args: &[&str]) -> Output {
    Command::new(EXE).arg("6").args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory on the disk that holds the build, not tmpfs.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn a_tiny_run_of_the_file_workloads_writes_sane_records_charts_and_summary() {
    let dir = disk_dir();
    let json = dir.path().join("run.json");
    let plots = dir.path().join("plots");
    let summary = dir.path().join("summary.md");
    let out = run(&[
        "--file-size=1M",
        "--seconds=0.05",
        "--repeat=2",
        "--depths=1,8",
        "--threads=2",
        "--workloads=seq,cached,direct,tmpfs",
        "--no-fio",
        "--dir",
        dir.path().to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let has = |w: &str, e: &str| records.iter().any(|r| r.workload == w && r.engine == e);
    for (w, e) in [
        ("seq-write", "std"),
        ("seq-write", "io_uring"),
        ("seq-read", "std"),
        ("seq-read", "io_uring"),
        ("rand-read-cached", "std"),
        ("rand-read-cached", "io_uring"),
        ("rand-read-cached", "io_uring+fixed"),
        ("rand-read-cached", "io_uring+sqpoll"),
        ("rand-read-cached", "io_uring+fixed-file"),
        ("rand-read-cached", "io_uring+fixed-bufs"),
        ("rand-read-direct", "io_uring+eager"),
        ("rand-read-direct", "io_uring+pairs"),
        ("rand-read-direct", "io_uring+triples"),
    ] {
        assert!(has(w, e), "no {w} {e} record");
    }
    // Every point ran twice: once in each round.
    for r in records.iter().filter(|r| r.repeat == 0) {
        let again = records.iter().filter(|o| {
            (&o.workload, &o.engine, o.queue_depth)
                == (&r.workload, &r.engine, r.queue_depth)
        });
        let repeats: Vec<u32> = again.map(|o| o.repeat).collect();
        assert_eq!(
            repeats,
            [0, 1],
            "{} {} {}",
            r.workload,
            r.engine,
            r.queue_depth
        );
    }
    for r in &records {
        assert!(r.ops > 0 && r.ops_per_s > 0.0, "{r:?}");
        assert!(r.p50_us.unwrap() <= r.p99_us.unwrap(), "{r:?}");
        assert!(r.machine.cpus >= 1 && !r.machine.kernel.is_empty());
        if r.workload.starts_with("seq") {
            // Every byte of the 1 MiB file moved, in 1 MiB requests: written
            // twice by each engine (in mirrored order), read once.
            let passes = if r.workload == "seq-write" { 2 } else { 1 };
            assert_eq!(r.ops, passes);
            let mb = passes as f64 * 1.048576;
            assert!((r.mb_per_s - mb / r.elapsed_s).abs() < 1e-6, "{r:?}");
        } else {
            assert!(
                (r.mb_per_s - r.ops_per_s * 4096.0 / 1e6).abs() < 1e-6,
                "{r:?}"
            );
        }
    }
    let depths: Vec<u32> = records
        .iter()
        .filter(|r| r.workload == "rand-read-cached" && r.engine == "io_uring")
        .map(|r| r.queue_depth)
        .collect();
    assert_eq!(
        depths,
        [1, 8, 8, 1],
        "the second round runs in mirrored order"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Machine: ") && stdout.contains("File system: "),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(plots.join("rand-read-cached-iops.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("io_uring+fixed"));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("<!-- ANCHOR: rand-read-cached -->"), "{md}");
    assert!(md.contains("| engine | depth |"), "{md}");
    assert!(md.contains("Each point ran 2 times"), "{md}");
    assert!(md.contains(" ±"), "medians with their spread: {md}");
    // Piped, with no progress bar, the run says which part it is in.
    for part in [
        "sequential write, then read, of one file (6 steps)",
        "random 4 KiB reads from the page cache",
        "random 4 KiB reads with O_DIRECT from the device",
        "random 4 KiB reads from a file on tmpfs (2 steps)",
    ] {
        let line = format!("] {part}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with('[') && l.contains(&line)),
            "{part}"
        );
    }
    // The tables come back from the JSON alone, without measuring again.
    let again = run(&["--from-json", json.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let measured: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        measured.join("\n") + "\n"
    );
}

/// What plain `cargo run` prints for exercise 6: a line per part while it
/// runs, then a few ratios in 80 columns, what they are worth, and how to
/// get the rest. Only the file size and the time are made smaller here.
#[test]
fn a_quick_run_is_a_short_summary_that_names_the_full_run() {
    let dir = disk_dir();
    let out = run(&[
        "--quick",
        "--file-size=1M",
        "--seconds=0.05",
        "--conns=3",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().all(|l| l.chars().count() <= 80), "{stdout}");
    // 45 lines, and three more for each note on a missing fio or perf.
    let notes = stdout.lines().filter(|l| l.starts_with("note:")).count();
    assert!(stdout.lines().count() <= 45 + 3 * notes, "{stdout}");
    let flat = stdout.replace('\n', " ");
    for part in [
        "] random 4 KiB reads from the page cache (",
        "] random 4 KiB reads with O_DIRECT from the device (",
        "] TCP echo servers on loopback (5 steps)",
    ] {
        assert!(stdout.contains(part), "{part}: {stdout}");
    }
    assert!(
        !stdout.contains("] sequential"),
        "--quick skips seq: {stdout}"
    );
    // One setting, one value: the time per run given is the time reported.
    assert!(flat.contains("A quick run: one run of 0.05 s of each point."));
    assert!(flat.contains("debug build, whose numbers are not worth quoting"));
    assert!(stdout.contains("  page cache, depth 1 "), "{stdout}");
    assert!(
        stdout.contains("  device (O_DIRECT), depth 32 "),
        "{stdout}"
    );
    assert!(stdout.contains("  uring-multishot "), "{stdout}");
    assert!(
        stdout.contains("\n    cargo run --release -- 6\n"),
        "{stdout}"
    );
    assert!(
        flat.contains("--json FILE") && flat.contains("--plot DIR"),
        "{stdout}"
    );
    // A quick run does not run fio, so it has nothing to say about it.
    assert!(!stdout.contains("fio"), "{stdout}");
    assert!(!stdout.contains("Machine: "), "no tables: {stdout}");
}

/// `--help`, the summary and the fio command agree on the time per point.
#[test]
fn help_and_output_give_the_quick_runs_time_per_point_alike() {
    use uring_book::bench::report::secs;
    use uring_book::ex6_benchmark::QUICK_SECONDS;
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).replace('\n', " ");
    let quick = secs(QUICK_SECONDS);
    assert_eq!(quick, "0.25 s");
    assert!(help.contains(&format!("one run of {quick}")), "{help}");
    assert!(
        help.contains(&format!("--quick: {}]", QUICK_SECONDS)),
        "{help}"
    );
}

/// The full run's output, from the reference run's records: every line fits
/// a terminal of 88 columns (wide tables are split), every sentence of the
/// findings is short, and the last lines say how to get JSON and SVG.
#[test]
fn the_full_output_fits_a_terminal_in_short_sentences() {
    use uring_book::bench::findings;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/bench/reference.json");
    let out = run(&["--from-json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let wide: Vec<&str> = stdout.lines().filter(|l| l.chars().count() > 88).collect();
    assert!(wide.is_empty(), "{wide:#?}");
    let records = from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (anchor, text) in findings::found(&records) {
        for paragraph in text.split("\n\n") {
            let prose: Vec<&str> = paragraph
                .lines()
                .filter(|l| !l.starts_with([' ', '|']))
                .collect();
            for sentence in prose.join(" ").split(". ") {
                let words = sentence.split_whitespace().count();
                assert!(words <= 40, "{anchor}: {words} words: {sentence}");
            }
        }
    }
    for term in [
        "io_uring+eager: ",
        "io_uring+pairs: ",
        "tokio-uring+coop: ",
        "io-wq: ",
    ] {
        assert!(stdout.contains(term), "{term} is not defined");
    }
}

/// Without fio and perf on PATH, the run says in one note each which figures
/// stay empty and how to install the tool.
#[test]
fn missing_fio_and_perf_are_a_note_each_with_the_install() {
    let dir = disk_dir();
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(EXE)
        .args(["6", "--file-size=1M", "--seconds=0.05", "--repeat=1"])
        .args([
            "--workloads=cached,echo",
            "--depths=1",
            "--conns=2",
            "--sizes=64",
        ])
        .args(["--servers=tokio", "--dir", dir.path().to_str().unwrap()])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let notes: Vec<String> = stdout
        .split("\n\n")
        .flat_map(|p| p.split("\nnote: ").map(|n| n.replace('\n', " ")))
        .filter(|n| n.contains("is not installed"))
        .collect();
    assert_eq!(notes.len(), 2, "{stdout}");
    assert!(notes.iter().any(|n| n.contains(
        "fio is not installed, so the file tables have \
        no fio rows and no `vs fio` column. Install it: sudo apt-get install fio"
    )));
    assert!(notes.iter().any(|n| n.contains(
        "perf is not installed, so the echo table's \
        syscalls/msg and switches/msg columns are empty"
    )));
    // The run wrote no files: its last words say how to get them.
    let flat = stdout.replace('\n', " ");
    assert!(flat.contains("Add --json FILE for the records as JSON, --plot DIR for SVG"));
}

#[test]
fn a_directory_that_does_not_exist_is_one_line_and_exit_1() {
    let out = run(&["--dir", "/no/such/dir", "--no-fio"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: --dir /no/such/dir: ENOENT"),
        "{err}"
    );
}

#[test]
fn asking_for_o_direct_reads_on_tmpfs_says_why_not() {
    if !Path::new("/dev/shm").is_dir() {
        return;
    }
    let out = run(&["--dir", "/dev/shm", "--workloads", "direct", "--no-fio"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("tmpfs") && err.contains("--dir"), "{err}");
}

#[test]
fn a_bad_size_is_a_usage_error() {
    let out = run(&["--file-size", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1);
}

/// Every server the benchmark can start (chapter 8's variants too): a
/// process each, found by the address it prints, echoing every byte, its
/// CPU time readable while it runs.
#[test]
fn echo_server_processes_echo_every_byte() {
    for engine in ECHO_SERVERS.iter().map(|s| s.name) {
        let server = ServerProcess::start(Path::new(EXE), engine, None, false).unwrap();
        let mut conns: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let msg: Vec<u8> = (0..4096).map(|j| (i * 7 + j) as u8).collect();
            conn.write_all(&msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            conn.read_exact(&mut back).unwrap();
            assert!(back == msg, "{engine}: the echo differs");
        }
        process_cpu_time(server.pid()).unwrap();
        assert_eq!(server.finish().unwrap(), None);
    }
}

/// Under perf, the counts come from the server's process alone and cover
/// the threads it starts after perf is enabled.
#[test]
fn perf_counts_the_system_calls_of_a_server() {
    if !perf_available() {
        return; // perf is optional: the benchmark says so and counts nothing
    }
    let mut server =
        ServerProcess::start(Path::new(EXE), "std-threads", None, true).unwrap();
    server.enable_counting().unwrap();
    let mut conn = TcpStream::connect(server.addr).unwrap();
    for _ in 0..10 {
        conn.write_all(b"0123456789").unwrap();
        let mut back = [0u8; 10];
        conn.read_exact(&mut back).unwrap();
    }
    drop(conn);
    std::thread::sleep(Duration::from_millis(50));
    server.disable_counting().unwrap();
    let counts = server.finish().unwrap().unwrap();
    // At least accept, and a read and a write per message, on a new thread.
    assert!(counts.syscalls >= 21, "{counts:?}");
    assert!(counts.context_switches >= 1, "{counts:?}");
}

#[test]
fn records_in_the_reference_run_have_the_promised_fields() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/bench/reference.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        panic!("{} is missing: run scripts/regen-output.sh", path.display());
    };
    let records: Vec<Record> = from_json(&text).unwrap();
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r.ops > 0 && !r.engine.is_empty()));
}

/// The book's summary is what the reference run makes: regenerate both with
/// `scripts/regen-bench.sh`, never one without the other.
#[test]
fn the_books_summary_is_what_the_reference_run_generates() {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/bench");
    let text = std::fs::read_to_string(bench.join("reference.json")).unwrap();
    let records = from_json(&text).unwrap();
    let committed = std::fs::read_to_string(bench.join("summary.md")).unwrap();
    let made = uring_book::bench::report::summary_markdown(&records, "");
    // The command line is the one part the records do not hold.
    let without_command = |md: &str| {
        md.split_once("<!-- ANCHOR_END: command -->")
            .unwrap()
            .1
            .to_string()
    };
    assert!(
        without_command(&committed) == without_command(&made),
        "book/src/bench/summary.md is stale: run scripts/regen-bench.sh"
    );
}

/// A tiny echo sweep through the benchmark itself: every server started as
/// its own process, chapter 5's client checking every echoed byte, the
/// servers taking turns from one round to the next.
#[test]
fn a_tiny_echo_run_measures_every_server() {
    let dir = disk_dir();
    let json = dir.path().join("echo.json");
    let out = run(&[
        "--workloads=echo",
        "--conns=3",
        "--sizes=64",
        "--seconds=0.1",
        "--repeat=2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let engines: Vec<&str> = records.iter().map(|r| r.engine.as_str()).collect();
    let servers: Vec<&str> = chapter6_servers().map(|s| s.name).collect();
    // Chapter 8's server is one of chapter 6's; its variants are not.
    assert!(servers.contains(&"uring-multishot"), "{servers:?}");
    assert!(!servers.iter().any(|s| s.starts_with("uring-multishot+")));
    let n = servers.len();
    assert_eq!(engines[..n], servers[..]);
    // The second round starts with the second server.
    assert_eq!(engines[n..], [&servers[1..], &servers[..1]].concat()[..]);
    for r in &records {
        assert_eq!((r.workload.as_str(), r.queue_depth), ("echo", 3));
        assert!(r.ops > 0 && r.cpu_us_per_op.is_some(), "{r:?}");
        assert!(
            (r.mb_per_s - r.ops_per_s * 64.0 / 1e6).abs() < 1e-6,
            "{r:?}"
        );
    }
}

/// With io_uring blocked by a seccomp filter (as Docker's default profile
/// does), the benchmark stops at once with the reason, in one line.
#[test]
fn io_uring_blocked_by_seccomp_is_one_line_and_exit_1() {
    use std::collections::BTreeMap;
    use std::os::unix::process::CommandExt;

    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

    let arch = std::env::consts::ARCH.try_into().unwrap();
    let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .unwrap();
    let program: BpfProgram = filter.try_into().unwrap();
    let dir = disk_dir();
    let mut cmd = Command::new(EXE);
    cmd.args(["6", "--workloads=cached", "--no-fio", "--dir"])
        .arg(dir.path());
    // SAFETY: apply_filter makes two system calls (prctl, seccomp) and
    // allocates nothing, which is all a child may do before exec.
    unsafe {
        cmd.pre_exec(move || {
            seccompiler::apply_filter(&program).map_err(std::io::Error::other)
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: io_uring_setup failed with EPERM"),
        "{err}"
    );
    assert!(err.contains("seccomp"), "{err}");
}

/// The sentences of chapter 6 that state a result without quoting a
/// generated one hold in the committed reference run. Each check names the
/// sentence it backs: when a rerun breaks one, that sentence needs rewriting.
#[test]
fn the_chapters_claims_hold_in_the_reference_run() {
    use uring_book::bench::point::{self, echo_at, find, Point};
    use uring_book::bench::stats::{compare, Verdict};

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/bench/reference.json");
    let records = from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
    let points = point::points(&records);
    let at = |w: &str, e: &str, d: u32| {
        find(&points, w, e, d).unwrap_or_else(|| panic!("no {w} {e} at depth {d}"))
    };
    let cpu = |p: &Point| p.cpu().unwrap();
    let runs = points.iter().map(|p| p.runs.len()).min().unwrap();
    assert!(
        runs >= 3,
        "the reference run has a point with {runs} runs: use --repeat 3"
    );

    let (c, d) = ("rand-read-cached", "rand-read-direct");
    // Recap: "at depth 1 on data already in memory, the work is a copy either
    // way" (io_uring does not win there).
    let (s1, u1) = (at(c, "std", 1), at(c, "io_uring", 1));
    assert_ne!(compare(&u1.ops(), &s1.ops()), Verdict::Higher);
    // "io_uring's bookkeeping costs a fraction of a microsecond per read, a
    // large share of a 4 KiB copy."
    let extra = cpu(u1).median - cpu(s1).median;
    assert!(extra > 0.0 && extra < 1.0, "{extra} µs more per read");
    assert!(extra / cpu(s1).median > 0.2, "{extra} µs is a small share");
    // "Deeper queues change this: ... the syscalls-per-read column falls with
    // the depth."
    let mut plain: Vec<&Point> = points
        .iter()
        .filter(|p| p.workload() == c && p.engine() == "io_uring")
        .collect();
    plain.sort_by_key(|p| p.depth());
    let calls: Vec<f64> = plain.iter().map(|p| p.syscalls().unwrap().median).collect();
    assert!(calls.windows(2).all(|w| w[1] <= w[0]), "{calls:?}");

    // "This is where io_uring earns its reputation."
    let best = points
        .iter()
        .filter(|p| p.workload() == d && p.engine() == "io_uring")
        .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))
        .unwrap();
    assert_eq!(
        compare(&best.ops(), &at(d, "std", 1).ops()),
        Verdict::Higher
    );
    // The pool: "one context switch per read in the switches column", and "One
    // thread with many reads in flight does what otherwise takes a pool of
    // threads, with less CPU per operation."
    for pool in points
        .iter()
        .filter(|p| p.workload() == d && p.engine() == "threads")
    {
        assert!(pool.switches().unwrap() > 0.9, "{} threads", pool.depth());
        if let Some(u) = find(&points, d, "io_uring", pool.depth()) {
            let v = compare(&cpu(u), &cpu(pool));
            assert_eq!(v, Verdict::Lower, "{} threads", pool.depth());
        }
    }
    // "Where our loop falls short, its speed as a program is not the suspect":
    // no more CPU per read than fio where fio did more IOPS.
    for f in points
        .iter()
        .filter(|p| p.workload() == d && p.engine() == "fio-io_uring")
    {
        let u = at(d, "io_uring", f.depth());
        if compare(&u.ops(), &f.ops()) == Verdict::Lower {
            assert_ne!(compare(&cpu(u), &cpu(f)), Verdict::Higher, "{}", f.depth());
        }
    }
    // SQPOLL: "nearly every read costs a sleep and a wakeup of the application
    // thread, one context switch" at depth 1, and the poller's CPU counts.
    assert!(at(c, "io_uring+sqpoll", 1).switches().unwrap() > 0.5);
    let q = at(d, "io_uring+sqpoll", 32);
    assert_eq!(
        compare(&cpu(q), &cpu(at(d, "io_uring", 32))),
        Verdict::Higher
    );

    // "On ext4, cached reads complete inline, inside `io_uring_enter`, and no
    // worker starts."
    for p in points
        .iter()
        .filter(|p| p.workload() == c && p.engine().starts_with("io_uring"))
    {
        assert_eq!(p.io_wq(), Some(0), "{} at depth {}", p.engine(), p.depth());
    }
    // Sequential writes on ext4: "one worker doing the writes in turn".
    let w = points
        .iter()
        .find(|p| p.workload() == "seq-write" && p.engine() == "io_uring")
        .unwrap();
    assert_eq!(w.io_wq(), Some(1));

    // tmpfs: "io_uring sends every buffered read of it straight to an io-wq
    // worker", "two context switches", and "io_uring loses badly".
    let t = "rand-read-tmpfs";
    let (ts, tu) = (at(t, "std", 1), at(t, "io_uring", 1));
    assert!(tu.io_wq().unwrap() >= 1);
    assert!(tu.switches().unwrap() > 1.5);
    assert!(tu.ops().max < 0.5 * ts.ops().min);

    // Echo: "The thread-per-connection server pays a context switch for nearly
    // every message", tokio and tokio-uring "rarely sleep under load" (the
    // sentence names those two; chapter 8's server waits in the kernel on
    // purpose, and its switches are chapter 8's business).
    let echo = points.iter().filter(|p| p.workload() == "echo");
    for p in echo.clone() {
        let switches = p.switches().unwrap();
        match p.engine() {
            "std-threads" => assert!(switches > 0.9, "{switches}"),
            e if e.starts_with("tokio") && p.depth() >= 10 => {
                assert!(switches < 0.1, "{e} {switches}")
            }
            _ => {}
        }
    }
    // "Under load, one `io_uring_enter` can carry the reads and writes of many
    // connections": fewer than one system call per message from 10 on.
    for p in echo
        .clone()
        .filter(|p| p.engine().starts_with("tokio-uring"))
    {
        if p.depth() >= 10 {
            assert!(
                p.syscalls().unwrap().median < 1.0,
                "{} {}",
                p.engine(),
                p.depth()
            );
        }
    }
    // "Fewer system calls are not less work": a load where the plain ring made
    // fewer system calls than tokio but did not use less CPU.
    let fewer_not_less = echo.filter(|p| p.engine() == "tokio-uring").any(|u| {
        let t = echo_at(&points, "tokio", (u.depth(), u.size())).unwrap();
        compare(&u.syscalls().unwrap(), &t.syscalls().unwrap()) == Verdict::Lower
            && compare(&cpu(u), &cpu(t)) != Verdict::Lower
    });
    assert!(fewer_not_less);
}

/// The "At a glance" table that opens chapter 6 names the winners the tie
/// rule gives on the committed records: each winner cell is checked here
/// against `stats::compare`, computed afresh from the reference run.
#[test]
fn the_glance_table_agrees_with_the_records() {
    use uring_book::bench::findings::echo_loads;
    use uring_book::bench::point::{self, echo_at, find, Point};
    use uring_book::bench::stats::{compare, Verdict};

    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/bench");
    let records =
        from_json(&std::fs::read_to_string(bench.join("reference.json")).unwrap())
            .unwrap();
    let points = point::points(&records);
    let summary = std::fs::read_to_string(bench.join("summary.md")).unwrap();
    let glance = summary
        .split_once("<!-- ANCHOR: glance -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- ANCHOR_END: glance -->"))
        .expect("summary.md has the glance table")
        .0;
    // The winner cell of the row whose workload starts with `row`.
    let cell = |row: &str| -> String {
        let line = glance
            .lines()
            .find(|l| l.starts_with(&format!("| {row}")))
            .unwrap_or_else(|| panic!("no row {row}:\n{glance}"));
        line.split(" | ").nth(1).unwrap().to_string()
    };
    let says = |cell: &str, v: Verdict, higher: &str, lower: &str| match v {
        Verdict::Higher => assert!(cell.starts_with(&format!("**{higher}**")), "{cell}"),
        Verdict::Lower => assert!(cell.starts_with(&format!("**{lower}**")), "{cell}"),
        Verdict::Tie => assert!(cell.starts_with("tie"), "{cell}"),
        Verdict::OneRun => panic!("the reference run has single runs"),
    };
    let at = |w: &str, e: &str, d: u32| find(&points, w, e, d).unwrap();
    let only = |w: &str, e: &str| {
        points
            .iter()
            .find(|p| p.workload() == w && p.engine() == e)
            .unwrap()
    };
    let best = |w: &str, e: &str| -> &Point {
        points
            .iter()
            .filter(|p| p.workload() == w && p.engine().starts_with(e))
            .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))
            .unwrap()
    };

    for (row, w) in [
        ("Sequential read", "seq-read"),
        ("Sequential write", "seq-write"),
    ] {
        let v = compare(&only(w, "io_uring").ops(), &only(w, "std").ops());
        says(&cell(row), v, "io_uring", "std");
    }
    let (c, d, t) = ("rand-read-cached", "rand-read-direct", "rand-read-tmpfs");
    for (row, w) in [
        ("Random 4 KiB reads from the page cache", c),
        ("Random 4 KiB reads from tmpfs", t),
    ] {
        let v = compare(&at(w, "io_uring", 1).ops(), &at(w, "std", 1).ops());
        says(&cell(row), v, "io_uring", "std");
    }
    let cached = best(c, "io_uring");
    says(
        &cell("The same, "),
        compare(&cached.ops(), &at(c, "std", 1).ops()),
        "io_uring",
        "std",
    );
    let direct = points
        .iter()
        .filter(|p| p.workload() == d && p.engine() == "io_uring")
        .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))
        .unwrap();
    says(
        &cell("Random 4 KiB O_DIRECT reads"),
        compare(&direct.ops(), &at(d, "std", 1).ops()),
        "io_uring",
        "std",
    );
    let pool = best(d, "threads");
    says(
        &cell("The same: one io_uring thread"),
        compare(&at(d, "io_uring", pool.depth()).ops(), &pool.ops()),
        "io_uring",
        "threads",
    );
    let (q, u) = (at(d, "io_uring+sqpoll", 32), at(d, "io_uring", 32));
    let sqpoll = cell("SQPOLL");
    match compare(&q.ops(), &u.ops()) {
        Verdict::Tie
            if compare(&q.cpu().unwrap(), &u.cpu().unwrap()) == Verdict::Higher =>
        {
            assert!(sqpoll.starts_with("**plain ring**: tied IOPS"), "{sqpoll}")
        }
        v => says(&sqpoll, v, "SQPOLL", "plain ring"),
    }

    // Echo: at each load of 100 and 1000 connections, a server is better
    // than tokio (more messages or less CPU, worse at neither), worse, or
    // even; the cell counts them.
    for (row, server) in [
        (
            "TCP echo, 100 and 1000 connections: chapter 5's",
            "tokio-uring+coop",
        ),
        (
            "TCP echo, 100 and 1000 connections: chapter 8's",
            "uring-multishot",
        ),
    ] {
        let (mut better, mut worse, mut even) = (0, 0, 0);
        for load in echo_loads(&points)
            .into_iter()
            .filter(|l| matches!(l.0, 100 | 1000))
        {
            let (s, tokio) = (
                echo_at(&points, server, load).unwrap(),
                echo_at(&points, "tokio", load).unwrap(),
            );
            let msgs = compare(&s.ops(), &tokio.ops());
            let cpu = compare(&s.cpu().unwrap(), &tokio.cpu().unwrap());
            let up = msgs == Verdict::Higher || cpu == Verdict::Lower;
            let down = msgs == Verdict::Lower || cpu == Verdict::Higher;
            match (up, down) {
                (true, false) => better += 1,
                (false, true) => worse += 1,
                _ => even += 1,
            }
        }
        let text = cell(row);
        if better == 0 && worse == 0 {
            assert_eq!(text, format!("tie at all {even} loads"));
        } else {
            let total = better + worse + even;
            if better > 0 {
                assert!(
                    text.contains(&format!("**{server}** at {better}")),
                    "{text}"
                );
            }
            if worse > 0 {
                assert!(text.contains(&format!("**tokio** at {worse}")), "{text}");
            }
            assert!(text.contains(&format!(" of {total} loads")), "{text}");
        }
    }
}
