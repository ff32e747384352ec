//! Exercise 6: the benchmark. io_uring against std, a pool of blocking
//! threads and fio on files, and against tokio (epoll) and std threads on a
//! TCP echo server, with tables, a JSON file of records and SVG charts.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use uring_book::bench::echo;
use uring_book::bench::file::{self, Submit, UringOpts};
use uring_book::bench::fio::{self, FioJob};
use uring_book::bench::machine::{self, FileSystem};
use uring_book::bench::record::{self, Measured, Record, Settings};
use uring_book::bench::{brief, findings, plot, report};
use uring_book::optional_tools::{self as tools, Availability};
use uring_book::{cleanup, diagnose, usage};

#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// What `cargo run` runs: a few points, one run of 0.25 s each, a short summary
    #[arg(long)]
    pub quick: bool,
    /// Directory for the test files; it should be on a real disk, not tmpfs
    #[arg(long, default_value = "/var/tmp")]
    pub dir: PathBuf,
    /// Size of the test file, such as 256M or 1G [default: 256M, --quick: 32M]
    #[arg(long, value_parser = parse_size)]
    pub file_size: Option<u64>,
    /// Seconds each run of a point lasts [default: 1, --quick: 0.25]
    #[arg(long, value_parser = usage::seconds::<600>)]
    pub seconds: Option<f64>,
    /// Runs of each point, taking turns with the other engines [default: 3, --quick: 1]
    #[arg(long, value_parser = usage::one_to::<100>)]
    pub repeat: Option<usize>,
    /// Queue depths for io_uring, 1 to 32768 [default: 1,4,16,32,128, --quick: 1,32]
    #[arg(long, value_delimiter = ',', value_parser = usage::one_to::<32768>)]
    pub depths: Option<Vec<usize>>,
    /// Sizes of the pool of blocking-pread threads [default: 4,8,32, --quick: none]
    #[arg(long, value_delimiter = ',', value_parser = usage::one_to::<1024>)]
    pub threads: Option<Vec<usize>>,
    /// Workloads to run [default: all but multishot, --quick: cached,direct,tmpfs,echo]
    #[arg(long, value_delimiter = ',')]
    pub workloads: Option<Vec<Workload>>,
    /// Do not run fio beside our engines even if it is installed
    #[arg(long)]
    pub no_fio: bool,
    /// Write the records of the run to this file, as one JSON array
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG charts into this directory
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the tables and findings as Markdown to this file
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Do not measure: print tables, charts and summary of an earlier --json file
    #[arg(long)]
    pub from_json: Option<PathBuf>,
    /// Connection counts of the echo workload [default: 1,10,100,1000, --quick: 100]
    #[arg(long, value_delimiter = ',', value_parser = usage::at_least_one::<usize>)]
    pub conns: Option<Vec<usize>>,
    /// Message sizes of the echo workload, in bytes [default: 64,4096, --quick: 64]
    #[arg(long, value_delimiter = ',', value_parser = usage::one_to::<{ 64 << 20 }>)]
    pub sizes: Option<Vec<usize>>,
    /// Echo servers to measure [default: chapter 6's five]
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// (internal) Be one of the echo servers, for the benchmark
    #[arg(long, hide = true)]
    pub serve: Option<String>,
    /// (internal) Pin the echo server to this CPU
    #[arg(long, hide = true)]
    pub cpu: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Sequential write, then read, of one large file
    Seq,
    /// Random 4 KiB reads from the page cache
    Cached,
    /// Random 4 KiB O_DIRECT reads from the device
    Direct,
    /// Random 4 KiB reads from a file on tmpfs (/dev/shm)
    Tmpfs,
    /// TCP echo on loopback
    Echo,
    /// Chapter 8's measurements of exercise 8 (runs alone; six minutes)
    Multishot,
}

/// What `--help` says under the options: the two runs and what they cost.
const AFTER_HELP: &str = "\
--quick is what `cargo run` (every exercise, a debug build) runs: a 32 MiB file, one run
of 0.25 s of a few points (well under a minute), and a short summary of them. A debug
build's numbers are not worth quoting.
The default run measures every point three times, 1 s each, on a 256 MiB file (about 8
minutes), and prints every table: `cargo run --release -- 6`. Add --json FILE for the
records, --plot DIR for SVG charts. Chapter 6 of the book explains the tables.";

/// The time of one run of a point, and what `--quick` and the full run measure.
impl Args {
    /// Seconds each run of a point lasts.
    pub fn seconds(&self) -> f64 {
        self.seconds
            .unwrap_or(if self.quick { QUICK_SECONDS } else { 1.0 })
    }

