//! The sentences chapter 6 quotes, each written by a function of its own
//! from the points of a run. A sentence that compares two engines says
//! "more" or "fewer" only when their runs do not overlap
//! (`stats::compare`); otherwise it calls the difference a tie.
//!
//! [`FINDINGS`] lists them with the anchor the chapter includes
//! (`{{#include bench/summary.md:direct-fio}}`): the function behind a
//! sentence is the one named there.

use uring_book::bench::point::{self, echo_at, find, Point};
use uring_book::bench::record::{Profile, Record};
use uring_book::bench::report::{rate, ratio};
use uring_book::bench::stats::{compare, Spread, Verdict};
use uring_book::system::human_bytes;

/// A sentence (or small table) of the summary.
pub struct Finding {
    /// The anchor the chapter includes it by.
    pub anchor: &'static str,
    /// What the chapter shows when the run has no records for it: the book
    /// builds from any run.
    pub missing: &'static str,
    pub make: fn(&[Point]) -> Option<String>,
    /// What a terminal prints before it, where the chapter has prose of its
    /// own around it.
    pub intro: Option<&'static str>,
}

/// Every finding, in the order the summary lists them.
pub const FINDINGS: &[Finding] = &[
    Finding {
        anchor: "noise",
        missing: "This run has no records.",
        make: noise,
        intro: None,
    },
    Finding {
        anchor: "seq-io-wq",
        missing: "This run has no sequential io_uring records.",
        make: seq_io_wq,
        intro: None,
    },
    Finding {
        anchor: "direct-depth1",
        missing: "This run has no O_DIRECT reads at depth 1.",
        make: direct_depth1,
        intro: None,
    },
    Finding {
        anchor: "direct-best",
        missing: "This run has no O_DIRECT reads with io_uring.",
        make: direct_best,
        intro: None,
    },
    Finding {
        anchor: "direct-knee",
        missing: "This run has no O_DIRECT reads with io_uring.",
        make: direct_knee,
        intro: None,
    },
    Finding {
        anchor: "direct-pool",
        missing: "This run has no O_DIRECT reads by a pool of threads.",
        make: direct_pool,
        intro: None,
    },
    Finding {
        anchor: "direct-fio",
        missing: "fio was not installed for this run, so there is no comparison.",
        make: direct_fio,
        intro: None,
    },
    Finding {
        anchor: "direct-fio-close",
        missing: "fio was not installed for this run, so there is no comparison.",
        make: direct_fio_close,
        intro: None,
    },
    Finding {
        anchor: "direct-plug",
        missing: "This run has no O_DIRECT reads submitted in small batches.",
        make: direct_plug,
        intro: None,
    },
    Finding {
        anchor: "fio-command",
        missing: "(fio was not installed for this run)",
        make: fio_command,
        intro: Some(FIO_COMMAND_INTRO),
    },
    Finding {
        anchor: "direct-sqpoll",
        missing: "This run has no SQPOLL point at depth 32.",
        make: direct_sqpoll,
        intro: None,
    },
    Finding {
        anchor: "cached-depth1",
        missing: "This run has no page-cache reads at depth 1.",
        make: cached_depth1,
        intro: None,
    },
    Finding {
        anchor: "cached-fixed",
        missing: "This run has no page-cache reads with registered files or buffers.",
        make: cached_fixed,
        intro: None,
    },
    Finding {
        anchor: "cached-best",
        missing: "This run has no page-cache reads with io_uring.",
        make: cached_best,
        intro: None,
    },
    Finding {
        anchor: "tmpfs",
        missing: "This run has no tmpfs reads.",
        make: tmpfs,
        intro: None,
    },
    Finding {
        anchor: "echo-share",
        missing: "This run has no server CPU share.",
        make: echo_share,
        intro: None,
    },
    Finding {
        anchor: "echo-syscalls",
        missing: "This run has no count of the echo servers' system calls.",
        make: echo_syscalls,
        intro: None,
    },
    Finding {
        anchor: "echo-why",
        missing: "This run has no echo points for both an io_uring server and tokio.",
        make: echo_why,
        intro: None,
    },
    Finding {
        anchor: "echo-match",
        missing: "This run has no echo points at 100 or 1000 connections for both \
                  servers.",
        make: echo_match,
        intro: None,
    },
    Finding {
        anchor: "echo-coop",
        missing: "This run has no echo points for both tokio-uring servers.",
        make: echo_coop,
        intro: None,
    },
    Finding {
        anchor: "echo-profile",
        missing: "This run has no profile of the echo servers (perf was not available).",
        make: echo_profile,
        intro: None,
    },
    Finding {
        anchor: "echo-profile-watched",
        missing: "This run has no profile of the echo servers, so nothing to say \
                  about the functions below.",
        make: echo_profile_watched,
        intro: None,
    },
];

/// Every finding the chapter includes: the sentence, or what stands in
/// for it when the run lacks its records.
pub fn all(records: &[Record]) -> Vec<(&'static str, String)> {
    let points = point::points(records);
    FINDINGS
        .iter()
        .map(|f| {
            (
                f.anchor,
                (f.make)(&points).unwrap_or_else(|| f.missing.into()),
            )
        })
        .collect()
}

/// The findings this run has records for, for the terminal, each with
/// its intro if it has one.
pub fn found(records: &[Record]) -> Vec<(&'static str, String)> {
    let points = point::points(records);
    FINDINGS
        .iter()
        .filter_map(|f| {
            let text = (f.make)(&points)?;
            Some((
                f.anchor,
                f.intro.map_or(text.clone(), |i| format!("{i}\n{text}")),
            ))
        })
        .collect()
}

const DIRECT: &str = "rand-read-direct";
const CACHED: &str = "rand-read-cached";

fn iops(p: &Point) -> String {
    rate(p.ops().median)
}

