//! Tables of a run, for the terminal and as Markdown for the book. Each
//! table says what machine, file system and settings made it, shows the
//! median of each point's runs with how far they spread, and puts the ratios
//! to the baseline of the same run beside the numbers.

use std::fmt::Write as _;

use uring_book::bench::point::{self, Point};
use uring_book::bench::record::Record;
use uring_book::bench::stats::{compare, Spread, Verdict};
use uring_book::bench::{findings, glance};
use uring_book::system::human_bytes;

/// The workloads in the order the tables show them, with their titles.
pub const WORKLOADS: &[(&str, &str)] = &[
    ("seq-write", "Sequential write (then fsync) of one file"),
    (
        "seq-read",
        "Sequential read of one file, not in the page cache",
    ),
    ("rand-read-cached", "Random 4 KiB reads from the page cache"),
    (
        "rand-read-direct",
        "Random 4 KiB reads with O_DIRECT from the device",
    ),
    ("rand-read-tmpfs", "Random 4 KiB reads from a file on tmpfs"),
    ("echo", "TCP echo on loopback"),
];

/// A table: a title, the lines that say how it was made, a header and rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub title: String,
    pub context: Vec<String>,
    /// The names in the table that need saying what they mean, for a
    /// terminal, which has no chapter beside it (the book's tables have the
    /// chapter's prose): (name, meaning).
    pub terms: Vec<(&'static str, &'static str)>,
    pub header: Vec<&'static str>,
    /// How many columns on the left name a row (engine and depth; server,
    /// connections and message size): a table split to fit a terminal
    /// repeats them in each part.
    pub keys: usize,
    pub rows: Vec<Vec<String>>,
}

/// The column of the ratio to fio at the same depth.
pub const FIO_COLUMN: &str = "vs fio";

/// The columns of the echo table.
pub fn echo_header() -> Vec<&'static str> {
    vec![
        "server",
        "conns",
        "msg",
        "msgs/s",
        "p50 us",
        "p99 us",
        "CPU us/msg",
        "CPU share",
        "syscalls/msg",
        "switches/msg",
        "msgs/s vs tokio",
        "CPU vs tokio",
    ]
}

/// Seconds as a person writes them: `0.25 s`, `1 s`, `2.5 s`; the same
/// value `--help` and the fio command show.
pub fn secs(s: f64) -> String {
    format!("{} s", (s * 1000.0).round() / 1000.0)
}

/// What each engine's or server's name means, for a reader without the
/// chapter beside the table.
const TERMS: &[(&str, &str)] = &[
    ("std", "blocking pread, one read at a time"),
    (
        "io_uring",
        "one thread, depth reads in flight, submitted once a round",
    ),
    (
        "io_uring+fixed",
        "with registered buffers and a registered file",
    ),
    ("io_uring+fixed-file", "a registered file only"),
    ("io_uring+fixed-bufs", "registered buffers only"),
    (
        "io_uring+sqpoll",
        "a kernel thread polls the ring (SQPOLL), no io_uring_enter",
    ),
    (
        "io_uring+eager",
        "submits each read as soon as it is queued",
    ),
    ("io_uring+pairs", "submits every two reads"),
    ("io_uring+triples", "submits every three reads"),
    (
        "threads",
        "a pool of threads (depth: how many), each doing blocking preads",
    ),
    ("fio-psync", "fio's blocking engine"),
    ("fio-io_uring", "fio's io_uring engine"),
    (
        "tokio-uring+coop",
        "chapter 5's server, its ring set up with COOP_TASKRUN",
    ),
    ("tokio-uring", "the same server on a plain ring"),
    (
        "uring-multishot",
        "chapter 8's server, on multishot receive and a buffer ring",
    ),
    ("tokio", "tokio on epoll, one thread"),
    (
        "std-threads",
        "a thread per connection, blocking reads and writes",
    ),
];

/// What `name` (an engine or a server) means, if it needs saying.
pub fn term(name: &str) -> Option<&'static str> {
    TERMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, what)| *what)
}

/// What the io-wq column counts.
pub const IO_WQ: (&str, &str) = (
    "io-wq",
    "the kernel's worker threads that io_uring handed requests to, because they could \
     not be done without blocking (chapter 2, \"What the kernel does with your SQE\")",
);

