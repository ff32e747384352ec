//! Tables of a run, for the terminal and as Markdown for the book. Each
//! table says what machine, file system and settings made it, and puts the
//! ratios to the baseline of the same run beside the numbers.

use std::fmt::Write as _;

use uring_book::bench::plot::human;
use uring_book::bench::record::Record;
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
pub struct Table {
    pub title: String,
    pub context: Vec<String>,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The record a row is compared with: std for files, tokio for echo (same
/// connections and message size).
fn baseline<'a>(records: &'a [Record], r: &Record) -> Option<&'a Record> {
    records.iter().find(|b| {
        b.workload == r.workload
            && if r.workload == "echo" {
                b.engine == "tokio"
                    && b.queue_depth == r.queue_depth
                    && b.settings.block_size == r.settings.block_size
            } else {
                b.engine == "std"
            }
    })
}

/// fio doing the same as a row, at the same depth: its psync engine for the
/// blocking engines (one thread, or a pool of them), its io_uring engine for
/// ours.
fn fio_peer<'a>(records: &'a [Record], r: &Record) -> Option<&'a Record> {
    let blocking = ["std", "threads", "fio-psync"].contains(&r.engine.as_str());
    let peer = if blocking {
        "fio-psync"
    } else {
        "fio-io_uring"
    };
    records.iter().find(|f| {
        f.workload == r.workload && f.engine == peer && f.queue_depth == r.queue_depth
    })
}

/// fio's CPU figures cover less than ours: see the note the tables print.
fn is_fio(r: &Record) -> bool {
    r.engine.starts_with("fio-")
}

pub fn tables(records: &[Record]) -> Vec<Table> {
    let mut tables = Vec::new();
    for &(workload, title) in WORKLOADS {
        let rows: Vec<&Record> =
            records.iter().filter(|r| r.workload == workload).collect();
        let Some(first) = rows.first() else { continue };
        let s = &first.settings;
        let mut context = vec![format!("Machine: {}", first.machine.describe())];
        if let Some(fs) = &s.file_system {
            context.push(format!("File system: {} ({})", fs.describe(), s.dir));
        }
        let size = human_bytes(Some(s.block_size));
        context.push(if workload == "echo" {
            format!(
                "Settings: {:.1} s per point, one message in flight per connection, \
                 server and client on CPUs of their own where there are two; server CPU \
                 time from /proc/PID/stat, over the client's whole run; server CPU share: \
                 that time over the run's wall time (1.00 is its CPU busy throughout)",
                s.seconds
            )
        } else if workload.starts_with("seq") {
            format!(
                "Settings: {} file, {size} per request, {} of them in flight for io_uring",
                human_bytes(Some(s.file_size)),
                rows.iter().map(|r| r.queue_depth).max().unwrap_or(1)
            )
        } else {
            format!(
                "Settings: {} file, {size} reads at random offsets, {:.1} s per point{}",
                human_bytes(Some(s.file_size)),
                s.seconds,
                if s.o_direct { ", O_DIRECT" } else { "" }
            )
        });
        let echo = workload == "echo";
        if rows.iter().any(|r| is_fio(r)) {
            context.push(
                "vs std: ops/s over std's; vs fio: ops/s over fio's at the same depth, \
                 fio's psync engine for std and threads, its io_uring engine for io_uring"
                    .into(),
            );
            context.push(
                "CPU marked * is fio's own figure, of its job thread only (getrusage \
                 RUSAGE_THREAD): it leaves out io-wq and SQPOLL threads, which ours \
                 (RUSAGE_SELF, the whole process) counts"
                    .into(),
            );
        }
        let header = if echo {
            vec![
                "server",
                "conns",
                "msg",
                "msgs/s",
                "MB/s",
                "p50 us",
                "p99 us",
                "server CPU us/msg",
                "server CPU share",
                "server syscalls/msg",
                "server switches/msg",
                "vs tokio",
            ]
        } else {
            vec![
                "engine",
                "depth",
                "ops/s",
                "MB/s",
                "p50 us",
                "p99 us",
                "CPU us/op",
                "syscalls/op",
                "switches/op",
                "io-wq",
                "vs std",
                "vs fio",
            ]
        };
        let rows = rows
            .iter()
            .map(|r| {
                let base = baseline(records, r).map(|b| b.ops_per_s);
                let mut row = vec![r.engine.clone(), r.queue_depth.to_string()];
                if echo {
                    row.push(human_bytes(Some(r.settings.block_size)));
                }
                row.push(format!("{:.0}", r.ops_per_s));
                row.push(format!("{:.1}", r.mb_per_s));
                row.push(opt(r.p50_us, 1));
                row.push(opt(r.p99_us, 1));
                let star = if is_fio(r) && r.cpu_us_per_op.is_some() {
                    "*"
                } else {
                    ""
                };
                row.push(opt(r.cpu_us_per_op, 2) + star);
                if echo {
                    row.push(opt(r.server_cpu_share, 2));
                    row.push(opt(r.syscalls_per_op, 2));
                    row.push(opt(r.ctx_switches_per_op, 3));
                    row.push(ratio(r.ops_per_s, base));
                } else {
                    row.push(opt(r.syscalls_per_op, 2));
                    row.push(opt(r.ctx_switches_per_op, 3));
                    row.push(r.io_wq_workers.map_or("-".into(), |n| n.to_string()));
                    row.push(ratio(r.ops_per_s, base));
                    row.push(ratio(
                        r.ops_per_s,
                        fio_peer(records, r).map(|f| f.ops_per_s),
                    ));
                }
                row
            })
            .collect();
        tables.push(Table {
            title: title.to_string(),
            context,
            header,
            rows,
        });
    }
    tables
}

