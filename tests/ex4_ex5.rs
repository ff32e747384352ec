//! Exercises 4 and 5 as a user runs them: output, files, errors, exit codes.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use uring_book::ex4_tokio_uring_file::{byte_at, CHUNK, CHUNKS};

/// A run that takes longer than this is killed and fails the test.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `uring-book ARGS` to the end, or kills it after TIMEOUT and panics.
fn uring_book(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running uring-book");
    // Threads drain the pipes, so a chatty child cannot block on a full one.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes)
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("uring-book {args:?} did not end within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap().unwrap(),
        stderr: stderr.join().unwrap().unwrap(),
    }
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
    // shutdown(2) ended the second orphaned read: its buffer was freed, and
    // the peer saw the end of the stream.
    let shut = stdout.find("shutting the socket down").expect(&stdout);
    let freed_again = stdout.rfind("buffer is freed").expect(&stdout);
    let eof = stdout.find("the peer reads 0 bytes").expect(&stdout);
    assert!(shut < freed_again && freed_again < eof, "{stdout}");
}

#[test]
fn ex4_missing_directory_is_one_line_and_exit_1() {
    let out = uring_book(&["4", "/nonexistent-dir/file"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: cannot create /nonexistent-dir/file: ENOENT (No such file or directory)"
        ),
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
    assert!(
        stderr.starts_with(&format!(
            "error: cannot bind {addr}: EADDRINUSE (Address already in use): \
             another program listens on port"
        )),
        "{stderr}"
    );
    // The likely culprits and the fix.
    assert!(stderr.contains("the book's container"), "{stderr}");
    assert!(
        stderr.contains("use another port, such as --addr"),
        "{stderr}"
    );
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
