//! Measurements of one benchmark phase and the table they are printed in:
//! throughput, fsync rate and latency percentiles (sorted, nearest rank).

use std::time::Duration;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Latency {
    /// Percentiles of per-operation latencies in nanoseconds (`None` when
    /// there are none).
    pub fn from_ns(mut ns: Vec<u64>) -> Option<Self> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |p: f64| {
            // Nearest rank: the smallest value with at least p% at or below.
            let rank = ((p / 100.0) * ns.len() as f64).ceil() as usize;
            ns[rank.clamp(1, ns.len()) - 1] as f64 / 1_000.0
        };
        Some(Self {
            p50_us: at(50.0),
            p99_us: at(99.0),
        })
    }
}

/// One row of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub phase: String,
    pub records: u64,
    pub bytes: u64,
    /// `fdatasync` and directory `fsync` calls made during the phase.
    pub fsyncs: u64,
    pub elapsed: Duration,
    pub latency: Option<Latency>,
}

impl Row {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.secs()
    }

    /// Throughput in MB/s, MB = 10^6 bytes.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs() / 1e6
    }

    pub fn fsyncs_per_sec(&self) -> f64 {
        self.fsyncs as f64 / self.secs()
    }

    pub fn bytes_per_fsync(&self) -> Option<u64> {
        (self.fsyncs > 0).then(|| self.bytes / self.fsyncs)
    }
}

/// Prints the rows as an aligned table.
pub fn print_table(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.phase.len())
        .max()
        .unwrap_or(0)
        .max("phase".len());
    println!(
        "{:<width$}  {:>11}  {:>9}  {:>9}  {:>11}  {:>9}  {:>9}",
        "phase", "records/s", "MB/s", "fsyncs/s", "bytes/fsync", "p50 µs", "p99 µs"
    );
    for r in rows {
        let per_fsync = r
            .bytes_per_fsync()
            .map_or_else(|| "-".to_owned(), |b| b.to_string());
        // No syncs counted (a baseline whose syncs are not observed): "-".
        let fsyncs = if r.fsyncs > 0 {
            format!("{:.1}", r.fsyncs_per_sec())
        } else {
            "-".to_owned()
        };
        let (p50, p99) = r.latency.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |l| (format!("{:.0}", l.p50_us), format!("{:.0}", l.p99_us)),
        );
        println!(
            "{:<width$}  {:>11.0}  {:>9.1}  {:>9}  {:>11}  {:>9}  {:>9}",
            r.phase,
            r.records_per_sec(),
            r.mb_per_sec(),
            fsyncs,
            per_fsync,
            p50,
            p99
        );
    }
}

/// Prints rows of events (the event store's benchmark) as an aligned
/// table: events per second, syncs per second, events per sync, and
/// latency per call.
pub fn print_event_table(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.phase.len())
        .max()
        .unwrap_or(0)
        .max("phase".len());
    println!(
        "{:<width$}  {:>11}  {:>9}  {:>12}  {:>9}  {:>9}",
        "phase", "events/s", "fsyncs/s", "events/fsync", "p50 µs", "p99 µs"
    );
    for r in rows {
        let (fsyncs, per_fsync) = if r.fsyncs > 0 {
            (
                format!("{:.1}", r.fsyncs_per_sec()),
                format!("{:.1}", r.records as f64 / r.fsyncs as f64),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        let (p50, p99) = r.latency.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |l| (format!("{:.0}", l.p50_us), format!("{:.0}", l.p99_us)),
        );
        println!(
            "{:<width$}  {:>11.0}  {:>9}  {:>12}  {:>9}  {:>9}",
            r.phase,
            r.records_per_sec(),
            fsyncs,
            per_fsync,
            p50,
            p99
        );
    }
}

/// Parses a byte count: a plain number or one with a `K`, `KiB`, `M`,
/// `MiB`, `G` or `GiB` suffix (all powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => KIB,
        "m" | "mib" | "mb" => MIB,
        "g" | "gib" | "gb" => GIB,
        other => return Err(format!("unknown unit {other:?} (use KiB, MiB or GiB)")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("{s:?} must be positive and fit in 64 bits")),
        Some(v) => Ok(v),
    }
}

/// Bytes as MiB for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// The median of `rates` (the mean of the middle two for an even count).
pub fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    if n % 2 == 1 {
        rates[n / 2]
    } else {
        (rates[n / 2 - 1] + rates[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
    }
}
