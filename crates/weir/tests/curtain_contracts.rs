//! The event curtain and contract checks, embedded: an internal shape
//! change (read through an upcaster) publishes exactly what the old shape
//! did; an internal type neither mapped nor dropped stops the curtain;
//! a producer's samples pass the schemas of a consumer that fits and fail,
//! naming event, subject and violation, against ones that do not.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir::contract::{ConsumerSubject, check_contract};
use weir::schema_registry::{SchemaDef, SchemaType};
use weir::{
    Causation, Client, Curtain, Envelope, Error, EventSchemas, EventType, ExpectedVersion,
    Upcasters,
};

// The internal events: `OrderPlaced` v1 was `{order_id, total}`, v2 is
// `{id, total_cents}`; `OrderNoted` stays internal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    id: String,
    total_cents: u64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipped {
    id: String,
}
weir::events! {
    #[derive(Debug, Clone)]
    enum Internal {
        Placed(Placed) = "OrderPlaced" v 2,
        Shipped(Shipped) = "OrderShipped" v 1,
    }
}

// The public contract: its own type names (a client reading both sides
// would otherwise apply the internal upcasters to public events).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PublicPlaced {
    order: String,
    amount_cents: u64,
    currency: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PublicShipped {
    order: String,
}
weir::events! {
    #[derive(Debug, Clone)]
    enum Public {
        Placed(PublicPlaced) = "orders.OrderPlaced" v 1,
        Shipped(PublicShipped) = "orders.OrderShipped" v 1,
    }
}

impl EventSchemas for Public {
    fn json_schema(t: EventType) -> Option<Value> {
        match t.name {
            "orders.OrderPlaced" => Some(json!({
                "type": "object",
                "properties": {
                    "order": {"type": "string"},
                    "amount_cents": {"type": "integer", "minimum": 0},
                    "currency": {"type": "string"}
                },
                "required": ["order", "amount_cents", "currency"],
                "additionalProperties": false
            })),
            _ => None,
        }
    }
}

fn internal_upcasters() -> Upcasters {
    let mut u = Upcasters::new();
    u.declare::<Internal>().unwrap();
    u.add("OrderPlaced", 1, |v| {
        Ok(json!({"id": v["order_id"], "total_cents": v["total"]}))
    })
    .unwrap();
    u
}

fn curtain(client: &Client) -> anyhow::Result<Curtain> {
    Ok(Curtain::builder("orders-public", "order", "orderpub")
        .map::<Internal, Public>(|e| match e {
            Internal::Placed(p) => vec![Public::Placed(PublicPlaced {
                order: p.id.clone(),
                amount_cents: p.total_cents,
                currency: "EUR".into(),
            })],
            Internal::Shipped(s) => vec![Public::Shipped(PublicShipped {
                order: s.id.clone(),
            })],
        })?
        .drop_type("OrderNoted")?
        .open(client)?)
}

/// An internal event of `event_type` v`version` with raw JSON `data`.
fn raw(event_type: &str, version: u32, data: Value) -> anyhow::Result<Envelope> {
    let mut e = Envelope::new(
        &Internal::Shipped(Shipped { id: String::new() }),
        "/orders",
        &Causation::new(),
    )?
    .with_subject("o1");
    e.event_type = event_type.to_owned();
    e.dataversion = version;
    e.data = serde_json::to_vec(&data)?;
    Ok(e)
}

/// What consumers see (through a client of their own, without the
/// producer's upcasters): every public event's stream, type, version,
/// subject and data.
fn published(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String, u32, Value)>> {
    Client::open(dir)?
        .read_category("orderpub", 0, 100)?
        .into_iter()
        .map(|e| {
            let stream = e.recorded.as_ref().unwrap().stream.clone();
            assert_eq!(e.subject.as_deref(), Some("o1"));
            Ok((
                stream,
                e.event_type,
                e.dataversion,
                serde_json::from_slice(&e.data)?,
            ))
        })
        .collect()
}

#[test]
fn an_internal_shape_change_does_not_change_what_is_published() -> anyhow::Result<()> {
    // Before the change: the order placed in the v1 shape.
    let before = tempfile::tempdir()?;
    let old = Client::open(before.path())?.with_upcasters(internal_upcasters());
    old.append(
        "order-o1",
        ExpectedVersion::NoStream,
        &[
            raw("OrderPlaced", 1, json!({"order_id": "o1", "total": 1250}))?,
            raw("OrderNoted", 1, json!({"by": "ops", "text": "fragile"}))?,
            raw("OrderShipped", 1, json!({"id": "o1"}))?,
        ],
    )?;
    // After it: the same facts in the v2 shape.
    let after = tempfile::tempdir()?;
    let new = Client::open(after.path())?.with_upcasters(internal_upcasters());
    new.append(
        "order-o1",
        ExpectedVersion::NoStream,
        &[
            raw("OrderPlaced", 2, json!({"id": "o1", "total_cents": 1250}))?,
            raw("OrderNoted", 1, json!({"by": "ops", "text": "fragile"}))?,
            raw("OrderShipped", 1, json!({"id": "o1"}))?,
        ],
    )?;
    for client in [&old, &new] {
        let pass = curtain(client)?.catch_up()?;
        assert_eq!((pass.read, pass.published, pass.dropped), (3, 2, 1));
    }
    // The checkpoint holds: a curtain opened again publishes nothing more.
    let again = curtain(&old)?;
    assert_eq!(again.checkpoint(), 3);
    assert_eq!(again.catch_up()?.read, 0);
    // A curtain that lost its checkpoint (a crash before it moved)
    // publishes again with the same ids: the store takes it as a retry.
    drop(again);
    for suffix in ["", "-wal", "-shm"] {
        let f = before
            .path()
            .join(format!(".read-models/orders-public.curtain.sqlite{suffix}"));
        let _ = std::fs::remove_file(f);
    }
    let replayed = curtain(&old)?.catch_up()?;
    assert_eq!((replayed.read, replayed.published), (3, 2));
    assert_eq!(old.read_category("orderpub", 0, 100)?.len(), 2);
    drop((old, new));
    let seen = published(before.path())?;
    assert_eq!(seen, published(after.path())?);
    assert_eq!(
        seen[0],
        (
            "orderpub-o1".to_owned(),
            "orders.OrderPlaced".to_owned(),
            1,
            json!({"order": "o1", "amount_cents": 1250, "currency": "EUR"})
        )
    );
    assert_eq!(seen[1].1, "orders.OrderShipped");
    Ok(())
}

