//! What this kernel supports, asked at run time, and what the exercise does
//! with the answers: pick a code path, and tell an opcode the kernel lacks
//! from a request it rejects for its arguments (both end in `-EINVAL`).

use io_uring::{opcode, types, IoUring, Probe};
use uring_book::ex7_chains_deadlines_cancel::{self as ex7, res_text};
use uring_book::features::{self, Presence, ROWS};
use uring_book::{diagnose, ex7_timeouts, system};

#[derive(clap::Args)]
pub struct Args {
    /// Print Appendix B (Markdown) with this machine's column instead
    #[arg(long)]
    pub appendix: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.appendix {
        let presence = features::check_all();
        print!(
            "{}",
            features::appendix_markdown(&system::kernel_release(), &presence)
        );
        return Ok(());
    }
    let mut ring = ex7::ring(8)?;
    let probe = probe(&ring)?;
    let known = (0..=u8::MAX).filter(|&op| probe.is_supported(op)).count();
    println!(
        "Linux {}: the probe lists {known} opcodes",
        system::kernel_release()
    );

    let presence = features::check_all();
    println!("\nwhat chapter 7 uses (a row in parentheses is optional):");
    for (row, p) in ROWS.iter().zip(&presence) {
        let Some(u) = row.uses.iter().find(|u| u.chapter() == 7) else {
            continue;
        };
        let name = match u {
            features::Use::Needs(_) => row.name.replace('`', ""),
            features::Use::Optional(_) => format!("({})", row.name.replace('`', "")),
        };
        let since = features::version(row.since);
        let how = row.check.describe().replace('`', "");
        println!("  {:<3}  {name}  [Linux {since}; {how}]", p.word());
    }

    println!("\nchoices made at run time:");
    for line in choices(&ring, &probe, &presence) {
        println!("  {line}");
    }

    println!("\nEINVAL, told apart with the probe:");
    for (what, res, why) in einval_examples(&mut ring, &probe)? {
        println!("  {what}: res={}\n    -> {why}", res_text(res));
    }
    Ok(())
}

// ANCHOR: probe
/// The opcodes this kernel knows (IORING_REGISTER_PROBE, Linux 5.6).
pub fn probe(ring: &IoUring) -> anyhow::Result<Probe> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|err| {
        let errno = diagnose::errno_text(&err);
        anyhow::anyhow!("IORING_REGISTER_PROBE failed with {errno}: it needs Linux 5.6")
    })?;
    Ok(probe)
}

/// Fails, naming the opcode and the kernel it needs, unless this kernel
/// knows every opcode in `codes`.
pub fn require(ring: &IoUring, codes: &[u8]) -> anyhow::Result<()> {
    let probe = probe(ring)?;
    match codes.iter().find(|&&code| !probe.is_supported(code)) {
        None => Ok(()),
        Some(&code) => {
            let (name, since) = describe(code)
                .unwrap_or_else(|| (format!("opcode {code}"), "a newer kernel".into()));
            Err(diagnose::unsupported_opcode(&name, &since))
        }
    }
}
// ANCHOR_END: probe

/// Whether this kernel has the table's row whose name contains `name`:
/// for a flag, the probe cannot say, but the row's check can.
pub fn has(name: &str) -> bool {
    let Some(row) = ROWS.iter().find(|r| r.name.contains(name)) else {
        return false;
    };
    let mut ring = match IoUring::new(4) {
        Ok(ring) => ring,
        Err(_) => return false,
    };
    let answer = match row.check {
        features::Check::Trial(trial) => {
            uring_book::feature_checks::answer(trial(&mut ring))
        }
        features::Check::Opcode(code) => match probe(&ring) {
            Ok(p) if p.is_supported(code) => Presence::Yes,
            _ => Presence::No,
        },
        features::Check::Feature(bit) => {
            if bit(ring.params()) {
                Presence::Yes
            } else {
                Presence::No
            }
        }
        _ => Presence::Unknown(String::new()),
    };
    answer == Presence::Yes
}

/// The table's name and version for an opcode; `None` for one the book
/// does not use.
fn describe(code: u8) -> Option<(String, String)> {
    ROWS.iter()
        .find(|r| matches!(r.check, features::Check::Opcode(c) if c == code))
        .map(|r| (r.name.replace('`', ""), features::version(r.since)))
}

// ANCHOR: einval
/// What `-EINVAL` in the CQE of an SQE with opcode `code` means.
pub fn explain_einval(probe: &Probe, code: u8) -> String {
    let name = describe(code).map_or(format!("opcode {code}"), |d| d.0);
    match (probe.is_supported(code), describe(code)) {
        (true, _) => format!("{name} exists here: the SQE's fields are wrong"),
        (false, Some((_, since))) => format!("this kernel lacks {name} (Linux {since})"),
        (false, None) => format!("this kernel does not know {name}"),
    }
}
// ANCHOR_END: einval

/// The paths this exercise picks from what the kernel answered.
fn choices(ring: &IoUring, probe: &Probe, presence: &[Presence]) -> Vec<String> {
    let has = |name: &str| {
        ROWS.iter()
            .zip(presence)
            .any(|(r, p)| r.name.contains(name) && *p == Presence::Yes)
    };
    let wait = match ex7_timeouts::deadline_path(ring) {
        ex7_timeouts::DeadlinePath::ExtArg => "submit_with_args (IORING_FEAT_EXT_ARG)",
        ex7_timeouts::DeadlinePath::TimeoutSqe => "a Timeout SQE (no EXT_ARG)",
    };
    let recv = if probe.is_supported(opcode::LinkTimeout::CODE) {
        "Recv linked to a LinkTimeout"
    } else {
        "Recv, a Timeout, and an AsyncCancel when it fires"
    };
    let cancel = if has("IORING_ASYNC_CANCEL_FD") {
        "one AsyncCancel2 with CancelBuilder::fd(..).all()"
    } else {
        "one AsyncCancel per user_data"
    };
    vec![
        format!("wait for CQEs with a deadline: {wait}"),
        format!("receive with a deadline: {recv}"),
        format!("cancel every request on a socket: {cancel}"),
    ]
}

/// Two SQEs that both come back with -EINVAL, for different reasons.
fn einval_examples(
    ring: &mut IoUring,
    probe: &Probe,
) -> anyhow::Result<Vec<(String, i32, String)>> {
    // Opcode 250 does not exist (yet): it stands for an operation newer than
    // this kernel. The SQE is a Nop with its opcode byte, the first, changed.
    let mut future = opcode::Nop::new().build().user_data(1);
    // SAFETY: Entry is repr(C) around io_uring_sqe, whose first field is the
    // one-byte opcode.
    unsafe { *(&mut future as *mut _ as *mut u8) = 250 };
    // A LinkTimeout must follow a request flagged IO_LINK; alone it is invalid.
    let ts = types::Timespec::new().nsec(1_000_000);
    let lone = opcode::LinkTimeout::new(&ts).build().user_data(2);
    // SAFETY: neither SQE names memory of ours except `ts`, which lives until
    // both CQEs are reaped below.
    unsafe { ring.submission().push_multiple(&[future, lone]) }
        .map_err(|_| anyhow::anyhow!("SQ full"))?;
    let (cqes, _ts) = ex7::complete(ring, 2, ts)?;
    Ok(vec![
        (
            "opcode 250".into(),
            ex7::find(&cqes, 1)?.res,
            explain_einval(probe, 250),
        ),
        (
            "a LinkTimeout linked to nothing".into(),
            ex7::find(&cqes, 2)?.res,
            explain_einval(probe, opcode::LinkTimeout::CODE),
        ),
    ])
}
