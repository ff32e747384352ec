//! Chapter 6's "At a glance" table: one row per workload, its winner or a
//! tie, why, and the section that shows it. Every winner comes from
//! `stats::compare`, the rule every sentence of the chapter uses, and every
//! "why" is picked by the verdict it explains, never printed whatever the
//! data say.

use uring_book::bench::findings::{best, echo_loads};
use uring_book::bench::point::{self, echo_at, find, Point};
use uring_book::bench::record::Record;
use uring_book::bench::stats::{compare, Spread, Verdict};

/// One row of the table.
pub struct Row {
    pub workload: String,
    /// `**io_uring**, 5.6× the IOPS`, `tie`, `tie at all 4 loads`.
    pub winner: String,
    pub why: String,
    /// The chapter's section, as a Markdown link.
    pub section: &'static str,
}

const SEQ: &str = "[Sequential](#sequential-a-large-file-written-then-read)";
const CACHED: &str = "[Page cache](#random-reads-from-the-page-cache)";
const DIRECT: &str = "[O_DIRECT](#random-reads-from-the-device-o_direct)";
const SQPOLL: &str = "[SQPOLL](#sqpoll-on-two-cores)";
const TMPFS: &str = "[tmpfs](#tmpfs-when-every-read-goes-to-a-worker-thread)";
const ECHO: &str = "[Echo](#does-tokio-uring-match-tokio)";

/// `1.49×`, `5.6×`, `34×`: a ratio with the digits it deserves.
pub fn times(r: f64) -> String {
    match r {
        r if r >= 9.95 => format!("{r:.0}×"),
        r if r >= 1.995 => format!("{r:.1}×"),
        _ => format!("{r:.2}×"),
    }
}

/// Who had more of a figure: `a` or `b` by name with the ratio, or a tie.
pub fn winner(
    v: Verdict,
    a: (&str, &Spread),
    b: (&str, &Spread),
    figure: &str,
) -> String {
    match v {
        Verdict::Higher => {
            format!("**{}**, {} {figure}", a.0, times(a.1.median / b.1.median))
        }
        Verdict::Lower => {
            format!("**{}**, {} {figure}", b.0, times(b.1.median / a.1.median))
        }
        Verdict::Tie => format!(
            "tie ({} {figure}, inside the noise)",
            times(a.1.median / b.1.median)
        ),
        Verdict::OneRun => "no verdict (one run)".into(),
    }
}

/// Sequential reads and writes: io_uring's 8 large requests in flight
/// against std's loop.
fn sequential(points: &[Point], workload: &str) -> Option<Row> {
    let s = points
        .iter()
        .find(|p| p.workload() == workload && p.engine() == "std")?;
    let u = points
        .iter()
        .find(|p| p.workload() == workload && p.engine() == "io_uring")?;
    let v = compare(&u.ops(), &s.ops());
    let workers = u.io_wq().unwrap_or(0);
    let why = match (workload, v) {
        (_, Verdict::Higher) => format!(
            "{} requests in flight kept the device busier than one at a time",
            u.depth()
        ),
        ("seq-read", _) => "Readahead already keeps a plain `read` loop ahead".into(),
        (_, _) if workers > 0 => {
            "Every buffered write went to one io-wq worker, in turn".into()
        }
        _ => "Nothing to overlap: the device and the fsync set the pace".into(),
    };
    let what = if workload == "seq-read" {
        "Sequential read of a large file, not cached"
    } else {
        "Sequential write of a large file, then fsync"
    };
    Some(Row {
        workload: what.into(),
        winner: winner(v, ("io_uring", &u.ops()), ("std", &s.ops()), "the MB/s"),
        why,
        section: SEQ,
    })
}

