//! The seccomp story of the book's Appendix A, checked natively and in the container.
//!
//! `docker/seccomp-io_uring.json` is Docker's default profile with io_uring
//! allowed. Here it is compiled to BPF with seccompiler and installed in a
//! child process before it execs: under it io_uring works, what Docker's
//! default refuses ([`DOCKER_REFUSES`] and the argument rules) is refused
//! with EPERM, and every other x86_64 system call is allowed. Inside the
//! book's container (docker-compose.yml sets `URING_BOOK_SECCOMP_PROFILE`),
//! the same calls are made under no filter of the test's own, so the
//! refusals seen are Docker's. Then a filter that refuses io_uring_setup, as
//! Docker's default does, must make `doctor` and every exercise print the
//! seccomp diagnosis and exit 1.
#![cfg(target_arch = "x86_64")]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

const BIN: &str = env!("CARGO_BIN_EXE_uring-book");
const PROFILE: &str = include_str!("../docker/seccomp-io_uring.json");

/// The x86_64 system calls that Docker's default seccomp profile refuses to a
/// container with Docker's default capabilities, whatever their arguments:
/// those on none of its allow rules, in moby/profiles `seccomp/default.json`
/// at commit 02e898b. `personality`, `socket` and `clone` it refuses for some
/// arguments only ([`PERSONALITIES`], [`DOCKER_REFUSED_FAMILIES`],
/// [`NAMESPACE_FLAGS`]); `clone3` gets ENOSYS; io_uring, refused since Docker
/// 25.0, is what the book's profile allows.
const DOCKER_REFUSES: &[&str] = &[
    "syslog",
    "uselib",
    "ustat",
    "sysfs",
    "vhangup",
    "pivot_root",
    "_sysctl",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "create_module",
    "init_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    "quotactl",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "lookup_dcookie",
    "clock_settime",
    "vserver",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "kexec_load",
    "add_key",
    "request_key",
    "keyctl",
    "migrate_pages",
    "unshare",
    "move_pages",
    "perf_event_open",
    "fanotify_init",
    "open_by_handle_at",
    "setns",
    "kcmp",
    "finit_module",
    "kexec_file_load",
    "bpf",
    "userfaultfd",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_getfd",
    "process_madvise",
    "mount_setattr",
    "quotactl_fd",
    "set_mempolicy_home_node",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "open_tree_attr",
    "file_getattr",
    "file_setattr",
];

/// The socket families below 46 that Docker refuses: DECnet, Econet, ATM SVC,
/// IrDA, WANPIPE, ISDN, CAIF, ALG, VSOCK. It refuses 46 and above too.
const DOCKER_REFUSED_FAMILIES: &[u64] = &[12, 19, 20, 23, 25, 34, 37, 38, 40];

/// The personality() arguments Docker allows: PER_LINUX, PER_LINUX32,
/// UNAME26, both, and the query.
const PERSONALITIES: &[u64] = &[0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// clone() flags that create a namespace, which Docker refuses without
/// CAP_SYS_ADMIN (linux/sched.h).
const NAMESPACE_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// The capabilities Docker gives a container by default (moby's
/// `oci/caps/defaults.go`): the profile's `includes`/`excludes` by
/// capability are evaluated against these.
const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// x86_64 system call numbers by name: the kernel headers' table (Linux 6.1
/// in Debian 12's linux-libc-dev, which its C toolchain pulls in), and the
/// calls added since, from arch/x86/entry/syscalls/syscall_64.tbl.
fn syscall_table() -> BTreeMap<String, i64> {
    // Debian's multiarch path, then the one other distributions use.
    const HEADERS: [&str; 2] = [
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "/usr/include/asm/unistd_64.h",
    ];
    let header = HEADERS
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_else(|| {
            panic!("no {} (the kernel headers: linux-libc-dev)", HEADERS[1])
        });
    let mut table: BTreeMap<String, i64> = header
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("#define __NR_")?.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.parse().ok()?))
        })
        .collect();
    let newer = [
        ("uretprobe", 335),
        ("cachestat", 451),
        ("fchmodat2", 452),
        ("map_shadow_stack", 453),
        ("futex_wake", 454),
        ("futex_wait", 455),
        ("futex_requeue", 456),
        ("statmount", 457),
        ("listmount", 458),
        ("lsm_get_self_attr", 459),
        ("lsm_set_self_attr", 460),
        ("lsm_list_modules", 461),
        ("mseal", 462),
        ("setxattrat", 463),
        ("getxattrat", 464),
        ("listxattrat", 465),
        ("removexattrat", 466),
        ("open_tree_attr", 467),
        ("file_getattr", 468),
        ("file_setattr", 469),
    ];
    for (name, nr) in newer {
        table.insert(name.to_string(), nr);
    }
    table
}

