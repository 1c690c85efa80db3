//! The API subcommands of `weir` (`topic`, `produce`, `consume`, `stream`):
//! each talks to a running server over the HTTP API with `weir-client`,
//! prints a human table (or the API's JSON with `--json`), and exits with a
//! code scripts can rely on ([`exit_code`]).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use serde_json::Value;
use weir_api::{Append, CreateTopic, EventIn, Produce, ProduceRecord};
use weir_client::{Client, ClientError, Direction, Page, Subscribe};

/// Where the server is and how to print. Every API subcommand takes these.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The server's HTTP address [default: the config file's `http_addr`,
    /// else 127.0.0.1:8080].
    #[arg(long, env = "WEIR_SERVER", global = true)]
    server: Option<String>,
    /// A `weir serve` config file whose `http_addr` names the server.
    #[arg(long, env = "WEIR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the API's JSON (one document, or one per line for records and
    /// events) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl RemoteArgs {
    pub(crate) fn client(&self, timeout: Option<Duration>) -> anyhow::Result<Client> {
        let address = match (&self.server, &self.config) {
            (Some(s), _) => s.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("in config file {}", path.display()))?;
                match table.get("http_addr") {
                    Some(toml::Value::String(a)) => a.clone(),
                    Some(_) => bail!("http_addr in {} is not a string", path.display()),
                    None => "127.0.0.1:8080".to_owned(),
                }
            }
            (None, None) => "127.0.0.1:8080".to_owned(),
        };
        Ok(Client::with_timeout(&address, timeout)?)
    }
}

/// Exit codes of the API subcommands.
pub mod exit {
    /// The server answered with an error not listed below.
    pub const FAILED: u8 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The topic, partition, stream or group does not exist (404), or the
    /// stream was deleted for good (410).
    pub const NOT_FOUND: u8 = 3;
    /// A conflict: a wrong expected version, a group with active members,
    /// a topic that exists (409).
    pub const CONFLICT: u8 = 4;
    /// The server could not be reached, or answered nonsense.
    pub const UNREACHABLE: u8 = 5;
}

