//! The seccomp story of chapter 0, checked natively (there is no Docker here).
//!
//! `docker/seccomp-io_uring.json` is compiled to BPF with seccompiler and
//! installed in a child process before it execs: under it io_uring works and
//! what Docker's default profile refuses is still refused. Then a filter that
//! refuses io_uring_setup, as Docker's default does, must make `doctor` and
//! every exercise print the seccomp diagnosis and exit non-zero.
#![cfg(target_arch = "x86_64")]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

const BIN: &str = env!("CARGO_BIN_EXE_uring-book");
const PROFILE: &str = include_str!("../docker/seccomp-io_uring.json");

/// x86_64 numbers of the syscalls the profile names. Names that do not exist
/// on x86_64 (vm86, stime) are skipped, as Docker skips them.
fn syscall_number(name: &str) -> Option<i64> {
    let nr = match name {
        // Three long-gone syscalls that libc no longer names (arch/x86 syscall_64.tbl).
        "create_module" => 174,
        "init_module" => libc::SYS_init_module,
        "finit_module" => libc::SYS_finit_module,
        "delete_module" => libc::SYS_delete_module,
        "query_module" => 178,
        "get_kernel_syms" => 177,
        "kexec_load" => libc::SYS_kexec_load,
        "kexec_file_load" => libc::SYS_kexec_file_load,
        "mount" => libc::SYS_mount,
        "umount2" => libc::SYS_umount2,
        "pivot_root" => libc::SYS_pivot_root,
        "setns" => libc::SYS_setns,
        "unshare" => libc::SYS_unshare,
        "fsopen" => libc::SYS_fsopen,
        "fsconfig" => libc::SYS_fsconfig,
        "fsmount" => libc::SYS_fsmount,
        "fspick" => libc::SYS_fspick,
        "move_mount" => libc::SYS_move_mount,
        "open_tree" => libc::SYS_open_tree,
        "mount_setattr" => libc::SYS_mount_setattr,
        "bpf" => libc::SYS_bpf,
        "perf_event_open" => libc::SYS_perf_event_open,
        "userfaultfd" => libc::SYS_userfaultfd,
        "kcmp" => libc::SYS_kcmp,
        "pidfd_getfd" => libc::SYS_pidfd_getfd,
        "reboot" => libc::SYS_reboot,
        "swapon" => libc::SYS_swapon,
        "swapoff" => libc::SYS_swapoff,
        "acct" => libc::SYS_acct,
        "settimeofday" => libc::SYS_settimeofday,
        "clock_settime" => libc::SYS_clock_settime,
        "syslog" => libc::SYS_syslog,
        "quotactl" => libc::SYS_quotactl,
        "quotactl_fd" => libc::SYS_quotactl_fd,
        "nfsservctl" => libc::SYS_nfsservctl,
        "sysfs" => libc::SYS_sysfs,
        "_sysctl" => libc::SYS__sysctl,
        "ustat" => libc::SYS_ustat,
        "uselib" => libc::SYS_uselib,
        "lookup_dcookie" => libc::SYS_lookup_dcookie,
        "vhangup" => libc::SYS_vhangup,
        "iopl" => libc::SYS_iopl,
        "ioperm" => libc::SYS_ioperm,
        "open_by_handle_at" => libc::SYS_open_by_handle_at,
        "mbind" => libc::SYS_mbind,
        "set_mempolicy" => libc::SYS_set_mempolicy,
        "get_mempolicy" => libc::SYS_get_mempolicy,
        "move_pages" => libc::SYS_move_pages,
        "fanotify_init" => libc::SYS_fanotify_init,
        "migrate_pages" => libc::SYS_migrate_pages,
        "process_madvise" => libc::SYS_process_madvise,
        "sethostname" => libc::SYS_sethostname,
        "setdomainname" => libc::SYS_setdomainname,
        "socket" => libc::SYS_socket,
        // Newer than this libc's list (arch/x86/entry/syscalls/syscall_64.tbl).
        "set_mempolicy_home_node" => 450,
        "lsm_get_self_attr" => 459,
        "lsm_set_self_attr" => 460,
        "lsm_list_modules" => 461,
        "open_tree_attr" => 467,
        "clone" => libc::SYS_clone,
        "clone3" => libc::SYS_clone3,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "io_uring_enter" => libc::SYS_io_uring_enter,
        "io_uring_register" => libc::SYS_io_uring_register,
        "umount" | "stime" | "vm86" | "vm86old" | "clock_settime64" => return None,
        other => panic!("the profile names `{other}`, which this test does not know"),
    };
    Some(nr)
}

/// Compiles a Docker seccomp profile into BPF programs, one per action: a
/// seccompiler filter has a single match action, and stacked filters combine
/// with the most restrictive result winning, as one libseccomp filter would.
fn compile_profile(json: &str) -> Vec<BpfProgram> {
    let profile: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
    let mut by_action: BTreeMap<u32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for entry in profile["syscalls"].as_array().unwrap() {
        assert_eq!(entry["action"], "SCMP_ACT_ERRNO", "{entry}");
        let errno = entry["errnoRet"].as_u64().unwrap() as u32;
        let conditions: Vec<SeccompCondition> = entry["args"]
            .as_array()
            .map(|args| args.iter().map(condition).collect())
            .unwrap_or_default();
        for name in entry["names"].as_array().unwrap() {
            let Some(nr) = syscall_number(name.as_str().unwrap()) else {
                continue;
            };
            let rules = by_action.entry(errno).or_default().entry(nr).or_default();
            if !conditions.is_empty() {
                rules.push(SeccompRule::new(conditions.clone()).unwrap());
            }
        }
    }
    by_action
        .into_iter()
        .map(|(errno, rules)| errno_filter(rules, errno))
        .collect()
}

