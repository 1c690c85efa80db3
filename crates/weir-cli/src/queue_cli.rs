//! `weir queue claim|ack|nack|extend|pending|autoclaim`: a queue group's
//! records on a running server (Redis Streams' model). `claim` takes up to
//! N records of a topic for a consumer under a lock and prints them (one
//! JSON line each with `--json`); `ack`, `nack` (release, or `--reject` to
//! the dead letters) and `extend` act on one record the consumer holds
//! (exit 4 when it does not hold it); `pending` lists what the group's
//! consumers hold; `autoclaim` takes records idle too long.

use clap::{Args, Subcommand};
use weir_api::{AutoclaimRequest, ClaimRequest, QueueRecord, RecordAck};

use crate::remote::{RemoteArgs, print_json};

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: QueueCommand,
}

/// One record a consumer holds.
#[derive(Debug, Args)]
struct Held {
    /// The queue group.
    group: String,
    topic: String,
    /// The consumer holding it.
    #[arg(long, short)]
    consumer: String,
    #[arg(long, short, default_value_t = 0)]
    partition: i32,
    #[arg(long, short)]
    offset: i64,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Claim up to --max records of a topic for a consumer, locked for --lock-ms.
    Claim {
        group: String,
        topic: String,
        #[arg(long, short)]
        consumer: String,
        #[arg(long, default_value_t = 10)]
        max: usize,
        #[arg(long, default_value_t = 30_000)]
        lock_ms: i64,
        /// Wait up to this long for records when there are none.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
        /// Where a new group starts: earliest or latest.
        #[arg(long, default_value = "latest")]
        start: String,
        /// Deliveries a record gets at most (a new group's).
        #[arg(long)]
        delivery_limit: Option<u16>,
    },
    /// Acknowledge a held record: done, never delivered again.
    Ack(Held),
    /// Give a held record back: delivered again, or with --reject dead-lettered.
    Nack {
        #[command(flatten)]
        held: Held,
        #[arg(long)]
        reject: bool,
    },
    /// Extend the lock on a held record to --lock-ms from now.
    Extend {
        #[command(flatten)]
        held: Held,
        #[arg(long, default_value_t = 30_000)]
        lock_ms: i64,
    },
    /// List the records the group's consumers hold.
    Pending { group: String },
    /// Delete the group's state in every partition (what it holds too).
    Delete { group: String },
    /// Claim records other consumers held for --min-idle-ms or longer.
    Autoclaim {
        group: String,
        topic: String,
        #[arg(long, short)]
        consumer: String,
        #[arg(long)]
        min_idle_ms: i64,
        #[arg(long, default_value_t = 10)]
        max: usize,
        #[arg(long, default_value_t = 30_000)]
        lock_ms: i64,
    },
}

fn ack_of(held: &Held, reject: bool, lock_ms: Option<i64>) -> RecordAck {
    RecordAck {
        consumer: held.consumer.clone(),
        partition: held.partition,
        offset: held.offset,
        reject,
        lock_ms,
    }
}

fn print_records(records: &[QueueRecord], json: bool) -> anyhow::Result<()> {
    for r in records {
        if json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        let value = match (&r.value, &r.value_base64) {
            (Some(v), _) => v.to_string(),
            (None, Some(b)) => format!("base64:{b}"),
            (None, None) => "null".to_owned(),
        };
        println!(
            "{}/{} deliveries={} key={} {}",
            r.partition,
            r.offset,
            r.deliveries,
            r.key.as_deref().unwrap_or("-"),
            value
        );
    }
    Ok(())
}

pub fn run_queue(args: QueueArgs) -> anyhow::Result<()> {
    let client = args
        .remote
        .client(Some(std::time::Duration::from_secs(60)))?;
    let json = args.remote.json;
    match args.command {
        QueueCommand::Claim {
            group,
            topic,
            consumer,
            max,
            lock_ms,
            wait_ms,
            start,
            delivery_limit,
        } => {
            let req = ClaimRequest {
                consumer,
                max: Some(max),
                lock_ms: Some(lock_ms),
                wait_ms: Some(wait_ms),
                start: Some(start),
                delivery_limit,
            };
            print_records(&client.claim(&group, &topic, &req)?.records, json)
        }
        QueueCommand::Autoclaim {
            group,
            topic,
            consumer,
            min_idle_ms,
            max,
            lock_ms,
        } => {
            let req = AutoclaimRequest {
                consumer,
                min_idle_ms,
                max: Some(max),
                lock_ms: Some(lock_ms),
            };
            print_records(&client.autoclaim(&group, &topic, &req)?.records, json)
        }
        QueueCommand::Ack(held) => {
            let acked = client.ack(&held.group, &held.topic, &ack_of(&held, false, None))?;
            done(&acked, json)
        }
        QueueCommand::Nack { held, reject } => {
            let acked = client.nack(&held.group, &held.topic, &ack_of(&held, reject, None))?;
            done(&acked, json)
        }
        QueueCommand::Extend { held, lock_ms } => {
            let acked = client.extend(
                &held.group,
                &held.topic,
                &ack_of(&held, false, Some(lock_ms)),
            )?;
            done(&acked, json)
        }
        QueueCommand::Delete { group } => {
            let deleted = client.delete_queue_group(&group)?;
            if json {
                return print_json(&deleted);
            }
            println!(
                "queue group {} deleted ({} partitions)",
                deleted.group, deleted.partitions
            );
            Ok(())
        }
        QueueCommand::Pending { group } => {
            let list = client.pending(&group)?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<30} {:>9} {:>12} {:<20} {:>10} {:>10}",
                "TOPIC", "PARTITION", "OFFSET", "CONSUMER", "IDLE_MS", "DELIVERIES"
            );
            for p in list.pending {
                println!(
                    "{:<30} {:>9} {:>12} {:<20} {:>10} {:>10}",
                    p.topic, p.partition, p.offset, p.consumer, p.idle_ms, p.deliveries
                );
            }
            Ok(())
        }
    }
}

fn done(acked: &weir_api::Acked, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(acked);
    }
    println!("{}/{} {}", acked.partition, acked.offset, acked.outcome);
    Ok(())
}
