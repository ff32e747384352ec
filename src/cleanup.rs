//! What a run creates, it removes, even when Ctrl-C stops it.
//!
//! A `tempfile::TempDir` removes itself when it is dropped, but SIGINT and
//! SIGTERM end a process without running destructors: a benchmark stopped
//! with Ctrl-C would leave its 256 MiB test file in /var/tmp. So every
//! temporary file and directory the program creates comes from here and is
//! registered while it exists. While anything is registered, a handler for
//! both signals is installed; a thread then removes what is registered, says
//! so in one line on stderr and exits with 128 + the signal's number (130 for
//! SIGINT, 143 for SIGTERM), the status a shell reports for a process the
//! signal killed. With nothing registered the signals keep their previous
//! disposition, so a server that catches them itself (exercise 5) is not
//! disturbed.
//!
//! Tests set `URING_BOOK_HOLD_TEMP_FILES`: each temporary directory or file
//! then waits (at most a minute) before it is removed normally, and says so
//! on stderr, so that a signal can arrive while its files surely exist.

use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use uring_book::system;

/// The variable that makes temporary files wait for a signal (for tests).
pub const HOLD_VAR: &str = "URING_BOOK_HOLD_TEMP_FILES";

/// How long a held temporary file waits for the signal.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// The signals that remove the registered files.
const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// A temporary directory, removed when dropped or when a signal ends the run.
pub struct TempDir {
    // Fields drop in order: the directory goes before its registration, so a
    // signal that arrives meanwhile still finds it listed.
    dir: tempfile::TempDir,
    _registered: Registered,
}

/// A new directory in the system's temporary directory (`$TMPDIR` or /tmp).
pub fn tempdir() -> io::Result<TempDir> {
    let dir = tempfile::tempdir()?;
    let _registered = register(dir.path());
    Ok(TempDir { dir, _registered })
}

/// A new directory in `parent`, its name starting with `prefix`.
pub fn tempdir_in(parent: impl AsRef<Path>, prefix: &str) -> io::Result<TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
    let _registered = register(dir.path());
    Ok(TempDir { dir, _registered })
}

impl Deref for TempDir {
    type Target = tempfile::TempDir;
    fn deref(&self) -> &tempfile::TempDir {
        &self.dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        hold(self.dir.path());
    }
}

/// A temporary file, removed when dropped or when a signal ends the run.
pub struct TempFile {
    file: tempfile::NamedTempFile,
    _registered: Registered,
}

/// A new empty file in `parent`, its name starting with `prefix`.
pub fn tempfile_in(parent: impl AsRef<Path>, prefix: &str) -> io::Result<TempFile> {
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(parent)?;
    let _registered = register(file.path());
    Ok(TempFile { file, _registered })
}

impl Deref for TempFile {
    type Target = tempfile::NamedTempFile;
    fn deref(&self) -> &tempfile::NamedTempFile {
        &self.file
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        hold(self.file.path());
    }
}

fn hold(path: &Path) {
    if std::env::var_os(HOLD_VAR).is_some_and(|v| !v.is_empty()) {
        eprintln!("holding {} until a signal ({HOLD_VAR})", path.display());
        std::thread::sleep(HOLD_LIMIT);
    }
}

/// A path that a signal removes until this value is dropped. Dropping it does
/// not remove the path: the owner does that, or has handed the path on.
#[must_use = "the path is unregistered when this is dropped"]
pub struct Registered {
    id: u64,
}

/// Registers `path`, a file or a directory, for removal on SIGINT or SIGTERM.
pub fn register(path: impl Into<PathBuf>) -> Registered {
    let mut registry = registry();
    if registry.paths.is_empty() {
        registry.previous = Some(install());
    }
    let id = registry.next_id;
    registry.next_id += 1;
    registry.paths.push((id, path.into()));
    Registered { id }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut registry = registry();
        registry.paths.retain(|(id, _)| *id != self.id);
        if registry.paths.is_empty() {
            if let Some(previous) = registry.previous.take() {
                restore(&previous);
            }
        }
    }
}

/// Call before the process exits by itself: if a signal is being handled, this
/// waits for the thread that removes the files to end the process, so that an
/// error caused by the removal (a file vanished) is not printed instead.
pub fn settle() {
    if SIGNALED.load(Ordering::SeqCst) != 0 {
        // The remover holds the registry until it exits the process.
        drop(registry());
        loop {
            std::thread::park();
        }
    }
}

struct Registry {
    paths: Vec<(u64, PathBuf)>,
    next_id: u64,
    /// The dispositions our handler replaced, while it is installed.
    previous: Option<[libc::sigaction; 2]>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    paths: Vec::new(),
    next_id: 0,
    previous: None,
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic elsewhere must not stop the files from being removed.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The write end of the pipe that wakes the remover thread.
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// The signal being handled, or 0.
static SIGNALED: AtomicI32 = AtomicI32::new(0);

/// The signal handler does only what is async-signal-safe: it notes the
/// signal and writes one byte into a pipe. Removing files needs allocation,
/// which a handler must not do, so a thread does it.
extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: errno is thread-local; write(2) may change it, so it is restored.
    let errno = unsafe { *libc::__errno_location() };
    let _ = SIGNALED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    let byte = signal as u8;
    // SAFETY: one byte from a live local; a full or closed pipe just fails.
    unsafe { libc::write(WAKE.load(Ordering::SeqCst), (&raw const byte).cast(), 1) };
    unsafe { *libc::__errno_location() = errno };
}

