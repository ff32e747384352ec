//! Repeated runs, interleaved, and what they add up to.
//!
//! Single runs of the same server differ by up to 30 % on a busy machine,
//! and the machine changes over minutes. So every server runs once per
//! round, rounds repeat, and the order within a round rotates so that no
//! server always runs first. A ratio between two servers is taken round by
//! round (same minute, same machine state), and the median of those ratios
//! is the figure; the range of the ratios is its spread. Whether two servers
//! differ at all is decided by the benchmark's one rule, [`compare`] in
//! `stats`, on their runs.

use uring_book::bench::stats::{compare, Spread, Verdict};

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

/// How our runs of a figure compare with theirs, by [`compare`], turned so
/// that [`Verdict::Higher`] means ours is better: more where more is better
/// (messages per second), less where less is (CPU per message, latency).
pub fn judge(ours: &Spread, theirs: &Spread, more_is_better: bool) -> Verdict {
    if more_is_better {
        compare(ours, theirs)
    } else {
        compare(theirs, ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn better_means_less_where_less_is_better() {
        let s = |v: &[f64]| Spread::of(v.iter().copied()).unwrap();
        let (low, high) = (s(&[5.0, 5.1, 5.2]), s(&[6.0, 6.1, 6.2]));
        assert_eq!(judge(&high, &low, true), Verdict::Higher);
        assert_eq!(judge(&high, &low, false), Verdict::Lower);
        assert_eq!(judge(&low, &high, false), Verdict::Higher);
        // Runs that overlap are a tie whichever way the figure points.
        let wide = s(&[4.0, 5.5, 7.0]);
        assert_eq!(judge(&wide, &low, true), Verdict::Tie);
        assert_eq!(judge(&wide, &low, false), Verdict::Tie);
    }
}
