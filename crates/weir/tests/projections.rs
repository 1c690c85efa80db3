//! Projections and consumers through the SDK's API: several read models
//! from one store, checkpoints kept with the rows across reopening,
//! blue-green rebuilds, the query side, read-your-writes, and idempotent
//! consumers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weir::demo::bank::{Bank, BankConfig, Dashboard, Notifier, Statement};
use weir::rusqlite::{self, Transaction, params};
use weir::{
    Client, Envelope, Error, Handler, HandlerError, Op, Projection, ProjectorConfig, Select,
};

fn seeded(dir: &std::path::Path, accounts: usize) -> anyhow::Result<(Client, Bank)> {
    let client = Client::open(dir)?;
    let bank = Bank::open(&client, BankConfig::default())?;
    for i in 0..accounts {
        let id = format!("acc{i:02}");
        bank.open_account(&id, &format!("Owner {i}"))?;
        bank.deposit(&id, 100 * (i as u64 + 1))?;
    }
    Ok((client, bank))
}

/// Counts events by type; applying one twice would show.
#[derive(Debug)]
struct TypeCounts;

impl Projection for TypeCounts {
    fn name(&self) -> &str {
        "type-counts"
    }
    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE counts (type TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    }
    fn apply(&self, tx: &Transaction<'_>, e: &Envelope) -> Result<(), HandlerError> {
        tx.execute(
            "INSERT INTO counts VALUES (?1, 1) ON CONFLICT (type) DO UPDATE SET n = n + 1",
            [&e.event_type],
        )?;
        Ok(())
    }
}

fn count(p: &weir::Projector<TypeCounts>, ty: &str) -> anyhow::Result<i64> {
    Ok(p.read(|c| {
        c.query_row(
            "SELECT coalesce(sum(n), 0) FROM counts WHERE type LIKE ?1",
            [ty],
            |r| r.get(0),
        )
    })?)
}

#[test]
fn several_read_models_follow_one_store_and_resume_at_their_checkpoints() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let (client, bank) = seeded(dir.path(), 5)?;
        let counts = client.projector(TypeCounts, ProjectorConfig::default())?;
        assert_eq!(counts.catch_up()?, 10);
        assert_eq!(count(&counts, "%")?, 10);
        bank.deposit("acc00", 1)?;
        bank.catch_up()?;
        assert_eq!(bank.statement("acc00")?.len(), 2);
    }
    let client = Client::open(dir.path())?;
    let counts = client.projector(TypeCounts, ProjectorConfig::default())?;
    assert_eq!(
        counts.checkpoint(),
        10,
        "the checkpoint was kept with the rows"
    );
    assert_eq!(counts.catch_up()?, 1);
    assert_eq!(count(&counts, "%")?, 11);
    assert_eq!(count(&counts, "MoneyDeposited")?, 6);
    let statement = client.projector(Statement, ProjectorConfig::default())?;
    assert_eq!(
        statement.catch_up()?,
        0,
        "the statement had applied everything"
    );
    Ok(())
}

