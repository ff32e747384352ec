//! Mistakes a reader can make, each refused in one line of the same style:
//! a bad command line names the flag and exits with 2 before anything runs;
//! a failed file or socket operation names the path or address, the errno
//! and its words, and what to do.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_uring-book");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `args` is refused as a usage error that names `flag` and says `why`.
fn refused(args: &[&str], flag: &str, why: &str) {
    let out = run(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stdout, "", "{args:?}: printed before refusing");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.trim_end().ends_with("; see --help"), "{stderr}");
    assert!(
        stderr.contains(flag),
        "{args:?} does not name {flag}: {stderr}"
    );
    assert!(stderr.contains(why), "{args:?}: {stderr}");
}

#[test]
fn a_depth_of_zero_is_refused_up_front() {
    refused(&["6", "--depths", "1,0"], "--depths", "must be at least 1");
    refused(&["6", "--depths", "40000"], "--depths", "at most 32768");
}

#[test]
fn zero_connections_are_refused_before_the_header() {
    refused(
        &["echo-client", "--conns", "0"],
        "--conns",
        "must be at least 1",
    );
}

#[test]
fn a_small_ring_that_is_not_smaller_is_refused() {
    refused(
        &["2", "--ops", "8", "--small-ring", "16"],
        "--small-ring 16",
        "must be smaller than --ops 8",
    );
    // 5 entries become 8: the kernel rounds up to a power of two.
    refused(
        &["2", "--ops", "8", "--small-ring", "5"],
        "--small-ring 5",
        "becomes 8 SQ entries",
    );
}

#[test]
fn registering_more_than_half_the_ram_is_refused() {
    refused(
        &["3", "--buffers", "1024", "--buf-size", "1073741824"],
        "--buffers 1024 x --buf-size 1073741824",
        "more than half of this machine's",
    );
}

#[test]
fn every_count_and_duration_of_zero_is_refused() {
    for (args, flag) in [
        (&["1", "--buf-size", "0"][..], "--buf-size"),
        (&["2", "--ops", "0"], "--ops"),
        (&["3", "--buffers", "0"], "--buffers"),
        (&["6", "--threads", "0"], "--threads"),
        (&["6", "--conns", "0"], "--conns"),
        (&["6", "--sizes", "64,0"], "--sizes"),
        (&["6", "--seconds", "0"], "--seconds"),
        (&["6", "--seconds", "NaN"], "--seconds"),
        (&["6", "--file-size", "0"], "--file-size"),
        (&["echo-client", "--size", "0"], "--size"),
        (&["echo-client", "--secs", "0"], "--secs"),
    ] {
        refused(args, flag, "");
    }
}

#[test]
fn a_port_out_of_range_says_so_with_an_example() {
    refused(
        &["5", "--addr", "1.2.3.4:99999"],
        "--addr",
        "port 99999 is out of range",
    );
    refused(
        &["echo-client", "--addr", "1.2.3.4:99999"],
        "--addr",
        "for example --addr 127.0.0.1:7878",
    );
}

#[test]
fn a_port_alone_asks_for_a_host() {
    refused(
        &["5", "--addr", "7878"],
        "--addr",
        "'7878' is a port without a host; write 127.0.0.1:7878",
    );
}

#[test]
fn localhost_and_a_port_is_accepted() {
    // Nothing listens on a port just released: the client gets as far as
    // connecting to 127.0.0.1, which shows the address was accepted.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("localhost:{port}");
    let out = run(&[
        "echo-client",
        "--addr",
        &addr,
        "--conns",
        "1",
        "--secs",
        "1",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: connecting to 127.0.0.1:{port}: ECONNREFUSED"
        )),
        "{stderr}"
    );
    refused(&["5", "--addr", "localhost"], "--addr", "has no port");
}

/// Binding a port below net.ipv4.ip_unprivileged_port_start without
/// CAP_NET_BIND_SERVICE: the reason and the fix. As root, setpriv drops the
/// capability, as a reader without privileges runs the server.
#[test]
fn a_privileged_port_names_the_reason_and_the_fix() {
    let first_free = uring_book::tcp_addr::unprivileged_port_start();
    if first_free <= 1 {
        eprintln!("skipped: every port is unprivileged here (ip_unprivileged_port_start {first_free})");
        return;
    }
    let addr = format!("127.0.0.1:{}", first_free - 1);
    let out = Command::new("setpriv")
        .args([
            "--inh-caps=-net_bind_service",
            "--bounding-set=-net_bind_service",
        ])
        .args([BIN, "5", "--addr", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot bind {addr}: EACCES (Permission denied): ports below \
             {first_free} are privileged"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("CAP_NET_BIND_SERVICE"), "{stderr}");
    assert!(stderr.contains("Fix: use a port of"), "{stderr}");
}

/// Exercises 1 and 4 name a missing file the same way.
#[test]
fn file_errors_have_one_style() {
    for (args, want) in [
        (
            &["1", "/nonexistent"][..],
            "error: cannot open /nonexistent: ENOENT (No such file or directory)",
        ),
        (
            &["4", "/nonexistent-dir/file"],
            "error: cannot create /nonexistent-dir/file: ENOENT (No such file or directory)",
        ),
        (
            &["6", "--dir", "/nonexistent"],
            "error: --dir /nonexistent: ENOENT (No such file or directory)",
        ),
    ] {
        let out = run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), want, "{args:?}");
    }
}