fn cpu(p: &Point) -> String {
    p.cpu().map_or("-".into(), |c| format!("{:.2}", c.median))
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` with its first letter in upper case, to start a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
}

/// `at 3 of 5 loads`, `at all 5 loads`, `at both loads`, `at the only
/// load`, `at none of the 4 loads`: how many of `total` things something
/// held at, in words that fit every count.
pub fn at_of(n: usize, total: usize, one: &str, many: &str) -> String {
    match (n, total) {
        (1, 1) => format!("at the only {one}"),
        (0, 1) => format!("not at the only {one}"),
        (2, 2) => format!("at both {many}"),
        (0, _) => format!("at none of the {total} {many}"),
        _ if n == total => format!("at all {total} {many}"),
        _ => format!("at {n} of {total} {many}"),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `depth 4`, `depths 4, 16`.
fn depths(list: &[u32]) -> String {
    let numbers: Vec<String> = list.iter().map(u32::to_string).collect();
    let noun = if list.len() == 1 { "depth" } else { "depths" };
    format!("{noun} {}", numbers.join(", "))
}

/// How `a` compares with `b` in a word, with the words for a higher and a
/// lower figure; nothing after a single run, which cannot tell.
fn word(v: Verdict, higher: &'static str, lower: &'static str) -> Option<&'static str> {
    match v {
        Verdict::Higher => Some(higher),
        Verdict::Lower => Some(lower),
        Verdict::Tie => Some("a tie"),
        Verdict::OneRun => None,
    }
}

/// What a comparison says when each point ran once.
const NO_VERDICT: &str = "No verdict here: each point ran once, and telling a \
                          difference from noise takes several runs (`--repeat 3`).";

/// Whether every point ran once: then no comparison can be made.
fn single_runs(points: &[Point]) -> bool {
    points.iter().all(|p| p.runs.len() < 2)
}

/// A sentence made of verdicts, or [`NO_VERDICT`] when every point ran once.
fn unless_single(points: &[Point], text: Option<String>) -> Option<String> {
    text.map(|t| {
        if single_runs(points) {
            NO_VERDICT.into()
        } else {
            t
        }
    })
}

/// Counts of verdicts: `less at 5 of 8 loads, a tie at 2, more at 1`,
/// `a tie at all 8 loads`.
fn counted(verdicts: &[Verdict], higher: &str, lower: &str) -> String {
    let n = |v| verdicts.iter().filter(|&&x| x == v).count();
    let mut parts = Vec::new();
    for (v, what) in [
        (Verdict::Higher, higher),
        (Verdict::Lower, lower),
        (Verdict::Tie, "a tie"),
        (Verdict::OneRun, "undecided (one run)"),
    ] {
        if n(v) > 0 {
            parts.push((what, n(v)));
        }
    }
    let total = verdicts.len();
    match parts.split_first() {
        Some(((what, k), rest)) => {
            let mut text = format!("{what} {}", at_of(*k, total, "load", "loads"));
            for (what, k) in rest {
                text += &format!(", {what} at {k}");
            }
            text
        }
        None => String::new(),
    }
}

fn cpu_verdict(a: &Point, b: &Point) -> Option<Verdict> {
    Some(compare(&a.cpu()?, &b.cpu()?))
}

/// How many times each point ran, and how far the runs spread.
pub fn noise(points: &[Point]) -> Option<String> {
    let runs = points.iter().map(|p| p.runs.len()).max()?;
    if runs < 2 {
        return Some(
            "Each point ran once, so the tables show no spread and no sentence below \
             calls a difference a win: run with `--repeat 3` for that."
                .into(),
        );
    }
    let mut spread: Vec<(f64, &Point)> = points
        .iter()
        .map(|p| (p.ops().deviation_percent(), p))
        .collect();
    spread.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = spread[spread.len() / 2].0;
    let (widest, p) = spread[spread.len() - 1];
    let at = if p.workload() == "echo" {
        load_name((p.depth(), p.size()))
    } else {
        format!("depth {}", p.depth())
    };
    Some(format!(
        "Each point ran {runs} times, taking turns with the other engines. Half the \
         points had every run within ±{median:.0} % of their median; the widest spread \
         was ±{widest:.0} % ({}, {}, {at}).",
        p.engine(),
        p.workload()
    ))
}

/// Which io-wq workers the sequential io_uring engine needed, on which file
/// system: ext4 hands every buffered write to one, XFS and btrfs may not.
pub fn seq_io_wq(points: &[Point]) -> Option<String> {
    let w = find(points, "seq-write", "io_uring", 8).or_else(|| {
        points
            .iter()
            .find(|p| p.workload() == "seq-write" && p.engine() == "io_uring")
    })?;
    let r = points
        .iter()
        .find(|p| p.workload() == "seq-read" && p.engine() == "io_uring")?;
    let fs = w.first().settings.file_system.as_ref()?;
    let workers = |p: &Point| p.io_wq().unwrap_or(0) as usize;
    Some(format!(
        "On {} here, io_uring's sequential writes started {} and its reads {}.",
        fs.kind,
        plural(workers(w), "io-wq worker", "io-wq workers"),
        workers(r)
    ))
}

/// std against io_uring with one read in flight, from the device.
pub fn direct_depth1(points: &[Point]) -> Option<String> {
    let s = find(points, DIRECT, "std", 1)?;
    let u = find(points, DIRECT, "io_uring", 1)?;
    let p50 = |p: &Point| p.p50().map_or("-".into(), |v| format!("{v:.0}"));
    let numbers = format!(
        "With one read in flight, std `pread` did {} IOPS (p50 {} µs) and io_uring {} \
         (p50 {} µs).",
        iops(s),
        p50(s),
        iops(u),
        p50(u)
    );
    // At depth 1 each read takes the whole interval between completions.
    let per_read = (1e6 / u.ops().median - 1e6 / s.ops().median).abs();
    let verdict = match compare(&u.ops(), &s.ops()) {
        Verdict::Tie => "The runs overlap: at depth 1 the interface made no difference \
                         this run can tell from noise."
            .to_string(),
        Verdict::Lower => format!("io_uring was slower, by {per_read:.1} µs per read."),
        Verdict::Higher => format!("io_uring was faster, by {per_read:.1} µs per read."),
        Verdict::OneRun => {
            "With one run per point, this run cannot tell that difference \
                            from noise."
                .to_string()
        }
    };
    Some(format!("{numbers} {verdict}"))
}

/// The point of an engine whose name starts with `engine` with the most
/// IOPS in `workload`.
pub fn best<'p, 'a>(
    points: &'p [Point<'a>],
    workload: &str,
    engine: &str,
) -> Option<&'p Point<'a>> {
    points
        .iter()
        .filter(|p| p.workload() == workload && p.engine().starts_with(engine))
        .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))
}

/// io_uring's best IOPS from the device, against std.
pub fn direct_best(points: &[Point]) -> Option<String> {
    let s = find(points, DIRECT, "std", 1)?;
    let b = points
        .iter()
        .filter(|p| p.workload() == DIRECT && p.engine() == "io_uring")
        .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))?;
    Some(format!(
        "io_uring peaked at {} IOPS at depth {}, {:.1} times std `pread`, from one \
         thread, at {} µs of CPU per read.",
        iops(b),
        b.depth(),
        b.ops().median / s.ops().median,
        cpu(b)
    ))
}

/// Where more depth stops paying: the first depth whose IOPS the best depth
/// does not beat, and what the latency did from there on.
pub fn direct_knee(points: &[Point]) -> Option<String> {
    let mut plain: Vec<&Point> = points
        .iter()
        .filter(|p| p.workload() == DIRECT && p.engine() == "io_uring")
        .collect();
    plain.sort_by_key(|p| p.depth());
    let best = plain
        .iter()
        .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))?;
    let deepest = plain.last()?;
    // With one run there is no spread: within 10 % of the best counts as level.
    let level = |p: &Point| match compare(&p.ops(), &best.ops()) {
        Verdict::OneRun => p.ops().median >= 0.9 * best.ops().median,
        v => v != Verdict::Lower,
    };
    let knee = plain.iter().find(|p| level(p))?;
    let p50 = |p: &Point| p.p50().map_or("-".into(), |v| format!("{v:.0}"));
    if knee.depth() == deepest.depth() {
        return Some(format!(
            "IOPS still grew at the deepest queue measured, depth {} ({} IOPS, p50 {} \
             µs): within the depths measured, more depth kept paying.",
            deepest.depth(),
            iops(deepest),
            p50(deepest)
        ));
    }
    Some(format!(
        "From depth {} on ({} IOPS, p50 {} µs), more depth bought no IOPS this run can \
         tell from noise, only latency: at depth {} the p50 was {} µs.",
        knee.depth(),
        iops(knee),
        p50(knee),
        deepest.depth(),
        p50(deepest)
    ))
}

/// The best pool of blocking threads against io_uring at the same depth.
pub fn direct_pool(points: &[Point]) -> Option<String> {
    let pool = best(points, DIRECT, "threads")?;
    let u = find(points, DIRECT, "io_uring", pool.depth())?;
    let more = word(compare(&u.ops(), &pool.ops()), "more IOPS", "fewer IOPS");
    let less = word(
        cpu_verdict(u, pool)?,
        "more CPU per read",
        "less CPU per read",
    );
    let verdict = match (more, less) {
        (Some(more), Some(less)) => format!(": {more}, and {less}"),
        _ => String::new(),
    };
    Some(format!(
        "The best thread pool, {} threads, did {} IOPS at {} µs of CPU per read; \
         io_uring at the same depth did {} IOPS at {} µs{verdict}.",
        pool.depth(),
        iops(pool),
        cpu(pool),
        iops(u),
        cpu(u)
    ))
}

/// Our io_uring loop and its variants, as the tables name them and as a
/// sentence does.
const SUBMIT_VARIANTS: [(&str, &str); 4] = [
    ("io_uring", "a round at a time"),
    ("io_uring+eager", "each read at once"),
    ("io_uring+pairs", "two at a time"),
    ("io_uring+triples", "three at a time"),
];

/// The fio points of the O_DIRECT reads, by depth.
fn fio_points<'p, 'a>(points: &'p [Point<'a>]) -> Vec<&'p Point<'a>> {
    let mut fio: Vec<&Point> = points
        .iter()
        .filter(|p| p.workload() == DIRECT && p.engine() == "fio-io_uring")
        .collect();
    fio.sort_by_key(|p| p.depth());
    fio
}