impl Table {
    /// Aligned columns for a terminal.
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = format!("{}\n", self.title);
        for c in &self.context {
            out += &format!("  {c}\n");
        }
        out += &line(self.header.clone());
        for row in &self.rows {
            out += &line(row.iter().map(String::as_str).collect());
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

fn find<'a>(
    records: &'a [Record],
    workload: &str,
    engine: &str,
    depth: u32,
) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.workload == workload && r.engine == engine && r.queue_depth == depth)
}

/// Sentences the chapter quotes, each made from the records of the run.
pub fn findings(records: &[Record]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let iops = |r: &Record| human(r.ops_per_s);
    let cpu = |r: &Record| opt(r.cpu_us_per_op, 2);
    let d = "rand-read-direct";
    if let (Some(s), Some(u1)) =
        (find(records, d, "std", 1), find(records, d, "io_uring", 1))
    {
        out.push((
            "direct-depth1",
            format!(
                "With one read in flight, std `pread` did {} IOPS (p50 {} µs) and io_uring {} \
                 (p50 {} µs): the device sets the pace, not the interface.",
                iops(s),
                opt(s.p50_us, 0),
                iops(u1),
                opt(u1.p50_us, 0)
            ),
        ));
    }
    let best = records
        .iter()
        .filter(|r| r.workload == d && r.engine == "io_uring")
        .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    if let (Some(s), Some(b)) = (find(records, d, "std", 1), best) {
        out.push((
            "direct-best",
            format!(
                "io_uring peaked at {} IOPS at depth {}, {:.1} times std `pread`, from one \
                 thread, at {} µs of CPU per read.",
                iops(b),
                b.queue_depth,
                b.ops_per_s / s.ops_per_s,
                cpu(b)
            ),
        ));
    }
    if let Some(knee) = knee(records, d) {
        out.push(("direct-knee", knee));
    }
    let pool = records
        .iter()
        .filter(|r| r.workload == d && r.engine == "threads")
        .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    if let (Some(p), Some(u)) = (
        pool,
        pool.and_then(|p| find(records, d, "io_uring", p.queue_depth)),
    ) {
        out.push((
            "direct-pool",
            format!(
                "The best thread pool, {} threads, did {} IOPS at {} µs of CPU per read; \
                 io_uring at the same depth did {} IOPS at {} µs.",
                p.queue_depth,
                iops(p),
                cpu(p),
                iops(u),
                cpu(u)
            ),
        ));
    }
    let fio: Vec<String> =
        records
            .iter()
            .filter(|f| f.workload == d && f.engine == "fio-io_uring")
            .filter_map(|f| {
                let ours = find(records, d, "io_uring", f.queue_depth)?;
                let pct = |r: &Record| 100.0 * r.ops_per_s / f.ops_per_s;
                let eager = find(records, d, "io_uring+eager", f.queue_depth)
                    .map_or_else(String::new, |e| {
                        format!(
                            ", submitting each read at once {} ({:.0} %)",
                            iops(e),
                            pct(e)
                        )
                    });
                let pairs = find(records, d, "io_uring+pairs", f.queue_depth)
                    .map_or_else(String::new, |p| {
                        format!(", two at a time {} ({:.0} %)", iops(p), pct(p))
                    });
                // fio's CPU figure is of its job thread only: starred as in the tables.
                let cpu_of = |r: &Record| {
                    let what = if is_fio(r) { "* of CPU per read" } else { "" };
                    r.cpu_us_per_op
                        .map(|c| format!(" at {c:.2} µs{what}"))
                        .unwrap_or_default()
                };
                Some(format!(
                    "at depth {} fio did {} IOPS{}, ours {} ({:.0} %){}{eager}{pairs}",
                    f.queue_depth,
                    iops(f),
                    cpu_of(f),
                    iops(ours),
                    pct(ours),
                    cpu_of(ours),
                ))
            })
            .collect();
    if !fio.is_empty() {
        out.push((
            "direct-fio",
            format!(
                "Against fio's io_uring engine in the same run: {}.",
                fio.join("; ")
            ),
        ));
    }
    let eager: Vec<String> =
        records
            .iter()
            .filter(|e| e.workload == d && e.engine == "io_uring+eager")
            .filter_map(|e| {
                let b = find(records, d, "io_uring", e.queue_depth)?;
                let pairs = find(records, d, "io_uring+pairs", e.queue_depth)
                    .map_or_else(String::new, |p| {
                        format!(
                            " (two at a time: {} IOPS with {})",
                            iops(p),
                            opt(p.syscalls_per_op, 2)
                        )
                    });
                Some(format!(
                "at depth {}, {} IOPS with {} system calls per read against {} IOPS with \
                 {}{pairs}",
                e.queue_depth,
                iops(e),
                opt(e.syscalls_per_op, 2),
                iops(b),
                opt(b.syscalls_per_op, 2)
            ))
            })
            .collect();
    if !eager.is_empty() {
        out.push((
            "direct-eager",
            format!(
                "Submitting each read at once against a round at a time: {}.",
                eager.join("; ")
            ),
        ));
    }
    let fio_cmd = records
        .iter()
        .filter(|f| f.workload == d && f.engine == "fio-io_uring")
        .max_by_key(|f| (f.queue_depth <= 32, f.queue_depth))
        .and_then(|f| f.settings.command.clone());
    if let Some(cmd) = fio_cmd {
        // Printed inside a ```text block by the chapter: one option a line.
        out.push(("fio-command", cmd.replace(" --", " \\\n    --")));
    }
    if let (Some(u), Some(q)) = (
        find(records, d, "io_uring", 32),
        find(records, d, "io_uring+sqpoll", 32),
    ) {
        out.push((
            "direct-sqpoll",
            format!(
                "At depth 32, SQPOLL did {} IOPS at {} µs of CPU per read and {} syscalls per \
                 read; plain io_uring did {} IOPS at {} µs and {} syscalls per read.",
                iops(q),
                cpu(q),
                opt(q.syscalls_per_op, 3),
                iops(u),
                cpu(u),
                opt(u.syscalls_per_op, 3)
            ),
        ));
    }
    let c = "rand-read-cached";
    if let (Some(s), Some(u), Some(f)) = (
        find(records, c, "std", 1),
        find(records, c, "io_uring", 1),
        find(records, c, "io_uring+fixed", 1),
    ) {
        out.push((
            "cached-depth1",
            format!(
                "From the page cache at depth 1, std `pread` did {} IOPS at {} µs of CPU per \
                 read, io_uring {} at {} µs, io_uring with registered buffers and file {} at \
                 {} µs.",
                iops(s),
                cpu(s),
                iops(u),
                cpu(u),
                iops(f),
                cpu(f)
            ),
        ));
    }
    let best = records
        .iter()
        .filter(|r| r.workload == c && r.engine.starts_with("io_uring"))
        .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    if let (Some(s), Some(b)) = (find(records, c, "std", 1), best) {
        out.push((
            "cached-best",
            format!(
                "The best io_uring figure was {} IOPS ({}, depth {}, {} syscalls per read), \
                 {:.2} times std.",
                iops(b),
                b.engine,
                b.queue_depth,
                opt(b.syscalls_per_op, 3),
                b.ops_per_s / s.ops_per_s
            ),
        ));
    }
    let t = "rand-read-tmpfs";
    let nowait = |r: &Record| match r.settings.nowait_reads {
        Some(true) => "works",
        Some(false) => "fails with EOPNOTSUPP",
        None => "was not tried",
    };
    if let (Some(s), Some(u)) =
        (find(records, t, "std", 1), find(records, t, "io_uring", 1))
    {
        out.push((
            "tmpfs",
            format!(
                "On tmpfs at depth 1, std `pread` did {} IOPS and io_uring {}, with {} io-wq \
                 worker thread(s) started for the run ({} µs of CPU per read against {}). \
                 preadv2 with RWF_NOWAIT {} on the tmpfs file{}.",
                iops(s),
                iops(u),
                u.io_wq_workers.unwrap_or(0),
                cpu(u),
                cpu(s),
                nowait(s),
                find(records, c, "std", 1)
                    .map(|d| format!(" and {} on the disk file", nowait(d)))
                    .unwrap_or_default()
            ),
        ));
    }
    for conns in [100u32, 1000] {
        let at = |engine: &str| {
            records.iter().find(|r| {
                r.workload == "echo"
                    && r.engine == engine
                    && r.queue_depth == conns
                    && r.settings.block_size == 64
            })
        };
        if at("tokio-uring").is_none() || at("tokio").is_none() {
            continue;
        }
        let parts: Vec<String> =
            ["tokio-uring", "tokio-uring+coop", "tokio", "std-threads"]
                .iter()
                .filter_map(|&e| {
                    let r = at(e)?;
                    Some(format!(
                "{e} {} msgs/s at {} µs of server CPU, {} system calls and {} context \
                     switches per message",
                iops(r),
                cpu(r),
                opt(r.syscalls_per_op, 2),
                opt(r.ctx_switches_per_op, 3)
            ))
                })
                .collect();
        let text = format!(
            "At {conns} connections with 64 B messages: {}.",
            parts.join("; ")
        );
        out.push((
            if conns == 100 {
                "echo-100"
            } else {
                "echo-1000"
            },
            text,
        ));
    }
    if let Some(share) = echo_share(records) {
        out.push(("echo-share", share));
    }
    if let Some(calls) = echo_syscalls(records) {
        out.push(("echo-syscalls", calls));
    }
    let versus = |engine: &str| -> Option<String> {
        let pairs: Vec<(&Record, &Record)> = records
            .iter()
            .filter(|u| u.workload == "echo" && u.engine == engine)
            .filter_map(|u| {
                let t = records.iter().find(|t| {
                    t.workload == "echo"
                        && t.engine == "tokio"
                        && t.queue_depth == u.queue_depth
                        && t.settings.block_size == u.settings.block_size
                })?;
                Some((u, t))
            })
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let cheaper = pairs
            .iter()
            .filter(|(u, t)| {
                u.cpu_us_per_op.unwrap_or(f64::MAX) <= t.cpu_us_per_op.unwrap_or(0.0)
            })
            .count();
        let faster = pairs
            .iter()
            .filter(|(u, t)| u.ops_per_s >= t.ops_per_s)
            .count();
        Some(format!(
            "{engine} used no more server CPU per message than tokio at {cheaper} of {} loads \
             and echoed at least as many messages per second at {faster}",
            pairs.len()
        ))
    };
    let why: Vec<String> = ["tokio-uring", "tokio-uring+coop"]
        .iter()
        .filter_map(|e| versus(e))
        .collect();
    if !why.is_empty() {
        out.push((
            "echo-why",
            format!("Over the whole sweep, {}.", why.join("; ")),
        ));
    }
    if let Some(goal) = echo_goal(records) {
        out.push(("echo-goal", goal));
    }
    let profiled: Vec<&Record> =
        ["tokio-uring", "tokio-uring+coop", "tokio", "std-threads"]
            .iter()
            .filter_map(|&e| {
                records.iter().find(|r| {
                    r.workload == "echo" && r.engine == e && r.hottest.is_some()
                })
            })
            .collect();
    if let Some(first) = profiled.first() {
        let mut names: Vec<&str> = Vec::new();
        for r in &profiled {
            for (name, _) in r.hottest.as_deref().unwrap_or_default().iter().take(5) {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        // The functions the chapter discusses get a row wherever a server has them.
        for &name in PROFILE_WATCHED {
            let seen = profiled.iter().any(|r| {
                r.hottest
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|(n, _)| n == name)
            });
            if seen && !names.contains(&name) {
                names.push(name);
            }
        }
        let kept = profiled
            .iter()
            .map(|r| r.hottest.as_deref().unwrap_or_default().len())
            .min()
            .unwrap_or(0);
        let mut table = format!(
            "Share of the server's CPU samples (`perf record`) at {} connections, {} messages:\n\n\
             | function | {} |\n|:---|{}\n",
            first.queue_depth,
            human_bytes(Some(first.settings.block_size)),
            profiled.iter().map(|r| r.engine.as_str()).collect::<Vec<_>>().join(" | "),
            "---:|".repeat(profiled.len())
        );
        for name in names {
            let cells: Vec<String> = profiled
                .iter()
                .map(|r| {
                    let hot = r.hottest.as_deref().unwrap_or_default();
                    hot.iter()
                        .find(|(n, _)| n == name)
                        .map_or("-".into(), |(_, p)| format!("{p:.1} %"))
                })
                .collect();
            table += &format!("| `{name}` | {} |\n", cells.join(" | "));
        }
        table += &format!(
            "\nEach server's five hottest functions, and the rows the chapter discusses; \
             `-`: not among the {kept} hottest functions the run kept for that server.\n"
        );
        out.push(("echo-profile", table));
        if let Some(text) = profile_watched(&profiled) {
            out.push(("echo-profile-watched", text));
        }
    }
    out
}

/// Functions of the echo servers' profile that the chapter discusses: the
/// return to user space from an interrupt, where task_work signalled with an
/// IPI runs, and the slow path of a contended spin lock in a virtual machine.
const PROFILE_WATCHED: &[&str] = &[
    "irqentry_exit_to_user_mode",
    "__pv_queued_spin_lock_slowpath",
];

/// One sentence per watched function: its share of samples in each profiled
/// server, or that it was not among the functions the run kept.
fn profile_watched(profiled: &[&Record]) -> Option<String> {
    let sentences: Vec<String> = PROFILE_WATCHED
        .iter()
        .map(|&name| {
            let (with, without): (Vec<&&Record>, Vec<&&Record>) =
                profiled.iter().partition(|r| {
                    r.hottest
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .any(|(n, _)| n == name)
                });
            let shares: Vec<String> = with
                .iter()
                .map(|r| {
                    let hot = r.hottest.as_deref().unwrap_or_default();
                    let p = hot.iter().find(|(n, _)| n == name).map_or(0.0, |(_, p)| *p);
                    format!("{p:.1} % of {}'s samples", r.engine)
                })
                .collect();
            let absent: Vec<&str> = without.iter().map(|r| r.engine.as_str()).collect();
            let mut parts = Vec::new();
            if !shares.is_empty() {
                parts.push(format!("took {}", shares.join(", ")));
            }
            if !absent.is_empty() {
                parts.push(format!(
                    "was not among the hottest functions of {}",
                    absent.join(", ")
                ));
            }
            format!("`{name}` {}", parts.join(" and "))
        })
        .collect();
    (!profiled.is_empty())
        .then(|| format!("In this run's profile, {}.", sentences.join("; ")))
}

/// Where more depth stops paying: the smallest depth at which plain io_uring
/// reached 90 % of its best IOPS, and what the latency did from there on.
fn knee(records: &[Record], workload: &str) -> Option<String> {
    let mut plain: Vec<&Record> = records
        .iter()
        .filter(|r| r.workload == workload && r.engine == "io_uring")
        .collect();
    plain.sort_by_key(|r| r.queue_depth);
    let best = plain
        .iter()
        .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s))?;
    let first = plain.iter().find(|r| r.ops_per_s >= 0.9 * best.ops_per_s)?;
    let p50 = |r: &Record| opt(r.p50_us, 0);
    if first.queue_depth == best.queue_depth {
        return Some(format!(
            "Plain io_uring reached 90 % of its best IOPS only at depth {}, its best \
             ({} IOPS, p50 {} µs): within the depths measured, more depth kept paying.",
            best.queue_depth,
            human(best.ops_per_s),
            p50(best)
        ));
    }
    Some(format!(
        "Plain io_uring reached 90 % of its best IOPS at depth {} ({} IOPS, p50 {} µs); \
         its best, {} IOPS at depth {}, cost a p50 of {} µs.",
        first.queue_depth,
        human(first.ops_per_s),
        p50(first),
        human(best.ops_per_s),
        best.queue_depth,
        p50(best)
    ))
}

