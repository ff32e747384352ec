//! fio, the reference: the same random reads run by fio itself, when it is
//! installed, so that our numbers stand next to a well-known tool's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// One fio job: random 4 KiB reads of `file`.
#[derive(Debug, Clone)]
pub struct FioJob<'a> {
    pub file: &'a Path,
    pub file_size: u64,
    /// `psync` or `io_uring`.
    pub ioengine: &'a str,
    pub iodepth: u32,
    pub numjobs: u32,
    pub direct: bool,
    pub runtime: Duration,
}

impl FioJob<'_> {
    pub fn args(&self) -> Vec<String> {
        vec![
            "--name=randread".into(),
            format!("--filename={}", self.file.display()),
            format!("--size={}", self.file_size),
            "--rw=randread".into(),
            "--bs=4k".into(),
            format!("--direct={}", u8::from(self.direct)),
            // fio drops the file's cached pages before a job unless told not
            // to: the page-cache workload needs them kept.
            format!("--invalidate={}", u8::from(self.direct)),
            format!("--ioengine={}", self.ioengine),
            format!("--iodepth={}", self.iodepth),
            format!("--numjobs={}", self.numjobs),
            "--group_reporting".into(),
            "--time_based".into(),
            format!("--runtime={}ms", self.runtime.as_millis()),
            // Total latency, submission included, as our engines measure it:
            // fio's default percentiles are of completion latency (clat) only,
            // which at depth 1 on the page cache is close to zero.
            "--lat_percentiles=1".into(),
            // json+ adds the latency histogram ("bins") to the report.
            "--output-format=json+".into(),
        ]
    }

    /// The command line, as a person would type it.
    pub fn command(&self) -> String {
        let mut words = vec!["fio".to_string()];
        words.extend(self.args());
        words.join(" ")
    }
}

/// What fio reported for a job.
#[derive(Debug, Clone, PartialEq)]
pub struct FioResult {
    pub iops: f64,
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// (usr + sys) CPU percent of fio's job threads.
    pub cpu_percent: f64,
    pub runtime: Duration,
    /// Reads completed.
    pub ios: u64,
    /// fio's latency histogram: (nanoseconds, reads), from
    /// `--output-format=json+`: of total latency (`lat_ns`) with
    /// `--lat_percentiles=1`, as we run it, else of completion latency. Each
    /// value is a bucket's midpoint, and buckets are about 1.5 % wide, so
    /// percentiles of merged runs are exact to that resolution only.
    pub bins: Vec<(u64, u64)>,
}

impl FioResult {
    /// Several runs of the same job as one: rates over the total time,
    /// percentiles from the merged histograms.
    pub fn combine(runs: &[FioResult]) -> FioResult {
        let runtime: Duration = runs.iter().map(|r| r.runtime).sum();
        let secs = runtime.as_secs_f64().max(1e-9);
        let weighted = |f: fn(&FioResult) -> f64| {
            runs.iter()
                .map(|r| f(r) * r.runtime.as_secs_f64())
                .sum::<f64>()
                / secs
        };
        let mut bins: Vec<(u64, u64)> =
            runs.iter().flat_map(|r| r.bins.iter().copied()).collect();
        bins.sort_unstable();
        let pct = |p: f64, fallback: fn(&FioResult) -> f64| {
            bins_percentile(&bins, p)
                .map_or_else(|| weighted(fallback), |ns| ns as f64 / 1000.0)
        };
        FioResult {
            iops: runs.iter().map(|r| r.ios).sum::<u64>() as f64 / secs,
            mb_per_s: weighted(|r| r.mb_per_s),
            p50_us: pct(50.0, |r| r.p50_us),
            p99_us: pct(99.0, |r| r.p99_us),
            cpu_percent: weighted(|r| r.cpu_percent),
            runtime,
            ios: runs.iter().map(|r| r.ios).sum(),
            bins,
        }
    }
}

