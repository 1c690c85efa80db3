//! Envelopes, typed events and the registry through the SDK's API:
//! CloudEvents attributes in the store, JSON structured mode and Kafka
//! binary mode round trips, causation and correlation, unknown types.

use serde::{Deserialize, Serialize};
use weir::demo::bank::{AccountEvent, Moved, TransferEvent};
use weir::{Causation, Client, Envelope, Error, Event, ExpectedVersion, KafkaRecord, Registry};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PriceChanged {
    sku: String,
    cents: u64,
}
weir::event!(PriceChanged = "PriceChanged" v 2);

#[test]
fn envelopes_keep_every_attribute_through_the_store() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let cause = Causation::correlated("req-1");
    let mut e = Envelope::new(
        &PriceChanged {
            sku: "p-1".into(),
            cents: 250,
        },
        client.source(),
        &cause,
    )?
    .with_subject("p-1");
    e.dataschema = Some("https://example.invalid/schemas/price-changed-v2.json".into());
    let done = client.append(
        "price-p-1",
        ExpectedVersion::NoStream,
        std::slice::from_ref(&e),
    )?;
    let read = client.read_stream("price-p-1", 0, 10)?;
    let r = &read[0];
    assert_eq!(r.id, e.id);
    assert_eq!(r.source, "/weir");
    assert_eq!(r.event_type, "PriceChanged");
    assert_eq!(r.specversion, "1.0");
    assert_eq!(r.subject.as_deref(), Some("p-1"));
    assert_eq!(r.datacontenttype, "application/json");
    assert_eq!(r.dataschema, e.dataschema);
    assert_eq!(r.dataversion, 2);
    assert_eq!(r.correlationid, "req-1");
    assert_eq!(r.causationid, None);
    assert!(r.time.as_deref().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(r.position(), Some(done.last_position));
    assert_eq!(
        r.decode::<PriceChanged>()?,
        PriceChanged {
            sku: "p-1".into(),
            cents: 250
        }
    );
    // What handling it produces is caused by it, in its correlation.
    let next = Envelope::new(
        &PriceChanged {
            sku: "p-1".into(),
            cents: 300,
        },
        "/pricing",
        &Causation::caused_by(r),
    )?;
    assert_eq!(next.correlationid, "req-1");
    assert_eq!(next.causationid.as_deref(), Some(r.id.as_str()));
    Ok(())
}

