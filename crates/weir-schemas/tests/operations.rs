//! Each registry operation with Confluent's semantics and error codes,
//! over an in-memory log: ids and versions, lookup, reads by id and by
//! version, soft and permanent deletes, levels, modes, references and
//! limits.

use weir_schemas::{
    CompatibilityLevel, ImportIds, Limits, MemoryLog, Mode, Reference, Registry, SchemaDef,
    SchemaError, SchemaType, VersionSpec,
};

fn registry() -> Registry {
    Registry::open(Box::new(MemoryLog::new()), Limits::default()).unwrap()
}

fn avro(fields: &str) -> SchemaDef {
    SchemaDef::new(
        SchemaType::Avro,
        format!(r#"{{"type":"record","name":"Payment","fields":[{fields}]}}"#),
    )
}

const ID: &str = r#"{"name":"id","type":"string"}"#;
const AMOUNT: &str = r#"{"name":"amount","type":"int","default":0}"#;

fn code<T: std::fmt::Debug>(r: Result<T, SchemaError>) -> u32 {
    r.unwrap_err().error_code()
}

#[test]
fn ids_are_global_and_versions_per_subject() {
    let r = registry();
    let a = avro(ID);
    let first = r
        .register("payments-value", &a, ImportIds::default())
        .unwrap();
    assert_eq!((first.id, first.version), (1, 1));
    // The same schema again in the same subject: the same answer.
    assert_eq!(
        r.register("payments-value", &a, ImportIds::default())
            .unwrap(),
        first
    );
    // Whitespace and key order do not make another schema.
    let spaced = SchemaDef::new(
        SchemaType::Avro,
        r#"{ "name": "Payment", "type": "record", "fields": [ {"type": "string", "name": "id"} ] }"#,
    );
    assert_eq!(
        r.register("payments-value", &spaced, ImportIds::default())
            .unwrap(),
        first
    );
    // Under another subject: the same id, that subject's version 1.
    let other = r
        .register("refunds-value", &a, ImportIds::default())
        .unwrap();
    assert_eq!((other.id, other.version), (1, 1));
    // A new schema: a new id and the next version.
    let b = avro(&format!("{ID},{AMOUNT}"));
    let second = r
        .register("payments-value", &b, ImportIds::default())
        .unwrap();
    assert_eq!((second.id, second.version), (2, 2));
    // The same text as JSON Schema is another schema.
    let json = SchemaDef::new(SchemaType::Json, r#"{"type":"string"}"#);
    assert_eq!(
        r.register("names", &json, ImportIds::default()).unwrap().id,
        3
    );

    assert_eq!(
        r.subjects("", false),
        vec!["names", "payments-value", "refunds-value"]
    );
    assert_eq!(r.subjects("pay", false), vec!["payments-value"]);
    assert_eq!(r.versions("payments-value", false).unwrap(), vec![1, 2]);
    assert_eq!(r.schema_by_id(2).unwrap(), b);
    assert_eq!(
        r.subjects_by_id(1, false).unwrap(),
        vec!["payments-value", "refunds-value"]
    );
    assert_eq!(
        r.versions_by_id(1, false).unwrap(),
        vec![
            ("payments-value".to_owned(), 1),
            ("refunds-value".to_owned(), 1)
        ]
    );
    assert_eq!(code(r.schema_by_id(9)), 40403);
    let listed: Vec<_> = r
        .schemas("pay", false, false)
        .into_iter()
        .map(|v| (v.subject, v.version, v.id))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("payments-value".to_owned(), 1, 1),
            ("payments-value".to_owned(), 2, 2)
        ]
    );
    let latest: Vec<_> = r
        .schemas("", false, true)
        .into_iter()
        .map(|v| (v.subject, v.id))
        .collect();
    assert_eq!(
        latest,
        vec![
            ("names".to_owned(), 3),
            ("payments-value".to_owned(), 2),
            ("refunds-value".to_owned(), 1)
        ]
    );
    assert_eq!(
        SchemaType::ALL.map(SchemaType::as_str),
        ["AVRO", "JSON", "PROTOBUF"]
    );
    assert_eq!(code(r.versions("nope", false)), 40401);
}

