//! The demo's script: accounts opened over a few simulated days, money
//! moved (a transfer reversed, an overdraft refused), what it prints and
//! the report the tests read.

use super::*;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Sdk(#[from] Error),
    #[error(transparent)]
    Command(#[from] CommandError<BankError>),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("the demo needs an empty data directory; {0} holds accounts already")]
    NotFresh(String),
}

/// What the demo found, for the tests. Accounts are named as in the
/// script (`alice`, `bob`, `carol`), whatever suffix a run against a
/// server gave their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    pub balances: Vec<(String, u64)>,
    pub alice_as_of: (String, u64),
    pub alice_statement: Vec<StatementLine>,
    pub refused_withdrawal: String,
    pub reversed_transfer: TransferOutcome,
    /// What this run appended to its account ids (`-` and six hex digits
    /// against a server, empty in a data directory of its own).
    pub account_suffix: String,
}

/// 2026-01-01T09:00:00Z, the demo's first day.
pub const DEMO_START_MS: i64 = 1_767_258_000_000;
const DAY_MS: i64 = 86_400_000;
/// Against a server, how long the demo waits between its "days", so
/// that each step has its own recorded times on the server's clock.
const REMOTE_STEP_MS: u64 = 20;

/// Runs the bank demo in the data directory `dir` (which must hold no
/// accounts yet) and prints what it does to `out`: accounts opened over
/// a few (simulated) days, deposits, withdrawals, interest, transfers
/// (one refused by a closed account and reversed), an overdraft refused;
/// then the balances now, alice's balance as of a past date, her
/// statement and the dashboard.
pub fn run_demo(dir: &Path, out: &mut dyn Write) -> std::result::Result<DemoReport, DemoError> {
    let clock = ManualClock::new(DEMO_START_MS);
    let client = Client::open_with(
        dir,
        ClientConfig {
            source: "/demo/bank".to_owned(),
            clock: Some(Arc::new(clock.clone())),
            ..ClientConfig::default()
        },
    )?;
    if client.head_position()? > 0 {
        return Err(DemoError::NotFresh(dir.display().to_string()));
    }
    writeln!(
        out,
        "weir demo bank: an event-sourced bank in {}",
        dir.display()
    )?;
    run_script(&client, &Timeline::Simulated(clock), "", out)
}

/// Runs the same demo against the running `weir serve` at `address`.
/// A server may hold events already (earlier runs, other applications),
/// so the run names its accounts with a fresh suffix (`alice-1f2e3d`) and
/// shows only its own; the read models replay the server's events into a
/// temporary directory. The server records events by its own clock, so
/// the "days" are real moments a few milliseconds apart, and the balance
/// "as of a past date" is as of the time the server recorded alice's
/// withdrawal.
pub fn run_demo_remote(
    address: &str,
    out: &mut dyn Write,
) -> std::result::Result<DemoReport, DemoError> {
    let client = Client::connect_with(
        address,
        ClientConfig {
            source: "/demo/bank".to_owned(),
            ..ClientConfig::default()
        },
    )?;
    let suffix = format!("-{}", &crate::new_id().replace('-', "")[..6]);
    writeln!(
        out,
        "weir demo bank: an event-sourced bank on the server {address} (this run's accounts end in {suffix})"
    )?;
    run_script(&client, &Timeline::Server, &suffix, out)
}

/// How the demo's days pass.
enum Timeline {
    /// A manual clock the embedded store records by: days are days.
    Simulated(ManualClock),
    /// The server's clock: a day is a short real pause.
    Server,
}

impl Timeline {
    /// Moves to day `n` of the demo; returns its label.
    fn day(&self, n: i64) -> String {
        match self {
            Self::Simulated(clock) => {
                clock.set(DEMO_START_MS + n * DAY_MS);
                self.label(DEMO_START_MS + n * DAY_MS)
            }
            Self::Server => {
                std::thread::sleep(Duration::from_millis(REMOTE_STEP_MS));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                self.label(now)
            }
        }
    }

    /// A time as the demo prints it: the date of a simulated day, the
    /// time of day (to the millisecond) on the server's clock.
    fn label(&self, ms: i64) -> String {
        let t = crate::rfc3339(ms);
        match self {
            Self::Simulated(_) => t[..10].to_owned(),
            Self::Server => t.get(11..23).unwrap_or(&t).to_owned(),
        }
    }
}

