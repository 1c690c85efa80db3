//! Validation on write in `weir serve` with confluent-kafka
//! (`tests/clients/python_schema_validation.py`): a topic created and
//! switched to `confluent.value.schema.validation=true` through the admin
//! client (IncrementalAlterConfigs) takes what `AvroSerializer` writes and refuses plain bytes and
//! a record naming another subject's schema, each with its delivery
//! report's error; the topic then holds only the good records.

mod common;

use std::process::Command;

#[test]
fn confluent_clients_see_invalid_records_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, kafka, http) = common::start_serve_kafka_http(dir.path(), &[]);
    let out = Command::new(common::python())
        .arg(common::client_script("python_schema_validation.py"))
        .args([kafka.as_str(), &format!("http://{http}"), "validated"])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok: ").count(), 3, "{stdout}");
    let refused: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("refused "))
        .collect();
    assert_eq!(refused.len(), 2, "{stdout}");
    for code in refused {
        assert!(code == "INVALID_RECORD" || code == "INVALID_MSG", "{code}");
    }
}
