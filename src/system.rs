//! Facts about the running system that decide whether io_uring can work:
//! the kernel release, the `kernel.io_uring_disabled` sysctl, the seccomp
//! mode, capabilities and resource limits. All read from /proc or libc.

use std::fs;
use std::io;

/// `uname -r`, for example `6.8.0-45-generic`.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it or fails.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The leading `major.minor` of a release string: `6.8.0-45-generic` is (6, 8).
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel's `major.minor`, if the release string has one.
pub fn kernel_version() -> Option<(u32, u32)> {
    parse_version(&kernel_release())
}

// ANCHOR: io_uring_disabled
/// `/proc/sys/kernel/io_uring_disabled` (kernel 6.6+): 0 allows every
/// process, 1 only members of `kernel.io_uring_group` and CAP_SYS_ADMIN, 2 no one.
/// `None` when the file does not exist (an older kernel: nothing to disable).
pub fn io_uring_disabled() -> Option<u32> {
    fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
// ANCHOR_END: io_uring_disabled

/// `/proc/sys/kernel/io_uring_group`: the group allowed to use io_uring when
/// `io_uring_disabled` is 1 (-1 means none).
pub fn io_uring_group() -> Option<i64> {
    fs::read_to_string("/proc/sys/kernel/io_uring_group")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// One field of `/proc/self/status`, such as `Seccomp` or `CapEff`.
fn status_field(name: &str) -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().to_string())
    })
}

// ANCHOR: seccomp_mode
/// The seccomp mode of this process: 0 none, 1 strict, 2 filter.
pub fn seccomp_mode() -> Option<u32> {
    status_field("Seccomp")?.parse().ok()
}
// ANCHOR_END: seccomp_mode

/// Whether the effective capability set holds capability number `cap`.
pub fn has_capability(cap: u32) -> bool {
    status_field("CapEff")
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|mask| mask & (1 << cap) != 0)
}

/// Capability numbers from linux/capability.h (libc does not export them).
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_ADMIN: u32 = 21;

/// CAP_IPC_LOCK exempts a process from RLIMIT_MEMLOCK accounting.
pub fn has_cap_ipc_lock() -> bool {
    has_capability(CAP_IPC_LOCK)
}

/// CAP_SYS_ADMIN lets a process use io_uring when `io_uring_disabled` is 1.
pub fn has_cap_sys_admin() -> bool {
    has_capability(CAP_SYS_ADMIN)
}

/// Whether this process is in group `gid` (as primary or supplementary group).
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getgroups with a buffer of the size it reported.
    unsafe {
        if libc::getegid() == gid {
            return true;
        }
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let n = libc::getgroups(n, groups.as_mut_ptr());
        n > 0 && groups[..n as usize].contains(&gid)
    }
}

/// A resource limit as (soft, hard); `None` stands for RLIM_INFINITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

fn getrlimit(resource: libc::__rlimit_resource_t) -> io::Result<Limit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok(Limit {
        soft: finite(lim.rlim_cur),
        hard: finite(lim.rlim_max),
    })
}

/// RLIMIT_MEMLOCK in bytes.
pub fn memlock_limit() -> io::Result<Limit> {
    getrlimit(libc::RLIMIT_MEMLOCK)
}

/// RLIMIT_NOFILE, the number of file descriptors.
pub fn nofile_limit() -> io::Result<Limit> {
    getrlimit(libc::RLIMIT_NOFILE)
}

/// Raises the RLIMIT_NOFILE soft limit to the hard limit and returns the new
/// soft limit. A server with a thousand clients needs more than the usual 1024.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// Formats a byte count the way people read it: `64 KiB`, `8 MiB`, `unlimited`.
pub fn human_bytes(bytes: Option<u64>) -> String {
    match bytes {
        None => "unlimited".into(),
        Some(b) if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        Some(b) if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        Some(b) => format!("{b} bytes"),
    }
}

/// The symbolic name of an errno value, such as `EPERM`.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ENOSYS => "ENOSYS",
        libc::ECANCELED => "ECANCELED",
        libc::ETIME => "ETIME",
        libc::ENOBUFS => "ENOBUFS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EALREADY => "EALREADY",
        libc::ENOTCONN => "ENOTCONN",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENXIO => "ENXIO",
        _ => "errno",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_distribution_release_strings() {
        assert_eq!(parse_version("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(
            parse_version("5.15.153.1-microsoft-standard-WSL2"),
            Some((5, 15))
        );
        assert_eq!(parse_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_version("unknown"), None);
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(Some(65536)), "64 KiB");
        assert_eq!(human_bytes(Some(8 << 20)), "8 MiB");
        assert_eq!(human_bytes(Some(1000)), "1000 bytes");
        assert_eq!(human_bytes(None), "unlimited");
    }

    #[test]
    fn this_process_reports_a_seccomp_mode() {
        assert!(matches!(seccomp_mode(), Some(0..=2)));
    }
}
