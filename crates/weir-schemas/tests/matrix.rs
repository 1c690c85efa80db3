//! The compatibility matrix: per schema type and level, changes that must
//! pass and changes that must fail, each following from the levels'
//! definitions (BACKWARD: the new schema reads data written with the old;
//! FORWARD: the old reads the new; FULL: both; TRANSITIVE: against every
//! live version, else the latest only; NONE: no check). A failing case
//! must also name the breaking change.
//!
//! Each case registers its history under NONE (so history may hold any
//! change), sets the level, then registers the new schema.

use weir_schemas::{
    CompatibilityLevel as L, ImportIds, Limits, MemoryLog, Registry, SchemaDef, SchemaError,
    SchemaType,
};

/// What a case expects: a pass, or a refusal whose messages contain the text.
enum Expect {
    Pass,
    Fail(&'static str),
}
use Expect::{Fail, Pass};

fn run(ty: SchemaType, cases: &[(&str, L, Vec<&str>, &str, Expect)]) {
    let mut failures = Vec::new();
    for (name, level, history, new, expect) in cases {
        let r = Registry::open(Box::new(MemoryLog::new()), Limits::default()).unwrap();
        r.set_compatibility(Some("s"), L::None).unwrap();
        for old in history {
            r.register("s", &SchemaDef::new(ty, *old), ImportIds::default())
                .unwrap_or_else(|e| panic!("{name}: history {old}: {e}"));
        }
        r.set_compatibility(Some("s"), *level).unwrap();
        let got = r.register("s", &SchemaDef::new(ty, *new), ImportIds::default());
        match (expect, got) {
            (Pass, Ok(_)) => {}
            (Fail(text), Err(SchemaError::Incompatible { messages, .. })) => {
                if !messages.iter().any(|m| m.contains(text)) {
                    failures.push(format!(
                        "{ty} {level} {name}: no message names '{text}': {messages:?}"
                    ));
                }
            }
            (Pass, Err(e)) => {
                failures.push(format!("{ty} {level} {name}: should pass, refused: {e}"))
            }
            (Fail(_), Ok(_)) => {
                failures.push(format!("{ty} {level} {name}: should fail, registered"))
            }
            (Fail(_), Err(e)) => failures.push(format!(
                "{ty} {level} {name}: refused with another error: {e}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn rec(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Payment","fields":[{fields}]}}"#)
}

#[test]
fn avro() {
    let id = r#"{"name":"id","type":"string"}"#;
    let v1 = rec(id);
    let with_default = rec(&format!(
        r#"{id},{{"name":"amount","type":"int","default":0}}"#
    ));
    let without_default = rec(&format!(r#"{id},{{"name":"amount","type":"int"}}"#));
    let as_long = rec(&format!(r#"{id},{{"name":"amount","type":"long"}}"#));
    let as_string = rec(&format!(r#"{id},{{"name":"amount","type":"string"}}"#));
    let colors = |s: &str| format!(r#"{{"type":"enum","name":"Color","symbols":[{s}]}}"#);
    let (v1, wd, wod, long, string) = (
        &*v1,
        &*with_default,
        &*without_default,
        &*as_long,
        &*as_string,
    );
    let renamed = without_default.replace("Payment", "Invoice");
    let memo = |t: &str| {
        rec(&format!(
            r#"{id},{{"name":"memo","type":[{t}],"default":null}}"#
        ))
    };
    let (u2, u3) = (memo(r#""null","string""#), memo(r#""null","string","int""#));
    let (rg, rgb) = (
        colors(r#""RED","GREEN""#),
        colors(r#""RED","GREEN","BLUE""#),
    );
    let cases: Vec<(&str, L, Vec<&str>, &str, Expect)> = vec![
        (
            "adding a field with a default",
            L::Backward,
            vec![v1],
            wd,
            Pass,
        ),
        (
            "adding a field without a default",
            L::Backward,
            vec![v1],
            wod,
            Fail("'amount'"),
        ),
        ("removing a field", L::Backward, vec![wod], v1, Pass),
        ("int promoted to long", L::Backward, vec![wod], long, Pass),
        (
            "long narrowed to int",
            L::Backward,
            vec![long],
            wod,
            Fail("/amount"),
        ),
        (
            "int changed to string",
            L::Backward,
            vec![wod],
            string,
            Fail("type changed from int to string at /amount"),
        ),
        ("an enum symbol added", L::Backward, vec![&rg], &rgb, Pass),
        (
            "an enum symbol removed",
            L::Backward,
            vec![&rgb],
            &rg,
            Fail("enum symbol 'BLUE' removed"),
        ),
        ("a union branch added", L::Backward, vec![&u2], &u3, Pass),
        (
            "a union branch removed",
            L::Backward,
            vec![&u3],
            &u2,
            Fail("union branch 2 of the writer is not readable at /memo"),
        ),
        (
            "adding a field without a default",
            L::Forward,
            vec![v1],
            wod,
            Pass,
        ),
        (
            "removing a field without a default",
            L::Forward,
            vec![wod],
            v1,
            Fail("'amount'"),
        ),
        (
            "removing a field with a default",
            L::Forward,
            vec![wd],
            v1,
            Pass,
        ),
        (
            "int promoted to long",
            L::Forward,
            vec![wod],
            long,
            Fail("/amount"),
        ),
        ("an enum symbol removed", L::Forward, vec![&rgb], &rg, Pass),
        ("adding a field with a default", L::Full, vec![v1], wd, Pass),
        (
            "adding a field without a default",
            L::Full,
            vec![v1],
            wod,
            Fail("'amount'"),
        ),
        (
            "removing a field without a default",
            L::Full,
            vec![wod],
            v1,
            Fail("'amount'"),
        ),
        (
            "int promoted to long",
            L::Full,
            vec![wod],
            long,
            Fail("/amount"),
        ),
        (
            "the record renamed",
            L::Backward,
            vec![wod],
            &renamed,
            Fail("name must be the same"),
        ),
        ("any change", L::None, vec![wod], string, Pass),
        // Compatible with the latest, not with version 1.
        (
            "a default dropped later",
            L::Backward,
            vec![v1, wd],
            wod,
            Pass,
        ),
        (
            "a default dropped later",
            L::BackwardTransitive,
            vec![v1, wd],
            wod,
            Fail("version 1"),
        ),
        (
            "a field removed after its default went",
            L::Forward,
            vec![wod, wd],
            v1,
            Pass,
        ),
        (
            "a field removed after its default went",
            L::ForwardTransitive,
            vec![wod, wd],
            v1,
            Fail("version 1"),
        ),
        ("a default dropped later", L::Full, vec![v1, wd], wod, Pass),
        (
            "a default dropped later",
            L::FullTransitive,
            vec![v1, wd],
            wod,
            Fail("version 1"),
        ),
    ];
    run(SchemaType::Avro, &cases);
}

#[test]
fn json_schema() {
    let closed = |props: &str, required: &str| {
        format!(
            r#"{{"type":"object","properties":{{{props}}},"required":[{required}],"additionalProperties":false}}"#
        )
    };
    let open = |props: &str| format!(r#"{{"type":"object","properties":{{{props}}}}}"#);
    let id = r#""id":{"type":"string"}"#;
    let amount = r#""amount":{"type":"integer"}"#;
    let c1 = closed(id, r#""id""#);
    let c2 = closed(&format!("{id},{amount}"), r#""id""#);
    let c2_req = closed(&format!("{id},{amount}"), r#""id","amount""#);
    let o1 = open(id);
    let o2 = open(&format!("{id},{amount}"));
    let o2_any = open(&format!(r#"{id},"note":{{}}"#));
    let num = closed(
        r#""id":{"type":"string"},"amount":{"type":"number"}"#,
        r#""id""#,
    );
    let str_amount = closed(
        r#""id":{"type":"string"},"amount":{"type":"string"}"#,
        r#""id""#,
    );
    let e = |vals: &str| format!(r#"{{"type":"string","enum":[{vals}]}}"#);
    let (ab, abc) = (e(r#""a","b""#), e(r#""a","b","c""#));
    let len = |n: u32| format!(r#"{{"type":"string","maxLength":{n}}}"#);
    let (l10, l20) = (len(10), len(20));
    let described =
        |d: &str| format!(r#"{{"type":"object","properties":{{{amount}}},"description":"{d}"}}"#);
    let (d1, d2) = (described("one"), described("two"));
    let short = closed(
        r#""id":{"type":"string"},"amount":{"type":"string","maxLength":3}"#,
        r#""id""#,
    );
    let cab = e(r#""c","a","b""#);
    let one = |alts: &str| format!(r#"{{"oneOf":[{alts}]}}"#);
    let (one2, one3) = (
        one(r#"{"type":"string"},{"type":"integer"}"#),
        one(r#"{"type":"string"},{"type":"integer"},{"type":"boolean"}"#),
    );
    let defs = |t: &str| {
        format!(
            r##"{{"$defs":{{"amt":{{"type":"{t}"}}}},"type":"object","properties":{{"amount":{{"$ref":"#/$defs/amt"}}}}}}"##
        )
    };
    let (def_num, def_int) = (defs("number"), defs("integer"));
    let cases: Vec<(&str, L, Vec<&str>, &str, Expect)> = vec![
        (
            "an optional property added to a closed model",
            L::Backward,
            vec![&c1],
            &c2,
            Pass,
        ),
        (
            "a required property added",
            L::Backward,
            vec![&c1],
            &c2_req,
            Fail("required property 'amount' added"),
        ),
        (
            "a property added to an open model",
            L::Backward,
            vec![&o1],
            &o2,
            Fail("property 'amount' added to an open content model"),
        ),
        (
            "a property accepting anything added to an open model",
            L::Backward,
            vec![&o1],
            &o2_any,
            Pass,
        ),
        (
            "a property removed from an open model",
            L::Backward,
            vec![&o2],
            &o1,
            Pass,
        ),
        (
            "a property removed from a closed model",
            L::Backward,
            vec![&c2],
            &c1,
            Fail("property 'amount' removed from a closed content model"),
        ),
        (
            "integer widened to number",
            L::Backward,
            vec![&c2],
            &num,
            Pass,
        ),
        (
            "number narrowed to integer",
            L::Backward,
            vec![&num],
            &c2,
            Fail("type changed from number to integer"),
        ),
        (
            "integer changed to string",
            L::Backward,
            vec![&c2],
            &str_amount,
            Fail("#/properties/amount"),
        ),
        ("an enum value added", L::Backward, vec![&ab], &abc, Pass),
        (
            "an enum value removed",
            L::Backward,
            vec![&abc],
            &ab,
            Fail("enum value \"c\" removed"),
        ),
        (
            "maxLength decreased",
            L::Backward,
            vec![&l20],
            &l10,
            Fail("maxLength tightened"),
        ),
        ("maxLength increased", L::Backward, vec![&l10], &l20, Pass),
        (
            "an optional property added to a closed model",
            L::Forward,
            vec![&c1],
            &c2,
            Fail("removed from a closed content model"),
        ),
        (
            "a property removed from a closed model",
            L::Forward,
            vec![&c2],
            &c1,
            Pass,
        ),
        (
            "integer widened to number",
            L::Forward,
            vec![&c2],
            &num,
            Fail("type changed from number to integer"),
        ),
        ("an enum value removed", L::Forward, vec![&abc], &ab, Pass),
        (
            "an optional property added to a closed model",
            L::Full,
            vec![&c1],
            &c2,
            Fail("closed content model"),
        ),
        (
            "a property accepting anything added to an open model",
            L::Full,
            vec![&o1],
            &o2_any,
            Pass,
        ),
        ("the description changed", L::Full, vec![&d1], &d2, Pass),
        (
            "a oneOf alternative added",
            L::Backward,
            vec![&one2],
            &one3,
            Pass,
        ),
        (
            "a oneOf alternative removed",
            L::Backward,
            vec![&one3],
            &one2,
            Fail("alternative #/oneOf/2 is not readable"),
        ),
        (
            "a type narrowed behind a local $ref",
            L::Backward,
            vec![&def_num],
            &def_int,
            Fail("type changed from number to integer at #/properties/amount"),
        ),
        (
            "a type widened behind a local $ref",
            L::Backward,
            vec![&def_int],
            &def_num,
            Pass,
        ),
        ("any change", L::None, vec![&c2], &str_amount, Pass),
        // Compatible with the latest version, not with version 1.
        (
            "after an unchecked type change",
            L::Backward,
            vec![&str_amount, &c2],
            &d1,
            Pass,
        ),
        (
            "after an unchecked type change",
            L::BackwardTransitive,
            vec![&str_amount, &c2],
            &d1,
            Fail("version 1"),
        ),
        (
            "after an unchecked narrowing",
            L::Forward,
            vec![&c2, &str_amount],
            &short,
            Pass,
        ),
        (
            "after an unchecked narrowing",
            L::ForwardTransitive,
            vec![&c2, &str_amount],
            &short,
            Fail("version 1"),
        ),
        (
            "after an unchecked change",
            L::Full,
            vec![&l10, &abc],
            &cab,
            Pass,
        ),
        (
            "after an unchecked change",
            L::FullTransitive,
            vec![&l10, &abc],
            &cab,
            Fail("version 1"),
        ),
    ];
    run(SchemaType::Json, &cases);
}

#[test]
fn protobuf() {
    let p = |body: &str| format!("syntax = \"proto3\";\npackage shop;\n{body}\n");
    let v1 = p("message Order { string id = 1; int32 amount = 2; }");
    let renamed = p("message Order { string id = 1; int32 total = 2; }");
    let added = p("message Order { string id = 1; int32 amount = 2; string note = 3; }");
    let removed = p("message Order { string id = 1; }");
    let as_string = p("message Order { string id = 1; string amount = 2; }");
    let as_int64 = p("message Order { string id = 1; int64 amount = 2; }");
    let repeated = p("message Order { string id = 1; repeated int32 amount = 2; }");
    let two_msgs =
        p("message Order { string id = 1; int32 amount = 2; }\nmessage Refund { string id = 1; }");
    let moved_pkg = "syntax = \"proto3\";\npackage store;\nmessage Order { string id = 1; int32 amount = 2; }\n".to_owned();
    let oneof_two = p("message Order { oneof key { string id = 1; int32 amount = 2; } }");
    let oneof_one = p("message Order { oneof key { string id = 1; } int32 amount = 2; }");
    let p2 = |body: &str| format!("syntax = \"proto2\";\npackage shop;\n{body}\n");
    let opt = p2("message Order { optional string id = 1; }");
    let req = p2("message Order { optional string id = 1; required int32 amount = 2; }");
    let cases: Vec<(&str, L, Vec<&str>, &str, Expect)> = vec![
        ("a field added", L::Backward, vec![&v1], &added, Pass),
        ("a field removed", L::Backward, vec![&v1], &removed, Pass),
        ("a field renamed", L::Backward, vec![&v1], &renamed, Pass),
        (
            "a field number reused with another type",
            L::Backward,
            vec![&v1],
            &as_string,
            Fail("field 'amount' type changed from int32 to string"),
        ),
        (
            "int32 to int64 (same wire type)",
            L::Backward,
            vec![&v1],
            &as_int64,
            Pass,
        ),
        (
            "a field made repeated",
            L::Backward,
            vec![&v1],
            &repeated,
            Fail("repeated"),
        ),
        (
            "a message removed",
            L::Backward,
            vec![&two_msgs],
            &v1,
            Fail("message 'Refund' removed"),
        ),
        (
            "the package changed",
            L::Backward,
            vec![&v1],
            &moved_pkg,
            Fail("package changed"),
        ),
        (
            "two fields moved into a new oneof",
            L::Backward,
            vec![&v1],
            &oneof_two,
            Fail("moved into oneof 'key'"),
        ),
        (
            "one field moved into a new oneof",
            L::Backward,
            vec![&v1],
            &oneof_one,
            Pass,
        ),
        (
            "a required field added",
            L::Backward,
            vec![&opt],
            &req,
            Fail("required field 'amount' added"),
        ),
        ("a field added", L::Forward, vec![&v1], &added, Pass),
        ("a field removed", L::Forward, vec![&v1], &removed, Pass),
        ("a message removed", L::Forward, vec![&two_msgs], &v1, Pass),
        (
            "a field number reused with another type",
            L::Forward,
            vec![&v1],
            &as_string,
            Fail("type changed"),
        ),
        // Changes are named from the writer's schema to the reader's, so from
        // the new schema to the old one under FORWARD.
        (
            "a required field removed",
            L::Forward,
            vec![&req],
            &opt,
            Fail("required field 'amount' added"),
        ),
        ("a field added", L::Full, vec![&v1], &added, Pass),
        (
            "a field number reused with another type",
            L::Full,
            vec![&v1],
            &as_string,
            Fail("type changed"),
        ),
        ("any change", L::None, vec![&v1], &as_string, Pass),
        // Compatible with the latest version, not with version 1.
        (
            "after an unchecked type change",
            L::Backward,
            vec![&as_string, &v1],
            &added,
            Pass,
        ),
        (
            "after an unchecked type change",
            L::BackwardTransitive,
            vec![&as_string, &v1],
            &added,
            Fail("version 1"),
        ),
        (
            "after an unchecked type change",
            L::Forward,
            vec![&as_string, &v1],
            &added,
            Pass,
        ),
        (
            "after an unchecked type change",
            L::ForwardTransitive,
            vec![&as_string, &v1],
            &added,
            Fail("version 1"),
        ),
        (
            "after an unchecked type change",
            L::Full,
            vec![&as_string, &v1],
            &added,
            Pass,
        ),
        (
            "after an unchecked type change",
            L::FullTransitive,
            vec![&as_string, &v1],
            &added,
            Fail("version 1"),
        ),
    ];
    run(SchemaType::Protobuf, &cases);
}
