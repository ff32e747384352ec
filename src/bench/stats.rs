//! The arithmetic of a measurement: latency percentiles, CPU time from
//! getrusage(2), a small random number generator for offsets, and the
//! median and spread of repeated runs, with the rule that says when two of
//! them differ.

use std::time::{Duration, Instant};

/// Latency samples in nanoseconds, one per completed operation.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<u64>,
}

impl Latencies {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, took: Duration) {
        self.samples.push(took.as_nanos() as u64);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `p`-th percentile in microseconds (nearest rank), `None` without samples.
    pub fn percentile_us(&mut self, p: f64) -> Option<f64> {
        self.samples.sort_unstable();
        percentile(&self.samples, p).map(|ns| ns as f64 / 1000.0)
    }
}

/// The nearest-rank percentile of sorted samples: the smallest sample such
/// that at least `p` percent of all samples are less than or equal to it.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// User plus system CPU time of this whole process (every thread, including
/// the kernel's io-wq and SQPOLL threads, which belong to the process), and
/// its context switches: a thread that sleeps and is woken up counts one.
pub fn process_usage() -> (Duration, u64) {
    // SAFETY: getrusage fills one rusage struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let switches = usage.ru_nvcsw as u64 + usage.ru_nivcsw as u64;
    (tv(usage.ru_utime) + tv(usage.ru_stime), switches)
}

/// What one measured window cost.
pub struct Spent {
    pub elapsed: Duration,
    pub cpu: Duration,
    pub switches: u64,
}

/// Wall-clock time, CPU time and context switches of one measured window.
pub struct Window {
    wall: Instant,
    cpu: Duration,
    switches: u64,
}

impl Window {
    pub fn start() -> Self {
        let (cpu, switches) = process_usage();
        Window {
            wall: Instant::now(),
            cpu,
            switches,
        }
    }

    pub fn stop(&self) -> Spent {
        let elapsed = self.wall.elapsed();
        let (cpu, switches) = process_usage();
        Spent {
            elapsed,
            cpu: cpu - self.cpu,
            switches: switches - self.switches,
        }
    }
}

/// xorshift64*: fast, good enough to pick block offsets, and reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One figure of a point measured several times: the median of the runs,
/// and the lowest and highest run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    /// The spread of some runs; `None` without any. A value that is not a
    /// number (a ratio to nothing) is no run.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    /// How far the farthest run lies from the median, in percent of it:
    /// every run is within ± this much.
    pub fn deviation_percent(&self) -> f64 {
        if self.median == 0.0 {
            return 0.0;
        }
        let far = (self.max - self.median).max(self.median - self.min);
        100.0 * far / self.median.abs()
    }

    /// The lowest run to the highest, as a share of the median: 0.3 is runs
    /// 30 % apart (chapter 8 reports how noisy the machine was this way).
    pub fn range_share(&self) -> f64 {
        if self.median == 0.0 {
            return 0.0;
        }
        (self.max - self.min) / self.median.abs()
    }
}

/// Differences smaller than this fraction of the larger median are ties even
/// when the runs do not overlap: counts such as system calls per message
/// barely vary, and a 0.01 % gap between two of them says nothing.
pub const MIN_DIFFERENCE: f64 = 0.02;

/// How one figure compares with another, given their runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every run of the first was above every run of the second.
    Higher,
    /// Every run of the first was below every run of the second.
    Lower,
    /// The runs overlap (or differ by less than [`MIN_DIFFERENCE`]).
    Tie,
    /// One of the two ran once: there is no spread to compare against.
    OneRun,
}

/// Compares `a` with `b`. A difference counts only when the two sets of runs
/// do not overlap: with three runs each, two engines of identical speed come
/// out separated like that one time in ten, by chance alone.
pub fn compare(a: &Spread, b: &Spread) -> Verdict {
    if a.runs < 2 || b.runs < 2 {
        return Verdict::OneRun;
    }
    let larger = a.median.abs().max(b.median.abs());
    if (a.median - b.median).abs() < MIN_DIFFERENCE * larger {
        return Verdict::Tie;
    }
    if a.min > b.max {
        Verdict::Higher
    } else if a.max < b.min {
        Verdict::Lower
    } else {
        Verdict::Tie
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let one_to_hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&one_to_hundred, 50.0), Some(50));
        assert_eq!(percentile(&one_to_hundred, 99.0), Some(99));
        assert_eq!(percentile(&one_to_hundred, 100.0), Some(100));
        assert_eq!(percentile(&one_to_hundred, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // 3 samples: the median is the 2nd, p99 the 3rd.
        assert_eq!(percentile(&[10, 20, 30], 50.0), Some(20));
        assert_eq!(percentile(&[10, 20, 30], 99.0), Some(30));
    }

    #[test]
    fn latencies_sort_before_taking_percentiles() {
        let mut lat = Latencies::new();
        for us in [5u64, 1, 3, 2, 4] {
            lat.record(Duration::from_micros(us));
        }
        assert_eq!(lat.percentile_us(50.0), Some(3.0));
        assert_eq!(lat.percentile_us(99.0), Some(5.0));
    }

    #[test]
    fn rng_stays_below_its_bound() {
        let mut rng = Rng::new(42);
        let picks: Vec<u64> = (0..1000).map(|_| rng.below(10)).collect();
        assert!(picks.iter().all(|&n| n < 10));
        // Every value shows up: the generator does not get stuck.
        assert!((0..10).all(|v| picks.contains(&v)));
    }

    #[test]
    fn a_spread_is_the_median_and_the_extremes_of_the_runs() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([1.0, 4.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
        // Every run is within 50 % of the median of 2.
        assert_eq!(s.deviation_percent(), 50.0);
        let lopsided = Spread::of([100.0, 101.0, 110.0]).unwrap();
        assert!((lopsided.deviation_percent() - 100.0 * 9.0 / 101.0).abs() < 1e-9);
        // From the lowest run to the highest: the whole median apart.
        assert!((s.range_share() - 1.0).abs() < 1e-12);
        assert!(Spread::of([f64::NAN]).is_none());
        assert_eq!(Spread::of([f64::INFINITY, 2.0]).unwrap().runs, 1);
    }

    #[test]
    fn only_runs_that_do_not_overlap_make_a_difference() {
        let s = |v: &[f64]| Spread::of(v.iter().copied()).unwrap();
        let slow = s(&[90.0, 95.0, 100.0]);
        let fast = s(&[101.0, 110.0, 120.0]);
        let overlapping = s(&[99.0, 105.0, 130.0]);
        assert_eq!(compare(&fast, &slow), Verdict::Higher);
        assert_eq!(compare(&slow, &fast), Verdict::Lower);
        assert_eq!(compare(&overlapping, &slow), Verdict::Tie);
        // Apart, but by less than MIN_DIFFERENCE: a tie.
        assert_eq!(
            compare(&s(&[5.9965, 5.9966]), &s(&[5.9969, 5.9970])),
            Verdict::Tie
        );
        // One run has no spread: no verdict, whatever the gap.
        assert_eq!(compare(&s(&[1.0]), &s(&[2.0, 2.1])), Verdict::OneRun);
    }
}
