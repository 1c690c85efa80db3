//! `weir schema register|list|show|check|delete|compat|mode`: the schema
//! registry of a running `weir serve` over its Confluent-compatible REST
//! API (served at the root of the HTTP listener), with the same
//! connection options as the other API subcommands. Refusals print the
//! registry's own error code and message; an incompatible `check` exits
//! with the conflict code, as a refused registration does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_client::{Client, encode_segment};

use crate::remote::{Conflict, RemoteArgs, print_json};

/// Longest wait for one registry call (a registration waits for the
/// registry's durable write).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest schema file read, in bytes (the registry's own limit is 1 MiB;
/// a larger file is refused here with its name rather than by the server).
const SCHEMA_FILE_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Register a schema file under a subject; prints its version and id
    /// (the existing ones when the subject has the same schema already).
    Register {
        subject: String,
        /// The schema file (`-` for standard input).
        file: PathBuf,
        #[command(flatten)]
        schema: SchemaOptions,
    },
    /// List the subjects, or with SUBJECT its versions.
    List {
        subject: Option<String>,
        /// Include soft-deleted subjects or versions.
        #[arg(long)]
        deleted: bool,
        /// Only subjects whose names start with this.
        #[arg(long, conflicts_with = "subject")]
        prefix: Option<String>,
    },
    /// Print a subject's version (the latest by default), or a schema by
    /// id.
    Show {
        #[arg(required_unless_present = "id", conflicts_with = "id")]
        subject: Option<String>,
        /// A version number, or `latest`.
        #[arg(default_value = "latest")]
        version: String,
        /// The schema with this id, and the subject versions using it.
        #[arg(long)]
        id: Option<i32>,
        /// Show a soft-deleted version too.
        #[arg(long)]
        deleted: bool,
    },
    /// Test a schema file against a subject: what its compatibility level
    /// checks, or one version. Prints the breaking changes and exits with
    /// code 4 when incompatible.
    Check {
        subject: String,
        file: PathBuf,
        /// Test against this version (a number or `latest`) only.
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        schema: SchemaOptions,
    },
    /// Delete a subject, or one of its versions: soft by default (hidden,
    /// its ids still readable), or for good with --permanent (only after
    /// a soft delete).
    Delete {
        subject: String,
        /// A version number, or `latest`.
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
    /// Print a subject's compatibility level (its own, else the global
    /// one), or set it: `compat SUBJECT FULL`; `compat --global [LEVEL]`
    /// for the registry's default.
    Compat(SettingArgs),
    /// Print or set a subject's mode (READWRITE, READONLY, IMPORT), as
    /// `compat` does the level.
    Mode {
        #[command(flatten)]
        setting: SettingArgs,
        /// Set IMPORT even though the subject (or registry) has schemas.
        #[arg(long)]
        force: bool,
    },
}

/// How a schema file is sent.
#[derive(Debug, Args)]
struct SchemaOptions {
    /// AVRO, JSON or PROTOBUF [default: PROTOBUF for a `.proto` file,
    /// else AVRO].
    #[arg(long = "type", value_name = "TYPE")]
    schema_type: Option<String>,
    /// A schema the file uses, as NAME=SUBJECT:VERSION (an Avro full
    /// name, a `.proto` import path, a JSON `$ref`); repeatable.
    #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION", value_parser = parse_reference)]
    references: Vec<Reference>,
}

/// `compat` and `mode`: SUBJECT [VALUE], or --global [VALUE].
#[derive(Debug, Args)]
struct SettingArgs {
    /// SUBJECT and the value to set, or with --global the value alone.
    #[arg(num_args = 0..=2, value_name = "SUBJECT [VALUE]")]
    words: Vec<String>,
    /// The registry-wide setting instead of a subject's.
    #[arg(long)]
    global: bool,
    /// Remove the subject's own setting (it then follows the global one).
    #[arg(long)]
    unset: bool,
}

impl SettingArgs {
    /// The subject (`None`: global) and the value to set, if any; a
    /// wrong combination is a usage error (exit code 2, as clap's own).
    fn target(&self) -> (Option<&str>, Option<&str>) {
        let usage = |message: &str| -> ! {
            clap::Command::new("weir schema")
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit()
        };
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let (subject, value) = match (self.global, words.as_slice()) {
            (true, []) => (None, None),
            (true, [value]) => (None, Some(*value)),
            (true, _) => usage("with --global give the value alone"),
            (false, [subject]) => (Some(*subject), None),
            (false, [subject, value]) => (Some(*subject), Some(*value)),
            (false, _) => usage("name a subject, or use --global"),
        };
        if self.unset && value.is_some() {
            usage("--unset takes no value");
        }
        (subject, value)
    }
}

/// A reference as the registry takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reference {
    name: String,
    subject: String,
    version: i32,
}

