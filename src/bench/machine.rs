//! What a benchmark result depends on besides the code: the CPUs, the kernel,
//! and the file system under the test files (tmpfs has no device; some file
//! systems refuse O_DIRECT).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use uring_book::system;

/// The machine a run was made on; every record carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map(|(_, name)| name.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: system::kernel_release(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} CPUs ({}), Linux {}",
            self.cpus, self.cpu_model, self.kernel
        )
    }
}

/// The file system that holds a directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FileSystem {
    /// `ext4`, `tmpfs`, `xfs`...: from statfs(2)'s f_type.
    pub kind: String,
    /// The mounted device (`/dev/vda`) or pseudo-source (`tmpfs`).
    pub device: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// The device's I/O scheduler (`/sys/block/DEV/queue/scheduler`, the
    /// one in brackets); `None` without a block device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// The device's readahead window in KiB (`queue/read_ahead_kb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ahead_kb: Option<u64>,
}

impl FileSystem {
    /// tmpfs keeps files in the page cache only: there is no device to read.
    pub fn is_tmpfs(&self) -> bool {
        self.kind == "tmpfs"
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} on {} (mounted at {})",
            self.kind, self.device, self.mount_point
        );
        if let Some(s) = &self.scheduler {
            text += &format!(", I/O scheduler {s}");
        }
        if let Some(kb) = self.read_ahead_kb {
            text += &format!(", read_ahead_kb {kb}");
        }
        text
    }
}

/// statfs(2) magic numbers from linux/magic.h (libc does not name them all).
const FS_MAGIC: &[(i64, &str)] = &[
    (0xEF53, "ext4"),
    (0x0102_1994, "tmpfs"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x6969, "nfs"),
    (0x794C_7630, "overlayfs"),
    (0x2FC1_2FC1, "zfs"),
    (0x6573_5546, "fuse"),
    (0xF2F5_2010, "f2fs"),
    (0x0102_1997, "9p"),
    (0x5346_4846, "wslfs"),
];

/// The file system of `dir`, which must exist and be a directory.
pub fn file_system(dir: &Path) -> io::Result<FileSystem> {
    if !dir.is_dir() {
        let err = fs::metadata(dir).err().unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory")
        });
        return Err(err);
    }
    let c_dir = CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statfs fills one struct for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_dir.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let magic = st.f_type as i64;
    let kind = FS_MAGIC
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("fs-{magic:#x}"), |(_, name)| name.to_string());
    let (device, mount_point) = mount_of(dir).unwrap_or_else(|| ("?".into(), "?".into()));
    let queue = queue_dir(&device);
    let read = |name: &str| fs::read_to_string(queue.as_ref()?.join(name)).ok();
    Ok(FileSystem {
        kind,
        scheduler: read("scheduler").and_then(|s| selected_scheduler(&s)),
        read_ahead_kb: read("read_ahead_kb").and_then(|s| s.trim().parse().ok()),
        device,
        mount_point,
    })
}

/// `/sys/block/DEV/queue` of a mounted device such as `/dev/vda` or, for a
/// partition (`/dev/vda1`), of the disk that holds it.
fn queue_dir(device: &str) -> Option<std::path::PathBuf> {
    let name = Path::new(device.strip_prefix("/dev/")?).file_name()?;
    let dev = fs::canonicalize(Path::new("/sys/class/block").join(name)).ok()?;
    [dev.join("queue"), dev.parent()?.join("queue")]
        .into_iter()
        .find(|q| q.is_dir())
}

/// The scheduler in use from `none [mq-deadline] kyber bfq`.
fn selected_scheduler(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// The (source, mount point) of the longest mount point that contains `dir`.
fn mount_of(dir: &Path) -> Option<(String, String)> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let point = fields.next()?.replace("\\040", " ");
            dir.starts_with(&point).then(|| (source.to_string(), point))
        })
        .max_by_key(|(_, point)| point.len())
}

/// Whether files in `dir` can be opened with O_DIRECT. Some file systems
/// (older tmpfs, some FUSE and overlay setups) answer EINVAL.
pub fn supports_o_direct(dir: &Path) -> io::Result<bool> {
    let probe = uring_book::cleanup::tempfile_in(dir, ".odirect-probe")?;
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(probe.path())
    {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why random O_DIRECT reads cannot measure a device in `dir`, if they cannot.
pub fn direct_io_obstacle(fs: &FileSystem, o_direct: bool) -> Option<String> {
    if fs.is_tmpfs() {
        return Some(format!(
            "{} is tmpfs: its files live in the page cache, there is no device to read \
             (use --dir on a disk-backed file system)",
            fs.mount_point
        ));
    }
    if !o_direct {
        return Some(format!(
            "{} ({}) does not support O_DIRECT (open fails with EINVAL)",
            fs.mount_point, fs.kind
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_is_tmpfs_and_has_no_device_workload() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return; // not every container mounts one; nothing to check there
        }
        let fs = file_system(shm).unwrap();
        assert!(fs.is_tmpfs(), "{fs:?}");
        let why = direct_io_obstacle(&fs, supports_o_direct(shm).unwrap()).unwrap();
        assert!(why.contains("tmpfs"), "{why}");
    }

    #[test]
    fn the_crate_directory_is_found_in_the_mount_table() {
        let fs = file_system(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_ne!(fs.mount_point, "?");
        assert!(!fs.kind.is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_file_system() {
        let err = file_system(Path::new("/no/such/dir")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_file_system_without_o_direct_is_named() {
        let fs = FileSystem {
            kind: "fuse".into(),
            device: "sshfs".into(),
            mount_point: "/mnt/remote".into(),
            scheduler: None,
            read_ahead_kb: None,
        };
        let why = direct_io_obstacle(&fs, false).unwrap();
        assert!(why.contains("O_DIRECT") && why.contains("fuse"), "{why}");
        let ext4 = FileSystem {
            kind: "ext4".into(),
            ..fs
        };
        assert_eq!(direct_io_obstacle(&ext4, true), None);
    }

    #[test]
    fn the_scheduler_in_brackets_is_the_one_in_use() {
        let text = "none [mq-deadline] kyber bfq\n";
        assert_eq!(selected_scheduler(text).as_deref(), Some("mq-deadline"));
        assert_eq!(selected_scheduler("[none] \n").as_deref(), Some("none"));
        assert_eq!(selected_scheduler("none"), None);
    }

    #[test]
    fn machine_names_its_kernel() {
        let m = Machine::this();
        assert!(m.cpus >= 1);
        assert_eq!(m.kernel, system::kernel_release());
    }
}
