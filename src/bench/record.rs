//! One measured point of the benchmark, as it goes into the JSON file, the
//! tables and the plots.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use uring_book::bench::machine::{FileSystem, Machine};
use uring_book::bench::stats::{Latencies, Spent};

/// The settings that produced a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Settings {
    /// Bytes per operation (block size, chunk size or message size).
    pub block_size: u64,
    /// Size of the test file; 0 for the network workload.
    pub file_size: u64,
    /// Directory of the test file; empty for the network workload.
    pub dir: String,
    pub file_system: Option<FileSystem>,
    pub o_direct: bool,
    /// io_uring with registered buffers (READ_FIXED).
    #[serde(default)]
    pub fixed_bufs: bool,
    /// io_uring with the file registered and named by its index.
    #[serde(default)]
    pub fixed_file: bool,
    pub sqpoll: bool,
    /// Threads doing blocking I/O (the pool engine, fio's numjobs).
    pub threads: u32,
    /// Target length of the measured window.
    pub seconds: f64,
    /// Whether preadv2(RWF_NOWAIT) works on the file (see
    /// `file::supports_nowait_reads`); `None` where not probed.
    pub nowait_reads: Option<bool>,
    /// The exact command for engines that are another program (fio).
    pub command: Option<String>,
}

/// One line of the results: a workload run by one engine at one depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `seq-write`, `seq-read`, `rand-read-cached`, `rand-read-direct`,
    /// `rand-read-tmpfs`, `echo`.
    pub workload: String,
    /// `std`, `io_uring`, `io_uring+fixed`, `io_uring+fixed-file`,
    /// `io_uring+fixed-bufs`, `io_uring+sqpoll`, `io_uring+eager`,
    /// `io_uring+pairs`, `io_uring+triples`, `threads`, `fio-psync`,
    /// `fio-io_uring`; for echo, the servers of `bench::echo::ECHO_SERVERS`.
    pub engine: String,
    /// Operations in flight (for the echo workload: connections).
    pub queue_depth: u32,
    /// Which run of the point this is, from 0: each point runs `--repeat`
    /// times, and the report takes the median and spread of the runs.
    #[serde(default)]
    pub repeat: u32,
    pub ops: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// CPU time (user + system) per operation, of the process doing the I/O
    /// (for the echo workload: of the server).
    pub cpu_us_per_op: Option<f64>,
    /// System calls per operation that the engine made (counted by the engine).
    pub syscalls_per_op: Option<f64>,
    /// Context switches per operation (threads going to sleep or being
    /// preempted): of the process doing the I/O, or of the echo server.
    pub ctx_switches_per_op: Option<f64>,
    /// io_uring's io-wq worker threads seen during the run: requests the
    /// kernel could not start without blocking are handed to them.
    pub io_wq_workers: Option<u32>,
    /// For the echo workload: the server's CPU time over the wall time of the
    /// client's run (1.0 is one CPU kept busy the whole time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_share: Option<f64>,
    /// Where the benchmark profiled the process (`perf record`): what it
    /// sampled and its hottest functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    pub settings: Settings,
    pub machine: Machine,
}

/// A profile of one process: `perf report --sort sym` of a `perf record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The event sampled: `cycles` with a PMU, `cpu-clock` (a timer) without.
    pub event: String,
    pub samples: u64,
    /// The hottest functions, with their share of the samples in percent.
    pub hottest: Vec<(String, f64)>,
}

/// What an engine measured, before it becomes a record.
#[derive(Debug, Default)]
pub struct Measured {
    pub ops: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub cpu: Option<Duration>,
    pub syscalls: Option<u64>,
    pub ctx_switches: Option<u64>,
    pub latencies: Latencies,
    pub io_wq_workers: Option<u32>,
}

impl Measured {
    /// A measurement of one window: one operation per latency sample, and
    /// no system-call or io-wq count (the callers that have them add them).
    pub fn of_window(spent: Spent, bytes: u64, latencies: Latencies) -> Measured {
        Measured {
            ops: latencies.len() as u64,
            bytes,
            elapsed: spent.elapsed,
            cpu: Some(spent.cpu),
            ctx_switches: Some(spent.switches),
            latencies,
            ..Measured::default()
        }
    }

    /// Two measurements of the same thing as one: counts and times add up,
    /// the latency samples are pooled.
    pub fn merge(mut self, other: Measured) -> Measured {
        let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        self.cpu = self.cpu.zip(other.cpu).map(|(a, b)| a + b);
        self.syscalls = add(self.syscalls, other.syscalls);
        self.ctx_switches = add(self.ctx_switches, other.ctx_switches);
        self.latencies.merge(other.latencies);
        self.io_wq_workers = self.io_wq_workers.max(other.io_wq_workers);
        self
    }
}