/// The names among `engines` that need saying what they mean, in the
/// order given, and io-wq if the table has that column.
pub fn terms(engines: &[&str], io_wq: bool) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = engines
        .iter()
        .filter_map(|e| TERMS.iter().find(|(name, _)| name == e).copied())
        .collect();
    if io_wq {
        out.push(IO_WQ);
    }
    out
}

/// The lines that say what `terms` mean: the engines and servers in one,
/// with the chapter that explains them; then io-wq, which names its own.
pub fn terms_text(terms: &[(&str, &str)]) -> Vec<String> {
    let (io_wq, names): (Vec<_>, Vec<_>) = terms.iter().partition(|t| t.0 == IO_WQ.0);
    let mut out = Vec::new();
    if !names.is_empty() {
        let each: Vec<String> = names
            .iter()
            .map(|(n, what)| format!("{n}: {what}"))
            .collect();
        out.push(format!("{} (chapter 6)", each.join("; ")));
    }
    out.extend(io_wq.iter().map(|(n, what)| format!("{n}: {what}")));
    out
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// Text for a terminal: every line that is not a table row (`| ... |`) or a
/// command (indented) wrapped at `width` columns, at spaces.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('|') || line.starts_with(' ') || line.chars().count() <= width
        {
            out += line;
            out.push('\n');
            continue;
        }
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty()
                && current.chars().count() + 1 + word.chars().count() > width
            {
                out += &current;
                out.push('\n');
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current += word;
        }
        out += &current;
        out.push('\n');
    }
    out
}

/// A rate to three significant digits: `633`, `45.4k`, `965k`, `1.05M`.
pub fn rate(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 999.5e3 => (v / 1e6, "M"),
        a if a >= 999.5 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = match scaled.abs() {
        _ if suffix.is_empty() => 0,
        a if a >= 99.95 => 0,
        a if a >= 9.995 => 1,
        _ => 2,
    };
    format!("{scaled:.digits$}{suffix}")
}

/// ` ±3%`: every run within that much of the median; nothing for one run.
pub fn plus_minus(s: &Spread) -> String {
    if s.runs < 2 {
        return String::new();
    }
    format!(" ±{:.0}%", s.deviation_percent())
}

/// The median of `a` over `b`'s, marked `~` when the runs overlap: a ratio
/// that is a tie, whatever its digits say.
pub fn ratio(a: &Spread, b: Option<&Spread>) -> String {
    match b {
        Some(b) if b.median > 0.0 => {
            let tie = if compare(a, b) == Verdict::Tie {
                "~"
            } else {
                ""
            };
            format!("{tie}{:.2}x", a.median / b.median)
        }
        _ => "-".into(),
    }
}

/// The point a row is compared with: std for files, tokio for echo (same
/// connections and message size).
fn baseline<'p, 'a>(points: &'p [Point<'a>], p: &Point) -> Option<&'p Point<'a>> {
    if p.workload() == "echo" {
        point::echo_at(points, "tokio", (p.depth(), p.size()))
    } else {
        point::find(points, p.workload(), "std", 1)
    }
}

/// fio doing the same as a point, at the same depth: its psync engine for the
/// blocking engines (one thread, or a pool of them), its io_uring engine for
/// ours.
pub fn fio_peer<'p, 'a>(points: &'p [Point<'a>], p: &Point) -> Option<&'p Point<'a>> {
    let blocking = ["std", "threads", "fio-psync"].contains(&p.engine());
    let peer = if blocking {
        "fio-psync"
    } else {
        "fio-io_uring"
    };
    point::find(points, p.workload(), peer, p.depth())
}

/// fio's CPU figures cover less than ours: see the note the tables print.
pub fn is_fio(p: &Point) -> bool {
    p.engine().starts_with("fio-")
}

/// How the runs of the table's points relate to each other.
fn runs_context(points: &[&Point]) -> String {
    let runs = points.iter().map(|p| p.runs.len()).max().unwrap_or(1);
    if runs < 2 {
        "One run per point: no spread, so no difference between two rows is a \
         verdict"
            .into()
    } else {
        format!(
            "Each point ran {runs} times, taking turns with the other engines; a cell is \
             the median of the runs, ±: every run within that much of it; ~: a ratio \
             whose runs overlap, a tie"
        )
    }
}

