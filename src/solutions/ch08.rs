//! Solutions to chapter 8's "What to try next": incremental buffers,
//! bundles, a send timeout, and the CQ size. The first three change a small
//! echo server of their own (`small_echo`) through its `Policy`; the last
//! runs exercise 8's server itself.

use std::net::SocketAddr;
use std::time::Duration;

use uring_book::echo::client::{self, Config, Report};

/// The load client: `conns` connections of `size`-byte messages for `secs`.
pub fn load(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
) -> anyhow::Result<Report> {
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
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(start, res as usize)
            });
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
        let options = Options {
            buffers,
            buf_size: kib << 10,
            conns: 50,
            limit: LIMIT,
        };
        let (counts, report, policy) =
            under_load(policy, options, |addr| super::load(addr, 50, 64, 0.5))?;
        ensure!(
            counts.bytes == report.messages * 64,
            "the server saw other bytes"
        );
        Ok((counts, policy))
    }

    const LIMIT: Duration = Duration::from_secs(20);

    // ANCHOR: incremental_run
    pub fn run() -> anyhow::Result<()> {
        let inc = Incremental {
            offsets: vec![0; 64],
            given_back: 0,
        };
        let (inc_counts, inc) = match run_one(inc, 64, 64) {
            Err(e) if format!("{e:#}").contains("Invalid argument") => {
                bail!("IOU_PBUF_RING_INC needs Linux 6.12: registering the ring failed")
            }
            other => other?,
        };
        let (plain, _) = run_one(Plain, 4096, 4)?;
        println!("50 connections of 64-byte messages for 0.5 s, every echo verified:");
        println!(
            "  buffer ring                     memory     CQEs  given back  CQEs/buffer"
        );
        super::row("4096 x 4 KiB", 16, plain.recv_cqes, plain.recv_cqes);
        super::row(
            "64 x 64 KiB, IOU_PBUF_RING_INC",
            4,
            inc_counts.recv_cqes,
            inc.given_back,
        );
        let per = inc_counts.recv_cqes as f64 / inc.given_back.max(1) as f64;
        ensure!(per > 2.0, "an incremental buffer served only {per:.1} CQEs");
        println!("repeat it by hand: cargo run -- solution 8.1");
        Ok(())
    }
    // ANCHOR_END: incremental_run
}

/// Exercise 8.2: a multishot receive that fills several buffers per CQE
/// (`IORING_RECVSEND_BUNDLE`).
pub mod bundles {
    use std::time::Duration;

    use anyhow::{bail, ensure, Context};
    use io_uring::{cqueue, opcode, squeue, types::Fd, IoUring};
    use uring_book::echo::buf_ring::BufRing;
    use uring_book::solutions::small_echo::{
        under_load, Counts, Options, Plain, Policy, GROUP,
    };

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
                ensure!(
                    i > 0 || bid == first,
                    "the CQE names {first}, the ring had {bid}"
                );
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
        let options = Options {
            buffers: 256,
            buf_size: 1024,
            conns: 20,
            limit,
        };
        let (counts, report, policy) =
            under_load(policy, options, |addr| super::load(addr, 20, 4096, 0.5))?;
        ensure!(
            counts.bytes == report.messages * 4096,
            "the server saw other bytes"
        );
        Ok((counts, policy))
    }

    // ANCHOR: bundles_run
    pub fn run() -> anyhow::Result<()> {
        if !IoUring::new(2)?.params().is_feature_recvsend_bundle() {
            bail!(
                "IORING_RECVSEND_BUNDLE needs Linux 6.10 (IORING_FEAT_RECVSEND_BUNDLE)"
            );
        }
        let (plain, _) = run_one(Plain)?;
        let (bundled, bundle) = run_one(Bundle {
            head: 0,
            biggest: 0,
        })?;
        println!("20 connections of 4 KiB messages for 0.5 s, buffers of 1 KiB:");
        println!("  receive            CQEs   buffers  buffers/CQE  most in one CQE");
        for (name, c, most) in [
            ("RecvMulti", &plain, 1),
            ("RecvMultiBundle", &bundled, bundle.biggest),
        ] {
            let per = c.buffers as f64 / c.recv_cqes.max(1) as f64;
            println!(
                "  {name:<16} {:>7} {:>9} {per:>12.2} {most:>16}",
                c.recv_cqes, c.buffers
            );
        }
        let per = bundled.buffers as f64 / bundled.recv_cqes.max(1) as f64;
        ensure!(per > 1.5, "a bundle held only {per:.2} buffers on average");
        println!("every echo verified; repeat it by hand: cargo run -- solution 8.2");
        Ok(())
    }
    // ANCHOR_END: bundles_run
}

