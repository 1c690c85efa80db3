//! `weir group list|describe|reset-offsets|delete`: consumer groups on a
//! running server, in the manner of Kafka's `kafka-consumer-groups` (a
//! reset is a dry run unless `--execute`; resets and deletes are refused
//! while the group has members).

use clap::{ArgGroup, Args, Subcommand};
use weir_api::{ResetOffsets, ResetTo, ResetTopic};

use crate::remote::{RemoteArgs, parse_rfc3339, print_json};

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List the groups (classic and consumer protocol).
    List,
    /// Show a group's members, assignments, committed offsets and lag.
    Describe { group: String },
    /// Move a group's committed offsets (a dry run unless --execute).
    #[command(group(ArgGroup::new("to").required(true)))]
    ResetOffsets {
        group: String,
        /// To the first offset each partition still holds.
        #[arg(long, group = "to")]
        to_earliest: bool,
        /// To each partition's end (skip everything there is).
        #[arg(long, group = "to")]
        to_latest: bool,
        /// To the first record at or after this time (RFC 3339).
        #[arg(long, group = "to")]
        to_datetime: Option<String>,
        /// To this offset (clamped to each partition's offsets).
        #[arg(long, group = "to")]
        to_offset: Option<i64>,
        /// By this many records from the committed offset (negative: back).
        #[arg(long, group = "to", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Only this topic, or `topic:0,2` for some of its partitions
        /// (repeatable) [default: every partition the group committed].
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Commit the new offsets; without it nothing changes.
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group and its committed offsets.
    Delete { group: String },
}

fn topic_arg(s: &str) -> anyhow::Result<ResetTopic> {
    Ok(match s.split_once(':') {
        None => ResetTopic {
            topic: s.to_owned(),
            partitions: None,
        },
        Some((topic, list)) => ResetTopic {
            topic: topic.to_owned(),
            partitions: Some(
                list.split(',')
                    .map(|p| p.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| anyhow::anyhow!("--topic {s:?}: topic or topic:0,1,2"))?,
            ),
        },
    })
}

pub fn run_group(args: GroupArgs) -> anyhow::Result<()> {
    let client = args
        .remote
        .client(Some(std::time::Duration::from_secs(60)))?;
    let json = args.remote.json;
    match args.command {
        GroupCommand::List => {
            let list = client.groups()?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<40} {:<10} {:<20} PROTOCOL TYPE",
                "GROUP", "TYPE", "STATE"
            );
            for g in list.groups {
                println!(
                    "{:<40} {:<10} {:<20} {}",
                    g.group, g.group_type, g.state, g.protocol_type
                );
            }
        }
        GroupCommand::Describe { group } => {
            let info = client.group(&group)?;
            if json {
                return print_json(&info);
            }
            println!(
                "group {} ({}, {}, protocol {:?}, generation {}), {} members, lag {}",
                info.group,
                info.group_type,
                info.state,
                info.protocol,
                info.generation,
                info.members.len(),
                info.lag_total
            );
            let show = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
            println!(
                "{:<30} {:>9} {:>14} {:>14} {:>10}  MEMBER",
                "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
            );
            for p in &info.partitions {
                println!(
                    "{:<30} {:>9} {:>14} {:>14} {:>10}  {}",
                    p.topic,
                    p.partition,
                    show(p.committed_offset),
                    show(p.end_offset),
                    show(p.lag),
                    p.member_id.as_deref().unwrap_or("-")
                );
            }
            for m in &info.members {
                let assigned: Vec<String> = m
                    .assignment
                    .iter()
                    .map(|t| format!("{}:{:?}", t.topic, t.partitions))
                    .collect();
                println!(
                    "member {} ({} from {}): {}",
                    m.member_id,
                    m.client_id,
                    m.client_host,
                    assigned.join(" ")
                );
            }
        }
        GroupCommand::ResetOffsets {
            group,
            to_earliest,
            to_latest,
            to_datetime,
            to_offset,
            shift_by,
            topics,
            execute,
        } => {
            let mut reset = ResetOffsets {
                to: ResetTo::Earliest,
                offset: None,
                datetime: None,
                timestamp_ms: None,
                shift_by: None,
                topics: topics
                    .iter()
                    .map(|t| topic_arg(t))
                    .collect::<Result<_, _>>()?,
                execute,
            };
            if to_earliest {
                reset.to = ResetTo::Earliest;
            } else if to_latest {
                reset.to = ResetTo::Latest;
            } else if let Some(t) = to_datetime {
                reset.to = ResetTo::Datetime;
                reset.timestamp_ms = Some(parse_rfc3339(&t)?);
            } else if let Some(o) = to_offset {
                reset.to = ResetTo::Offset;
                reset.offset = Some(o);
            } else if let Some(n) = shift_by {
                reset.to = ResetTo::ShiftBy;
                reset.shift_by = Some(n);
            }
            let result = client.reset_offsets(&group, &reset)?;
            if json {
                return print_json(&result);
            }
            let show = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
            println!(
                "{:<30} {:>9} {:>14} {:>14}",
                "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"
            );
            for p in &result.partitions {
                println!(
                    "{:<30} {:>9} {:>14} {:>14}",
                    p.topic,
                    p.partition,
                    show(p.current_offset),
                    p.new_offset
                );
            }
            if result.executed {
                println!("committed the new offsets of group {group}");
            } else {
                println!("dry run: nothing changed (add --execute to commit these offsets)");
            }
        }
        GroupCommand::Delete { group } => {
            client.delete_group(&group)?;
            if !json {
                println!("deleted group {group}");
            }
        }
    }
    Ok(())
}