    pub fn workloads(&self) -> Vec<Workload> {
        use Workload::*;
        let default = if self.quick {
            vec![Cached, Direct, Tmpfs, Echo]
        } else {
            vec![Seq, Cached, Direct, Tmpfs, Echo]
        };
        self.workloads.clone().unwrap_or(default)
    }

    pub fn depths(&self) -> Vec<usize> {
        let default = if self.quick {
            vec![1, 32]
        } else {
            vec![1, 4, 16, 32, 128]
        };
        self.depths.clone().unwrap_or(default)
    }

    pub fn threads(&self) -> Vec<usize> {
        let default = if self.quick { vec![] } else { vec![4, 8, 32] };
        self.threads.clone().unwrap_or(default)
    }

    pub fn conns(&self) -> Vec<usize> {
        let default = if self.quick {
            vec![100]
        } else {
            vec![1, 10, 100, 1000]
        };
        self.conns.clone().unwrap_or(default)
    }

    pub fn sizes(&self) -> Vec<usize> {
        let default = if self.quick { vec![64] } else { vec![64, 4096] };
        self.sizes.clone().unwrap_or(default)
    }
}

/// Seconds per run of a point with `--quick`.
pub const QUICK_SECONDS: f64 = 0.25;

/// `256M`, `1G`, `4096`, `64K`: bytes, with an optional binary suffix.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches("iB").trim_end_matches('B');
    let (digits, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size like 256M"))?;
    let bytes = n << shift;
    if bytes < file::BLOCK as u64 || !bytes.is_multiple_of(file::BLOCK as u64) {
        return Err(format!(
            "'{text}': the file size must be a multiple of 4 KiB"
        ));
    }
    Ok(bytes)
}

/// Everything a step needs: the settings of the run and what it produced.
struct Run {
    dir: PathBuf,
    fs: FileSystem,
    path: PathBuf,
    file_size: u64,
    seconds: f64,
    /// Runs of each point, and the one the current step belongs to.
    repeat: u32,
    round: u32,
    records: Vec<Record>,
    notes: Vec<String>,
}

/// Chunks of the sequential workloads and how many io_uring keeps in flight.
const SEQ_CHUNK: usize = 1 << 20;
const SEQ_DEPTH: usize = 8;

impl Run {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    fn settings(&self, block_size: usize) -> Settings {
        Settings {
            block_size: block_size as u64,
            file_size: self.file_size,
            dir: self.dir.display().to_string(),
            file_system: Some(self.fs.clone()),
            seconds: self.seconds,
            ..Settings::default()
        }
    }

    /// Keeps a record, marked with the run it belongs to.
    fn add(&mut self, mut record: Record) {
        record.repeat = self.round;
        self.records.push(record);
    }

    fn push(
        &mut self,
        workload: &str,
        engine: &str,
        depth: usize,
        m: Measured,
        s: Settings,
    ) {
        self.add(Record::new(workload, engine, depth as u32, m, s));
    }
}

