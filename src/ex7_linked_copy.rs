//! A file copy built from linked read→write pairs, several pairs in flight.
//!
//! Each pair is two SQEs: a read into one buffer, flagged `IO_LINK`, then a
//! write of the same buffer to the same offset. The kernel starts the write
//! only when the read has completed, without a trip back to us in between.
//! A read that comes back short breaks the link: the write is cancelled
//! (`-ECANCELED`), so it never writes bytes that were not read. The copy then
//! writes what was read and reads the rest again.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use io_uring::{opcode, squeue, types, IoUring};
use uring_book::{diagnose, ex7_chains_deadlines_cancel as ex7, ex7_probe, system};

/// Bytes per read and per write, in KiB, unless told otherwise.
pub const BLOCK_KIB: u32 = 256;
/// Read→write pairs in flight, unless told otherwise.
pub const PAIRS: u32 = 4;

#[derive(clap::Args)]
pub struct Args {
    /// The file to copy [default: a file of test data the exercise makes]
    #[arg(requires = "dst")]
    pub src: Option<PathBuf>,
    /// Where to copy it to (created, or truncated if it exists)
    pub dst: Option<PathBuf>,
    /// Size of the test file made when no SRC is given, in MiB
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub size_mib: u32,
    /// Bytes per read and per write, in KiB
    #[arg(long, default_value_t = BLOCK_KIB,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub block_kib: u32,
    /// Read→write pairs in flight at once
    #[arg(long, default_value_t = PAIRS, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pairs: u32,
}

/// What one copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyStats {
    /// Bytes copied.
    pub bytes: u64,
    /// Linked read→write pairs submitted.
    pub pairs: usize,
    /// Reads that came back with fewer bytes than asked.
    pub short_reads: usize,
    /// Linked writes the kernel cancelled, because their read came back short.
    pub cancelled_writes: usize,
    /// Plain writes of what a short read did read, or of a short write's rest.
    pub rest_writes: usize,
    /// io_uring_enter calls.
    pub enters: usize,
}

const READ: u64 = 0;
const WRITE: u64 = 1;

/// user_data: the slot (which buffer) and which half of its pair.
fn tag(slot: usize, half: u64) -> u64 {
    slot as u64 * 2 + half
}

// ANCHOR: pair
/// The two SQEs of one pair: read `buf.len()` bytes at `offset` into `buf`,
/// then write `buf` to the same offset of `dst`. `IO_LINK` on the read makes
/// the write wait for it, and cancels the write if the read fails or is short.
pub fn linked_pair(
    src: RawFd,
    dst: RawFd,
    buf: &mut [u8],
    offset: u64,
    slot: usize,
) -> [squeue::Entry; 2] {
    let (ptr, len) = (buf.as_mut_ptr(), buf.len() as u32);
    let read = opcode::Read::new(types::Fd(src), ptr, len)
        .offset(offset)
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(tag(slot, READ));
    let write = opcode::Write::new(types::Fd(dst), ptr, len)
        .offset(offset)
        .build()
        .user_data(tag(slot, WRITE));
    [read, write]
}
// ANCHOR_END: pair

/// What a slot's buffer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Idle,
    /// A linked pair for `len` bytes at `offset`, and its CQEs so far.
    Pair {
        offset: u64,
        len: usize,
        read: Option<i32>,
        write: Option<i32>,
    },
    /// A plain write of `buf[done..end]` to `offset + done`; once it is
    /// done, the bytes `end..len` are read again in a new pair.
    Rest {
        offset: u64,
        done: usize,
        end: usize,
        len: usize,
    },
}