/// Nothing answers what was asked for, though the server did not refuse
/// it (`weir trace` of an id no event has): exits with
/// [`exit::NOT_FOUND`], as a 404 does.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// The exit code for an error of an API subcommand.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<NotFound>().is_some() {
        return exit::NOT_FOUND;
    }
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Problem(p)) => match p.status {
            404 | 410 => exit::NOT_FOUND,
            409 => exit::CONFLICT,
            _ => exit::FAILED,
        },
        Some(ClientError::Transport { .. } | ClientError::Protocol { .. }) => exit::UNREACHABLE,
        Some(ClientError::Address { .. }) => exit::USAGE,
        None => exit::FAILED,
    }
}

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions [default: the server's].
        #[arg(long)]
        partitions: Option<u32>,
        /// A topic config, `name=value` (repeatable), e.g. retention.ms=86400000.
        #[arg(long = "config-entry", short = 'c', value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// List the topics.
    List {
        /// Also list internal topics (`__weir_events`, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions (start, end and durable offsets) and configs.
    Describe { name: String },
    /// Delete a topic and its records.
    Delete { name: String },
    /// Set or reset topic configs, all or nothing.
    Alter {
        name: String,
        /// A config to set, `name=value` (repeatable).
        #[arg(long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// A config to reset to its default (repeatable).
        #[arg(long = "reset")]
        reset: Vec<String>,
        /// Check the change without making it.
        #[arg(long)]
        validate_only: bool,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not name=value")),
    }
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_json_line(
    out: &mut (impl Write + ?Sized),
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

pub fn run_topic(args: TopicArgs) -> anyhow::Result<()> {
    let client = args.remote.client(Some(Duration::from_secs(60)))?;
    let json = args.remote.json;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            configs,
        } => {
            let info = client.create_topic(&CreateTopic {
                name,
                partitions,
                configs: configs.into_iter().collect(),
            })?;
            if json {
                return print_json(&info);
            }
            println!(
                "created topic {} with {} partitions",
                info.name,
                info.partitions.len()
            );
        }
        TopicCommand::List { internal } => {
            let mut list = client.topics()?;
            list.topics.retain(|t| internal || !t.internal);
            if json {
                return print_json(&list);
            }
            println!("{:<50} {:>10} {:>9}", "TOPIC", "PARTITIONS", "INTERNAL");
            for t in list.topics {
                println!("{:<50} {:>10} {:>9}", t.name, t.partitions, t.internal);
            }
        }
        TopicCommand::Describe { name } => {
            let info = client.topic(&name)?;
            if json {
                return print_json(&info);
            }
            println!("topic {} (internal: {})", info.name, info.internal);
            println!(
                "{:>9} {:>14} {:>14} {:>14}",
                "PARTITION", "START", "END", "DURABLE"
            );
            for p in &info.partitions {
                println!(
                    "{:>9} {:>14} {:>14} {:>14}",
                    p.partition, p.start_offset, p.end_offset, p.durable_offset
                );
            }
            println!("{:<40} VALUE", "CONFIG");
            for (k, v) in &info.configs {
                println!("{k:<40} {v}");
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name)?;
            if !json {
                println!("deleted topic {name}");
            }
        }
        TopicCommand::Alter {
            name,
            set,
            reset,
            validate_only,
        } => {
            if set.is_empty() && reset.is_empty() {
                bail!("nothing to change: give --set name=value or --reset name");
            }
            let info = client.alter_topic(
                &name,
                &weir_api::AlterConfigs {
                    set: set.into_iter().collect(),
                    reset,
                    validate_only,
                },
            )?;
            if json {
                return print_json(&info);
            }
            let verb = if validate_only {
                "would alter"
            } else {
                "altered"
            };
            println!("{verb} topic {}; its configs:", info.name);
            for (k, v) in &info.configs {
                println!("  {k} = {v}");
            }
        }
    }
    Ok(())
}

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

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: StreamCommand,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Append events to a stream: one with --type and --data, or one per
    /// line of standard input (each a JSON object {"type", "data", "id"?,
    /// "metadata"?}) as one atomic append.
    Append {
        stream: String,
        /// `any`, `no_stream`, `exists`, or the stream's last version.
        #[arg(long, short = 'e', default_value = "any")]
        expected: String,
        /// The event's type (with --data).
        #[arg(long, short = 't', requires = "data")]
        r#type: Option<String>,
        /// The event's data, JSON.
        #[arg(long, short = 'd', requires = "type")]
        data: Option<String>,
        /// The event's id (with --data), so a retry is recognised.
        #[arg(long, requires = "data")]
        id: Option<String>,
    },
    /// Read a stream's events.
    Read {
        stream: String,
        /// First version to read [default: the start, or the end with
        /// --backward].
        #[arg(long)]
        from: Option<u64>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
        /// Most events to print [default: all].
        #[arg(long)]
        max: Option<u64>,
    },
    /// Read all events in global order, or a category's, or a type's.
    ReadAll {
        /// First global position [default: the start, or the end with
        /// --backward].
        #[arg(long)]
        from: Option<u64>,
        /// Only the streams of this category (`account` for `account-42`).
        #[arg(long, conflicts_with = "type")]
        category: Option<String>,
        /// Only events of this type.
        #[arg(long)]
        r#type: Option<String>,
        #[arg(long)]
        backward: bool,
        /// Most events to print [default: all].
        #[arg(long)]
        max: Option<u64>,
    },
    /// Soft-delete a stream: it reads as absent and can be written again.
    Delete {
        stream: String,
        #[arg(long, short = 'e')]
        expected: Option<String>,
    },
    /// Delete a stream for good: appends and reads fail from now on.
    Tombstone {
        stream: String,
        #[arg(long, short = 'e')]
        expected: Option<String>,
    },
    /// Follow events as they are appended: a stream's, a category's, or
    /// all; catches up from the log first, and resumes where it was after
    /// a disconnection.
    Subscribe {
        /// The stream to follow [default: all events].
        stream: Option<String>,
        /// Follow a category's streams instead.
        #[arg(long, conflicts_with = "stream")]
        category: Option<String>,
        /// Start at this version (a stream) or global position [default:
        /// the start].
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many events.
        #[arg(long)]
        max: Option<u64>,
    },
    /// Show a stream's settings, or change the ones given (the others are
    /// kept).
    Meta {
        stream: String,
        /// Hide events older than this many ms.
        #[arg(long)]
        max_age_ms: Option<u64>,
        /// Keep only the newest this many events visible.
        #[arg(long)]
        max_count: Option<u64>,
        /// Hide the versions below this one.
        #[arg(long)]
        truncate_before: Option<u64>,
        /// Remove every setting.
        #[arg(long, conflicts_with_all = ["max_age_ms", "max_count", "truncate_before"])]
        clear: bool,
    },
}