/// The lines above a table that say what made it.
fn context(workload: &str, points: &[&Point]) -> Vec<String> {
    let first = points[0].first();
    let s = &first.settings;
    let mut context = vec![format!("Machine: {}", first.machine.describe())];
    if let Some(fs) = &s.file_system {
        context.push(format!("File system: {} ({})", fs.describe(), s.dir));
    }
    let size = human_bytes(Some(s.block_size));
    context.push(if workload == "echo" {
        format!(
            "Settings: {} per run, one message in flight per connection, server and \
             client on CPUs of their own where there are two. CPU, syscalls and switches \
             are the server's; CPU time from /proc/PID/stat over the client's whole run; \
             CPU share: that time over the run's wall time (1.00 is its CPU busy \
             throughout)",
            secs(s.seconds)
        )
    } else if workload.starts_with("seq") {
        format!(
            "Settings: {} file, {size} per request, {} of them in flight for io_uring",
            human_bytes(Some(s.file_size)),
            points.iter().map(|p| p.depth()).max().unwrap_or(1)
        )
    } else {
        format!(
            "Settings: {} file, {size} reads at random offsets, {} per run{}",
            human_bytes(Some(s.file_size)),
            secs(s.seconds),
            if s.o_direct { ", O_DIRECT" } else { "" }
        )
    });
    context.push(runs_context(points));
    if points.iter().any(|p| is_fio(p)) {
        context.push(
            "vs std: IOPS over std's; vs fio: IOPS over fio's at the same depth, fio's \
             psync engine for std and threads, its io_uring engine for io_uring"
                .into(),
        );
        context.push(
            "CPU marked * is fio's own figure, of its job thread only (getrusage \
             RUSAGE_THREAD): it leaves out io-wq and SQPOLL threads, which ours \
             (RUSAGE_SELF, the whole process) counts"
                .into(),
        );
    }
    context
}

/// A figure with its spread: `1.04 ±3%`, fio's CPU starred: `1.18* ±2%`.
fn with_spread(s: Option<Spread>, digits: usize, star: bool) -> String {
    match s {
        Some(s) => {
            let star = if star { "*" } else { "" };
            format!("{:.digits$}{star}{}", s.median, plus_minus(&s))
        }
        None => "-".into(),
    }
}

fn echo_row(points: &[Point], p: &Point) -> Vec<String> {
    let base = baseline(points, p);
    let cpu_vs = match (p.cpu(), base.and_then(|b| b.cpu())) {
        (Some(c), Some(b)) => ratio(&c, Some(&b)),
        _ => "-".into(),
    };
    vec![
        p.engine().to_string(),
        p.depth().to_string(),
        human_bytes(Some(p.size())),
        format!("{}{}", rate(p.ops().median), plus_minus(&p.ops())),
        opt(p.p50(), 1),
        opt(p.p99(), 1),
        with_spread(p.cpu(), 2, false),
        opt(p.share().map(|s| s.median), 2),
        opt(p.syscalls().map(|s| s.median), 2),
        opt(p.switches(), 3),
        ratio(&p.ops(), base.map(|b| b.ops()).as_ref()),
        cpu_vs,
    ]
}

fn file_row(points: &[Point], p: &Point, sequential: bool, fio: bool) -> Vec<String> {
    let base = baseline(points, p);
    let mut row = vec![p.engine().to_string(), p.depth().to_string()];
    row.push(format!("{}{}", rate(p.ops().median), plus_minus(&p.ops())));
    if sequential {
        row.push(format!("{:.1}", p.mb_per_s()));
    }
    row.push(opt(p.p50(), 1));
    row.push(opt(p.p99(), 1));
    row.push(with_spread(p.cpu(), 2, is_fio(p)));
    row.push(opt(p.syscalls().map(|s| s.median), 2));
    row.push(opt(p.switches(), 3));
    row.push(p.io_wq().map_or("-".into(), |n| n.to_string()));
    row.push(ratio(&p.ops(), base.map(|b| b.ops()).as_ref()));
    if fio {
        let peer = fio_peer(points, p).map(|f| f.ops());
        row.push(ratio(&p.ops(), peer.as_ref()));
    }
    row
}