type StepFn = Box<dyn FnOnce(&mut Run) -> anyhow::Result<()>>;
type Step = (String, StepFn);
/// A step of the run with the part of it that it belongs to: a workload, or
/// making its test file.
type Planned = (&'static str, String, StepFn);

/// The width of a terminal the tables and findings fit.
const WIDTH: usize = 88;

pub fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(engine) = &args.serve {
        return echo::serve(engine, args.cpu);
    }
    if args.workloads().contains(&Workload::Multishot) {
        return chapter8(args);
    }
    if let Some(path) = &args.from_json {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--from-json {}", path.display()))?;
        let records = record::from_json(&text)
            .with_context(|| format!("{} is not a file of records", path.display()))?;
        return output(&records, args);
    }
    let fs = machine::file_system(&args.dir).map_err(|e| {
        anyhow!("--dir {}: {}", args.dir.display(), diagnose::errno_text(&e))
    })?;
    let tmp = cleanup::tempdir_in(&args.dir, "uring-bench").map_err(|e| {
        anyhow!("--dir {}: {}", args.dir.display(), diagnose::errno_text(&e))
    })?;
    // Refuse a run that could never finish before spending time on it.
    let probe = io_uring::IoUring::new(2).map_err(diagnose::setup)?;
    drop(probe);
    let mut run = Run {
        dir: args.dir.clone(),
        path: tmp.path().join("data"),
        fs,
        file_size: args.file_size.unwrap_or(if args.quick {
            32 << 20
        } else {
            256 << 20
        }),
        seconds: args.seconds(),
        repeat: args
            .repeat
            .map_or(if args.quick { 1 } else { 3 }, |r| r as u32),
        round: 0,
        records: Vec::new(),
        notes: Vec::new(),
    };
    // A quick run's summary has no fio figures, so it does not run fio.
    let fio_wanted = !args.no_fio && !args.quick;
    let fio = fio_wanted && matches!(tools::fio(), Availability::Ready(_));
    if fio_wanted {
        run.notes
            .extend(tools::missing_line(&tools::FIO, &tools::fio()));
    }
    if args.workloads().contains(&Workload::Echo) {
        run.notes
            .extend(tools::missing_line(&tools::PERF, &tools::perf()));
    }
    let steps = plan(args, &mut run, fio)?;
    let bar = ProgressBar::new(steps.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    // The bar draws on a terminal only: elsewhere (a file, a pipe, a CI log)
    // a line as each part starts says what the run is doing.
    let mut lines = (!std::io::stderr().is_terminal()).then(|| Progress::new(&steps));
    for (part, label, step) in steps {
        if let Some(lines) = &mut lines {
            lines.starting(part);
        }
        bar.set_message(label);
        step(&mut run)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Notes come before the quick summary too, so they fit its narrower page.
    for note in &run.notes {
        let note = format!("note: {note}");
        println!("{}", report::wrap(&note, brief::WIDTH));
    }
    output(&run.records, args)
}

/// The lines a run prints where there is no progress bar: one as each
/// part of the run starts, with how long the run has taken so far.
struct Progress {
    /// Each part and its number of steps, in order.
    parts: Vec<(&'static str, usize)>,
    current: Option<&'static str>,
    started: std::time::Instant,
}

impl Progress {
    fn new(steps: &[Planned]) -> Progress {
        let mut parts: Vec<(&'static str, usize)> = Vec::new();
        for (part, _, _) in steps {
            match parts.last_mut() {
                Some((p, n)) if p == part => *n += 1,
                _ => parts.push((part, 1)),
            }
        }
        Progress {
            parts,
            current: None,
            started: std::time::Instant::now(),
        }
    }

    fn starting(&mut self, part: &'static str) {
        if self.current == Some(part) {
            return;
        }
        self.current = Some(part);
        let n = self.parts.iter().find(|p| p.0 == part).map_or(0, |p| p.1);
        println!(
            "[{:>3.0} s] {part} ({})",
            self.started.elapsed().as_secs_f64(),
            findings::plural(n, "step", "steps")
        );
    }
}

/// What a run piped to a file says as each part starts.
const SEQ_TITLE: &str = "sequential write, then read, of one file";
const CACHED_TITLE: &str = "random 4 KiB reads from the page cache";
const DIRECT_TITLE: &str = "random 4 KiB reads with O_DIRECT from the device";
const TMPFS_TITLE: &str = "random 4 KiB reads from a file on tmpfs";
const ECHO_TITLE: &str = "TCP echo servers on loopback";

/// The steps of the run, in order, so that the progress bar knows how many.
/// Each workload runs `repeat` rounds, one after the other: the runs of one
/// point are spread over the workload's time and interleaved with every
/// other engine's, so that a machine that slows down for a while slows all
/// engines alike.
fn plan(args: &Args, run: &mut Run, fio: bool) -> anyhow::Result<Vec<Planned>> {
    let workloads = args.workloads();
    let wants = |w| workloads.contains(&w);
    let rounds = run.repeat;
    let mut steps: Vec<Planned> = Vec::new();
    let mut add = |part: &'static str, round: u32, these: Vec<Step>| {
        for (label, f) in these {
            let label = if rounds > 1 {
                format!("{label} (run {} of {rounds})", round + 1)
            } else {
                label
            };
            let f: StepFn = Box::new(move |r: &mut Run| {
                r.round = round;
                f(r)
            });
            steps.push((part, label, f));
        }
    };
    let any_file =
        wants(Workload::Seq) || wants(Workload::Cached) || wants(Workload::Direct);
    if any_file && !wants(Workload::Seq) {
        add(
            "writing the test file",
            0,
            vec![step("writing the test file", |r| {
                file::seq_write_uring(&r.path, r.file_size, SEQ_CHUNK, SEQ_DEPTH)
                    .map(drop)
            })],
        );
    }
    if wants(Workload::Seq) {
        for round in 0..rounds {
            add(SEQ_TITLE, round, sequential_steps());
        }
    }
    // The random reads run in mirrored order from one round to the next, so
    // that no engine is always the first or the last of a round.
    let mirrored = |round: u32, mut these: Vec<Step>| {
        if round % 2 == 1 {
            these.reverse();
        }
        these
    };
    if wants(Workload::Cached) {
        for round in 0..rounds {
            let these = random_read_steps(args, "rand-read-cached", false, fio, round);
            add(CACHED_TITLE, round, mirrored(round, these));
        }
    }
    if wants(Workload::Direct) {
        let o_direct = machine::supports_o_direct(&run.dir)?;
        match machine::direct_io_obstacle(&run.fs, o_direct) {
            Some(why) if workloads == [Workload::Direct] => bail!("{why}"),
            Some(why) => run.notes.push(format!("no O_DIRECT workload: {why}")),
            None => {
                add(
                    DIRECT_TITLE,
                    0,
                    vec![step("dropping the file from the page cache", |r| {
                        file::evict(&r.path)
                    })],
                );
                for round in 0..rounds {
                    let these =
                        random_read_steps(args, "rand-read-direct", true, fio, round);
                    add(DIRECT_TITLE, round, mirrored(round, these));
                }
            }
        }
    }
    if wants(Workload::Tmpfs) {
        let shm = Path::new("/dev/shm");
        match machine::file_system(shm) {
            Ok(fs) if fs.is_tmpfs() => {
                for round in 0..rounds {
                    add(TMPFS_TITLE, round, vec![tmpfs_step(fs.clone(), fio, round)]);
                }
            }
            _ => run
                .notes
                .push("no tmpfs workload: /dev/shm is not a tmpfs here".into()),
        }
    }
    if wants(Workload::Echo) {
        let servers = echo_servers(args)?;
        let (sweep, notes) = echo_sweep(args)?;
        run.notes.extend(notes);
        for round in 0..rounds {
            add(ECHO_TITLE, round, echo_steps(&sweep, &servers, round)?);
        }
    }
    Ok(steps)
}

fn step(label: &str, f: impl FnOnce(&mut Run) -> anyhow::Result<()> + 'static) -> Step {
    (label.to_string(), Box::new(f))
}

/// One round of the sequential workload: the file written by each engine
/// twice, in mirrored order (std, io_uring, io_uring, std), so that neither
/// is always the one that creates the file or always meets the device after
/// the other's writes; then read by each, from the device.
fn sequential_steps() -> Vec<Step> {
    vec![
        step("sequential write, std and io_uring", |r| {
            let (size, path) = (r.file_size, r.path.clone());
            let std_1 = file::seq_write_std(&path, size, SEQ_CHUNK)?;
            let uring_1 = file::seq_write_uring(&path, size, SEQ_CHUNK, SEQ_DEPTH)?;
            let uring_2 = file::seq_write_uring(&path, size, SEQ_CHUNK, SEQ_DEPTH)?;
            let std_2 = file::seq_write_std(&path, size, SEQ_CHUNK)?;
            let s = r.settings(SEQ_CHUNK);
            r.push("seq-write", "std", 1, std_1.merge(std_2), s.clone());
            let uring = uring_1.merge(uring_2);
            r.push("seq-write", "io_uring", SEQ_DEPTH, uring, s);
            Ok(())
        }),
        step("sequential read, std", |r| {
            file::evict(&r.path)?;
            let m = file::seq_read_std(&r.path, SEQ_CHUNK)?;
            r.push("seq-read", "std", 1, m, r.settings(SEQ_CHUNK));
            Ok(())
        }),
        step("sequential read, io_uring", |r| {
            file::evict(&r.path)?;
            let m = file::seq_read_uring(&r.path, SEQ_CHUNK, SEQ_DEPTH)?;
            r.push("seq-read", "io_uring", SEQ_DEPTH, m, r.settings(SEQ_CHUNK));
            Ok(())
        }),
    ]
}

/// The io_uring set-ups of the random reads, by engine name: plain at every
/// depth, with registered buffers and file, each of the two alone (page
/// cache only), and with SQPOLL.
fn uring_variants(args: &Args, direct: bool) -> Vec<(&'static str, UringOpts)> {
    let plain = |depth| UringOpts {
        depth,
        ..UringOpts::default()
    };
    let mut variants: Vec<(&str, UringOpts)> = Vec::new();
    for &depth in &args.depths() {
        variants.push(("io_uring", plain(depth)));
    }
    if args.quick {
        // The summary of a quick run compares plain io_uring with std only.
        return variants;
    }
    for &depth in &args.depths() {
        if !direct || depth == 32 {
            let both = UringOpts {
                fixed_bufs: true,
                fixed_file: true,
                ..plain(depth)
            };
            variants.push(("io_uring+fixed", both));
        }
    }
    if !direct {
        for depth in [1, 32] {
            let file = UringOpts {
                fixed_file: true,
                ..plain(depth)
            };
            let bufs = UringOpts {
                fixed_bufs: true,
                ..plain(depth)
            };
            variants.push(("io_uring+fixed-file", file));
            variants.push(("io_uring+fixed-bufs", bufs));
        }
    }
    for depth in [1, 32] {
        if !direct || depth == 32 {
            let sqpoll = UringOpts {
                sqpoll: true,
                ..plain(depth)
            };
            variants.push(("io_uring+sqpoll", sqpoll));
        }
    }
    variants
}

/// Where the plain engine runs beside others that it is compared with: on
/// the device, beside its variants that submit each read at once, two at a
/// time and three at a time (see `file::Submit`), and fio; on the page
/// cache at depth 1, beside fio.
fn uring_peers(direct: bool, depth: usize) -> Vec<(&'static str, Submit)> {
    let mut peers = vec![("io_uring", Submit::PerRound)];
    if direct {
        peers.push(("io_uring+eager", Submit::Every(1)));
        // At depth 2 or less a round never queues more than two reads.
        if depth > 2 {
            peers.push(("io_uring+pairs", Submit::Every(2)));
            peers.push(("io_uring+triples", Submit::Every(3)));
        }
    }
    peers
}

/// Makes the test file's pages be where a workload wants them: in the page
/// cache for buffered reads (O_DIRECT bypasses it).
fn prepare(r: &Run, direct: bool) -> anyhow::Result<()> {
    if direct {
        Ok(())
    } else {
        file::warm(&r.path)
    }
}

/// One round of random reads of the test file: std, (for O_DIRECT) a thread
/// pool, io_uring across the depths and set-ups, and fio.
fn random_read_steps(
    args: &Args,
    workload: &'static str,
    direct: bool,
    fio: bool,
    round: u32,
) -> Vec<Step> {
    let what = if direct { "O_DIRECT" } else { "page cache" };
    // Each run reads other blocks than the run before.
    let seed = 1 + 1000 * round as u64;
    let mut steps = Vec::new();
    steps.push(step(&format!("random reads, {what}, std"), move |r| {
        prepare(r, direct)?;
        let f = file::open_for_reads(&r.path, direct)?;
        let m = file::rand_read_threads(&f, 1, r.duration(), seed)?;
        let s = Settings {
            o_direct: direct,
            threads: 1,
            nowait_reads: Some(file::supports_nowait_reads(&r.path)?),
            ..r.settings(file::BLOCK)
        };
        r.push(workload, "std", 1, m, s);
        Ok(())
    }));
    if direct {
        for threads in args.threads() {
            let label = format!("random reads, {what}, {threads} threads");
            steps.push(step(&label, move |r| {
                let f = file::open_for_reads(&r.path, direct)?;
                let m = file::rand_read_threads(&f, threads, r.duration(), seed + 1)?;
                let s = Settings {
                    o_direct: direct,
                    threads: threads as u32,
                    ..r.settings(file::BLOCK)
                };
                r.push(workload, "threads", threads, m, s);
                Ok(())
            }));
        }
    }
    for (engine, opts) in uring_variants(args, direct) {
        let label = format!("random reads, {what}, {engine}, depth {}", opts.depth);
        let with_fio = fio && engine == "io_uring" && (direct || opts.depth == 1);
        let peers = if engine == "io_uring" && (direct || with_fio) {
            uring_peers(direct, opts.depth)
        } else {
            vec![(engine, opts.submit)]
        };
        steps.push(step(&label, move |r| {
            prepare(r, direct)?;
            let f = file::open_for_reads(&r.path, direct)?;
            let s = Settings {
                o_direct: direct,
                fixed_bufs: opts.fixed_bufs,
                fixed_file: opts.fixed_file,
                sqpoll: opts.sqpoll,
                threads: 1,
                ..r.settings(file::BLOCK)
            };
            if peers.len() == 1 && !with_fio {
                let m = file::rand_read_uring(&f, opts, r.duration(), seed + 2)?;
                r.push(workload, engine, opts.depth, m, s);
                return Ok(());
            }
            side_by_side(r, &f, workload, opts, &peers, with_fio, seed, s)
        }));
    }
    if fio {
        let mut jobs = vec![(1, 1)];
        if direct {
            jobs.push((1, 8));
        }
        for (iodepth, numjobs) in jobs {
            let label = format!("random reads, {what}, fio psync x{numjobs}");
            steps.push(step(&label, move |r| {
                prepare(r, direct)?;
                let (path, size, d) = (r.path.clone(), r.file_size, r.duration());
                let job = fio_job(&path, size, "psync", iodepth, numjobs, direct, d);
                let res = fio::run(&job)?;
                let rec = fio_record(workload, &job, &res, r.settings(file::BLOCK));
                r.add(rec);
                Ok(())
            }));
        }
    }
    steps
}

/// The plain engine and its peers at one depth, each run twice for half the
/// time in mirrored order (ours, eager, pairs, triples, fio, fio, triples,
/// pairs, eager, ours): a device that speeds up or slows down over the
/// seconds favours none of them. Each record pools its two halves.
#[allow(clippy::too_many_arguments)]
fn side_by_side(
    r: &mut Run,
    f: &std::fs::File,
    workload: &str,
    opts: UringOpts,
    peers: &[(&str, Submit)],
    with_fio: bool,
    seed: u64,
    s: Settings,
) -> anyhow::Result<()> {
    let half = r.duration() / 2;
    let path = r.path.clone();
    let direct = s.o_direct;
    let job = fio_job(&path, r.file_size, "io_uring", opts.depth, 1, direct, half);
    let variant = |submit| UringOpts { submit, ..opts };
    let mut first = Vec::new();
    for (i, &(_, submit)) in peers.iter().enumerate() {
        let seed = seed + 10 * i as u64;
        first.push(file::rand_read_uring(f, variant(submit), half, seed)?);
    }
    let fio_runs = if with_fio {
        vec![fio::run(&job)?, fio::run(&job)?]
    } else {
        vec![]
    };
    let mut second = Vec::new();
    for (i, &(_, submit)) in peers.iter().enumerate().rev() {
        let seed = seed + 10 * i as u64 + 5;
        second.push(file::rand_read_uring(f, variant(submit), half, seed)?);
    }
    second.reverse();
    for ((&(engine, _), a), b) in peers.iter().zip(first).zip(second) {
        r.push(workload, engine, opts.depth, a.merge(b), s.clone());
    }
    if with_fio {
        let fio_result = fio::FioResult::combine(&fio_runs);
        let rec = fio_record(workload, &job, &fio_result, r.settings(file::BLOCK));
        r.add(rec);
    }
    Ok(())
}
fn fio_job<'a>(
    path: &'a Path,
    file_size: u64,
    ioengine: &'a str,
    iodepth: usize,
    numjobs: usize,
    direct: bool,
    runtime: Duration,
) -> FioJob<'a> {
    FioJob {
        file: path,
        file_size,
        ioengine,
        iodepth: iodepth as u32,
        numjobs: numjobs as u32,
        direct,
        runtime,
    }
}

/// A record of what fio measured, with fio's own percentiles (it reports a
/// histogram, not samples) and the command that ran it.
fn fio_record(
    workload: &str,
    job: &FioJob,
    res: &fio::FioResult,
    settings: Settings,
) -> Record {
    let cpu = job.numjobs as f64 * res.cpu_percent / 100.0 * res.runtime.as_secs_f64();
    let m = Measured {
        ops: res.ios,
        bytes: res.ios * file::BLOCK as u64,
        elapsed: res.runtime,
        cpu: Some(Duration::from_secs_f64(cpu)),
        ..Measured::default()
    };
    let engine = format!("fio-{}", job.ioengine);
    let depth = if job.numjobs > 1 {
        job.numjobs
    } else {
        job.iodepth
    };
    let s = Settings {
        o_direct: job.direct,
        threads: job.numjobs,
        command: Some(job.command()),
        ..settings
    };
    let mut rec = Record::new(workload, &engine, depth, m, s);
    rec.p50_us = Some(res.p50_us);
    rec.p99_us = Some(res.p99_us);
    rec.mb_per_s = res.mb_per_s;
    rec.ops_per_s = res.iops;
    rec
}

/// One round of the tmpfs workload: why io_uring can lose where there is no
/// device.
fn tmpfs_step(fs: FileSystem, fio: bool, round: u32) -> Step {
    let seed = 1 + 1000 * round as u64;
    step("random reads, tmpfs, std and io_uring", move |r| {
        let dir = cleanup::tempdir_in(&fs.mount_point, "uring-bench")?;
        let path = dir.path().join("data");
        let size = r.file_size.min(256 << 20);
        file::seq_write_std(&path, size, SEQ_CHUNK)?;
        let f = file::open_for_reads(&path, false)?;
        let s = Settings {
            nowait_reads: Some(file::supports_nowait_reads(&path)?),
            dir: fs.mount_point.clone(),
            file_system: Some(fs.clone()),
            file_size: size,
            threads: 1,
            ..r.settings(file::BLOCK)
        };
        let m = file::rand_read_threads(&f, 1, r.duration(), seed)?;
        r.push("rand-read-tmpfs", "std", 1, m, s.clone());
        for depth in [1, 32] {
            let opts = UringOpts {
                depth,
                ..UringOpts::default()
            };
            let m = file::rand_read_uring(&f, opts, r.duration(), seed + 1)?;
            r.push("rand-read-tmpfs", "io_uring", depth, m, s.clone());
        }
        if fio {
            for ioengine in ["psync", "io_uring"] {
                let job = fio_job(&path, size, ioengine, 1, 1, false, r.duration());
                let res = fio::run(&job)?;
                r.add(fio_record("rand-read-tmpfs", &job, &res, s.clone()));
            }
        }
        Ok(())
    })
}

/// The echo servers to measure: `--servers`, or every one.
fn echo_servers(args: &Args) -> anyhow::Result<Vec<&'static str>> {
    if args.servers.is_empty() {
        return Ok(echo::chapter6_servers().map(|s| s.name).collect());
    }
    let names = args
        .servers
        .iter()
        .map(|name| Ok(echo::echo_server(name)?.name));
    names.collect::<anyhow::Result<_>>().context("--servers")
}

