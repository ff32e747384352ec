//! Exercise 1: every byte comes back, every read has its CQE, errors are one line.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use io_uring::IoUring;
use uring_book::ex1_basic_read::{read_to_end, DEFAULT_TEXT};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uring-book"))
        .args(args)
        .output()
        .expect("run uring-book")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A failure must be exactly one line on stderr, starting with `error:`.
fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// (user_data, res) of every `cqe:` line.
fn cqe_lines(stdout: &str) -> Vec<(u64, i32)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cqe: user_data="))
        .map(|rest| {
            let (ud, rest) = rest.split_once(" res=").unwrap();
            let res = rest.split_once(' ').unwrap().0;
            (ud.parse().unwrap(), res.parse().unwrap())
        })
        .collect()
}

/// Bytes that are not text and differ at every offset a wrong read could hit.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn default_run_prints_the_default_file_and_every_cqe() {
    let out = run(&["1"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains(DEFAULT_TEXT), "{text}");
    let cqes = cqe_lines(&text);
    // 64-byte reads: full ones, one short one, then 0 for end of file.
    let expected = DEFAULT_TEXT.len().div_ceil(64) + 1;
    assert_eq!(cqes.len(), expected, "{text}");
    for (i, (ud, _)) in cqes.iter().enumerate() {
        assert_eq!(*ud, i as u64, "user_data must say which read this is");
    }
    let total: i32 = cqes.iter().map(|c| c.1).sum();
    assert_eq!(total as usize, DEFAULT_TEXT.len());
    assert_eq!(cqes.last().unwrap().1, 0, "the last CQE is EOF");
    assert!(cqes[cqes.len() - 2].1 < 64, "the read before EOF is short");
}

#[test]
fn a_file_many_times_the_buffer_comes_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data = pattern((1 << 20) + 123);
    std::fs::write(&path, &data).unwrap();

    let mut ring = IoUring::new(8).unwrap();
    let (content, cqes) =
        read_to_end(&mut ring, &File::open(&path).unwrap(), 4096).unwrap();
    assert!(content == data, "content differs from the file");
    assert_eq!(cqes.len(), data.len().div_ceil(4096) + 1);
    for (i, cqe) in cqes.iter().enumerate() {
        assert_eq!(cqe.user_data, i as u64);
    }
    assert_eq!(cqes.last().unwrap().res, 0);

    // The binary says the same and summarises instead of printing binary data.
    let out = run(&["1", path.to_str().unwrap(), "--buf-size", "4096"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let line = format!(
        "read {} bytes from {}\nin {} reads",
        data.len(),
        path.display(),
        cqes.len()
    );
    assert!(text.contains(&line), "{text}");
    assert!(
        text.contains("content: not printed (not UTF-8 text)"),
        "{text}"
    );
    assert!(text.contains("more CQEs like these"), "{text}");
}

#[test]
fn a_pipe_that_delivers_in_pieces_is_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap();
        for i in 0..5 {
            w.write_all(format!("piece {i}\n").as_bytes()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let mut ring = IoUring::new(8).unwrap();
    let (content, cqes) =
        read_to_end(&mut ring, &File::open(&fifo).unwrap(), 4096).unwrap();
    writer.join().unwrap();
    let expected: String = (0..5).map(|i| format!("piece {i}\n")).collect();
    assert_eq!(String::from_utf8(content).unwrap(), expected);
    // Every read but the last returned less than asked: all were short.
    assert!(cqes[..cqes.len() - 1]
        .iter()
        .all(|c| c.res > 0 && c.res < 4096));
}

#[test]
fn a_missing_file_is_one_line_naming_enoent() {
    let err = one_error_line(&run(&["1", "/nonexistent/uring-book"]));
    assert!(
        err.contains("cannot open /nonexistent/uring-book: ENOENT"),
        "{err}"
    );
}

#[test]
fn a_directory_fails_in_the_cqe_with_eisdir() {
    let dir = tempfile::tempdir().unwrap();
    let err = one_error_line(&run(&["1", dir.path().to_str().unwrap()]));
    assert!(err.contains("EISDIR"), "{err}");
    assert!(err.contains("in the CQE: res=-21"), "{err}");
}

#[test]
fn an_unreadable_file_is_one_line_naming_eacces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "no").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bin = env!("CARGO_BIN_EXE_uring-book");
    // SAFETY: geteuid cannot fail.
    let out = if unsafe { libc::geteuid() } == 0 {
        // root reads anything through CAP_DAC_OVERRIDE; drop it for the child.
        Command::new("setpriv")
            .args(["--inh-caps=-dac_override,-dac_read_search"])
            .args(["--bounding-set=-dac_override,-dac_read_search", bin, "1"])
            .arg(&path)
            .output()
            .expect("setpriv (util-linux) is needed to run this test as root")
    } else {
        Command::new(bin).arg("1").arg(&path).output().unwrap()
    };
    let err = one_error_line(&out);
    assert!(err.contains("EACCES"), "{err}");
}

#[test]
fn the_raw_ring_moves_heads_and_tails_as_described() {
    let out = run(&["1", "--raw"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
            .split_whitespace()
            .filter(|w| w.starts_with("head=") || w.starts_with("tail="))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // SQ head and tail, then CQ head and tail.
    assert_eq!(line("after setup:"), "head=0 tail=0 head=0 tail=0");
    assert_eq!(line("after pushing a NOP"), "head=0 tail=1 head=0 tail=0");
    assert_eq!(
        line("after io_uring_enter (returned 1)"),
        "head=1 tail=1 head=0 tail=1"
    );
    assert_eq!(
        line("after reaping the CQE:"),
        "head=1 tail=1 head=1 tail=1"
    );
    assert!(text.contains("user_data=0x1234 res=0"), "{text}");
}

#[test]
fn a_zero_buffer_is_a_usage_error() {
    let out = run(&["1", "--buf-size", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn the_raw_ring_draws_each_step_from_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["1", "--raw", "--svg", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    // The text trace and the pictures come from the same run: every head and
    // tail a frame shows is the one the trace printed for that step.
    let steps = [
        ("push", "after pushing a NOP"),
        ("enter", "after io_uring_enter"),
        ("reap", "after reaping the CQE:"),
    ];
    for (name, prefix) in steps {
        let svg =
            std::fs::read_to_string(dir.path().join(format!("ring-after-{name}.svg")))
                .unwrap_or_else(|e| panic!("frame {name}: {e}\n{text}"));
        let doc = roxmltree::Document::parse(&svg).expect("a well-formed frame");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap();
        let numbers: Vec<&str> = line
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("head=").or(w.strip_prefix("tail=")))
            .collect();
        // SQ head, SQ tail, CQ head, CQ tail.
        let drawn = |what: &str, n: &str| {
            let label = format!("{what} = {n}");
            texts
                .iter()
                .any(|t| t.starts_with(&label) && t.contains(" write"))
        };
        for (what, n) in ["SQ head", "SQ tail", "CQ head", "CQ tail"]
            .into_iter()
            .zip(&numbers)
        {
            assert!(drawn(what, n), "{name}: {what}: {line}\n{texts:?}");
        }
        assert!(texts.contains(&"user_data 0x1234"), "{name}: {texts:?}");
    }
    assert!(text.contains("wrote 3 frames"), "{text}");
}

#[test]
fn svg_frames_need_the_raw_ring() {
    let out = run(&["1", "--svg", "/tmp"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
