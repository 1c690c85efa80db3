//! `weir dlq list|show|replay|purge`: dead-letter topics on a running
//! server. `list` gives each one's origin, depth and oldest record; `show`
//! prints dead letters decoded (why each failed, where it came from);
//! `replay` sends one record, a range or all back to the origin, calling
//! the server until the selection is done; `purge` drops them for good
//! (all partitions, or one below an offset), and refuses to guess which.

use clap::{ArgGroup, Args, Subcommand};
use weir_api::{PurgeRequest, ReplayRequest};

use crate::remote::{RemoteArgs, print_json};

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List the dead-letter topics with their origin, depth and oldest record.
    List,
    /// Print a partition's dead letters: the record, the error and its origin.
    Show {
        /// The dead-letter topic, e.g. `orders.dlq`.
        topic: String,
        #[arg(long, short, default_value_t = 0)]
        partition: i32,
        /// The first offset to print.
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Most dead letters to print.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Replay dead letters to their origin topic and partition, in order.
    #[command(group(ArgGroup::new("which").required(true)))]
    Replay {
        /// The dead-letter topic, e.g. `orders.dlq`.
        topic: String,
        /// Every dead letter of the topic.
        #[arg(long, group = "which")]
        all: bool,
        /// The offset of the one record to replay (with --partition).
        #[arg(long, group = "which", requires = "partition")]
        offset: Option<i64>,
        /// The partition of --offset.
        #[arg(long, short)]
        partition: Option<i32>,
        /// Replay through this offset too: a range from --offset.
        #[arg(long, requires = "offset")]
        to_offset: Option<i64>,
    },
    /// Drop dead letters for good: every partition (--all), or one
    /// partition's records below --to-offset. The partitions' log start
    /// offsets move, so Kafka consumers see them gone too.
    #[command(group(ArgGroup::new("which").required(true)))]
    Purge {
        /// The dead-letter topic, e.g. `orders.dlq`.
        topic: String,
        /// Every dead letter of every partition.
        #[arg(long, group = "which")]
        all: bool,
        /// The partition to purge below --to-offset.
        #[arg(long, short, group = "which", requires = "to_offset")]
        partition: Option<i32>,
        /// Purge the records below this offset (exclusive: the record at
        /// it stays).
        #[arg(long, requires = "partition")]
        to_offset: Option<i64>,
    },
}

/// A Unix time in ms as RFC 3339 UTC, to the millisecond.
fn time(ms: i64) -> String {
    weir_store::rfc3339(ms)
}

pub fn run_dlq(args: DlqArgs) -> anyhow::Result<()> {
    let client = args
        .remote
        .client(Some(std::time::Duration::from_secs(60)))?;
    let json = args.remote.json;
    match args.command {
        DlqCommand::List => {
            let list = client.dead_letter_topics()?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<40} {:<30} {:>10} {:>10}  OLDEST",
                "TOPIC", "ORIGIN", "PARTITIONS", "DEPTH"
            );
            for t in list.topics {
                let origin = if t.origin_exists {
                    t.origin_topic
                } else {
                    format!("{} (gone)", t.origin_topic)
                };
                println!(
                    "{:<40} {:<30} {:>10} {:>10}  {}",
                    t.topic,
                    origin,
                    t.partitions,
                    t.depth,
                    t.oldest_timestamp_ms.map_or("-".to_owned(), time)
                );
            }
        }
        DlqCommand::Show {
            topic,
            partition,
            offset,
            max,
        } => {
            let page = client.dead_letters(&topic, partition, offset, max)?;
            if json {
                return print_json(&page);
            }
            for r in &page.records {
                println!(
                    "{}:{} from {}:{}@{}, group {}, {} after {} attempts ({} to {}): {}",
                    r.partition,
                    r.offset,
                    r.origin.topic,
                    r.origin.partition,
                    r.origin.offset,
                    r.group,
                    r.error_kind,
                    r.attempts,
                    time(r.first_failure_ms),
                    time(r.last_failure_ms),
                    r.error
                );
                if let Some(from) = &r.replayed_from {
                    println!("  replayed {} times, last from {from}", r.replays);
                }
                let value = match (&r.value, &r.value_base64) {
                    (Some(v), _) => v.to_string(),
                    (None, Some(b)) => format!("base64:{b}"),
                    (None, None) => "null".to_owned(),
                };
                println!("  key {:?} value {value}", r.key.as_deref().unwrap_or(""));
            }
            for n in &page.not_dead_letters {
                println!(
                    "{partition}:{} is not a dead letter: {}",
                    n.offset, n.reason
                );
            }
        }
        DlqCommand::Replay {
            topic,
            all,
            offset,
            partition,
            to_offset,
        } => {
            let mut request = Some(ReplayRequest {
                all,
                partition: if all { None } else { partition },
                offset,
                to_offset,
            });
            let (mut replayed, mut skipped) = (0, 0);
            while let Some(r) = request {
                let outcome = client.replay_dead_letters(&topic, &r)?;
                replayed += outcome.replayed;
                skipped += outcome.skipped_not_dead_letters;
                request = outcome.next;
            }
            if json {
                return print_json(&serde_json::json!({
                    "replayed": replayed,
                    "skipped_not_dead_letters": skipped,
                }));
            }
            println!("replayed {replayed} dead letters from {topic}");
            if skipped > 0 {
                println!("skipped {skipped} records that are not dead letters");
            }
        }
        DlqCommand::Purge {
            topic,
            all,
            partition,
            to_offset,
        } => {
            let request = PurgeRequest {
                all,
                partition,
                to_offset,
            };
            let result = client.purge_dead_letters(&topic, &request)?;
            if json {
                return print_json(&result);
            }
            println!("purged {} dead letters from {topic}", result.purged);
            for p in &result.partitions {
                println!(
                    "  partition {}: {} purged, now starts at offset {}",
                    p.partition, p.purged, p.log_start_offset
                );
            }
        }
    }
    Ok(())
}