/// Exercise 8.3: every send linked to a `LinkTimeout`; a client that stops
/// reading loses its connection, the others keep theirs.
pub mod send_timeout {
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use anyhow::ensure;
    use io_uring::types::{Fd, Timespec};
    use io_uring::{opcode, squeue};
    use socket2::{Domain, Socket, Type};
    use uring_book::echo::client::Report;
    use uring_book::solutions::small_echo::{under_load, Counts, Options, Policy};

    /// The deadline: 30 s in a real server, short here so that the run is.
    pub const LIMIT: Duration = Duration::from_millis(300);

    // ANCHOR: deadline
    /// Every send carries `IO_LINK` and a `LinkTimeout` after it: a send
    /// still waiting for room in the socket after `limit` is cancelled, and
    /// its CQE says ECANCELED. The server then ends the connection.
    pub struct SendDeadline {
        /// The kernel copies it when it takes the SQE.
        pub limit: Timespec,
    }

    impl Policy for SendDeadline {
        fn send(&self, fd: Fd, ptr: *const u8, len: u32) -> Vec<squeue::Entry> {
            let send = opcode::Send::new(fd, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build();
            let timeout = opcode::LinkTimeout::new(&self.limit).build();
            vec![send.flags(squeue::Flags::IO_LINK), timeout]
        }
    }
    // ANCHOR_END: deadline

    // ANCHOR: stalled
    /// A client that sends 16 MiB and never reads its echo. Returns how long
    /// after its last byte its writes began to fail: the server closed it.
    fn stalled_client(addr: SocketAddr) -> anyhow::Result<Duration> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_recv_buffer_size(4096)?; // little room for the echo
        socket.connect(&addr.into())?;
        let mut stream = TcpStream::from(socket);
        stream.write_all(&vec![b's'; 16 << 20])?;
        let done = Instant::now();
        while done.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
            if stream.write(b"?").is_err() {
                return Ok(done.elapsed()); // EPIPE or ECONNRESET: closed
            }
        }
        anyhow::bail!("the stalled client was still connected after 10 s")
    }
    // ANCHOR_END: stalled

    /// The server with [`SendDeadline`], 20 load clients and 1 stalled one.
    fn serve_both() -> anyhow::Result<(Counts, Report, Duration)> {
        let policy = SendDeadline {
            limit: Timespec::from(LIMIT),
        };
        let limit = Duration::from_secs(20);
        let options = Options {
            buffers: 1024,
            buf_size: 4096,
            conns: 21,
            limit,
        };
        let (counts, (report, closed_after), _) = under_load(policy, options, |addr| {
            let stalled = std::thread::spawn(move || stalled_client(addr));
            let report = super::load(addr, 20, 64, 1.0)?;
            let closed_after = stalled.join().expect("the stalled client panicked")?;
            Ok((report, closed_after))
        })?;
        Ok((counts, report, closed_after))
    }

    // ANCHOR: send_timeout_run
    pub fn run() -> anyhow::Result<()> {
        let (counts, report, closed_after) = serve_both()?;
        let (ms, after) = (LIMIT.as_millis(), closed_after.as_millis());
        println!("a LinkTimeout of {ms} ms on every send; 20 clients read, 1 does not:");
        println!("  sends cancelled by their deadline: {}", counts.timed_out);
        println!(
            "  the client that does not read: closed {after} ms after its last write"
        );
        println!(
            "  the 20 others: {} messages echoed and verified",
            report.messages
        );
        let timed_out = counts.timed_out;
        ensure!(timed_out == 1, "{timed_out} sends timed out, not 1");
        ensure!(
            counts.accepted == 21 && report.messages > 0,
            "the others were cut off"
        );
        println!("repeat it by hand: cargo run -- solution 8.3");
        Ok(())
    }
    // ANCHOR_END: send_timeout_run
}

/// Exercise 8.4: exercise 8's server with a CQ of 64 entries against its
/// default of 16384, under the same load, interleaved.
pub mod cq_size {
    use anyhow::{anyhow, ensure};
    use uring_book::bench::stats::{compare, Spread, Verdict};
    use uring_book::echo::client::Report;
    use uring_book::echo::multishot::{self, Config, Stats};
    use uring_book::ex8_multishot_echo::{listen, EventFd};
    use uring_book::usage;

    #[derive(clap::Args)]
    pub struct Args {
        /// Runs of each size
        #[arg(long, default_value_t = 3, value_parser = usage::at_least_one::<usize>)]
        pub repeats: usize,
        /// Connections of the load client
        #[arg(long, default_value_t = 500, value_parser = usage::at_least_one::<usize>)]
        pub conns: usize,
    }

