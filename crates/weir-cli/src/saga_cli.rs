//! `weir saga list|show|resume`: sagas on a running server, for operators.
//! `list` gives each saga's type, status, current step and why it is
//! parked or compensating (following the server's pages); `show` prints
//! one saga's summary, a table of its steps, its events and its timeline
//! across services (`weir trace`'s tree of its correlation); `resume`
//! resumes a parked saga (the server refuses, with exit code 4, one that
//! is not parked).

use clap::{Args, Subcommand};
use weir_client::SagaFilter;

use crate::remote::{RemoteArgs, print_json};

#[derive(Debug, Args)]
pub struct SagaArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: SagaCommand,
}

#[derive(Debug, Subcommand)]
enum SagaCommand {
    /// List sagas in the order they started, with status, step and reason.
    List {
        /// Only sagas with this status.
        #[arg(long, value_parser = ["running", "compensating", "parked", "completed", "compensated"])]
        status: Option<String>,
        /// Only sagas of this type.
        #[arg(long = "type", value_name = "TYPE")]
        saga_type: Option<String>,
        /// Most sagas to list.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        max: u32,
    },
    /// Print a saga: its summary, its steps, its events, then its
    /// timeline across services (what `weir trace <id>` prints).
    Show {
        id: String,
        /// Leave out the timeline.
        #[arg(long)]
        no_timeline: bool,
    },
    /// Resume a parked saga: its failed compensation is tried again by
    /// the runner that has its type.
    Resume {
        id: String,
        /// Who resumes it (recorded in the saga) [default: $USER, else
        /// "operator"].
        #[arg(long)]
        by: Option<String>,
    },
}

fn time(ms: i64) -> String {
    weir_store::rfc3339(ms)
}

/// The operator's name when `--by` is not given.
fn default_by() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".to_owned())
}

pub fn run_saga(args: SagaArgs) -> anyhow::Result<()> {
    let client = args
        .remote
        .client(Some(std::time::Duration::from_secs(60)))?;
    let json = args.remote.json;
    match args.command {
        SagaCommand::List {
            status,
            saga_type,
            max,
        } => {
            let max = max as usize;
            let filter = SagaFilter { status, saga_type };
            let mut list = client.sagas(&filter, max.min(1000))?;
            while list.sagas.len() < max
                && let Some(next) = list.next.take()
            {
                let page = client.sagas_next(&next)?;
                list.sagas.extend(page.sagas);
                list.not_sagas.extend(page.not_sagas);
                list.next = page.next;
            }
            list.sagas.truncate(max);
            if json {
                return print_json(&list);
            }
            println!(
                "{:<24} {:<16} {:<12} {:<16} {:<24}  REASON",
                "ID", "TYPE", "STATUS", "STEP", "STARTED"
            );
            for s in &list.sagas {
                println!(
                    "{:<24} {:<16} {:<12} {:<16} {:<24}  {}",
                    s.id,
                    s.saga_type,
                    s.status,
                    s.step.as_deref().unwrap_or("-"),
                    time(s.started_ms),
                    s.reason.as_deref().unwrap_or("-")
                );
            }
            for n in &list.not_sagas {
                eprintln!("{} is not a saga: {}", n.stream, n.reason);
            }
            if list.next.is_some() {
                eprintln!("more sagas than --max {max}: not all are listed");
            }
        }
        SagaCommand::Show { id, no_timeline } => {
            let detail = client.saga(&id)?;
            if json {
                return print_json(&detail);
            }
            let s = &detail.saga;
            match &s.step {
                Some(step) => println!(
                    "saga {} ({}): {} at step {step}",
                    s.id, s.saga_type, s.status
                ),
                None => println!("saga {} ({}): {}", s.id, s.saga_type, s.status),
            }
            if let Some(reason) = &s.reason {
                println!("reason: {reason}");
            }
            println!(
                "started {}, updated {}, version {}",
                time(s.started_ms),
                time(s.updated_ms),
                s.version
            );
            println!();
            println!(
                "{:<20} {:<12} {:>8}  {:<12} {:>8}  LAST ERROR",
                "STEP", "ACTION", "ATTEMPTS", "COMPENSATION", "ATTEMPTS"
            );
            for st in &detail.steps {
                println!(
                    "{:<20} {:<12} {:>8}  {:<12} {:>8}  {}",
                    st.name,
                    st.action,
                    st.attempts,
                    st.compensation,
                    st.compensation_attempts,
                    st.last_error.as_deref().unwrap_or("-")
                );
            }
            println!();
            println!("{:>7}  {:<24}  {:<26}  DATA", "VERSION", "TIME", "TYPE");
            for e in &detail.events {
                println!(
                    "{:>7}  {:<24}  {:<26}  {}",
                    e.version, e.time, e.event_type, e.data
                );
            }
            if !no_timeline {
                // The saga's events and everything its calls caused that
                // carries its id as correlation id, in every service.
                println!();
                let timeline = crate::trace_cli::read_timeline(
                    &client,
                    &id,
                    crate::trace_cli::TRACE_EVENTS_DEFAULT,
                )?;
                crate::trace_cli::print_tree(&id, &timeline)?;
            }
        }
        SagaCommand::Resume { id, by } => {
            let by = by.unwrap_or_else(default_by);
            let s = client.resume_saga(&id, &by)?;
            if json {
                return print_json(&s);
            }
            println!(
                "resumed saga {} ({}) as {by}: now {}{}, version {}",
                s.id,
                s.saga_type,
                s.status,
                s.step
                    .as_deref()
                    .map(|st| format!(" at step {st}"))
                    .unwrap_or_default(),
                s.version
            );
        }
    }
    Ok(())
}
