//! The SDK's remote backend against a real `weir serve`: the same bank
//! scenarios the embedded backend runs (`crates/weir/tests/bank_scenarios`,
//! included by path so there is one copy of them), the demo in process
//! and as `weir demo bank --server`, how the server's answers come back
//! as the SDK's errors, and a projector woken by the polled head
//! position. Each server runs with a small page limit so every read the
//! SDK makes has to page.

mod common;

#[macro_use]
#[path = "../../weir/tests/bank_scenarios/mod.rs"]
mod bank_scenarios;

use std::process::{Child, Command};

use weir::demo::bank::{AccountEvent, Closed, TransferStatus, run_demo_remote};
use weir::{Causation, Client, ClientConfig, Envelope, Error, ExpectedVersion, StoreError};

/// Events per HTTP page on the test servers: small, so the SDK's reads
/// (load, streams, all, categories) cross pages.
const PAGE_MAX: &str = "7";

/// A `weir serve` of its own on a temporary data directory, killed on
/// drop; clients keep their read models in one local directory, as a
/// service that restarts would.
struct Server {
    child: Child,
    address: String,
    read_models: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The server may be gone already; nothing to do then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl bank_scenarios::Store for Server {
    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect_with(
            &self.address,
            ClientConfig {
                read_models_dir: Some(self.read_models.path().to_owned()),
                ..ClientConfig::default()
            },
        )?)
    }
}

fn server() -> anyhow::Result<Server> {
    let data = tempfile::tempdir()?;
    let (child, address) = common::start_serve_http(data.path(), &["--http-page-max", PAGE_MAX]);
    Ok(Server {
        child,
        address,
        read_models: tempfile::tempdir()?,
        _data: data,
    })
}

bank_scenario_tests!(server());

fn closed_event() -> anyhow::Result<Envelope> {
    Ok(Envelope::new(
        &AccountEvent::Closed(Closed {}),
        "/test",
        &Causation::new(),
    )?)
}

