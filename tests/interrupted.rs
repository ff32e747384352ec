//! Ctrl-C (SIGINT) or SIGTERM in the middle of an exercise removes the files
//! it created, says so in one line and exits with 128 + the signal's number.
//!
//! Exercises 1 to 4 finish in milliseconds, so they run with
//! `URING_BOOK_HOLD_TEMP_FILES` set: each temporary directory then waits for
//! the signal just before its normal removal, when all its files exist.
//! Exercise 6 runs long enough to be signalled while it measures.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use uring_book::cleanup::HOLD_VAR;

/// Longer than any wait here should take; a broken run fails the test.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Run {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
}

/// Starts `uring-book ARGS` with `$TMPDIR` set to `tmp`.
fn start(args: &[&str], tmp: &Path, hold: bool) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uring-book"));
    cmd.args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if hold {
        cmd.env(HOLD_VAR, "1");
    } else {
        cmd.env_remove(HOLD_VAR);
    }
    let mut child = cmd.spawn().expect("running uring-book");
    let mut stdout = child.stdout.take().unwrap();
    thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Run {
        child,
        lines,
        stderr: Vec::new(),
    }
}

impl Run {
    /// Waits for a line on stderr that starts with `prefix`.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => {
                    self.kill();
                    panic!("no line starting {prefix:?}; stderr: {:?}", self.stderr);
                }
            }
        }
    }

    /// Waits until `ready` holds, polling.
    fn wait_until(&mut self, what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !ready() {
            if Instant::now() > deadline || self.child.try_wait().unwrap().is_some() {
                self.kill();
                panic!("{what} never happened; stderr: {:?}", self.stderr);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the exit; returns its code and every line of stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("no exit after the signal; stderr: {:?}", self.stderr);
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.stderr.extend(self.lines.iter());
        (status.code(), self.stderr)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entries of `dir`, which the run used as its temporary directory.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The size of every file under `path`.
fn bytes_under(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| bytes_under(&e.unwrap().path()))
            .sum()
    } else {
        std::fs::metadata(path).unwrap().len()
    }
}

/// Runs an exercise that holds its temporary directory, checks that the
/// directory holds `file`, signals, and checks that everything is gone.
fn held_then_signalled(args: &[&str], file: &str, signal: libc::c_int) {
    let tmp = tempfile::tempdir().unwrap();
    let mut run = start(args, tmp.path(), true);
    let line = run.wait_for_line("holding ");
    let held = PathBuf::from(line["holding ".len()..].split(" until").next().unwrap());
    assert!(held.starts_with(tmp.path()), "{line}");
    assert!(held.join(file).is_file(), "{args:?}: no {file} in {held:?}");
    let bytes = bytes_under(&held);
    run.signal(signal);
    let (code, stderr) = run.finish();

    assert_eq!(code, Some(128 + signal), "{args:?}: {stderr:?}");
    assert_eq!(
        entries(tmp.path()),
        Vec::<PathBuf>::new(),
        "{args:?} left files"
    );
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    let size = uring_book::system::human_bytes(Some(bytes));
    assert_eq!(
        stderr.last().map(String::as_str),
        Some(
            format!(
                "interrupted by {name}; removed what this run created: {} ({size})",
                held.display()
            )
            .as_str()
        ),
        "{args:?}"
    );
    assert!(
        !stderr.iter().any(|l| l.starts_with("error:")),
        "{stderr:?}"
    );
}

#[test]
fn ex1_removes_its_text_file_on_sigint() {
    held_then_signalled(&["1"], "ex1.txt", libc::SIGINT);
}

#[test]
fn ex2_removes_its_data_file_on_sigterm() {
    held_then_signalled(&["2", "--ops", "8"], "ex2.dat", libc::SIGTERM);
}

#[test]
fn ex3_removes_its_data_file_on_sigint() {
    let args = [
        "3",
        "--buffers",
        "2",
        "--buf-size",
        "4096",
        "--measure-ops",
        "0",
    ];
    held_then_signalled(&args, "ex3.dat", libc::SIGINT);
}

#[test]
fn ex4_removes_its_data_file_on_sigterm() {
    held_then_signalled(&["4"], "ex4.dat", libc::SIGTERM);
}

#[test]
fn ex7_removes_its_source_and_copy_on_sigint() {
    held_then_signalled(&["7", "copy"], "copy", libc::SIGINT);
}

/// A directory on the disk that holds the build, as `--dir` of exercise 6.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// The arguments of exercise 6 with `args`, without fio, writing into `dir`.
fn ex6<'a>(dir: &'a tempfile::TempDir, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["6", "--no-fio", "--dir", dir.path().to_str().unwrap()];
    all.extend_from_slice(args);
    all
}

