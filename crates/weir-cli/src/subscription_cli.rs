//! `weir subscription create|update|delete|list|info|read|ack|nack|replay-parked`:
//! persistent subscriptions of the event store on a running server
//! (KurrentDB's competing consumers). The target is a stream id,
//! `$ce-<category>` or `$all`. `read` prints the events handed to a
//! consumer with their ack ids (one JSON line each with `--json`); `ack`
//! and `nack` take those ids (exit 4 when the consumer does not hold one).

use clap::{Args, Subcommand};
use weir_api::{SubscriptionAck, SubscriptionNack, SubscriptionRead, SubscriptionSettings};

use crate::remote::{RemoteArgs, print_json};

#[derive(Debug, Args)]
pub struct SubscriptionArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: SubscriptionCommand,
}

/// A group: its target and name.
#[derive(Debug, Args)]
struct GroupName {
    /// A stream id, `$ce-<category>` or `$all`.
    target: String,
    group: String,
}

/// A group's settings; absent ones keep their defaults (or, on update,
/// are reset to them).
#[derive(Debug, Args)]
struct Settings {
    /// A version for a stream, a position for a category or $all (default: the end).
    #[arg(long)]
    start_from: Option<u64>,
    #[arg(long)]
    max_retry_count: Option<u16>,
    #[arg(long)]
    message_timeout_ms: Option<i64>,
    #[arg(long)]
    max_subscriber_count: Option<u32>,
    #[arg(long)]
    read_batch_size: Option<u32>,
    /// round_robin or pinned.
    #[arg(long)]
    strategy: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SubscriptionCommand {
    /// Create a group, or change its settings.
    Create {
        #[command(flatten)]
        name: GroupName,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete a group.
    Delete(GroupName),
    /// List every group.
    List,
    /// A group's consumers, events in flight, checkpoint and parked events.
    Info(GroupName),
    /// Read up to --max events for a consumer, held for the message timeout.
    Read {
        #[command(flatten)]
        name: GroupName,
        #[arg(long, short)]
        consumer: String,
        #[arg(long)]
        max: Option<u32>,
        /// Wait up to this long for events when there are none.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
    },
    /// Ack events the consumer holds, by ack id.
    Ack {
        #[command(flatten)]
        name: GroupName,
        #[arg(long, short)]
        consumer: String,
        #[arg(required = true)]
        ack_ids: Vec<String>,
    },
    /// Nack events the consumer holds: --action retry, park or skip.
    Nack {
        #[command(flatten)]
        name: GroupName,
        #[arg(long, short)]
        consumer: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(required = true)]
        ack_ids: Vec<String>,
    },
    /// Deliver every event parked so far to the group once more.
    ReplayParked(GroupName),
}

pub fn run_subscription(args: SubscriptionArgs) -> anyhow::Result<()> {
    let client = args
        .remote
        .client(Some(std::time::Duration::from_secs(60)))?;
    let json = args.remote.json;
    match args.command {
        SubscriptionCommand::Create { name, settings } => {
            let s = SubscriptionSettings {
                start_from: settings.start_from,
                max_retry_count: settings.max_retry_count,
                message_timeout_ms: settings.message_timeout_ms,
                max_subscriber_count: settings.max_subscriber_count,
                read_batch_size: settings.read_batch_size,
                strategy: settings.strategy,
            };
            print_info(
                &client.put_subscription(&name.target, &name.group, &s)?,
                json,
            )
        }
        SubscriptionCommand::Delete(name) => {
            client.delete_subscription(&name.target, &name.group)?;
            if !json {
                println!("deleted {} on {}", name.group, name.target);
            }
            Ok(())
        }
        SubscriptionCommand::List => {
            let list = client.subscriptions()?;
            if json {
                return print_json(&list);
            }
            println!("{:<40} {:<30} {:<12}", "TARGET", "GROUP", "STRATEGY");
            for g in list.groups {
                let strategy = g.settings.strategy.unwrap_or_default();
                println!("{:<40} {:<30} {:<12}", g.target, g.group, strategy);
            }
            Ok(())
        }
        SubscriptionCommand::Info(name) => {
            print_info(&client.subscription(&name.target, &name.group)?, json)
        }
        SubscriptionCommand::Read {
            name,
            consumer,
            max,
            wait_ms,
        } => {
            let read = SubscriptionRead {
                consumer,
                max,
                wait_ms: Some(wait_ms),
            };
            let got = client.read_subscription(&name.target, &name.group, &read)?;
            for e in got.events {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                    continue;
                }
                println!(
                    "{} retries={} {}@{} {} {}",
                    e.ack_id,
                    e.retry_count,
                    e.event.stream,
                    e.event.version,
                    e.event.event_type,
                    e.event.data
                );
            }
            Ok(())
        }
        SubscriptionCommand::Ack {
            name,
            consumer,
            ack_ids,
        } => {
            let req = SubscriptionAck { consumer, ack_ids };
            let done = client.ack_subscription(&name.target, &name.group, &req)?;
            counted(&done, "acked", json)
        }
        SubscriptionCommand::Nack {
            name,
            consumer,
            action,
            reason,
            ack_ids,
        } => {
            let req = SubscriptionNack {
                consumer,
                ack_ids,
                action: action.clone(),
                reason,
            };
            let done = client.nack_subscription(&name.target, &name.group, &req)?;
            counted(&done, &format!("nacked ({action})"), json)
        }
        SubscriptionCommand::ReplayParked(name) => {
            let done = client.replay_parked(&name.target, &name.group)?;
            counted(&done, "to be replayed", json)
        }
    }
}

fn counted(done: &weir_api::SubscriptionDone, what: &str, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(done);
    }
    println!("{} {what}", done.count);
    Ok(())
}

fn print_info(i: &weir_api::SubscriptionInfo, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(i);
    }
    println!("{} on {}", i.group, i.target);
    println!(
        "checkpoint {} of {}, {} in flight, {} parked, {} replaying ({})",
        i.checkpoint, i.last_known, i.in_flight, i.parked, i.replaying, i.parked_stream
    );
    for c in &i.consumers {
        println!(
            "  {:<30} in_flight={} idle_ms={}",
            c.name, c.in_flight, c.idle_ms
        );
    }
    Ok(())
}