/// The demo's story on `client`, its accounts named `alice{suffix}`, ...
fn run_script(
    client: &Client,
    timeline: &Timeline,
    suffix: &str,
    out: &mut dyn Write,
) -> std::result::Result<DemoReport, DemoError> {
    let bank = Bank::open(client, BankConfig::default())?;
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| format!("{n}{suffix}"));
    // The id column is as wide as the longest id (and at least 6).
    let w = alice.len().max(6);

    let when = timeline.day(0);
    bank.open_account(&alice, "Alice")?;
    bank.deposit(&alice, 100_000)?;
    bank.open_account(&bob, "Bob")?;
    bank.deposit(&bob, 25_000)?;
    writeln!(out, "{when}  opened {alice} (1000.00) and {bob} (250.00)")?;
    let when = timeline.day(2);
    bank.withdraw(&alice, 12_000)?;
    writeln!(out, "{when}  {alice} withdrew 120.00")?;
    // The past the demo looks back at: after the withdrawal, before the
    // transfer (a simulated day later, or as the server recorded the
    // withdrawal).
    let past = match timeline {
        Timeline::Simulated(_) => DEMO_START_MS + 3 * DAY_MS,
        Timeline::Server => client
            .read_stream(&bank.accounts.stream(&alice), 2, 1)?
            .first()
            .and_then(|e| e.recorded.as_ref())
            .map_or(0, |r| r.recorded_ms),
    };
    let when = timeline.day(4);
    let t = bank.transfer(&alice, &bob, 20_000)?;
    writeln!(
        out,
        "{when}  {alice} sent {bob} 200.00: transfer {:?}",
        t.status
    )?;
    let when = timeline.day(9);
    bank.apply_interest(&alice, 100)?;
    writeln!(out, "{when}  1% interest on {alice}")?;
    let when = timeline.day(11);
    let refused = match bank.withdraw(&alice, 500_000) {
        Err(CommandError::Rejected(e)) => e.to_string(),
        Ok(_) => "accepted (a bug)".to_owned(),
        Err(e) => return Err(e.into()),
    };
    writeln!(
        out,
        "{when}  {alice} tried to withdraw 5000.00: refused: {refused}"
    )?;
    let when = timeline.day(13);
    bank.open_account(&carol, "Carol")?;
    bank.close(&carol)?;
    let reversed = bank.transfer(&bob, &carol, 5_000)?;
    writeln!(
        out,
        "{when}  {bob} sent closed {carol} 50.00: transfer {:?} ({})",
        reversed.status,
        reversed.reason.clone().unwrap_or_default()
    )?;

    writeln!(out, "\nbalances now:")?;
    let mut balances = Vec::new();
    for (name, id) in ["alice", "bob", "carol"].iter().zip([&alice, &bob, &carol]) {
        let b = bank.balance(id)?;
        writeln!(out, "  {id:<w$} {:>10}", cents(b as i64))?;
        balances.push(((*name).to_owned(), b));
    }
    let as_of = bank.balance_as_of(&alice, past)?;
    writeln!(
        out,
        "\n{alice}'s balance as of {}: {}",
        timeline.label(past),
        cents(as_of as i64)
    )?;

    let statement = bank.statement(&alice)?;
    writeln!(out, "\n{alice}'s statement:")?;
    for l in &statement {
        let time = match timeline {
            Timeline::Simulated(_) => l.time.get(..10),
            Timeline::Server => l.time.get(11..23),
        };
        writeln!(
            out,
            "  {}  {:<22} {:>10} {:>10}",
            time.unwrap_or(&l.time),
            l.kind,
            cents(l.amount),
            cents(l.balance as i64)
        )?;
    }
    bank.catch_up()?;
    writeln!(out, "\ndashboard (accounts by balance):")?;
    let ids = [alice.clone(), bob.clone(), carol.clone()];
    for a in bank.dashboard.ask(&AccountsById { ids: &ids })? {
        writeln!(
            out,
            "  {:<w$} {:<7} {:>10}  (version {})",
            a.account,
            a.status,
            cents(a.balance as i64),
            a.version
        )?;
    }
    Ok(DemoReport {
        balances,
        alice_as_of: (timeline.label(past), as_of),
        alice_statement: statement,
        refused_withdrawal: refused,
        reversed_transfer: reversed,
        account_suffix: suffix.to_owned(),
    })
}