/// The tmpfs workload's file in /dev/shm goes too, with the run's directory.
#[test]
fn ex6_removes_its_tmpfs_file_and_its_directory_on_sigint() {
    if !Path::new("/dev/shm").is_dir() {
        eprintln!("skipped: no /dev/shm");
        return;
    }
    let (tmp, dir) = (tempfile::tempdir().unwrap(), disk_dir());
    let args = ex6(
        &dir,
        &["--workloads=tmpfs", "--file-size=1M", "--seconds=0.05"],
    );
    let mut run = start(&args, tmp.path(), true);
    let line = run.wait_for_line("holding /dev/shm/uring-bench");
    let held = PathBuf::from(line["holding ".len()..].split(" until").next().unwrap());
    assert_eq!(bytes_under(&held), 1 << 20, "{line}");
    let ours = entries(dir.path());
    assert_eq!(ours.len(), 1, "{ours:?}");
    run.signal(libc::SIGINT);
    let (code, stderr) = run.finish();

    assert_eq!(code, Some(130), "{stderr:?}");
    assert!(!held.exists() && !ours[0].exists(), "{stderr:?}");
    let last = stderr.last().unwrap();
    assert!(last.starts_with("interrupted by SIGINT; removed"), "{last}");
    assert!(
        last.contains(&format!("{} (1 MiB)", held.display())),
        "{last}"
    );
    assert!(last.contains(&ours[0].display().to_string()), "{last}");
}

/// SIGINT while exercise 6 measures random reads removes its test file.
#[test]
fn ex6_removes_its_test_file_mid_measurement_on_sigint() {
    let (tmp, dir) = (tempfile::tempdir().unwrap(), disk_dir());
    let args = [
        "--workloads=cached",
        "--file-size=4M",
        "--seconds=5",
        "--depths=1",
    ];
    let mut run = start(&ex6(&dir, &args), tmp.path(), false);
    let data = || {
        entries(dir.path())
            .first()
            .map(|d| d.join("data"))
            .filter(|d| d.metadata().is_ok_and(|m| m.len() == 4 << 20))
    };
    run.wait_until("the 4 MiB test file", || data().is_some());
    let data = data().unwrap();
    // Well into the first 5-second measurement.
    thread::sleep(Duration::from_millis(300));
    run.signal(libc::SIGINT);
    let (code, stderr) = run.finish();

    assert_eq!(code, Some(130), "{stderr:?}");
    assert_eq!(entries(dir.path()), Vec::<PathBuf>::new(), "{stderr:?}");
    assert_eq!(
        stderr.last().unwrap(),
        &format!(
            "interrupted by SIGINT; removed what this run created: {} (4 MiB)",
            data.parent().unwrap().display()
        )
    );
}

/// SIGTERM while exercise 6 runs the echo workload removes the directories
/// it made in $TMPDIR for perf and its samples, and its servers stop too.
#[test]
fn ex6_removes_the_echo_runs_temporary_files_on_sigterm() {
    let (tmp, dir) = (tempfile::tempdir().unwrap(), disk_dir());
    let args = ["--workloads=echo", "--conns=1", "--sizes=64", "--seconds=5"];
    // The echo run's temporary files are perf's FIFOs: without perf (as in
    // the container) there are none, and the signal must still stop the run
    // and its servers without leaving anything behind.
    let perf = uring_book::bench::echo::perf_available();
    let mut run = start(&ex6(&dir, &args), tmp.path(), false);
    if perf {
        run.wait_until("a temporary directory of the echo run", || {
            !entries(tmp.path()).is_empty()
        });
    } else {
        run.wait_until("an echo server", servers_left);
    }
    thread::sleep(Duration::from_millis(300));
    run.signal(libc::SIGTERM);
    let (code, stderr) = run.finish();

    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new(), "{stderr:?}");
    assert_eq!(entries(dir.path()), Vec::<PathBuf>::new(), "{stderr:?}");
    if perf {
        assert_eq!(code, Some(143), "{stderr:?}");
        let last = stderr.last().unwrap();
        assert!(
            last.starts_with("interrupted by SIGTERM; removed"),
            "{last}"
        );
        assert!(last.contains(&tmp.path().display().to_string()), "{last}");
    } else {
        // Nothing to remove: either the handler says so, or none was needed.
        assert!(code.is_none() || code == Some(143), "{code:?} {stderr:?}");
    }
    // The servers read their stdin from us: they stop when we are gone.
    let deadline = Instant::now() + TIMEOUT;
    while servers_left() {
        assert!(Instant::now() < deadline, "a server outlived the benchmark");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether an echo server of this binary still runs (`uring-book 6 --serve
/// ENGINE`, perhaps under `perf stat`). Only this test starts them here.
fn servers_left() -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let mut cmdline = String::new();
        std::fs::File::open(entry.path().join("cmdline"))
            .and_then(|mut f| f.read_to_string(&mut cmdline))
            .is_ok()
            && cmdline.contains(env!("CARGO_BIN_EXE_uring-book"))
            && cmdline.contains("--serve")
    })
}

/// Every temporary file the program makes comes from `uring_book::cleanup`,
/// so that a signal removes it: src/ names tempfile only there and in unit
/// tests.
#[test]
fn temporary_files_come_from_the_cleanup_module() {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("src/cleanup.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap();
                for (i, line) in code.lines().enumerate() {
                    if line.contains("tempfile::") || line.contains("temp_dir()") {
                        found.push(format!(
                            "{}:{}: {}",
                            path.display(),
                            i + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "use uring_book::cleanup::tempdir() (or tempdir_in, tempfile_in) instead:\n{}",
        found.join("\n")
    );
}
