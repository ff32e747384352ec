//! The short summary of a quick run, which plain `cargo run` prints between
//! the other exercises: a few headline ratios in 80 columns, what they are
//! worth, and the command for the full run. The full tables stay for
//! `cargo run --release -- 6`.

use uring_book::bench::findings::{echo_loads, plural};
use uring_book::bench::point::{self, echo_at, find, Point};
use uring_book::bench::record::Record;
use uring_book::bench::report::{secs, terms, terms_text, wrap, IO_WQ};
use uring_book::system::human_bytes;

/// The width the summary fits.
pub const WIDTH: usize = 80;

/// The random-read workloads the summary shows, and how it names them.
const READS: [(&str, &str); 3] = [
    ("rand-read-cached", "page cache"),
    ("rand-read-direct", "device (O_DIRECT)"),
    ("rand-read-tmpfs", "tmpfs"),
];

/// The summary of a run; `debug` says whether this program is a debug
/// build, whose numbers are worth even less.
pub fn summary(records: &[Record], debug: bool) -> String {
    let points = point::points(records);
    let mut out = String::new();
    out += &caveat(&points, debug);
    let reads = reads(&points);
    let echo = echo(&points);
    if reads.is_empty() && echo.is_empty() {
        out += "\nThis run measured none of the points the summary shows.\n";
    }
    for part in [reads, echo] {
        if !part.is_empty() {
            out.push('\n');
            out += &part;
        }
    }
    out.push('\n');
    out += &wrap(
        "The full run, every point three times with every table and what it shows \
         (about 8 minutes):\n    cargo run --release -- 6\nAdd --json FILE for \
         the records and --plot DIR for SVG charts. Chapter 6 of the book explains \
         every column.",
        WIDTH,
    );
    out
}

/// What the numbers are worth: how many runs, how long, which build.
fn caveat(points: &[Point], debug: bool) -> String {
    let runs = points.iter().map(|p| p.runs.len()).max().unwrap_or(0);
    let seconds = points.first().map_or(0.0, |p| p.first().settings.seconds);
    let runs_text = if runs == 1 {
        "one run".to_string()
    } else {
        plural(runs, "run", "runs")
    };
    let mut text = format!(
        "A quick run: {runs_text} of {} of each point.",
        secs(seconds)
    );
    if runs < 2 {
        text += " One run has no spread, so no ratio below is a verdict: it only \
                 shows that every engine works.";
    }
    if debug {
        text += " This is a debug build, whose numbers are not worth quoting.";
    }
    wrap(&text, WIDTH)
}

/// io_uring's reads per second over std `pread`'s, a line per workload and
/// depth.
fn reads(points: &[Point]) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut io_wq = false;
    for (workload, name) in READS {
        let Some(std) = find(points, workload, "std", 1) else {
            continue;
        };
        let mut ours: Vec<&Point> = points
            .iter()
            .filter(|p| p.workload() == workload && p.engine() == "io_uring")
            .collect();
        ours.sort_by_key(|p| p.depth());
        for p in ours {
            let mut ratio = format!("{:.2}x", p.ops().median / std.ops().median);
            if let Some(workers) = p.io_wq().filter(|&n| n > 0) {
                io_wq = true;
                let workers = plural(workers as usize, "io-wq worker", "io-wq workers");
                ratio += &format!(", {workers} started");
            }
            lines.push((format!("{name}, depth {}", p.depth()), ratio));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = wrap(
        "Random 4 KiB reads: io_uring's reads per second over std's blocking pread, \
         which reads one block at a time (depth: reads in flight at once):",
        WIDTH,
    );
    let width = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0);
    for (what, ratio) in lines {
        out += &format!("  {what:<width$}  {ratio}\n");
    }
    if io_wq {
        for line in terms_text(&[IO_WQ]) {
            out += &wrap(&line, WIDTH);
        }
    }
    out
}

/// Each server against tokio at each load of the echo workload.
fn echo(points: &[Point]) -> String {
    let mut out = String::new();
    for load in echo_loads(points) {
        if let Some(tokio) = echo_at(points, "tokio", load) {
            let others: Vec<&Point> = points
                .iter()
                .filter(|p| p.workload() == "echo" && (p.depth(), p.size()) == load)
                .filter(|p| p.engine() != "tokio")
                .collect();
            out += &echo_load(load, tokio, &others);
        }
    }
    out
}

