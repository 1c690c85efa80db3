//! `weir acl add|list|remove`: the server's ACLs over the HTTP API, in
//! the manner of Kafka's `kafka-acls` (a principal allowed or denied
//! operations on one resource, named literally or by prefix). The same
//! ACLs govern the Kafka listener and the HTTP API.

use clap::{ArgGroup, Args, Subcommand};
use weir_api::Acl;
use weir_client::AclQuery;

use crate::remote::{RemoteArgs, print_json};

#[derive(Debug, Args)]
pub struct AclArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Allow or deny a principal operations on a resource.
    #[command(group(ArgGroup::new("who").required(true)))]
    Add {
        /// The principal to allow (`User:alice`, `User:*` for everyone);
        /// repeatable.
        #[arg(long = "allow", group = "who")]
        allow: Vec<String>,
        /// The principal to deny; repeatable. A deny wins over any allow.
        #[arg(long = "deny", group = "who")]
        deny: Vec<String>,
        /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
        /// ALTER_CONFIGS, IDEMPOTENT_WRITE, CLUSTER_ACTION or ALL;
        /// repeatable.
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// Only from this IP address [default: any].
        #[arg(long, default_value = "*")]
        host: String,
        /// LITERAL (the name, or `*` for every resource of the type) or
        /// PREFIXED (every name starting with it).
        #[arg(long, default_value = "LITERAL")]
        pattern: String,
        #[command(flatten)]
        resource: Resource,
    },
    /// List ACLs, all or those the options select.
    List {
        #[command(flatten)]
        filter: Filter,
    },
    /// Remove the ACLs the options select (all of them needs --all).
    Remove {
        #[command(flatten)]
        filter: Filter,
        /// Remove every ACL the filter selects even if it selects all.
        #[arg(long)]
        all: bool,
    },
}

/// One resource, by exactly one of its kinds.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Resource {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// The cluster (Kafka's `kafka-cluster`).
    #[arg(long)]
    cluster: bool,
    #[arg(long)]
    transactional_id: Option<String>,
    /// An event-store stream.
    #[arg(long)]
    stream: Option<String>,
    /// Every stream of a category, read as one (`$ce-<category>`).
    #[arg(long)]
    category: Option<String>,
    /// A topic's dead letters, named by the origin topic.
    #[arg(long)]
    dead_letter_topic: Option<String>,
    #[arg(long)]
    saga: Option<String>,
    /// A schema registry subject (`orders-value`).
    #[arg(long)]
    schema_subject: Option<String>,
}

impl Resource {
    /// The resource type's name and the resource's name.
    fn named(&self) -> (&'static str, String) {
        let pick = [
            ("TOPIC", &self.topic),
            ("GROUP", &self.group),
            ("TRANSACTIONAL_ID", &self.transactional_id),
            ("STREAM", &self.stream),
            ("CATEGORY", &self.category),
            ("DEAD_LETTER_TOPIC", &self.dead_letter_topic),
            ("SAGA", &self.saga),
            ("SCHEMA_SUBJECT", &self.schema_subject),
        ];
        pick.into_iter()
            .find_map(|(t, n)| n.clone().map(|n| (t, n)))
            .unwrap_or(("CLUSTER", "kafka-cluster".to_owned()))
    }
}

/// What `list` and `remove` select; unset options select everything.
#[derive(Debug, Args)]
struct Filter {
    /// TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, STREAM, CATEGORY,
    /// DEAD_LETTER_TOPIC, SAGA or SCHEMA_SUBJECT.
    #[arg(long)]
    resource_type: Option<String>,
    /// The resource name (with --pattern MATCH: every ACL applying to it).
    #[arg(long)]
    name: Option<String>,
    /// LITERAL, PREFIXED, MATCH or ANY.
    #[arg(long)]
    pattern: Option<String>,
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    operation: Option<String>,
    /// ALLOW or DENY.
    #[arg(long)]
    permission: Option<String>,
}

impl Filter {
    fn query(&self) -> AclQuery {
        AclQuery {
            resource_type: self.resource_type.clone(),
            name: self.name.clone(),
            pattern_type: self.pattern.clone(),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.clone(),
            permission: self.permission.clone(),
        }
    }
}

pub fn run_acl(args: AclArgs) -> anyhow::Result<()> {
    let client = args.remote.client(None)?;
    match args.command {
        AclCommand::Add {
            allow,
            deny,
            operations,
            host,
            pattern,
            resource,
        } => {
            let (resource_type, name) = resource.named();
            let mut acls = Vec::new();
            let who = allow
                .iter()
                .map(|p| (p, "ALLOW"))
                .chain(deny.iter().map(|p| (p, "DENY")));
            for (principal, permission) in who {
                for operation in &operations {
                    acls.push(Acl {
                        resource_type: resource_type.to_owned(),
                        name: name.clone(),
                        pattern_type: pattern.to_uppercase(),
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: operation.to_uppercase(),
                        permission: permission.to_owned(),
                    });
                }
            }
            let created = client.create_acls(acls)?;
            if args.remote.json {
                return print_json(&created);
            }
            print_acls(&created.acls, "added");
        }
        AclCommand::List { filter } => {
            let listed = client.acls(&filter.query())?;
            if args.remote.json {
                return print_json(&listed);
            }
            print_acls(&listed.acls, "listed");
        }
        AclCommand::Remove { filter, all } => {
            let removed = client.delete_acls(&filter.query(), all)?;
            if args.remote.json {
                return print_json(&removed);
            }
            print_acls(&removed.deleted, "removed");
        }
    }
    Ok(())
}

fn print_acls(acls: &[Acl], verb: &str) {
    if acls.is_empty() {
        println!("no ACLs {verb}");
        return;
    }
    let row = |cells: [&str; 7]| {
        println!(
            "{:<24} {:<10} {:<18} {:<18} {:<30} {:<9} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
        );
    };
    row([
        "PRINCIPAL",
        "PERMISSION",
        "OPERATION",
        "RESOURCE TYPE",
        "NAME",
        "PATTERN",
        "HOST",
    ]);
    for a in acls {
        row([
            &a.principal,
            &a.permission,
            &a.operation,
            &a.resource_type,
            &a.name,
            &a.pattern_type,
            &a.host,
        ]);
    }
}