/// Echo records at one load (connections, message size).
fn echo_at<'a>(
    records: &'a [Record],
    engine: &str,
    load: (u32, u64),
) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.workload == "echo"
            && r.engine == engine
            && (r.queue_depth, r.settings.block_size) == load
    })
}

/// "1 conn 64 B"-style names of loads, for lists of exceptions.
fn load_name((conns, size): (u32, u64)) -> String {
    let size = human_bytes(Some(size)).replace(" bytes", " B");
    format!("{conns} conn. {size}")
}

/// The chapter's target: at 100 and 1000 connections, a tokio-uring server
/// uses no more server CPU per message than tokio and echoes at least as many
/// messages per second. Names each load where an engine falls short, and how.
fn echo_goal(records: &[Record]) -> Option<String> {
    let mut loads: Vec<(u32, u64)> = records
        .iter()
        .filter(|r| r.workload == "echo" && matches!(r.queue_depth, 100 | 1000))
        .map(|r| (r.queue_depth, r.settings.block_size))
        .collect();
    loads.sort_unstable_by_key(|&(c, s)| (s, c));
    loads.dedup();
    let mut parts = Vec::new();
    for engine in ["tokio-uring", "tokio-uring+coop"] {
        let mut compared = 0;
        let mut short = Vec::new();
        for &load in &loads {
            let (Some(u), Some(t)) = (
                echo_at(records, engine, load),
                echo_at(records, "tokio", load),
            ) else {
                continue;
            };
            compared += 1;
            let more_cpu =
                u.cpu_us_per_op.unwrap_or(f64::MAX) > t.cpu_us_per_op.unwrap_or(0.0);
            let slower = u.ops_per_s < t.ops_per_s;
            let how = match (more_cpu, slower) {
                (true, true) => "more CPU per message and fewer messages per second",
                (true, false) => "more CPU per message",
                (false, true) => "fewer messages per second",
                (false, false) => continue,
            };
            short.push(format!("{} ({how})", load_name(load)));
        }
        if compared == 0 {
            continue;
        }
        parts.push(if short.is_empty() {
            format!("{engine} met it at all {compared} loads")
        } else {
            format!(
                "{engine} fell short at {} of {compared}: {}",
                short.len(),
                short.join(", ")
            )
        });
    }
    (!parts.is_empty()).then(|| {
        format!(
            "Against the target (at 100 and 1000 connections, no more server CPU per \
             message than tokio and at least as many messages per second): {}.",
            parts.join("; ")
        )
    })
}