/// One table per workload that has records, in the order of [`WORKLOADS`].
pub fn tables(records: &[Record]) -> Vec<Table> {
    let points = point::points(records);
    let mut tables = Vec::new();
    for &(workload, title) in WORKLOADS {
        let rows: Vec<&Point> =
            points.iter().filter(|p| p.workload() == workload).collect();
        if rows.is_empty() {
            continue;
        }
        let sequential = workload.starts_with("seq");
        let fio = rows.iter().any(|p| is_fio(p));
        let header = if workload == "echo" {
            echo_header()
        } else {
            let mut h = vec!["engine", "depth", "ops/s"];
            if sequential {
                h.push("MB/s");
            }
            h.extend([
                "p50 us",
                "p99 us",
                "CPU us/op",
                "syscalls/op",
                "switches/op",
            ]);
            h.extend(["io-wq", "vs std"]);
            if fio {
                h.push(FIO_COLUMN);
            }
            h
        };
        let mut engines: Vec<&str> = Vec::new();
        for p in &rows {
            if !engines.contains(&p.engine()) {
                engines.push(p.engine());
            }
        }
        let cells = rows
            .iter()
            .map(|p| {
                if workload == "echo" {
                    echo_row(&points, p)
                } else {
                    file_row(&points, p, sequential, fio)
                }
            })
            .collect();
        tables.push(Table {
            title: title.to_string(),
            context: context(workload, &rows),
            terms: terms(&engines, header.contains(&"io-wq")),
            keys: if workload == "echo" { 3 } else { 2 },
            header,
            rows: cells,
        });
    }
    tables
}

impl Table {
    /// Aligned columns for a terminal `width` columns wide. A table wider
    /// than that is split into parts, each with the columns that name a row
    /// and as many of the others as fit. Terms not yet in `defined` (by the
    /// tables printed before this one) are explained above the table.
    pub fn to_text(&self, width: usize, defined: &mut Vec<&'static str>) -> String {
        let mut widths: Vec<usize> =
            self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let new: Vec<(&str, &str)> = self
            .terms
            .iter()
            .filter(|(name, _)| !defined.contains(name))
            .copied()
            .collect();
        defined.extend(new.iter().map(|t| t.0));
        let mut out = format!("{}\n", self.title);
        for c in self.context.iter().chain(&terms_text(&new)) {
            for line in wrap(c, width - 2).lines() {
                out += &format!("  {line}\n");
            }
        }
        for (i, columns) in split_columns(&widths, self.keys, width).iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let line = |cells: &[&str]| {
                let padded: Vec<String> = columns
                    .iter()
                    .map(|&c| format!("{:>w$}", cells[c], w = widths[c]))
                    .collect();
                padded.join("  ").trim_end().to_string() + "\n"
            };
            out += &line(&self.header);
            for row in &self.rows {
                out += &line(&row.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        out
    }

    /// A Markdown table with its context as a paragraph above it.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("**{}.** {}.\n\n", self.title, self.context.join(". "));
        out += &format!("| {} |\n", self.header.join(" | "));
        out += &format!(
            "|{}\n",
            "---:|"
                .repeat(self.header.len())
                .replacen("---:", ":---", 1)
        );
        for row in &self.rows {
            out += &format!("| {} |\n", row.join(" | "));
        }
        out
    }
}

/// The columns of each part of a table split to fit `width`: the first
/// `keys` in every part, then the others in order, as many as fit (at least
/// one per part).
fn split_columns(widths: &[usize], keys: usize, width: usize) -> Vec<Vec<usize>> {
    let keys = keys.min(widths.len());
    let key_width: usize = widths[..keys].iter().map(|w| w + 2).sum();
    let mut parts: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = (0..keys).collect();
    let mut used = key_width;
    for (c, w) in widths.iter().enumerate().skip(keys) {
        if current.len() > keys && used + w > width {
            parts.push(std::mem::replace(&mut current, (0..keys).collect()));
            used = key_width;
        }
        current.push(c);
        used += w + 2;
    }
    parts.push(current);
    parts
}

/// The Markdown summary the chapter includes: every table, then the
/// findings, each between anchors (`{{#include summary.md:direct-fio}}`).
/// Every anchor is always there, so the book builds from any run.
pub fn summary_markdown(records: &[Record], command: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- ANCHOR: command -->\n`{command}`\n<!-- ANCHOR_END: command -->"
    );
    let tables = tables(records);
    for &(workload, title) in WORKLOADS {
        let text = match tables.iter().find(|t| t.title == title) {
            Some(table) => table.to_markdown(),
            None => format!("*{title}: not measured in this run.*\n"),
        };
        let _ = writeln!(
            out,
            "\n<!-- ANCHOR: {workload} -->\n{text}<!-- ANCHOR_END: {workload} -->"
        );
    }
    let glance = glance::markdown(records);
    let _ = writeln!(
        out,
        "\n<!-- ANCHOR: glance -->\n{}\n<!-- ANCHOR_END: glance -->",
        glance.trim_end()
    );
    for (name, text) in findings::all(records) {
        let _ = writeln!(
            out,
            "\n<!-- ANCHOR: {name} -->\n{}\n<!-- ANCHOR_END: {name} -->",
            text.trim_end()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use uring_book::bench::record::{Measured, Settings};

    fn record(workload: &str, engine: &str, depth: u32, ops: u64) -> Record {
        let m = Measured {
            ops,
            bytes: ops * 4096,
            elapsed: Duration::from_secs(1),
            ..Measured::default()
        };
        let settings = Settings {
            block_size: 4096,
            ..Settings::default()
        };
        Record::new(workload, engine, depth, m, settings)
    }

    #[test]
    fn wrapped_text_keeps_table_rows_and_commands_whole() {
        let long = "word ".repeat(30);
        let text = format!("{long}\n| a | b |\n    --option=value\n");
        let wrapped = wrap(&text, 40);
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 40),
            "{wrapped}"
        );
        assert!(
            wrapped.contains("\n| a | b |\n    --option=value\n"),
            "{wrapped}"
        );
        assert_eq!(
            wrapped.split_whitespace().count(),
            text.split_whitespace().count()
        );
    }