#[test]
fn the_query_side_filters_sorts_and_pages() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, bank) = seeded(dir.path(), 12)?;
    bank.catch_up()?;
    let dashboard = &bank.dashboard;
    let rich = Select::from("accounts")
        .filter("balance", Op::Ge, 500)
        .order_by_desc("balance")
        .limit(3);
    let page = dashboard.select(&rich)?;
    assert_eq!(page.total, 8);
    let ids: Vec<&str> = page
        .rows
        .iter()
        .map(|r| r["account"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["acc11", "acc10", "acc09"]);
    assert_eq!(page.next_offset, Some(3));
    let last = dashboard.select(&rich.clone().offset(6))?;
    assert_eq!(last.rows.len(), 2);
    assert_eq!(last.next_offset, None);
    let like = dashboard.select(&Select::from("accounts").filter(
        "owner",
        Op::Like,
        "Owner 1%".to_owned(),
    ))?;
    assert_eq!(like.total, 3); // 1, 10, 11
    // Names are checked against the read model, never spliced in blindly.
    for bad in [
        Select::from("accounts").filter("balance; DROP TABLE accounts", Op::Eq, 1),
        Select::from("nope"),
        Select::from("weir_checkpoint"),
        Select::from("accounts").order_by("\"x"),
        Select::from("accounts").limit(0),
        Select::from("accounts").limit(weir::PAGE_ROWS_MAX + 1),
    ] {
        assert!(
            matches!(dashboard.select(&bad), Err(Error::InvalidQuery { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(dashboard.select(&Select::from("accounts"))?.total, 12);
    drop(client);
    Ok(())
}

#[test]
fn read_your_writes_waits_for_the_position_or_times_out() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, bank) = seeded(dir.path(), 1)?;
    let done = bank.deposit("acc00", 7)?;
    let position = done.position.expect("a deposit appends");
    let dashboard = client.projector(Dashboard, ProjectorConfig::default())?;
    dashboard.wait_for(position, Duration::from_secs(5))?;
    assert!(dashboard.checkpoint() > position);
    let balance: i64 = dashboard.read(|c| {
        c.query_row(
            "SELECT balance FROM accounts WHERE account = 'acc00'",
            [],
            |r| r.get(0),
        )
    })?;
    assert_eq!(balance, 107);
    let start = Instant::now();
    match dashboard.wait_for(position + 100, Duration::from_millis(200)) {
        Err(Error::Timeout { checkpoint, .. }) => assert_eq!(checkpoint, position + 1),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(200));
    // A write from another thread while waiting is seen.
    let writer = {
        let bank_client = client.clone();
        std::thread::spawn(move || -> anyhow::Result<u64> {
            std::thread::sleep(Duration::from_millis(50));
            let bank = Bank::open(&bank_client, BankConfig::default())?;
            Ok(bank.deposit("acc00", 1)?.position.unwrap_or(0))
        })
    };
    dashboard.wait_for(position + 1, Duration::from_secs(5))?;
    let later = writer.join().expect("writer panicked")?;
    assert_eq!(later, position + 1);
    Ok(())
}

#[test]
fn a_blue_green_rebuild_replays_beside_the_live_model_and_switches() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, bank) = seeded(dir.path(), 20)?;
    let counts = std::sync::Arc::new(client.projector(
        TypeCounts,
        // Paced at 4 events per 20 ms: slower than the deposits below.
        ProjectorConfig {
            page_events: 4,
            rebuild_pause_ms: 20,
        },
    )?);
    counts.catch_up()?;
    assert_eq!(counts.generation(), 1);
    // While the rebuild replays, the live model answers and follows new
    // events.
    let rebuild = {
        let counts = counts.clone();
        std::thread::spawn(move || counts.rebuild())
    };
    // At least one round, however the threads are scheduled.
    let before = count(&counts, "%")?;
    let mut rounds = 0;
    let started = Instant::now();
    loop {
        // Appends faster than the paced replay must not keep it from ever
        // finishing (it replays to the head it started at, then catches up).
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the rebuild never caught up ({rounds} deposits meanwhile)"
        );
        bank.deposit("acc00", 1)?;
        counts.catch_up()?;
        rounds += 1;
        assert_eq!(
            count(&counts, "%")?,
            before + rounds,
            "the live model stopped following"
        );
        if rebuild.is_finished() {
            break;
        }
    }
    let rebuilt = rebuild.join().expect("rebuild panicked")?;
    assert_eq!(rebuilt.generation, 2);
    counts.catch_up()?;
    let head = client.head_position()?;
    assert_eq!(counts.checkpoint(), head);
    assert_eq!(
        count(&counts, "%")? as u64,
        head,
        "each event counted once after the switch"
    );
    assert_eq!(counts.generation(), 2);
    let files: Vec<String> = std::fs::read_dir(dir.path().join(".read-models/type-counts"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert!(files.contains(&"2.sqlite".to_owned()), "{files:?}");
    assert!(
        !files.contains(&"1.sqlite".to_owned()),
        "the old generation stays: {files:?}"
    );
    drop(counts);
    // Reopening finds the new generation.
    let again = client.projector(TypeCounts, ProjectorConfig::default())?;
    assert_eq!(again.generation(), 2);
    assert_eq!(again.checkpoint(), head);
    Ok(())
}

/// Adds event amounts to a total: not idempotent by nature.
#[derive(Debug, Default)]
struct Totaller {
    calls: AtomicU64,
    fail_on: Option<String>,
}

impl Handler for Totaller {
    type Output = i64;
    fn name(&self) -> &str {
        "totaller"
    }
    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE total (id INTEGER PRIMARY KEY, n INTEGER); INSERT INTO total VALUES (0, 0);")
    }
    fn handle(&self, tx: &Transaction<'_>, e: &Envelope) -> Result<i64, HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tx.execute("UPDATE total SET n = n + ?1", params![e.data.len() as i64])?;
        if self.fail_on.as_deref() == Some(e.id.as_str()) {
            return Err("downstream refused".into());
        }
        Ok(tx.query_row("SELECT n FROM total", [], |r| r.get(0))?)
    }
}

#[test]
fn an_idempotent_consumer_handles_each_event_once_and_answers_duplicates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, _bank) = seeded(dir.path(), 3)?;
    let events = client.read_all(0, 100)?;
    let failing = events[2].id.clone();
    let consumer = client.consumer(Totaller {
        fail_on: Some(failing.clone()),
        ..Totaller::default()
    })?;
    let first = consumer.handle(&events[0])?;
    assert!(!first.duplicate);
    let again = consumer.handle(&events[0])?;
    assert!(again.duplicate);
    assert_eq!(
        again.output, first.output,
        "a duplicate gets the recorded result"
    );
    let second = consumer.handle(&events[1])?;
    assert_eq!(
        second.output,
        (events[0].data.len() + events[1].data.len()) as i64
    );
    // A failed handler leaves no effect and no record: redelivery retries.
    assert!(matches!(
        consumer.handle(&events[2]),
        Err(Error::Handler { .. })
    ));
    let total: i64 = consumer.read(|c| c.query_row("SELECT n FROM total", [], |r| r.get(0)))?;
    assert_eq!(total, second.output);
    assert_eq!(consumer.processed()?, 2);
    drop(consumer);
    // The record survives reopening, in the same database as the effects.
    let consumer = client.consumer(Totaller::default())?;
    assert!(consumer.handle(&events[1])?.duplicate);
    assert!(!consumer.handle(&events[2])?.duplicate);
    assert_eq!(consumer.processed()?, 3);
    assert_eq!(consumer.retain_newest(1)?, 2);
    assert_eq!(consumer.processed()?, 1);
    Ok(())
}

