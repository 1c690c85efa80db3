//! `weir schema` against `weir serve`'s registry: registering Avro, JSON
//! and Protobuf files (the last with a reference), listing subjects and
//! versions, showing by version and by id, testing compatibility (the
//! breaking change printed, exit code 4), compatibility levels per
//! subject and global, soft and permanent deletes, and the registry's own
//! error codes in the messages with the API subcommands' exit codes; and
//! the bearer token the other subcommands send.

mod common;

use std::path::Path;
use std::process::{Command, Output};

struct Cli<'a> {
    http: &'a str,
    dir: &'a Path,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("schema")
            .args(args)
            .args(["--server", self.http])
            .current_dir(self.dir)
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "weir schema {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code `code`; returns standard output and
    /// standard error.
    fn fails(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "weir schema {args:?}: {out:?}"
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

/// Kills the server when dropped, so a failed assertion does not leave
/// it running (holding the port and whatever it inherited).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `registered SUBJECT version V id I` as (V, I).
fn registered(line: &str, subject: &str) -> (u32, u32) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words[..3],
        ["registered", subject, "version"],
        "an unexpected answer: {line}"
    );
    assert_eq!(words[4], "id", "{line}");
    (words[3].parse().unwrap(), words[5].parse().unwrap())
}

const V1: &str = r#"{"type":"record","name":"Payment","namespace":"weir.test",
  "fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Payment","namespace":"weir.test",
  "fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"},
  {"name":"currency","type":"string","default":"EUR"}]}"#;
// Breaking under BACKWARD: a new field without a default.
const V3: &str = r#"{"type":"record","name":"Payment","namespace":"weir.test",
  "fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"},
  {"name":"currency","type":"string","default":"EUR"},{"name":"merchant","type":"string"}]}"#;

