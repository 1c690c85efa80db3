//! Topic and broker configs with real clients (confluent-kafka's and
//! kafka-python's admin clients, `tests/clients/python_configs.py`), then
//! what they did checked in the broker's log; and the DescribeConfigs
//! fields the Python clients do not expose (types, documentation), over
//! the raw protocol.

mod common;

use common::{TestServer, call, connect, python};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use weir_log::batch::BatchHeader;

fn run_client(client: &str) {
    let server = TestServer::start();
    let script = common::client_script("python_configs.py");
    let out = std::process::Command::new(python())
        .args([script.as_str(), &server.bootstrap(), client, "cfg"])
        .output()
        .expect("the client virtualenv is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "{client} configs failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever the producer sent, the zstd topic stores zstd batches, and
    // the LogAppendTime topic batches stamped with the append time.
    for (topic, check) in [
        (
            "cfg-zstd",
            (|h: &BatchHeader| h.compression() == 4) as fn(&BatchHeader) -> bool,
        ),
        ("cfg-lat", |h: &BatchHeader| {
            h.is_log_append_time() && h.max_timestamp > 1_600_000_000_000
        }),
    ] {
        let read = server
            .broker
            .partition(topic, 0)
            .unwrap()
            .read(0, 1 << 20)
            .unwrap();
        let mut pos = 0;
        let mut batches = 0;
        while pos < read.bytes.len() {
            let header = BatchHeader::parse(&read.bytes[pos..]).unwrap();
            assert!(check(&header), "{topic}: {header:?}");
            pos += header.total_bytes();
            batches += 1;
        }
        assert!(batches > 0, "{topic} has batches");
    }
}

#[test]
fn confluent_kafka_configs() {
    run_client("confluent");
}

#[test]
fn kafka_python_configs() {
    run_client("kafka-python");
}

fn describe(
    stream: &mut std::net::TcpStream,
    resource_type: i8,
    name: &'static str,
) -> kafka_protocol::messages::describe_configs_response::DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_static_str(name)),
        ]);
    let mut response: DescribeConfigsResponse = call(stream, ApiKey::DescribeConfigs, 4, &request);
    response.results.remove(0)
}

#[test]
fn describe_fills_types_documentation_and_sources() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("t", 1, 1, &[("cleanup.policy", "delete")], false)
        .unwrap();
    let mut stream = connect(&server);
    let topic = describe(&mut stream, 2, "t");
    assert_eq!(topic.error_code, 0);
    let find = |name: &str| {
        topic
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} described"))
            .clone()
    };
    // (name, Kafka type: 1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list)
    for (name, config_type) in [
        ("cleanup.policy", 7),
        ("compression.type", 2),
        ("max.message.bytes", 3),
        ("retention.ms", 5),
        ("min.cleanable.dirty.ratio", 6),
        ("preallocate", 1),
    ] {
        let c = find(name);
        assert_eq!(c.config_type, config_type, "{name}");
        assert!(
            c.documentation.as_ref().is_some_and(|d| !d.is_empty()),
            "{name} has documentation"
        );
        assert!(!c.read_only && !c.is_sensitive, "{name}");
    }
    let cleanup = find("cleanup.policy");
    assert_eq!(cleanup.config_source, 1);
    let synonyms: Vec<(String, i8)> = cleanup
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        [
            ("cleanup.policy".into(), 1),
            ("log.cleanup.policy".into(), 5)
        ]
    );

    let broker = describe(&mut stream, 4, "0");
    assert_eq!(broker.error_code, 0);
    let names: Vec<&str> = broker.configs.iter().map(|c| c.name.as_str()).collect();
    for name in [
        "listeners",
        "log.dirs",
        "node.id",
        "log.retention.ms",
        "message.max.bytes",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let dirs = broker
        .configs
        .iter()
        .find(|c| c.name.as_str() == "log.dirs")
        .unwrap();
    assert_eq!((dirs.config_source, dirs.read_only), (4, true));
    let map = broker
        .configs
        .iter()
        .find(|c| c.name.as_str() == "listener.security.protocol.map")
        .unwrap();
    assert_eq!(
        map.value.as_ref().map(|v| v.as_str()),
        Some("PLAINTEXT:PLAINTEXT")
    );
    // The cluster-wide defaults: only what was set live, so none yet.
    let cluster = describe(&mut stream, 4, "");
    assert_eq!((cluster.error_code, cluster.configs.len()), (0, 0));
    // Another broker's id is not this one's to answer.
    assert_eq!(describe(&mut stream, 4, "7").error_code, 42);
    // Broker loggers are refused with a reason.
    let logger = describe(&mut stream, 8, "0");
    assert_eq!(logger.error_code, 42);
    assert!(logger.error_message.is_some());
}