/// Arguments that make the call fail harmlessly (EFAULT, EBADF, EINVAL, or
/// ENOSYS for a call the kernel no longer has) or do nothing, should a filter
/// let it through: the probes below must never mount, reboot or load a module.
fn harmless_args(name: &str) -> [u64; 6] {
    const NONE: u64 = u64::MAX; // fd -1, pid -1, or flags no kernel accepts
    match name {
        // A NULL path or buffer: EFAULT (or EPERM first, without the capability).
        "create_module" | "get_kernel_syms" | "query_module" | "init_module"
        | "delete_module" | "mount" | "umount2" | "pivot_root" | "fsopen" | "swapon"
        | "swapoff" | "perf_event_open" | "clock_settime" | "nfsservctl" | "_sysctl"
        | "uselib" | "lookup_dcookie" | "vhangup" | "add_key" | "request_key"
        | "getpmsg" | "putpmsg" | "afs_syscall" | "tuxcall" | "security" | "vserver"
        | "kcmp" | "quotactl" | "ustat" | "lsm_list_modules" | "unshare" => [0; 6],
        // A bad file descriptor first: EBADF.
        "finit_module" | "setns" | "fsconfig" | "fsmount" | "fspick" | "move_mount"
        | "open_tree" | "open_tree_attr" | "mount_setattr" | "pidfd_getfd"
        | "quotactl_fd" | "process_madvise" | "open_by_handle_at" | "file_getattr"
        | "file_setattr" => [NONE, NONE, 0, 0, 0, 0],
        // Flags or modes that no kernel accepts: EINVAL.
        "kexec_load" => [0, 0, 0, NONE, 0, 0],
        "kexec_file_load" => [NONE, NONE, 0, 0, NONE, 0],
        "bpf" | "userfaultfd" | "fanotify_init" | "syslog" | "sysfs"
        | "set_mempolicy" => [NONE, 0, 0, 0, 0, 0],
        "mbind" => [0, 0, NONE, 0, 0, 0],
        "get_mempolicy" => [0, 0, 0, 0, NONE, 0],
        "move_pages" => [0, 0, 0, 0, 0, NONE],
        "migrate_pages" => [NONE, 0, 0, 0, 0, 0],
        "set_mempolicy_home_node" => [0, 0, 0, 1, 0, 0],
        "lsm_get_self_attr" | "lsm_set_self_attr" => [0, 0, 0, NONE, 0, 0],
        "keyctl" => [0xffff, 0, 0, 0, 0, 0],
        "iopl" => [4, 0, 0, 0, 0, 0],
        "ioperm" => [0x10000, 1, 0, 0, 0, 0],
        // A bad pointer where NULL would mean "switch accounting off".
        "acct" | "settimeofday" => [1, 0, 0, 0, 0, 0],
        // No LINUX_REBOOT_MAGIC: EINVAL.
        "reboot" => [0; 6],
        // A name longer than any host name: EINVAL.
        "sethostname" | "setdomainname" => [0, NONE, 0, 0, 0, 0],
        other => panic!("no harmless arguments for `{other}`"),
    }
}

