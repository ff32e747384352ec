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
/// `/proc/sys/kernel/io_uring_disabled`: 0 allows every process, 1 only
/// CAP_SYS_ADMIN and members of `kernel.io_uring_group`, 2 no one. Upstream
/// since 6.6, backported by some distributions (RHEL 9.3's 5.14), so the file
/// is read whatever the version. `None`: this kernel has no such switch.
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

/// Whether the effective capability set holds capability number `cap`, in
/// this process's own user namespace.
pub fn has_capability(cap: u32) -> bool {
    status_field("CapEff")
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|mask| mask & (1 << cap) != 0)
}

/// Capability numbers from linux/capability.h (libc does not export them).
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process runs in a user namespace other than the initial one,
/// whose uid_map is the identity over all 2^32 ids.
pub fn in_user_namespace() -> bool {
    fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]
    })
}

/// Whether the kernel's `capable(cap)`, which asks about the initial user
/// namespace, says yes. A capability held only inside a user namespace (root
/// in a rootless container) does not count there.
pub fn capable(cap: u32) -> bool {
    has_capability(cap) && !in_user_namespace()
}

/// CAP_IPC_LOCK in this process's namespace (see [`capable`] for the kernel's view).
pub fn has_cap_ipc_lock() -> bool {
    has_capability(CAP_IPC_LOCK)
}

/// Whether the kernel exempts rings this process creates from RLIMIT_MEMLOCK:
/// it checks CAP_IPC_LOCK in the initial user namespace at io_uring_setup.
pub fn exempt_from_memlock() -> bool {
    capable(CAP_IPC_LOCK)
}

/// Whether io_uring_setup passes the `io_uring_disabled = 1` check through
/// CAP_SYS_ADMIN, which the kernel also looks for in the initial namespace.
pub fn capable_sys_admin() -> bool {
    capable(CAP_SYS_ADMIN)
}

/// Whether this process is in group `kgid`, a group id as the initial user
/// namespace numbers it (as `kernel.io_uring_group` does). Like the kernel's
/// `in_group_p`, it checks the filesystem gid and the supplementary groups.
pub fn in_group(kgid: u32) -> bool {
    let map = fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    let Some(gid) = id_in_namespace(&map, kgid) else {
        return false; // the group has no name in this namespace
    };
    let fsgid = status_field("Gid").and_then(|ids| {
        ids.split_whitespace()
            .nth(3)
            .and_then(|g| g.parse::<u32>().ok())
    });
    if fsgid == Some(gid) {
        return true;
    }
    // SAFETY: getgroups with a buffer of the size it reported.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let n = libc::getgroups(n, groups.as_mut_ptr());
        n > 0 && groups[..n as usize].contains(&gid)
    }
}

/// The id that `outer` (an id of the initial namespace) has inside this
/// namespace, by a `uid_map`/`gid_map` text: lines of `inside outside count`.
pub fn id_in_namespace(map: &str, outer: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut nums = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        let (inside, outside, count) = (nums.next()??, nums.next()??, nums.next()??);
        let outer = u64::from(outer);
        (outside..outside + count)
            .contains(&outer)
            .then(|| (inside + outer - outside) as u32)
    })
}

/// Whether a kernel of `version` charges the rings themselves to
/// RLIMIT_MEMLOCK: 5.1 to 5.11 did, 5.12 to 6.13 charge them to the memory
/// cgroup instead, and 6.14 charges them to RLIMIT_MEMLOCK again.
pub fn rings_charged_to_memlock(version: Option<(u32, u32)>) -> bool {
    version.is_none_or(|v| !((5, 12)..(6, 14)).contains(&v))
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
    fn group_ids_map_into_a_user_namespace() {
        let identity = "         0          0 4294967295\n";
        assert_eq!(id_in_namespace(identity, 1000), Some(1000));
        // A rootless container: its 0 is the host's 100000, 65536 ids long.
        let rootless = "0 1000 1\n1 100000 65536\n";
        assert_eq!(id_in_namespace(rootless, 1000), Some(0));
        assert_eq!(id_in_namespace(rootless, 100_005), Some(6));
        assert_eq!(id_in_namespace(rootless, 27), None);
        assert_eq!(id_in_namespace("", 27), None);
    }

    #[test]
    fn this_process_reports_a_seccomp_mode() {
        assert!(matches!(seccomp_mode(), Some(0..=2)));
    }
}