/// The nearest-rank percentile of a sorted histogram of (value, count).
pub fn bins_percentile(sorted: &[(u64, u64)], p: f64) -> Option<u64> {
    let total: u64 = sorted.iter().map(|b| b.1).sum();
    if total == 0 {
        return None;
    }
    let rank = (((p / 100.0) * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    sorted
        .iter()
        .find(|b| {
            seen += b.1;
            seen >= rank
        })
        .map(|b| b.0)
}

/// Whether fio is on PATH.
pub fn available() -> bool {
    Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(job: &FioJob) -> anyhow::Result<FioResult> {
    let out = Command::new("fio")
        .args(job.args())
        .output()
        .context("run fio")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("fio failed: {}", err.lines().next().unwrap_or("no message"));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Reads fio's `--output-format=json` report (fio 3.x).
pub fn parse(report: &str) -> anyhow::Result<FioResult> {
    // fio may print notes before the JSON object.
    let start = report.find('{').context("no JSON in fio's output")?;
    let v: Value = serde_json::from_str(&report[start..]).context("fio's JSON")?;
    let job = &v["jobs"][0];
    let read = &job["read"];
    let num = |v: &Value, what: &str| {
        v.as_f64().with_context(|| format!("fio JSON: no {what}"))
    };
    // "lat_ns" (submission to completion) when fio ran with --lat_percentiles=1,
    // else "clat_ns" (completion only), as in reports of other fio commands.
    let lat = if read["lat_ns"]["percentile"].is_object() {
        &read["lat_ns"]
    } else {
        &read["clat_ns"]
    };
    let pct = |p: &str| num(&lat["percentile"][p], p).map(|ns| ns / 1000.0);
    Ok(FioResult {
        iops: num(&read["iops"], "read.iops")?,
        // fio's "bw" is in KiB/s.
        mb_per_s: num(&read["bw"], "read.bw")? * 1024.0 / 1e6,
        p50_us: pct("50.000000")?,
        p99_us: pct("99.000000")?,
        cpu_percent: num(&job["usr_cpu"], "usr_cpu")? + num(&job["sys_cpu"], "sys_cpu")?,
        runtime: Duration::from_millis(num(&read["runtime"], "read.runtime")? as u64),
        ios: num(&read["total_ios"], "read.total_ios")? as u64,
        bins: lat["bins"]
            .as_object()
            .map(|bins| {
                let mut bins: Vec<(u64, u64)> = bins
                    .iter()
                    .filter_map(|(ns, n)| Some((ns.parse().ok()?, n.as_u64()?)))
                    .collect();
                bins.sort_unstable();
                bins
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts of a real fio 3.33 report that parse() reads.
    const REPORT: &str = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{
  "fio version" : "fio-3.33",
  "jobs" : [
    {
      "jobname" : "randread",
      "read" : {
        "io_bytes" : 1031798784,
        "bw" : 503808,
        "iops" : 125952.5,
        "runtime" : 2001,
        "total_ios" : 251904,
        "clat_ns" : {
          "percentile" : {
            "50.000000" : 246784,
            "99.000000" : 481280
          },
          "bins" : {
            "481280" : 2519,
            "246784" : 249385
          }
        }
      },
      "usr_cpu" : 10.5,
      "sys_cpu" : 42.25
    }
  ]
}"#;

    #[test]
    fn parses_a_fio_json_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.iops, 125952.5);
        assert!((r.mb_per_s - 515.899392).abs() < 1e-6);
        assert_eq!(r.p50_us, 246.784);
        assert_eq!(r.p99_us, 481.28);
        assert_eq!(r.cpu_percent, 52.75);
        assert_eq!(r.runtime, Duration::from_millis(2001));
        assert_eq!(r.ios, 251904);
        assert_eq!(r.bins, [(246784, 249385), (481280, 2519)]);
    }

    /// With --lat_percentiles=1 fio also reports total latency; that is the
    /// one to compare with ours, which includes the submission.
    #[test]
    fn total_latency_is_preferred_to_completion_latency() {
        let with_total = REPORT.replace(
            r#""clat_ns" : {"#,
            r#""lat_ns" : {
          "percentile" : { "50.000000" : 250000, "99.000000" : 500000 },
          "bins" : { "250000" : 10 }
        },
        "clat_ns" : {"#,
        );
        let r = parse(&with_total).unwrap();
        assert_eq!(r.p50_us, 250.0);
        assert_eq!(r.p99_us, 500.0);
        assert_eq!(r.bins, [(250000, 10)]);
    }

    #[test]
    fn histogram_percentiles_use_nearest_rank() {
        let bins = [(10, 50), (20, 49), (30, 1)];
        assert_eq!(bins_percentile(&bins, 50.0), Some(10));
        assert_eq!(bins_percentile(&bins, 51.0), Some(20));
        assert_eq!(bins_percentile(&bins, 99.0), Some(20));
        assert_eq!(bins_percentile(&bins, 100.0), Some(30));
        assert_eq!(bins_percentile(&[], 50.0), None);
    }

    #[test]
    fn two_runs_combine_into_one() {
        let run = |ios: u64, ms: u64, ns: u64| FioResult {
            iops: ios as f64 * 1000.0 / ms as f64,
            mb_per_s: 1.0,
            p50_us: ns as f64 / 1000.0,
            p99_us: ns as f64 / 1000.0,
            cpu_percent: 10.0,
            runtime: Duration::from_millis(ms),
            ios,
            bins: vec![(ns, ios)],
        };
        // 1000 reads at 100 µs in 1 s, then 3000 at 300 µs in 1 s.
        let both =
            FioResult::combine(&[run(1000, 1000, 100_000), run(3000, 1000, 300_000)]);
        assert_eq!(both.iops, 2000.0);
        assert_eq!(both.ios, 4000);
        assert_eq!(both.p50_us, 300.0);
        assert_eq!(both.runtime, Duration::from_secs(2));
        assert_eq!(both.cpu_percent, 10.0);
    }

    #[test]
    fn a_report_without_numbers_is_an_error() {
        assert!(parse("fio: no such file").is_err());
        assert!(parse(r#"{"jobs":[{"read":{}}]}"#).is_err());
    }

    #[test]
    fn the_command_line_names_engine_and_depth() {
        let job = FioJob {
            file: Path::new("/tmp/f"),
            file_size: 1 << 20,
            ioengine: "io_uring",
            iodepth: 32,
            numjobs: 1,
            direct: true,
            runtime: Duration::from_secs(2),
        };
        let cmd = job.command();
        assert!(
            cmd.starts_with("fio --name=randread --filename=/tmp/f"),
            "{cmd}"
        );
        assert!(cmd.contains("--ioengine=io_uring --iodepth=32"), "{cmd}");
        assert!(
            cmd.contains("--direct=1") && cmd.contains("--runtime=2000ms"),
            "{cmd}"
        );
    }
}
