//! Solutions to chapter 6's "What to try next". Each runs a small, fast
//! measurement of its own (short runs, a small file, every point repeated and
//! interleaved), says what it expects and reports what it saw. A difference
//! inside the spread of the runs is a tie (`bench::stats::compare`), never a
//! failure: only what noise cannot change is checked.

/// The measurement 6.1 and 6.2 share: random 4 KiB O_DIRECT reads of a
/// small file at several depths.
pub mod depths {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use anyhow::bail;
    use uring_book::bench::file::{
        open_for_reads, rand_read_uring, seq_write_std, UringOpts,
    };
    use uring_book::bench::machine::{
        direct_io_obstacle, file_system, supports_o_direct,
    };
    use uring_book::bench::record::Measured;
    use uring_book::bench::stats::{compare, Spread, Verdict};
    use uring_book::usage;

    #[derive(clap::Args)]
    pub struct Args {
        /// A directory on the disk to measure (not tmpfs)
        #[arg(long, default_value = "/var/tmp", value_parser = usage::existing_dir)]
        pub dir: PathBuf,
    }

    /// One run's length: short, so that a solution takes seconds.
    pub const RUN: Duration = Duration::from_millis(150);

    /// One depth's runs: reads per second, p50 and p99 in µs, and the reads
    /// in flight on average by Little's law (reads per second × mean latency).
    pub struct Point {
        pub depth: usize,
        pub iops: Spread,
        pub p50_us: Spread,
        pub p99_us: Spread,
        pub in_flight: Spread,
    }

    // ANCHOR: sweep
    /// `runs` runs of random reads at each of `depths`, interleaved, on a
    /// 16 MiB file in `dir` opened with O_DIRECT.
    pub fn sweep(dir: &Path, depths: &[usize], runs: u64) -> anyhow::Result<Vec<Point>> {
        let fs = file_system(dir)?;
        if let Some(why) = direct_io_obstacle(&fs, supports_o_direct(dir)?) {
            bail!(why);
        }
        println!("{}", fs.describe());
        let tmp = uring_book::cleanup::tempfile_in(dir, ".solution-6-")?;
        seq_write_std(tmp.path(), 16 << 20, 1 << 20)?;
        let file = open_for_reads(tmp.path(), true)?;
        let mut measured: Vec<Vec<Measured>> = depths.iter().map(|_| vec![]).collect();
        for run in 0..runs {
            for (i, &depth) in depths.iter().enumerate() {
                let opts = UringOpts {
                    depth,
                    ..UringOpts::default()
                };
                measured[i].push(rand_read_uring(&file, opts, RUN, run)?);
            }
        }
        Ok(depths
            .iter()
            .zip(measured)
            .map(|(&d, m)| Point::of(d, m))
            .collect())
    }
    // ANCHOR_END: sweep

    impl Point {
        fn of(depth: usize, runs: Vec<Measured>) -> Point {
            let (mut iops, mut p50, mut p99, mut in_flight) =
                (vec![], vec![], vec![], vec![]);
            for mut m in runs {
                let rate = m.ops as f64 / m.elapsed.as_secs_f64();
                // The mean is the average of the percentiles 0.5, 1.5 ... 99.5.
                let mut pct = |p: f64| m.latencies.percentile_us(p).unwrap_or(f64::NAN);
                let mean_us = (0..100).map(|i| pct(i as f64 + 0.5)).sum::<f64>() / 100.0;
                p50.push(pct(50.0));
                p99.push(pct(99.0));
                in_flight.push(rate * mean_us / 1e6);
                iops.push(rate);
            }
            let spread =
                |v: Vec<f64>| Spread::of(v).unwrap_or(Spread::of([0.0]).unwrap());
            Point {
                depth,
                iops: spread(iops),
                p50_us: spread(p50),
                p99_us: spread(p99),
                in_flight: spread(in_flight),
            }
        }
    }

    /// The first depth that the deepest one does not beat by the tie rule:
    /// from there, more depth stops paying. `None` if only the deepest.
    pub fn flat_from(points: &[Point]) -> Option<&Point> {
        let (last, rest) = points.split_last()?;
        rest.iter()
            .find(|p| compare(&last.iops, &p.iops) != Verdict::Higher)
    }

    /// `12345 reads/s (runs 12000 to 13000)`.
    pub fn show(s: &Spread) -> String {
        format!(
            "{:.0} reads/s (runs {:.0} to {:.0})",
            s.median, s.min, s.max
        )
    }
}

/// Exercise 6.1: the O_DIRECT reads on the disk under `--dir`, with the
/// table's context: device and I/O scheduler.
pub mod another_device {
    use anyhow::ensure;

