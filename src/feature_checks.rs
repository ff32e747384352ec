//! How to ask the kernel about what `IORING_REGISTER_PROBE` cannot answer:
//! flags of an operation, SQE flags, setup flags and registrations.
//!
//! A kernel that predates a flag rejects it with EINVAL, so each check makes
//! the smallest request that uses the flag and looks at the answer. Every
//! request is reaped before a check returns: nothing stays in flight, and the
//! requests use no buffer of ours.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{opcode, squeue, types, IoUring};

use uring_book::features::Presence;

/// What a check's result means for the table.
pub fn answer(result: io::Result<bool>) -> Presence {
    match result {
        Ok(true) => Presence::Yes,
        Ok(false) => Presence::No,
        Err(err) => Presence::Unknown(uring_book::diagnose::errno_text(&err)),
    }
}

/// Sets up a one-entry ring with the flags `set` adds: EINVAL means this
/// kernel does not know one of them.
pub fn setup(set: fn(&mut io_uring::Builder)) -> io::Result<bool> {
    let mut builder = IoUring::builder();
    set(&mut builder);
    match patiently(|| builder.build(1)) {
        Ok(_) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Runs `f` again while it fails with ENOMEM, for up to half a second.
///
/// Without CAP_IPC_LOCK, rings and registered memory are charged to
/// RLIMIT_MEMLOCK, and a dropped ring gives its charge back only when the
/// kernel's asynchronous teardown has run. A check that follows others
/// closely can meet that moment: it waits instead of answering "unknown".
fn patiently<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(err) if err.raw_os_error() == Some(libc::ENOMEM) && tries < 25 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Pushes `sqes` (user_data 0, 1, ...) in one submission and returns each
/// one's `res`, by user_data. Returns only when every CQE is reaped.
fn results(ring: &mut IoUring, sqes: &[squeue::Entry]) -> io::Result<Vec<i32>> {
    {
        let mut sq = ring.submission();
        if sq.capacity() - sq.len() < sqes.len() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        for (i, sqe) in sqes.iter().enumerate() {
            let sqe = sqe.clone().user_data(i as u64);
            // SAFETY: no SQE of a check names memory of ours, except
            // timespecs and an empty iovec that the kernel reads when it
            // takes the SQE, and that live until the CQEs are reaped.
            unsafe { sq.push(&sqe) }.expect("room checked above");
        }
    }
    let mut res = vec![None; sqes.len()];
    while res.iter().any(Option::is_none) {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
        for cqe in ring.completion() {
            if let Some(slot) = res.get_mut(cqe.user_data() as usize) {
                *slot = Some(cqe.result());
            }
        }
    }
    Ok(res.into_iter().map(Option::unwrap_or_default).collect())
}

/// `Ok(false)` for EINVAL, the answer of a kernel without the feature.
fn known(res: i32) -> bool {
    res != -libc::EINVAL
}

fn nop_with(ring: &mut IoUring, flags: squeue::Flags) -> io::Result<bool> {
    let first = opcode::Nop::new().build().flags(flags);
    let res = results(ring, &[first, opcode::Nop::new().build()])?;
    Ok(res.iter().all(|&r| known(r)))
}

pub fn link(ring: &mut IoUring) -> io::Result<bool> {
    nop_with(ring, squeue::Flags::IO_LINK)
}

pub fn hardlink(ring: &mut IoUring) -> io::Result<bool> {
    nop_with(ring, squeue::Flags::IO_HARDLINK)
}

pub fn drain(ring: &mut IoUring) -> io::Result<bool> {
    nop_with(ring, squeue::Flags::IO_DRAIN)
}

pub fn async_flag(ring: &mut IoUring) -> io::Result<bool> {
    nop_with(ring, squeue::Flags::ASYNC)
}

/// An absolute timeout at time 0 has expired already: ETIME at once.
pub fn timeout_abs(ring: &mut IoUring) -> io::Result<bool> {
    let zero = types::Timespec::new();
    let t = opcode::Timeout::new(&zero)
        .flags(types::TimeoutFlags::ABS)
        .build();
    Ok(known(results(ring, &[t])?[0]))
}

/// Updating a timeout that does not exist: ENOENT if the kernel knows how.
pub fn timeout_update(ring: &mut IoUring) -> io::Result<bool> {
    let ts = types::Timespec::new().nsec(1);
    let u = opcode::TimeoutUpdate::new(u64::MAX, &ts).build();
    Ok(known(results(ring, &[u])?[0]))
}

/// Cancelling "any" request of an idle ring: 0 cancelled, or EINVAL.
pub fn cancel_flags(ring: &mut IoUring) -> io::Result<bool> {
    let c = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build();
    Ok(known(results(ring, &[c])?[0]))
}

/// A loopback listener that no one connects to.
fn listener() -> io::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
}

/// A multishot accept on an idle listener waits; the cancel ends it. A
/// kernel without multishot accept rejects the SQE with EINVAL instead.
pub fn multishot_accept(ring: &mut IoUring) -> io::Result<bool> {
    let l = listener()?;
    let accept = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd())).build();
    let cancel = opcode::AsyncCancel::new(0).build();
    Ok(known(results(ring, &[accept, cancel])?[0]))
}