/// `93 %`: the IOPS of `p` in percent of `of`'s, `~` marking a tie.
fn percent_of(p: &Point, of: &Point) -> String {
    let tie = if compare(&p.ops(), &of.ops()) == Verdict::Tie {
        "~"
    } else {
        ""
    };
    format!("{tie}{:.0} %", 100.0 * p.ops().median / of.ops().median)
}

/// A small Markdown table, with no title or context above it: the first
/// column on the left, the others on the right.
pub fn small_table(header: Vec<&str>, rows: Vec<Vec<String>>) -> String {
    let mut out = format!(
        "| {} |\n|:---|{}\n",
        header.join(" | "),
        "---:|".repeat(header.len() - 1)
    );
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// Whether `p` stayed within 10 % of fio's IOPS, or tied with it.
fn close_to_fio(p: &Point, fio: &Point) -> bool {
    p.ops().median >= 0.9 * fio.ops().median
        || compare(&p.ops(), &fio.ops()) == Verdict::Tie
}

/// A small table: our loop and its variants in percent of fio's IOPS at
/// each depth, with fio's own figures.
pub fn direct_fio(points: &[Point]) -> Option<String> {
    let fio = fio_points(points);
    if fio.is_empty() {
        return None;
    }
    let rows = fio
        .iter()
        .map(|f| {
            let mut row = vec![f.depth().to_string(), iops(f), format!("{}*", cpu(f))];
            for (engine, _) in SUBMIT_VARIANTS {
                row.push(
                    find(points, DIRECT, engine, f.depth())
                        .map_or("-".into(), |p| percent_of(p, f)),
                );
            }
            row
        })
        .collect();
    let header = vec![
        "depth",
        "fio IOPS",
        "fio CPU us/op",
        "io_uring",
        "+eager",
        "+pairs",
        "+triples",
    ];
    Some(format!(
        "IOPS in percent of fio's io_uring engine's (~: a tie; *: fio's job thread \
         only):\n\n{}",
        small_table(header, rows)
    ))
}

/// Does our loop keep up with fio? Which ways of submitting fell more than
/// 10 % behind fio's IOPS, and at which depths (a tie counts as keeping up).
pub fn direct_fio_close(points: &[Point]) -> Option<String> {
    let fio = fio_points(points);
    if fio.is_empty() {
        return None;
    }
    let (mut short, mut kept_up) = (Vec::new(), Vec::new());
    for (engine, what) in SUBMIT_VARIANTS {
        let behind: Vec<u32> = fio
            .iter()
            .filter_map(|f| {
                let p = find(points, DIRECT, engine, f.depth())?;
                Some((p, f))
            })
            .filter(|(p, f)| !close_to_fio(p, f))
            .map(|(_, f)| f.depth())
            .collect();
        let compared = fio
            .iter()
            .any(|f| find(points, DIRECT, engine, f.depth()).is_some());
        if !compared {
            continue;
        }
        if behind.is_empty() {
            kept_up.push(what);
        } else {
            short.push(format!("{what} at {}", depths(&behind)));
        }
    }
    let mut text = match kept_up.as_slice() {
        [] => String::new(),
        all if short.is_empty() => format!(
            "Yes: {} stayed within 10 % of fio, or tied with it, at every depth.",
            and_list(all)
        ),
        some => format!(
            "{} stayed within 10 % of fio, or tied with it, at every depth.",
            capitalized(&and_list(some))
        ),
    };
    if !short.is_empty() {
        text += &format!(" More than 10 % behind: {}.", short.join("; "));
    }
    Some(text.trim_start().to_string())
}

/// The plug test: each read at once against a round at a time, and two at a
/// time against three at a time, which differ in the plug alone.
pub fn direct_plug(points: &[Point]) -> Option<String> {
    unless_single(points, direct_plug_of(points))
}

fn direct_plug_of(points: &[Point]) -> Option<String> {
    let verdicts = |a: &str, b: &str| -> Vec<(u32, Verdict)> {
        let mut v: Vec<(u32, Verdict)> = points
            .iter()
            .filter(|p| p.workload() == DIRECT && p.engine() == a)
            .filter_map(|p| {
                let q = find(points, DIRECT, b, p.depth())?;
                Some((p.depth(), compare(&p.ops(), &q.ops())))
            })
            .collect();
        v.sort_by_key(|i| i.0);
        v
    };
    let eager = verdicts("io_uring+eager", "io_uring");
    let small = verdicts("io_uring+pairs", "io_uring+triples");
    if eager.is_empty() {
        return None;
    }
    let word = |v: Option<Verdict>| match v {
        Some(Verdict::Higher) => "faster",
        Some(Verdict::Lower) => "slower",
        Some(Verdict::Tie) => "tie",
        Some(Verdict::OneRun) => "one run",
        None => "-",
    };
    let at =
        |list: &[(u32, Verdict)], d: u32| list.iter().find(|i| i.0 == d).map(|i| i.1);
    let rows = eager
        .iter()
        .map(|&(d, _)| {
            vec![
                d.to_string(),
                word(at(&eager, d)).into(),
                word(at(&small, d)).into(),
            ]
        })
        .collect();
    let header = vec![
        "depth",
        "each at once vs a round at a time",
        "two at a time vs three (plugged)",
    ];
    let mut text = small_table(header, rows);
    let gap: Vec<u32> = eager
        .iter()
        .filter(|e| e.1 == Verdict::Higher)
        .map(|e| e.0)
        .collect();
    let plug = |d: &u32| small.iter().any(|s| s.0 == *d && s.1 == Verdict::Higher);
    let (explained, not): (Vec<u32>, Vec<u32>) = gap.iter().partition(|d| plug(d));
    text += "\n";
    if gap.is_empty() {
        text += "Submitting each read at once was never faster: there is no gap for the \
                 plug to explain.";
    }
    if !explained.is_empty() {
        text += &format!(" The plug is the likely cost at {}.", depths(&explained));
    }
    if !not.is_empty() {
        text += &format!(" At {} the plug does not explain the gap.", depths(&not));
    }
    Some(text.replace("\n ", "\n"))
}

/// The fio command of the depth the chapter discusses (32, or the nearest
/// below), as a reader would run it: on a file of their own (the run's was
/// deleted with it) for the time of one run of a point (the benchmark runs
/// it in two halves, around its own runs). One option a line, for a
/// ```text block.
pub fn fio_command(points: &[Point]) -> Option<String> {
    let f = fio_points(points)
        .into_iter()
        .max_by_key(|f| (f.depth() <= 32, f.depth()))?;
    let settings = &f.first().settings;
    let cmd = settings.command.as_deref()?;
    let millis = (settings.seconds * 1000.0).round() as u64;
    let runtime = if millis.is_multiple_of(1000) {
        format!("--runtime={}s", millis / 1000)
    } else {
        format!("--runtime={millis}ms")
    };
    let words: Vec<String> = cmd
        .split(' ')
        .map(|w| match w.split_once('=') {
            Some(("--filename", _)) => "--filename=FILE".to_string(),
            Some(("--runtime", _)) => runtime.clone(),
            _ => w.to_string(),
        })
        .collect();
    Some(words.join(" ").replace(" --", " \\\n    --"))
}

/// What the fio command is for, on a terminal.
const FIO_COMMAND_INTRO: &str = "fio ran the same reads beside io_uring, to check our \
    loop against a tool tuned for years. Here is its job, to run yourself on a file \
    FILE of yours for the time of one run:";

/// SQPOLL against the plain ring at depth 32, from the device.
pub fn direct_sqpoll(points: &[Point]) -> Option<String> {
    let u = find(points, DIRECT, "io_uring", 32)?;
    let q = find(points, DIRECT, "io_uring+sqpoll", 32)?;
    let calls = |p: &Point| {
        p.syscalls()
            .map_or("-".into(), |s| format!("{:.3}", s.median))
    };
    let more = word(compare(&q.ops(), &u.ops()), "more IOPS", "fewer IOPS")
        .map_or(String::new(), |w| format!("{w}, "));
    let times = match (q.cpu(), u.cpu()) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.1}", a.median / b.median),
        _ => "-".into(),
    };
    Some(format!(
        "At depth 32, SQPOLL did {} IOPS at {} µs of CPU per read and {} system \
         calls per read; plain io_uring did {} IOPS at {} µs and {}. SQPOLL: {more}at \
         {times} times the CPU per read.",
        iops(q),
        cpu(q),
        calls(q),
        iops(u),
        cpu(u),
        calls(u)
    ))
}

