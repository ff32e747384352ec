//! `cargo run -- doctor`: can this machine run every chapter of the book?
//!
//! Each check prints one line, `ok`, `warn` or `FAIL`, and a problem is
//! followed by its remedy. The exit code is 0 when nothing failed.

use std::fmt::Write as _;

use io_uring::{register::Probe, IoUring};

use uring_book::features::{self, Kind, Presence, ROWS};
use uring_book::{diagnose, optional_tools, system};

/// The oldest kernel on which every chapter runs, from the table of
/// features (`uring_book::features`).
pub const BOOK_KERNEL: (u32, u32) = features::book_kernel();

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
    out.push(optional_tool(&optional_tools::FIO, optional_tools::fio()));
    out.push(optional_tool(&optional_tools::PERF, optional_tools::perf()));
    // The chapter checks make rings of their own; this one's memory first
    // goes back to RLIMIT_MEMLOCK.
    let have_ring = ring.is_ok();
    let buffers_fail = out
        .iter()
        .any(|c| c.name == "register_buffers" && c.status == Status::Fail);
    drop(ring);
    out.extend(chapters(have_ring, buffers_fail));
    out
}

/// fio or perf: the benchmark uses them if they are there, so a missing one
/// is a warning with what it costs, never a failure.
fn optional_tool(
    tool: &optional_tools::Tool,
    found: optional_tools::Availability,
) -> Check {
    use optional_tools::Availability;
    match found {
        Availability::Ready(version) => Check::new(
            tool.name,
            Status::Ok,
            format!("{version} (optional: chapter 6 uses it)"),
        ),
        Availability::Missing => Check::new(
            tool.name,
            Status::Warn,
            "not installed (optional: the book runs without it)",
        )
        .fix(format!(
            "Without it, {}. Install it: {}",
            tool.costs, tool.install
        )),
        Availability::Refused(why) => Check::new(
            tool.name,
            Status::Warn,
            "installed, but not allowed to count system calls",
        )
        .fix(why),
    }
}

fn kernel() -> Check {
    let release = system::kernel_release();
    let book = features::version(BOOK_KERNEL);
    match system::parse_version(&release) {
        Some(v) if v >= BOOK_KERNEL => Check::new("kernel", Status::Ok, release),
        Some(v) if v >= features::chapter_kernel(1) => Check::new(
            "kernel",
            Status::Warn,
            format!("{release}: not every chapter runs (see below)"),
        )
        .fix(format!("for every chapter, use Linux {book} or newer")),
        _ => Check::new(
            "kernel",
            Status::Fail,
            format!("{release}: the book needs 5.6 for IORING_OP_READ/WRITE"),
        )
        .fix(format!(
            "use Linux {book} or newer (a current distribution, or a VM)"
        )),
    }
}

fn sysctl() -> Check {
    const NAME: &str = "io_uring_disabled";
    match system::io_uring_disabled() {
        None => Check::new(NAME, Status::Ok, "no such sysctl: nothing to switch off"),
        Some(0) => Check::new(NAME, Status::Ok, "0: every process may use io_uring"),
        Some(1) => {
            let who = "1: only CAP_SYS_ADMIN (initial userns) and kernel.io_uring_group";
            Check::new(NAME, Status::Warn, who)
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
    let opcodes: Vec<_> = ROWS
        .iter()
        .filter_map(|row| match row.check {
            features::Check::Opcode(code) if row.kind == Kind::Opcode => {
                Some((row, code))
            }
            _ => None,
        })
        .collect();
    let missing: Vec<_> = opcodes
        .iter()
        .filter(|(_, code)| !probe.is_supported(*code))
        .map(|(row, _)| *row)
        .collect();
    if missing.is_empty() {
        Check::new(
            "opcodes",
            Status::Ok,
            format!("all {} the book uses are supported", opcodes.len()),
        )
    } else {
        Check::new(
            "opcodes",
            Status::Fail,
            format!("{} of {} missing", missing.len(), opcodes.len()),
        )
        .fix(format!(
            "missing: {}. Use Linux {} or newer",
            features::names(&missing),
            features::version(BOOK_KERNEL)
        ))
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

/// One line per chapter: can this kernel run it? From the table of features.
fn chapters(have_ring: bool, buffers_fail: bool) -> Vec<Check> {
    const NAMES: [&str; 8] = [
        "chapter 1",
        "chapter 2",
        "chapter 3",
        "chapter 4",
        "chapter 5",
        "chapter 6",
        "chapter 7",
        "chapter 8",
    ];
    if !have_ring {
        return vec![Check::new(
            "chapters 1-8",
            Status::Fail,
            "none can run: io_uring_setup fails (see above)",
        )];
    }
    let presence: Vec<Presence> = features::check_all();
    features::CHAPTERS
        .zip(NAMES)
        .map(|(c, name)| chapter(c, name, &presence, buffers_fail))
        .collect()
}

fn chapter(
    c: u8,
    name: &'static str,
    presence: &[Presence],
    buffers_fail: bool,
) -> Check {
    let s = features::chapter_support(c, presence);
    let floor = features::version(features::chapter_kernel(c));
    // The kernel may have registered buffers and still refuse this process
    // the chapter's 1 MiB of them (RLIMIT_MEMLOCK): the check above says.
    let registers = ROWS.iter().any(|r| {
        r.name.contains("IORING_REGISTER_BUFFERS")
            && r.uses.contains(&features::Use::Needs(c))
    });
    if buffers_fail && registers {
        return Check::new(
            name,
            Status::Fail,
            "cannot run: registering its buffers fails (see above)",
        );
    }
    if !s.missing.is_empty() {
        return Check::new(
            name,
            Status::Fail,
            format!(
                "cannot run: {} of {} features missing",
                s.missing.len(),
                s.needs
            ),
        )
        .fix(format!(
            "missing: {}. Fix: use Linux {floor} or newer",
            features::names(&s.missing)
        ));
    }
    if !s.unknown.is_empty() {
        return Check::new(
            name,
            Status::Warn,
            format!(
                "{} of {} features could not be checked",
                s.unknown.len(),
                s.needs
            ),
        )
        .fix(format!("unchecked: {}", features::names(&s.unknown)));
    }
    let detail = format!("runs: all {} features it needs (Linux {floor}+)", s.needs);
    if s.optional_missing.is_empty() {
        Check::new(name, Status::Ok, detail)
    } else {
        Check::new(name, Status::Ok, detail).fix(format!(
            "without the optional {}",
            features::names(&s.optional_missing)
        ))
    }
}

fn memlock() -> Check {
    const NAME: &str = "RLIMIT_MEMLOCK";
    let Ok(limit) = system::memlock_limit() else {
        return Check::new(NAME, Status::Warn, "getrlimit failed");
    };
    let soft = system::human_bytes(limit.soft);
    let rings = system::rings_charged_to_memlock(system::kernel_version());
    let charged = if rings {
        "rings and buffers"
    } else {
        "registered buffers"
    };
    let detail = if system::exempt_from_memlock() {
        format!("{soft}; CAP_IPC_LOCK held, so nothing is charged to it")
    } else if system::has_cap_ipc_lock() {
        format!("{soft}; {charged} charged (CAP_IPC_LOCK is userns-only)")
    } else {
        format!("{soft}; no CAP_IPC_LOCK, so {charged} are charged")
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
