//! `weir trace <correlation-id>`: one correlation's timeline (a request, a
//! saga) from a running server, as a tree by causation. It pages through
//! `GET /v1/correlations/{id}` and builds the tree with the SDK's
//! [`weir::timeline::Timeline`]: each event under the event that caused it,
//! indented by its depth, siblings in global order; an event whose cause is
//! outside the correlation (the command that started it) is a root and
//! names that cause. `--json` prints the same walk as one document, each
//! event with its depth. No event with the id exits with 3, as a missing
//! stream does.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use weir::timeline::Timeline;

use crate::remote::{NotFound, RemoteArgs, print_json};

/// Most events `weir trace` reads unless `--max` says otherwise: a
/// timeline is for reading, and the tree is built in memory.
pub(crate) const TRACE_EVENTS_DEFAULT: usize = 10_000;
/// Characters of an event id the tree prints (a UUID's first group).
const SHORT_ID_CHARS: usize = 8;

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// The correlation id (the SDK's `correlationid`; a saga's id).
    correlation_id: String,
    /// Most events to read [default: 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max: Option<u64>,
}

/// `--json`: the walk the tree prints.
#[derive(Debug, Serialize)]
struct TraceJson<'a> {
    correlation_id: &'a str,
    /// Events depth first (a root, then what it caused), each with its
    /// depth.
    events: Vec<TraceEvent<'a>>,
}

#[derive(Debug, Serialize)]
struct TraceEvent<'a> {
    depth: usize,
    #[serde(flatten)]
    event: &'a weir_api::Event,
}

pub fn run_trace(args: TraceArgs) -> anyhow::Result<()> {
    let client = args
        .remote
        .client(Some(std::time::Duration::from_secs(60)))?;
    let id = args.correlation_id.as_str();
    let max = args.max.map_or(TRACE_EVENTS_DEFAULT, |m| m as usize);
    let timeline = read_timeline(&client, id, max)?;
    if args.remote.json {
        print_json(&TraceJson {
            correlation_id: id,
            events: timeline
                .depth_first()
                .map(|(depth, node)| TraceEvent {
                    depth,
                    event: &node.event,
                })
                .collect(),
        })?;
    } else {
        print_tree(id, &timeline)?;
    }
    if timeline.is_empty() {
        return Err(NotFound(format!("no events with correlation id {id:?}")).into());
    }
    Ok(())
}

/// Up to `max` events of correlation `id`, as a tree by causation.
pub(crate) fn read_timeline(
    client: &weir_client::Client,
    id: &str,
    max: usize,
) -> anyhow::Result<Timeline<weir_api::Event>> {
    let mut events: Vec<weir_api::Event> = Vec::new();
    let mut from = 0;
    // The server answers at most its page limit and says with `next`
    // whether there may be more.
    while events.len() < max {
        let page = client.read_correlation(id, from, max - events.len())?;
        let more = page.next.is_some();
        let Some(last) = page.events.last() else {
            break;
        };
        from = last.position + 1;
        events.extend(page.events);
        if !more {
            break;
        }
    }
    events.truncate(max);
    Ok(Timeline::new(events))
}

/// Prints a timeline as a tree, each event under its cause; nothing for
/// an empty one.
pub(crate) fn print_tree(id: &str, timeline: &Timeline<weir_api::Event>) -> anyhow::Result<()> {
    if timeline.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "correlation {id}: {} events, {} roots",
        timeline.len(),
        timeline.roots().len()
    )?;
    for (depth, node) in timeline.depth_first() {
        let e = &node.event;
        let cause = match (node.parent, &e.causation_id) {
            (None, Some(c)) => format!("  <- {}", short(c)),
            _ => String::new(),
        };
        writeln!(
            out,
            "{}  {}{}  {}@{}  {}{cause}",
            e.recorded,
            "  ".repeat(depth),
            e.event_type,
            e.stream,
            e.version,
            short(&e.id),
        )
        .context("writing the timeline")?;
    }
    Ok(())
}

/// The first characters of an id.
fn short(id: &str) -> &str {
    match id.char_indices().nth(SHORT_ID_CHARS) {
        Some((at, _)) => &id[..at],
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn ids_are_shortened_on_character_boundaries() {
        assert_eq!(short("7d0c9a52-4f0e-4b4e"), "7d0c9a52");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short("ééééééééé"), "éééééééé");
    }
}
