//! Chapter 8's benchmark (`uring-book 6 --workloads multishot`) run as the
//! lead reruns it: a quick run writes its JSON and every part the chapter
//! includes, and the same file gives the same text again. Sane results are
//! checked, never speed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use uring_book::bench::echo::ServerProcess;
use uring_book::bench::multishot_bench::{self, pinned_servers, THREADS};
use uring_book::bench::multishot_report::ANCHORS;

const EXE: &str = env!("CARGO_BIN_EXE_uring-book");

fn bench(args: &[&str]) -> Output {
    Command::new(EXE).arg("6").args(args).output().unwrap()
}

#[test]
fn every_server_of_the_chapter_echoes_every_byte() {
    let mut engines = pinned_servers();
    engines.extend(THREADS);
    engines.sort_unstable();
    engines.dedup();
    for engine in engines {
        let server = ServerProcess::start(Path::new(EXE), engine, None, false).unwrap();
        for i in 0..3usize {
            let mut conn = TcpStream::connect(server.addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let msg: Vec<u8> = (0..4096).map(|j| (i * 7 + j) as u8).collect();
            conn.write_all(&msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            conn.read_exact(&mut back).unwrap();
            assert!(back == msg, "{engine}: the echo differs");
        }
        server.finish().unwrap();
    }
}

#[test]
fn a_quick_run_writes_its_json_and_every_part_the_chapter_includes() {
    let dir = tempfile::tempdir().unwrap();
    let (json, summary) = (dir.path().join("ch08.json"), dir.path().join("ch08.md"));
    let out = bench(&[
        "--workloads=multishot",
        "--quick",
        "--json",
        json.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = multishot_bench::from_json(&json).unwrap();
    let servers = pinned_servers().len();
    assert_eq!(run.pinned.len(), servers * run.options.rounds);
    assert!(run.pinned.iter().all(|r| r.record.ops > 0));
    assert_eq!(run.idle.len(), 3);
    assert_eq!(run.threads.len(), THREADS.len() * run.options.rounds);
    let md = std::fs::read_to_string(&summary).unwrap();
    for name in ANCHORS {
        assert!(md.contains(&format!("<!-- ANCHOR: {name} -->")), "{name}");
    }
    // The chapter's text is a function of the JSON alone.
    let again = dir.path().join("again.md");
    let out = bench(&[
        "--workloads=multishot",
        "--from-json",
        json.to_str().unwrap(),
        "--summary",
        again.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&again).unwrap(), md);
}

#[test]
fn multishot_runs_alone() {
    let out = bench(&["--workloads=multishot,echo"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("runs alone"), "{err}");
}

/// The book shows what the committed run makes: a change in the report's
/// wording must come with `scripts/regen-ch08-bench.sh --render`.
#[test]
fn the_chapters_summary_is_what_its_committed_run_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("ch08-summary.md");
    let json = root.join("book/src/bench/ch08.json");
    let out = bench(&[
        "--workloads=multishot",
        "--from-json",
        json.to_str().unwrap(),
        "--summary",
        made.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        std::fs::read_to_string(root.join("book/src/bench/ch08-summary.md")).unwrap();
    assert!(
        committed == std::fs::read_to_string(&made).unwrap(),
        "book/src/bench/ch08-summary.md is stale: run scripts/regen-ch08-bench.sh --render"
    );
}