/// One system call a probe makes, and the errno expected (0: success).
#[derive(Debug, Clone)]
struct Call {
    what: String,
    nr: i64,
    args: [u64; 6],
    errno: i32,
}

/// A call for every refusal of Docker's default profile, each with harmless
/// arguments, and a few calls that must still work.
fn refused_and_allowed_calls() -> Vec<Call> {
    let table = syscall_table();
    let call = |what: String, nr: i64, args: [u64; 6], errno: i32| Call {
        what,
        nr,
        args,
        errno,
    };
    let mut calls: Vec<Call> = DOCKER_REFUSES
        .iter()
        .map(|name| {
            call(
                name.to_string(),
                table[*name],
                harmless_args(name),
                libc::EPERM,
            )
        })
        .collect();
    // A stream socket of each refused family; allowed ones are closed again.
    for family in DOCKER_REFUSED_FAMILIES.iter().copied().chain([46, 1000]) {
        let args = [family, 1, 0, 0, 0, 0];
        calls.push(call(
            format!("socket({family})"),
            libc::SYS_socket,
            args,
            libc::EPERM,
        ));
    }
    for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
        let args = [family as u64, 1, 0, 0, 0, 0];
        calls.push(call(format!("socket({family})"), libc::SYS_socket, args, 0));
    }
    // ADDR_NO_RANDOMIZE, as `setarch -R` asks: refused. The query is allowed.
    let personality = libc::SYS_personality;
    calls.push(call(
        "personality(0x40000)".into(),
        personality,
        [0x40000, 0, 0, 0, 0, 0],
        1,
    ));
    calls.push(call(
        "personality(query)".into(),
        personality,
        [0xffff_ffff, 0, 0, 0, 0, 0],
        0,
    ));
    // With CLONE_SIGHAND but not CLONE_VM, which the kernel rejects (EINVAL)
    // before it creates anything, should the filter let it through.
    for flag in NAMESPACE_FLAGS {
        let args = [flag | 0x800, 0, 0, 0, 0, 0];
        calls.push(call(
            format!("clone({flag:#x})"),
            libc::SYS_clone,
            args,
            libc::EPERM,
        ));
    }
    // Too small for struct clone_args: EINVAL, should the filter let it through.
    calls.push(call(
        "clone3".into(),
        libc::SYS_clone3,
        [0; 6],
        libc::ENOSYS,
    ));
    // A number no kernel has assigned yet: refused like any call on no rule.
    calls.push(call("syscall 1000".into(), 1000, [0; 6], libc::EPERM));
    calls
}

/// Makes each call in a child process, under `filters`, and returns the
/// errno of each (0 for success). The child calls setsid() first, so that a
/// vhangup() let through has no terminal to hang up, then execs `true`.
fn probe(calls: &[Call], filters: Vec<BpfProgram>) -> Vec<i32> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors, owned below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are new and owned by nothing else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), fds[1]) };
    let list: Vec<(i64, [u64; 6])> = calls.iter().map(|c| (c.nr, c.args)).collect();
    let mut cmd = Command::new("true");
    // SAFETY: between fork and exec the closure makes system calls only.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            for filter in &filters {
                seccompiler::apply_filter(filter).map_err(std::io::Error::other)?;
            }
            for (nr, a) in &list {
                let ret = libc::syscall(*nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                let errno = if ret < 0 {
                    *libc::__errno_location()
                } else {
                    if *nr == libc::SYS_socket {
                        libc::close(ret as i32);
                    }
                    0
                };
                libc::write(write_end, (&raw const errno).cast(), 4);
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    // SAFETY: the write end is ours; the child's copy closed at exec.
    drop(unsafe { OwnedFd::from_raw_fd(write_end) });
    assert!(status.success(), "the probe exited with {status}");
    let mut bytes = Vec::new();
    std::fs::File::from(read_end)
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes.len(), 4 * calls.len(), "the probe made every call");
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
        .collect()
}

