//! Event notification vs event-carried state transfer (P14), on the
//! bank's events: `cargo run -p weir --example notification_vs_state`.
//!
//! - Event-carried state transfer: every account event carries the
//!   balance after it. The dashboard projection upserts that balance and
//!   never asks the account anything: it works while the account's owner
//!   is down, and applying an event twice changes nothing. Use it when
//!   consumers need the state and it is small enough to carry.
//! - Event notification: the notifier hears only that money left an
//!   account, and calls back to the source of truth (loads the account)
//!   for what it needs now, the owner's name. Events stay small and the
//!   details are always current, at the price of a call back and a
//!   dependency on the source at handling time. Its effect (an alert)
//!   adds up, so it is an idempotent consumer: a redelivered event gets
//!   the recorded result and sends nothing again.

use weir::demo::bank::{Bank, BankConfig, Notifier, cents};
use weir::{Client, Select};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = Bank::open(&client, BankConfig::default())?;
    bank.open_account("ada", "Ada")?;
    bank.deposit("ada", 500_000)?;
    bank.withdraw("ada", 150_000)?;
    bank.withdraw("ada", 2_000)?;

    println!("event-carried state transfer: the dashboard from the events alone");
    bank.catch_up()?;
    for row in bank.dashboard.select(&Select::from("accounts"))?.rows {
        println!(
            "  {} ({}): {}",
            row["account"].as_str().unwrap_or(""),
            row["owner"].as_str().unwrap_or(""),
            cents(row["balance"].as_i64().unwrap_or(0))
        );
    }

    println!("event notification: the notifier loads the account to write its alert");
    let notifier = client.consumer(Notifier::new(&client))?;
    let events = client.read_all(0, 100)?;
    // Every event delivered twice, as an at-least-once transport may.
    for event in events.iter().chain(events.iter()) {
        let handled = notifier.handle(event)?;
        if let Some(alert) = handled.output {
            let note = if handled.duplicate {
                "duplicate, recorded result, nothing sent"
            } else {
                "sent"
            };
            println!("  {alert} [{note}]");
        }
    }
    Ok(())
}
