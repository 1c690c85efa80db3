//! `weir topic`: list, describe, create, alter and delete topics over the
//! HTTP API.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use weir_api::CreateTopic;

use super::{RemoteArgs, key_value, print_json};

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