    // ANCHOR: one_run
    /// Exercise 8's server with `config`, under the load client for 0.5 s.
    fn one_run(config: &Config, conns: usize) -> anyhow::Result<(Stats, Report)> {
        let listener = listen("127.0.0.1:0".parse()?, 1)?.remove(0);
        let addr = listener.local_addr()?;
        let stop = EventFd::new()?;
        let (fd, config) = (stop.raw(), config.clone());
        let server = std::thread::spawn(move || multishot::serve(&listener, fd, &config));
        let report = super::load(addr, conns, 64, 0.5);
        stop.notify()?;
        let stats = server
            .join()
            .map_err(|_| anyhow!("the server panicked"))??;
        Ok((stats, report?))
    }
    // ANCHOR_END: one_run

    /// The configurations compared: the default, then a CQ of 64.
    const NAMES: [&str; 2] = ["16384 (default)", "64"];

    // ANCHOR: cq_size_measure
    /// `repeats` runs of each configuration, interleaved: the re-arms and the
    /// messages per second of each run.
    fn measure(configs: [&Config; 2], args: &Args) -> anyhow::Result<[[Spread; 2]; 2]> {
        let mut runs = [[vec![], vec![]], [vec![], vec![]]];
        for rep in 0..args.repeats {
            for i in [rep % 2, 1 - rep % 2] {
                let (stats, report) = one_run(configs[i], args.conns)?;
                runs[i][0].push(stats.rearmed as f64);
                runs[i][1].push(report.msgs_per_sec());
            }
        }
        let spread = |v: &Vec<f64>| Spread::of(v.clone()).expect("at least 1 run");
        Ok(runs.map(|[rearmed, rates]| [spread(&rearmed), spread(&rates)]))
    }
    // ANCHOR_END: cq_size_measure

    fn text(s: &Spread) -> String {
        format!("{:.0} ({:.0}-{:.0})", s.median, s.min, s.max)
    }

    /// Exercise 8's configuration, and the exercise's: SQ and CQ of 64.
    fn configs() -> [Config; 2] {
        let default = Config {
            quiet: true,
            ..Config::default()
        };
        let small = Config {
            sq_entries: 64,
            cq_entries: 64,
            ..default.clone()
        };
        [default, small]
    }

    /// The hint: a CQ smaller than the SQ is refused.
    fn cq_below_sq_fails() -> anyhow::Result<()> {
        let config = Config {
            cq_entries: 64,
            ..Config::default()
        };
        let errno = multishot::ring(&config)
            .err()
            .and_then(|e| e.raw_os_error());
        ensure!(
            errno == Some(libc::EINVAL),
            "a CQ smaller than the SQ: {errno:?}"
        );
        println!("sq_entries 4096 and cq_entries 64: io_uring_setup fails with EINVAL");
        Ok(())
    }

    // ANCHOR: cq_size_run
    pub fn run(args: &Args) -> anyhow::Result<()> {
        uring_book::system::raise_nofile_limit()?; // 2 descriptors a connection
        cq_below_sq_fails()?;
        let [default, small] = configs();
        let [big, little] = measure([&default, &small], args)?;
        let (conns, runs) = (args.conns, big[0].runs);
        println!("{conns} connections of 64-byte messages for 0.5 s, {runs} runs each:");
        println!("  cq_entries        re-armed              msgs/s");
        for (name, [rearmed, rate]) in NAMES.iter().zip([&big, &little]) {
            println!("  {name:<16}  {:<20}  {}", text(rearmed), text(rate));
        }
        let speed = match compare(&little[1], &big[1]) {
            Verdict::Higher | Verdict::Lower => {
                format!("{:.2}x the default's", little[1].median / big[1].median)
            }
            Verdict::Tie | Verdict::OneRun => "a tie (the runs overlap)".into(),
        };
        println!("  msgs/s with a CQ of 64: {speed}");
        // The CQ fills only when many connections complete between two turns
        // of the loop: a matter of timing, so some runs may see none.
        let rearms = match compare(&little[0], &big[0]) {
            Verdict::Higher => "receives ended for lack of room in every run",
            _ => "a tie: the CQ of 64 filled in some runs only",
        };
        println!("  re-arms with a CQ of 64: {rearms}");
        println!("repeat it by hand: set both to 64 in Config::default, run");
        println!("  cargo run -- 8, and beside it cargo run -- echo-client --conns 500");
        Ok(())
    }
    // ANCHOR_END: cq_size_run
}