fn direction(backward: bool) -> Direction {
    if backward {
        Direction::Backward
    } else {
        Direction::Forward
    }
}

fn expected_value(s: &str) -> anyhow::Result<Value> {
    Ok(match s {
        "any" | "no_stream" | "exists" => Value::String(s.to_owned()),
        _ => {
            Value::from(s.parse::<u64>().with_context(|| {
                format!("--expected {s:?}: any, no_stream, exists or a version")
            })?)
        }
    })
}

fn print_event(out: &mut impl Write, json: bool, e: &weir_api::Event) -> anyhow::Result<()> {
    if json {
        return print_json_line(out, e);
    }
    writeln!(
        out,
        "{}@{}\t#{}\t{}\t{}\t{}",
        e.stream, e.version, e.position, e.recorded, e.event_type, e.data
    )?;
    Ok(())
}

pub fn run_stream(args: StreamArgs) -> anyhow::Result<()> {
    let client = args.remote.client(Some(Duration::from_secs(60)))?;
    let json = args.remote.json;
    let mut out = std::io::stdout().lock();
    match args.command {
        StreamCommand::Append {
            stream,
            expected,
            r#type,
            data,
            id,
        } => {
            let events = match (r#type, data) {
                (Some(event_type), Some(data)) => vec![EventIn {
                    id,
                    event_type,
                    data: serde_json::from_str(&data).context("--data is not JSON")?,
                    metadata: None,
                    traceparent: None,
                    tracestate: None,
                }],
                _ => {
                    let mut events = Vec::new();
                    for (n, line) in std::io::stdin().lock().lines().enumerate() {
                        let line = line.context("reading standard input")?;
                        if line.trim().is_empty() {
                            continue;
                        }
                        events.push(serde_json::from_str::<EventIn>(&line).with_context(|| {
                            format!("line {}: not an event {{\"type\", \"data\", \"id\"?, \"metadata\"?}}", n + 1)
                        })?);
                    }
                    if events.is_empty() {
                        bail!("no events: give --type and --data, or events on standard input");
                    }
                    events
                }
            };
            let done = client.append(
                &stream,
                &Append {
                    expected_version: expected_value(&expected)?,
                    events,
                },
            )?;
            if json {
                return print_json(&done);
            }
            println!(
                "appended versions {}..={} of {stream} at positions {}..={}",
                done.first_version, done.last_version, done.first_position, done.last_position
            );
        }
        StreamCommand::Read {
            stream,
            from,
            backward,
            max,
        } => {
            let direction = direction(backward);
            page_through(
                from,
                direction,
                max,
                |page| client.read_stream(&stream, page),
                |e| e.version,
                &mut |e| print_event(&mut out, json, e),
            )?;
        }
        StreamCommand::ReadAll {
            from,
            category,
            r#type,
            backward,
            max,
        } => {
            let direction = direction(backward);
            let read = |page: &Page| match (&category, &r#type) {
                (Some(c), _) => client.read_category(c, page),
                (_, Some(t)) => client.read_type(t, page),
                _ => client.read_all(page),
            };
            page_through(from, direction, max, read, |e| e.position, &mut |e| {
                print_event(&mut out, json, e)
            })?;
        }
        StreamCommand::Delete { stream, expected } => {
            client.delete_stream(&stream, false, expected.as_deref())?;
            if !json {
                println!("deleted stream {stream} (soft)");
            }
        }
        StreamCommand::Tombstone { stream, expected } => {
            client.delete_stream(&stream, true, expected.as_deref())?;
            if !json {
                println!("tombstoned stream {stream}");
            }
        }
        StreamCommand::Subscribe {
            stream,
            category,
            from,
            max,
        } => {
            let target = match (stream, category) {
                (Some(s), _) => Subscribe::Stream(s),
                (_, Some(c)) => Subscribe::Category(c),
                _ => Subscribe::All,
            };
            drop(client);
            let live = args.remote.client(None)?;
            subscribe(
                &live,
                &target,
                from,
                max.unwrap_or(u64::MAX),
                json,
                &mut out,
            )?;
        }
        StreamCommand::Meta {
            stream,
            max_age_ms,
            max_count,
            truncate_before,
            clear,
        } => {
            let mut settings = client.stream_metadata(&stream)?;
            let change =
                clear || max_age_ms.is_some() || max_count.is_some() || truncate_before.is_some();
            if clear {
                settings = weir_api::StreamMetadata {
                    max_age_ms: None,
                    max_count: None,
                    truncate_before: None,
                };
            }
            settings.max_age_ms = max_age_ms.or(settings.max_age_ms);
            settings.max_count = max_count.or(settings.max_count);
            settings.truncate_before = truncate_before.or(settings.truncate_before);
            if change {
                settings = client.set_stream_metadata(&stream, &settings)?;
            }
            if json {
                return print_json(&settings);
            }
            let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
            println!(
                "{stream}: max_age_ms {}, max_count {}, truncate_before {}",
                show(settings.max_age_ms),
                show(settings.max_count),
                show(settings.truncate_before)
            );
        }
    }
    Ok(())
}

