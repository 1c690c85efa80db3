//! Versioned events through the SDK's user-facing API, embedded: events
//! written with every old shape of a type (v1 with its old Rust type, v2
//! as raw JSON, v3 by the current code) read in the newest shape by
//! aggregate loads, a projection, a consumer and the event registry;
//! gaps and upcaster failures as typed errors naming the event; event
//! types bound to schemas registered in the data directory's registry.

#[path = "common/customers.rs"]
mod customers;

use customers::{Command, Customer, CustomerEvent, Registered, upcasters, v1};
use rusqlite::Transaction;
use weir::schema::{dataschema_of, schema_id_of};
use weir::schema_registry::{CompatibilityLevel, SchemaType, VersionSpec};
use weir::{
    Causation, Client, Envelope, Error, ExpectedVersion, Handler, Projection, ProjectorConfig,
    Registry, RepositoryConfig, Upcasters,
};

/// Writes the old events: Ann registered with v1 and moved, Bo with v2
/// (raw JSON, no Rust type left for it), Mo with v1 and a name the v1 ->
/// v2 upcaster cannot split. Returns the id of Ann's registration.
fn write_old_events(client: &Client) -> anyhow::Result<String> {
    let ann = Envelope::new(
        &v1::Registered {
            name: "Ann Lee".into(),
        },
        "/crm-2019",
        &Causation::new(),
    )?
    .with_subject("ann");
    let moved = Envelope::new(
        &CustomerEvent::Moved(customers::Moved {
            city: "Oslo".into(),
        }),
        "/crm-2019",
        &Causation::new(),
    )?;
    client.append(
        "customer-ann",
        ExpectedVersion::NoStream,
        &[ann.clone(), moved],
    )?;
    let mut bo = Envelope::new(
        &v1::Registered {
            name: String::new(),
        },
        "/crm-2021",
        &Causation::new(),
    )?;
    bo.dataversion = 2;
    bo.data = br#"{"first":"Bo","last":"Ng"}"#.to_vec();
    client.append("customer-bo", ExpectedVersion::NoStream, &[bo])?;
    let mo = Envelope::new(
        &v1::Registered {
            name: "Madonna".into(),
        },
        "/crm-2019",
        &Causation::new(),
    )?;
    client.append("customer-mo", ExpectedVersion::NoStream, &[mo])?;
    Ok(ann.id)
}

fn customer(first: &str, last: &str, tier: &str, city: Option<&str>) -> Customer {
    Customer {
        first: first.into(),
        last: last.into(),
        tier: tier.into(),
        city: city.map(Into::into),
    }
}

#[test]
fn aggregates_load_events_of_every_old_version_in_the_newest_shape() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plain = Client::open(dir.path())?;
    let ann_id = write_old_events(&plain)?;
    // Without upcasters the old versions are types nobody decodes.
    let err = plain
        .repository::<Customer>(RepositoryConfig::default())
        .load("ann")
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownEventType { version: 1, .. }),
        "{err}"
    );

    let client = plain.with_upcasters(upcasters());
    let repo = client.repository::<Customer>(RepositoryConfig::default());
    assert_eq!(
        repo.load("ann")?.state,
        customer("Ann", "Lee", "basic", Some("Oslo"))
    );
    assert_eq!(repo.load("bo")?.state, customer("Bo", "Ng", "basic", None));
    repo.execute(
        "cy",
        &Command::Register {
            first: "Cy".into(),
            last: "Ito".into(),
        },
    )?;
    assert_eq!(repo.load("cy")?.state, customer("Cy", "Ito", "gold", None));
    // A new command on an old aggregate: loaded through the upcasters.
    let done = repo.execute("ann", &Command::Move("Rome".into()))?;
    assert_eq!(done.state, customer("Ann", "Lee", "basic", Some("Rome")));

    // Reads hand out the newest shape and version; the stored bytes stay.
    let read = client.read_stream("customer-ann", 0, 10)?;
    assert_eq!(read[0].id, ann_id);
    assert_eq!(read[0].dataversion, 3);
    assert_eq!(
        read[0].decode::<CustomerEvent>()?,
        CustomerEvent::Registered(Registered {
            first: "Ann".into(),
            last: "Lee".into(),
            tier: "basic".into()
        })
    );
    assert_eq!(plain.read_stream("customer-ann", 0, 1)?[0].dataversion, 1);

    // Mo's name cannot be split: the failure names the event.
    match repo.load("mo").unwrap_err() {
        Error::UpcastFailed {
            event_type,
            version,
            reason,
            ..
        } => {
            assert_eq!((event_type.as_str(), version), ("CustomerRegistered", 1));
            assert!(reason.contains("Madonna"), "{reason}");
        }
        other => panic!("{other}"),
    }
    Ok(())
}