/// The servers at one load, a row each, against tokio's point.
fn echo_load((conns, size): (u32, u64), tokio: &Point, others: &[&Point]) -> String {
    if others.is_empty() {
        return String::new();
    }
    let calls = |p: &Point| p.syscalls().map(|s| format!("{:.2}", s.median));
    let size = human_bytes(Some(size)).replace(" bytes", " B");
    let mut out = wrap(
        &format!(
            "TCP echo, {} with {size} messages: each server against tokio (epoll, one \
             thread); CPU is the server's CPU time per message:",
            plural(conns as usize, "connection", "connections")
        ),
        WIDTH,
    );
    let header = ["server", "msgs/s vs tokio", "CPU vs tokio", "syscalls/msg"];
    let first = others
        .iter()
        .map(|p| p.engine().chars().count())
        .chain([header[0].len()])
        .max()
        .unwrap_or(0);
    let tokio_calls = calls(tokio).map_or(String::new(), |c| format!(" (tokio {c})"));
    out += &format!(
        "  {:<first$}  {}  {}  {}{tokio_calls}\n",
        header[0], header[1], header[2], header[3]
    );
    for p in others {
        let cpu = match (p.cpu(), tokio.cpu()) {
            (Some(a), Some(b)) if b.median > 0.0 => {
                format!("{:.2}x", a.median / b.median)
            }
            _ => "-".into(),
        };
        out += &format!(
            "  {:<first$}  {:>15}  {:>12}  {:>12}\n",
            p.engine(),
            format!("{:.2}x", p.ops().median / tokio.ops().median),
            cpu,
            calls(p).unwrap_or_else(|| "-".into()),
        );
    }
    let engines: Vec<&str> = others.iter().map(|p| p.engine()).collect();
    for line in terms_text(&terms(&engines, false)) {
        out += &wrap(&line, WIDTH);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::findings::tests::point;

    /// One run of a point, as a quick run of 0.25 s records it.
    fn record(workload: &str, engine: &str, depth: u32, ops_per_s: f64) -> Record {
        let mut r =
            point(workload, engine, depth, &[ops_per_s], &[1e6 / ops_per_s]).remove(0);
        r.settings.seconds = 0.25;
        r
    }

    fn quick_run() -> Vec<Record> {
        let mut records = vec![
            record("rand-read-cached", "std", 1, 400e3),
            record("rand-read-cached", "io_uring", 1, 200e3),
            record("rand-read-direct", "std", 1, 20e3),
            record("rand-read-direct", "io_uring", 32, 50e3),
            record("rand-read-tmpfs", "std", 1, 300e3),
            record("rand-read-tmpfs", "io_uring", 1, 60e3),
        ];
        records[5].io_wq_workers = Some(1);
        for (server, msgs) in [
            ("tokio-uring+coop", 9000.0),
            ("uring-multishot", 11000.0),
            ("tokio", 10000.0),
        ] {
            let mut r = record("echo", server, 100, msgs);
            r.syscalls_per_op = Some(if server == "tokio" { 2.3 } else { 0.2 });
            records.push(r);
        }
        records
    }

    #[test]
    fn a_quick_runs_summary_is_a_few_ratios_in_80_columns() {
        let text = summary(&quick_run(), true);
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.lines().count() < 40, "{text}");
        for line in [
            "  page cache, depth 1          0.50x\n",
            "  device (O_DIRECT), depth 32  2.50x\n",
            "  tmpfs, depth 1               0.20x, 1 io-wq worker started\n",
        ] {
            assert!(text.contains(line), "{line:?}: {text}");
        }
        assert!(text.contains("  uring-multishot  "), "{text}");
        assert!(text.contains("(tokio 2.30)"), "{text}");
    }

    #[test]
    fn it_says_what_the_numbers_are_worth_and_where_the_full_run_is() {
        let text = summary(&quick_run(), true);
        // Sentences, whatever the wrapping.
        let flat = text.replace('\n', " ");
        assert!(text.starts_with("A quick run: one run of 0.25 s of each point."));
        assert!(flat.contains("no ratio below is a verdict"), "{text}");
        assert!(flat.contains("debug build, whose numbers are not worth quoting"));
        assert!(text.contains("\n    cargo run --release -- 6\n"), "{text}");
        assert!(text.contains("--json FILE") && text.contains("--plot DIR"));
        assert!(text.contains("Chapter 6"), "{text}");
        let release = summary(&quick_run(), false);
        assert!(!release.contains("debug build"), "{release}");
    }

    #[test]
    fn every_name_it_shows_is_explained() {
        let text = summary(&quick_run(), true);
        for term in [
            "io-wq: ",
            "tokio-uring+coop: ",
            "uring-multishot: ",
            "depth: ",
        ] {
            assert!(text.contains(term), "{term}: {text}");
        }
    }
}
