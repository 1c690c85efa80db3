//! `weir user` end to end: users added offline before the server runs
//! (the bootstrap of a SASL listener), listed and removed; bad input
//! refused; the directory's lock keeps the command off a running server;
//! and `weir serve --sasl-mechanisms` admits the added user (kcat with
//! SCRAM) and refuses a wrong password.

mod common;

use std::process::{Command, Output};

fn weir(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    all.extend(["--data-dir", dir.to_str().unwrap()]);
    common::run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&all)
            .env_remove("WEIR_DATA_DIR"),
        stdin,
    )
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, why: &str) {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "{err}");
}

#[test]
fn users_are_managed_offline_and_admitted_by_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The data directory need not exist yet.
    let out = ok(&weir(
        &data,
        &["add", "alice", "--password-stdin"],
        "s3cret\n",
    ));
    assert!(out.contains("SCRAM-SHA-256, SCRAM-SHA-512"), "{out}");
    ok(&weir(
        &data,
        &[
            "add",
            "bob",
            "--password",
            "pw",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "8192",
        ],
        "",
    ));
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&weir(&data, &["list", "--json"], ""))).unwrap();
    assert_eq!(listed[0]["name"], "alice");
    assert_eq!(listed[0]["mechanisms"].as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["name"], "bob");
    assert_eq!(listed[1]["mechanisms"][0]["mechanism"], "SCRAM-SHA-512");
    assert_eq!(listed[1]["mechanisms"][0]["iterations"], 8192);
    // No password is stored.
    let stored = std::fs::read_to_string(data.join(".scram-credentials")).unwrap();
    assert!(
        !stored.contains("s3cret") && !stored.contains("alice"),
        "{stored}"
    );

    refused(
        &weir(&data, &["add", "carol", "--password", "pässword"], ""),
        "ASCII",
    );
    refused(
        &weir(
            &data,
            &["add", "carol", "--password", "pw", "--iterations", "10"],
            "",
        ),
        "iterations",
    );
    refused(
        &weir(
            &data,
            &["add", "carol", "--password", "pw", "--mechanism", "MD5"],
            "",
        ),
        "unknown mechanism",
    );
    refused(&weir(&data, &["add", "carol"], ""), "--password-stdin");
    refused(&weir(&data, &["remove", "zed"], ""), "no user");
    ok(&weir(&data, &["remove", "bob"], ""));
    let out = ok(&weir(&data, &["list"], ""));
    assert!(out.contains("alice") && !out.contains("bob"), "{out}");

    // A server with SASL on this directory: the command refuses, the user
    // logs in.
    let (mut server, kafka, _http) =
        common::start_serve_kafka_http(&data, &["--sasl-mechanisms", "SCRAM-SHA-256,PLAIN"]);
    refused(
        &weir(&data, &["add", "dave", "--password", "pw"], ""),
        "in use by a running server",
    );
    let kcat = |password: &str, args: &[&str], stdin: &str| {
        let mut all = vec![
            "-b".to_owned(),
            kafka.clone(),
            "-X".into(),
            "security.protocol=SASL_PLAINTEXT".into(),
            "-X".into(),
            "sasl.mechanisms=SCRAM-SHA-256".into(),
            "-X".into(),
            "sasl.username=alice".into(),
            "-X".into(),
            format!("sasl.password={password}"),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        common::run_with_stdin(Command::new("kcat").args(&all), stdin)
    };
    ok(&kcat("s3cret", &["-t", "t", "-P"], "one\ntwo\n"));
    let out = ok(&kcat(
        "s3cret",
        &["-t", "t", "-C", "-e", "-o", "beginning"],
        "",
    ));
    assert_eq!(out, "one\ntwo\n");
    let out = kcat("wrong", &["-L", "-m", "5"], "");
    refused(&out, "invalid credentials");
    let _ = server.kill();
    let _ = server.wait();
}