    use super::depths::{flat_from, show, sweep, Args};

    // ANCHOR: another_device
    pub fn run(args: &Args) -> anyhow::Result<()> {
        println!("expect: more depth pays until the device's queues are full");
        let points = sweep(&args.dir, &[1, 4, 16], 3)?;
        for p in &points {
            println!("  depth {:>2}: {}", p.depth, show(&p.iops));
            ensure!(p.iops.min > 0.0, "no read completed at depth {}", p.depth);
        }
        match flat_from(&points) {
            Some(p) => {
                println!("depth 16 is a tie with depth {}: no gain past it", p.depth)
            }
            None => println!("depth 16 beat every shallower depth: it still paid"),
        }
        let dir = args.dir.display();
        println!("by hand: cargo run --release -- 6 --workloads direct --dir {dir}");
        Ok(())
    }
    // ANCHOR_END: another_device
}

/// Exercise 6.2: depths 1 to 64, latency beside throughput, and Little's
/// law checked: reads per second × mean latency = reads in flight.
pub mod finer_depths {
    use anyhow::ensure;

    use super::depths::{flat_from, sweep, Args};

    // ANCHOR: finer_depths
    pub fn run(args: &Args) -> anyhow::Result<()> {
        println!("expect: once reads/s are flat, latency grows with the depth");
        let points = sweep(&args.dir, &[1, 2, 4, 8, 16, 32, 64], 3)?;
        println!("  depth    reads/s   p50 µs   p99 µs   in flight (reads/s × mean)");
        for p in &points {
            let (rate, p50, p99) = (p.iops.median, p.p50_us.median, p.p99_us.median);
            let (depth, busy) = (p.depth, p.in_flight.median);
            println!("  {depth:>5} {rate:>10.0} {p50:>8.0} {p99:>8.0}   {busy:.1}");
            // Little's law: the loop keeps `depth` reads in flight all along.
            let near = (busy - depth as f64).abs() <= 0.25 * depth as f64;
            ensure!(
                near,
                "{busy:.1} in flight at depth {depth}, not Little's law"
            );
        }
        let last = points.last().expect("depths");
        match flat_from(&points) {
            Some(flat) => {
                let (d, grew) = (flat.depth, last.p50_us.median / flat.p50_us.median);
                println!("reads/s at depth 64 are a tie with depth {d}'s;");
                println!("from {d} to 64 the p50 latency grew x{grew:.1}");
            }
            None => println!("reads/s still rose up to depth 64"),
        }
        let by_hand = "cargo run --release -- 6 --workloads direct";
        println!("by hand: {by_hand} --dir {} \\", args.dir.display());
        println!("             --depths 1,2,4,8,16,32,64");
        Ok(())
    }
    // ANCHOR_END: finer_depths
}

/// Exercise 6.3: system calls per message, counted by `perf stat` in the
/// server, for tokio and tokio-uring at 1 to 16 connections.
pub mod fewer_connections {
    use std::time::Duration;

    use anyhow::{bail, ensure, Context};
    use uring_book::bench::echo::{chapter5_client, measure, perf_available};
    use uring_book::bench::echo::{Load, ServerProcess};
    use uring_book::bench::stats::{compare, Spread, Verdict};
    use uring_book::solutions::exercises_binary;

    /// The system calls the `engine` server made per 64-byte message, with
    /// `conns` connections for 0.2 s.
    pub fn syscalls_per_message(engine: &str, conns: usize) -> anyhow::Result<f64> {
        let server = ServerProcess::start(&exercises_binary()?, engine, None, true)?;
        let (addr, duration) = (server.addr, Duration::from_millis(200));
        let load = Load {
            addr,
            conns,
            size: 64,
            duration,
        };
        let record = measure(server, engine, load, &chapter5_client, None, 0.2, false)?;
        record
            .syscalls_per_op
            .context("perf counted no system calls")
    }