/// BPF that answers the matching calls with `errno` and allows the rest.
fn errno_filter(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: u32) -> BpfProgram {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        TargetArch::x86_64,
    )
    .unwrap();
    filter.try_into().unwrap()
}

/// One argument comparison, in libseccomp's terms as Docker's JSON has them:
/// for MASKED_EQ, `value` is the mask and `valueTwo` the expected result.
fn condition(arg: &serde_json::Value) -> SeccompCondition {
    let index = arg["index"].as_u64().unwrap() as u8;
    let value = arg["value"].as_u64().unwrap();
    let (op, operand) = match arg["op"].as_str().unwrap() {
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, value),
        "SCMP_CMP_MASKED_EQ" => (
            SeccompCmpOp::MaskedEq(value),
            arg["valueTwo"].as_u64().unwrap(),
        ),
        other => panic!("the profile uses {other}, which this test does not know"),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, operand).unwrap()
}

/// A filter that answers io_uring_setup with `errno`, as Docker's default
/// profile (EPERM) or a kernel without io_uring (ENOSYS) would.
fn refuse_io_uring(errno: u32) -> Vec<BpfProgram> {
    let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
    vec![errno_filter(rules, errno)]
}

/// Runs `cmd` with `filters` installed between fork and exec, for at most 120 s.
fn run_filtered(cmd: &mut Command, filters: Vec<BpfProgram>) -> Output {
    // SAFETY: the closure only makes the prctl and seccomp system calls.
    unsafe {
        cmd.pre_exec(move || {
            for filter in &filters {
                seccompiler::apply_filter(filter).map_err(std::io::Error::other)?;
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn io_uring_works_under_the_shipped_profile() {
    let out = run_filtered(Command::new(BIN).arg("doctor"), compile_profile(PROFILE));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("seccomp            2: a filter is active"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    io_uring_setup     a ring of 8 entries"),
        "{stdout}"
    );
    assert!(stdout.contains("ok    register_buffers"), "{stdout}");
}

#[test]
fn the_profile_still_refuses_what_docker_refuses() {
    // The control: without a filter (not in a container already running this
    // profile), creating a user namespace works.
    if uring_book::system::seccomp_mode() == Some(0) {
        let plain = Command::new("unshare")
            .args(["--user", "true"])
            .output()
            .unwrap();
        assert!(plain.status.success(), "unshare works without a filter");
    }

    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "true"]);
    let out = run_filtered(&mut cmd, compile_profile(PROFILE));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );

    // socket(AF_VSOCK): refused by an argument rule, so other sockets still work.
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import socket\nsocket.socket(socket.AF_INET).close()\nsocket.socket(40)",
    ]);
    let out = run_filtered(&mut cmd, compile_profile(PROFILE));
    assert!(
        text(&out.stderr).contains("PermissionError"),
        "{}",
        text(&out.stderr)
    );

    // Plain fork and exec still work: clone3 gets ENOSYS, libc falls back to clone.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "/bin/echo forked"]);
    let out = run_filtered(&mut cmd, compile_profile(PROFILE));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "forked\n");
}

#[test]
fn doctor_diagnoses_a_filter_that_refuses_io_uring_with_eperm() {
    let out = run_filtered(Command::new(BIN).arg("doctor"), refuse_io_uring(1));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  io_uring_setup     failed with EPERM"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a seccomp filter blocks io_uring"),
        "{stdout}"
    );
    assert!(
        stdout.contains("seccomp=docker/seccomp-io_uring.json"),
        "{stdout}"
    );
}

#[test]
fn doctor_diagnoses_a_filter_that_pretends_io_uring_does_not_exist() {
    let out = run_filtered(Command::new(BIN).arg("doctor"), refuse_io_uring(38));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed with ENOSYS"), "{stdout}");
    assert!(
        stdout.contains("answers io_uring calls with ENOSYS"),
        "{stdout}"
    );
}

#[test]
fn every_exercise_explains_a_seccomp_refusal_in_one_line() {
    assert!(!uring_book::exercises::EXERCISES.is_empty());
    for exercise in uring_book::exercises::EXERCISES {
        let mut cmd = Command::new(BIN);
        cmd.arg(exercise.number).args(exercise.in_all);
        let out = run_filtered(&mut cmd, refuse_io_uring(1));
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "exercise {}: {stderr}",
            exercise.number
        );
        assert!(
            stderr.contains("io_uring_setup failed with EPERM")
                && stderr.contains("a seccomp filter blocks io_uring"),
            "exercise {}: {stderr}",
            exercise.number
        );
        assert!(
            !stderr.contains("panicked"),
            "exercise {}: {stderr}",
            exercise.number
        );
        let errors: Vec<&str> =
            stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "exercise {}: {stderr}", exercise.number);
    }
}