// ANCHOR: after_pair
/// What follows a pair whose two CQEs are in: `Idle` when all `len` bytes
/// were copied, `Rest` when some are still to be written or read.
pub fn after_pair(
    offset: u64,
    len: usize,
    read: i32,
    write: i32,
) -> anyhow::Result<Stage> {
    if read < 0 {
        let err = diagnose::errno_text(&diagnose::cqe_error(read));
        bail!("the read at offset {offset} failed: {err}");
    }
    if read == 0 {
        bail!("the source ended at byte {offset}, before its size: did it shrink?");
    }
    let read = read as usize;
    if read < len {
        // A short read broke the link: the kernel cancelled the write,
        // which would have written `len - read` bytes that were never read.
        if write != -libc::ECANCELED {
            bail!("the write after a short read was not cancelled: res={write}");
        }
        return Ok(Stage::Rest {
            offset,
            done: 0,
            end: read,
            len,
        });
    }
    match write {
        w if w as usize == len => Ok(Stage::Idle),
        w if w > 0 => Ok(Stage::Rest {
            offset,
            done: w as usize,
            end: len,
            len,
        }),
        w => {
            let err = diagnose::errno_text(&diagnose::cqe_error(w.min(-1)));
            bail!("the write at offset {offset} failed: {err}")
        }
    }
}
// ANCHOR_END: after_pair

/// io_uring_enter calls in a row that neither submitted nor reaped anything,
/// after which the copy stops waiting for what is in flight.
const STALLS_BEFORE_GIVING_UP: usize = 3;

/// Copies `size` bytes of `src` to the same offsets of `dst` through `ring`,
/// `pairs` linked pairs of at most `block` bytes in flight. On an error it
/// starts nothing new, reaps what is in flight, then returns the error.
///
/// For a pipe or a socket (no offsets: the kernel ignores them), use one
/// pair: with more, the reads could take the stream's bytes out of order.
pub fn copy_linked(
    ring: &mut IoUring,
    src: &impl AsRawFd,
    dst: &impl AsRawFd,
    size: u64,
    block: usize,
    pairs: usize,
) -> anyhow::Result<CopyStats> {
    // Each slot has at most two SQEs queued, so they always fit: a pair is
    // never split by a full SQ. A chain cut by a submission is no chain.
    if 2 * pairs > ring.params().sq_entries() as usize {
        bail!("{pairs} pairs need {} SQ entries", 2 * pairs);
    }
    let (src, dst) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut bufs = vec![vec![0u8; block]; pairs];
    let mut stages = vec![Stage::Idle; pairs];
    let mut stats = CopyStats::default();
    let (mut next, mut in_flight, mut failed, mut stalls) = (0u64, 0, None, 0);
    loop {
        // ANCHOR: start
        // Every idle slot takes the next block, while there is one.
        for (slot, buf) in bufs.iter_mut().enumerate() {
            if stages[slot] != Stage::Idle || next >= size || failed.is_some() {
                continue;
            }
            let len = block.min((size - next) as usize);
            let sqes = linked_pair(src, dst, &mut buf[..len], next, slot);
            // SAFETY: `bufs` is neither freed nor moved while a pair is in
            // flight: this function returns only when nothing is, or after
            // leaking the buffers.
            if unsafe { ring.submission().push_multiple(&sqes) }.is_err() {
                failed = Some(anyhow!("SQ full")); // reap what is in flight
                continue;
            }
            stages[slot] = Stage::Pair {
                offset: next,
                len,
                read: None,
                write: None,
            };
            (next, in_flight) = (next + len as u64, in_flight + 2);
            stats.pairs += 1;
        }
        // ANCHOR_END: start
        if in_flight == 0 {
            break;
        }
        stats.enters += 1;
        let entered = match ring.submit_and_wait(1) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
            other => other,
        };
        let before = in_flight;
        let cqes: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (user_data, res) in cqes {
            let slot = (user_data / 2) as usize;
            let Some(stage) = stages.get_mut(slot) else {
                // Not one of ours: the ring was not idle when the copy began.
                failed.get_or_insert(anyhow!("a CQE the copy did not ask for"));
                continue;
            };
            in_flight -= 1;
            let step = on_cqe(stage, user_data % 2, res, &mut stats);
            match step {
                Ok(Some(sqe)) if failed.is_none() => {
                    let sqe = sqe.build(src, dst, &mut bufs[slot], slot);
                    // SAFETY: as above, for the pushes of the first loop.
                    if unsafe { ring.submission().push_multiple(&sqe) }.is_ok() {
                        in_flight += sqe.len();
                    } else {
                        stages[slot] = Stage::Idle;
                        failed = Some(anyhow!("SQ full"));
                    }
                }
                Ok(Some(_)) => stages[slot] = Stage::Idle, // failing: no more
                Ok(None) => {}
                Err(err) => {
                    stages[slot] = Stage::Idle;
                    failed.get_or_insert(err);
                }
            }
        }
        stalls = match entered {
            Ok(n) if n > 0 || in_flight < before => 0,
            Ok(_) => stalls + 1,
            Err(err) => {
                failed.get_or_insert(anyhow::Error::from(err).context("io_uring_enter"));
                stalls + 1
            }
        };
        if stalls == STALLS_BEFORE_GIVING_UP {
            // The kernel may still write into the buffers: never free them.
            bufs.into_iter().for_each(std::mem::forget);
            let err =
                failed.unwrap_or_else(|| anyhow!("io_uring_enter makes no progress"));
            return Err(err.context(format!("{in_flight} operations in flight: leaked")));
        }
    }
    match failed {
        Some(err) => Err(err),
        None => {
            stats.bytes = next;
            Ok(stats)
        }
    }
}