/// std against io_uring at depth 1 from the page cache: what io_uring's
/// bookkeeping costs, in microseconds and in percent.
pub fn cached_depth1(points: &[Point]) -> Option<String> {
    let s = find(points, CACHED, "std", 1)?;
    let u = find(points, CACHED, "io_uring", 1)?;
    let numbers = format!(
        "From the page cache at depth 1, std `pread` did {} IOPS at {} µs of CPU per \
         read, io_uring {} at {} µs.",
        iops(s),
        cpu(s),
        iops(u),
        cpu(u)
    );
    let (Some(cs), Some(cu)) = (s.cpu(), u.cpu()) else {
        return Some(numbers);
    };
    let extra = cu.median - cs.median;
    let cost = match compare(&cu, &cs) {
        Verdict::Higher => format!(
            "io_uring's bookkeeping cost {extra:.2} µs of CPU per read, {:.0} % more \
             than `pread`'s.",
            100.0 * extra / cs.median
        ),
        Verdict::Lower => "io_uring used less CPU per read.".into(),
        Verdict::Tie => "Their CPU per read was a tie.".into(),
        Verdict::OneRun => {
            "With one run per point this run cannot tell them apart.".into()
        }
    };
    Some(format!("{numbers} {cost}"))
}

/// What registering the file, the buffers, or both did to page-cache reads:
/// a small table, a row per depth, each cell against plain io_uring.
pub fn cached_fixed(points: &[Point]) -> Option<String> {
    let mut rows = Vec::new();
    for depth in [1, 32] {
        let Some(plain) = find(points, CACHED, "io_uring", depth) else {
            continue;
        };
        let mut row = vec![depth.to_string(), iops(plain)];
        for engine in [
            "io_uring+fixed-file",
            "io_uring+fixed-bufs",
            "io_uring+fixed",
        ] {
            row.push(find(points, CACHED, engine, depth).map_or(
                "-".into(),
                |p| match word(compare(&p.ops(), &plain.ops()), "more", "fewer") {
                    Some(v) => format!("{}, {v}", iops(p)),
                    None => iops(p),
                },
            ));
        }
        rows.push(row);
    }
    if rows.iter().all(|r| r[2..].iter().all(|c| c == "-")) {
        return None;
    }
    let header = vec![
        "depth",
        "plain IOPS",
        "registered file",
        "registered buffers",
        "both",
    ];
    Some(format!(
        "IOPS with registration, against plain io_uring at the same depth:\n\n{}",
        small_table(header, rows)
    ))
}

/// The best io_uring set-up on the page cache, against std.
pub fn cached_best(points: &[Point]) -> Option<String> {
    let s = find(points, CACHED, "std", 1)?;
    let b = best(points, CACHED, "io_uring")?;
    let calls = b
        .syscalls()
        .map_or("-".into(), |c| format!("{:.3}", c.median));
    let verdict = match compare(&b.ops(), &s.ops()) {
        Verdict::Higher => ", more than std in every run",
        Verdict::Lower => ", less than std in every run",
        Verdict::Tie => ", a tie with std",
        Verdict::OneRun => "",
    };
    Some(format!(
        "The best io_uring figure was {} IOPS ({}, depth {}, {calls} system calls per \
         read), {:.2} times std's{verdict}.",
        iops(b),
        b.engine(),
        b.depth(),
        b.ops().median / s.ops().median
    ))
}

/// tmpfs: std against io_uring at depth 1, the io-wq workers, and what the
/// RWF_NOWAIT probe said.
pub fn tmpfs(points: &[Point]) -> Option<String> {
    let t = "rand-read-tmpfs";
    let s = find(points, t, "std", 1)?;
    let u = find(points, t, "io_uring", 1)?;
    let nowait = |p: &Point| match p.first().settings.nowait_reads {
        Some(true) => "works",
        Some(false) => "fails with EOPNOTSUPP",
        None => "was not tried",
    };
    let disk = find(points, CACHED, "std", 1)
        .map(|d| format!(" and {} on the disk file", nowait(d)))
        .unwrap_or_default();
    let workers = u.io_wq().unwrap_or(0) as usize;
    Some(format!(
        "On tmpfs at depth 1, std `pread` did {} IOPS and io_uring {}, which started {} \
         ({} µs of CPU per read against {}). preadv2 with RWF_NOWAIT {} on the tmpfs \
         file{disk}.",
        iops(s),
        iops(u),
        plural(workers, "io-wq worker", "io-wq workers"),
        cpu(u),
        cpu(s),
        nowait(s)
    ))
}

/// "100 conn. 64 B": a load of the echo workload.
pub fn load_name((conns, size): (u32, u64)) -> String {
    let size = human_bytes(Some(size)).replace(" bytes", " B");
    format!("{conns} conn. {size}")
}

/// The echo servers of the run, in the order the table shows them.
fn echo_servers<'a>(points: &[Point<'a>]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for p in points.iter().filter(|p| p.workload() == "echo") {
        if !names.contains(&p.engine()) {
            names.push(p.engine());
        }
    }
    names
}

/// The io_uring servers: every echo server but the two it is measured against.
fn uring_servers<'a>(points: &[Point<'a>]) -> Vec<&'a str> {
    let mut names = echo_servers(points);
    names.retain(|n| !["tokio", "std-threads"].contains(n));
    names
}

/// The loads of the echo workload, by message size then connections.
pub fn echo_loads(points: &[Point]) -> Vec<(u32, u64)> {
    let mut loads: Vec<(u32, u64)> = points
        .iter()
        .filter(|p| p.workload() == "echo")
        .map(|p| (p.depth(), p.size()))
        .collect();
    loads.sort_unstable_by_key(|&(c, s)| (s, c));
    loads.dedup();
    loads
}

/// How busy the servers' CPUs were from 10 connections on.
pub fn echo_share(points: &[Point]) -> Option<String> {
    let shares: Vec<f64> = points
        .iter()
        .filter(|p| p.workload() == "echo" && p.depth() >= 10)
        .filter_map(|p| p.share().map(|s| s.median))
        .collect();
    let min = shares.iter().copied().reduce(f64::min)?;
    let max = shares.iter().copied().reduce(f64::max)?;
    let verdict = if min >= 0.85 {
        "Every server was close to the limit of its own core. At these loads, messages \
         per second say how fast server and client were together. The server's CPU per \
         message is the figure that is the server's alone"
    } else {
        "Some servers had CPU time to spare. At those loads the client, or the exchange \
         between the two, set their pace"
    };
    Some(format!(
        "From 10 connections on, the servers kept their CPU busy between {:.0} % and \
         {:.0} % of the time (CPU share). {verdict}.",
        100.0 * min,
        100.0 * max
    ))
}

/// Verdicts of a figure of server `a` against server `b` at every load
/// where both have it.
fn echo_verdicts(
    points: &[Point],
    a: &str,
    b: &str,
    figure: impl Fn(&Point) -> Option<Spread>,
) -> Vec<((u32, u64), Verdict)> {
    echo_loads(points)
        .into_iter()
        .filter_map(|load| {
            let x = figure(echo_at(points, a, load)?)?;
            let y = figure(echo_at(points, b, load)?)?;
            Some((load, compare(&x, &y)))
        })
        .collect()
}

/// System calls per message of each io_uring server in proportion to
/// tokio's, a row per load: a small table.
pub fn echo_syscalls(points: &[Point]) -> Option<String> {
    unless_single(points, echo_syscalls_of(points))
}