#[test]
fn the_notifier_alerts_once_per_large_withdrawal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bank = Bank::open(&client, BankConfig::default())?;
    bank.open_account("big", "Bea")?;
    bank.deposit("big", 1_000_000)?;
    let w = bank.withdraw("big", 250_000)?;
    bank.withdraw("big", 10)?;
    let notifier = client.consumer(Notifier::new(&client))?;
    let mut alerts = Vec::new();
    for e in client.read_all(0, 100)?.iter().chain(w.events.iter()) {
        let h = notifier.handle(e)?;
        if let (Some(text), false) = (h.output, h.duplicate) {
            alerts.push(text);
        }
    }
    assert_eq!(alerts, ["Bea: 2500.00 left account big"]);
    Ok(())
}

#[test]
fn a_projector_on_its_own_thread_follows_new_events_until_stopped() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, bank) = seeded(dir.path(), 1)?;
    let counts = std::sync::Arc::new(client.projector(TypeCounts, ProjectorConfig::default())?);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let (counts, stop) = (counts.clone(), stop.clone());
        std::thread::spawn(move || counts.run_until(&stop, 10_000))
    };
    let position = bank.deposit("acc00", 5)?.position.unwrap_or(0);
    // Woken by the append, long before its 10 s idle wait would end.
    let deadline = Instant::now() + Duration::from_secs(5);
    while counts.checkpoint() <= position {
        assert!(
            Instant::now() < deadline,
            "the runner did not apply the deposit"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(count(&counts, "%")?, 3);
    stop.store(true, Ordering::Relaxed);
    bank.deposit("acc00", 1)?; // wakes the runner to see the stop
    runner.join().expect("runner panicked")?;
    Ok(())
}

#[test]
fn events_written_without_the_sdks_metadata_are_read_with_defaults() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let mut foreign = weir::store::NewEvent::json("f-1", "Imported", br#"{"x":1}"#.to_vec());
    foreign.metadata = b"not json at all".to_vec();
    client
        .backend()
        .append("legacy-1", weir::ExpectedVersion::Any, &[foreign])?;
    let counts = client.projector(TypeCounts, ProjectorConfig::default())?;
    assert_eq!(counts.catch_up()?, 1);
    let e = client.read_stream("legacy-1", 0, 1)?.remove(0);
    assert_eq!(
        (e.source.as_str(), e.dataversion, e.correlationid.as_str()),
        ("/streams/legacy-1", 1, "f-1")
    );
    Ok(())
}

/// Counts events, but fails on one event id while `fail_on` holds it.
#[derive(Debug)]
struct Flaky {
    fail_on: std::sync::Mutex<Option<String>>,
}

impl Projection for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE seen (event_id TEXT PRIMARY KEY)")
    }
    fn apply(&self, tx: &Transaction<'_>, e: &Envelope) -> Result<(), HandlerError> {
        // The row goes in first: a failure after it must take it back.
        tx.execute("INSERT INTO seen VALUES (?1)", [&e.id])?;
        if self.fail_on.lock().expect("lock").as_deref() == Some(e.id.as_str()) {
            return Err("the read model refused this event".into());
        }
        Ok(())
    }
}

