//! A point of the benchmark: one engine at one depth (or one echo load) of
//! one workload, with every run of it. The tables and findings work on
//! points: the median of the runs, and how far they spread.

use uring_book::bench::record::{Profile, Record};
use uring_book::bench::stats::Spread;

/// Every run of one engine at one depth (connections) and block (message)
/// size of one workload.
#[derive(Debug, Clone)]
pub struct Point<'a> {
    /// Never empty.
    pub runs: Vec<&'a Record>,
}

impl<'a> Point<'a> {
    /// The first run: its settings and machine stand for all of them.
    pub fn first(&self) -> &'a Record {
        self.runs[0]
    }

    pub fn workload(&self) -> &'a str {
        &self.first().workload
    }

    pub fn engine(&self) -> &'a str {
        &self.first().engine
    }

    /// Requests in flight, or connections for the echo workload.
    pub fn depth(&self) -> u32 {
        self.first().queue_depth
    }

    /// Bytes per operation (message size for the echo workload).
    pub fn size(&self) -> u64 {
        self.first().settings.block_size
    }

    fn spread(&self, figure: impl Fn(&Record) -> Option<f64>) -> Option<Spread> {
        let values: Vec<f64> = self.runs.iter().filter_map(|r| figure(r)).collect();
        // A figure some runs lack (perf failed once) is not a figure of all.
        (values.len() == self.runs.len()).then_some(())?;
        Spread::of(values)
    }

    fn median(&self, figure: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
        self.spread(figure).map(|s| s.median)
    }

    /// Operations (messages) per second.
    pub fn ops(&self) -> Spread {
        self.spread(|r| Some(r.ops_per_s))
            .expect("a point has runs")
    }

    pub fn mb_per_s(&self) -> f64 {
        self.median(|r| Some(r.mb_per_s)).unwrap_or(0.0)
    }

    /// CPU time per operation, in microseconds.
    pub fn cpu(&self) -> Option<Spread> {
        self.spread(|r| r.cpu_us_per_op)
    }

    pub fn p50(&self) -> Option<f64> {
        self.median(|r| r.p50_us)
    }

    pub fn p99(&self) -> Option<f64> {
        self.median(|r| r.p99_us)
    }

    pub fn syscalls(&self) -> Option<Spread> {
        self.spread(|r| r.syscalls_per_op)
    }

    pub fn switches(&self) -> Option<f64> {
        self.median(|r| r.ctx_switches_per_op)
    }

    /// The most io-wq workers any run saw.
    pub fn io_wq(&self) -> Option<u32> {
        self.runs.iter().filter_map(|r| r.io_wq_workers).max()
    }

    pub fn share(&self) -> Option<Spread> {
        self.spread(|r| r.server_cpu_share)
    }

    /// The profile, from whichever run took one.
    pub fn profile(&self) -> Option<&'a Profile> {
        self.runs.iter().find_map(|r| r.profile.as_ref())
    }
}

/// The records as points, in the order of each point's first run.
pub fn points(records: &[Record]) -> Vec<Point<'_>> {
    let mut points: Vec<Point> = Vec::new();
    for r in records {
        let same = |p: &&mut Point| {
            let f = p.first();
            (f.workload.as_str(), f.engine.as_str(), f.queue_depth)
                == (r.workload.as_str(), r.engine.as_str(), r.queue_depth)
                && f.settings.block_size == r.settings.block_size
        };
        match points.iter_mut().find(same) {
            Some(p) => p.runs.push(r),
            None => points.push(Point { runs: vec![r] }),
        }
    }
    points
}

/// The point of `engine` at `depth` in `workload`.
pub fn find<'p, 'a>(
    points: &'p [Point<'a>],
    workload: &str,
    engine: &str,
    depth: u32,
) -> Option<&'p Point<'a>> {
    points
        .iter()
        .find(|p| p.workload() == workload && p.engine() == engine && p.depth() == depth)
}

/// The echo point of `server` at a load of (connections, message size).
pub fn echo_at<'p, 'a>(
    points: &'p [Point<'a>],
    server: &str,
    load: (u32, u64),
) -> Option<&'p Point<'a>> {
    points.iter().find(|p| {
        p.workload() == "echo" && p.engine() == server && (p.depth(), p.size()) == load
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use uring_book::bench::record::{Measured, Settings};

    fn run(engine: &str, depth: u32, ops: u64, repeat: u32) -> Record {
        let m = Measured {
            ops,
            elapsed: Duration::from_secs(1),
            cpu: Some(Duration::from_millis(ops)),
            ..Measured::default()
        };
        let mut r = Record::new("w", engine, depth, m, Settings::default());
        r.repeat = repeat;
        r
    }

    #[test]
    fn runs_of_one_engine_and_depth_make_one_point() {
        let records = vec![
            run("a", 1, 100, 0),
            run("b", 1, 500, 0),
            run("a", 1, 300, 1),
            run("a", 4, 900, 0),
            run("a", 1, 200, 2),
        ];
        let points = points(&records);
        let shape: Vec<(&str, u32, usize)> = points
            .iter()
            .map(|p| (p.engine(), p.depth(), p.runs.len()))
            .collect();
        assert_eq!(shape, [("a", 1, 3), ("b", 1, 1), ("a", 4, 1)]);
        let a = find(&points, "w", "a", 1).unwrap();
        assert_eq!(a.ops().median, 200.0);
        assert_eq!((a.ops().min, a.ops().max), (100.0, 300.0));
        // 1 ms of CPU per operation in every run.
        assert!((a.cpu().unwrap().median - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn a_figure_that_some_runs_lack_is_not_reported() {
        let mut records = vec![run("a", 1, 100, 0), run("a", 1, 100, 1)];
        records[0].syscalls_per_op = Some(1.0);
        let points = points(&records);
        assert!(points[0].syscalls().is_none());
    }
}
