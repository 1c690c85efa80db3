//! `weir user add|list|remove`: SCRAM users in a data directory's
//! credential store, offline. This is how the first user exists before a
//! SASL listener starts; the directory's lock is taken, so it refuses
//! while a server has the directory open (a running server's users are
//! managed with Kafka tooling: AlterUserScramCredentials).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use weir_auth::{CredentialChange, CredentialStore, ScramCredential, ScramMechanism, scram};

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The data directory [default: ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user, or set a user's password, for SCRAM and PLAIN.
    Add {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512; repeat for both [default: both].
        /// PLAIN logins check whichever the user has.
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        /// The password (visible to other local users in the process
        /// list: prefer --password-stdin).
        #[arg(long)]
        password: Option<String>,
        /// PBKDF2 iterations (4096..=16384) [default: 4096, Kafka's].
        #[arg(long, default_value_t = scram::ITERATIONS_MIN)]
        iterations: u32,
    },
    /// List users with their mechanisms and iterations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's credentials.
    Remove {
        name: String,
        /// Only this mechanism's credential [default: all].
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
    },
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(|| "./weir-data".into());
    let exists = dir.is_dir();
    if !exists && !matches!(args.command, UserCommand::Add { .. }) {
        bail!("no data directory at {}", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir)?;
    let store = CredentialStore::open(&dir)?;
    match args.command {
        UserCommand::Add {
            name,
            mechanisms,
            password_stdin,
            password,
            iterations,
        } => {
            scram::check_user(&name)?;
            let password = match (password, password_stdin) {
                (Some(p), _) => p,
                (None, true) => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
                (None, false) => bail!("give the password with --password-stdin or --password"),
            };
            let changes = mechanisms_of(&mechanisms)?
                .into_iter()
                .map(|m| {
                    Ok(CredentialChange::Upsert {
                        user: name.clone(),
                        mechanism: m,
                        credential: ScramCredential::new(m, &password, iterations)?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            store.apply(&changes)?;
            println!("user {name} set ({})", names(&changes));
        }
        UserCommand::List { json } => {
            let users = store.list();
            if json {
                let out: Vec<_> = users
                    .iter()
                    .map(|(u, ms)| {
                        serde_json::json!({
                            "name": u,
                            "mechanisms": ms.iter().map(|(m, i)| serde_json::json!({
                                "mechanism": m.name(), "iterations": i
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{:<32} MECHANISMS", "USER");
                for (u, ms) in users {
                    let ms: Vec<_> = ms
                        .iter()
                        .map(|(m, i)| format!("{}({i})", m.name()))
                        .collect();
                    println!("{u:<32} {}", ms.join(" "));
                }
            }
        }
        UserCommand::Remove { name, mechanisms } => {
            let Some(has) = store.describe(&name) else {
                bail!("no user {name:?}");
            };
            let wanted = if mechanisms.is_empty() {
                has.iter().map(|(m, _)| *m).collect()
            } else {
                mechanisms_of(&mechanisms)?
            };
            let changes: Vec<_> = wanted
                .into_iter()
                .map(|m| {
                    if !has.iter().any(|(h, _)| *h == m) {
                        bail!("user {name:?} has no {} credential", m.name());
                    }
                    Ok(CredentialChange::Delete {
                        user: name.clone(),
                        mechanism: m,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            store.apply(&changes)?;
            println!("user {name}: removed {}", names(&changes));
        }
    }
    Ok(())
}

fn mechanisms_of(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n)
                .with_context(|| format!("unknown mechanism {n:?} (SCRAM-SHA-256, SCRAM-SHA-512)"))
        })
        .collect()
}

fn names(changes: &[CredentialChange]) -> String {
    let names: Vec<_> = changes
        .iter()
        .map(|c| match c {
            CredentialChange::Upsert { mechanism, .. }
            | CredentialChange::Delete { mechanism, .. } => mechanism.name(),
        })
        .collect();
    names.join(", ")
}

/// Takes the data directory's lock (the one a server holds while it has
/// the directory open).
fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is in use by a running server: manage its users over Kafka (AlterUserScramCredentials, e.g. kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=...]' --entity-type users --entity-name NAME)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the data directory"),
    }
}