#[test]
fn version_conflicts_and_deleted_streams_are_the_store_errors_the_embedded_backend_gives()
-> anyhow::Result<()> {
    use bank_scenarios::Store as _;
    let server = server()?;
    let client = server.client()?;
    client.append("account-c", ExpectedVersion::NoStream, &[closed_event()?])?;
    match client.append("account-c", ExpectedVersion::Exact(5), &[closed_event()?]) {
        Err(Error::Store(StoreError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        })) => assert_eq!(
            (stream.as_str(), expected, actual),
            ("account-c", ExpectedVersion::Exact(5), Some(0))
        ),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    match client.append("account-c", ExpectedVersion::NoStream, &[closed_event()?]) {
        Err(Error::Store(StoreError::WrongExpectedVersion {
            expected, actual, ..
        })) => assert_eq!((expected, actual), (ExpectedVersion::NoStream, Some(0))),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    // A retry is recognised by its ids; an append that repeats only some
    // of an earlier one's is neither a retry nor new.
    let first = closed_event()?;
    client.append(
        "account-d",
        ExpectedVersion::Any,
        std::slice::from_ref(&first),
    )?;
    let retried = client.append(
        "account-d",
        ExpectedVersion::Any,
        std::slice::from_ref(&first),
    )?;
    assert_eq!(retried.first_version, 0, "a retry appended again");
    let second = closed_event()?;
    match client.append(
        "account-d",
        ExpectedVersion::Any,
        &[first.clone(), second.clone()],
    ) {
        Err(Error::Store(StoreError::IdempotencyConflict { stream, ids, .. })) => {
            assert_eq!(
                (stream.as_str(), ids),
                ("account-d", vec![first.id, second.id])
            );
        }
        other => panic!("expected an idempotency conflict, got {other:?}"),
    }
    // A stream deleted for good refuses appends with 410: StreamDeleted.
    let http = weir_client::Client::new(&server.address)?;
    http.delete_stream("account-c", true, None)?;
    match client.append("account-c", ExpectedVersion::Any, &[closed_event()?]) {
        Err(Error::Store(StoreError::StreamDeleted { stream })) => {
            assert_eq!(stream, "account-c")
        }
        other => panic!("expected a deleted stream, got {other:?}"),
    }
    // Reading a stream that is not there is empty, as embedded.
    assert!(client.read_stream("account-none", 0, 10)?.is_empty());
    // Problems the store has no variant for keep the server's code.
    match client.append("$reserved", ExpectedVersion::Any, &[closed_event()?]) {
        Err(Error::Server { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (400, "invalid_stream"))
        }
        other => panic!("expected a refused stream id, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_payload_that_is_not_json_is_refused_before_anything_is_sent() -> anyhow::Result<()> {
    use bank_scenarios::Store as _;
    let server = server()?;
    let client = server.client()?;
    let mut raw = closed_event()?;
    raw.data = vec![0xff, 0x00, 0x01];
    let err = client
        .append("account-r", ExpectedVersion::Any, &[raw.clone()])
        .unwrap_err();
    assert!(matches!(err, Error::NotJson { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&raw.id) && message.contains("not JSON"),
        "{message}"
    );
    assert_eq!(client.head_position()?, 0, "a refused payload was appended");
    Ok(())
}

#[test]
fn a_server_that_is_not_there_is_a_clear_error() {
    let address = format!("127.0.0.1:{}", common::free_port());
    match Client::connect(&address) {
        Err(e @ Error::Remote { .. }) => {
            assert!(e.to_string().contains(&address), "{e}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    let clocked = ClientConfig {
        clock: Some(std::sync::Arc::new(weir::ManualClock::new(0))),
        ..ClientConfig::default()
    };
    assert!(matches!(
        Client::connect_with(&address, clocked),
        Err(Error::Config { .. })
    ));
}

#[test]
fn the_demo_runs_against_a_server_and_again_beside_its_first_run() -> anyhow::Result<()> {
    let server = server()?;
    let mut out = Vec::new();
    let report = run_demo_remote(&server.address, &mut out)?;
    let text = String::from_utf8(out)?;
    assert_eq!(
        report.balances,
        vec![
            ("alice".to_owned(), 68_680),
            ("bob".to_owned(), 45_000),
            ("carol".to_owned(), 0)
        ]
    );
    // As of the moment the server recorded the withdrawal: 1000 - 120.
    assert_eq!(report.alice_as_of.1, 88_000);
    assert!(report.refused_withdrawal.contains("insufficient funds"));
    assert_eq!(report.reversed_transfer.status, TransferStatus::Reversed);
    let kinds: Vec<&str> = report
        .alice_statement
        .iter()
        .map(|l| l.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "MoneyDeposited",
            "MoneyWithdrawn",
            "TransferDebited",
            "InterestApplied"
        ]
    );
    let alice = format!("alice{}", report.account_suffix);
    assert!(text.contains(&format!("{alice}'s statement:")), "{text}");
    // The server now holds a run; the CLI's run beside it gets accounts
    // of its own and the same balances.
    let cli = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["demo", "bank", "--server", &server.address])
        .env("WEIR_LOG", "warn")
        .output()?;
    let cli_text = String::from_utf8(cli.stdout)?;
    assert!(
        cli.status.success(),
        "{cli_text}\n{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    for needle in [
        "balances now:",
        "686.80",
        "'s balance as of ",
        ": 880.00",
        "TransferDebited           -200.00     680.00",
        "refused: insufficient funds",
        "transfer Reversed (account carol-",
    ] {
        assert!(
            cli_text.contains(needle),
            "{needle:?} missing from:\n{cli_text}"
        );
    }
    assert!(
        !cli_text.contains(&alice),
        "the second run showed the first run's accounts:\n{cli_text}"
    );
    Ok(())
}

#[test]
fn a_projector_following_a_server_wakes_when_another_client_appends() -> anyhow::Result<()> {
    use bank_scenarios::Store as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let server = server()?;
    let follower = weir::demo::bank::Bank::open(&server.client()?, Default::default())?;
    let writer = weir::demo::bank::Bank::open(&server.client()?, Default::default())?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> anyhow::Result<()> {
        // Idle for 10 s between catch-ups unless the change signal
        // (the polled head position) wakes it.
        let running = s.spawn(|| follower.statement.run_until(&stop, 10_000));
        std::thread::sleep(Duration::from_millis(100));
        writer.open_account("w", "Wu")?;
        let done = writer.deposit("w", 5)?;
        let position = done.position.expect("the deposit appended");
        let deadline = Instant::now() + Duration::from_secs(5);
        while follower.statement.checkpoint() <= position && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            follower.statement.checkpoint() > position,
            "the projector did not wake for the new events"
        );
        // It stops at its next wake-up: make one.
        writer.deposit("w", 1)?;
        running.join().expect("the projector panicked")?;
        Ok(())
    })
}

/// The consumer runtime over a store subscription through the server: the
/// same handlers as embedded, a poison event parked in the server's store
/// and replayed from there once the handler is fixed.
#[test]
fn a_service_follows_a_category_on_the_server_and_parks_what_it_cannot_handle() -> anyhow::Result<()>
{
    use bank_scenarios::Store as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use weir::service::{Selection, StoreSource, parked, replay_parked};

    let server = server()?;
    let client = server.client()?;
    for i in 0..12u32 {
        let e = Envelope::new(&AccountEvent::Closed(Closed {}), "/test", &Causation::new())?;
        client.append(&format!("acct-{}", i % 3), ExpectedVersion::Any, &[e])?;
    }
    let fixed = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicU64::new(0));
    let (f, h) = (fixed.clone(), handled.clone());
    let service = weir::Service::builder("closer")
        .config(weir::ServiceConfig {
            commit_interval: std::time::Duration::from_millis(20),
            ..weir::ServiceConfig::default()
        })
        .on::<AccountEvent>(move |ctx, _| {
            let r = ctx.envelope().recorded.as_ref().unwrap();
            if r.stream == "acct-1" && r.version == 2 && !f.load(Ordering::SeqCst) {
                return Err(weir::Failure::permanent("closed twice"));
            }
            h.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()?;
    let running = service.start_store(StoreSource::new(
        &client,
        Selection::Category("acct".into()),
    ))?;
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait("11 handled, 1 parked", &|| {
        handled.load(Ordering::SeqCst) == 11 && service.stats().dead_lettered == 1
    });
    let p = parked(&client, "closer", 0, 10)?;
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].parked.stream.as_str(), p[0].parked.version),
        ("acct-1", 2)
    );
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(replay_parked(&client, "closer", 0, 10)?, (1, None));
    wait("the replay handled", &|| {
        handled.load(Ordering::SeqCst) == 12
    });
    running.stop()?;
    Ok(())
}