    #[test]
    fn a_table_wider_than_the_terminal_is_split_and_keeps_its_key_columns() {
        let echo = |engine: &str, conns: u32| {
            let mut r = record("echo", engine, conns, 1000);
            r.settings.block_size = 64;
            r.cpu_us_per_op = Some(5.0);
            r
        };
        let records = vec![echo("tokio-uring+coop", 100), echo("tokio", 100)];
        let table = &tables(&records)[0];
        let wide = table.to_text(1000, &mut Vec::new());
        let narrow = table.to_text(60, &mut Vec::new());
        assert!(wide.lines().any(|l| l.chars().count() > 60), "{wide}");
        assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
        // Every column is still there, and each part starts with the keys.
        for h in &table.header {
            assert!(narrow.contains(h), "{h}: {narrow}");
        }
        let headers = narrow
            .lines()
            .filter(|l| l.contains("server  conns"))
            .count();
        assert!(headers >= 2, "{narrow}");
        assert_eq!(narrow.matches("tokio-uring+coop    100").count(), headers);
    }

    #[test]
    fn every_engine_and_io_wq_are_defined_once_beside_the_tables() {
        let records = vec![
            record("rand-read-direct", "std", 1, 1000),
            record("rand-read-direct", "io_uring+eager", 32, 9000),
            record("rand-read-direct", "io_uring+pairs", 32, 9000),
            record("rand-read-direct", "io_uring+triples", 32, 9000),
        ];
        let mut defined = Vec::new();
        let text = tables(&records)[0].to_text(88, &mut defined);
        for term in [
            "io_uring+eager: ",
            "io_uring+pairs: ",
            "io_uring+triples: ",
            "io-wq: ",
        ] {
            assert!(text.contains(term), "{term}: {text}");
        }
        // Once is enough: a later table does not say it again.
        let again = tables(&records)[0].to_text(88, &mut defined);
        assert!(
            !again.contains("io-wq: ") && !again.contains("+eager: "),
            "{again}"
        );
        // Every engine and server the benchmark runs has its words.
        let echo = uring_book::bench::echo::chapter6_servers().map(|s| s.name);
        let files = [
            "std",
            "threads",
            "io_uring",
            "io_uring+fixed",
            "io_uring+fixed-file",
            "io_uring+fixed-bufs",
            "io_uring+sqpoll",
            "io_uring+eager",
            "io_uring+pairs",
            "io_uring+triples",
            "fio-psync",
            "fio-io_uring",
        ];
        for name in echo.chain(files) {
            assert!(term(name).is_some(), "{name} has no term");
        }
    }

