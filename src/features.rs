//! The one table of what the book uses from io_uring: every opcode, flag,
//! registration and feature, the kernel that brought it, the chapters that
//! use it, its manual page, and how to ask this machine whether it has it.
//!
//! `cargo run -- doctor` reads the table to say which chapters this kernel can
//! run, `cargo run -- 7 probe` prints it, and Appendix B
//! (`book/src/appendix-opcodes.md`) is generated from it by
//! `scripts/regen-output.sh`, so that none of them can drift from the others.
//!
//! A version is the first mainline kernel with the feature. Sources: the
//! liburing manual pages (each row links its page) and, where a page gives no
//! version, the kernel commit (`IORING_TIMEOUT_ABS`: posted on 15 October 2019,
//! after the 5.4 merge window, merged for 5.5; `IORING_SETUP_CQSIZE`: commit
//! 33a107f0a1b8, "io_uring: allow application controlled CQ ring size", 5.5).

use std::io;

use io_uring::{opcode, Parameters};

use uring_book::feature_checks as checks;

/// What kind of interface a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The three system calls.
    Syscall,
    /// An `IORING_OP_*` operation.
    Opcode,
    /// A flag of an operation: `IORING_TIMEOUT_ABS`, `IORING_ACCEPT_MULTISHOT`...
    OpFlag,
    /// An `IOSQE_*` flag, valid on any SQE.
    SqeFlag,
    /// An `IORING_SETUP_*` flag of io_uring_setup(2).
    Setup,
    /// An `IORING_REGISTER_*` operation of io_uring_register(2).
    Register,
    /// An `IORING_FEAT_*` bit that io_uring_setup(2) returns.
    Feature,
    /// A library the chapters build on.
    Library,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Syscall => "system calls",
            Kind::Opcode => "opcode",
            Kind::OpFlag => "opcode flag",
            Kind::SqeFlag => "SQE flag",
            Kind::Setup => "setup flag",
            Kind::Register => "register op",
            Kind::Feature => "feature bit",
            Kind::Library => "library",
        }
    }
}

/// How a chapter uses a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The chapter needs it to show what it teaches. (Exercise 7 still runs
    /// without some of its rows, and says what it skipped.)
    Needs(u8),
    /// The chapter uses it when the kernel has it, or only explains it.
    Optional(u8),
}

impl Use {
    pub fn chapter(self) -> u8 {
        match self {
            Use::Needs(c) | Use::Optional(c) => c,
        }
    }
}

/// How to find out whether this machine has a row.
#[derive(Clone, Copy)]
pub enum Check {
    /// io_uring_setup(2) succeeds.
    Ring,
    /// `IORING_REGISTER_PROBE` lists the opcode.
    Opcode(u8),
    /// io_uring_setup(2) sets the `IORING_FEAT_*` bit.
    Feature(fn(&Parameters) -> bool),
    /// A ring set up with the flag (and what it requires) is accepted.
    Setup(fn(&mut io_uring::Builder)),
    /// A small request on a scratch ring: `Ok(false)` when the kernel answers
    /// EINVAL, as kernels that predate the feature do.
    Trial(fn(&mut io_uring::IoUring) -> io::Result<bool>),
    /// Only the kernel version says.
    Version,
}

impl Check {
    /// What the appendix says about how the row is checked.
    pub fn describe(&self) -> &'static str {
        match self {
            Check::Ring => "io_uring_setup",
            Check::Opcode(_) => "`Probe`",
            Check::Feature(_) => "`Parameters`",
            Check::Setup(_) => "set up a ring with it",
            Check::Trial(_) => "try it",
            Check::Version => "kernel version",
        }
    }
}

/// One row of the table.
pub struct Row {
    pub name: &'static str,
    pub kind: Kind,
    /// The first kernel with it, as (major, minor).
    pub since: (u32, u32),
    pub uses: &'static [Use],
    /// The manual page: its name and address.
    pub man: (&'static str, &'static str),
    pub check: Check,
}

const fn liburing(page: &'static str, url: &'static str) -> (&'static str, &'static str) {
    (page, url)
}