#[test]
fn a_failed_page_moves_neither_the_rows_nor_the_checkpoint() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, _bank) = seeded(dir.path(), 4)?; // 8 events
    let events = client.read_all(0, 100)?;
    let flaky = client.projector(
        Flaky {
            fail_on: std::sync::Mutex::new(Some(events[5].id.clone())),
        },
        ProjectorConfig {
            page_events: 4,
            rebuild_pause_ms: 0,
        },
    )?;
    match flaky.catch_up() {
        Err(Error::Handler { position, .. }) => assert_eq!(position, 5),
        other => panic!("expected the handler's failure, got {other:?}"),
    }
    // The first page (0..4) is in; of the second, nothing: not events 4
    // and 5's rows, not the checkpoint.
    assert_eq!(flaky.checkpoint(), 4);
    let rows: i64 = flaky.read(|c| c.query_row("SELECT count(*) FROM seen", [], |r| r.get(0)))?;
    assert_eq!(rows, 4);
    drop(flaky);
    // Reopened (the refusal fixed), it resumes at its checkpoint and
    // applies each event once: a second insert of an id would fail.
    let flaky = client.projector(
        Flaky {
            fail_on: std::sync::Mutex::new(None),
        },
        ProjectorConfig::default(),
    )?;
    assert_eq!(flaky.checkpoint(), 4);
    assert_eq!(flaky.catch_up()?, 4);
    let rows: i64 = flaky.read(|c| c.query_row("SELECT count(*) FROM seen", [], |r| r.get(0)))?;
    assert_eq!(rows, 8);
    Ok(())
}
