//! `cargo run -- doctor`: can this machine run every chapter of the book?
//!
//! Each check prints one line, `ok`, `warn` or `FAIL`, and a problem is
//! followed by its remedy. The exit code is 0 when nothing failed.

use std::fmt::Write as _;

use io_uring::{opcode, register::Probe, IoUring};

use uring_book::{diagnose, system};

/// The oldest kernel on which every chapter runs: chapter 6's tokio-uring
/// server with IORING_SETUP_COOP_TASKRUN needs 5.19.
pub const BOOK_KERNEL: (u32, u32) = (5, 19);

/// Chapters 4 and 5 use tokio-uring, whose README names 5.11 as the oldest
/// kernel it works on.
pub const TOKIO_URING_KERNEL: (u32, u32) = (5, 11);

/// The opcodes the chapters use, directly or through tokio-uring, with the
/// kernel that introduced each.
pub const OPCODES: &[(&str, u8, &str)] = &[
    ("Nop", opcode::Nop::CODE, "5.1"),
    ("Fsync", opcode::Fsync::CODE, "5.1"),
    ("ReadFixed", opcode::ReadFixed::CODE, "5.1"),
    ("WriteFixed", opcode::WriteFixed::CODE, "5.1"),
    ("Accept", opcode::Accept::CODE, "5.5"),
    ("AsyncCancel", opcode::AsyncCancel::CODE, "5.5"),
    ("OpenAt", opcode::OpenAt::CODE, "5.6"),
    ("Close", opcode::Close::CODE, "5.6"),
    ("Read", opcode::Read::CODE, "5.6"),
    ("Write", opcode::Write::CODE, "5.6"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the report, and the remedy when something is wrong.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            name,
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs every check, in the order the report prints them.
pub fn checks() -> Vec<Check> {
    let mut out = vec![kernel(), sysctl(), seccomp()];
    let ring = IoUring::new(8);
    match &ring {
        Ok(_) => out.push(Check::new(
            "io_uring_setup",
            Status::Ok,
            "a ring of 8 entries",
        )),
        Err(err) => out.push(
            Check::new(
                "io_uring_setup",
                Status::Fail,
                format!("failed with {}", diagnose::errno_text(err)),
            )
            .fix(diagnose::setup_failure_reason(err)),
        ),
    }
    match &ring {
        Ok(ring) => {
            out.push(opcodes(ring));
            out.push(registration(ring));
        }
        Err(_) => out.push(Check::new("opcodes", Status::Fail, "not probed: no ring")),
    }
    out.push(memlock());
    out.push(nofile());
    out
}

fn kernel() -> Check {
    let release = system::kernel_release();
    match system::parse_version(&release) {
        Some(v) if v >= BOOK_KERNEL => Check::new("kernel", Status::Ok, release),
        Some(v) if v >= TOKIO_URING_KERNEL => Check::new(
            "kernel",
            Status::Warn,
            format!("{release}: chapters 1-5 run; chapter 6 needs 5.19"),
        )
        .fix("for chapter 6's COOP_TASKRUN server, use Linux 5.19 or newer"),
        Some(v) if v >= (5, 6) => Check::new(
            "kernel",
            Status::Warn,
            format!("{release}: chapters 1-3 run; tokio-uring needs 5.11"),
        )
        .fix("for chapters 4-6, use Linux 5.19 or newer"),
        _ => Check::new(
            "kernel",
            Status::Fail,
            format!("{release}: the book needs 5.6 for IORING_OP_READ/WRITE"),
        )
        .fix("use Linux 5.19 or newer (a current distribution, or a VM)"),
    }
}

fn sysctl() -> Check {
    const NAME: &str = "io_uring_disabled";
    match system::io_uring_disabled() {
        None => Check::new(NAME, Status::Ok, "no such sysctl (kernel before 6.6)"),
        Some(0) => Check::new(NAME, Status::Ok, "0: every process may use io_uring"),
        Some(1) => {
            Check::new(NAME, Status::Warn, "1: only kernel.io_uring_group and root")
                .fix("sudo sysctl kernel.io_uring_disabled=0")
        }
        Some(n) => Check::new(
            NAME,
            Status::Fail,
            format!("{n}: io_uring is off for everyone"),
        )
        .fix("sudo sysctl kernel.io_uring_disabled=0"),
    }
}

fn seccomp() -> Check {
    match system::seccomp_mode() {
        Some(0) => Check::new("seccomp", Status::Ok, "0: no filter"),
        Some(2) => Check::new(
            "seccomp",
            Status::Ok,
            "2: a filter is active; io_uring_setup below shows if it blocks",
        ),
        Some(1) => Check::new(
            "seccomp",
            Status::Fail,
            "1: strict mode, only read/write/exit",
        ),
        _ => Check::new(
            "seccomp",
            Status::Warn,
            "unknown (no Seccomp line in /proc/self/status)",
        ),
    }
}

// ANCHOR: probe
fn opcodes(ring: &IoUring) -> Check {
    let mut probe = Probe::new();
    if let Err(err) = ring.submitter().register_probe(&mut probe) {
        return Check::new(
            "opcodes",
            Status::Fail,
            format!(
                "IORING_REGISTER_PROBE failed: {}",
                diagnose::errno_text(&err)
            ),
        )
        .fix("probing needs Linux 5.6; use Linux 5.19 or newer");
    }
    let missing: Vec<String> = OPCODES
        .iter()
        .filter(|(_, code, _)| !probe.is_supported(*code))
        .map(|(name, _, since)| format!("{name} ({since})"))
        .collect();
    if missing.is_empty() {
        Check::new(
            "opcodes",
            Status::Ok,
            format!("all {} the book uses are supported", OPCODES.len()),
        )
    } else {
        Check::new(
            "opcodes",
            Status::Fail,
            format!("missing: {}", missing.join(", ")),
        )
        .fix("use Linux 5.19 or newer")
    }
}
// ANCHOR_END: probe

/// Chapter 3 registers buffers of this size; doctor tries the same.
pub const REGISTERED_BYTES: usize = 1 << 20;

// ANCHOR: registration
fn registration(ring: &IoUring) -> Check {
    const NAME: &str = "register_buffers";
    let mut buf = vec![0u8; REGISTERED_BYTES];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `buf` outlives the registration, which ends before it is dropped.
    match unsafe { ring.submitter().register_buffers(&[iov]) } {
        Ok(()) => {
            let _ = ring.submitter().unregister_buffers();
            Check::new(NAME, Status::Ok, "1 MiB registered and released")
        }
        Err(err) => Check::new(
            NAME,
            Status::Fail,
            format!("1 MiB failed with {}", diagnose::errno_text(&err)),
        )
        .fix(format!(
            "{:#}",
            diagnose::register_buffers(err, REGISTERED_BYTES)
        )),
    }
}
// ANCHOR_END: registration

fn memlock() -> Check {
    const NAME: &str = "RLIMIT_MEMLOCK";
    let Ok(limit) = system::memlock_limit() else {
        return Check::new(NAME, Status::Warn, "getrlimit failed");
    };
    let soft = system::human_bytes(limit.soft);
    let detail = if system::has_cap_ipc_lock() {
        format!("{soft}; CAP_IPC_LOCK held, so nothing is charged to it")
    } else {
        format!("{soft}; no CAP_IPC_LOCK, so rings and buffers are charged")
    };
    Check::new(NAME, Status::Ok, detail)
}

fn nofile() -> Check {
    const NAME: &str = "RLIMIT_NOFILE";
    let Ok(limit) = system::nofile_limit() else {
        return Check::new(NAME, Status::Warn, "getrlimit failed");
    };
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
    let detail = format!("{} soft, {} hard", show(limit.soft), show(limit.hard));
    // Chapter 5 holds 1000 connections and raises the soft limit to the hard one.
    if limit.hard.is_none_or(|h| h >= 2048) {
        Check::new(NAME, Status::Ok, detail)
    } else {
        Check::new(
            NAME,
            Status::Warn,
            format!("{detail}: too few for 1000 connections"),
        )
        .fix("raise the hard limit: `ulimit -Hn 4096` as root, or --ulimit nofile=65536")
    }
}

/// The report as printed, and whether everything the book needs is there.
pub fn report(checks: &[Check]) -> (String, bool) {
    let mut out = String::new();
    for check in checks {
        let tag = match check.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "{tag}  {:<18} {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            for line in wrap(fix, 90 - 6) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    let healthy = checks.iter().all(|c| c.status != Status::Fail);
    let verdict = if healthy {
        "Everything the book needs is here."
    } else {
        "io_uring cannot run every chapter here: see the fixes above."
    };
    let _ = writeln!(out, "\n{verdict}");
    (out, healthy)
}

/// Breaks `text` into lines of at most `width` columns, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().unwrap();
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// `cargo run -- doctor`: prints the report; `Ok(false)` means a check failed.
pub fn run() -> bool {
    let (text, healthy) = report(&checks());
    print!("{text}");
    healthy
}
