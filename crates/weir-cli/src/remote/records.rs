//! `weir produce` and `weir consume`: records in and out of a topic over
//! the HTTP API, as lines or JSON, from an offset, a time or a group's
//! committed position.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use weir_api::{Produce, ProduceRecord};
use weir_client::Client;

use super::{RemoteArgs, key_value, print_json_line};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The topic to write to.
    topic: String,
    /// Split each line into key and value at the first occurrence of this
    /// (lines without it have no key).
    #[arg(long, short = 'K')]
    key_separator: Option<String>,
    /// A header for every record, `name=value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition instead of the key's.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Lines sent per request (each request is acknowledged once durable);
    /// 1 sends every line as soon as it is read.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

/// Shows progress on standard error, at most every half second, when it
/// is a terminal.
struct Progress {
    on: bool,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            last: Instant::now(),
        }
    }

    fn show(&mut self, what: impl FnOnce() -> String) {
        if self.on && self.last.elapsed() >= Duration::from_millis(500) {
            eprint!("\r{}\x1b[K", what());
            self.last = Instant::now();
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

pub fn run_produce(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.remote.client(Some(Duration::from_secs(60)))?;
    let headers: BTreeMap<String, String> = args.headers.into_iter().collect();
    let mut pending = Vec::new();
    let mut sent = 0u64;
    let mut progress = Progress::new();
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut send = |pending: &mut Vec<ProduceRecord>, out: &mut dyn Write| -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let result = client.produce(
            &args.topic,
            &Produce {
                records: std::mem::take(pending),
            },
        )?;
        sent += result.offsets.len() as u64;
        if args.remote.json {
            for o in &result.offsets {
                print_json_line(out, o)?;
            }
        }
        progress.show(|| {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            format!("{sent} records ({:.0}/s)", sent as f64 / secs)
        });
        Ok(())
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
                None => (None, line),
            },
            None => (None, line),
        };
        pending.push(ProduceRecord {
            key,
            value: None,
            // The line's bytes exactly as read, not re-encoded JSON.
            value_base64: Some(B64.encode(value.as_bytes())),
            headers: headers.clone(),
            partition: args.partition,
        });
        if pending.len() >= args.batch as usize {
            send(&mut pending, &mut out)?;
        }
    }
    send(&mut pending, &mut out)?;
    progress.done();
    if !args.remote.json {
        eprintln!("produced {sent} records to {}", args.topic);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The topic to read.
    topic: String,
    /// Read only this partition [default: all of them].
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Where to start: `earliest`, `latest`, an offset, or a time
    /// (RFC 3339, e.g. 2026-12-01T10:00:00Z, or ms since the epoch with an
    /// `@` in front) — records before it are skipped.
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Keep waiting for new records after the end.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Keep this consumer's position in a consumer group: start from the
    /// group's committed offsets (--from where it has none) and commit what
    /// was printed. The group must have no Kafka members (their offsets are
    /// theirs to commit), as for an offset reset.
    #[arg(long, short = 'g')]
    group: Option<String>,
}

/// Where `consume` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
    TimeMs(i64),
}

fn parse_from(s: &str) -> anyhow::Result<Start> {
    Ok(match s {
        "earliest" => Start::Earliest,
        "latest" => Start::Latest,
        _ => {
            if let Some(ms) = s.strip_prefix('@') {
                Start::TimeMs(ms.parse().context("a time after @ is ms since the epoch")?)
            } else if let Ok(offset) = s.parse() {
                Start::Offset(offset)
            } else {
                Start::TimeMs(parse_rfc3339(s).with_context(|| {
                    format!("--from {s:?}: earliest, latest, an offset, or a time")
                })?)
            }
        }
    })
}