fn echo_syscalls_of(points: &[Point]) -> Option<String> {
    let servers = uring_servers(points);
    let mut rows = Vec::new();
    for load in echo_loads(points) {
        let Some(tokio) = echo_at(points, "tokio", load).and_then(|t| t.syscalls())
        else {
            continue;
        };
        let mut row = vec![load_name(load), format!("{:.2}", tokio.median)];
        for &server in &servers {
            let calls = echo_at(points, server, load).and_then(|p| p.syscalls());
            row.push(calls.map_or("-".into(), |c| ratio(&c, Some(&tokio))));
        }
        rows.push(row);
    }
    if rows.is_empty() || servers.is_empty() {
        return None;
    }
    let mut header = vec!["load", "tokio calls/msg"];
    header.extend(servers.iter().copied());
    Some(format!(
        "System calls per message, in proportion to tokio's (~: a tie):\n\n{}",
        small_table(header, rows)
    ))
}

/// Over the whole sweep: each io_uring server's messages per second and CPU
/// per message against tokio's, a row per load and a column per server.
pub fn echo_why(points: &[Point]) -> Option<String> {
    unless_single(points, echo_why_of(points))
}

/// `tie`, `more msgs`, `fewer msgs, more CPU`: how a server did against
/// tokio at one load.
fn against_tokio(u: &Point, t: &Point) -> String {
    let msgs = word(compare(&u.ops(), &t.ops()), "more msgs", "fewer msgs");
    let cpu = cpu_verdict(u, t).and_then(|v| word(v, "more CPU", "less CPU"));
    match (msgs, cpu) {
        (Some(m), Some(c)) => {
            let parts: Vec<&str> = [m, c].into_iter().filter(|w| *w != "a tie").collect();
            if parts.is_empty() {
                "tie".into()
            } else {
                parts.join(", ")
            }
        }
        _ => "one run".into(),
    }
}

fn echo_why_of(points: &[Point]) -> Option<String> {
    let servers = uring_servers(points);
    let mut rows = Vec::new();
    for load in echo_loads(points) {
        let Some(t) = echo_at(points, "tokio", load) else {
            continue;
        };
        let mut row = vec![load_name(load)];
        for &server in &servers {
            row.push(
                echo_at(points, server, load).map_or("-".into(), |u| against_tokio(u, t)),
            );
        }
        rows.push(row);
    }
    if rows.is_empty() || servers.is_empty() {
        return None;
    }
    let mut header = vec!["load"];
    header.extend(servers.iter().copied());
    Some(format!(
        "Each io_uring server against tokio: messages per second and server CPU per \
         message, where the runs do not overlap (tie: they overlap for both):\n\n{}",
        small_table(header, rows)
    ))
}

/// Does an io_uring server match tokio at 100 and 1000 connections: no
/// more server CPU per message and at least as many messages per second? A
/// tie counts as a match.
pub fn echo_match(points: &[Point]) -> Option<String> {
    unless_single(points, echo_match_of(points))
}

fn echo_match_of(points: &[Point]) -> Option<String> {
    let loads: Vec<(u32, u64)> = echo_loads(points)
        .into_iter()
        .filter(|l| matches!(l.0, 100 | 1000))
        .collect();
    let mut sentences = Vec::new();
    for server in uring_servers(points) {
        let (mut compared, mut short) = (0, Vec::new());
        for &load in &loads {
            let (Some(u), Some(t)) = (
                echo_at(points, server, load),
                echo_at(points, "tokio", load),
            ) else {
                continue;
            };
            compared += 1;
            let fewer = compare(&u.ops(), &t.ops()) == Verdict::Lower;
            let more_cpu = cpu_verdict(u, t) == Some(Verdict::Higher);
            if fewer || more_cpu {
                short.push(load_name(load));
            }
        }
        if compared == 0 {
            continue;
        }
        sentences.push(if short.is_empty() {
            format!(
                "{server} matched tokio {}.",
                at_of(compared, compared, "load", "loads")
            )
        } else {
            format!(
                "{server} fell short {}: {}.",
                at_of(short.len(), compared, "load", "loads"),
                short.join(", ")
            )
        });
    }
    (!sentences.is_empty()).then(|| sentences.join(" "))
}

/// Chapter 5's server (COOP_TASKRUN) against the same code on a plain ring.
pub fn echo_coop(points: &[Point]) -> Option<String> {
    unless_single(points, echo_coop_of(points))
}

fn echo_coop_of(points: &[Point]) -> Option<String> {
    let (coop, plain) = ("tokio-uring+coop", "tokio-uring");
    let msgs = echo_verdicts(points, coop, plain, |p| Some(p.ops()));
    let cpu = echo_verdicts(points, coop, plain, |p| p.cpu());
    if msgs.is_empty() {
        return None;
    }
    let only = |v: &[((u32, u64), Verdict)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
    let mut text = format!(
        "COOP_TASKRUN against the plain ring, messages per second: {}",
        counted(&only(&msgs), "more", "fewer")
    );
    if !cpu.is_empty() {
        text += &format!(
            "; server CPU per message: {}",
            counted(&only(&cpu), "more", "less")
        );
    }
    Some(text + ".")
}

/// Fewer samples than this make a profile noise: a function at 2 % would
/// rest on a handful of them.
pub const MIN_SAMPLES: u64 = 500;

/// Each profiled server's profile, in the order of the table.
fn profiles<'a>(points: &[Point<'a>]) -> Vec<(&'a str, &'a Profile, &'a Record)> {
    echo_servers(points)
        .into_iter()
        .filter_map(|server| {
            let p = points.iter().find(|p| {
                p.workload() == "echo" && p.engine() == server && p.profile().is_some()
            })?;
            Some((server, p.profile()?, p.first()))
        })
        .collect()
}

/// Functions of the echo servers' profile that the chapter discusses: the
/// return to user space from an interrupt, where task_work signalled with an
/// IPI runs, and the slow path of a contended spin lock in a virtual machine.
pub const PROFILE_WATCHED: &[&str] = &[
    "irqentry_exit_to_user_mode",
    "__pv_queued_spin_lock_slowpath",
];

fn share_of(profile: &Profile, name: &str) -> Option<f64> {
    profile
        .hottest
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| *p)
}