/// One read at a time from the page cache: the bookkeeping alone.
fn cached_one(points: &[Point]) -> Option<Row> {
    let c = "rand-read-cached";
    let (s, u) = (find(points, c, "std", 1)?, find(points, c, "io_uring", 1)?);
    let v = compare(&u.ops(), &s.ops());
    let why = match v {
        Verdict::Higher => "io_uring's path was the cheaper one, even alone".to_string(),
        _ => match (u.cpu(), s.cpu()) {
            (Some(cu), Some(cs)) if compare(&cu, &cs) == Verdict::Higher => format!(
                "Nothing to overlap; io_uring's bookkeeping cost {:.2} µs a read",
                cu.median - cs.median
            ),
            _ => "Nothing to overlap: the copy is the work either way".into(),
        },
    };
    Some(Row {
        workload: "Random 4 KiB reads from the page cache, one at a time".into(),
        winner: winner(v, ("io_uring", &u.ops()), ("std", &s.ops()), "the IOPS"),
        why,
        section: CACHED,
    })
}

/// The best io_uring set-up on the page cache against std.
fn cached_many(points: &[Point]) -> Option<Row> {
    let c = "rand-read-cached";
    let s = find(points, c, "std", 1)?;
    let b = best(points, c, "io_uring")?;
    let v = compare(&b.ops(), &s.ops());
    let why = match (v, b.syscalls()) {
        (Verdict::Higher, Some(calls)) if calls.median > 0.0 => {
            format!("One system call carried {:.0} reads", 1.0 / calls.median)
        }
        _ => "The copy is the work; fewer system calls saved too little".into(),
    };
    Some(Row {
        workload: format!("The same, {} in flight ({})", b.depth(), b.engine()),
        winner: winner(v, ("io_uring", &b.ops()), ("std", &s.ops()), "the IOPS"),
        why,
        section: CACHED,
    })
}

/// The best depth of plain io_uring from the device, against std.
fn direct_many(points: &[Point]) -> Option<Row> {
    let d = "rand-read-direct";
    let s = find(points, d, "std", 1)?;
    let b = points
        .iter()
        .filter(|p| p.workload() == d && p.engine() == "io_uring")
        .max_by(|a, b| a.ops().median.total_cmp(&b.ops().median))?;
    let v = compare(&b.ops(), &s.ops());
    let why = match v {
        Verdict::Higher => {
            "The device works on many reads at once; one thread fed it".into()
        }
        _ => "The device gained nothing from more reads in flight".to_string(),
    };
    Some(Row {
        workload: format!("Random 4 KiB O_DIRECT reads, {} in flight", b.depth()),
        winner: winner(v, ("io_uring", &b.ops()), ("std", &s.ops()), "the IOPS"),
        why,
        section: DIRECT,
    })
}

/// The best pool of blocking threads against io_uring at the same depth.
fn direct_pool(points: &[Point]) -> Option<Row> {
    let d = "rand-read-direct";
    let pool = best(points, d, "threads")?;
    let u = find(points, d, "io_uring", pool.depth())?;
    let v = compare(&u.ops(), &pool.ops());
    let why = match (u.cpu(), pool.cpu()) {
        (Some(cu), Some(cp)) if compare(&cu, &cp) == Verdict::Lower => format!(
            "io_uring used {} the CPU per read: no thread sleeps per read",
            times(cu.median / cp.median)
        ),
        _ => "Each blocked thread keeps one read in flight".into(),
    };
    Some(Row {
        workload: format!(
            "The same: one io_uring thread against {} threads",
            pool.depth()
        ),
        winner: winner(
            v,
            ("io_uring", &u.ops()),
            ("threads", &pool.ops()),
            "the IOPS",
        ),
        why,
        section: DIRECT,
    })
}

/// SQPOLL against the plain ring at depth 32: IOPS first, then CPU.
fn sqpoll(points: &[Point]) -> Option<Row> {
    let d = "rand-read-direct";
    let u = find(points, d, "io_uring", 32)?;
    let q = find(points, d, "io_uring+sqpoll", 32)?;
    let v = compare(&q.ops(), &u.ops());
    let (cell, why) = match (v, q.cpu(), u.cpu()) {
        (Verdict::Tie, Some(cq), Some(cu)) if compare(&cq, &cu) == Verdict::Higher => (
            format!(
                "**plain ring**: tied IOPS at {} the CPU",
                times(cu.median / cq.median)
            ),
            "The poller spins on one of the machine's CPUs".to_string(),
        ),
        _ => (
            winner(
                v,
                ("SQPOLL", &q.ops()),
                ("plain ring", &u.ops()),
                "the IOPS",
            ),
            "SQPOLL saves system calls, and pays with a CPU".to_string(),
        ),
    };
    Some(Row {
        workload: "SQPOLL, O_DIRECT reads, 32 in flight".into(),
        winner: cell,
        why,
        section: SQPOLL,
    })
}