/// What to submit next for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// A new linked pair for `len` bytes at `offset`.
    Pair { offset: u64, len: usize },
    /// A plain write of `buf[from..to]` at `offset`.
    Write { offset: u64, from: usize, to: usize },
}

impl Next {
    fn build(
        self,
        src: RawFd,
        dst: RawFd,
        buf: &mut [u8],
        slot: usize,
    ) -> Vec<squeue::Entry> {
        match self {
            Next::Pair { offset, len } => {
                linked_pair(src, dst, &mut buf[..len], offset, slot).to_vec()
            }
            Next::Write { offset, from, to } => {
                let rest = &buf[from..to];
                let w =
                    opcode::Write::new(types::Fd(dst), rest.as_ptr(), rest.len() as u32)
                        .offset(offset)
                        .build()
                        .user_data(tag(slot, WRITE));
                vec![w]
            }
        }
    }
}

/// Moves a slot on after one of its CQEs; returns what to submit next.
fn on_cqe(
    stage: &mut Stage,
    half: u64,
    res: i32,
    stats: &mut CopyStats,
) -> anyhow::Result<Option<Next>> {
    match *stage {
        Stage::Pair {
            offset,
            len,
            mut read,
            mut write,
        } => {
            if half == READ {
                read = Some(res)
            } else {
                write = Some(res)
            }
            *stage = Stage::Pair {
                offset,
                len,
                read,
                write,
            };
            let (Some(read), Some(write)) = (read, write) else {
                return Ok(None); // the other half's CQE is still to come
            };
            if read > 0 && (read as usize) < len {
                stats.short_reads += 1;
            }
            if write == -libc::ECANCELED {
                stats.cancelled_writes += 1;
            }
            *stage = after_pair(offset, len, read, write)?;
        }
        Stage::Rest {
            offset,
            done,
            end,
            len,
        } => {
            if res <= 0 {
                let err = diagnose::errno_text(&diagnose::cqe_error(res.min(-1)));
                bail!("the write at offset {} failed: {err}", offset + done as u64);
            }
            *stage = Stage::Rest {
                offset,
                done: done + res as usize,
                end,
                len,
            };
        }
        Stage::Idle => bail!("a CQE for an idle slot"),
    }
    Ok(match *stage {
        Stage::Rest {
            offset, done, end, ..
        } if done < end => {
            stats.rest_writes += 1;
            Some(Next::Write {
                offset: offset + done as u64,
                from: done,
                to: end,
            })
        }
        Stage::Rest {
            offset, end, len, ..
        } if end < len => {
            // The rest of the block is read again, into the buffer's start.
            let (offset, len) = (offset + end as u64, len - end);
            *stage = Stage::Pair {
                offset,
                len,
                read: None,
                write: None,
            };
            stats.pairs += 1;
            Some(Next::Pair { offset, len })
        }
        Stage::Rest { .. } => {
            *stage = Stage::Idle;
            None
        }
        _ => None,
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (block, pairs) = (args.block_kib as usize * 1024, args.pairs as usize);
    // The ring first: a kernel that cannot run the copy says so at once.
    let mut ring = ex7::ring((2 * pairs).next_power_of_two() as u32)?;
    ex7_probe::require(&ring, &[opcode::Read::CODE, opcode::Write::CODE])?;
    // Without paths, copy a file of test data; both go when `_dir` drops.
    let _dir;
    let (src, dst) = match (&args.src, &args.dst) {
        (Some(src), Some(dst)) => (src.clone(), dst.clone()),
        _ => {
            let dir = uring_book::cleanup::tempdir()?;
            let src = dir.path().join("source");
            let size = args.size_mib as u64 * 1024 * 1024;
            write_test_file(&src, size)?;
            println!("source: {} of test data", human(size));
            let dst = dir.path().join("copy");
            _dir = dir;
            (src, dst)
        }
    };
    let source = open_source(&src)?;
    let size = source.metadata()?.len();
    let dest = create_destination(&dst, &source)?;

    let start = Instant::now();
    let stats = copy_linked(&mut ring, &source, &dest, size, block, pairs)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    let took = start.elapsed();
    println!(
        "copied {} in {:.0} ms: {} linked pairs of up to {} KiB, up to {pairs} in flight",
        human(stats.bytes),
        took.as_secs_f64() * 1000.0,
        stats.pairs,
        block / 1024,
    );
    println!(
        "{} io_uring_enter calls; short reads: {}, writes cancelled: {}, rest writes: {}",
        stats.enters, stats.short_reads, stats.cancelled_writes, stats.rest_writes
    );
    let v = verify(&src, &dst)?;
    println!("verify: {v}");
    if !v.equal() {
        bail!("the copy differs from the source: {v}");
    }
    Ok(())
}

/// Opens the source: a regular file, since the copy reads it by offset. It
/// is looked at before it is opened: opening a FIFO would wait for a writer.
pub fn open_source(path: &Path) -> anyhow::Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| cannot("open", path, &e))?;
    regular(path, &meta, "reads")?;
    let file = File::open(path).map_err(|e| cannot("open", path, &e))?;
    regular(path, &file.metadata()?, "reads")?; // it may have changed since
    Ok(file)
}

