//! Turns the ways io_uring fails into one sentence a person can act on.
//!
//! io_uring reports trouble as a bare errno, and the same errno means different
//! things in different places: EPERM from io_uring_setup is a seccomp filter or
//! the `kernel.io_uring_disabled` sysctl; ENOMEM from io_uring_register is
//! usually RLIMIT_MEMLOCK. Every exercise passes its errors through here.

use std::io;

use uring_book::system;

/// Where to read more: the book's Appendix A, "When the kernel says no".
pub const APPENDIX_A: &str = "book/src/appendix-kernel-says-no.md";

/// The reason io_uring_setup(2) failed with `err`, with the remedy, as one line.
pub fn explain_setup_failure(err: &io::Error) -> String {
    format!(
        "io_uring_setup failed with {}: {}",
        errno_text(err),
        setup_failure_reason(err)
    )
}

/// Why io_uring_setup(2) failed with `err` and what to do, without the errno.
pub fn setup_failure_reason(err: &io::Error) -> String {
    let errno = err.raw_os_error().unwrap_or(0);
    match errno {
        libc::EPERM => explain_eperm(),
        libc::EACCES => format!(
            "a Linux security module refused it; SELinux answers EACCES where its \
             policy denies io_uring. Fix: find the denial in the audit log (`ausearch \
             -m avc -ts recent`) and allow io_uring in the policy. See {APPENDIX_A}"
        ),
        libc::ENOSYS => enosys_reason(
            system::seccomp_mode(),
            system::io_uring_disabled().is_some(),
            &system::kernel_release(),
        ),
        libc::ENOMEM => enomem_reason(
            system::kernel_version(),
            system::exempt_from_memlock(),
            system::memlock_limit().ok().and_then(|l| l.soft),
        ),
        libc::EINVAL => "the kernel rejected the ring's parameters; it may be older \
                         than this feature needs (run `cargo run -- doctor`)"
            .into(),
        _ => "run `cargo run -- doctor` to check the environment".into(),
    }
}

// ANCHOR: eperm
fn explain_eperm() -> String {
    match system::io_uring_disabled() {
        Some(2) => {
            return "io_uring is disabled on this machine (kernel.io_uring_disabled = 2). \
                    Fix: `sudo sysctl kernel.io_uring_disabled=0`"
                .into()
        }
        Some(1) if !allowed_when_restricted() => {
            return "io_uring is restricted to one group (kernel.io_uring_disabled = 1) \
                    and this process is not in it. Fix: `sudo sysctl \
                    kernel.io_uring_disabled=0`, or join the group in \
                    kernel.io_uring_group"
                .into()
        }
        _ => {}
    }
    if system::seccomp_mode() == Some(2) {
        return "a seccomp filter blocks io_uring (Docker's default profile does since \
                Docker 25). Fix: run the container with `--security-opt \
                seccomp=docker/seccomp-io_uring.json` (docker compose in this \
                repository does)"
            .into();
    }
    format!(
        "neither a seccomp filter nor the io_uring_disabled sysctl; another \
         security layer (a BPF LSM, a sandbox such as gVisor) refuses it. \
         See {APPENDIX_A}"
    )
}
// ANCHOR_END: eperm

/// The kernel lets CAP_SYS_ADMIN (in the initial user namespace) and the
/// members of kernel.io_uring_group through when io_uring_disabled is 1.
fn allowed_when_restricted() -> bool {
    if system::capable_sys_admin() {
        return true;
    }
    match system::io_uring_group() {
        Some(gid) if gid >= 0 => system::in_group(gid as u32),
        _ => false,
    }
}

/// ENOSYS: no io_uring in the kernel, or a filter that pretends so. The
/// kernel registers the io_uring_disabled sysctl only when it has io_uring,
/// so where the file exists a filter must be answering.
fn enosys_reason(seccomp: Option<u32>, has_sysctl: bool, release: &str) -> String {
    const PROFILE: &str = "run the container with `--security-opt \
                           seccomp=docker/seccomp-io_uring.json`";
    let no_io_uring = format!(
        "this kernel ({release}) was built without io_uring (CONFIG_IO_URING) or \
         predates 5.1"
    );
    match (seccomp == Some(2), has_sysctl) {
        (true, true) => format!(
            "a seccomp filter answers io_uring calls with ENOSYS, as if the kernel had \
             no io_uring; this kernel has it (its io_uring_disabled sysctl exists). \
             Fix: {PROFILE}"
        ),
        (true, false) => format!(
            "either a seccomp filter answers io_uring calls with ENOSYS, or \
             {no_io_uring}. Fix: {PROFILE}; if that changes nothing, use a kernel \
             with io_uring (5.19 or newer)"
        ),
        (false, true) => "the kernel has io_uring (its io_uring_disabled sysctl \
                          exists), so a sandbox between this process and the kernel \
                          (gVisor, for one) answers for it. Fix: run outside that \
                          sandbox"
            .into(),
        (false, false) => format!("{no_io_uring}. Fix: use a kernel of 5.19 or newer"),
    }
}