fn parse_reference(s: &str) -> Result<Reference, String> {
    let bad = || format!("{s:?} is not NAME=SUBJECT:VERSION");
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (subject, version) = rest.rsplit_once(':').ok_or_else(bad)?;
    let version = version
        .parse()
        .map_err(|_| format!("version {version:?} of reference {name:?} is not a number"))?;
    if name.is_empty() || subject.is_empty() {
        return Err(bad());
    }
    Ok(Reference {
        name: name.to_owned(),
        subject: subject.to_owned(),
        version,
    })
}

/// A subject version or a schema by id, as the registry answers it
/// (`schemaType` absent means AVRO).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaAnswer {
    subject: Option<String>,
    version: Option<i32>,
    id: Option<i32>,
    schema_type: Option<String>,
    schema: String,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    deleted: bool,
}

pub fn run_schema(args: SchemaArgs) -> anyhow::Result<()> {
    let client = args.remote.client(Some(CALL_TIMEOUT))?;
    let json = args.remote.json;
    match args.command {
        SchemaCommand::Register {
            subject,
            file,
            schema,
        } => {
            let body = schema_body(&file, &schema)?;
            let path = format!("/subjects/{}/versions", encode_segment(&subject));
            let got: Value = client.post(&path, &body)?;
            if json {
                return print_json(&got);
            }
            let id = &got["id"];
            // The answer has no version on an old registry; look it up.
            let version = match got.get("version") {
                Some(v) => v.clone(),
                None => lookup(&client, &subject, &body)?["version"].clone(),
            };
            println!("registered {subject} version {version} id {id}");
        }
        SchemaCommand::List {
            subject,
            deleted,
            prefix,
        } => {
            let mut query = vec![("deleted", deleted.to_string())];
            let path = match &subject {
                Some(s) => format!("/subjects/{}/versions", encode_segment(s)),
                None => {
                    query.push(("subjectPrefix", prefix.unwrap_or_default()));
                    "/subjects".to_owned()
                }
            };
            let listed: Value = client.get(&path, &query)?;
            if json {
                return print_json(&listed);
            }
            for item in listed.as_array().into_iter().flatten() {
                match item {
                    Value::String(s) => println!("{s}"),
                    other => println!("{other}"),
                }
            }
        }
        SchemaCommand::Show {
            subject,
            version,
            id,
            deleted,
        } => show(&client, json, subject, &version, id, deleted)?,
        SchemaCommand::Check {
            subject,
            file,
            version,
            schema,
        } => {
            let body = schema_body(&file, &schema)?;
            let mut path = format!(
                "/compatibility/subjects/{}/versions",
                encode_segment(&subject)
            );
            if let Some(v) = &version {
                path.push('/');
                path.push_str(&encode_segment(v));
            }
            let path = format!("{path}?verbose=true");
            let report: Value = client.post(&path, &body)?;
            let compatible = report["is_compatible"]
                .as_bool()
                .with_context(|| format!("the registry's answer has no is_compatible: {report}"))?;
            if json {
                print_json(&report)?;
            } else if compatible {
                println!("compatible with {subject}");
            } else {
                println!("incompatible with {subject}:");
                for m in report["messages"].as_array().into_iter().flatten() {
                    println!(
                        "  {}",
                        m.as_str().map_or_else(|| m.to_string(), str::to_owned)
                    );
                }
            }
            if !compatible {
                return Err(Conflict(format!("the schema is incompatible with {subject}")).into());
            }
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let mut path = format!("/subjects/{}", encode_segment(&subject));
            if let Some(v) = &version {
                path.push_str(&format!("/versions/{}", encode_segment(v)));
            }
            let gone: Value = client.delete(&path, &[("permanent", permanent.to_string())])?;
            if json {
                return print_json(&gone);
            }
            let how = if permanent { "permanently" } else { "soft" };
            let versions = match &gone {
                Value::Array(vs) => vs.iter().map(Value::to_string).collect::<Vec<_>>(),
                v => vec![v.to_string()],
            };
            println!(
                "deleted ({how}) {subject} version(s) {}",
                versions.join(", ")
            );
        }
        SchemaCommand::Compat(setting) => setting_command(
            &client,
            json,
            &setting,
            Setting {
                label: "compatibility",
                route: "config",
                get_field: "compatibilityLevel",
                put_field: "compatibility",
                force: false,
            },
        )?,
        SchemaCommand::Mode { setting, force } => setting_command(
            &client,
            json,
            &setting,
            Setting {
                label: "mode",
                route: "mode",
                get_field: "mode",
                put_field: "mode",
                force,
            },
        )?,
    }
    Ok(())
}

/// The registration (or compatibility test) body of a schema file.
fn schema_body(file: &Path, options: &SchemaOptions) -> anyhow::Result<Value> {
    let text = read_schema(file)?;
    let schema_type = match &options.schema_type {
        Some(t) => t.to_ascii_uppercase(),
        None if file.extension().is_some_and(|e| e == "proto") => "PROTOBUF".to_owned(),
        None => "AVRO".to_owned(),
    };
    Ok(json!({
        "schema": text,
        "schemaType": schema_type,
        "references": options.references,
    }))
}