#[test]
fn structured_json_and_kafka_binary_mode_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let e = Envelope::new(
        &AccountEvent::Deposited(Moved {
            amount: 5,
            balance_after: 5,
        }),
        "/bank",
        &Causation::new(),
    )?
    .with_subject("a");
    client.append("account-a", ExpectedVersion::Any, std::slice::from_ref(&e))?;
    let recorded = client.read_stream("account-a", 0, 1)?.remove(0);

    let json: serde_json::Value = serde_json::from_slice(&recorded.to_json()?)?;
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["type"], "MoneyDeposited");
    assert_eq!(json["source"], "/bank");
    assert_eq!(json["subject"], "a");
    assert_eq!(json["dataversion"], 1);
    assert_eq!(json["data"]["balance_after"], 5);
    assert_eq!(json["stream"], "account-a");
    let back = Envelope::from_json(&recorded.to_json()?)?;
    assert_eq!(back.id, recorded.id);
    assert_eq!(back.data, serde_json::to_vec(&json["data"])?);
    assert_eq!(back.correlationid, recorded.correlationid);
    assert_eq!(
        back.recorded.as_ref().map(|r| r.position),
        recorded.position()
    );

    let record = recorded.to_kafka();
    let header = |n: &str| {
        record
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    // The store's own header names, so both kinds of record read alike.
    assert_eq!(
        header(weir_store::headers::SPECVERSION).as_deref(),
        Some("1.0")
    );
    assert_eq!(header("ce_type").as_deref(), Some("MoneyDeposited"));
    assert_eq!(
        header("ce_correlationid").as_deref(),
        Some(recorded.correlationid.as_str())
    );
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(record.key.as_deref(), Some(&b"account-a"[..]));
    let back = Envelope::from_kafka(&record)?;
    assert_eq!(
        back.decode::<AccountEvent>()?,
        recorded.decode::<AccountEvent>()?
    );
    assert_eq!(back.time, recorded.time);

    // A record as the store writes it to __weir_events: the extensions
    // are in ce_metadata.
    let raw = KafkaRecord {
        key: Some(b"account-a".to_vec()),
        value: recorded.data.clone(),
        headers: vec![
            ("ce_specversion".into(), b"1.0".to_vec()),
            ("ce_id".into(), recorded.id.clone().into_bytes()),
            ("ce_source".into(), b"/streams/account-a".to_vec()),
            ("ce_type".into(), b"MoneyDeposited".to_vec()),
            ("ce_metadata".into(), e.to_new_event()?.metadata),
        ],
    };
    let from_store = Envelope::from_kafka(&raw)?;
    assert_eq!(from_store.source, "/bank");
    assert_eq!(from_store.correlationid, recorded.correlationid);
    assert_eq!(from_store.subject.as_deref(), Some("a"));

    assert!(matches!(
        Envelope::from_json(br#"{"specversion":"0.3","id":"x","source":"s","type":"t"}"#),
        Err(Error::InvalidCloudEvent { .. })
    ));
    Ok(())
}

#[test]
fn the_registry_maps_type_and_version_to_rust_types() -> anyhow::Result<()> {
    let mut registry = Registry::new();
    registry
        .register::<AccountEvent>()?
        .register::<TransferEvent>()?
        .register::<PriceChanged>()?;
    assert!(
        registry.register::<AccountEvent>().is_ok(),
        "registering again is harmless"
    );
    let price = Envelope::new(
        &PriceChanged {
            sku: "s".into(),
            cents: 1,
        },
        "/p",
        &Causation::new(),
    )?;
    let any = registry.decode(&price)?;
    assert_eq!(any.downcast_ref::<PriceChanged>().map(|p| p.cents), Some(1));
    assert!(registry.decode_as::<AccountEvent>(&price).is_err());
    assert_eq!(
        registry.rust_type("MoneyDeposited", 1),
        Some(std::any::type_name::<AccountEvent>())
    );

    // An unknown type, or a known type at an unknown version: a clear
    // error naming both.
    let mut unknown = price.clone();
    unknown.dataversion = 1;
    match registry.decode(&unknown) {
        Err(e @ Error::UnknownEventType { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("PriceChanged") && text.contains("version 1"),
                "{text}"
            );
        }
        other => panic!("expected an unknown type, got {other:?}"),
    }
    assert!(matches!(
        unknown.decode::<PriceChanged>(),
        Err(Error::UnknownEventType { .. })
    ));
    assert!(unknown.try_decode::<PriceChanged>()?.is_none());
    let mut garbled = price.clone();
    garbled.data = b"{\"sku\":1}".to_vec();
    assert!(matches!(
        registry.decode(&garbled),
        Err(Error::BadEventData { .. })
    ));
    assert!(PriceChanged::handles("PriceChanged", 2));

    #[derive(Debug, Serialize, Deserialize)]
    struct Impostor {}
    weir::event!(Impostor = "PriceChanged" v 2);
    assert!(matches!(
        registry.register::<Impostor>(),
        Err(Error::DuplicateEventType { .. })
    ));
    Ok(())
}

/// The records a Kafka consumer of `__weir_events` fetches are the
/// store's bytes; read as CloudEvents in binary mode they are the events
/// the SDK wrote, with every attribute.
#[test]
fn records_of_weir_events_read_back_as_the_sdks_envelopes() -> anyhow::Result<()> {
    use weir::demo::bank::{Bank, BankConfig};
    let dir = tempfile::tempdir()?;
    let embedded = weir::Embedded::open(dir.path(), None)?;
    let store = embedded.store().clone();
    let client = Client::with_backend(
        Box::new(embedded),
        dir.path().join(".read-models"),
        "/bank".to_owned(),
    );
    let bank = Bank::open(&client, BankConfig::default())?;
    bank.open_account("k", "Kim")?;
    bank.deposit("k", 10)?;
    let log = store.broker().partition(weir_store::EVENTS_TOPIC, 0)?;
    let bytes = log.read(0, 1 << 20)?.bytes;
    let mut from_kafka = Vec::new();
    for (_, range) in weir_log::batch::validate_all(&bytes)? {
        for r in weir_log::batch::records(&bytes[range])? {
            let record = KafkaRecord {
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.unwrap_or_default().to_vec(),
                headers: r
                    .headers
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), v.unwrap_or_default().to_vec()))
                    .collect(),
            };
            from_kafka.push(Envelope::from_kafka(&record)?);
        }
    }
    let from_store = client.read_all(0, 100)?;
    assert_eq!(from_kafka.len(), 2);
    for (k, s) in from_kafka.iter().zip(&from_store) {
        assert_eq!(
            (&k.id, &k.source, &k.event_type, &k.subject, &k.time),
            (&s.id, &s.source, &s.event_type, &s.subject, &s.time)
        );
        assert_eq!(
            (&k.correlationid, &k.causationid, k.dataversion, &k.data),
            (&s.correlationid, &s.causationid, s.dataversion, &s.data)
        );
        assert_eq!(k.source, "/bank");
    }
    Ok(())
}
