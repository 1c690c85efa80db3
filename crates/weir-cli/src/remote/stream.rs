//! `weir stream`: an event-store stream over the HTTP API: append, read
//! forward or backward, subscribe live, delete or tombstone it, and its
//! metadata.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use weir_api::{Append, EventIn};
use weir_client::{Client, ClientError, Direction, Page, Subscribe};

use super::{RemoteArgs, print_json, print_json_line};

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