impl Record {
    pub fn new(
        workload: &str,
        engine: &str,
        queue_depth: u32,
        mut m: Measured,
        settings: Settings,
    ) -> Record {
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let per_op = |total: f64| (m.ops > 0).then(|| total / m.ops as f64);
        Record {
            workload: workload.into(),
            engine: engine.into(),
            queue_depth,
            repeat: 0,
            ops: m.ops,
            elapsed_s: secs,
            ops_per_s: m.ops as f64 / secs,
            mb_per_s: m.bytes as f64 / secs / 1e6,
            p50_us: m.latencies.percentile_us(50.0),
            p99_us: m.latencies.percentile_us(99.0),
            cpu_us_per_op: m.cpu.and_then(|c| per_op(c.as_secs_f64() * 1e6)),
            syscalls_per_op: m.syscalls.and_then(|s| per_op(s as f64)),
            ctx_switches_per_op: m.ctx_switches.and_then(|s| per_op(s as f64)),
            io_wq_workers: m.io_wq_workers,
            server_cpu_share: None,
            profile: None,
            settings,
            machine: Machine::this(),
        }
    }
}

/// The records as one JSON array.
pub fn to_json(records: &[Record]) -> String {
    serde_json::to_string_pretty(records).expect("records are plain data")
}

pub fn from_json(text: &str) -> serde_json::Result<Vec<Record>> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        let mut latencies = Latencies::new();
        for us in 1..=100 {
            latencies.record(Duration::from_micros(us));
        }
        Measured {
            ops: 100,
            bytes: 100 * 4096,
            elapsed: Duration::from_millis(500),
            cpu: Some(Duration::from_millis(50)),
            syscalls: Some(25),
            ctx_switches: Some(50),
            latencies,
            io_wq_workers: Some(0),
        }
    }

    #[test]
    fn a_record_derives_its_rates_from_what_was_measured() {
        let r = Record::new(
            "rand-read-cached",
            "io_uring",
            4,
            measured(),
            Settings::default(),
        );
        assert_eq!(r.ops_per_s, 200.0);
        assert!((r.mb_per_s - 0.8192).abs() < 1e-9);
        assert_eq!(r.p50_us, Some(50.0));
        assert_eq!(r.p99_us, Some(99.0));
        assert!((r.cpu_us_per_op.unwrap() - 500.0).abs() < 1e-9);
        assert_eq!(r.syscalls_per_op, Some(0.25));
        assert_eq!(r.ctx_switches_per_op, Some(0.5));
    }

    #[test]
    fn merged_measurements_add_up() {
        let both = measured().merge(measured());
        assert_eq!((both.ops, both.bytes), (200, 200 * 4096));
        assert_eq!(both.elapsed, Duration::from_secs(1));
        assert_eq!(both.syscalls, Some(50));
        assert_eq!(both.latencies.len(), 200);
        let r = Record::new("w", "e", 1, both, Settings::default());
        assert_eq!(r.ops_per_s, 200.0);
        assert_eq!(r.p50_us, Some(50.0));
    }

    #[test]
    fn json_has_the_promised_fields_and_round_trips() {
        let settings = Settings {
            block_size: 4096,
            o_direct: true,
            ..Settings::default()
        };
        let records = vec![Record::new(
            "rand-read-direct",
            "std",
            1,
            measured(),
            settings,
        )];
        let json = to_json(&records);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let first = &value.as_array().unwrap()[0];
        for field in [
            "workload",
            "engine",
            "queue_depth",
            "ops_per_s",
            "mb_per_s",
            "p50_us",
            "p99_us",
            "settings",
            "machine",
        ] {
            assert!(first.get(field).is_some(), "missing {field}: {json}");
        }
        assert_eq!(first["settings"]["block_size"], 4096);
        assert_eq!(from_json(&json).unwrap(), records);
    }

    #[test]
    fn no_operations_means_no_per_operation_figures() {
        let m = Measured {
            elapsed: Duration::from_secs(1),
            cpu: Some(Duration::from_millis(3)),
            ..Measured::default()
        };
        let r = Record::new("echo", "tokio", 1, m, Settings::default());
        assert_eq!(r.ops_per_s, 0.0);
        assert_eq!(r.cpu_us_per_op, None);
        assert_eq!(r.p50_us, None);
    }
}