/// The loads of the echo workload, each a (connections, message size), that
/// the file descriptor limit allows; and a note for each it does not.
type EchoSweep = (Vec<(usize, usize)>, Vec<String>);

fn echo_sweep(args: &Args) -> anyhow::Result<EchoSweep> {
    // Each connection is a descriptor in the client and one in the server.
    let nofile = uring_book::system::raise_nofile_limit()?;
    let (mut loads, mut notes) = (Vec::new(), Vec::new());
    for size in args.sizes() {
        for conns in args.conns() {
            if conns as u64 + 64 > nofile {
                let connections = findings::plural(conns, "connection", "connections");
                notes.push(format!(
                    "no echo point at {connections}: the file descriptor limit is \
                     {nofile} (raise it with `ulimit -n`)"
                ));
            } else {
                loads.push((conns, size));
            }
        }
    }
    Ok((loads, notes))
}

/// The load at which the chapter looks inside the servers with a profiler.
const PROFILED_LOAD: (usize, usize) = (100, 4096);

/// One round of the echo workload: chapter 5's client against each server,
/// started as a process of its own, at each load. The servers take turns at
/// each load, and each round starts with the next one, so that none is
/// always the first to meet the machine.
fn echo_steps(
    loads: &[(usize, usize)],
    servers: &[&'static str],
    round: u32,
) -> anyhow::Result<Vec<Step>> {
    let exe = std::env::current_exe().context("the path of this program")?;
    let perf = echo::perf_available();
    // Client and server on a CPU each, the first two this process may use.
    let cpus = echo::allowed_cpus();
    let (client_cpu, server_cpu) = match cpus[..] {
        [a, b, ..] => (Some(a), Some(b)),
        _ => (None, None),
    };
    let mut steps = Vec::new();
    for &(conns, size) in loads {
        for turn in 0..servers.len() {
            let engine = servers[(turn + round as usize) % servers.len()];
            let exe = exe.clone();
            // A profile once per server, in the first round, in a run of its own.
            let profile = perf && round == 0 && (conns, size) == PROFILED_LOAD;
            let connections = findings::plural(conns, "connection", "connections");
            let label = format!("echo, {engine}, {connections}, {size} B");
            steps.push(step(&label, move |r| {
                let client: echo::Client = &echo::chapter5_client;
                let start =
                    |perf| echo::ServerProcess::start(&exe, engine, server_cpu, perf);
                let load = |seconds: f64, server: &echo::ServerProcess| echo::Load {
                    addr: server.addr,
                    conns,
                    size,
                    duration: Duration::from_secs_f64(seconds),
                };
                // Throughput, latency and CPU come from a run with no perf at all:
                // perf stat's tracepoint on every system call would tax the server
                // that makes the most of them, and sampling taxes every server.
                let server = start(false)?;
                let l = load(r.seconds, &server);
                // The server's CPU time is taken around the client's call:
                // time the same call, for the share of a CPU it used.
                let wall = std::cell::Cell::new(Duration::ZERO);
                let timed = |l: &echo::Load| {
                    let started = std::time::Instant::now();
                    let outcome = client(l);
                    wall.set(started.elapsed());
                    outcome
                };
                let mut rec = echo::measure(
                    server, engine, l, &timed, client_cpu, r.seconds, false,
                )?;
                rec.server_cpu_share = rec.cpu_us_per_op.map(|us| {
                    us * rec.ops as f64 / 1e6 / wall.get().as_secs_f64().max(1e-9)
                });
                if perf {
                    // A second, shorter run under perf stat counts system calls
                    // and context switches.
                    let server = start(true)?;
                    let secs = r.seconds.min(0.5);
                    let l = load(secs, &server);
                    let counted = echo::measure(
                        server, engine, l, client, client_cpu, secs, false,
                    )?;
                    rec.syscalls_per_op = counted.syscalls_per_op;
                    rec.ctx_switches_per_op = counted.ctx_switches_per_op;
                }
                if profile {
                    // A third run under perf record alone, for the profile.
                    let server = start(false)?;
                    let l = load(r.seconds, &server);
                    let sampled = echo::measure(
                        server, engine, l, client, client_cpu, r.seconds, true,
                    )?;
                    rec.profile = sampled.profile;
                }
                r.add(rec);
                Ok(())
            }));
        }
    }
    Ok(steps)
}

/// Tables on stdout, and the files asked for.
fn output(records: &[Record], args: &Args) -> anyhow::Result<()> {
    if args.quick && args.from_json.is_none() {
        print!("{}", brief::summary(records, cfg!(debug_assertions)));
    } else {
        let mut defined = Vec::new();
        for table in report::tables(records) {
            println!("{}", table.to_text(WIDTH, &mut defined));
        }
        for (_, text) in findings::found(records) {
            println!("{}", report::wrap(&text, WIDTH));
        }
        let no_files =
            args.json.is_none() && args.plot.is_none() && args.summary.is_none();
        if no_files && args.from_json.is_none() {
            println!(
                "{}",
                report::wrap(
                    "Add --json FILE for the records as JSON, --plot DIR for SVG charts, \
                     --summary FILE for these tables in Markdown. Chapter 6 of the book \
                     explains them.",
                    WIDTH
                )
                .trim_end()
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, record::to_json(records) + "\n")
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(dir) = &args.plot {
        plot::write_all(records, dir)?;
    }
    if let Some(path) = &args.summary {
        std::fs::write(path, report::summary_markdown(records, &command_line()))
            .with_context(|| format!("--summary {}", path.display()))?;
    }
    Ok(())
}

/// `--workloads multishot`: chapter 8's measurements, with files of their
/// own (`--json`, `--summary`), or their tables again from `--from-json`.
fn chapter8(args: &Args) -> anyhow::Result<()> {
    use uring_book::bench::{multishot_bench, multishot_report};
    if args.workloads() != [Workload::Multishot] {
        bail!("--workloads multishot runs alone: it writes chapter 8's own files");
    }
    let run = match &args.from_json {
        Some(path) => multishot_bench::from_json(path)?,
        None => {
            let options = if args.quick {
                multishot_bench::Options::quick()
            } else {
                multishot_bench::Options::full(args.seconds.unwrap_or(2.0))
            };
            let exe = std::env::current_exe().context("the path of this program")?;
            let bar = ProgressBar::new_spinner();
            let run = multishot_bench::run(&exe, &options, &command_line(), &|what| {
                bar.set_message(what.to_string());
                bar.tick();
            })?;
            bar.finish_and_clear();
            run
        }
    };
    print!("{}", multishot_report::text(&run));
    for note in &run.notes {
        println!("note: {note}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, multishot_bench::to_json(&run))
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(path) = &args.summary {
        std::fs::write(path, multishot_report::summary_markdown(&run))
            .with_context(|| format!("--summary {}", path.display()))?;
    }
    Ok(())
}

/// The command that made this run, as a reader would type it.
fn command_line() -> String {
    let cargo = if cfg!(debug_assertions) {
        "cargo run --"
    } else {
        "cargo run --release --"
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("{cargo} {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert!(parse_size("1000").is_err());
        assert!(parse_size("lots").is_err());
    }
}