/// Installs `on_signal` for both signals and returns what it replaced. The
/// first call also creates the pipe and starts the remover thread.
fn install() -> [libc::sigaction; 2] {
    static START: Once = Once::new();
    START.call_once(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills `fds`. Close-on-exec: children never see it.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }
            != 0
        {
            return; // no handler then: the signals keep killing the process
        }
        let read_end = fds[0];
        // The handler never blocks; the thread does, so its end blocks again.
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(read_end, libc::F_GETFL);
            libc::fcntl(read_end, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        WAKE.store(fds[1], Ordering::SeqCst);
        std::thread::Builder::new()
            .name("cleanup".into())
            .spawn(move || remover(read_end))
            .expect("starting the cleanup thread");
    });
    // SAFETY: sigaction is plain data; zeroed is a valid empty value.
    let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
    ours.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // Interrupted system calls resume: the run goes on until the thread ends it.
    ours.sa_flags = libc::SA_RESTART;
    let mut previous: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
    if WAKE.load(Ordering::SeqCst) >= 0 {
        for (signal, old) in SIGNALS.iter().zip(previous.iter_mut()) {
            // SAFETY: valid pointers to sigaction values.
            unsafe { libc::sigaction(*signal, &ours, old) };
        }
    } else {
        for (signal, old) in SIGNALS.iter().zip(previous.iter_mut()) {
            // SAFETY: reads the current disposition only.
            unsafe { libc::sigaction(*signal, std::ptr::null(), old) };
        }
    }
    previous
}

/// Puts back the dispositions `install` replaced, unless someone installed a
/// handler of their own over ours meanwhile (tokio keeps ours and calls it).
fn restore(previous: &[libc::sigaction; 2]) {
    for (signal, old) in SIGNALS.iter().zip(previous) {
        // SAFETY: valid pointers to sigaction values.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(*signal, std::ptr::null(), &mut current);
            if current.sa_sigaction == on_signal as extern "C" fn(libc::c_int) as usize {
                libc::sigaction(*signal, old, std::ptr::null_mut());
            }
        }
    }
}

/// Waits for a signal, removes what is registered, reports and exits.
fn remover(read_end: libc::c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into a live local.
        let n = unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return; // the pipe is gone: nothing will wake us
    }
    let signal = libc::c_int::from(byte);
    // Held until the process ends: nothing can register or unregister now.
    let registry = registry();
    let removed: Vec<String> = registry
        .paths
        .iter()
        .filter_map(|(_, path)| remove(path))
        .collect();
    say(&interrupted_line(signal, &removed));
    std::process::exit(128 + signal);
}

/// Removes `path` and describes it (`/var/tmp/uring-benchX (32.0 MiB)`), or
/// `None` if it was not there.
fn remove(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let bytes = if meta.is_dir() {
        let bytes = size_of_dir(path);
        std::fs::remove_dir_all(path).ok()?;
        bytes
    } else {
        std::fs::remove_file(path).ok()?;
        meta.len()
    };
    Some(format!(
        "{} ({})",
        path.display(),
        system::human_bytes(Some(bytes))
    ))
}

fn size_of_dir(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => size_of_dir(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The one line a signal prints: which signal, and what it removed.
pub fn interrupted_line(signal: libc::c_int, removed: &[String]) -> String {
    let name = match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    };
    if removed.is_empty() {
        format!("interrupted by {name}; it had no files left to remove")
    } else {
        format!(
            "interrupted by {name}; removed what this run created: {}",
            removed.join(", ")
        )
    }
}

/// Writes the line to stderr with write(2): the main thread may hold the
/// lock of Rust's stderr. On a terminal it starts on a fresh line, after the
/// `^C` the terminal echoed.
fn say(line: &str) {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
    let text = format!("{}{line}\n", if tty { "\n" } else { "" });
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes from a live slice.
        let n =
            unsafe { libc::write(libc::STDERR_FILENO, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        rest = &rest[n as usize..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_signal_and_every_path() {
        let removed = ["/tmp/a (4 KiB)".to_string(), "/tmp/b (0 bytes)".to_string()];
        let line = interrupted_line(libc::SIGTERM, &removed);
        assert_eq!(
            line,
            "interrupted by SIGTERM; removed what this run created: \
             /tmp/a (4 KiB), /tmp/b (0 bytes)"
        );
        assert!(interrupted_line(libc::SIGINT, &[]).starts_with("interrupted by SIGINT"));
    }

    #[test]
    fn the_handler_is_installed_only_while_something_is_registered() {
        let current = || {
            // SAFETY: reads the current disposition only.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut action);
                action.sa_sigaction
            }
        };
        let ours = on_signal as extern "C" fn(libc::c_int) as usize;
        let dir = tempdir().unwrap();
        assert_eq!(current(), ours);
        let path = dir.path().to_path_buf();
        assert!(registry().paths.iter().any(|(_, p)| *p == path));
        drop(dir);
        assert!(!path.exists());
        let registry = registry();
        assert!(registry.paths.iter().all(|(_, p)| *p != path));
        // Other tests of this process may hold registrations of their own.
        if registry.paths.is_empty() {
            assert_ne!(current(), ours);
        }
    }
}