#[test]
fn an_internal_type_neither_mapped_nor_dropped_stops_the_curtain() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?.with_upcasters(internal_upcasters());
    client.append(
        "order-o1",
        ExpectedVersion::NoStream,
        &[
            raw("OrderPlaced", 2, json!({"id": "o1", "total_cents": 5}))?,
            raw("OrderRefunded", 1, json!({"id": "o1"}))?,
        ],
    )?;
    let c = Curtain::builder("refunds", "order", "orderpub")
        .map::<Internal, Public>(|_| Vec::new())?
        .page_events(1)
        .open(&client)?;
    assert_eq!(c.run_once()?.dropped, 1);
    match c.run_once().unwrap_err() {
        Error::Curtain {
            name, event_type, ..
        } => assert_eq!(
            (name.as_str(), event_type.as_str()),
            ("refunds", "OrderRefunded")
        ),
        other => panic!("{other}"),
    }
    assert_eq!(c.checkpoint(), 1, "the checkpoint stays before the event");
    // Mapping a type twice is refused when the curtain is built.
    let twice = Curtain::builder("twice", "order", "orderpub")
        .drop_type("OrderPlaced")?
        .map::<Internal, Public>(|_| Vec::new());
    assert!(matches!(twice, Err(Error::Config { .. })));
    Ok(())
}

fn samples() -> Vec<Public> {
    vec![
        Public::Placed(PublicPlaced {
            order: "o1".into(),
            amount_cents: 1250,
            currency: "EUR".into(),
        }),
        Public::Placed(PublicPlaced {
            order: "o2".into(),
            amount_cents: 0,
            currency: "NOK".into(),
        }),
    ]
}

#[test]
fn contract_checks_pass_for_a_fitting_consumer_and_name_each_violation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let schemas = client.schemas()?;
    let register = |subject: &str, schema: Value| {
        schemas.register(
            subject,
            &SchemaDef::new(SchemaType::Json, schema.to_string()),
        )
    };
    // Billing reads the order and amount, and ignores the rest.
    register(
        "billing-orders.OrderPlaced",
        json!({
            "type": "object",
            "properties": {"order": {"type": "string"}, "amount_cents": {"type": "integer"}},
            "required": ["order", "amount_cents"]
        }),
    )?;
    // Shipping wants an address the producer never sends.
    register(
        "shipping-orders.OrderPlaced",
        json!({
            "type": "object",
            "properties": {"order": {"type": "string"}, "address": {"type": "string"}},
            "required": ["order", "address"]
        }),
    )?;
    // Reporting expects the amount as a string.
    register(
        "reporting-orders.OrderPlaced",
        json!({
            "type": "object",
            "properties": {"amount_cents": {"type": "string"}}
        }),
    )?;

    let billing = [ConsumerSubject::new(
        "orders.OrderPlaced",
        "billing-orders.OrderPlaced",
    )];
    let report = check_contract(&schemas, &samples(), &billing)?;
    assert!(report.passed(), "{:?}", report.failures);
    assert_eq!((report.validated, report.compared), (2, 1));

    let shipping = [ConsumerSubject::new(
        "orders.OrderPlaced",
        "shipping-orders.OrderPlaced",
    )];
    let report = check_contract(&schemas, &samples(), &shipping)?;
    assert!(!report.passed());
    let by_sample: Vec<_> = report
        .failures
        .iter()
        .filter(|f| f.sample.is_some())
        .collect();
    assert_eq!(by_sample.len(), 2, "{:?}", report.failures);
    for f in &report.failures {
        assert_eq!(
            (f.event_type.as_str(), f.version),
            ("orders.OrderPlaced", 1)
        );
        assert_eq!(f.subject, "shipping-orders.OrderPlaced");
    }
    assert!(
        by_sample[0].violation.contains("address"),
        "{}",
        by_sample[0]
    );
    // The producer's schema cannot satisfy the consumer's either.
    assert!(
        report.failures.iter().any(|f| f.sample.is_none()),
        "{:?}",
        report.failures
    );

    let reporting = [ConsumerSubject::new(
        "orders.OrderPlaced",
        "reporting-orders.OrderPlaced",
    )];
    let report = check_contract(&schemas, &samples(), &reporting)?;
    let first = &report.failures[0];
    assert_eq!(first.sample, Some(0));
    assert!(first.violation.starts_with("at /amount_cents"), "{first}");
    assert!(
        first.to_string().contains("reporting-orders.OrderPlaced"),
        "{first}"
    );

    // A consumer subject that does not exist is a failure of it.
    let missing = [ConsumerSubject::new(
        "orders.OrderPlaced",
        "audit-orders.OrderPlaced",
    )];
    let report = check_contract(&schemas, &samples(), &missing)?;
    assert_eq!(report.failures.len(), 1);
    assert!(
        report.failures[0].violation.contains("cannot be read"),
        "{}",
        report.failures[0]
    );
    Ok(())
}