#[test]
fn weir_schema_registers_lists_shows_checks_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    for (name, text) in [("v1.avsc", V1), ("v2.avsc", V2), ("v3.avsc", V3)] {
        std::fs::write(files.join(name), text).unwrap();
    }
    std::fs::write(
        files.join("order.json"),
        r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#,
    )
    .unwrap();
    std::fs::write(
        files.join("money.proto"),
        "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; string currency = 2; }\n",
    )
    .unwrap();
    std::fs::write(
        files.join("line.proto"),
        "syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\n\
         message Line { string sku = 1; Money price = 2; }\n",
    )
    .unwrap();
    let (child, http) = common::start_serve_http(&files.join("data"), &[]);
    let mut child = Killed(child);
    let cli = Cli {
        http: &http,
        dir: files,
    };

    // Register: version and id; the same schema again changes nothing.
    let (v1, id1) = registered(
        &cli.ok(&["register", "payments-value", "v1.avsc"]),
        "payments-value",
    );
    assert_eq!(v1, 1);
    let again = registered(
        &cli.ok(&["register", "payments-value", "v1.avsc"]),
        "payments-value",
    );
    assert_eq!(again, (1, id1));
    let (v2, id2) = registered(
        &cli.ok(&["register", "payments-value", "v2.avsc"]),
        "payments-value",
    );
    assert_eq!(v2, 2);
    assert_ne!(id2, id1);
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["register", "payments-value", "v2.avsc", "--json"]))
            .unwrap();
    assert_eq!(json["id"].as_u64(), Some(u64::from(id2)), "{json}");

    // JSON Schema by --type; Protobuf by the file's extension, with a
    // reference.
    let (_, order_id) = registered(
        &cli.ok(&["register", "orders-value", "order.json", "--type", "json"]),
        "orders-value",
    );
    registered(&cli.ok(&["register", "money", "money.proto"]), "money");
    let (_, line_id) = registered(
        &cli.ok(&[
            "register",
            "lines-value",
            "line.proto",
            "--reference",
            "money.proto=money:1",
        ]),
        "lines-value",
    );
    let (_, err) = cli.fails(&["register", "bad-value", "line.proto"], 1);
    assert!(
        err.contains("42201"),
        "an unresolved import is the registry's 42201: {err}"
    );

    // Lists.
    assert_eq!(
        cli.ok(&["list"]),
        "lines-value\nmoney\norders-value\npayments-value\n"
    );
    assert_eq!(cli.ok(&["list", "--prefix", "pay"]), "payments-value\n");
    assert_eq!(cli.ok(&["list", "payments-value"]), "1\n2\n");

    // Show: the latest, a version, by id.
    let latest = cli.ok(&["show", "payments-value"]);
    assert!(latest.contains("payments-value version 2"), "{latest}");
    assert!(latest.contains(&format!("id:         {id2}")), "{latest}");
    assert!(latest.contains("\"currency\""), "the schema text: {latest}");
    let first = cli.ok(&["show", "payments-value", "1"]);
    assert!(
        first.contains(&format!("id:         {id1}")) && !first.contains("currency"),
        "{first}"
    );
    let by_id = cli.ok(&["show", "--id", &line_id.to_string()]);
    assert!(by_id.contains("type:       PROTOBUF"), "{by_id}");
    assert!(
        by_id.contains("reference:  money.proto = money:1"),
        "{by_id}"
    );
    assert!(
        by_id.contains("used by:    lines-value version 1"),
        "{by_id}"
    );
    assert!(by_id.contains("message Line"), "{by_id}");
    let order = cli.ok(&["show", "--id", &order_id.to_string()]);
    assert!(order.contains("type:       JSON"), "{order}");

    // Check: compatible, then incompatible with the breaking change named
    // and the conflict exit code; against one version.
    assert_eq!(
        cli.ok(&["check", "payments-value", "v2.avsc"]),
        "compatible with payments-value\n"
    );
    let (out, err) = cli.fails(&["check", "payments-value", "v3.avsc"], 4);
    assert!(
        out.starts_with("incompatible with payments-value:"),
        "{out}"
    );
    assert!(
        out.contains("merchant"),
        "the breaking field is named: {out}"
    );
    assert!(err.contains("incompatible"), "{err}");
    let (out, _) = cli.fails(&["check", "payments-value", "v3.avsc", "--version", "1"], 4);
    assert!(out.contains("merchant"), "{out}");
    // A registration of it is refused with 409.
    let (_, err) = cli.fails(&["register", "payments-value", "v3.avsc"], 4);
    assert!(err.contains("(409)") && err.contains("merchant"), "{err}");
    assert_eq!(cli.ok(&["list", "payments-value"]), "1\n2\n");

    // Compatibility levels: the global one shows through until the
    // subject has its own.
    assert_eq!(cli.ok(&["compat", "payments-value"]), "BACKWARD (global)\n");
    assert_eq!(cli.ok(&["compat", "--global"]), "BACKWARD\n");
    assert_eq!(
        cli.ok(&["compat", "payments-value", "none"]),
        "compatibility of payments-value set to NONE\n"
    );
    assert_eq!(cli.ok(&["compat", "payments-value"]), "NONE\n");
    cli.ok(&["check", "payments-value", "v3.avsc"]);
    assert_eq!(
        cli.ok(&["compat", "payments-value", "--unset"]),
        "removed the compatibility of payments-value (was NONE)\n"
    );
    cli.fails(&["check", "payments-value", "v3.avsc"], 4);
    let (_, err) = cli.fails(&["compat", "payments-value", "SIDEWAYS"], 1);
    assert!(err.contains("42203"), "{err}");
    assert_eq!(cli.ok(&["mode", "--global"]), "READWRITE\n");
    assert_eq!(
        cli.ok(&["mode", "money", "readonly"]),
        "mode of money set to READONLY\n"
    );
    let (_, err) = cli.fails(&["register", "money", "line.proto"], 1);
    assert!(err.contains("42205"), "a read-only subject refuses: {err}");

    // Deletes: soft, then permanent; permanent first is refused.
    let (_, err) = cli.fails(&["delete", "payments-value", "1", "--permanent"], 3);
    assert!(err.contains("40407"), "{err}");
    assert_eq!(
        cli.ok(&["delete", "payments-value", "1"]),
        "deleted (soft) payments-value version(s) 1\n"
    );
    assert_eq!(cli.ok(&["list", "payments-value"]), "2\n");
    assert_eq!(cli.ok(&["list", "payments-value", "--deleted"]), "1\n2\n");
    let soft = cli.ok(&["show", "payments-value", "1", "--deleted"]);
    assert!(soft.contains("version 1 (soft-deleted)"), "{soft}");
    cli.ok(&["delete", "payments-value", "1", "--permanent"]);
    assert_eq!(cli.ok(&["list", "payments-value", "--deleted"]), "2\n");
    let (_, err) = cli.fails(&["show", "payments-value", "1", "--deleted"], 3);
    assert!(err.contains("40402"), "{err}");
    assert_eq!(
        cli.ok(&["delete", "orders-value"]),
        "deleted (soft) orders-value version(s) 1\n"
    );
    assert_eq!(cli.ok(&["list"]), "lines-value\nmoney\npayments-value\n");
    assert!(cli.ok(&["list", "--deleted"]).contains("orders-value"));

    // Errors: the registry's code and message, the usual exit codes.
    let (_, err) = cli.fails(&["show", "nobody-value"], 3);
    assert!(
        err.contains("(40401)") && err.contains("nobody-value"),
        "{err}"
    );
    let (_, err) = cli.fails(&["register", "x", "missing.avsc"], 1);
    assert!(err.contains("missing.avsc"), "{err}");
    let (_, err) = cli.fails(&["register", "x", "v1.avsc", "--reference", "nonsense"], 2);
    assert!(err.contains("NAME=SUBJECT:VERSION"), "{err}");
    let (_, err) = cli.fails(&["compat", "--global", "a", "b"], 2);
    assert!(!err.is_empty());

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (_, err) = cli.fails(&["list"], 5);
    assert!(err.contains("cannot talk"), "{err}");
}

#[test]
fn weir_schema_sends_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "User:admin admin-token\n").unwrap();
    std::fs::write(dir.path().join("s.avsc"), "\"string\"").unwrap();
    let (child, http) = common::start_serve_http(
        &dir.path().join("data"),
        &[
            "--authorizer",
            "--super-users",
            "User:admin",
            "--http-tokens-file",
            tokens.to_str().unwrap(),
        ],
    );
    let _server = Killed(child);
    let cli = Cli {
        http: &http,
        dir: dir.path(),
    };
    let (_, err) = cli.fails(&["register", "s-value", "s.avsc"], 6);
    assert!(err.contains("40101"), "no token: {err}");
    let (_, err) = cli.fails(&["list", "--token", "wrong"], 6);
    assert!(err.contains("40101"), "a wrong token: {err}");
    let out = cli.ok(&["register", "s-value", "s.avsc", "--token", "admin-token"]);
    assert_eq!(registered(&out, "s-value").0, 1);
    assert_eq!(cli.ok(&["list", "--token", "admin-token"]), "s-value\n");
}