macro_rules! debian {
    ($page:literal) => {
        liburing(
            concat!($page, "(3)"),
            concat!(
                "https://manpages.debian.org/unstable/liburing-dev/",
                $page,
                ".3.en.html"
            ),
        )
    };
}

macro_rules! man7 {
    ($page:literal, $section:literal) => {
        liburing(
            concat!($page, "(", $section, ")"),
            concat!(
                "https://man7.org/linux/man-pages/man",
                $section,
                "/",
                $page,
                ".",
                $section,
                ".html"
            ),
        )
    };
}

use Use::{Needs as N, Optional as O};

/// Every io_uring interface the book uses, oldest first within each kind.
pub const ROWS: &[Row] = &[
    Row {
        name: "io_uring_setup, io_uring_enter, io_uring_register",
        kind: Kind::Syscall,
        since: (5, 1),
        uses: &[N(1), N(2), N(3), N(4), N(5), N(6), N(7), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Ring,
    },
    Row {
        name: "`IORING_OP_NOP` (`Nop`)",
        kind: Kind::Opcode,
        since: (5, 1),
        uses: &[N(1), N(7)],
        man: debian!("io_uring_prep_nop"),
        check: Check::Opcode(opcode::Nop::CODE),
    },
    Row {
        name: "`IORING_OP_FSYNC` (`Fsync`)",
        kind: Kind::Opcode,
        since: (5, 1),
        uses: &[N(4), N(6), N(7)],
        man: debian!("io_uring_prep_fsync"),
        check: Check::Opcode(opcode::Fsync::CODE),
    },
    Row {
        name: "`IORING_OP_READ_FIXED` (`ReadFixed`)",
        kind: Kind::Opcode,
        since: (5, 1),
        uses: &[N(3), N(6)],
        man: debian!("io_uring_prep_read_fixed"),
        check: Check::Opcode(opcode::ReadFixed::CODE),
    },
    Row {
        name: "`IORING_OP_WRITE_FIXED` (`WriteFixed`)",
        kind: Kind::Opcode,
        since: (5, 1),
        uses: &[N(3)],
        man: debian!("io_uring_prep_write_fixed"),
        check: Check::Opcode(opcode::WriteFixed::CODE),
    },
    Row {
        name: "`IORING_OP_POLL_ADD` (`PollAdd`)",
        kind: Kind::Opcode,
        since: (5, 1),
        uses: &[N(8)],
        man: debian!("io_uring_prep_poll_add"),
        check: Check::Opcode(opcode::PollAdd::CODE),
    },
    Row {
        name: "`IORING_OP_TIMEOUT` (`Timeout`)",
        kind: Kind::Opcode,
        since: (5, 4),
        uses: &[N(7), N(8)],
        man: debian!("io_uring_prep_timeout"),
        check: Check::Opcode(opcode::Timeout::CODE),
    },
    Row {
        name: "`IORING_OP_ACCEPT` (`Accept`)",
        kind: Kind::Opcode,
        since: (5, 5),
        uses: &[N(5), N(8)],
        man: debian!("io_uring_prep_accept"),
        check: Check::Opcode(opcode::Accept::CODE),
    },
    Row {
        name: "`IORING_OP_ASYNC_CANCEL` (`AsyncCancel`)",
        kind: Kind::Opcode,
        since: (5, 5),
        uses: &[O(2), N(4), N(5), N(7), N(8)],
        man: debian!("io_uring_prep_cancel"),
        check: Check::Opcode(opcode::AsyncCancel::CODE),
    },
    Row {
        name: "`IORING_OP_LINK_TIMEOUT` (`LinkTimeout`)",
        kind: Kind::Opcode,
        since: (5, 5),
        uses: &[N(7)],
        man: debian!("io_uring_prep_link_timeout"),
        check: Check::Opcode(opcode::LinkTimeout::CODE),
    },
    Row {
        name: "`IORING_OP_TIMEOUT_REMOVE` (`TimeoutRemove`)",
        kind: Kind::Opcode,
        since: (5, 5),
        uses: &[N(7)],
        man: debian!("io_uring_prep_timeout_remove"),
        check: Check::Opcode(opcode::TimeoutRemove::CODE),
    },
    Row {
        name: "`IORING_OP_OPENAT` (`OpenAt`)",
        kind: Kind::Opcode,
        since: (5, 6),
        uses: &[N(4)],
        man: debian!("io_uring_prep_openat"),
        check: Check::Opcode(opcode::OpenAt::CODE),
    },
    Row {
        name: "`IORING_OP_CLOSE` (`Close`)",
        kind: Kind::Opcode,
        since: (5, 6),
        uses: &[N(4), N(8)],
        man: debian!("io_uring_prep_close"),
        check: Check::Opcode(opcode::Close::CODE),
    },
    Row {
        name: "`IORING_OP_READ` (`Read`)",
        kind: Kind::Opcode,
        since: (5, 6),
        uses: &[N(1), N(2), N(3), N(4), N(5), N(6), N(7)],
        man: debian!("io_uring_prep_read"),
        check: Check::Opcode(opcode::Read::CODE),
    },
    Row {
        name: "`IORING_OP_WRITE` (`Write`)",
        kind: Kind::Opcode,
        since: (5, 6),
        uses: &[N(2), N(4), N(5), N(6), N(7)],
        man: debian!("io_uring_prep_write"),
        check: Check::Opcode(opcode::Write::CODE),
    },
    Row {
        name: "`IORING_OP_SEND` (`Send`)",
        kind: Kind::Opcode,
        since: (5, 6),
        uses: &[N(8)],
        man: debian!("io_uring_prep_send"),
        check: Check::Opcode(opcode::Send::CODE),
    },
    Row {
        name: "`IORING_OP_RECV` (`Recv`)",
        kind: Kind::Opcode,
        since: (5, 6),
        uses: &[N(7), N(8)],
        man: debian!("io_uring_prep_recv"),
        check: Check::Opcode(opcode::Recv::CODE),
    },
    Row {
        name: "`IORING_TIMEOUT_ABS` (`TimeoutFlags::ABS`)",
        kind: Kind::OpFlag,
        since: (5, 5),
        uses: &[N(7)],
        man: debian!("io_uring_prep_timeout"),
        check: Check::Trial(checks::timeout_abs),
    },
    Row {
        name: "`IORING_TIMEOUT_UPDATE` (`TimeoutUpdate`)",
        kind: Kind::OpFlag,
        since: (5, 11),
        uses: &[N(7)],
        man: debian!("io_uring_prep_timeout_update"),
        check: Check::Trial(checks::timeout_update),
    },
    Row {
        name: "`IORING_ASYNC_CANCEL_FD`, `_ALL`, `_ANY` (`AsyncCancel2`)",
        kind: Kind::OpFlag,
        since: (5, 19),
        uses: &[O(7), N(8)],
        man: debian!("io_uring_prep_cancel"),
        check: Check::Trial(checks::cancel_flags),
    },
    Row {
        name: "multishot accept (`AcceptMulti`)",
        kind: Kind::OpFlag,
        since: (5, 19),
        uses: &[N(8)],
        man: debian!("io_uring_prep_multishot_accept"),
        check: Check::Trial(checks::multishot_accept),
    },
    Row {
        name: "direct descriptors from accept, slot picked by the kernel",
        kind: Kind::OpFlag,
        since: (5, 19),
        uses: &[O(8)],
        man: debian!("io_uring_prep_multishot_accept_direct"),
        check: Check::Trial(checks::accept_direct_alloc),
    },
    Row {
        name: "multishot receive (`RecvMulti`)",
        kind: Kind::OpFlag,
        since: (6, 0),
        uses: &[N(8)],
        man: debian!("io_uring_prep_recv_multishot"),
        check: Check::Trial(checks::multishot_recv),
    },
    Row {
        name: "`IOSQE_FIXED_FILE` with `IORING_REGISTER_FILES` (`types::Fixed`)",
        kind: Kind::SqeFlag,
        since: (5, 1),
        uses: &[N(3), N(6), O(8)],
        man: debian!("io_uring_register_files"),
        check: Check::Trial(checks::fixed_file),
    },
    Row {
        name: "`IOSQE_IO_DRAIN`",
        kind: Kind::SqeFlag,
        since: (5, 2),
        uses: &[O(2)],
        man: debian!("io_uring_sqe_set_flags"),
        check: Check::Trial(checks::drain),
    },
    Row {
        name: "`IOSQE_IO_LINK`",
        kind: Kind::SqeFlag,
        since: (5, 3),
        uses: &[O(2), N(7)],
        man: debian!("io_uring_sqe_set_flags"),
        check: Check::Trial(checks::link),
    },
    Row {
        name: "`IOSQE_IO_HARDLINK`",
        kind: Kind::SqeFlag,
        since: (5, 5),
        uses: &[N(7)],
        man: debian!("io_uring_sqe_set_flags"),
        check: Check::Trial(checks::hardlink),
    },
    Row {
        name: "`IOSQE_ASYNC`",
        kind: Kind::SqeFlag,
        since: (5, 6),
        uses: &[O(2), N(7)],
        man: debian!("io_uring_sqe_set_flags"),
        check: Check::Trial(checks::async_flag),
    },
    Row {
        name: "`IORING_SETUP_CQSIZE` (`setup_cqsize`)",
        kind: Kind::Setup,
        since: (5, 5),
        uses: &[O(1), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_cqsize(16);
        }),
    },
    Row {
        name: "`IORING_SETUP_R_DISABLED`",
        kind: Kind::Setup,
        since: (5, 10),
        uses: &[O(2)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_r_disabled();
        }),
    },
    Row {
        name: "`IORING_SETUP_SQPOLL` without root (as root: 5.1)",
        kind: Kind::Setup,
        since: (5, 13),
        uses: &[O(1), O(6)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_sqpoll(10);
        }),
    },
    Row {
        name: "`IORING_SETUP_SUBMIT_ALL`",
        kind: Kind::Setup,
        since: (5, 18),
        uses: &[O(1), O(2), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_submit_all();
        }),
    },
    Row {
        name: "`IORING_SETUP_COOP_TASKRUN`",
        kind: Kind::Setup,
        since: (5, 19),
        uses: &[O(1), O(2), O(5), N(6), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_coop_taskrun();
        }),
    },
    Row {
        name: "`IORING_SETUP_TASKRUN_FLAG`",
        kind: Kind::Setup,
        since: (5, 19),
        uses: &[O(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }),
    },
    Row {
        name: "`IORING_SETUP_SINGLE_ISSUER`",
        kind: Kind::Setup,
        since: (6, 0),
        uses: &[O(1), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_single_issuer();
        }),
    },
    Row {
        name: "`IORING_SETUP_DEFER_TASKRUN`",
        kind: Kind::Setup,
        since: (6, 1),
        uses: &[O(1), O(2), O(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_single_issuer().setup_defer_taskrun();
        }),
    },
    Row {
        name: "`IORING_SETUP_NO_SQARRAY`",
        kind: Kind::Setup,
        since: (6, 6),
        uses: &[O(1)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Setup(|b| {
            b.setup_no_sqarray();
        }),
    },
    Row {
        name: "`IORING_REGISTER_BUFFERS` (`register_buffers`)",
        kind: Kind::Register,
        since: (5, 1),
        uses: &[N(3), N(6)],
        man: debian!("io_uring_register_buffers"),
        check: Check::Trial(checks::register_buffers),
    },
    Row {
        name: "`IORING_REGISTER_PROBE` (`register_probe`)",
        kind: Kind::Register,
        since: (5, 6),
        uses: &[N(7)],
        man: debian!("io_uring_register_probe"),
        check: Check::Trial(checks::register_probe),
    },
    Row {
        name: "`IORING_REGISTER_RING_FDS` (`register_ring_fd`)",
        kind: Kind::Register,
        since: (5, 18),
        uses: &[O(3), N(8)],
        man: debian!("io_uring_register_ring_fd"),
        check: Check::Trial(checks::register_ring_fd),
    },
    Row {
        name: "`IORING_REGISTER_PBUF_RING` (`register_buf_ring_with_flags`)",
        kind: Kind::Register,
        since: (5, 19),
        uses: &[O(3), N(8)],
        man: debian!("io_uring_register_buf_ring"),
        check: Check::Trial(checks::register_buf_ring),
    },
    Row {
        name: "`IORING_FEAT_SINGLE_MMAP`",
        kind: Kind::Feature,
        since: (5, 4),
        uses: &[O(1)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Feature(Parameters::is_feature_single_mmap),
    },
    Row {
        name: "`IORING_FEAT_NODROP`",
        kind: Kind::Feature,
        since: (5, 5),
        uses: &[O(2), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Feature(Parameters::is_feature_nodrop),
    },
    Row {
        name: "`IORING_FEAT_RW_CUR_POS` (offset -1)",
        kind: Kind::Feature,
        since: (5, 6),
        uses: &[O(1)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Feature(Parameters::is_feature_rw_cur_pos),
    },
    Row {
        name: "`IORING_FEAT_FAST_POLL`",
        kind: Kind::Feature,
        since: (5, 7),
        uses: &[O(2), O(4), O(5), O(6), N(8)],
        man: man7!("io_uring_setup", "2"),
        check: Check::Feature(Parameters::is_feature_fast_poll),
    },
    Row {
        name: "`IORING_FEAT_EXT_ARG` (`submit_with_args`)",
        kind: Kind::Feature,
        since: (5, 11),
        uses: &[O(7), N(8)],
        man: man7!("io_uring_enter", "2"),
        check: Check::Feature(Parameters::is_feature_ext_arg),
    },
    Row {
        name: "tokio-uring 0.5 (its README's minimum)",
        kind: Kind::Library,
        since: (5, 11),
        uses: &[N(4), N(5), N(6)],
        man: (
            "tokio-uring README",
            "https://github.com/tokio-rs/tokio-uring#requirements",
        ),
        check: Check::Version,
    },
];

/// The chapters the table covers.
pub const CHAPTERS: std::ops::RangeInclusive<u8> = 1..=8;

/// The oldest kernel that has everything chapter `chapter` needs.
pub const fn chapter_kernel(chapter: u8) -> (u32, u32) {
    let mut floor = (5, 1);
    let mut i = 0;
    while i < ROWS.len() {
        let row = &ROWS[i];
        let mut j = 0;
        while j < row.uses.len() {
            if let Use::Needs(c) = row.uses[j] {
                if c == chapter && later(row.since, floor) {
                    floor = row.since;
                }
            }
            j += 1;
        }
        i += 1;
    }
    floor
}

/// The oldest kernel that runs every chapter.
pub const fn book_kernel() -> (u32, u32) {
    let mut floor = (5, 1);
    let mut c = *CHAPTERS.start();
    while c <= *CHAPTERS.end() {
        let k = chapter_kernel(c);
        if later(k, floor) {
            floor = k;
        }
        c += 1;
    }
    floor
}

const fn later(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 > b.1)
}

/// `5.19` for (5, 19).
pub fn version(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

/// Whether this machine has a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Yes,
    No,
    /// The check could not tell, and why (no ring, ENOMEM, ...).
    Unknown(String),
}

impl Presence {
    pub fn word(&self) -> &str {
        match self {
            Presence::Yes => "yes",
            Presence::No => "no",
            Presence::Unknown(_) => "unknown",
        }
    }
}

/// Checks every row on this machine, in table order.
pub fn check_all() -> Vec<Presence> {
    let kernel = uring_book::system::kernel_version();
    let mut ring = io_uring::IoUring::new(8);
    let probe = ring.as_ref().ok().and_then(|ring| {
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe).ok()?;
        Some(probe)
    });
    let no_ring = |err: &io::Error| {
        let errno = err.raw_os_error().unwrap_or(0);
        let name = uring_book::system::errno_name(errno);
        Presence::Unknown(format!("io_uring_setup failed with {name}"))
    };
    // Setup flags are checked last, each with a ring of its own, once the
    // shared ring is gone: every ring is charged to RLIMIT_MEMLOCK when the
    // process lacks CAP_IPC_LOCK.
    let mut found: Vec<Option<Presence>> = ROWS
        .iter()
        .map(|row| match (&row.check, &mut ring) {
            (Check::Setup(_), _) => None,
            (Check::Version, _) => Some(match kernel {
                Some(v) if !later(row.since, v) => Presence::Yes,
                Some(_) => Presence::No,
                None => Presence::Unknown("no kernel version".into()),
            }),
            (_, Err(err)) => Some(no_ring(err)),
            (Check::Ring, Ok(_)) => Some(Presence::Yes),
            (Check::Opcode(code), Ok(_)) => Some(match &probe {
                Some(probe) if probe.is_supported(*code) => Presence::Yes,
                Some(_) => Presence::No,
                None => Presence::Unknown("IORING_REGISTER_PROBE failed".into()),
            }),
            (Check::Feature(has), Ok(ring)) => Some(yes_no(has(ring.params()))),
            (Check::Trial(trial), Ok(ring)) => Some(checks::answer(trial(ring))),
        })
        .collect();
    let ring_failed = ring.as_ref().err().map(no_ring);
    drop(ring);
    for (row, slot) in ROWS.iter().zip(&mut found) {
        if let Check::Setup(set) = row.check {
            *slot = Some(match &ring_failed {
                Some(why) => why.clone(),
                None => checks::answer(checks::setup(set)),
            });
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

fn yes_no(yes: bool) -> Presence {
    if yes {
        Presence::Yes
    } else {
        Presence::No
    }
}

/// What a chapter lacks on this machine.
#[derive(Default, Clone)]
pub struct ChapterSupport {
    /// Rows the chapter needs: how many, and those missing or unknown.
    pub needs: usize,
    pub missing: Vec<&'static Row>,
    pub unknown: Vec<&'static Row>,
    /// Optional rows: how many, and those missing.
    pub optional: usize,
    pub optional_missing: Vec<&'static Row>,
}

/// How far this machine (`presence`, from [`check_all`]) supports `chapter`.
pub fn chapter_support(chapter: u8, presence: &[Presence]) -> ChapterSupport {
    let mut s = ChapterSupport::default();
    for (row, p) in ROWS.iter().zip(presence) {
        for u in row.uses.iter().filter(|u| u.chapter() == chapter) {
            match (u, p) {
                (Use::Needs(_), Presence::Yes) => s.needs += 1,
                (Use::Needs(_), Presence::No) => {
                    s.needs += 1;
                    s.missing.push(row);
                }
                (Use::Needs(_), Presence::Unknown(_)) => {
                    s.needs += 1;
                    s.unknown.push(row);
                }
                (Use::Optional(_), Presence::Yes) => s.optional += 1,
                (Use::Optional(_), _) => {
                    s.optional += 1;
                    s.optional_missing.push(row);
                }
            }
        }
    }
    s
}

/// The rows as `name (version)`, for a message.
pub fn names(rows: &[&Row]) -> String {
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.name.replace('`', ""), version(r.since)))
        .collect();
    names.join(", ")
}

/// The chapters column: `7, 8`, with optional uses in parentheses: `(1), 7`.
pub fn chapters_cell(uses: &[Use]) -> String {
    let cells: Vec<String> = uses
        .iter()
        .map(|u| match u {
            Use::Needs(c) => c.to_string(),
            Use::Optional(c) => format!("({c})"),
        })
        .collect();
    cells.join(", ")
}

/// The first line of the generated appendix; the test that keeps the
/// appendix in step with the table looks for it.
pub const APPENDIX_TITLE: &str = "# Appendix B: Opcodes, flags and features";

/// Appendix B, from the table and a run on a machine with kernel `kernel`
/// whose answers are `presence`.
pub fn appendix_markdown(kernel: &str, presence: &[Presence]) -> String {
    let mut out = format!("{APPENDIX_TITLE}\n\n");
    out += "Every io_uring interface this book uses, with the first Linux release that \
            has it, the chapters that use it and its manual page. A chapter in \
            parentheses uses the row when the kernel has it, or only explains it; the \
            other chapters need it.\n\n";
    out +=
        "The table is `uring_book::features::ROWS`. `cargo run -- doctor` reads it to \
            say which chapters your kernel runs. `cargo run -- 7 probe --appendix` prints \
            this page with your machine's column. The column below comes from that \
            command, run by `scripts/regen-output.sh` on Linux ";
    out += kernel;
    out += ". How each row is checked:\n\n";
    out += "- `Probe`: `IORING_REGISTER_PROBE` lists the opcodes this kernel knows.\n";
    out += "- `Parameters`: the feature bits io_uring_setup(2) returns.\n";
    out +=
        "- set up a ring with it: an unknown setup flag makes io_uring_setup fail with \
            `EINVAL`.\n";
    out += "- try it: a small request on a scratch ring; a kernel without the flag \
            answers `EINVAL`.\n\n";
    out +=
        "| Interface | Kind | Linux | Chapters | Manual | Checked by | This machine |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- |\n";
    for (row, p) in ROWS.iter().zip(presence) {
        out += &format!(
            "| {} | {} | {} | {} | [{}]({}) | {} | {} |\n",
            row.name,
            row.kind.name(),
            version(row.since),
            chapters_cell(row.uses),
            row.man.0,
            row.man.1,
            row.check.describe(),
            p.word()
        );
    }
    out += "\nThe oldest kernel for each chapter follows from the rows it needs:\n\n";
    out += "| Chapter | Linux |\n| --- | --- |\n";
    for c in CHAPTERS {
        out += &format!("| {c} | {} |\n", version(chapter_kernel(c)));
    }
    out
}

/// Reads the machine column and the kernel back from a generated appendix,
/// so that a test can render the table again and compare.
pub fn parse_appendix(text: &str) -> Option<(String, Vec<Presence>)> {
    let kernel = text
        .split("on Linux ")
        .nth(1)?
        .split(". How each row")
        .next()?
        .to_string();
    let presence = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Interface"))
        .filter(|l| !l.starts_with("| ---"))
        .filter(|l| l.matches(" | ").count() == 6)
        .map(|l| match l.trim_end_matches(" |").rsplit(" | ").next() {
            Some("yes") => Presence::Yes,
            Some("no") => Presence::No,
            _ => Presence::Unknown(String::new()),
        })
        .collect();
    Some((kernel, presence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapter_floors_follow_from_the_rows_they_need() {
        assert_eq!(chapter_kernel(1), (5, 6));
        assert_eq!(chapter_kernel(4), (5, 11));
        assert_eq!(chapter_kernel(6), (5, 19));
        assert_eq!(chapter_kernel(7), (5, 11));
        assert_eq!(chapter_kernel(8), (6, 0));
        assert_eq!(book_kernel(), (6, 0));
    }

    #[test]
    fn every_row_names_a_chapter_and_a_manual() {
        for row in ROWS {
            assert!(!row.uses.is_empty(), "{}", row.name);
            assert!(row.uses.iter().all(|u| CHAPTERS.contains(&u.chapter())));
            assert!(row.man.1.starts_with("https://"), "{}", row.name);
        }
    }

    #[test]
    fn a_missing_row_stops_only_the_chapters_that_need_it() {
        let mut presence = vec![Presence::Yes; ROWS.len()];
        let multishot = ROWS
            .iter()
            .position(|r| r.name.starts_with("multishot receive"))
            .unwrap();
        presence[multishot] = Presence::No;
        assert_eq!(chapter_support(8, &presence).missing.len(), 1);
        assert!(chapter_support(7, &presence).missing.is_empty());
    }

    #[test]
    fn the_appendix_reads_back_what_it_was_made_from() {
        let mut presence = vec![Presence::Yes; ROWS.len()];
        presence[3] = Presence::No;
        let text = appendix_markdown("6.1.0-test", &presence);
        let (kernel, back) = parse_appendix(&text).unwrap();
        assert_eq!(kernel, "6.1.0-test");
        assert_eq!(back, presence);
    }
}
