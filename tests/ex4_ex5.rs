//! Exercises 4 and 5 as a user runs them: output, files, errors, exit codes.

use std::process::{Command, Output};

use uring_book::ex4_tokio_uring_file::{byte_at, CHUNK, CHUNKS};

fn uring_book(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(args)
        .output()
        .expect("running uring-book")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ex4_writes_the_file_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let out = uring_book(&["4", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let written = std::fs::read(&path).unwrap();
    assert_eq!(written.len(), CHUNKS * CHUNK);
    assert!(written.iter().enumerate().all(|(i, &b)| b == byte_at(i)));
    for i in 0..CHUNKS {
        let line = format!("chunk {i}: read {CHUNK} bytes at offset {}", i * CHUNK);
        assert!(stdout.contains(&line), "{stdout}");
    }
}

#[test]
fn ex4_dropped_read_keeps_its_buffer_until_the_cqe() {
    let out = uring_book(&["4"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The orphaned read took "first"; its buffer was freed only then.
    let freed = stdout.find("buffer is freed").expect(&stdout);
    let first = stdout.find("peer sends \"first\"").expect(&stdout);
    let second = stdout.find("peer sends \"second\"").expect(&stdout);
    assert!(first < freed && freed < second, "{stdout}");
    assert!(
        stdout.contains("the next read returns \"second\""),
        "{stdout}"
    );
}

#[test]
fn ex4_missing_directory_is_one_line_and_exit_1() {
    let out = uring_book(&["4", "/nonexistent-dir/file"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: creating /nonexistent-dir/file"),
        "{stderr}"
    );
}

#[test]
fn ex5_demo_echoes_and_stops() {
    let out = uring_book(&["5", "--demo", "--quiet"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 3 clients × 3 lines of "client N line M\n" (16 bytes each).
    assert!(
        stdout
            .contains("9 lines echoed and verified; server saw 3 connections, 144 bytes"),
        "{stdout}"
    );
}

#[test]
fn ex5_address_in_use_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = uring_book(&["5", "--addr", &addr]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("binding {addr}")), "{stderr}");
}

#[test]
fn ex5_bad_address_is_a_usage_error() {
    let out = uring_book(&["5", "--addr", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr).lines().count(), 1);
}

#[test]
fn echo_client_without_a_server_says_so() {
    // Bind then drop: a loopback port that nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = uring_book(&[
        "echo-client",
        "--addr",
        &addr,
        "--conns",
        "2",
        "--secs",
        "1",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ECONNREFUSED"), "{stderr}");
}