#[test]
fn the_sdk_reaches_a_server_that_wants_https_and_a_token_or_a_certificate() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let certs = tempfile::tempdir()?;
    let ca = weir_tls::test_certs::TestCa::new(certs.path(), "sdk");
    let cert = ca.server("server", "weir-sdk");
    let tokens = certs.path().join("tokens");
    std::fs::write(&tokens, "User:app app-token\n")?;
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert_file, key_file, tokens_file) = (path(&cert.cert), path(&cert.key), path(&tokens));
    let (child, address) = common::start_serve_http(
        data.path(),
        &[
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
            "--http-tls",
            "--http-tokens-file",
            &tokens_file,
        ],
    );
    let _server = Server {
        child,
        address: address.clone(),
        read_models: tempfile::tempdir()?,
        _data: tempfile::tempdir()?,
    };
    let ca_pem = std::fs::read(&ca.ca_pem)?;
    let config = |token: Option<&str>| ClientConfig {
        token: token.map(str::to_owned),
        ca_pem: Some(ca_pem.clone()),
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&address, config(Some("app-token")))?;
    client.append("account-s", ExpectedVersion::NoStream, &[closed_event()?])?;
    let read = client.read_stream("account-s", 0, 10)?;
    assert_eq!(read.len(), 1);

    // No token, a wrong one: the server's 401, at connect.
    for token in [None, Some("not-a-token")] {
        match Client::connect_with(&address, config(token)) {
            Err(Error::Server { status: 401, .. }) => {}
            other => panic!("{token:?}: expected a 401, got {other:?}"),
        }
    }
    // Without the CA the server's certificate is not trusted.
    let untrusted = Client::connect_with(
        &address,
        ClientConfig {
            token: Some("app-token".to_owned()),
            ..ClientConfig::default()
        },
    );
    assert!(untrusted.is_err(), "{untrusted:?}");
    // An embedded client has no use for either.
    let embedded = Client::open_with(data.path().join("embedded"), config(Some("t")));
    assert!(
        matches!(embedded, Err(Error::Config { .. })),
        "{embedded:?}"
    );

    // A server that wants a client certificate instead of a token.
    let mtls_data = tempfile::tempdir()?;
    let ca_file = path(&ca.ca_pem);
    let (child, address) = common::start_serve_http(
        mtls_data.path(),
        &[
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
            "--tls-client-ca",
            &ca_file,
            "--tls-client-auth",
            "required",
            "--http-tls",
        ],
    );
    let _mtls = Server {
        child,
        address: address.clone(),
        read_models: tempfile::tempdir()?,
        _data: tempfile::tempdir()?,
    };
    let me = ca.client("sdk", "sdk", "weir");
    let identity = (std::fs::read(&me.cert)?, std::fs::read(&me.key)?);
    let client = Client::connect_with(
        &address,
        ClientConfig {
            identity_pem: Some(identity.clone()),
            ..config(None)
        },
    )?;
    client.append("account-m", ExpectedVersion::NoStream, &[closed_event()?])?;
    assert!(Client::connect_with(&address, config(None)).is_err());
    let no_ca = Client::connect_with(
        &address,
        ClientConfig {
            identity_pem: Some(identity),
            ..ClientConfig::default()
        },
    );
    assert!(matches!(no_ca, Err(Error::Config { .. })), "{no_ca:?}");
    Ok(())
}
