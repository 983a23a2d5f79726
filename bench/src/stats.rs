//! Median and p90 of a series of timings.

use std::time::Duration;

use crate::table::ms;

/// Timings of one series, sorted.
#[derive(Debug, Clone)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn median(&self) -> Duration {
        self.percentile(50)
    }

    pub fn p90(&self) -> Duration {
        self.percentile(90)
    }

    /// Nearest rank: the smallest sample with at least `p` percent of the series at or below it.
    pub fn percentile(&self, p: usize) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (p * self.sorted.len()).div_ceil(100).max(1);
        self.sorted[rank - 1]
    }

    /// `median 12.3 ms, p90 15.0 ms (20 events)`; `unit` is plural.
    pub fn describe(&self, unit: &str) -> String {
        let unit = if self.len() == 1 {
            unit.trim_end_matches('s')
        } else {
            unit
        };
        format!(
            "median {}, p90 {} ({} {unit})",
            ms(self.median()),
            ms(self.p90()),
            self.len()
        )
    }
}

/// `a / b`, the ratio the targets speak in.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples::new((1..=20).rev().map(ms).collect());
        assert_eq!(s.median(), ms(10));
        assert_eq!(s.p90(), ms(18));
        let one = Samples::new(vec![ms(7)]);
        assert_eq!((one.median(), one.p90()), (ms(7), ms(7)));
        assert_eq!(Samples::new(vec![]).median(), Duration::ZERO);
    }

    #[test]
    fn ratio_of_durations() {
        assert!((ratio(ms(30), ms(20)) - 1.5).abs() < 1e-9);
    }
}