/// One read at a time on tmpfs.
fn tmpfs(points: &[Point]) -> Option<Row> {
    let t = "rand-read-tmpfs";
    let (s, u) = (find(points, t, "std", 1)?, find(points, t, "io_uring", 1)?);
    let v = compare(&u.ops(), &s.ops());
    let why = match (v, u.io_wq().unwrap_or(0)) {
        (Verdict::Higher, _) => "tmpfs reads completed without a worker here".to_string(),
        (_, 0) => "Nothing to overlap: the copy is the work either way".into(),
        _ => "Every read went to an io-wq worker thread".into(),
    };
    Some(Row {
        workload: "Random 4 KiB reads from tmpfs, one at a time".into(),
        winner: winner(v, ("io_uring", &u.ops()), ("std", &s.ops()), "the IOPS"),
        why,
        section: TMPFS,
    })
}

/// How an echo server did against tokio at one load: better (more
/// messages, or less CPU, and worse at neither), worse, or even.
fn echo_versus(u: &Point, t: &Point) -> Verdict {
    let msgs = compare(&u.ops(), &t.ops());
    let cpu = match (u.cpu(), t.cpu()) {
        (Some(a), Some(b)) => compare(&a, &b),
        _ => Verdict::OneRun,
    };
    if msgs == Verdict::OneRun || cpu == Verdict::OneRun {
        return Verdict::OneRun;
    }
    let better = msgs == Verdict::Higher || cpu == Verdict::Lower;
    let worse = msgs == Verdict::Lower || cpu == Verdict::Higher;
    match (better, worse) {
        (true, false) => Verdict::Higher,
        (false, true) => Verdict::Lower,
        _ => Verdict::Tie,
    }
}

/// An io_uring server against tokio at 100 and 1000 connections.
fn echo(points: &[Point], server: &str, what: &str) -> Option<Row> {
    let loads: Vec<(u32, u64)> = echo_loads(points)
        .into_iter()
        .filter(|l| matches!(l.0, 100 | 1000))
        .collect();
    let verdicts: Vec<Verdict> = loads
        .iter()
        .filter_map(|&l| {
            Some(echo_versus(
                echo_at(points, server, l)?,
                echo_at(points, "tokio", l)?,
            ))
        })
        .collect();
    if verdicts.is_empty() {
        return None;
    }
    let n = |v| verdicts.iter().filter(|&&x| x == v).count();
    let total = verdicts.len();
    let (won, lost, tied) = (n(Verdict::Higher), n(Verdict::Lower), n(Verdict::Tie));
    let mut parts = Vec::new();
    for (k, what) in [
        (won, format!("**{server}**")),
        (lost, "**tokio**".to_string()),
        (tied, "tie".to_string()),
        (n(Verdict::OneRun), "no verdict".to_string()),
    ] {
        if k > 0 {
            parts.push(format!("{what} at {k}"));
        }
    }
    let cell = if tied == total {
        format!("tie at all {total} loads")
    } else {
        parts[0] += &format!(" of {total} loads");
        parts.join(", ")
    };
    // Fewer system calls than tokio at every one of these loads?
    let fewer_calls = loads.iter().all(|&l| {
        let calls = |s| echo_at(points, s, l).and_then(|p| p.syscalls());
        matches!((calls(server), calls("tokio")), (Some(a), Some(b)) if compare(&a, &b) == Verdict::Lower)
    });
    let why = match (won > 0, lost > 0, fewer_calls) {
        (false, false, true) => {
            "Fewer system calls, but the kernel's TCP work is most of the cost"
        }
        (false, false, false) => {
            "The kernel's TCP work, the same for all, is most of the cost"
        }
        (true, false, true) => "Fewer system calls per message, on the same TCP work",
        (true, false, false) => "The same TCP work, at less cost around it",
        _ => "Its work per operation cost more than the system calls it saved",
    };
    Some(Row {
        workload: format!("TCP echo, 100 and 1000 connections: {what} against tokio"),
        winner: cell,
        why: why.into(),
        section: ECHO,
    })
}

