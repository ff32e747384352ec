//! Chapter 8's measurements, run by `uring-book 6 --workloads multishot`:
//!
//! - exercise 8 against tokio and tokio-uring with COOP_TASKRUN, and against
//!   itself with each design choice undone, at 100 and 1000 connections of
//!   64-byte messages, server and client pinned to a CPU each, in
//!   interleaved rounds;
//! - system calls and context switches per message (`perf stat`);
//! - where the servers' CPU time goes (`perf record`, [`cpu_breakdown`]);
//! - resident memory with 10,000 idle connections ([`idle_memory`]);
//! - two threads against tokio's multi-thread runtime with two workers.
//!
//! Everything goes into one JSON file; `multishot_report` turns it into the
//! tables and sentences the chapter includes.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use uring_book::bench::cpu_breakdown::{self, Breakdown};
use uring_book::bench::echo::{self, Load, ServerProcess};
use uring_book::bench::idle_memory::{self, IdleMemory};
use uring_book::bench::interleaved::round_order;
use uring_book::bench::machine::Machine;
use uring_book::bench::multishot_servers::{MULTISHOT, TOKIO_2};
use uring_book::bench::record::Record;
use uring_book::echo::multishot::{Config, TaskRun};

/// What to run, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub seconds: f64,
    pub rounds: usize,
    /// (connections, message size) of the pinned comparison.
    pub loads: Vec<(usize, usize)>,
    pub idle_conns: u32,
    /// The load of the profile.
    pub profiled: (usize, usize),
}

impl Options {
    /// The chapter's run: about six minutes on two cores.
    pub fn full(seconds: f64) -> Options {
        Options {
            seconds,
            rounds: 5,
            loads: vec![(100, 64), (1000, 64)],
            idle_conns: 10_000,
            profiled: (100, 64),
        }
    }

    /// A small run for tests and `--quick`: under a minute.
    pub fn quick() -> Options {
        Options {
            seconds: 0.25,
            rounds: 3,
            loads: vec![(10, 64)],
            idle_conns: 200,
            profiled: (10, 64),
        }
    }
}

/// One run of one server, and the round it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub round: usize,
    pub record: Record,
}

/// Everything chapter 8 quotes, from one run of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter8Run {
    pub machine: Machine,
    pub options: Options,
    pub command: String,
    /// /proc/loadavg when the run started and when it ended: how busy the
    /// machine was besides us.
    pub load_before: String,
    pub load_after: String,
    /// Each server pinned to its CPU and the client to the other.
    pub pinned: Vec<Run>,
    /// The same servers under `perf stat`, once per load.
    pub counted: Vec<Record>,
    pub breakdown: Vec<Breakdown>,
    pub idle: Vec<IdleMemory>,
    /// Nothing pinned: one and two threads.
    pub threads: Vec<Run>,
    pub notes: Vec<String>,
}

/// A design choice of exercise 8 and the server that undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The choice made one way, and the other.
    pub on: &'static str,
    pub off: &'static str,
    /// Exercise 8 with this choice made the other way.
    pub other: &'static str,
    /// Whether exercise 8 ships with the choice `on`.
    pub shipped: bool,
}

impl Choice {
    /// What exercise 8 ships, and what the other server does instead.
    pub fn shipped_and_other(&self) -> (&'static str, &'static str) {
        if self.shipped {
            (self.on, self.off)
        } else {
            (self.off, self.on)
        }
    }
}

/// The choices the chapter measures, each against the way it ships.
pub fn choices() -> Vec<Choice> {
    let shipped = Config::default();
    let pick = |on: bool, yes: &'static str, no: &'static str| if on { no } else { yes };
    vec![
        Choice {
            on: "IORING_SETUP_DEFER_TASKRUN",
            off: "IORING_SETUP_COOP_TASKRUN",
            other: "uring-multishot+coop",
            shipped: shipped.taskrun == TaskRun::Defer,
        },
        Choice {
            on: "a registered ring descriptor",
            off: "the ring's plain descriptor",
            other: pick(
                shipped.register_ring,
                "uring-multishot+regring",
                "uring-multishot+noregring",
            ),
            shipped: shipped.register_ring,
        },
        Choice {
            on: "direct descriptors",
            off: "sockets in the file table",
            other: pick(
                shipped.direct,
                "uring-multishot+direct",
                "uring-multishot+nodirect",
            ),
            shipped: shipped.direct,
        },
    ]
}

/// The servers of the pinned comparison, in the order the tables show them.
pub fn pinned_servers() -> Vec<&'static str> {
    let mut servers = vec!["tokio", "tokio-uring+coop", MULTISHOT];
    servers.extend(choices().iter().map(|c| c.other));
    servers
}

