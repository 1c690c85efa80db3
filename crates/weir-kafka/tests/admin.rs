//! The legacy AlterConfigs API (which current Python clients no longer
//! send): it replaces a topic's whole config set, so keys it does not name
//! go back to their defaults.

mod common;

use common::{TestServer, call, connect};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

fn describe(stream: &mut std::net::TcpStream) -> Vec<(String, String, i8)> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t")),
    ]);
    let response: DescribeConfigsResponse = call(stream, ApiKey::DescribeConfigs, 4, &request);
    assert_eq!(response.results[0].error_code, 0);
    response.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().unwrap().to_string(),
                c.config_source,
            )
        })
        .collect()
}

#[test]
fn legacy_alter_configs_replaces_the_whole_set() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("t", 1, 1, &[("retention.ms", "60000")], false)
        .unwrap();
    let mut stream = connect(&server);
    let before = describe(&mut stream);
    assert!(
        before.contains(&("retention.ms".into(), "60000".into(), 1)),
        "{before:?}"
    );
    let alter = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.bytes"))
                    .with_value(Some(StrBytes::from_static_str("1048576"))),
            ]),
    ]);
    let response: AlterConfigsResponse = call(&mut stream, ApiKey::AlterConfigs, 1, &alter);
    assert_eq!(response.responses[0].error_code, 0);
    let after = describe(&mut stream);
    assert!(
        after.contains(&("retention.bytes".into(), "1048576".into(), 1)),
        "{after:?}"
    );
    assert!(
        after.contains(&("retention.ms".into(), "604800000".into(), 5)),
        "{after:?}"
    );
    // And the partition log follows.
    let log = server.broker.partition("t", 0).unwrap();
    assert_eq!(log.config().retention_bytes, Some(1_048_576));
    assert_eq!(log.config().retention_ms, Some(604_800_000));
}