/// ENOMEM from io_uring_setup. Kernels up to 5.11, and again from 6.14, charge
/// the rings to RLIMIT_MEMLOCK; 5.12 to 6.13 charge them to the memory cgroup.
fn enomem_reason(
    version: Option<(u32, u32)>,
    exempt: bool,
    limit: Option<u64>,
) -> String {
    let memlock = system::rings_charged_to_memlock(version);
    if memlock && !exempt {
        return format!(
            "the ring's memory is charged to RLIMIT_MEMLOCK ({}) and this process is \
             not exempt (no CAP_IPC_LOCK in the initial user namespace). Fix: raise \
             the limit (`ulimit -l 8192`, or `--ulimit memlock=-1` for docker run)",
            system::human_bytes(limit)
        );
    }
    let why = if memlock {
        "CAP_IPC_LOCK exempts this process from RLIMIT_MEMLOCK"
    } else {
        "Linux 5.12 to 6.13 charge the rings to the memory cgroup, not RLIMIT_MEMLOCK"
    };
    format!(
        "the kernel could not allocate the ring's memory: {why}, so a cgroup memory \
         limit or a shortage of memory is the cause. Fix: free memory or raise the \
         cgroup's memory.max; a smaller ring needs less"
    )
}

/// An `anyhow::Error` for a failed io_uring_setup, ready for `?`:
/// `IoUring::new(8).map_err(diagnose::setup)?`.
pub fn setup(err: io::Error) -> anyhow::Error {
    anyhow::anyhow!(explain_setup_failure(&err))
}

/// A tokio-uring runtime, or the diagnosis of why io_uring is unavailable.
///
/// `tokio_uring::start` unwraps the error of io_uring_setup and panics; the
/// exercises build the runtime this way instead and `block_on` it.
pub fn tokio_uring_runtime(entries: u32) -> anyhow::Result<tokio_uring::Runtime> {
    tokio_uring::Runtime::new(tokio_uring::builder().entries(entries)).map_err(setup)
}

/// An `anyhow::Error` for a failed buffer registration of `bytes` bytes.
pub fn register_buffers(err: io::Error, bytes: usize) -> anyhow::Error {
    let errno = err.raw_os_error().unwrap_or(0);
    if errno == libc::ENOMEM && !system::has_cap_ipc_lock() {
        let limit = system::memlock_limit().ok().and_then(|l| l.soft);
        return anyhow::anyhow!(
            "registering {} of buffers failed with ENOMEM: registered buffers are \
             charged to RLIMIT_MEMLOCK ({}) because this process lacks CAP_IPC_LOCK. \
             Fix: `ulimit -l {}` (or `--ulimit memlock=-1` for docker run), or use \
             smaller buffers",
            system::human_bytes(Some(bytes as u64)),
            system::human_bytes(limit),
            (bytes as u64).div_ceil(1024) * 2
        );
    }
    if errno == libc::ENOMEM && system::in_user_namespace() {
        // The kernel checks CAP_IPC_LOCK in the initial user namespace only.
        let limit = system::memlock_limit().ok().and_then(|l| l.soft);
        return anyhow::anyhow!(
            "registering {} of buffers failed with ENOMEM: this process holds \
             CAP_IPC_LOCK only inside a user namespace (a rootless container), where \
             it does not exempt registered buffers from RLIMIT_MEMLOCK ({}). Fix: \
             raise the limit from outside (`--ulimit memlock=-1` for docker or podman \
             run), or use smaller buffers",
            system::human_bytes(Some(bytes as u64)),
            system::human_bytes(limit)
        );
    }
    anyhow::anyhow!(
        "io_uring_register(IORING_REGISTER_BUFFERS, {}) failed with {} ({err})",
        system::human_bytes(Some(bytes as u64)),
        system::errno_name(errno)
    )
}

