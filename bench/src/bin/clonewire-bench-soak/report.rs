//! The soak's samples and what is concluded from them: one row per process per
//! sample, then each process's slope over the second half of the run.

use std::fmt::Write as _;

use clonewire_bench::Footprint;

/// One process at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Minutes since the load started (negative: before it).
    pub minute: f64,
    /// What was measured from `/proc`.
    pub footprint: Footprint,
    /// The process's own figures: (name, value), bytes unless the name says otherwise.
    pub held: Vec<(String, f64)>,
}

/// The samples of one process.
#[derive(Debug, Default)]
pub struct Series {
    /// Its name in the tables.
    pub name: String,
    /// Samples in time order.
    pub samples: Vec<Sample>,
}

impl Series {
    /// An empty series for `name`.
    pub fn new(name: &str) -> Series {
        Series {
            name: name.to_owned(),
            samples: Vec::new(),
        }
    }

    /// One table row for `sample`.
    pub fn row(&self, sample: &Sample) -> String {
        let f = sample.footprint;
        let mut row = format!(
            "| {:>6.1} | {:<10} | {:>8.1} | {:>7} | {:>5} |",
            sample.minute, self.name, f.rss_mib, f.threads, f.fds
        );
        let held: Vec<String> = sample
            .held
            .iter()
            .map(|(k, v)| format!("{k} {}", human(*v)))
            .collect();
        let _ = write!(row, " {} |", held.join(", "));
        row
    }

    /// What the second half of the load says: the RSS slope, its change, and the
    /// spread of threads and descriptors. Samples at or after `half` minutes and at
    /// most `end` minutes count.
    pub fn second_half(&self, half: f64, end: f64) -> Option<Verdict> {
        let points: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.minute >= half && s.minute <= end)
            .collect();
        let (first, last) = (points.first()?, points.last()?);
        let xy: Vec<(f64, f64)> = points.iter().map(|s| (s.minute, s.footprint.rss_mib)).collect();
        let slope = slope(&xy).unwrap_or(0.0);
        let range = |f: fn(&Footprint) -> u32| {
            let values = points.iter().map(|s| f(&s.footprint));
            (values.clone().min().unwrap_or(0), values.max().unwrap_or(0))
        };
        Some(Verdict {
            samples: points.len(),
            slope_mib_per_min: slope,
            grown_mib: last.footprint.rss_mib - first.footprint.rss_mib,
            fitted_mib: slope * (last.minute - first.minute),
            threads: range(|f| f.threads),
            fds: range(|f| f.fds),
        })
    }
}

/// A process's second half.
#[derive(Clone, Copy, Debug)]
pub struct Verdict {
    /// Samples in it.
    pub samples: usize,
    /// Least-squares RSS slope, MiB per minute.
    pub slope_mib_per_min: f64,
    /// Last RSS minus first, MiB.
    pub grown_mib: f64,
    /// The slope times the half's length, MiB (less noisy than `grown_mib`).
    pub fitted_mib: f64,
    /// Fewest and most threads.
    pub threads: (u32, u32),
    /// Fewest and most open descriptors.
    pub fds: (u32, u32),
}

/// The least-squares slope of `points` (x, y); `None` for fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Bytes as a person reads them (values under 1,000 as they are).
pub fn human(v: f64) -> String {
    match v {
        v if v >= 1024.0 * 1024.0 => format!("{:.1}M", v / 1024.0 / 1024.0),
        v if v >= 10.0 * 1024.0 => format!("{:.0}K", v / 1024.0),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_gradient() {
        let points: Vec<(f64, f64)> = (0..10)
            .map(|x| (f64::from(x), 3.0 + 0.5 * f64::from(x)))
            .collect();
        assert!((slope(&points).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
    }

    #[test]
    fn the_second_half_is_judged_on_its_own_samples() {
        let mut series = Series::new("relay");
        for minute in 0..=10 {
            let rss = if minute < 5 {
                10.0 * f64::from(minute)
            } else {
                50.0 + 0.1 * f64::from(minute - 5)
            };
            series.samples.push(Sample {
                minute: f64::from(minute),
                footprint: Footprint {
                    rss_mib: rss,
                    threads: 10 + (minute as u32 % 2),
                    fds: 20,
                },
                held: Vec::new(),
            });
        }
        let v = series.second_half(5.0, 10.0).unwrap();
        assert_eq!(v.samples, 6);
        assert!((v.slope_mib_per_min - 0.1).abs() < 1e-9);
        assert!((v.grown_mib - 0.5).abs() < 1e-9);
        assert_eq!((v.threads, v.fds), ((10, 11), (20, 20)));
    }
}
