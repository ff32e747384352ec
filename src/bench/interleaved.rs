//! Repeated runs, interleaved, and what they add up to: the median, the
//! range, and a verdict that calls a difference inside the noise a tie.
//!
//! Single runs of the same server differ by up to 30 % on a busy machine,
//! and the machine changes over minutes. So every server runs once per
//! round, rounds repeat, and the order within a round rotates so that no
//! server always runs first. A ratio between two servers is taken round by
//! round (same minute, same machine state), and the median of those ratios
//! is the figure; the range of the ratios is its spread.

use serde::{Deserialize, Serialize};

/// The median and the range of some runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    /// `None` without values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
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

    /// The range as a share of the median: 0.3 is runs 30 % apart.
    pub fn relative(&self) -> f64 {
        if self.median == 0.0 {
            return 0.0;
        }
        (self.max - self.min) / self.median.abs()
    }

    pub fn contains(&self, x: f64) -> bool {
        self.min <= x && x <= self.max
    }
}

/// How two servers compare on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Better,
    Tie,
    Worse,
}

/// Compares round-by-round ratios `ours / theirs` of a figure where more is
/// better (messages per second; use the inverse for CPU per message). A
/// tie when the ratios of the rounds fall on both sides of 1: the runs
/// disagree on which is ahead, so the difference is inside the noise.
pub fn verdict(ratios: &Spread) -> Verdict {
    if ratios.min > 1.0 {
        Verdict::Better
    } else if ratios.max < 1.0 {
        Verdict::Worse
    } else {
        Verdict::Tie
    }
}

/// The order of `n` servers in round `round`: rotated by one each round.
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n).collect()
}

/// Ratios of paired values, round by round, skipping rounds where either is
/// missing or the divisor is 0.
pub fn paired_ratios(ours: &[Option<f64>], theirs: &[Option<f64>]) -> Vec<f64> {
    ours.iter()
        .zip(theirs)
        .filter_map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) if *b != 0.0 => Some(a / b),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!((s.relative() - 1.0).abs() < 1e-12);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }

    #[test]
    fn a_difference_the_rounds_disagree_on_is_a_tie() {
        let v = |r: &[f64]| verdict(&Spread::of(r).unwrap());
        assert_eq!(v(&[1.05, 1.12, 1.20]), Verdict::Better);
        assert_eq!(v(&[0.97, 1.12, 1.20]), Verdict::Tie);
        assert_eq!(v(&[0.8, 0.9, 0.95]), Verdict::Worse);
    }

    #[test]
    fn every_server_leads_a_round_once_in_n_rounds() {
        let firsts: Vec<usize> = (0..3).map(|r| round_order(3, r)[0]).collect();
        assert_eq!(firsts, [0, 1, 2]);
        assert_eq!(round_order(3, 1), [1, 2, 0]);
    }

    #[test]
    fn ratios_pair_rounds_and_skip_gaps() {
        let r = paired_ratios(
            &[Some(2.0), None, Some(3.0)],
            &[Some(1.0), Some(1.0), Some(0.0)],
        );
        assert_eq!(r, [2.0]);
    }
}