/// Milliseconds since the epoch of an RFC 3339 time (`Z` or `±HH:MM`).
pub fn parse_rfc3339(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("{s:?} is not an RFC 3339 time like 2026-12-01T10:00:00Z");
    let (date, rest) = s.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (Some(Ok(y)), Some(Ok(mo)), Some(Ok(day))) = (d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = rest.rfind(['+', '-']).ok_or_else(bad)?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
        let minutes =
            h.parse::<i64>().map_err(|_| bad())? * 60 + m.parse::<i64>().map_err(|_| bad())?;
        (c, sign * minutes)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (Some(Ok(h)), Some(Ok(mi)), Some(Ok(sec))) = (t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let millis: i64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
    // Days since 1970-01-01 of a civil date (proleptic Gregorian).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + millis)
}

pub fn run_consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.remote.client(Some(Duration::from_secs(60)))?;
    let from = parse_from(&args.from)?;
    let info = client.topic(&args.topic)?;
    let partitions: Vec<_> = info
        .partitions
        .iter()
        .filter(|p| args.partition.is_none_or(|only| only == p.partition))
        .collect();
    if partitions.is_empty() {
        bail!("topic {} has no partition {:?}", args.topic, args.partition);
    }
    let mut next: Vec<(i32, i64)> = partitions
        .iter()
        .map(|p| {
            let at = match from {
                Start::Earliest | Start::TimeMs(_) => p.start_offset,
                Start::Latest => p.durable_offset,
                Start::Offset(o) => o.max(p.start_offset),
            };
            (p.partition, at)
        })
        .collect();
    let min_time = match from {
        Start::TimeMs(ms) => ms,
        _ => i64::MIN,
    };
    if let Some(group) = &args.group {
        match client.group(group) {
            Ok(info) => {
                for p in info.partitions.iter().filter(|p| p.topic == args.topic) {
                    if let (Some(c), Some(at)) = (
                        p.committed_offset,
                        next.iter_mut().find(|(q, _)| *q == p.partition),
                    ) {
                        at.1 = c;
                    }
                }
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut committed = next.clone();
    let mut out = std::io::stdout().lock();
    let result = consume_loop(
        &client,
        &args,
        min_time,
        &mut next,
        &mut committed,
        &mut out,
    );
    // Commit what was printed, whatever ended the loop.
    if let Some(group) = &args.group {
        commit_positions(&client, group, &args.topic, &next, &mut committed)?;
    }
    result
}

/// Commits `next` for the partitions whose position moved since
/// `committed`, as the group's offsets.
fn commit_positions(
    client: &Client,
    group: &str,
    topic: &str,
    next: &[(i32, i64)],
    committed: &mut [(i32, i64)],
) -> anyhow::Result<()> {
    for ((partition, at), (_, done)) in next.iter().zip(committed.iter_mut()) {
        if at == done {
            continue;
        }
        client
            .reset_offsets(
                group,
                &weir_api::ResetOffsets {
                    to: weir_api::ResetTo::Offset,
                    offset: Some(*at),
                    datetime: None,
                    timestamp_ms: None,
                    shift_by: None,
                    topics: vec![weir_api::ResetTopic {
                        topic: topic.to_owned(),
                        partitions: Some(vec![*partition]),
                    }],
                    execute: true,
                },
            )
            .with_context(|| {
                format!("committing offset {at} of {topic}:{partition} for group {group}")
            })?;
        *done = *at;
    }
    Ok(())
}

/// Prints records from each partition's `next` offset (moving it past
/// what it printed) until `--max` or, without `--follow`, the end; with a
/// group, commits while following. The caller commits at the end.
fn consume_loop(
    client: &Client,
    args: &ConsumeArgs,
    min_time: i64,
    next: &mut [(i32, i64)],
    committed: &mut [(i32, i64)],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let max = args.max.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    loop {
        let mut got_any = false;
        for (partition, at) in next.iter_mut() {
            let page = client.fetch(&args.topic, *partition, *at, 500)?;
            got_any |= page.next_offset > *at;
            for r in page.records {
                if printed >= max {
                    return Ok(());
                }
                if r.timestamp_ms < min_time {
                    continue;
                }
                *at = r.offset + 1;
                if args.remote.json {
                    print_json_line(out, &r)?;
                } else {
                    let value = r
                        .value_base64
                        .as_deref()
                        .and_then(|v| B64.decode(v).ok())
                        .map_or("null".into(), |v| String::from_utf8_lossy(&v).into_owned());
                    writeln!(
                        out,
                        "{}:{}\t{}\t{}",
                        r.partition,
                        r.offset,
                        r.key.as_deref().unwrap_or(""),
                        value
                    )?;
                }
                printed += 1;
            }
            *at = (*at).max(page.next_offset);
        }
        if printed >= max {
            return Ok(());
        }
        if !got_any {
            if !args.follow {
                return Ok(());
            }
            out.flush()?;
            if let Some(group) = &args.group {
                commit_positions(client, group, &args.topic, next, committed)?;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.123Z").unwrap(),
            951_782_400_123
        );
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40+01:00").unwrap(),
            1_795_000_000_000
        );
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn from_parses() {
        assert_eq!(parse_from("earliest").unwrap(), Start::Earliest);
        assert_eq!(parse_from("42").unwrap(), Start::Offset(42));
        assert_eq!(parse_from("@1000").unwrap(), Start::TimeMs(1000));
        assert_eq!(
            parse_from("1970-01-01T00:00:01Z").unwrap(),
            Start::TimeMs(1000)
        );
        assert!(parse_from("soon").is_err());
    }
}