    #[test]
    fn seconds_read_as_they_were_given() {
        assert_eq!(secs(0.25), "0.25 s");
        assert_eq!(secs(1.0), "1 s");
        assert_eq!(secs(2.5), "2.5 s");
    }

    #[test]
    fn rates_keep_three_significant_digits() {
        let cases = [
            (633.1, "633"),
            (2171.0, "2.17k"),
            (45392.0, "45.4k"),
            (965154.0, "965k"),
            (999_700.0, "1.00M"),
            (1_048_301.0, "1.05M"),
            (12.34, "12"),
        ];
        for (v, text) in cases {
            assert_eq!(rate(v), text, "{v}");
        }
    }

    #[test]
    fn ratios_compare_with_std_and_with_fio_at_the_same_depth() {
        let records = vec![
            record("rand-read-direct", "std", 1, 1000),
            record("rand-read-direct", "io_uring", 32, 9000),
            record("rand-read-direct", "fio-io_uring", 32, 10000),
        ];
        let table = &tables(&records)[0];
        let uring = &table.rows[1];
        assert_eq!(uring[0], "io_uring");
        assert_eq!(uring[2], "9.00k");
        assert_eq!(table.header[9], "vs std");
        assert_eq!(uring[9], "9.00x");
        assert_eq!(uring[10], "0.90x"); // vs fio
        assert!(table.context[0].starts_with("Machine: "));
        assert!(table
            .context
            .iter()
            .any(|c| c.starts_with("One run per point")));
        let text = table.to_text(100, &mut Vec::new());
        assert!(text.contains("vs fio") && text.contains("9.00k"), "{text}");
    }

    #[test]
    fn cells_show_the_median_and_spread_and_ties_are_marked() {
        let mut records = Vec::new();
        for (repeat, (std_ops, uring_ops)) in [(1000, 990), (1100, 1050), (900, 1000)]
            .into_iter()
            .enumerate()
        {
            for (engine, ops) in [("std", std_ops), ("io_uring", uring_ops)] {
                let mut r = record("rand-read-cached", engine, 1, ops);
                r.repeat = repeat as u32;
                records.push(r);
            }
        }
        let table = &tables(&records)[0];
        // Median 1000, the farthest run 100 away: ±10 %.
        assert_eq!(table.rows[0][2], "1.00k ±10%");
        // The runs overlap: the ratio is marked a tie.
        assert_eq!(table.rows[1][9], "~1.00x");
        assert!(table
            .context
            .iter()
            .any(|c| c.starts_with("Each point ran 3 times")));
        assert!(
            !table.header.contains(&"vs fio"),
            "no fio rows, no fio column"
        );
    }

    #[test]
    fn every_anchor_is_in_the_summary_even_for_an_empty_run() {
        let md = summary_markdown(&[], "cmd");
        let names = WORKLOADS
            .iter()
            .map(|w| w.0)
            .chain(findings::FINDINGS.iter().map(|f| f.anchor))
            .chain(["glance"]);
        for name in names {
            assert!(md.contains(&format!("<!-- ANCHOR: {name} -->")), "{name}");
            assert!(
                md.contains(&format!("<!-- ANCHOR_END: {name} -->")),
                "{name}"
            );
        }
        assert!(md.contains("fio was not installed"));
    }

    #[test]
    fn the_echo_table_compares_messages_and_cpu_with_tokio() {
        let echo = |engine: &str, ops: u64, cpu_ms: u64| {
            let mut r = record("echo", engine, 10, ops);
            r.settings.block_size = 64;
            r.cpu_us_per_op = Some(cpu_ms as f64);
            r.server_cpu_share = Some(0.91);
            r
        };
        let records = vec![echo("tokio-uring+coop", 1200, 5), echo("tokio", 1000, 10)];
        let table = &tables(&records)[0];
        assert_eq!(table.header[7], "CPU share");
        assert_eq!(table.rows[0][7], "0.91");
        assert_eq!(table.rows[0][10], "1.20x");
        assert_eq!(table.rows[0][11], "0.50x");
    }
}