/// The calls whose errno differs from the expected one, for a failure
/// message that names each of them.
fn wrong_answers(calls: &[Call], errnos: &[i32]) -> Vec<String> {
    calls
        .iter()
        .zip(errnos)
        .filter(|(call, errno)| **errno != call.errno)
        .map(|(call, errno)| {
            let got = std::io::Error::from_raw_os_error(*errno);
            format!(
                "{}: want errno {}, got {errno} ({got})",
                call.what, call.errno
            )
        })
        .collect()
}

/// Whether a rule applies in a container with Docker's default capabilities
/// on this kernel and on x86_64, as Docker decides from its `includes` and
/// `excludes`.
fn applies(entry: &serde_json::Value) -> bool {
    let caps = |filter: &serde_json::Value| -> Vec<String> {
        filter["caps"]
            .as_array()
            .map(|caps| {
                caps.iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let arches = |filter: &serde_json::Value| -> Vec<String> {
        filter["arches"]
            .as_array()
            .map(|a| a.iter().map(|a| a.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let include = &entry["includes"];
    let exclude = &entry["excludes"];
    let has = |cap: &String| DOCKER_CAPS.contains(&cap.as_str());
    let kernel = uring_book::system::parse_version(&uring_book::system::kernel_release());
    let min_kernel = include["minKernel"]
        .as_str()
        .map(|v| uring_book::system::parse_version(v).unwrap());
    // Docker skips a rule unless the container holds every capability it
    // includes, and skips it if the container holds any it excludes.
    caps(include).iter().all(has)
        && !caps(exclude).iter().any(has)
        && (arches(include).is_empty() || arches(include).iter().any(|a| a == "amd64"))
        && !arches(exclude).iter().any(|a| a == "amd64")
        && min_kernel.is_none_or(|min| kernel.is_some_and(|k| k >= min))
}

/// The rules that apply on x86_64 in a default container, by action: the
/// allowed system calls with their argument conditions (none: any
/// arguments), and the ones answered with an errno of their own.
struct Rules {
    default_errno: u32,
    allow: BTreeMap<i64, Vec<Vec<SeccompCondition>>>,
    errno: BTreeMap<u32, Vec<i64>>,
}

fn rules() -> Rules {
    let profile: serde_json::Value = serde_json::from_str(PROFILE).unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let table = syscall_table();
    let mut rules = Rules {
        default_errno: profile["defaultErrnoRet"].as_u64().unwrap() as u32,
        allow: BTreeMap::new(),
        errno: BTreeMap::new(),
    };
    for entry in profile["syscalls"].as_array().unwrap() {
        if !applies(entry) {
            continue;
        }
        let conditions: Vec<SeccompCondition> = entry["args"]
            .as_array()
            .map(|args| args.iter().map(condition).collect())
            .unwrap_or_default();
        for name in entry["names"].as_array().unwrap() {
            // Names of other architectures (chown32, socketcall) are skipped, as
            // libseccomp skips them on x86_64.
            let Some(&nr) = table.get(name.as_str().unwrap()) else {
                continue;
            };
            match entry["action"].as_str().unwrap() {
                "SCMP_ACT_ALLOW" => {
                    rules.allow.entry(nr).or_default().push(conditions.clone());
                }
                "SCMP_ACT_ERRNO" => {
                    assert!(conditions.is_empty(), "{entry}");
                    let errno = entry["errnoRet"].as_u64().unwrap() as u32;
                    rules.errno.entry(errno).or_default().push(nr);
                }
                other => {
                    panic!("the profile uses {other}, which this test does not know")
                }
            }
        }
    }
    rules
}

/// The profile as BPF programs to install in this order: the allow-list,
/// answering every other call with the default errno, then one filter per
/// errno of its own. The kernel runs the last-installed filter first and,
/// between equally strong answers (two errnos), keeps the first it sees.
fn compile_profile() -> Vec<BpfProgram> {
    let rules = rules();
    let allow: BTreeMap<i64, Vec<SeccompRule>> = rules
        .allow
        .into_iter()
        .map(|(nr, alternatives)| {
            // Any unconditional rule allows the call whatever its arguments.
            if alternatives.iter().any(|c| c.is_empty()) {
                return (nr, Vec::new());
            }
            let rules = alternatives
                .into_iter()
                .map(|c| SeccompRule::new(c).unwrap())
                .collect();
            (nr, rules)
        })
        .collect();
    let mut filters = vec![bpf(
        allow,
        SeccompAction::Errno(rules.default_errno),
        SeccompAction::Allow,
    )];
    for (errno, calls) in rules.errno {
        let matched = calls.into_iter().map(|nr| (nr, Vec::new())).collect();
        filters.push(bpf(
            matched,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
        ));
    }
    filters
}

fn bpf(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> BpfProgram {
    let filter =
        SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).unwrap();
    filter.try_into().unwrap()
}

/// One argument comparison, in libseccomp's terms as Docker's JSON has them:
/// for MASKED_EQ, `value` is the mask and `valueTwo` the expected result.
fn condition(arg: &serde_json::Value) -> SeccompCondition {
    let index = arg["index"].as_u64().unwrap() as u8;
    let value = arg["value"].as_u64().unwrap();
    let (op, operand) = match arg["op"].as_str().unwrap() {
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, value),
        "SCMP_CMP_MASKED_EQ" => (
            SeccompCmpOp::MaskedEq(value),
            arg["valueTwo"].as_u64().unwrap_or(0),
        ),
        other => panic!("the profile uses {other}, which this test does not know"),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, operand).unwrap()
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

/// A filter that answers io_uring_setup with `errno`, as Docker's default
/// profile (EPERM) or a kernel without io_uring (ENOSYS) would.
fn refuse_io_uring(errno: u32) -> Vec<BpfProgram> {
    let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
    vec![bpf(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
    )]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether the profile's rules for `name` allow a call whose first argument
/// is `arg0`, evaluated from the JSON as libseccomp would.
fn allows_arg0(name: &str, arg0: u64) -> bool {
    let profile: serde_json::Value = serde_json::from_str(PROFILE).unwrap();
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "SCMP_ACT_ALLOW" && applies(entry))
        .filter(|entry| entry["names"].as_array().unwrap().iter().any(|n| n == name))
        .any(|entry| {
            let Some(args) = entry["args"].as_array() else {
                return true;
            };
            args.iter().all(|arg| {
                assert_eq!(arg["index"], 0, "{entry}");
                let value = arg["value"].as_u64().unwrap();
                match arg["op"].as_str().unwrap() {
                    "SCMP_CMP_EQ" => arg0 == value,
                    "SCMP_CMP_LT" => arg0 < value,
                    "SCMP_CMP_MASKED_EQ" => {
                        arg0 & value == arg["valueTwo"].as_u64().unwrap_or(0)
                    }
                    other => panic!("the profile uses {other}"),
                }
            })
        })
}

#[test]
fn the_profile_refuses_what_docker_refuses_by_argument() {
    for family in 0..64 {
        let docker = !DOCKER_REFUSED_FAMILIES.contains(&family) && family < 46;
        assert_eq!(
            allows_arg0("socket", family),
            docker,
            "socket family {family}"
        );
    }
    let others = [1, 0x40000, 0x40_0000, 0x20001, 0xffff_fffe, u64::MAX];
    for persona in PERSONALITIES.iter().chain(&others) {
        let docker = PERSONALITIES.contains(persona);
        assert_eq!(allows_arg0("personality", *persona), docker, "{persona:#x}");
    }
    let fork = 0x11; // SIGCHLD, as fork() asks
    let thread = 0x3d0f00; // CLONE_VM | CLONE_FS | ... | CLONE_SETTLS, as a thread
    assert!(allows_arg0("clone", fork) && allows_arg0("clone", thread));
    for flag in NAMESPACE_FLAGS {
        assert!(!allows_arg0("clone", fork | flag), "clone({flag:#x})");
    }
}

#[test]
fn the_profile_refuses_what_docker_refuses_and_allows_the_rest() {
    let rules = rules();
    let table = syscall_table();
    let by_argument = ["socket", "personality", "clone"];
    let mut wrong = Vec::new();
    for (name, nr) in &table {
        let refused = DOCKER_REFUSES.contains(&name.as_str());
        let allowed = rules
            .allow
            .get(nr)
            .is_some_and(|r| r.iter().any(|c| c.is_empty()));
        let own_errno = rules.errno.values().any(|calls| calls.contains(nr));
        let ok = match name.as_str() {
            "clone3" => own_errno && !allowed,
            name if by_argument.contains(&name) => {
                !allowed && rules.allow.contains_key(nr)
            }
            _ => allowed != refused && !own_errno,
        };
        if !ok {
            wrong.push(format!(
                "{name}: Docker refuses it: {refused}; allowed: {allowed}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(
            rules.allow[&table[name]][0].is_empty(),
            "{name} is not allowed"
        );
    }
}

#[test]
fn every_refusal_is_eperm_and_io_uring_works_under_the_profile() {
    let calls = refused_and_allowed_calls();
    let errnos = probe(&calls, compile_profile());
    let wrong = wrong_answers(&calls, &errnos);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let out = run_filtered(Command::new(BIN).arg("doctor"), compile_profile());
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
    // As in every container: the report must still fit the book's page.
    assert!(stdout.lines().all(|l| l.len() <= 90), "{stdout}");
}

#[test]
fn fork_and_exec_still_work_under_the_profile() {
    // clone3 gets ENOSYS, and libc falls back to clone without namespace flags.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "/bin/echo forked"]);
    let out = run_filtered(&mut cmd, compile_profile());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "forked\n");
}

/// In the book's container, Docker itself applied the profile: the same calls,
/// under no filter of this test's own, get the same answers, and io_uring
/// works. Elsewhere there is no such filter to check.
#[test]
fn in_the_container_docker_applies_the_profile() {
    let Ok(profile) = std::env::var("URING_BOOK_SECCOMP_PROFILE") else {
        eprintln!(
            "skipped: not in the book's container (docker-compose.yml sets \
             URING_BOOK_SECCOMP_PROFILE there); the tests above check the profile here"
        );
        return;
    };
    assert_eq!(profile, "docker/seccomp-io_uring.json");
    assert_eq!(
        uring_book::system::seccomp_mode(),
        Some(2),
        "no seccomp filter"
    );

    // What matters is that a refused call never reaches its implementation.
    // runc answers ENOSYS instead of the profile's EPERM for the calls newer
    // than every call its libseccomp can name in the profile, so that libc
    // falls back to an older call (opencontainers/runc#2750); ENOSYS stops
    // the call just the same.
    let mut calls = refused_and_allowed_calls();
    let errnos = probe(&calls, Vec::new());
    for (call, errno) in calls.iter_mut().zip(&errnos) {
        if call.errno == libc::EPERM && *errno == libc::ENOSYS {
            eprintln!("{}: ENOSYS from the runtime, not EPERM", call.what);
            call.errno = libc::ENOSYS;
        }
    }
    let wrong = wrong_answers(&calls, &errnos);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let mut ring = io_uring::IoUring::new(8).expect("io_uring under the profile");
    let nop = io_uring::opcode::Nop::new().build().user_data(42);
    // SAFETY: a NOP refers to no memory.
    unsafe { ring.submission().push(&nop).unwrap() };
    ring.submit_and_wait(1).unwrap();
    let cqe = ring.completion().next().expect("a completion");
    assert_eq!((cqe.user_data(), cqe.result()), (42, 0));
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