/// The same with `IORING_FILE_INDEX_ALLOC`, into a sparse table of one slot.
pub fn accept_direct_alloc(ring: &mut IoUring) -> io::Result<bool> {
    match ring.submitter().register_files_sparse(1) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(err) => return Err(err),
    }
    let l = listener();
    let res = l.and_then(|l| {
        let accept = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
            .allocate_file_index(true)
            .build();
        let cancel = opcode::AsyncCancel::new(0).build();
        results(ring, &[accept, cancel])
    });
    ring.submitter().unregister_files()?;
    Ok(known(res?[0]))
}

/// A multishot receive with no buffer group: ENOBUFS (or a wait that the
/// cancel ends) on a kernel that has it, EINVAL on one that does not.
pub fn multishot_recv(ring: &mut IoUring) -> io::Result<bool> {
    let (a, _b) = socket_pair()?;
    let recv = opcode::RecvMulti::new(types::Fd(a.as_raw_fd()), 0x7ffe).build();
    let cancel = opcode::AsyncCancel::new(0).build();
    Ok(known(results(ring, &[recv, cancel])?[0]))
}

/// Registers one end of a pipe and reads 0 bytes from it as `Fixed(0)`.
/// The read is a Readv (5.1), not a Read (5.6): a kernel between the two has
/// registered files, and must not be told otherwise.
pub fn fixed_file(ring: &mut IoUring) -> io::Result<bool> {
    let (rx, _tx) = pipe()?;
    ring.submitter().register_files(&[rx.as_raw_fd()])?;
    let iov = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let read = opcode::Readv::new(types::Fixed(0), &iov, 1).build();
    let res = results(ring, &[read]);
    ring.submitter().unregister_files()?;
    Ok(res?[0] == 0)
}

pub fn register_buffers(ring: &mut IoUring) -> io::Result<bool> {
    let mut buf = vec![0u8; 4096];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `buf` outlives the registration, which ends below.
    patiently(|| unsafe { ring.submitter().register_buffers(&[iov]) })?;
    ring.submitter().unregister_buffers()?;
    Ok(true)
}

pub fn register_probe(ring: &mut IoUring) -> io::Result<bool> {
    let mut probe = io_uring::Probe::new();
    match ring.submitter().register_probe(&mut probe) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(err) => Err(err),
    }
}

pub fn register_ring_fd(ring: &mut IoUring) -> io::Result<bool> {
    let mut submitter = ring.submitter();
    match submitter.register_ring_fd() {
        Ok(()) => {
            submitter.unregister_ring_fd()?;
            Ok(true)
        }
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Registers a buffer ring of one entry in a page of its own, then removes it.
pub fn register_buf_ring(ring: &mut IoUring) -> io::Result<bool> {
    let page = Page::new()?;
    let bgid = 0x7ffe;
    // SAFETY: the page outlives the registration, which ends below.
    let res = unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(page.addr(), 1, bgid, 0)
    };
    match res {
        Ok(()) => {
            ring.submitter().unregister_buf_ring(bgid)?;
            Ok(true)
        }
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(err) => Err(err),
    }
}

/// One page of anonymous memory, unmapped on drop.
struct Page(*mut libc::c_void);

impl Page {
    fn new() -> io::Result<Page> {
        // SAFETY: an anonymous private mapping of one page.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Page(ptr))
    }

    fn addr(&self) -> u64 {
        self.0 as u64
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new(), no longer registered.
        unsafe { libc::munmap(self.0, 4096) };
    }
}

/// A pipe as (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of Unix stream sockets.
fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: socketpair fills two descriptors, which we then own.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine runs Linux 6.18: every check must say yes here.
    #[test]
    fn every_trial_finds_its_feature_on_a_current_kernel() {
        if uring_book::system::kernel_version() < Some((6, 6)) {
            return; // the rows of newer kernels answer no, rightly
        }
        let mut ring = IoUring::new(8).unwrap();
        type Trial = fn(&mut IoUring) -> io::Result<bool>;
        let trials: [(&str, Trial); 14] = [
            ("link", link),
            ("hardlink", hardlink),
            ("drain", drain),
            ("async", async_flag),
            ("abs", timeout_abs),
            ("update", timeout_update),
            ("cancel flags", cancel_flags),
            ("multishot accept", multishot_accept),
            ("accept direct", accept_direct_alloc),
            ("multishot recv", multishot_recv),
            ("fixed file", fixed_file),
            ("buffers", register_buffers),
            ("ring fd", register_ring_fd),
            ("buf ring", register_buf_ring),
        ];
        for (name, trial) in trials {
            assert!(trial(&mut ring).unwrap(), "{name}");
        }
        // Nothing was left in flight: the ring is idle.
        assert_eq!(ring.completion().len(), 0);
    }

    #[test]
    fn a_rejected_setup_is_no_not_an_error() {
        // A CQ of 0 entries is rejected with EINVAL, as an unknown flag is.
        assert!(!setup(|b| {
            b.setup_cqsize(0);
        })
        .unwrap());
        assert!(setup(|_| {}).unwrap());
    }
}