/// Prints live events until `max`, reconnecting after the last event seen
/// when the server says the client lagged or the connection drops (a few
/// tries in a row, then it gives up).
fn subscribe(
    client: &Client,
    target: &Subscribe,
    from: u64,
    max: u64,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut last_id: Option<String> = None;
    let mut printed = 0u64;
    let mut failures = 0u32;
    while printed < max {
        let stream = match client.subscribe(target, from, last_id.as_deref()) {
            Ok(s) => s,
            Err(e @ (ClientError::Transport { .. } | ClientError::Protocol { .. }))
                if failures < 5 =>
            {
                failures += 1;
                eprintln!("reconnecting ({e})");
                std::thread::sleep(Duration::from_millis(200 << failures));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for event in stream {
            let event = match event {
                Ok(e) => e,
                Err(_) => break,
            };
            match event.event.as_deref() {
                Some("event") => {
                    failures = 0;
                    let e: weir_api::Event = serde_json::from_str(&event.data)
                        .context("the server sent an event this client does not understand")?;
                    print_event(out, json, &e)?;
                    out.flush()?;
                    last_id = event.id;
                    printed += 1;
                    if printed >= max {
                        return Ok(());
                    }
                }
                Some("lagged") => break,
                Some("error") => bail!("the live stream ended: {}", event.data),
                _ => {}
            }
        }
        failures += 1;
        if failures > 5 {
            bail!("the live stream keeps ending; last event seen: {last_id:?}");
        }
    }
    Ok(())
}

/// Reads page after page from `from` until the end or `max` events,
/// handing each event to `each`; `key` is what the next page starts after.
fn page_through(
    from: Option<u64>,
    direction: Direction,
    max: Option<u64>,
    read: impl Fn(&Page) -> Result<weir_api::Events, ClientError>,
    key: impl Fn(&weir_api::Event) -> u64,
    each: &mut dyn FnMut(&weir_api::Event) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let max = max.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let mut page = Page {
        from,
        direction,
        limit: 1000,
    };
    loop {
        page.limit = (max - printed).min(1000) as usize;
        let events = read(&page)?.events;
        for e in &events {
            each(e)?;
        }
        printed += events.len() as u64;
        let Some(last) = events.last() else {
            return Ok(());
        };
        if printed >= max || events.len() < page.limit {
            return Ok(());
        }
        page.from = match direction {
            Direction::Forward => Some(key(last) + 1),
            Direction::Backward => match key(last).checked_sub(1) {
                Some(k) => Some(k),
                None => return Ok(()),
            },
        };
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