/// Every row this run has records for.
pub fn rows(records: &[Record]) -> Vec<Row> {
    let points = point::points(records);
    let p = &points;
    [
        sequential(p, "seq-read"),
        sequential(p, "seq-write"),
        cached_one(p),
        cached_many(p),
        direct_many(p),
        direct_pool(p),
        sqpoll(p),
        tmpfs(p),
        echo(p, "tokio-uring+coop", "chapter 5's server"),
        echo(p, "uring-multishot", "chapter 8's server"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The table as Markdown, or what stands in for it without records.
pub fn markdown(records: &[Record]) -> String {
    let rows = rows(records);
    if rows.is_empty() {
        return "This run has no records to compare.".into();
    }
    let mut out = String::from(
        "| workload | winner, or tie | why | section |\n|:---|:---|:---|:---|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {}. | {} |\n",
            r.workload, r.winner, r.why, r.section
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::findings::tests::point;

    /// The runs of one point, every one at `cpu` µs of CPU per operation.
    fn runs(
        workload: &str,
        engine: &str,
        depth: u32,
        ops: &[f64],
        cpu: f64,
    ) -> Vec<Record> {
        point(workload, engine, depth, ops, &vec![cpu; ops.len()])
    }

    #[test]
    fn ratios_keep_the_digits_they_deserve() {
        assert_eq!(times(1.487), "1.49×");
        assert_eq!(times(5.64), "5.6×");
        assert_eq!(times(34.1), "34×");
    }

    #[test]
    fn the_winner_follows_the_tie_rule() {
        let mut records = runs("rand-read-cached", "std", 1, &[900.0, 910.0, 920.0], 1.0);
        records.extend(runs(
            "rand-read-cached",
            "io_uring",
            1,
            &[600.0, 610.0, 620.0],
            1.6,
        ));
        let row = &rows(&records)[0];
        assert_eq!(row.winner, "**std**, 1.49× the IOPS");
        assert!(row.why.contains("bookkeeping cost 0.60 µs"), "{}", row.why);
        // Overlapping runs: a tie, and no bookkeeping blamed for a win.
        let mut records = runs("rand-read-cached", "std", 1, &[900.0, 910.0, 920.0], 1.0);
        records.extend(runs(
            "rand-read-cached",
            "io_uring",
            1,
            &[890.0, 915.0, 940.0],
            1.0,
        ));
        let row = &rows(&records)[0];
        assert!(row.winner.starts_with("tie ("), "{}", row.winner);
        assert!(!row.why.contains("bookkeeping"), "{}", row.why);
    }

    #[test]
    fn an_echo_server_wins_a_load_only_if_it_loses_at_neither_figure() {
        let mut records = Vec::new();
        for (conns, (msgs, cpu)) in [(100, (1200.0, 5.0)), (1000, (1000.0, 6.0))] {
            records.extend(runs("echo", "tokio", conns, &[990.0, 1000.0, 1010.0], 6.0));
            let near = [msgs * 0.99, msgs, msgs * 1.01];
            records.extend(runs("echo", "uring-multishot", conns, &near, cpu));
        }
        // CPU per message is the same in every run: spread it a little.
        for (i, r) in records.iter_mut().enumerate() {
            r.cpu_us_per_op = r.cpu_us_per_op.map(|c| c * (1.0 + 0.001 * (i % 3) as f64));
        }
        let md = markdown(&records);
        assert!(
            md.contains("| **uring-multishot** at 1 of 2 loads, tie at 1 |"),
            "{md}"
        );
        assert!(md.contains("The same TCP work, at less cost"), "{md}");
    }

    #[test]
    fn a_run_without_records_says_so() {
        assert_eq!(markdown(&[]), "This run has no records to compare.");
    }
}
