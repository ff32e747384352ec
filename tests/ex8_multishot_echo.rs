//! Exercise 8 as a user runs it: the demo, the command line exercise 5
//! shares, and its errors. The echo suite (`tests/echo_servers.rs`) checks
//! the server itself against real clients.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `uring-book ARGS` to its end; kills it and fails after a minute.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting uring-book");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("uring-book {args:?} ran for more than a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The pipes hold the little these commands print.
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_demo_echoes_three_clients_and_stops() {
    let out = run(&["8", "--demo"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("listening on 127.0.0.1:"), "{text}");
    // 3 clients × 3 lines of "client N line M\n" (16 bytes each), as exercise 5.
    assert!(
        text.contains("9 lines echoed and verified; server saw 3 connections, 144 bytes"),
        "{text}"
    );
    assert_eq!(
        text.matches(": echoed 48 bytes, closed").count(),
        3,
        "{text}"
    );
}

#[test]
fn the_demo_with_two_threads_adds_up_both_rings() {
    let out = run(&["8", "--demo", "--quiet", "--threads", "2"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("server saw 3 connections, 144 bytes"),
        "{text}"
    );
    assert!(
        !text.contains("echoed 48 bytes"),
        "--quiet logs no connection: {text}"
    );
}

#[test]
fn an_address_in_use_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["8", "--addr", &addr]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("binding {addr}")), "{err}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["8", "--addr", "localhost"][..],
        &["8", "--threads", "0"],
        &["8", "--threads", "lots"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn every_exercise_run_includes_the_demo() {
    let out = run(&["8", "--help"]);
    let help = stdout(&out);
    for flag in ["--addr", "--quiet", "--demo", "--threads"] {
        assert!(help.contains(flag), "{help}");
    }
    let exercise = uring_book::exercises::find("8").expect("exercise 8 is registered");
    assert_eq!(exercise.in_all, ["--demo"]);
}