#[test]
fn lookup_and_get_by_version() {
    let r = registry();
    let a = avro(ID);
    let b = avro(&format!("{ID},{AMOUNT}"));
    r.register("s", &a, ImportIds::default()).unwrap();
    r.register("s", &b, ImportIds::default()).unwrap();
    let found = r.lookup("s", &a, false).unwrap();
    assert_eq!((found.id, found.version, found.schema), (1, 1, a.clone()));
    assert_eq!(code(r.lookup("t", &a, false)), 40401);
    assert_eq!(
        code(r.lookup("s", &avro(r#"{"name":"x","type":"long"}"#), false)),
        40403
    );

    for spec in ["latest", "-1", "2"] {
        let v = r
            .subject_version("s", spec.parse().unwrap(), false)
            .unwrap();
        assert_eq!((v.version, v.id), (2, 2), "{spec}");
    }
    assert_eq!(
        r.subject_version("s", VersionSpec::Number(1), false)
            .unwrap()
            .schema,
        a
    );
    assert_eq!(
        code(r.subject_version("s", VersionSpec::Number(3), false)),
        40402
    );
    assert_eq!(
        code(r.subject_version("t", VersionSpec::Latest, false)),
        40401
    );
    for bad in ["0", "-2", "x", ""] {
        assert_eq!(code(bad.parse::<VersionSpec>()), 42202, "{bad}");
    }
}

#[test]
fn versions_are_soft_deleted_before_permanently() {
    let r = registry();
    r.register("s", &avro(ID), ImportIds::default()).unwrap();
    r.register("s", &avro(&format!("{ID},{AMOUNT}")), ImportIds::default())
        .unwrap();
    assert_eq!(
        code(r.delete_version("s", VersionSpec::Number(1), true)),
        40407
    );
    assert_eq!(
        r.delete_version("s", VersionSpec::Number(1), false)
            .unwrap(),
        1
    );
    assert_eq!(
        code(r.delete_version("s", VersionSpec::Number(1), false)),
        40406
    );
    assert_eq!(r.versions("s", false).unwrap(), vec![2]);
    assert_eq!(r.versions("s", true).unwrap(), vec![1, 2]);
    assert_eq!(r.schemas("s", false, false).len(), 1);
    assert_eq!(r.schemas("s", true, false).len(), 2);
    assert_eq!(
        code(r.subject_version("s", VersionSpec::Number(1), false)),
        40402
    );
    assert!(
        r.subject_version("s", VersionSpec::Number(1), true)
            .unwrap()
            .deleted
    );
    // A soft-deleted version's schema is still found by id.
    assert!(r.schema_by_id(1).is_ok());
    assert_eq!(
        r.delete_version("s", VersionSpec::Number(1), true).unwrap(),
        1
    );
    assert_eq!(r.versions("s", true).unwrap(), vec![2]);
    // No version uses id 1 any more.
    assert_eq!(code(r.schema_by_id(1)), 40403);
    assert_eq!(
        code(r.delete_version("s", VersionSpec::Number(7), false)),
        40402
    );
    // `latest` soft-deletes the latest live version.
    r.register(
        "s",
        &avro(r#"{"name":"n","type":"long"}"#),
        ImportIds::default(),
    )
    .unwrap_err();
    r.set_compatibility(Some("s"), CompatibilityLevel::None)
        .unwrap();
    r.register(
        "s",
        &avro(r#"{"name":"n","type":"long"}"#),
        ImportIds::default(),
    )
    .unwrap();
    assert_eq!(
        r.delete_version("s", VersionSpec::Latest, false).unwrap(),
        3
    );
    assert_eq!(
        r.delete_version("s", VersionSpec::Latest, false).unwrap(),
        2
    );
    assert_eq!(
        code(r.delete_version("s", VersionSpec::Latest, false)),
        40401
    );
}

#[test]
fn subjects_are_soft_deleted_before_permanently_and_ids_never_come_back() {
    let r = registry();
    r.register("s", &avro(ID), ImportIds::default()).unwrap();
    r.register("s", &avro(&format!("{ID},{AMOUNT}")), ImportIds::default())
        .unwrap();
    assert_eq!(code(r.delete_subject("s", true)), 40405);
    assert_eq!(r.delete_subject("s", false).unwrap(), vec![1, 2]);
    assert_eq!(code(r.delete_subject("s", false)), 40404);
    assert!(r.subjects("", false).is_empty());
    assert_eq!(r.subjects("", true), vec!["s"]);
    assert_eq!(
        code(r.subject_version("s", VersionSpec::Latest, false)),
        40401
    );
    assert_eq!(r.delete_subject("s", true).unwrap(), vec![1, 2]);
    assert!(r.subjects("", true).is_empty());
    assert_eq!(code(r.delete_subject("s", false)), 40401);
    // A new schema after everything is gone gets a new id.
    let fresh = r
        .register(
            "s",
            &avro(r#"{"name":"other","type":"long"}"#),
            ImportIds::default(),
        )
        .unwrap();
    assert_eq!((fresh.id, fresh.version), (3, 1));
    // The same schema as a deleted one gets its old id back, never another's.
    assert_eq!(
        r.register("t", &avro(ID), ImportIds::default()).unwrap().id,
        1
    );
}

#[test]
fn incompatible_schemas_are_refused_with_the_breaking_change() {
    let r = registry();
    r.register("s", &avro(ID), ImportIds::default()).unwrap();
    let breaking = avro(&format!(r#"{ID},{{"name":"amount","type":"int"}}"#));
    let err = r
        .register("s", &breaking, ImportIds::default())
        .unwrap_err();
    assert_eq!(err.error_code(), 409);
    assert_eq!(err.http_status(), 409);
    assert!(err.to_string().contains("'amount'"), "{err}");
    let report = r.test_compatibility("s", &breaking, None).unwrap();
    assert!(!report.is_compatible);
    assert!(
        report.messages[0].contains("BACKWARD") && report.messages[0].contains("version 1"),
        "{report:?}"
    );
    assert!(
        r.test_compatibility(
            "s",
            &avro(&format!("{ID},{AMOUNT}")),
            Some(VersionSpec::Latest)
        )
        .unwrap()
        .is_compatible
    );
    assert_eq!(
        code(r.test_compatibility("s", &breaking, Some(VersionSpec::Number(5)))),
        40402
    );
    // A subject with no versions takes anything.
    assert!(
        r.test_compatibility("empty", &breaking, None)
            .unwrap()
            .is_compatible
    );
    assert_eq!(
        code(r.test_compatibility("empty", &breaking, Some(VersionSpec::Latest))),
        40401
    );
}

#[test]
fn compatibility_levels_per_subject_and_global() {
    let r = registry();
    assert_eq!(r.compatibility(None), None);
    assert_eq!(r.effective_compatibility("s"), CompatibilityLevel::Backward);
    r.register("s", &avro(ID), ImportIds::default()).unwrap();
    let breaking = avro(r#"{"name":"id","type":"long"}"#);
    r.set_compatibility(None, CompatibilityLevel::None).unwrap();
    r.set_compatibility(Some("s"), CompatibilityLevel::Forward)
        .unwrap();
    assert_eq!(
        r.compatibility(Some("s")),
        Some(CompatibilityLevel::Forward)
    );
    assert_eq!(
        r.subject_compatibility("s").unwrap(),
        CompatibilityLevel::Forward
    );
    assert_eq!(code(r.register("s", &breaking, ImportIds::default())), 409);
    // Without its own level the subject takes the global one.
    assert_eq!(
        r.delete_compatibility(Some("s")).unwrap(),
        CompatibilityLevel::Forward
    );
    assert_eq!(r.compatibility(Some("s")), None);
    assert_eq!(code(r.subject_compatibility("s")), 40408);
    assert_eq!(code(r.subject_mode("s")), 40409);
    assert_eq!(
        r.register("s", &breaking, ImportIds::default())
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        r.delete_compatibility(None).unwrap(),
        CompatibilityLevel::None
    );
    assert_eq!(r.effective_compatibility("s"), CompatibilityLevel::Backward);
    assert_eq!(code("SIDEWAYS".parse::<CompatibilityLevel>()), 42203);
    assert_eq!(
        "full_transitive".parse::<CompatibilityLevel>().unwrap(),
        CompatibilityLevel::FullTransitive
    );
    // A level on a subject with no schema yet applies to its first ones.
    r.set_compatibility(Some("new"), CompatibilityLevel::None)
        .unwrap();
    r.register("new", &avro(ID), ImportIds::default()).unwrap();
    r.register("new", &breaking, ImportIds::default()).unwrap();
}

#[test]
fn modes_guard_writes_and_import_takes_ids() {
    let r = registry();
    r.register("s", &avro(ID), ImportIds::default()).unwrap();
    let explicit = ImportIds {
        id: Some(100),
        version: Some(5),
    };
    assert_eq!(
        code(r.register("s", &avro(&format!("{ID},{AMOUNT}")), explicit)),
        42205
    );
    r.set_mode(Some("s"), Mode::ReadOnly, false).unwrap();
    assert_eq!(
        code(r.register("s", &avro(&format!("{ID},{AMOUNT}")), ImportIds::default())),
        42205
    );
    assert_eq!(code(r.delete_subject("s", false)), 42205);
    assert_eq!(
        code(r.set_compatibility(Some("s"), CompatibilityLevel::None)),
        42205
    );
    // Reads still work.
    assert!(r.subject_version("s", VersionSpec::Latest, false).is_ok());
    assert_eq!(r.subject_mode("s").unwrap(), Mode::ReadOnly);
    assert_eq!(r.delete_mode(Some("s")).unwrap(), Mode::ReadOnly);

    // IMPORT needs an empty subject unless forced.
    assert_eq!(code(r.set_mode(Some("s"), Mode::Import, false)), 42205);
    r.set_mode(Some("imported"), Mode::Import, false).unwrap();
    assert_eq!(r.effective_mode_of("imported"), Mode::Import);
    // Imported ids and versions are kept, and not checked for compatibility.
    let got = r
        .register("imported", &avro(r#"{"name":"x","type":"long"}"#), explicit)
        .unwrap();
    assert_eq!((got.id, got.version), (100, 5));
    let other = ImportIds {
        id: Some(101),
        version: Some(6),
    };
    assert_eq!(
        r.register("imported", &avro(r#"{"name":"x","type":"string"}"#), other)
            .unwrap()
            .id,
        101
    );
    // An id holding another schema is refused; the same schema is not.
    let clash = ImportIds {
        id: Some(100),
        version: Some(9),
    };
    assert_eq!(code(r.register("imported", &avro(ID), clash)), 42207);
    let taken = ImportIds {
        id: Some(102),
        version: Some(5),
    };
    assert_eq!(
        code(r.register("imported", &avro(r#"{"name":"y","type":"int"}"#), taken)),
        42202
    );
    // Ids assigned later continue after the imported ones.
    assert_eq!(
        r.register("s", &avro(&format!("{ID},{AMOUNT}")), ImportIds::default())
            .unwrap()
            .id,
        102
    );
    assert_eq!(code("WRITEONLY".parse::<Mode>()), 42204);
    // The global mode applies where a subject has none.
    r.set_mode(None, Mode::ReadOnly, false).unwrap();
    assert_eq!(
        code(r.register("t", &avro(ID), ImportIds::default())),
        42205
    );
}

#[test]
fn references_resolve_per_type_and_protect_what_they_name() {
    let r = registry();
    let money = SchemaDef::new(
        SchemaType::Avro,
        r#"{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"}]}"#,
    );
    r.register("money", &money, ImportIds::default()).unwrap();
    let order = SchemaDef::new(
        SchemaType::Avro,
        r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"total","type":"shop.Money"}]}"#,
    )
    .with_references(vec![Reference { name: "shop.Money".into(), subject: "money".into(), version: 1 }]);
    let got = r
        .register("orders-value", &order, ImportIds::default())
        .unwrap();
    assert_eq!(
        r.referenced_by("money", VersionSpec::Number(1)).unwrap(),
        vec![got.id]
    );
    assert_eq!(
        code(r.delete_version("money", VersionSpec::Number(1), false)),
        42206
    );
    assert_eq!(code(r.delete_subject("money", false)), 42206);
    // Without the reference the named type is unknown.
    let bare = SchemaDef {
        references: vec![],
        ..order.clone()
    };
    assert_eq!(
        code(r.register("orders2", &bare, ImportIds::default())),
        42201
    );
    let dangling = order.clone().with_references(vec![Reference {
        name: "shop.Money".into(),
        subject: "money".into(),
        version: 7,
    }]);
    assert_eq!(
        code(r.register("orders3", &dangling, ImportIds::default())),
        42201
    );

    let common = SchemaDef::new(
        SchemaType::Protobuf,
        "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n",
    );
    r.register("common.proto", &common, ImportIds::default())
        .unwrap();
    let proto = SchemaDef::new(
        SchemaType::Protobuf,
        "syntax = \"proto3\";\npackage shop;\nimport \"common.proto\";\nimport \"google/protobuf/timestamp.proto\";\nmessage Order { Money total = 1; google.protobuf.Timestamp at = 2; }\n",
    );
    assert_eq!(
        code(r.register("orders-proto", &proto, ImportIds::default())),
        42201
    );
    let proto = proto.with_references(vec![Reference {
        name: "common.proto".into(),
        subject: "common.proto".into(),
        version: 1,
    }]);
    r.register("orders-proto", &proto, ImportIds::default())
        .unwrap();

    let address = SchemaDef::new(
        SchemaType::Json,
        r#"{"type":"object","properties":{"city":{"type":"string"}}}"#,
    );
    r.register("address", &address, ImportIds::default())
        .unwrap();
    let customer = SchemaDef::new(
        SchemaType::Json,
        r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#,
    );
    assert_eq!(
        code(r.register("customer", &customer, ImportIds::default())),
        42201
    );
    let customer = customer.with_references(vec![Reference {
        name: "address.json".into(),
        subject: "address".into(),
        version: 1,
    }]);
    r.register("customer", &customer, ImportIds::default())
        .unwrap();
}

#[test]
fn invalid_schemas_and_limits_are_refused() {
    let limits = Limits {
        schema_bytes_max: 200,
        versions_per_subject_max: 2,
        subjects_max: 3,
        references_depth_max: 1,
        ..Limits::default()
    };
    let r = Registry::open(Box::new(MemoryLog::new()), limits).unwrap();
    for (ty, text) in [
        (SchemaType::Avro, r#"{"type":"record","name":"x"}"#),
        (SchemaType::Avro, "not json"),
        (SchemaType::Json, r#"{"type":"strnig"}"#),
        (SchemaType::Json, "[1,2]"),
        (SchemaType::Protobuf, "message M { int32 a = ; }"),
    ] {
        assert_eq!(
            code(r.register("s", &SchemaDef::new(ty, text), ImportIds::default())),
            42201,
            "{text}"
        );
    }
    let big = SchemaDef::new(
        SchemaType::Json,
        format!(r#"{{"description":"{}"}}"#, "x".repeat(300)),
    );
    assert_eq!(code(r.register("s", &big, ImportIds::default())), 42209);
    for bad in ["", "a\u{7}b", &"s".repeat(300)] {
        assert_eq!(
            code(r.register(bad, &avro(ID), ImportIds::default())),
            42208
        );
    }
    r.set_compatibility(Some("s"), CompatibilityLevel::None)
        .unwrap();
    r.register("s", &avro(ID), ImportIds::default()).unwrap();
    r.register("s", &avro(AMOUNT), ImportIds::default())
        .unwrap();
    assert_eq!(
        code(r.register(
            "s",
            &avro(r#"{"name":"z","type":"long"}"#),
            ImportIds::default()
        )),
        42205
    );
    // References nest one level at most here.
    let json = |text: &str, refs: Vec<Reference>| {
        SchemaDef::new(SchemaType::Json, text).with_references(refs)
    };
    r.register(
        "a",
        &json(r#"{"type":"string"}"#, vec![]),
        ImportIds::default(),
    )
    .unwrap();
    let b = json(
        r#"{"$ref":"a.json"}"#,
        vec![Reference {
            name: "a.json".into(),
            subject: "a".into(),
            version: 1,
        }],
    );
    r.register("b", &b, ImportIds::default()).unwrap();
    let c = json(
        r#"{"$ref":"b.json"}"#,
        vec![Reference {
            name: "b.json".into(),
            subject: "b".into(),
            version: 1,
        }],
    );
    assert_eq!(code(r.register("s", &c, ImportIds::default())), 42201);
    // Three subjects is the limit.
    assert_eq!(
        code(r.register("d", &avro(ID), ImportIds::default())),
        42205
    );
}

#[test]
fn the_registry_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Registry>();
    let r = std::sync::Arc::new(registry());
    r.set_compatibility(None, CompatibilityLevel::None).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|n| {
                        r.register(
                            "s",
                            &avro(&format!(
                                r#"{{"name":"f{t}_{n}","type":"int","default":0}}"#
                            )),
                            ImportIds::default(),
                        )
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_by_key(|g| g.version);
    // Forty registrations, forty versions and forty ids, none twice.
    assert_eq!(
        all.iter().map(|g| g.version).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    let mut ids: Vec<_> = all.iter().map(|g| g.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>());
}

#[test]
fn compatibility_follows_references() {
    let r = registry();
    let json = |text: &str| SchemaDef::new(SchemaType::Json, text);
    let address = |extra: &str, required: &str| {
        json(&format!(
            r#"{{"type":"object","properties":{{"city":{{"type":"string"}}{extra}}},"required":[{required}],"additionalProperties":false}}"#
        ))
    };
    r.register("address", &address("", r#""city""#), ImportIds::default())
        .unwrap();
    r.set_compatibility(Some("address"), CompatibilityLevel::None)
        .unwrap();
    r.register(
        "address",
        &address(r#","zip":{"type":"string"}"#, r#""city","zip""#),
        ImportIds::default(),
    )
    .unwrap();
    let customer = |version| {
        json(r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#).with_references(
            vec![Reference {
                name: "address.json".into(),
                subject: "address".into(),
                version,
            }],
        )
    };
    r.register("customer", &customer(1), ImportIds::default())
        .unwrap();
    // The same text, but the referenced schema now requires a zip code.
    let err = r
        .register("customer", &customer(2), ImportIds::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("required property 'zip' added at #/properties/home/required"),
        "{err}"
    );

    // Avro: a referenced record gains a field without a default.
    let money = |fields: &str| {
        SchemaDef::new(
            SchemaType::Avro,
            format!(
                r#"{{"type":"record","name":"Money","fields":[{{"name":"cents","type":"long"}}{fields}]}}"#
            ),
        )
    };
    r.set_compatibility(Some("money"), CompatibilityLevel::None)
        .unwrap();
    r.register("money", &money(""), ImportIds::default())
        .unwrap();
    r.register(
        "money",
        &money(r#",{"name":"currency","type":"string"}"#),
        ImportIds::default(),
    )
    .unwrap();
    let order = |version| {
        SchemaDef::new(
            SchemaType::Avro,
            r#"{"type":"record","name":"Order","fields":[{"name":"total","type":"Money"}]}"#,
        )
        .with_references(vec![Reference {
            name: "Money".into(),
            subject: "money".into(),
            version,
        }])
    };
    r.register("order", &order(1), ImportIds::default())
        .unwrap();
    let err = r
        .register("order", &order(2), ImportIds::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("'currency' at /total/currency"),
        "{err}"
    );
}

#[test]
fn numbers_at_the_top_of_the_range_are_never_handed_out_twice() {
    let r = registry();
    r.set_mode(None, Mode::Import, false).unwrap();
    let top = ImportIds {
        id: Some(i32::MAX),
        version: Some(i32::MAX),
    };
    r.register("s", &avro(ID), top).unwrap();
    r.set_mode(None, Mode::ReadWrite, false).unwrap();
    r.set_compatibility(None, CompatibilityLevel::None).unwrap();
    // No version after i32::MAX in "s", no id after i32::MAX anywhere.
    assert_eq!(
        code(r.register("s", &avro(AMOUNT), ImportIds::default())),
        42205
    );
    assert_eq!(
        code(r.register("t", &avro(AMOUNT), ImportIds::default())),
        42205
    );
    // The schema already holding an id still registers elsewhere.
    assert_eq!(
        r.register("t", &avro(ID), ImportIds::default()).unwrap().id,
        i32::MAX
    );
    assert_eq!(
        r.subject_version("s", VersionSpec::Latest, false)
            .unwrap()
            .schema,
        avro(ID)
    );
}

#[test]
fn protobuf_compatibility_follows_referenced_files() {
    let r = registry();
    let proto = |text: &str| SchemaDef::new(SchemaType::Protobuf, text);
    r.set_compatibility(Some("money.proto"), CompatibilityLevel::None)
        .unwrap();
    r.register(
        "money.proto",
        &proto("syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n"),
        ImportIds::default(),
    )
    .unwrap();
    r.register(
        "money.proto",
        &proto("syntax = \"proto3\";\npackage shop;\nmessage Money { string cents = 1; }\n"),
        ImportIds::default(),
    )
    .unwrap();
    let order = |version| {
        proto("syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\nmessage Order { Money total = 1; }\n")
            .with_references(vec![Reference { name: "money.proto".into(), subject: "money.proto".into(), version }])
    };
    r.register("order", &order(1), ImportIds::default())
        .unwrap();
    let err = r
        .register("order", &order(2), ImportIds::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("field 'cents' type changed from int64 to string at message 'Money' field 1"),
        "{err}"
    );
    // Dropping the reference (and its messages) is fine.
    let alone =
        proto("syntax = \"proto3\";\npackage shop;\nmessage Order { int64 total_cents = 2; }\n");
    r.register("order", &alone, ImportIds::default()).unwrap();
}