/// An `anyhow::Error` for an opcode the running kernel does not know.
pub fn unsupported_opcode(opcode: &str, since: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this kernel ({}) does not support {opcode}, which needs Linux {since}. \
         Fix: run a newer kernel; `cargo run -- doctor` lists what is missing",
        system::kernel_release()
    )
}

/// The error a CQE's negative `res` stands for.
pub fn cqe_error(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

/// `EISDIR (Is a directory)`: the symbolic name first, then the text.
pub fn errno_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => {
            let text = err.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("{} ({text})", system::errno_name(errno))
        }
        None => err.to_string(),
    }
}

/// A failed file operation, in the one style of the book's file errors:
/// `cannot open /x: ENOENT (No such file or directory)`.
pub fn file_error(verb: &str, path: &std::path::Path, err: &io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot {verb} {}: {}", path.display(), errno_text(err))
}

/// The one line `main` prints for `err`: its causes joined by ": ", every OS
/// error among them in the style of [`errno_text`], whoever added it.
pub fn error_line(err: &anyhow::Error) -> String {
    let causes: Vec<String> = err
        .chain()
        .map(|cause| match cause.downcast_ref::<io::Error>() {
            Some(os) if os.raw_os_error().is_some() => errno_text(os),
            _ => cause.to_string(),
        })
        .collect();
    causes.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enosys_names_the_errno_and_a_remedy() {
        let msg = explain_setup_failure(&io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(
            msg.starts_with("io_uring_setup failed with ENOSYS"),
            "{msg}"
        );
        assert!(msg.contains("Fix:"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn enosys_names_a_filter_only_where_the_kernel_has_io_uring() {
        let both = enosys_reason(Some(2), false, "5.14.0");
        assert!(both.starts_with("either a seccomp filter"), "{both}");
        assert!(both.contains("built without io_uring"), "{both}");
        let filter = enosys_reason(Some(2), true, "6.8.0");
        assert!(
            filter.contains("answers io_uring calls with ENOSYS"),
            "{filter}"
        );
        assert!(!filter.contains("built without"), "{filter}");
        let kernel = enosys_reason(Some(0), false, "5.14.0");
        assert!(
            kernel.starts_with("this kernel (5.14.0) was built"),
            "{kernel}"
        );
        let sandbox = enosys_reason(Some(0), true, "6.8.0");
        assert!(sandbox.contains("sandbox"), "{sandbox}");
        for msg in [both, filter, kernel, sandbox] {
            assert!(msg.contains("Fix:") && !msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn enomem_blames_memlock_only_where_the_kernel_charges_rings_to_it() {
        for v in [(5, 11), (6, 14), (6, 18)] {
            let msg = enomem_reason(Some(v), false, Some(0));
            assert!(
                msg.contains("charged to RLIMIT_MEMLOCK (0 bytes)"),
                "{v:?}: {msg}"
            );
        }
        for v in [(5, 12), (6, 1), (6, 13)] {
            let msg = enomem_reason(Some(v), false, Some(0));
            assert!(msg.contains("memory cgroup"), "{v:?}: {msg}");
            assert!(!msg.contains("ulimit"), "{v:?}: {msg}");
        }
        let exempt = enomem_reason(Some((6, 18)), true, None);
        assert!(exempt.contains("exempts this process"), "{exempt}");
    }

    #[test]
    fn eacces_points_at_a_security_module() {
        let msg = explain_setup_failure(&io::Error::from_raw_os_error(libc::EACCES));
        assert!(
            msg.starts_with("io_uring_setup failed with EACCES"),
            "{msg}"
        );
        assert!(msg.contains("SELinux") && msg.contains("Fix:"), "{msg}");
    }

    #[test]
    fn errno_text_is_name_then_words() {
        let err = io::Error::from_raw_os_error(libc::EISDIR);
        assert_eq!(errno_text(&err), "EISDIR (Is a directory)");
    }

    #[test]
    fn every_os_error_in_a_chain_has_the_same_style() {
        use anyhow::Context;
        let err = Err::<(), _>(io::Error::from_raw_os_error(libc::ENOENT))
            .context("cannot create /x/y")
            .unwrap_err();
        assert_eq!(
            error_line(&err),
            "cannot create /x/y: ENOENT (No such file or directory)"
        );
        let err = file_error(
            "open",
            std::path::Path::new("/x"),
            &io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(
            error_line(&err),
            "cannot open /x: EACCES (Permission denied)"
        );
    }
}
