//! A security module that refuses io_uring_setup answers EACCES (SELinux
//! does), which is neither seccomp's EPERM nor the sysctl's. A seccomp filter
//! that answers EACCES stands in for the module here: `doctor` and an exercise
//! must each name the cause in one line and exit with status 1.
#![cfg(target_arch = "x86_64")]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

const BIN: &str = env!("CARGO_BIN_EXE_uring-book");

/// Runs `args` with io_uring_setup answered by `errno`, as a child process.
fn with_setup_refused(errno: u32, args: &[&str]) -> Output {
    let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        TargetArch::x86_64,
    )
    .unwrap();
    let program: BpfProgram = filter.try_into().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    // SAFETY: between fork and exec the closure only installs the filter.
    unsafe {
        cmd.pre_exec(move || {
            seccompiler::apply_filter(&program).map_err(std::io::Error::other)
        });
    }
    cmd.output().unwrap()
}

#[test]
fn doctor_names_a_security_module_for_eacces() {
    let out = with_setup_refused(libc::EACCES as u32, &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  io_uring_setup     failed with EACCES"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a Linux security module refused it"),
        "{stdout}"
    );
    assert!(stdout.contains("ausearch"), "{stdout}");
}

#[test]
fn an_exercise_refused_with_eacces_says_why_in_one_line() {
    let out = with_setup_refused(libc::EACCES as u32, &["1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: io_uring_setup failed with EACCES"),
        "{stderr}"
    );
    assert!(stderr.contains("SELinux"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