/// The profile table: each server's five hottest functions, and the rows
/// the chapter discusses.
pub fn echo_profile(points: &[Point]) -> Option<String> {
    let profiled = profiles(points);
    let (_, _, first) = profiled.first()?;
    let fewest = profiled.iter().map(|(_, p, _)| p.samples).min()?;
    let kept = profiled
        .iter()
        .map(|(_, p, _)| p.hottest.len())
        .min()
        .unwrap_or(0);
    if fewest < MIN_SAMPLES {
        return Some(format!(
            "This run's profile has too few samples to mean anything (as few as \
             {fewest}, fewer than {MIN_SAMPLES}): runs of a second or more take enough."
        ));
    }
    if kept == 0 {
        return Some(
            "This run's profile names no function for some server (perf report found \
             no samples of its threads), so it is not shown."
                .into(),
        );
    }
    let mut names: Vec<&str> = Vec::new();
    for (_, p, _) in &profiled {
        for (name, _) in p.hottest.iter().take(5) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    for &name in PROFILE_WATCHED {
        let seen = profiled.iter().any(|(_, p, _)| share_of(p, name).is_some());
        if seen && !names.contains(&name) {
            names.push(name);
        }
    }
    let event = &profiled[0].1.event;
    let mut table =
        format!(
        "Share of the server's CPU samples (`perf record`, event `{event}`, at least \
         {fewest} samples a server) at {} connections, {} messages:\n\n| function | {} \
         |\n|:---|{}\n",
        first.queue_depth,
        human_bytes(Some(first.settings.block_size)),
        profiled.iter().map(|(s, _, _)| *s).collect::<Vec<_>>().join(" | "),
        "---:|".repeat(profiled.len())
    );
    for name in names {
        let cells: Vec<String> = profiled
            .iter()
            .map(|(_, p, _)| {
                share_of(p, name).map_or("-".into(), |s| format!("{s:.1} %"))
            })
            .collect();
        table += &format!("| `{name}` | {} |\n", cells.join(" | "));
    }
    table += &format!(
        "\nEach server's five hottest functions, and the rows the chapter discusses; \
         `-`: not among the {kept} hottest functions the run kept for that server.\n"
    );
    Some(table)
}

/// One sentence per watched function: its share of samples in each profiled
/// server, or that it was not among the functions the run kept.
pub fn echo_profile_watched(points: &[Point]) -> Option<String> {
    let profiled = profiles(points);
    let too_few = |p: &Profile| p.samples < MIN_SAMPLES || p.hottest.is_empty();
    if profiled.is_empty() || profiled.iter().any(|(_, p, _)| too_few(p)) {
        return None;
    }
    let sentences: Vec<String> = PROFILE_WATCHED
        .iter()
        .map(|&name| {
            let (with, without): (Vec<_>, Vec<_>) = profiled
                .iter()
                .partition(|(_, p, _)| share_of(p, name).is_some());
            let shares: Vec<String> = with
                .iter()
                .map(|(s, p, _)| {
                    format!("{:.1} % of {s}'s samples", share_of(p, name).unwrap_or(0.0))
                })
                .collect();
            let absent: Vec<&str> = without.iter().map(|(s, _, _)| *s).collect();
            let mut parts = Vec::new();
            if !shares.is_empty() {
                parts.push(format!("took {}", shares.join(", ")));
            }
            if !absent.is_empty() && with.len() == 1 {
                parts.push("was not among the hottest of any other server".into());
            } else if !absent.is_empty() {
                parts.push(format!(
                    "was not among the hottest functions of {}",
                    absent.join(", ")
                ));
            }
            format!("`{name}` {}", parts.join(" and "))
        })
        .collect();
    Some(format!("In this run's profile, {}.", sentences.join(". ")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;
    use uring_book::bench::machine::FileSystem;
    use uring_book::bench::record::{Measured, Settings};

    /// The runs of one point: one record per value of `ops`, with the CPU
    /// per operation of the same index if given.
    pub(crate) fn point(
        workload: &str,
        engine: &str,
        depth: u32,
        ops: &[f64],
        cpu: &[f64],
    ) -> Vec<Record> {
        ops.iter()
            .enumerate()
            .map(|(i, &ops)| {
                let m = Measured {
                    ops: 1,
                    elapsed: Duration::from_secs(1),
                    ..Measured::default()
                };
                let settings = Settings {
                    block_size: if workload == "echo" { 64 } else { 4096 },
                    ..Settings::default()
                };
                let mut r = Record::new(workload, engine, depth, m, settings);
                r.ops_per_s = ops;
                r.cpu_us_per_op = cpu.get(i).copied();
                r.p50_us = Some(1e6 * depth as f64 / ops);
                r.repeat = i as u32;
                r
            })
            .collect()
    }

    fn text(make: fn(&[Point]) -> Option<String>, records: &[Record]) -> String {
        make(&point::points(records)).expect("a finding")
    }

    #[test]
    fn counts_read_right_for_one_two_and_many() {
        assert_eq!(at_of(1, 1, "load", "loads"), "at the only load");
        assert_eq!(at_of(0, 1, "load", "loads"), "not at the only load");
        assert_eq!(at_of(2, 2, "load", "loads"), "at both loads");
        assert_eq!(at_of(5, 5, "depth", "depths"), "at all 5 depths");
        assert_eq!(at_of(0, 4, "load", "loads"), "at none of the 4 loads");
        assert_eq!(at_of(3, 8, "load", "loads"), "at 3 of 8 loads");
        assert_eq!(
            counted(&[Verdict::Tie], "more", "fewer"),
            "a tie at the only load"
        );
        assert_eq!(plural(1, "connection", "connections"), "1 connection");
    }

    #[test]
    fn the_fio_command_is_the_readers_to_run_for_one_runs_time() {
        let mut records = fio_sweep();
        for (seconds, runtime) in [(1.0, "--runtime=1s"), (0.25, "--runtime=250ms")] {
            for r in records.iter_mut().filter(|r| r.engine == "fio-io_uring") {
                r.settings.seconds = seconds;
                // What the benchmark ran: two halves, on its temporary file.
                r.settings.command = Some(format!(
                    "fio --name=randread --filename=/var/tmp/uring-benchX/data \
                     --iodepth={} --runtime={}ms",
                    r.queue_depth,
                    (seconds * 500.0) as u64
                ));
            }
            let cmd = text(fio_command, &records);
            assert!(cmd.contains("    --filename=FILE \\\n"), "{cmd}");
            assert!(cmd.ends_with(runtime), "{cmd}");
            assert!(!cmd.contains("/var/tmp"), "{cmd}");
        }
        // On a terminal, a sentence says what it is for.
        let found = found(&records);
        let (_, shown) = found.iter().find(|f| f.0 == "fio-command").unwrap();
        assert!(shown.starts_with(FIO_COMMAND_INTRO), "{shown}");
        assert!(shown.contains("\nfio \\\n"), "{shown}");
    }

    #[test]
    fn noise_names_the_widest_spread_and_says_when_there_is_none() {
        let mut records = point(DIRECT, "std", 1, &[100.0, 101.0, 99.0], &[]);
        records.extend(point(DIRECT, "io_uring", 4, &[100.0, 130.0, 90.0], &[]));
        records.extend(point(DIRECT, "threads", 4, &[100.0, 102.0, 98.0], &[]));
        let t = text(noise, &records);
        assert!(t.contains("ran 3 times"), "{t}");
        assert!(t.contains("within ±2 %"), "{t}");
        assert!(
            t.contains("±30 % (io_uring, rand-read-direct, depth 4)"),
            "{t}"
        );
        let once = point(DIRECT, "std", 1, &[100.0], &[]);
        assert!(text(noise, &once).starts_with("Each point ran once"));
    }

    #[test]
    fn seq_io_wq_names_the_file_system_and_the_workers() {
        let mut w = point("seq-write", "io_uring", 8, &[10.0], &[]);
        w[0].io_wq_workers = Some(1);
        w[0].settings.file_system = Some(FileSystem {
            kind: "ext4".into(),
            ..FileSystem::default()
        });
        let mut r = point("seq-read", "io_uring", 8, &[10.0], &[]);
        r[0].io_wq_workers = Some(0);
        w.extend(r);
        assert_eq!(
            text(seq_io_wq, &w),
            "On ext4 here, io_uring's sequential writes started 1 io-wq worker and \
             its reads 0."
        );
    }

    #[test]
    fn depth1_from_the_device_follows_the_data_not_a_fixed_string() {
        let std = point(DIRECT, "std", 1, &[20000.0, 20500.0, 19500.0], &[]);
        let mut tie = std.clone();
        tie.extend(point(
            DIRECT,
            "io_uring",
            1,
            &[19800.0, 21000.0, 18000.0],
            &[],
        ));
        let t = text(direct_depth1, &tie);
        assert!(t.contains("std `pread` did 20.0k IOPS (p50 50 µs)"), "{t}");
        assert!(
            t.contains("no difference this run can tell from noise"),
            "{t}"
        );
        let mut slower = std.clone();
        slower.extend(point(
            DIRECT,
            "io_uring",
            1,
            &[16000.0, 16500.0, 15500.0],
            &[],
        ));
        // 1/16000 s - 1/20000 s = 12.5 µs per read.
        let t = text(direct_depth1, &slower);
        assert!(
            t.ends_with("io_uring was slower, by 12.5 µs per read."),
            "{t}"
        );
    }

    #[test]
    fn direct_best_is_plain_io_urings_highest_median() {
        let mut records = point(DIRECT, "std", 1, &[10000.0, 11000.0, 12000.0], &[]);
        records.extend(point(DIRECT, "io_uring", 32, &[120000.0; 3], &[2.5; 3]));
        records.extend(point(DIRECT, "io_uring+eager", 32, &[150000.0; 3], &[]));
        let t = text(direct_best, &records);
        assert!(
            t.contains("peaked at 120k IOPS at depth 32, 10.9 times"),
            "{t}"
        );
        assert!(t.contains("at 2.50 µs of CPU per read"), "{t}");
    }

    #[test]
    fn the_knee_is_the_first_depth_the_best_does_not_beat() {
        let mut records = point(DIRECT, "io_uring", 1, &[10000.0, 10100.0, 9900.0], &[]);
        records.extend(point(
            DIRECT,
            "io_uring",
            16,
            &[95000.0, 99000.0, 91000.0],
            &[],
        ));
        records.extend(point(
            DIRECT,
            "io_uring",
            32,
            &[100000.0, 98000.0, 102000.0],
            &[],
        ));
        let t = text(direct_knee, &records);
        assert!(t.starts_with("From depth 16 on (95.0k IOPS"), "{t}");
        assert!(t.contains("at depth 32 the p50 was 320 µs"), "{t}");
        // Depth 16 clearly below the best: more depth kept paying.
        let mut records =
            point(DIRECT, "io_uring", 16, &[80000.0, 81000.0, 79000.0], &[]);
        records.extend(point(
            DIRECT,
            "io_uring",
            32,
            &[100000.0, 98000.0, 102000.0],
            &[],
        ));
        let t = text(direct_knee, &records);
        assert!(t.contains("more depth kept paying"), "{t}");
    }

    #[test]
    fn the_pool_comparison_says_which_way_each_figure_went() {
        let mut records = point(
            DIRECT,
            "threads",
            8,
            &[50000.0, 51000.0, 49000.0],
            &[9.0; 3],
        );
        records.extend(point(
            DIRECT,
            "io_uring",
            8,
            &[50500.0, 52000.0, 48000.0],
            &[4.0; 3],
        ));
        let t = text(direct_pool, &records);
        assert!(
            t.contains("The best thread pool, 8 threads, did 50.0k IOPS"),
            "{t}"
        );
        assert!(t.ends_with(": a tie, and less CPU per read."), "{t}");
    }

    fn fio_sweep() -> Vec<Record> {
        let mut records = Vec::new();
        for (depth, fio, ours, eager, pairs, triples) in [
            (4, 45000.0, 42000.0, 45500.0, 46000.0, 42500.0),
            (32, 84000.0, 70000.0, 86000.0, 86500.0, 71000.0),
        ] {
            let near = |x: f64| [x * 0.995, x, x * 1.005];
            records.extend(point(DIRECT, "fio-io_uring", depth, &near(fio), &[5.0; 3]));
            records.extend(point(DIRECT, "io_uring", depth, &near(ours), &[]));
            records.extend(point(DIRECT, "io_uring+eager", depth, &near(eager), &[]));
            records.extend(point(DIRECT, "io_uring+pairs", depth, &near(pairs), &[]));
            records.extend(point(
                DIRECT,
                "io_uring+triples",
                depth,
                &near(triples),
                &[],
            ));
        }
        records
    }

    #[test]
    fn direct_fio_is_a_small_table_in_percent_of_fio() {
        let t = text(direct_fio, &fio_sweep());
        assert!(t.contains("| depth | fio IOPS | fio CPU us/op |"), "{t}");
        assert!(
            t.contains("| 32 | 84.0k | 5.00* | 83 % | 102 % | 103 % | 85 % |"),
            "{t}"
        );
        assert!(t.contains("| 4 | 45.0k | 5.00* | 93 % | ~101 % |"), "{t}");
        assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
    }

    #[test]
    fn keeping_up_with_fio_names_who_fell_behind_and_where() {
        assert_eq!(
            text(direct_fio_close, &fio_sweep()),
            "Each read at once and two at a time stayed within 10 % of fio, or tied \
             with it, at every depth. More than 10 % behind: a round at a time at depth \
             32; three at a time at depth 32."
        );
    }

    #[test]
    fn the_plug_test_compares_pairs_with_triples() {
        let t = text(direct_plug, &fio_sweep());
        assert!(
            t.contains("| 4 | faster | faster |\n| 32 | faster | faster |\n"),
            "{t}"
        );
        assert!(
            t.ends_with("\n\nThe plug is the likely cost at depths 4, 32."),
            "{t}"
        );
        // Triples as fast as pairs: the gap is something else.
        let mut records = fio_sweep();
        let pairs: Vec<f64> = records
            .iter()
            .filter(|r| r.engine == "io_uring+pairs")
            .map(|r| r.ops_per_s)
            .collect();
        let triples = records
            .iter_mut()
            .filter(|r| r.engine == "io_uring+triples");
        for (r, ops) in triples.zip(pairs) {
            r.ops_per_s = ops;
        }
        let t = text(direct_plug, &records);
        assert!(t.contains("| 32 | faster | tie |"), "{t}");
        assert!(
            t.ends_with("\n\nAt depths 4, 32 the plug does not explain the gap."),
            "{t}"
        );
    }

    #[test]
    fn the_fio_command_is_the_depth_32_one_an_option_a_line() {
        let mut records = fio_sweep();
        for r in records.iter_mut().filter(|r| r.engine == "fio-io_uring") {
            r.settings.command =
                Some(format!("fio --name=x --iodepth={}", r.queue_depth));
        }
        assert_eq!(
            text(fio_command, &records),
            "fio \\\n    --name=x \\\n    --iodepth=32"
        );
    }

    #[test]
    fn sqpoll_against_the_plain_ring() {
        let mut records = point(
            DIRECT,
            "io_uring",
            32,
            &[70000.0, 71000.0, 69000.0],
            &[4.0; 3],
        );
        records.extend(point(
            DIRECT,
            "io_uring+sqpoll",
            32,
            &[79000.0, 80000.0, 78000.0],
            &[13.2; 3],
        ));
        let t = text(direct_sqpoll, &records);
        assert!(
            t.contains("SQPOLL did 79.0k IOPS at 13.20 µs of CPU per read"),
            "{t}"
        );
        assert!(
            t.ends_with("SQPOLL: more IOPS, at 3.3 times the CPU per read."),
            "{t}"
        );
    }

    #[test]
    fn cached_depth1_gives_the_cost_in_microseconds_and_percent() {
        let mut records = point(CACHED, "std", 1, &[965000.0; 3], &[1.00, 1.02, 0.98]);
        records.extend(point(
            CACHED,
            "io_uring",
            1,
            &[645000.0; 3],
            &[1.50, 1.52, 1.48],
        ));
        let t = text(cached_depth1, &records);
        assert!(t.contains("std `pread` did 965k IOPS at 1.00 µs"), "{t}");
        assert!(
            t.ends_with("cost 0.50 µs of CPU per read, 50 % more than `pread`'s."),
            "{t}"
        );
    }

    #[test]
    fn cached_fixed_measures_file_and_buffers_apart() {
        let mut records = Vec::new();
        for (engine, ops) in [
            ("io_uring", 1_000_000.0),
            ("io_uring+fixed-file", 1_100_000.0),
            ("io_uring+fixed-bufs", 1_005_000.0),
            ("io_uring+fixed", 1_120_000.0),
        ] {
            records.extend(point(
                CACHED,
                engine,
                32,
                &[ops * 0.99, ops, ops * 1.01],
                &[],
            ));
        }
        let t = text(cached_fixed, &records);
        assert!(
            t.ends_with("| 32 | 1.00M | 1.10M, more | 1.00M, a tie | 1.12M, more |\n"),
            "{t}"
        );
    }

    #[test]
    fn cached_best_is_any_io_uring_set_up() {
        let mut records = point(CACHED, "std", 1, &[1000.0; 3], &[]);
        records.extend(point(CACHED, "io_uring", 32, &[1100.0; 3], &[]));
        records.extend(point(CACHED, "io_uring+fixed", 32, &[1200.0; 3], &[]));
        let t = text(cached_best, &records);
        assert!(t.contains("1.20k IOPS (io_uring+fixed, depth 32"), "{t}");
        assert!(
            t.ends_with("1.20 times std's, more than std in every run."),
            "{t}"
        );
    }

    #[test]
    fn tmpfs_counts_workers_and_reports_the_probe() {
        let mut records = point("rand-read-tmpfs", "std", 1, &[800000.0], &[1.2]);
        records[0].settings.nowait_reads = Some(false);
        let mut u = point("rand-read-tmpfs", "io_uring", 1, &[22000.0], &[32.0]);
        u[0].io_wq_workers = Some(1);
        records.extend(u);
        let t = text(tmpfs, &records);
        assert!(
            t.contains("io_uring 22.0k, which started 1 io-wq worker (32.00"),
            "{t}"
        );
        assert!(
            t.contains("RWF_NOWAIT fails with EOPNOTSUPP on the tmpfs file."),
            "{t}"
        );
    }

    /// An echo load: each server's runs of messages per second and CPU.
    fn echo(conns: u32, servers: &[(&str, f64, f64)]) -> Vec<Record> {
        let mut records = Vec::new();
        for &(name, msgs, cpu) in servers {
            let near = |x: f64| [x * 0.99, x, x * 1.01];
            records.extend(point("echo", name, conns, &near(msgs), &near(cpu)));
        }
        records
    }

    #[test]
    fn echo_share_is_the_range_from_10_connections_on() {
        let mut records = echo(1, &[("tokio", 1000.0, 5.0)]);
        records.extend(echo(10, &[("tokio", 1000.0, 5.0)]));
        for (r, share) in records.iter_mut().zip([0.3, 0.3, 0.3, 0.90, 0.91, 0.92]) {
            r.server_cpu_share = Some(share);
        }
        let t = text(echo_share, &records);
        assert!(t.contains("between 91 % and 91 %"), "{t}");
        assert!(t.contains("close to the limit of its own core"), "{t}");
    }

    #[test]
    fn echo_syscalls_are_a_table_in_proportion_to_tokio() {
        let mut records = echo(1, &[("tokio-uring", 1.0, 1.0), ("tokio", 1.0, 1.0)]);
        records.extend(echo(100, &[("tokio-uring", 1.0, 1.0), ("tokio", 1.0, 1.0)]));
        for r in &mut records {
            let calls = match (r.engine.as_str(), r.queue_depth) {
                ("tokio-uring", 1) => 6.0,
                ("tokio-uring", _) => 0.3,
                _ => 2.0,
            };
            r.syscalls_per_op = Some(calls + 0.001 * r.repeat as f64);
        }
        let t = text(echo_syscalls, &records);
        assert!(
            t.contains("| load | tokio calls/msg | tokio-uring |"),
            "{t}"
        );
        assert!(t.contains("| 1 conn. 64 B | 2.00 | 3.00x |"), "{t}");
        assert!(t.contains("| 100 conn. 64 B | 2.00 | 0.15x |"), "{t}");
    }

    fn sweep() -> Vec<Record> {
        let mut records = echo(
            100,
            &[
                ("tokio-uring+coop", 1200.0, 5.0),
                ("tokio-uring", 900.0, 7.0),
                ("tokio", 1000.0, 6.0),
            ],
        );
        records.extend(echo(
            1000,
            &[
                ("tokio-uring+coop", 1005.0, 6.02),
                ("tokio-uring", 1000.0, 6.5),
                ("tokio", 1000.0, 6.0),
            ],
        ));
        records
    }

    #[test]
    fn echo_why_says_how_each_server_did_at_each_load() {
        let t = text(echo_why, &sweep());
        assert!(
            t.contains("| load | tokio-uring+coop | tokio-uring |"),
            "{t}"
        );
        assert!(
            t.contains("| 100 conn. 64 B | more msgs, less CPU | fewer msgs, more CPU |"),
            "{t}"
        );
        assert!(t.contains("| 1000 conn. 64 B | tie | more CPU |"), "{t}");
    }

    #[test]
    fn matching_tokio_counts_a_tie_and_names_each_shortfall() {
        assert_eq!(
            text(echo_match, &sweep()),
            "tokio-uring+coop matched tokio at both loads. tokio-uring fell short at \
             both loads: 100 conn. 64 B, 1000 conn. 64 B."
        );
    }

    #[test]
    fn every_io_uring_server_of_the_run_has_its_column_and_sentence() {
        // Chapter 8's server joins by being in the run.
        let mut records = sweep();
        records.extend(echo(100, &[("uring-multishot", 1300.0, 4.0)]));
        records.extend(echo(1000, &[("uring-multishot", 1300.0, 4.0)]));
        let why = text(echo_why, &records);
        assert!(why.contains("| tokio-uring | uring-multishot |"), "{why}");
        assert!(why.contains("| more msgs, less CPU |\n"), "{why}");
        let matched = text(echo_match, &records);
        assert!(
            matched.ends_with("uring-multishot matched tokio at both loads."),
            "{matched}"
        );
    }

    #[test]
    fn echo_coop_compares_the_two_rings() {
        assert_eq!(
            text(echo_coop, &sweep()),
            "COOP_TASKRUN against the plain ring, messages per second: more at 1 of 2 \
             loads, a tie at 1; server CPU per message: less at both loads."
        );
    }

    fn profiled(server: &str, hot: &[(&str, f64)], samples: u64) -> Vec<Record> {
        let mut records = echo(100, &[(server, 1000.0, 6.0)]);
        records[0].settings.block_size = 4096;
        for r in &mut records {
            r.settings.block_size = 4096;
        }
        records[0].profile = Some(Profile {
            event: "cpu-clock".into(),
            samples,
            hottest: hot.iter().map(|&(n, p)| (n.to_string(), p)).collect(),
        });
        records
    }

    #[test]
    fn the_profile_keeps_the_discussed_functions_beyond_the_top_five() {
        let mut records = profiled(
            "tokio-uring",
            &[
                ("a", 9.0),
                ("b", 8.0),
                ("c", 7.0),
                ("d", 6.0),
                ("e", 5.0),
                ("__pv_queued_spin_lock_slowpath", 2.2),
            ],
            4000,
        );
        records.extend(profiled(
            "tokio-uring+coop",
            &[("a", 9.0), ("irqentry_exit_to_user_mode", 1.0)],
            3000,
        ));
        let t = text(echo_profile, &records);
        assert!(
            t.contains("event `cpu-clock`, at least 3000 samples"),
            "{t}"
        );
        assert!(
            t.contains("| `__pv_queued_spin_lock_slowpath` | 2.2 % | - |"),
            "{t}"
        );
        assert!(t.contains("not among the 2 hottest"), "{t}");
        let w = text(echo_profile_watched, &records);
        assert!(
            w.contains(
                "`__pv_queued_spin_lock_slowpath` took 2.2 % of tokio-uring's samples \
                 and was not among the hottest of any other server"
            ),
            "{w}"
        );
    }

    #[test]
    fn a_profile_with_too_few_samples_is_not_shown() {
        let records = profiled("tokio", &[("a", 50.0)], 8);
        let t = text(echo_profile, &records);
        assert!(t.contains("too few samples"), "{t}");
        assert!(echo_profile_watched(&point::points(&records)).is_none());
        // Enough samples, but none named: no table whose footnote counts "the
        // 0 hottest functions".
        let records = profiled("tokio", &[], 5000);
        let t = text(echo_profile, &records);
        assert!(t.contains("names no function"), "{t}");
        assert!(!t.contains("hottest"), "{t}");
        assert!(echo_profile_watched(&point::points(&records)).is_none());
    }

    #[test]
    fn a_run_of_single_runs_gives_no_verdict() {
        let mut records = point(DIRECT, "io_uring", 32, &[70000.0], &[4.0]);
        records.extend(point(DIRECT, "io_uring+sqpoll", 32, &[79000.0], &[13.2]));
        records.extend(point(DIRECT, "io_uring+eager", 32, &[75000.0], &[]));
        let t = text(direct_sqpoll, &records);
        assert!(t.ends_with("SQPOLL: at 3.3 times the CPU per read."), "{t}");
        assert_eq!(text(direct_plug, &records), NO_VERDICT);
    }

    #[test]
    fn every_finding_has_a_stand_in_for_a_run_without_its_records() {
        let found = all(&[]);
        assert_eq!(found.len(), FINDINGS.len());
        for (anchor, text) in found {
            assert!(!text.is_empty(), "{anchor}");
        }
        assert!(self::found(&[]).is_empty());
    }
}
