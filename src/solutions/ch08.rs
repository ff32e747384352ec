//! Solutions to chapter 8's "What to try next": incremental buffers,
//! bundles, a send timeout, and the CQ size. The first three change a small
//! echo server of their own (`small_echo`) through its `Policy`; the last
//! runs exercise 8's server itself.

use std::net::SocketAddr;
use std::time::Duration;

use uring_book::echo::client::{self, Config, Report};

/// The load client: `conns` connections of `size`-byte messages for `secs`.
pub fn load(addr: SocketAddr, conns: usize, size: usize, secs: f64) -> anyhow::Result<Report> {
    client::run(&Config {
        conns,
        size,
        duration: Duration::from_secs_f64(secs),
        ..Config::new(addr)
    })
}

/// One line of a table of buffer rings: CQEs per buffer given back.
fn row(ring: &str, mib: u32, cqes: u64, given_back: u64) {
    let per = cqes as f64 / given_back.max(1) as f64;
    println!("  {ring:<30} {mib:>3} MiB {cqes:>8} {given_back:>11} {per:>12.1}");
}

/// Exercise 8.1: a buffer ring consumed in part (`IOU_PBUF_RING_INC`).
pub mod incremental {
    use std::time::Duration;

    use anyhow::{bail, ensure, Context};
    use io_uring::cqueue;
    use uring_book::echo::buf_ring::BufRing;
    use uring_book::solutions::small_echo::{under_load, Counts, Options, Plain, Policy};

    /// `IOU_PBUF_RING_INC` (Linux 6.12), from `include/uapi/linux/io_uring.h`.
    pub const IOU_PBUF_RING_INC: u16 = 2;

    // ANCHOR: incremental
    /// Buffers consumed in part: each CQE continues where the last one of its
    /// buffer ended, and the buffer goes back only with its last CQE.
    pub struct Incremental {
        /// Where the next bytes of each buffer start.
        offsets: Vec<u32>,
        pub given_back: u64,
    }

    impl Policy for Incremental {
        fn register_flags(&self) -> u16 {
            IOU_PBUF_RING_INC
        }

        fn take(
            &mut self,
            bufs: &mut BufRing,
            res: i32,
            flags: u32,
            out: &mut Vec<u8>,
        ) -> anyhow::Result<usize> {
            let bid = cqueue::buffer_select(flags).context("no buffer")?;
            let offset = &mut self.offsets[bid as usize];
            if *offset == 0 {
                bufs.taken(bid); // the first bytes in this buffer
            }
            // SAFETY: the kernel wrote `res` bytes at `offset` and, even while
            // it fills the rest of the buffer, never writes there again.
            let start = unsafe { bufs.addr(bid).add(*offset as usize) };
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(start, res as usize) });
            *offset += res as u32;
            if !cqueue::buffer_more(flags) {
                (*offset, self.given_back) = (0, self.given_back + 1);
                bufs.give_back(bid); // the kernel is done with it
            }
            Ok(1)
        }
    }
    // ANCHOR_END: incremental

    /// One run: `buffers` of `kib` KiB, 50 connections of 64-byte messages.
    fn run_one<P: Policy + Send + 'static>(
        policy: P,
        buffers: u16,
        kib: u32,
    ) -> anyhow::Result<(Counts, P)> {
        let options = Options { buffers, buf_size: kib << 10, conns: 50, limit: LIMIT };
        let (counts, report, policy) =
            under_load(policy, options, |addr| super::load(addr, 50, 64, 0.5))?;
        ensure!(counts.bytes == report.messages * 64, "the server saw other bytes");
        Ok((counts, policy))
    }

    const LIMIT: Duration = Duration::from_secs(20);

    // ANCHOR: run
    pub fn run() -> anyhow::Result<()> {
        let inc = Incremental { offsets: vec![0; 64], given_back: 0 };
        let (inc_counts, inc) = match run_one(inc, 64, 64) {
            Err(e) if format!("{e:#}").contains("Invalid argument") => {
                bail!("IOU_PBUF_RING_INC needs Linux 6.12: registering the ring failed")
            }
            other => other?,
        };
        let (plain, _) = run_one(Plain, 4096, 4)?;
        println!("50 connections of 64-byte messages for 0.5 s, every echo verified:");
        println!("  buffer ring                     memory     CQEs  given back  CQEs/buffer");
        super::row("4096 x 4 KiB", 16, plain.recv_cqes, plain.recv_cqes);
        super::row("64 x 64 KiB, IOU_PBUF_RING_INC", 4, inc_counts.recv_cqes, inc.given_back);
        let per = inc_counts.recv_cqes as f64 / inc.given_back.max(1) as f64;
        ensure!(per > 2.0, "an incremental buffer served only {per:.1} CQEs");
        println!("repeat it by hand: cargo run -- solution 8.1");
        Ok(())
    }
    // ANCHOR_END: run
}