/// The servers whose CPU time the chapter breaks down.
pub const PROFILED: [&str; 3] = ["tokio", "tokio-uring", MULTISHOT];
/// The servers of the idle-memory comparison.
pub const IDLE: [&str; 3] = ["tokio", "tokio-uring", MULTISHOT];
/// One and two threads of each.
pub const THREADS: [&str; 4] = ["tokio", TOKIO_2, MULTISHOT, "uring-multishot+2t"];

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs everything; `step` hears what is about to run.
pub fn run(
    exe: &Path,
    options: &Options,
    command: &str,
    step: &dyn Fn(&str),
) -> anyhow::Result<Chapter8Run> {
    let cpus = echo::allowed_cpus();
    let (client_cpu, server_cpu) = match cpus[..] {
        [a, b, ..] => (Some(a), Some(b)),
        _ => (None, None),
    };
    let perf = echo::perf_available();
    let mut out = Chapter8Run {
        machine: Machine::this(),
        options: options.clone(),
        command: command.to_string(),
        load_before: loadavg(),
        load_after: String::new(),
        pinned: Vec::new(),
        counted: Vec::new(),
        breakdown: Vec::new(),
        idle: Vec::new(),
        threads: Vec::new(),
        notes: Vec::new(),
    };
    if !perf {
        out.notes.push(
            "perf is not available, so there are no system call counts and no breakdown"
                .into(),
        );
    }
    let servers = pinned_servers();
    let pinned = (server_cpu, client_cpu);
    for &(conns, size) in &options.loads {
        let load = load(conns, size, options.seconds)?;
        out.pinned
            .extend(rounds(exe, &servers, load, pinned, options, step)?);
        if perf {
            for &engine in &servers {
                step(&format!("{engine}, {conns} connections, perf stat"));
                let server = ServerProcess::start(exe, engine, server_cpu, true)?;
                let secs = options.seconds.min(1.0);
                let counted = Load {
                    duration: Duration::from_secs_f64(secs),
                    ..load
                };
                let client = &echo::chapter5_client;
                let r = echo::measure(
                    server, engine, counted, client, client_cpu, secs, false,
                )?;
                out.counted.push(r);
            }
        }
    }
    if perf {
        for engine in PROFILED {
            step(&format!("{engine}, profile"));
            out.breakdown
                .push(profile(exe, engine, options, server_cpu, client_cpu)?);
        }
    }
    for engine in IDLE {
        step(&format!(
            "{engine}, {} idle connections",
            options.idle_conns
        ));
        out.idle
            .push(idle_memory::measure(exe, engine, options.idle_conns)?);
    }
    for &(conns, size) in &options.loads {
        let load = load(conns, size, options.seconds)?;
        out.threads
            .extend(rounds(exe, &THREADS, load, (None, None), options, step)?);
    }
    out.load_after = loadavg();
    Ok(out)
}

fn load(conns: usize, size: usize, seconds: f64) -> anyhow::Result<Load> {
    Ok(Load {
        addr: "127.0.0.1:0".parse()?,
        conns,
        size,
        duration: Duration::from_secs_f64(seconds),
    })
}

/// Every server in `servers` once per round, in an order that rotates,
/// server and client on the CPUs of `(server, client)` where given.
fn rounds(
    exe: &Path,
    servers: &[&str],
    load: Load,
    (server_cpu, client_cpu): (Option<usize>, Option<usize>),
    options: &Options,
    step: &dyn Fn(&str),
) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for i in round_order(servers.len(), round) {
            let engine = servers[i];
            let pinned = if server_cpu.is_some() {
                ""
            } else {
                ", unpinned"
            };
            step(&format!(
                "{engine}, {} connections{pinned}, round {}",
                load.conns,
                round + 1
            ));
            let server = ServerProcess::start(exe, engine, server_cpu, false)?;
            let client = &echo::chapter5_client;
            let record = echo::measure(
                server,
                engine,
                load,
                client,
                client_cpu,
                options.seconds,
                false,
            )?;
            runs.push(Run { round, record });
        }
    }
    Ok(runs)
}

/// A `perf record` profile of `engine` at the profiled load, by part.
fn profile(
    exe: &Path,
    engine: &str,
    options: &Options,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
) -> anyhow::Result<Breakdown> {
    let (conns, size) = options.profiled;
    let seconds = options.seconds.max(2.0);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("perf.data");
    let server = ServerProcess::start(exe, engine, server_cpu, false)?;
    // The profile covers the middle of the run: connecting is over by then.
    let recorder = {
        let pid = server.pid();
        let data = data.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds / 4.0));
            cpu_breakdown::record(pid, &data, seconds / 2.0)?.wait()?;
            anyhow::Ok(())
        })
    };
    let load = Load {
        addr: server.addr,
        conns,
        size,
        duration: Duration::from_secs_f64(seconds),
    };
    let client = &echo::chapter5_client;
    let record = echo::measure(server, engine, load, client, client_cpu, seconds, false)?;
    recorder
        .join()
        .map_err(|_| anyhow::anyhow!("the perf thread panicked"))??;
    let lines = cpu_breakdown::report(&data)?;
    anyhow::ensure!(!lines.is_empty(), "perf recorded nothing for {engine}");
    let mut breakdown =
        cpu_breakdown::summarize(engine, conns as u32, size as u64, &lines);
    breakdown.cpu_us_per_msg = record.cpu_us_per_op;
    Ok(breakdown)
}

/// Reads a run written by [`run`].
pub fn from_json(path: &Path) -> anyhow::Result<Chapter8Run> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--from-json {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a chapter 8 run", path.display()))
}

pub fn to_json(run: &Chapter8Run) -> String {
    serde_json::to_string_pretty(run).expect("plain data") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_choice_is_measured_against_the_way_it_ships() {
        let servers = pinned_servers();
        assert_eq!(servers[..3], ["tokio", "tokio-uring+coop", MULTISHOT]);
        for c in choices() {
            assert!(servers.contains(&c.other));
            let (config, _) =
                uring_book::bench::multishot_servers::parse(c.other).unwrap();
            assert_ne!(
                format!("{config:?}"),
                format!(
                    "{:?}",
                    Config {
                        quiet: true,
                        ..Config::default()
                    }
                ),
                "{} must differ from exercise 8 as shipped",
                c.other
            );
        }
    }
}