/// Creates (or truncates) the destination, unless it is the source itself
/// (truncating that would destroy what is to be copied) or something other
/// than a regular file, which the copy could not write by offset and check.
pub fn create_destination(path: &Path, source: &File) -> anyhow::Result<File> {
    let src = source.metadata()?;
    if let Ok(dst) = std::fs::metadata(path) {
        if (dst.dev(), dst.ino()) == (src.dev(), src.ino()) {
            bail!(
                "{} is the source itself: copying would destroy it",
                path.display()
            );
        }
        regular(path, &dst, "writes")?;
    }
    File::create(path).map_err(|e| cannot("create", path, &e))
}

/// Fails unless `meta` is a regular file's.
fn regular(path: &Path, meta: &std::fs::Metadata, what: &str) -> anyhow::Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    bail!(
        "{} is {kind}: a linked copy {what} a regular file by offset",
        path.display()
    )
}

fn cannot(what: &str, path: &Path, err: &io::Error) -> anyhow::Error {
    anyhow!(
        "cannot {what} {}: {}",
        path.display(),
        diagnose::errno_text(err)
    )
}

/// The byte at `offset` of the test data: a pattern that differs from block
/// to block, so a block written at the wrong offset cannot pass.
pub fn test_byte(offset: u64) -> u8 {
    let word = (offset / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (word >> ((offset % 8) * 8)) as u8
}

/// Writes `size` bytes of test data to a new file at `path`.
pub fn write_test_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut file = File::create(path).map_err(|e| cannot("create", path, &e))?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < size {
        let n = chunk.len().min((size - offset) as usize);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = test_byte(offset + i as u64);
        }
        file.write_all(&chunk[..n])?;
        offset += n as u64;
    }
    Ok(())
}

/// Source and copy compared: sizes, CRC-32s and the first differing byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sizes: (u64, u64),
    pub crcs: (u32, u32),
    pub first_difference: Option<u64>,
}

impl Verified {
    pub fn equal(&self) -> bool {
        self.sizes.0 == self.sizes.1
            && self.crcs.0 == self.crcs.1
            && self.first_difference.is_none()
    }
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let same = |eq| if eq { "=" } else { "!=" };
        write!(
            f,
            "size {} {} {}, CRC-32 {:08x} {} {:08x}, ",
            self.sizes.0,
            same(self.sizes.0 == self.sizes.1),
            self.sizes.1,
            self.crcs.0,
            same(self.crcs.0 == self.crcs.1),
            self.crcs.1
        )?;
        match self.first_difference {
            None => write!(f, "every byte equal"),
            Some(at) => write!(f, "first difference at byte {at}"),
        }
    }
}