/// Exercise 8.2: a multishot receive that fills several buffers per CQE
/// (`IORING_RECVSEND_BUNDLE`).
pub mod bundles {
    use std::time::Duration;

    use anyhow::{bail, ensure, Context};
    use io_uring::{cqueue, opcode, squeue, types::Fd, IoUring};
    use uring_book::echo::buf_ring::BufRing;
    use uring_book::solutions::small_echo::{under_load, Counts, Options, Plain, Policy, GROUP};

    // ANCHOR: bundle
    /// A receive whose CQE may hold several buffers: the one it names, then
    /// the next ones in ring order, each full but the last.
    pub struct Bundle {
        /// The ring entry the kernel takes next, as far as we have seen.
        head: u16,
        pub biggest: usize,
    }

    impl Policy for Bundle {
        fn recv(&self, fd: Fd) -> squeue::Entry {
            opcode::RecvMultiBundle::new(fd, GROUP).build()
        }

        fn take(
            &mut self,
            bufs: &mut BufRing,
            res: i32,
            flags: u32,
            out: &mut Vec<u8>,
        ) -> anyhow::Result<usize> {
            let first = cqueue::buffer_select(flags).context("no buffer")?;
            let (size, res) = (bufs.buf_size() as usize, res as usize);
            let count = res.div_ceil(size);
            for i in 0..count {
                let (_, _, bid) = bufs.entry(self.head);
                ensure!(i > 0 || bid == first, "the CQE names {first}, the ring had {bid}");
                bufs.taken(bid);
                out.extend_from_slice(bufs.bytes(bid, size.min(res - i * size)));
                bufs.give_back(bid);
                self.head = self.head.wrapping_add(1);
            }
            self.biggest = self.biggest.max(count);
            Ok(count)
        }
    }
    // ANCHOR_END: bundle

    /// One run: 256 buffers of 1 KiB, 20 connections of 4 KiB messages.
    fn run_one<P: Policy + Send + 'static>(policy: P) -> anyhow::Result<(Counts, P)> {
        let limit = Duration::from_secs(20);
        let options = Options { buffers: 256, buf_size: 1024, conns: 20, limit };
        let (counts, report, policy) =
            under_load(policy, options, |addr| super::load(addr, 20, 4096, 0.5))?;
        ensure!(counts.bytes == report.messages * 4096, "the server saw other bytes");
        Ok((counts, policy))
    }

    // ANCHOR: run
    pub fn run() -> anyhow::Result<()> {
        if !IoUring::new(2)?.params().is_feature_recvsend_bundle() {
            bail!("IORING_RECVSEND_BUNDLE needs Linux 6.10 (IORING_FEAT_RECVSEND_BUNDLE)");
        }
        let (plain, _) = run_one(Plain)?;
        let (bundled, bundle) = run_one(Bundle { head: 0, biggest: 0 })?;
        println!("20 connections of 4 KiB messages for 0.5 s, buffers of 1 KiB:");
        println!("  receive            CQEs   buffers  buffers/CQE  most in one CQE");
        for (name, c, most) in [("RecvMulti", &plain, 1), ("RecvMultiBundle", &bundled, bundle.biggest)] {
            let per = c.buffers as f64 / c.recv_cqes.max(1) as f64;
            println!("  {name:<16} {:>7} {:>9} {per:>12.2} {most:>16}", c.recv_cqes, c.buffers);
        }
        let per = bundled.buffers as f64 / bundled.recv_cqes.max(1) as f64;
        ensure!(per > 1.5, "a bundle held only {per:.2} buffers on average");
        println!("every echo verified; repeat it by hand: cargo run -- solution 8.2");
        Ok(())
    }
    // ANCHOR_END: run
}
