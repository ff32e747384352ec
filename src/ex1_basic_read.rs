//! Exercise 1: set up a ring, read a file through it until end of file, and
//! print every completion the kernel posts.
//!
//! This is the careful version of `examples/ch01_first_read.rs`: the same
//! five steps (io_uring_setup, build an SQE, push it, io_uring_enter, reap the
//! CQE), with every failure turned into one line and no buffer ever freed
//! while the kernel may still write into it.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use io_uring::{cqueue, opcode, types, IoUring};
use uring_book::{diagnose, usage};

#[derive(clap::Args)]
pub struct Args {
    /// The file to read [default: a small text file the exercise creates]
    pub path: Option<PathBuf>,
    /// Bytes per read: a file bigger than this takes several reads
    #[arg(long, default_value_t = 64, value_parser = usage::at_least_one::<u32>)]
    pub buf_size: u32,
    /// Instead of reading, build a ring by hand (io_uring_setup + mmap) and
    /// show its heads, tails and index array around one NOP
    #[arg(long)]
    pub raw: bool,
    /// With --raw: also draw the ring after the push, after io_uring_enter and
    /// after the reap, as SVG files in this directory
    #[arg(long, value_name = "DIR", requires = "raw")]
    pub svg: Option<PathBuf>,
}

/// One CQE as it came off the completion queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

/// Content up to this size that is valid UTF-8 is printed; anything else is
/// summarised, so that reading a video or a log of gigabytes stays readable.
pub const PRINT_LIMIT: usize = 4096;

/// CQEs shown at the start and at the end of a run of more than three times
/// as many; the ones between are counted, not shown.
const CQES_SHOWN: usize = 5;

/// io_uring_enter errors in a row after which read_to_end stops waiting for
/// the CQE of a read that may be in flight.
pub const FAILURES_BEFORE_GIVING_UP: usize = 3;

/// The default file: three lines, so that the default 64-byte buffer takes
/// several reads and the last one is short.
pub const DEFAULT_TEXT: &str = "\
io_uring: one ring to submit (SQ), one ring to complete (CQ).
This file is read 64 bytes at a time, one SQE per read.
The last read returns fewer bytes; the one after it returns 0: end of file.
";

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.raw {
        return uring_book::ex1_raw_ring::run(args.svg.as_deref());
    }
    // io_uring_setup(2), with a failure explained in one line: seccomp,
    // the sysctl, an old kernel (diagnose names the cause and the fix).
    let mut ring = IoUring::new(8).map_err(diagnose::setup)?;
    println!(
        "ring: {} SQ entries, {} CQ entries",
        ring.params().sq_entries(),
        ring.params().cq_entries()
    );

    // Without a path, read a file we create; it is deleted when `_dir` drops.
    let _dir;
    let path = match &args.path {
        Some(path) => path.clone(),
        None => {
            let dir = uring_book::cleanup::tempdir()?;
            let path = dir.path().join("ex1.txt");
            std::fs::write(&path, DEFAULT_TEXT)?;
            _dir = dir;
            path
        }
    };

    let file = open(&path)?;
    let (content, cqes) = read_to_end(&mut ring, &file, args.buf_size as usize)
        .with_context(|| format!("cannot read {}", path.display()))?;

    let hidden = match cqes.len() {
        n if n > 3 * CQES_SHOWN => n - 2 * CQES_SHOWN,
        _ => 0,
    };
    for (i, cqe) in cqes.iter().enumerate() {
        if hidden > 0 && i == CQES_SHOWN {
            println!("... {hidden} more CQEs like these ...");
        }
        if hidden == 0 || i < CQES_SHOWN || i >= cqes.len() - CQES_SHOWN {
            println!(
                "cqe: user_data={} res={} flags={}",
                cqe.user_data, cqe.res, cqe.flags
            );
        }
    }
    println!(
        "read {} bytes from {}\nin {} reads of at most {} bytes (the last, res=0, is EOF)",
        content.len(),
        path.display(),
        cqes.len(),
        args.buf_size
    );
    match std::str::from_utf8(&content) {
        Ok(text) if content.len() <= PRINT_LIMIT => print!("content:\n{text}"),
        Ok(_) => println!("content: not printed (over {PRINT_LIMIT} bytes)"),
        Err(_) => println!("content: not printed (not UTF-8 text)"),
    }
    Ok(())
}

/// Opens `path` for reading; a failure is one line that names the errno.
pub fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).map_err(|err| diagnose::file_error("open", path, &err))
}

/// Reads `file` from offset 0 to end of file through `ring`, one read of at
/// most `buf_size` bytes in flight at a time. Returns the bytes and every CQE.
// ANCHOR: read_to_end
pub fn read_to_end(
    ring: &mut IoUring,
    file: &File,
    buf_size: usize,
) -> anyhow::Result<(Vec<u8>, Vec<Completion>)> {
    let fd = types::Fd(file.as_raw_fd());
    let mut buf = vec![0u8; buf_size];
    let (mut content, mut cqes) = (Vec::new(), Vec::new());
    loop {
        let read_e = opcode::Read::new(fd, buf.as_mut_ptr(), buf.len() as u32)
            .offset(content.len() as u64)
            .build()
            .user_data(cqes.len() as u64);
        // SAFETY: rules 1 and 2: `buf` and `file` stay untouched until the
        // read's CQE; wait_for_cqe reaps it or leaks `buf` (rule 3).
        unsafe { ring.submission().push(&read_e) }
            .map_err(|_| anyhow!("the submission queue is full"))?;
        let cqe = wait_for_cqe(ring, &mut buf)?;
        cqes.push(Completion {
            user_data: cqe.user_data(),
            res: cqe.result(),
            flags: cqe.flags(),
        });
        // Rule 5: -errno, a byte count that may be short, or 0 at the end.
        let n = match cqe.result() {
            res if res < 0 => {
                let err = diagnose::errno_text(&diagnose::cqe_error(res));
                return Err(anyhow!("{err} (in the CQE: res={res})"));
            }
            0 => return Ok((content, cqes)),
            n => n as usize,
        };
        content.extend_from_slice(&buf[..n]);
    }
}
// ANCHOR_END: read_to_end

// ANCHOR: wait_for_cqe
/// Submits what is queued and waits for one CQE. Until that CQE is reaped,
/// the read may be in flight, so no error may free `buf` (rule 3).
fn wait_for_cqe(ring: &mut IoUring, buf: &mut Vec<u8>) -> anyhow::Result<cqueue::Entry> {
    let (mut failed, mut failures) = (None, 0);
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            // A signal cut the wait short; the SQE was consumed: wait again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            // This call failed, but an earlier one may have submitted the
            // read: keep the error, and report it once the CQE is in.
            Err(err) => {
                failures += 1;
                if failures == FAILURES_BEFORE_GIVING_UP {
                    // The CQE may never come: the kernel keeps the memory.
                    std::mem::forget(std::mem::take(buf));
                    return Err(err).context("io_uring_enter (read buffer leaked)");
                }
                failed.get_or_insert(err);
            }
        }
        if let Some(cqe) = ring.completion().next() {
            return match failed {
                Some(err) => Err(err).context("io_uring_enter"),
                None => Ok(cqe),
            };
        }
    }
}
// ANCHOR_END: wait_for_cqe

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_takes_several_reads_and_ends_short() {
        let len = DEFAULT_TEXT.len();
        assert!(len > 2 * 64 && !len.is_multiple_of(64), "{len}");
    }
}