/// How busy the servers' CPUs were from 10 connections on.
fn echo_share(records: &[Record]) -> Option<String> {
    let shares: Vec<f64> = records
        .iter()
        .filter(|r| r.workload == "echo" && r.queue_depth >= 10)
        .filter_map(|r| r.server_cpu_share)
        .collect();
    let min = shares.iter().copied().reduce(f64::min)?;
    let max = shares.iter().copied().reduce(f64::max)?;
    let verdict = if min >= 0.85 {
        "every server was close to the limit of its own core, so at these loads \
         messages per second say how fast server and client were together, and the \
         server's CPU per message is the figure that is the server's alone"
    } else {
        "some servers had CPU time to spare, so at those loads the client, or the \
         exchange between the two, set the pace for them"
    };
    Some(format!(
        "From 10 connections on, the servers kept their CPU busy between {:.0} % and \
         {:.0} % of the time (server CPU share): {verdict}.",
        100.0 * min,
        100.0 * max
    ))
}

/// Where tokio-uring made fewer system calls per message than tokio, and
/// what COOP_TASKRUN did to the count.
fn echo_syscalls(records: &[Record]) -> Option<String> {
    let mut loads: Vec<(u32, u64)> = records
        .iter()
        .filter(|r| r.workload == "echo" && r.syscalls_per_op.is_some())
        .map(|r| (r.queue_depth, r.settings.block_size))
        .collect();
    loads.sort_unstable_by_key(|&(c, s)| (s, c));
    loads.dedup();
    let calls = |engine: &str, load| echo_at(records, engine, load)?.syscalls_per_op;
    // Loads where `a` made fewer calls per message than `b`, and those where not.
    let compare = |a: &str, b: &str| {
        let (mut fewer, mut not) = (Vec::new(), Vec::new());
        for &load in &loads {
            if let (Some(x), Some(y)) = (calls(a, load), calls(b, load)) {
                if x < y { &mut fewer } else { &mut not }.push(load_name(load));
            }
        }
        (fewer, not)
    };
    let phrase = |(fewer, not): (Vec<String>, Vec<String>), a: &str, b: &str| {
        let total = fewer.len() + not.len();
        let except = if not.is_empty() || fewer.is_empty() {
            String::new()
        } else {
            format!(" (not at {})", not.join(", "))
        };
        format!(
            "{a} made fewer than {b} at {} of {total} loads{except}",
            fewer.len()
        )
    };
    let plain = compare("tokio-uring", "tokio");
    if plain.0.len() + plain.1.len() == 0 {
        return None;
    }
    let mut parts = vec![phrase(plain, "tokio-uring", "tokio")];
    let coop = compare("tokio-uring+coop", "tokio");
    if coop.0.len() + coop.1.len() > 0 {
        parts.push(phrase(coop, "tokio-uring+coop", "tokio"));
        parts.push(phrase(
            compare("tokio-uring+coop", "tokio-uring"),
            "tokio-uring+coop",
            "plain tokio-uring",
        ));
    }
    Some(format!("System calls per message: {}.", parts.join("; ")))
}