/// Reads both files through and compares them.
pub fn verify(src: &Path, dst: &Path) -> anyhow::Result<Verified> {
    let mut a = File::open(src).map_err(|e| cannot("open", src, &e))?;
    let mut b = File::open(dst).map_err(|e| cannot("open", dst, &e))?;
    let sizes = (a.metadata()?.len(), b.metadata()?.len());
    let (mut crc_a, mut crc_b) = (Crc32::new(), Crc32::new());
    let (mut buf_a, mut buf_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let (mut offset, mut first_difference) = (0u64, None);
    loop {
        let na = read_full(&mut a, &mut buf_a)?;
        let nb = read_full(&mut b, &mut buf_b)?;
        crc_a.update(&buf_a[..na]);
        crc_b.update(&buf_b[..nb]);
        if first_difference.is_none() {
            let n = na.min(nb);
            let at = buf_a[..n].iter().zip(&buf_b[..n]).position(|(x, y)| x != y);
            first_difference = match at {
                Some(i) => Some(offset + i as u64),
                None if na != nb => Some(offset + n as u64),
                None => None,
            };
        }
        offset += na.max(nb) as u64;
        if na == 0 && nb == 0 {
            break;
        }
    }
    Ok(Verified {
        sizes,
        crcs: (crc_a.value(), crc_b.value()),
        first_difference,
    })
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// CRC-32 as zlib and gzip compute it (reflected, polynomial 0xEDB88320).
pub struct Crc32 {
    table: [u32; 256],
    crc: u32,
}

impl Crc32 {
    pub fn new() -> Crc32 {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        Crc32 { table, crc: !0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.crc =
                self.table[((self.crc ^ b as u32) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn value(&self) -> u32 {
        !self.crc
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

/// `8 MiB`, `100 bytes`.
pub fn human(bytes: u64) -> String {
    system::human_bytes(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        let mut crc = Crc32::new();
        crc.update(b"123456789");
        assert_eq!(crc.value(), 0xcbf4_3926); // the standard check value
    }

    #[test]
    fn a_full_pair_is_done_a_short_read_leaves_a_rest() {
        assert_eq!(after_pair(0, 64, 64, 64).unwrap(), Stage::Idle);
        let rest = after_pair(64, 64, 36, -libc::ECANCELED).unwrap();
        assert_eq!(
            rest,
            Stage::Rest {
                offset: 64,
                done: 0,
                end: 36,
                len: 64
            }
        );
        // A short write after a full read: write the rest.
        let rest = after_pair(0, 64, 64, 10).unwrap();
        assert_eq!(
            rest,
            Stage::Rest {
                offset: 0,
                done: 10,
                end: 64,
                len: 64
            }
        );
    }

    #[test]
    fn errors_and_an_uncancelled_write_are_refused() {
        assert!(after_pair(0, 64, -libc::EIO, -libc::ECANCELED).is_err());
        assert!(after_pair(0, 64, 0, -libc::ECANCELED).is_err());
        assert!(after_pair(0, 64, 36, 64).is_err()); // would write unread bytes
        assert!(after_pair(0, 64, 64, -libc::ENOSPC).is_err());
    }

    #[test]
    fn a_short_read_is_written_then_the_rest_read_again() {
        let mut stats = CopyStats::default();
        let mut stage = Stage::Pair {
            offset: 100,
            len: 64,
            read: None,
            write: None,
        };
        assert_eq!(on_cqe(&mut stage, READ, 40, &mut stats).unwrap(), None);
        let next = on_cqe(&mut stage, WRITE, -libc::ECANCELED, &mut stats).unwrap();
        assert_eq!(
            next,
            Some(Next::Write {
                offset: 100,
                from: 0,
                to: 40
            })
        );
        let next = on_cqe(&mut stage, WRITE, 40, &mut stats).unwrap();
        assert_eq!(
            next,
            Some(Next::Pair {
                offset: 140,
                len: 24
            })
        );
        assert_eq!(
            (stats.short_reads, stats.cancelled_writes, stats.rest_writes),
            (1, 1, 1)
        );
    }
}