struct Directory;

impl Projection for Directory {
    fn name(&self) -> &str {
        "directory"
    }

    fn setup(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE customers (id TEXT PRIMARY KEY, first TEXT, last TEXT, tier TEXT, version INTEGER)",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), weir::HandlerError> {
        if let Some(CustomerEvent::Registered(r)) = event.try_decode::<CustomerEvent>()? {
            let stream = &event.recorded.as_ref().ok_or("not recorded")?.stream;
            tx.execute(
                "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![stream, r.first, r.last, r.tier, event.dataversion],
            )?;
        }
        Ok(())
    }
}

struct Greeter;

impl Handler for Greeter {
    type Output = (u32, String);

    fn name(&self) -> &str {
        "greeter"
    }

    fn setup(&self, _tx: &Transaction<'_>) -> rusqlite::Result<()> {
        Ok(())
    }

    fn handle(
        &self,
        _tx: &Transaction<'_>,
        event: &Envelope,
    ) -> Result<(u32, String), weir::HandlerError> {
        match event.decode::<CustomerEvent>()? {
            CustomerEvent::Registered(r) => Ok((event.dataversion, format!("Dear {}", r.first))),
            CustomerEvent::Moved(m) => Ok((event.dataversion, format!("Welcome to {}", m.city))),
        }
    }
}

#[test]
fn projections_consumers_and_the_registry_see_only_the_newest_shape() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plain = Client::open(dir.path())?;
    write_old_events(&plain)?;
    let client = plain.with_upcasters(upcasters());
    client
        .repository::<Customer>(RepositoryConfig::default())
        .execute(
            "cy",
            &Command::Register {
                first: "Cy".into(),
                last: "Ito".into(),
            },
        )?;

    // The projector stops at Mo's event with the upcaster's error...
    let projector = client.projector(Directory, ProjectorConfig::default())?;
    let err = projector.catch_up().unwrap_err();
    assert!(matches!(err, Error::UpcastFailed { .. }), "{err}");
    // ...having applied nothing of that page (one transaction). Page by
    // page, one event each, it applies Ann and Bo first.
    drop(projector);
    let projector = client.projector(
        Directory,
        ProjectorConfig {
            page_events: 1,
            ..ProjectorConfig::default()
        },
    )?;
    assert!(projector.catch_up().is_err());
    let rows = projector.read(|c| {
        let mut s =
            c.prepare("SELECT id, first, last, tier, version FROM customers ORDER BY id")?;
        s.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })?;
    let row = |id: &str, f: &str, l: &str| (id.into(), f.into(), l.into(), "basic".into(), 3);
    assert_eq!(
        rows,
        vec![
            row("customer-ann", "Ann", "Lee"),
            row("customer-bo", "Bo", "Ng")
        ]
    );

    // A consumer handed the stored (old) events upcasts them itself.
    let consumer = client.consumer(Greeter)?;
    let old = plain.read_category("customer", 0, 100)?;
    assert_eq!(
        old.iter().map(|e| e.dataversion).collect::<Vec<_>>(),
        [1, 1, 2, 1, 3]
    );
    let greet = |i: usize| consumer.handle(&old[i]).map(|h| h.output);
    assert_eq!(greet(0)?, (3, "Dear Ann".to_owned()));
    assert_eq!(greet(1)?, (1, "Welcome to Oslo".to_owned()));
    assert_eq!(greet(2)?, (3, "Dear Bo".to_owned()));
    assert!(matches!(greet(3), Err(Error::UpcastFailed { .. })));
    assert_eq!(greet(4)?, (3, "Dear Cy".to_owned()));

    // The event registry decodes through the same upcasters.
    let mut registry = Registry::new();
    registry
        .register::<CustomerEvent>()?
        .with_upcasters(upcasters());
    let decoded = registry.decode_as::<CustomerEvent>(&old[2])?;
    assert_eq!(
        decoded,
        CustomerEvent::Registered(Registered {
            first: "Bo".into(),
            last: "Ng".into(),
            tier: "basic".into()
        })
    );
    let boxed = registry.decode(&old[0])?;
    assert!(boxed.downcast::<CustomerEvent>().is_ok());
    Ok(())
}