fn read_schema(file: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(SCHEMA_FILE_BYTES_MAX + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(SCHEMA_FILE_BYTES_MAX + 1).read_to_string(&mut text))
    };
    read.with_context(|| format!("reading schema file {}", file.display()))?;
    if text.len() as u64 > SCHEMA_FILE_BYTES_MAX {
        bail!(
            "schema file {} is larger than {SCHEMA_FILE_BYTES_MAX} bytes",
            file.display()
        );
    }
    if text.trim().is_empty() {
        bail!("schema file {} is empty", file.display());
    }
    Ok(text)
}

fn lookup(client: &Client, subject: &str, body: &Value) -> anyhow::Result<Value> {
    Ok(client.post(&format!("/subjects/{}", encode_segment(subject)), body)?)
}

fn show(
    client: &Client,
    json: bool,
    subject: Option<String>,
    version: &str,
    id: Option<i32>,
    deleted: bool,
) -> anyhow::Result<()> {
    let query = [("deleted", deleted.to_string())];
    let (answer, used_by): (Value, Option<Value>) = match (id, subject) {
        (Some(id), _) => (
            client.get(&format!("/schemas/ids/{id}"), &[])?,
            Some(client.get(&format!("/schemas/ids/{id}/versions"), &query)?),
        ),
        (None, Some(s)) => {
            let path = format!(
                "/subjects/{}/versions/{}",
                encode_segment(&s),
                encode_segment(version)
            );
            (client.get(&path, &query)?, None)
        }
        (None, None) => bail!("name a subject or --id"),
    };
    if json {
        let mut out = answer.clone();
        if let Some(u) = used_by {
            out["usedBy"] = u;
        }
        return print_json(&out);
    }
    let schema: SchemaAnswer =
        serde_json::from_value(answer).context("the registry's answer is not a schema")?;
    if let (Some(subject), Some(version)) = (&schema.subject, schema.version) {
        let gone = if schema.deleted {
            " (soft-deleted)"
        } else {
            ""
        };
        println!("subject:    {subject} version {version}{gone}");
    }
    if let Some(id) = schema.id.or(id) {
        println!("id:         {id}");
    }
    println!(
        "type:       {}",
        schema.schema_type.as_deref().unwrap_or("AVRO")
    );
    for r in &schema.references {
        println!("reference:  {} = {}:{}", r.name, r.subject, r.version);
    }
    for u in used_by.iter().filter_map(Value::as_array).flatten() {
        println!(
            "used by:    {} version {}",
            u["subject"].as_str().unwrap_or("?"),
            u["version"]
        );
    }
    println!();
    // Avro and JSON schemas are JSON: print them indented.
    match serde_json::from_str::<Value>(&schema.schema) {
        Ok(v) if schema.schema_type.as_deref() != Some("PROTOBUF") => {
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        _ => println!("{}", schema.schema.trim_end()),
    }
    Ok(())
}

/// What differs between `compat` (the level) and `mode`.
struct Setting {
    /// What the value is called in messages.
    label: &'static str,
    route: &'static str,
    get_field: &'static str,
    put_field: &'static str,
    force: bool,
}

fn setting_command(
    client: &Client,
    json: bool,
    args: &SettingArgs,
    setting: Setting,
) -> anyhow::Result<()> {
    let (subject, value) = args.target();
    let path = match subject {
        Some(s) => format!("/{}/{}", setting.route, encode_segment(s)),
        None => format!("/{}", setting.route),
    };
    let (answer, shown): (Value, String) = if args.unset {
        let before: Value = client.delete(&path, &[])?;
        let text = format!(
            "removed the {} (was {})",
            what(setting.label, subject),
            field(&before, setting.get_field)
        );
        (before, text)
    } else if let Some(value) = value {
        let body = json!({ setting.put_field: value.to_ascii_uppercase() });
        let query = if setting.force { "?force=true" } else { "" };
        let set: Value = client.put(&format!("{path}{query}"), &body)?;
        let text = format!(
            "{} set to {}",
            what(setting.label, subject),
            field(&set, setting.put_field)
        );
        (set, text)
    } else {
        // A subject without a setting of its own follows the global one:
        // say so rather than answer "not found".
        let own: Value = client
            .get(&path, &[("defaultToGlobal", "false".to_owned())])
            .or_else(|e| match (subject, e.code()) {
                (Some(_), Some("40408" | "40409")) => Ok(Value::Null),
                _ => Err(e),
            })?;
        if own.is_null() {
            let global: Value = client.get(&format!("/{}", setting.route), &[])?;
            let text = format!("{} (global)", field(&global, setting.get_field));
            (global, text)
        } else {
            let text = field(&own, setting.get_field);
            (own, text)
        }
    };
    if json {
        return print_json(&answer);
    }
    println!("{shown}");
    Ok(())
}

/// `compatibility of orders-value`, `global compatibility`.
fn what(label: &str, subject: Option<&str>) -> String {
    subject.map_or_else(|| format!("global {label}"), |s| format!("{label} of {s}"))
}

fn field(answer: &Value, name: &str) -> String {
    answer[name]
        .as_str()
        .map_or_else(|| answer.to_string(), str::to_owned)
}
