//! ACLs in `weir serve`: the authorizer's flags, and ACLs made over Kafka
//! surviving a restart and a `kill -9` (kept in the data directory's
//! `.acls.json`, on disk before CreateAcls is answered), seen
//! by confluent-kafka before and after (`tests/clients/python_acls.py`,
//! scenarios `restart-before` and `restart-after`); a bad super user is
//! refused at start by name; admin requests and denials on both protocols
//! leave lines on the `weir::audit` log target.

mod common;

use std::process::Command;

const FLAGS: [&str; 4] = [
    "--authorizer",
    "--allow-everyone-if-no-acl-found",
    "--super-users",
    "User:admin; User:ops",
];

fn run_python(kafka: &str, scenario: &str) {
    let out = Command::new(common::python())
        .args([&common::client_script("python_acls.py"), kafka, scenario])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{scenario}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok:").count(), 3, "{stdout}");
}

fn stop(mut child: std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn acls_made_over_kafka_survive_a_restart_and_a_kill_9() {
    for kill9 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, kafka, _) = common::start_serve_kafka_http(dir.path(), &FLAGS);
        run_python(&kafka, "restart-before");
        if kill9 {
            // Acknowledged means on disk: no clean shutdown needed.
            child.kill().unwrap();
            child.wait().unwrap();
        } else {
            stop(child);
        }
        assert!(dir.path().join(".acls.json").exists());
        let (child, kafka, _) = common::start_serve_kafka_http(dir.path(), &FLAGS);
        run_python(&kafka, "restart-after");
        stop(child);
    }
}

#[test]
fn a_malformed_super_user_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--authorizer", "--super-users", "User:admin;alice"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"alice\""), "{stderr}");
}

fn curl(url: &str, args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

#[test]
fn admin_requests_and_denials_are_audited_on_both_protocols() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let kafka = format!("127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--kafka-addr",
            &kafka,
        ])
        .args(&FLAGS[..2])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("WEIR_LOG", "warn,weir::audit=info")
        .env("WEIR_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..2 {
        out.read_line(&mut lines).unwrap();
    }
    let http = lines
        .lines()
        .find_map(|l| l.strip_prefix("http listening on "))
        .unwrap()
        .trim()
        .to_owned();
    let json = ["-H", "content-type: application/json", "-d"];

    // Nobody may delete `secret` (a DENY binding; everything else is
    // allowed because no ACL names it).
    let deny = r#"{"acls":[{"resource_type":"TOPIC","name":"secret","principal":"User:*","operation":"DELETE","permission":"DENY"}]}"#;
    let url = |path: &str| format!("http://{http}{path}");
    assert_eq!(curl(&url("/v1/acls"), &[&json[..], &[deny]].concat()), 201);
    let open = r#"{"name":"open"}"#;
    assert_eq!(
        curl(&url("/v1/topics"), &[&json[..], &[open]].concat()),
        201
    );
    let secret = r#"{"name":"secret"}"#;
    assert_eq!(
        curl(&url("/v1/topics"), &[&json[..], &[secret]].concat()),
        201
    );
    assert_eq!(curl(&url("/v1/topics/secret"), &["-X", "DELETE"]), 403);
    // A produce is data, not administration.
    let record = r#"{"records":[{"value":"v"}]}"#;
    assert_eq!(
        curl(
            &url("/v1/topics/open/records"),
            &[&json[..], &[record]].concat()
        ),
        200
    );

    // Over Kafka: creating a topic is answered, deleting `secret` refused.
    let script = format!(
        "from confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({{'bootstrap.servers': '{kafka}'}})\n\
         a.create_topics([NewTopic('made-over-kafka', 1)])['made-over-kafka'].result(10)\n\
         try:\n    a.delete_topics(['secret'])['secret'].result(10)\n    raise SystemExit('deleted')\n\
         except Exception as e:\n    assert 'TOPIC_AUTHORIZATION_FAILED' in str(e), e\n"
    );
    let py = Command::new(common::python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    stop(child);

    let audit: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "weir::audit")
        .map(|l| l["fields"].clone())
        .collect();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| audit.iter().any(pred);
    let text = format!("{audit:#?}");
    for (route, method, status) in [("/v1/acls", "POST", 201), ("/v1/topics", "POST", 201)] {
        assert!(
            find(&|f| f["message"] == "admin request"
                && f["route"] == route
                && f["method"] == method
                && f["status"] == status
                && f["principal"] == "User:ANONYMOUS"),
            "{route}: {text}"
        );
    }
    assert!(
        find(&|f| f["message"] == "denied"
            && f["operation"] == "DELETE"
            && f["resource"] == "secret"),
        "{text}"
    );
    assert!(
        !find(&|f| f["route"] == "/v1/topics/{topic}/records"),
        "a produce was audited: {text}"
    );
    for api in ["CreateTopics", "DeleteTopics"] {
        assert!(
            find(&|f| f["message"] == "admin request"
                && f["api"] == api
                && f["listener"] == "PLAINTEXT"),
            "{api}: {text}"
        );
    }
    // Both denials of `secret` (HTTP and Kafka) were logged.
    let denials = audit
        .iter()
        .filter(|f| f["message"] == "denied" && f["resource"] == "secret")
        .count();
    assert_eq!(denials, 2, "{text}");
}
