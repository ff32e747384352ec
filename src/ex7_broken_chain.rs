//! What happens to the rest of a chain when one of its requests fails or
//! comes back short: with `IO_LINK` every later link is cancelled, with
//! `IO_HARDLINK` the chain goes on regardless. Then the linked copy meets
//! real short reads, from a pipe, and handles them.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context};
use io_uring::{opcode, squeue, types, IoUring};
use uring_book::ex7_chains_deadlines_cancel::{self as ex7, Cqe};
use uring_book::ex7_linked_copy::{self as copy, human};

// ANCHOR: chain
/// A chain of three: read 64 bytes at offset 64 of `src` (user_data 1),
/// write them at offset 0 of `dst` (2), then a NOP (3). `link` is the flag
/// on the first two, IO_LINK or IO_HARDLINK.
pub fn three_links(
    ring: &mut IoUring,
    src: &File,
    dst: &File,
    link: squeue::Flags,
) -> anyhow::Result<Vec<Cqe>> {
    let mut buf = vec![b'?'; 64]; // '?' marks bytes that no read wrote
    let (src, dst) = (types::Fd(src.as_raw_fd()), types::Fd(dst.as_raw_fd()));
    let chain = [
        opcode::Read::new(src, buf.as_mut_ptr(), 64)
            .offset(64)
            .build()
            .flags(link)
            .user_data(1),
        opcode::Write::new(dst, buf.as_ptr(), 64)
            .offset(0)
            .build()
            .flags(link)
            .user_data(2),
        opcode::Nop::new().build().user_data(3),
    ];
    // SAFETY: `buf` comes back only with the three CQEs, or is leaked.
    unsafe { ring.submission().push_multiple(&chain) }.map_err(|_| anyhow!("SQ full"))?;
    let (cqes, _buf) = ex7::complete(ring, 3, buf)?;
    Ok(cqes)
}
// ANCHOR_END: chain

/// The 100 bytes of the chain's source file.
pub const SOURCE: &[u8; 100] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\
0123456789abcdefghijklmnopqrstuvwxyzAB";

fn name(user_data: u64) -> &'static str {
    match user_data {
        1 => "Read ",
        2 => "Write",
        _ => "Nop  ",
    }
}

pub fn run() -> anyhow::Result<()> {
    let mut ring = ex7::ring(8)?;
    uring_book::ex7_probe::require(&ring, &[opcode::Read::CODE, opcode::Write::CODE])?;
    let dir = tempfile::tempdir()?;
    let src_path = dir.path().join("source");
    std::fs::write(&src_path, SOURCE)?;
    let src = File::open(&src_path)?;
    println!(
        "a chain: Read 64 bytes at offset 64 of a 100-byte file -> Write them -> Nop"
    );
    for (flag, link) in [
        ("IOSQE_IO_LINK", squeue::Flags::IO_LINK),
        ("IOSQE_IO_HARDLINK", squeue::Flags::IO_HARDLINK),
    ] {
        let dst_path = dir.path().join(flag);
        let dst = File::create(&dst_path)?;
        let cqes = three_links(&mut ring, &src, &dst, link)?;
        println!("\nwith {flag}:");
        for c in &cqes {
            println!(
                "  cqe user_data={} ({}) res={}",
                c.user_data,
                name(c.user_data),
                ex7::res_text(c.res)
            );
        }
        let written = std::fs::read(&dst_path)?;
        let unread = written.iter().filter(|&&b| b == b'?').count();
        if written.is_empty() {
            println!("  the destination is empty: the Write never ran");
        } else {
            println!("  the destination: {}", String::from_utf8_lossy(&written));
            println!(
                "  {} bytes, {unread} of them ('?') never read",
                written.len()
            );
        }
    }
    pipe_copy(&dir)
}

/// The linked copy with a pipe as its source: each read asks for 64 KiB,
/// the pipe never holds more than 4 KiB, so every read is short.
fn pipe_copy(dir: &tempfile::TempDir) -> anyhow::Result<()> {
    let (size, block, capacity) = (256 * 1024, 64 * 1024, 4096);
    println!(
        "\nthe linked copy from a pipe that holds {}, one pair of {} at a time:",
        human(capacity),
        human(block as u64)
    );
    let src_path = dir.path().join("pipe-source");
    copy::write_test_file(&src_path, size)?;
    let (rx, mut tx) = std::io::pipe()?;
    // SAFETY: fcntl on a pipe we own.
    if unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, capacity as i32) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        // Should the copy fail and close the read end, this thread gets
        // EPIPE from its write rather than a SIGPIPE that ends the process.
        // SAFETY: a signal mask for this thread only.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        std::io::copy(&mut File::open(&src_path)?, &mut tx)?;
        tx.flush()
    });
    let dst_path = dir.path().join("pipe-copy");
    let dst = File::create(&dst_path)?;
    let mut ring = ex7::ring(8)?;
    let stats = copy::copy_linked(&mut ring, &rx, &dst, size, block, 1);
    drop(rx); // if the copy failed, the writer must not block forever
    let written = writer.join();
    // The copy's own error first: a failed copy makes the writer fail too.
    let stats = stats.context("the linked copy from the pipe")?;
    written.map_err(|_| anyhow!("the pipe's writer panicked"))??;
    println!(
        "  copied {} in {} linked pairs",
        human(stats.bytes),
        stats.pairs
    );
    println!(
        "  short reads: {}, writes cancelled: {}, rest writes: {}",
        stats.short_reads, stats.cancelled_writes, stats.rest_writes
    );
    let v = copy::verify(&dir.path().join("pipe-source"), &dst_path)?;
    println!("  verify: {v}");
    anyhow::ensure!(v.equal(), "the copy from the pipe differs: {v}");
    Ok(())
}
