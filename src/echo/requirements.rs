//! What exercise 8 needs from the kernel, listed once, and checked at startup.
//!
//! A probe (`IORING_REGISTER_PROBE`, Linux 5.6) lists the opcodes a kernel
//! knows, but not the flags of an opcode: it cannot say whether
//! `IORING_OP_RECV` takes `IORING_RECV_MULTISHOT`. For such a flag the check
//! asks for an opcode that arrived in the same release, so a kernel that
//! knows the opcode has the flag too.

use io_uring::{opcode, register::Probe, IoUring};

use uring_book::{diagnose, system};

/// One thing the server needs, the kernel release that brought it, and the
/// opcode whose presence shows it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// What the server uses it for, in words.
    pub what: &'static str,
    /// The kernel's name for it.
    pub name: &'static str,
    pub since: &'static str,
    /// An opcode the probe must report: the feature itself, or one from the
    /// same release.
    pub evidence: u8,
}

const fn need(
    what: &'static str,
    name: &'static str,
    since: &'static str,
    code: u8,
) -> Need {
    Need {
        what,
        name,
        since,
        evidence: code,
    }
}

const SEND_ZC: u8 = opcode::SendZc::CODE;
const SOCKET: u8 = opcode::Socket::CODE;

// ANCHOR: needs
/// Everything the server needs, newest first: on an old kernel the first
/// missing entry names the release to upgrade to. IORING_OP_SEND_ZC (6.0)
/// and IORING_OP_SOCKET (5.19) stand for the flags of their releases.
#[rustfmt::skip]
pub const NEEDS: &[Need] = &[
    need("multishot receive", "IORING_RECV_MULTISHOT", "6.0", SEND_ZC),
    need("single-issuer rings", "IORING_SETUP_SINGLE_ISSUER", "6.0", SEND_ZC),
    need("multishot accept", "IORING_ACCEPT_MULTISHOT", "5.19", SOCKET),
    need("provided buffer rings", "IORING_REGISTER_PBUF_RING", "5.19", SOCKET),
    need("cancelling all requests", "IORING_ASYNC_CANCEL_ANY", "5.19", SOCKET),
    need("sends", "IORING_OP_SEND", "5.6", opcode::Send::CODE),
    need("closes", "IORING_OP_CLOSE", "5.6", opcode::Close::CODE),
    need("cancellation", "IORING_OP_ASYNC_CANCEL", "5.5", opcode::AsyncCancel::CODE),
    need("timeouts", "IORING_OP_TIMEOUT", "5.4", opcode::Timeout::CODE),
    need("polling the stop signal", "IORING_OP_POLL_ADD", "5.1", opcode::PollAdd::CODE),
];

/// The oldest kernel that has everything in [`NEEDS`].
pub const FLOOR: &str = "6.0";
// ANCHOR_END: needs

/// The first need that `supported` (a probe) does not meet.
pub fn first_missing(supported: impl Fn(u8) -> bool) -> Option<&'static Need> {
    NEEDS.iter().find(|need| !supported(need.evidence))
}

/// The one line a reader sees when `need` is missing on kernel `release`.
pub fn missing_message(need: &Need, release: &str) -> String {
    format!(
        "this kernel ({release}) lacks {} ({}), which needs Linux {}: exercise 8 needs \
         Linux {FLOOR}, and 6.1 for IORING_SETUP_DEFER_TASKRUN. Fix: run a newer \
         kernel; `cargo run -- doctor` lists what is missing",
        need.what, need.name, need.since
    )
}

/// Probes the running kernel; `Err` with one line naming the first missing
/// feature and its kernel version.
pub fn check() -> anyhow::Result<()> {
    let ring = IoUring::new(2).map_err(diagnose::setup)?;
    let mut probe = Probe::new();
    let release = system::kernel_release();
    if ring.submitter().register_probe(&mut probe).is_err() {
        // IORING_REGISTER_PROBE itself is 5.6: everything newer is missing.
        anyhow::bail!(missing_message(&NEEDS[0], &release));
    }
    if let Some(need) = first_missing(|code| probe.is_supported(code)) {
        anyhow::bail!(missing_message(need, &release));
    }
    // Without IORING_FEAT_NODROP (5.5) a full CQ would lose completions.
    anyhow::ensure!(
        ring.params().is_feature_nodrop(),
        "this kernel ({release}) drops completions when the CQ is full \
         (no IORING_FEAT_NODROP, Linux 5.5)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_everything() {
        check().unwrap();
    }

    #[test]
    fn a_5_19_kernel_is_told_about_6_0_and_multishot_receive() {
        // What a 5.19 kernel's probe says: everything up to IORING_OP_SOCKET.
        let probe_5_19 = |code: u8| code <= opcode::Socket::CODE;
        let need = first_missing(probe_5_19).unwrap();
        assert_eq!(need.name, "IORING_RECV_MULTISHOT");
        let line = missing_message(need, "5.19.0");
        assert!(line.contains("lacks multishot receive"), "{line}");
        assert!(line.contains("needs Linux 6.0"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_5_10_kernel_is_told_about_the_newest_need_first() {
        let probe_5_10 = |code: u8| code <= opcode::Tee::CODE;
        assert_eq!(first_missing(probe_5_10).unwrap().since, "6.0");
        // Everything but the newest opcodes: the 5.19 needs are named after.
        let without_socket = |code: u8| code != opcode::Socket::CODE;
        assert_eq!(
            first_missing(without_socket).unwrap().name,
            "IORING_ACCEPT_MULTISHOT"
        );
    }

    #[test]
    fn the_floor_is_the_newest_need() {
        let newest = NEEDS
            .iter()
            .filter_map(|n| system::parse_version(n.since))
            .max()
            .unwrap();
        assert_eq!(Some(newest), system::parse_version(FLOOR));
    }
}
