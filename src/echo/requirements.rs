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

// ANCHOR: needs
/// Everything the server needs, newest first: on an old kernel the first
/// missing entry names the release to upgrade to.
pub const NEEDS: &[Need] = &[
    Need {
        what: "multishot receive",
        name: "IORING_RECV_MULTISHOT",
        since: "6.0",
        evidence: opcode::SendZc::CODE, // IORING_OP_SEND_ZC, also 6.0
    },
    Need {
        what: "single-issuer rings",
        name: "IORING_SETUP_SINGLE_ISSUER",
        since: "6.0",
        evidence: opcode::SendZc::CODE,
    },
    Need {
        what: "multishot accept",
        name: "IORING_ACCEPT_MULTISHOT",
        since: "5.19",
        evidence: opcode::Socket::CODE, // IORING_OP_SOCKET, also 5.19
    },
    Need {
        what: "provided buffer rings",
        name: "IORING_REGISTER_PBUF_RING",
        since: "5.19",
        evidence: opcode::Socket::CODE,
    },
    Need {
        what: "cancelling every request at once",
        name: "IORING_ASYNC_CANCEL_ANY",
        since: "5.19",
        evidence: opcode::Socket::CODE,
    },
    Need {
        what: "sends",
        name: "IORING_OP_SEND",
        since: "5.6",
        evidence: opcode::Send::CODE,
    },
    Need {
        what: "closes",
        name: "IORING_OP_CLOSE",
        since: "5.6",
        evidence: opcode::Close::CODE,
    },
    Need {
        what: "cancellation",
        name: "IORING_OP_ASYNC_CANCEL",
        since: "5.5",
        evidence: opcode::AsyncCancel::CODE,
    },
    Need {
        what: "timeouts",
        name: "IORING_OP_TIMEOUT",
        since: "5.4",
        evidence: opcode::Timeout::CODE,
    },
    Need {
        what: "polling the stop signal",
        name: "IORING_OP_POLL_ADD",
        since: "5.1",
        evidence: opcode::PollAdd::CODE,
    },
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
