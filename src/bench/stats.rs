//! The arithmetic of a measurement: latency percentiles, CPU time from
//! getrusage(2), and a small random number generator for offsets.

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
}