#[test]
fn a_gap_in_a_chain_names_the_event_and_the_missing_step() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plain = Client::open(dir.path())?;
    let ann_id = write_old_events(&plain)?;
    let mut u = Upcasters::new();
    u.declare::<CustomerEvent>()?;
    u.add("CustomerRegistered", 1, Ok)?; // no 2 -> 3
    let client = plain.with_upcasters(u);
    let repo = client.repository::<Customer>(RepositoryConfig::default());
    match repo.load("ann").unwrap_err() {
        Error::UpcastGap {
            id,
            event_type,
            version,
            missing,
            current,
        } => {
            assert_eq!(id, ann_id);
            assert_eq!(event_type, "CustomerRegistered");
            assert_eq!((version, missing, current), (1, 2, 3));
        }
        other => panic!("{other}"),
    }
    let err = repo.load("bo").unwrap_err();
    assert!(
        matches!(
            err,
            Error::UpcastGap {
                version: 2,
                missing: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no upcaster from v2"), "{err}");
    Ok(())
}

#[test]
fn upcaster_registrations_are_checked() {
    let mut u = Upcasters::new();
    u.declare::<CustomerEvent>().unwrap();
    // A second upcaster for a step, one from the current version or later,
    // one from v0: refused.
    u.add("CustomerRegistered", 1, Ok).unwrap();
    for from in [1, 3, 4, 0] {
        let err = u.add("CustomerRegistered", from, Ok).unwrap_err();
        assert!(matches!(err, Error::InvalidUpcaster { .. }), "{err}");
    }
    // A type declared current at two versions.
    assert!(u.set_current("CustomerRegistered", 4).is_err());
    // An upcaster past a version declared later.
    let mut u = Upcasters::new();
    u.add("CustomerMoved", 5, Ok).unwrap();
    assert_eq!(u.current("CustomerMoved"), Some(6));
    assert!(u.declare::<CustomerEvent>().is_err());
}

#[test]
fn bound_event_types_carry_the_registered_schema_id() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let bindings = client.bind::<CustomerEvent>("customer")?;
    let subjects: Vec<_> = bindings.iter().map(|b| b.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["customer-CustomerMoved", "customer-CustomerRegistered"]
    );
    let registered = &bindings[1];
    let schemas = client.schemas()?;
    let latest = schemas.subject_version("customer-CustomerRegistered", VersionSpec::Latest)?;
    assert_eq!((latest.id, latest.version), (registered.id, 1));
    assert_eq!(latest.schema.schema_type, SchemaType::Json);

    let repo = client.repository::<Customer>(RepositoryConfig::default());
    let done = repo.execute(
        "dee",
        &Command::Register {
            first: "Dee".into(),
            last: "Oh".into(),
        },
    )?;
    let expected = dataschema_of(registered.id);
    assert_eq!(
        done.events[0].dataschema.as_deref(),
        Some(expected.as_str())
    );
    let stored = client.read_stream("customer-dee", 0, 1)?;
    assert_eq!(stored[0].dataschema.as_deref(), Some(expected.as_str()));
    assert_eq!(schema_id_of(&expected), Some(registered.id));
    let text: serde_json::Value =
        serde_json::from_str(&schemas.schema_by_id(registered.id)?.schema)?;
    assert_eq!(
        text["required"],
        serde_json::json!(["first", "last", "tier"])
    );
    // Another category is not bound.
    let e = Envelope::new(
        &CustomerEvent::Moved(customers::Moved {
            city: "Lima".into(),
        }),
        "/t",
        &Causation::new(),
    )?;
    client.append("vip-dee", ExpectedVersion::Any, &[e])?;
    assert_eq!(client.read_stream("vip-dee", 0, 1)?[0].dataschema, None);

    // Binding again is idempotent: the same ids.
    assert_eq!(client.bind::<CustomerEvent>("customer")?, bindings);
    // A schema breaking the subject's level is refused with the
    // registry's code; under NONE it registers as version 2.
    let breaking = weir::schema_registry::SchemaDef::new(
        SchemaType::Json,
        r#"{"type":"object","properties":{"email":{"type":"string"}},"required":["email"]}"#,
    );
    match schemas.register("customer-CustomerRegistered", &breaking) {
        Err(Error::Schema { subject, code, .. }) => {
            assert_eq!(
                (subject.as_str(), code),
                ("customer-CustomerRegistered", 409)
            );
        }
        other => panic!("{other:?}"),
    }
    schemas.set_compatibility("customer-CustomerRegistered", CompatibilityLevel::None)?;
    let second = schemas.register("customer-CustomerRegistered", &breaking)?;
    assert_eq!(second.version, 2);
    assert_ne!(second.id, registered.id);
    // The client's registry is the data directory's: a new client on it
    // after this one closes sees the same subjects.
    drop((client, repo, schemas));
    let again = Client::open(dir.path())?.schemas()?;
    let latest = again.subject_version("customer-CustomerRegistered", VersionSpec::Latest)?;
    assert_eq!(latest.id, second.id);
    Ok(())
}

/// Validation on write, embedded: with the category switched on, an
/// event the bound schema refuses is refused with `SchemaRefused` and
/// nothing is written; reopening the directory keeps the setting.
#[test]
fn a_validated_category_refuses_events_its_schemas_refuse() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let client = Client::open(dir.path())?;
        client.bind::<CustomerEvent>("customer")?;
        client
            .schemas()?
            .set_category_validation("customer", true)?;
    }
    let client = Client::open(dir.path())?;
    let repo = client.repository::<Customer>(RepositoryConfig::default());
    repo.execute(
        "eve",
        &Command::Register {
            first: "Eve".into(),
            last: "Ko".into(),
        },
    )?;
    // v1's shape (a single name) is not the bound v3 schema's.
    let old = Envelope::new(
        &v1::Registered {
            name: "Old Shape".into(),
        },
        "/t",
        &Causation::new(),
    )?;
    match client.append("customer-old", ExpectedVersion::NoStream, &[old]) {
        Err(Error::Store(weir_store::StoreError::SchemaRefused {
            stream,
            index,
            reason,
            ..
        })) => {
            assert_eq!((stream.as_str(), index), ("customer-old", 0));
            assert!(reason.contains("customer-CustomerRegistered"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(client.read_stream("customer-old", 0, 10)?.is_empty());
    client
        .schemas()?
        .set_category_validation("customer", false)?;
    let old = Envelope::new(
        &v1::Registered {
            name: "Old Shape".into(),
        },
        "/t",
        &Causation::new(),
    )?;
    client.append("customer-old", ExpectedVersion::NoStream, &[old])?;
    Ok(())
}

/// Persistent-subscription deliveries carry the event as recorded; the
/// consumer's `envelope` hands it out upcast, as every other read.
#[test]
fn subscription_deliveries_are_upcast_by_their_consumer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plain = Client::open(dir.path())?;
    write_old_events(&plain)?;
    let client = plain.with_upcasters(upcasters());
    let group = client.persistent_subscription("customer-bo", "crm");
    group.ensure(&weir::persistent::SubscriptionSettings {
        start_from: Some(0),
        ..Default::default()
    })?;
    let consumer = group.consumer("c1");
    let delivered = consumer.read(10, std::time::Duration::from_secs(5))?;
    assert_eq!(delivered.len(), 1);
    let envelope = consumer.envelope(&delivered[0])?;
    assert_eq!(envelope.dataversion, 3);
    assert_eq!(
        envelope.decode::<CustomerEvent>()?,
        CustomerEvent::Registered(Registered {
            first: "Bo".into(),
            last: "Ng".into(),
            tier: "basic".into()
        })
    );
    consumer.ack(&delivered)?;
    Ok(())
}