/// Every finding the chapter includes, with what it says when the run has
/// no records for it: a chapter must build from any run.
pub const FINDINGS: &[(&str, &str)] = &[
    (
        "direct-depth1",
        "This run has no O_DIRECT reads at depth 1.",
    ),
    (
        "direct-best",
        "This run has no O_DIRECT reads with io_uring.",
    ),
    (
        "direct-knee",
        "This run has no O_DIRECT reads with io_uring.",
    ),
    (
        "direct-pool",
        "This run has no O_DIRECT reads by a pool of threads.",
    ),
    (
        "direct-eager",
        "This run has no O_DIRECT reads submitted one at a time.",
    ),
    (
        "direct-fio",
        "fio was not installed for this run, so there is no comparison.",
    ),
    ("fio-command", "(fio was not installed for this run)"),
    ("direct-sqpoll", "This run has no SQPOLL point at depth 32."),
    (
        "cached-depth1",
        "This run has no page-cache reads at depth 1.",
    ),
    (
        "cached-best",
        "This run has no page-cache reads with io_uring.",
    ),
    ("tmpfs", "This run has no tmpfs reads."),
    ("echo-100", "This run has no echo point at 100 connections."),
    (
        "echo-1000",
        "This run has no echo point at 1000 connections.",
    ),
    (
        "echo-share",
        "This run has no server CPU share (it was made before the benchmark measured it).",
    ),
    (
        "echo-syscalls",
        "This run has no count of the echo servers' system calls.",
    ),
    (
        "echo-why",
        "This run has no echo points for both tokio-uring and tokio.",
    ),
    (
        "echo-goal",
        "This run has no echo points at 100 or 1000 connections for both servers.",
    ),
    (
        "echo-profile",
        "This run has no profile of the echo servers (perf was not available).",
    ),
    (
        "echo-profile-watched",
        "This run has no profile of the echo servers, so nothing to say about the \
         functions below.",
    ),
];

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
    let found = findings(records);
    for &(name, missing) in FINDINGS {
        let text = found
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(missing, |(_, t)| t.as_str());
        let _ = writeln!(
            out,
            "\n<!-- ANCHOR: {name} -->\n{text}\n<!-- ANCHOR_END: {name} -->"
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
        Record::new(
            workload,
            engine,
            depth,
            m,
            Settings {
                block_size: 4096,
                ..Settings::default()
            },
        )
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
        assert_eq!(uring[10], "9.00x"); // vs std
        assert_eq!(uring[11], "0.90x"); // vs fio
        assert!(table.context[0].starts_with("Machine: "));
        let text = table.to_text();
        assert!(text.contains("vs fio") && text.contains("9000"), "{text}");
    }

    #[test]
    fn every_anchor_is_in_the_summary_even_for_an_empty_run() {
        let md = summary_markdown(&[], "cmd");
        for (name, _) in WORKLOADS.iter().chain(FINDINGS) {
            assert!(md.contains(&format!("<!-- ANCHOR: {name} -->")), "{name}");
            assert!(
                md.contains(&format!("<!-- ANCHOR_END: {name} -->")),
                "{name}"
            );
        }
        assert!(md.contains("fio was not installed"));
    }

    #[test]
    fn the_profile_keeps_the_discussed_functions_beyond_the_top_five() {
        let hot = |names: &[(&str, f64)]| {
            Some(
                names
                    .iter()
                    .map(|&(n, p)| (n.to_string(), p))
                    .collect::<Vec<_>>(),
            )
        };
        let mut plain = record("echo", "tokio-uring", 100, 1000);
        plain.hottest = hot(&[
            ("a", 9.0),
            ("b", 8.0),
            ("c", 7.0),
            ("d", 6.0),
            ("e", 5.0),
            ("__pv_queued_spin_lock_slowpath", 2.2),
        ]);
        let mut coop = record("echo", "tokio-uring+coop", 100, 1000);
        coop.hottest = hot(&[("a", 9.0), ("irqentry_exit_to_user_mode", 1.0)]);
        let md = summary_markdown(&[plain, coop], "cmd");
        assert!(
            md.contains("| `__pv_queued_spin_lock_slowpath` | 2.2 % | - |"),
            "{md}"
        );
        assert!(md.contains("not among the 2 hottest"), "{md}");
        assert!(
            md.contains(
                "`__pv_queued_spin_lock_slowpath` took 2.2 % of tokio-uring's samples \
                 and was not among the hottest functions of tokio-uring+coop"
            ),
            "{md}"
        );
        assert!(!md.contains("This run has no profile"), "{md}");
    }

    #[test]
    fn the_knee_is_the_first_depth_within_90_percent_of_the_best() {
        let mut records = vec![
            record("rand-read-direct", "io_uring", 1, 10000),
            record("rand-read-direct", "io_uring", 16, 91000),
            record("rand-read-direct", "io_uring", 32, 100000),
        ];
        let text = knee(&records, "rand-read-direct").unwrap();
        assert!(text.contains("at depth 16 (91k IOPS"), "{text}");
        assert!(text.contains("100k IOPS at depth 32"), "{text}");
        records[1].ops_per_s = 80000.0;
        let text = knee(&records, "rand-read-direct").unwrap();
        assert!(text.contains("only at depth 32"), "{text}");
    }

    #[test]
    fn echo_goal_names_each_load_that_falls_short() {
        let echo = |engine: &str, conns: u32, ops: u64, cpu: f64| {
            let mut r = record("echo", engine, conns, ops);
            r.settings.block_size = 64;
            r.cpu_us_per_op = Some(cpu);
            r
        };
        let records = vec![
            echo("tokio", 100, 1000, 6.0),
            echo("tokio-uring", 100, 900, 7.0),
            echo("tokio-uring+coop", 100, 1100, 5.0),
            echo("tokio", 1000, 1000, 6.0),
            echo("tokio-uring", 1000, 1000, 5.0),
            echo("tokio-uring+coop", 1000, 1200, 5.5),
            // Loads outside the target do not count.
            echo("tokio", 1, 1000, 1.0),
            echo("tokio-uring+coop", 1, 10, 9.0),
        ];
        let goal = echo_goal(&records).unwrap();
        assert!(
            goal.contains(
                "tokio-uring fell short at 1 of 2: 100 conn. 64 B (more CPU per message \
                 and fewer messages per second)"
            ),
            "{goal}"
        );
        assert!(
            goal.contains("tokio-uring+coop met it at all 2 loads"),
            "{goal}"
        );
    }

    #[test]
    fn echo_syscalls_name_the_loads_where_the_claim_fails() {
        let echo = |engine: &str, conns: u32, calls: f64| {
            let mut r = record("echo", engine, conns, 1000);
            r.settings.block_size = 64;
            r.syscalls_per_op = Some(calls);
            r
        };
        let records = vec![
            echo("tokio-uring", 1, 6.0),
            echo("tokio", 1, 3.0),
            echo("tokio-uring", 100, 0.3),
            echo("tokio", 100, 2.4),
        ];
        let text = echo_syscalls(&records).unwrap();
        assert_eq!(
            text,
            "System calls per message: tokio-uring made fewer than tokio at 1 of 2 loads \
             (not at 1 conn. 64 B)."
        );
    }

    #[test]
    fn server_cpu_share_is_a_column_and_a_finding_from_10_connections_on() {
        let echo = |conns: u32, share: f64| {
            let mut r = record("echo", "tokio", conns, 1000);
            r.settings.block_size = 64;
            r.server_cpu_share = Some(share);
            r
        };
        let records = vec![echo(1, 0.3), echo(10, 0.91), echo(100, 0.98)];
        let table = &tables(&records)[0];
        assert_eq!(table.header[8], "server CPU share");
        assert_eq!(table.rows[1][8], "0.91");
        let text = echo_share(&records).unwrap();
        assert!(text.contains("between 91 % and 98 %"), "{text}");
        assert!(
            text.contains("close to the limit of its own core"),
            "{text}"
        );
    }

    #[test]
    fn findings_quote_the_records() {
        let records = vec![
            record("rand-read-direct", "std", 1, 11000),
            record("rand-read-direct", "io_uring", 1, 12000),
            record("rand-read-direct", "io_uring", 32, 120000),
            record("rand-read-direct", "fio-io_uring", 32, 126000),
            record("rand-read-direct", "io_uring+eager", 32, 132300),
            record("rand-read-direct", "io_uring+pairs", 32, 128000),
        ];
        let found = findings(&records);
        let fio = &found.iter().find(|(n, _)| *n == "direct-fio").unwrap().1;
        assert!(
            fio.contains(
                "at depth 32 fio did 126k IOPS, ours 120k (95 %), submitting each read at \
                 once 132.3k (105 %)"
            ),
            "{fio}"
        );
        assert!(fio.contains("(105 %), two at a time 128k (102 %)"), "{fio}");
        let eager = &found.iter().find(|(n, _)| *n == "direct-eager").unwrap().1;
        assert!(
            eager.contains("(two at a time: 128k IOPS with -)"),
            "{eager}"
        );
        let best = &found.iter().find(|(n, _)| *n == "direct-best").unwrap().1;
        assert!(best.contains("120k IOPS at depth 32, 10.9 times"), "{best}");
    }
}