    // ANCHOR: fewer_connections
    pub fn run() -> anyhow::Result<()> {
        if !perf_available() {
            bail!("perf stat cannot count system calls here: install perf (linux-perf)");
        }
        println!(
            "expect: tokio 2 calls a message or more; tokio-uring fewer with more conns"
        );
        let (conns, engines) = ([1, 2, 4, 8, 16], ["tokio", "tokio-uring"]);
        let mut runs = vec![[vec![], vec![]]; conns.len()];
        for _ in 0..2 {
            for (c, &n) in conns.iter().enumerate() {
                for (e, engine) in engines.iter().enumerate() {
                    runs[c][e].push(syscalls_per_message(engine, n)?);
                }
            }
        }
        println!("  conns   tokio   tokio-uring   (system calls per message, 2 runs)");
        for (n, [tokio, uring]) in conns.into_iter().zip(runs) {
            let tokio = Spread::of(tokio).context("no runs")?;
            let uring = Spread::of(uring).context("no runs")?;
            // A recv and a send per message at least: no noise changes that.
            ensure!(
                tokio.min >= 2.0,
                "tokio made {:.2} calls a message",
                tokio.min
            );
            let verdict = match compare(&uring, &tokio) {
                Verdict::Lower if uring.max < 1.0 => "fewer: under 1, so batched",
                Verdict::Lower => "fewer",
                Verdict::Higher => "more",
                _ => "a tie",
            };
            let (t, u) = (tokio.median, uring.median);
            println!("  {n:>5} {t:>7.2} {u:>13.2}   {verdict}");
        }
        let by_hand = "cargo run --release -- 6 --workloads echo --conns 1,2,4,8,16";
        println!("by hand: {by_hand} --sizes 64");
        Ok(())
    }
    // ANCHOR_END: fewer_connections
}

/// Exercise 6.4: the two tokio-uring servers profiled with `perf record`,
/// the rows the chapter discusses set side by side.
pub mod profile {
    use std::time::Duration;

    use anyhow::{bail, ensure, Context};
    use uring_book::bench::echo::{
        allowed_cpus, chapter5_client, measure, perf_available,
    };
    use uring_book::bench::echo::{Load, ServerProcess};
    use uring_book::bench::record::Profile;
    use uring_book::bench::stats::{compare, Spread, Verdict};
    use uring_book::solutions::exercises_binary;

    /// The spin lock's slow path, as a virtual machine names it, and where
    /// the time of an interrupt that ran task_work is charged.
    pub const WATCHED: [&str; 2] = [
        "__pv_queued_spin_lock_slowpath",
        "irqentry_exit_to_user_mode",
    ];

    /// A profile of `engine` at 100 connections of 4 KiB messages for 0.5 s,
    /// the server and the client on CPUs of their own, as in the chapter.
    pub fn profile_of(engine: &str) -> anyhow::Result<Profile> {
        let cpus = allowed_cpus();
        let (client, cpu) = (cpus.first().copied(), cpus.get(1).copied());
        let server = ServerProcess::start(&exercises_binary()?, engine, cpu, false)?;
        let (addr, duration) = (server.addr, Duration::from_millis(500));
        let load = Load {
            addr,
            conns: 100,
            size: 4096,
            duration,
        };
        let record = measure(server, engine, load, &chapter5_client, client, 0.5, true)?;
        let profile = record.profile.context("perf recorded no profile")?;
        ensure!(profile.samples > 0, "perf recorded no samples of {engine}");
        Ok(profile)
    }

    /// `name`'s share of the samples in percent, if it is among the hottest
    /// functions the profile kept.
    fn share(p: &Profile, name: &str) -> Option<f64> {
        p.hottest.iter().find(|(f, _)| f == name).map(|(_, s)| *s)
    }

    // ANCHOR: profile
    pub fn run() -> anyhow::Result<()> {
        if !perf_available() {
            bail!("perf cannot profile the server here: install perf (linux-perf)");
        }
        println!("expect: the spin lock's slow path in tokio-uring, less with coop");
        let engines = ["tokio-uring", "tokio-uring+coop"];
        let mut profiles = [vec![], vec![]];
        for _ in 0..2 {
            for (e, engine) in engines.iter().enumerate() {
                profiles[e].push(profile_of(engine)?);
            }
        }
        for (engine, runs) in engines.iter().zip(&profiles) {
            let top: Vec<String> = (runs[0].hottest.iter().take(3))
                .map(|(f, s)| format!("  {s:>4.1} %  {f}"))
                .collect();
            println!("{engine}, hottest in run 1:\n{}", top.join("\n"));
        }
        for name in WATCHED {
            // Absent from the 8 hottest: at least 0, at most the 8th's share.
            let least = |p: &Profile| share(p, name).unwrap_or(0.0);
            let most = |p: &Profile| share(p, name).or(p.hottest.last().map(|h| h.1));
            let plain = Spread::of(profiles[0].iter().map(least)).context("no runs")?;
            let coop =
                Spread::of(profiles[1].iter().filter_map(most)).context("no runs")?;
            let verdict = match compare(&plain, &coop) {
                Verdict::Higher => "more without coop, every run",
                _ => "a tie",
            };
            let (p, c) = (plain.median, coop.median);
            println!("{name}: {p:.1} %, with coop at most {c:.1} %:\n  {verdict}");
        }
        println!("by hand: the commands of \"Where the plain ring's time goes\"");
        Ok(())
    }
    // ANCHOR_END: profile
}
