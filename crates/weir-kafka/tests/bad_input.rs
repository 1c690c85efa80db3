//! Bad input on raw sockets: each gets a precise error or closes only its
//! own connection, the server stays up for everyone else, and nothing in
//! the log changes.

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{TestServer, call, connect, recv};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use weir_kafka::Code;
use weir_log::batch::BatchBuilder;

/// As `weir serve` does.
#[global_allocator]
static ALLOCATOR: weir_kafka::GuardedAllocator = weir_kafka::GuardedAllocator;

fn still_serves(server: &TestServer) {
    let mut other = connect(server);
    let response: ApiVersionsResponse = call(
        &mut other,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(response.error_code, 0);
}

fn closed(stream: &mut TcpStream) -> bool {
    recv(stream).is_none()
}

#[test]
fn an_unsupported_api_versions_version_gets_error_35_with_the_list() {
    let server = TestServer::start();
    let mut stream = connect(&server);
    // A version from the future, whose body the server cannot parse.
    let mut request = BytesMut::new();
    request.put_i16(ApiKey::ApiVersions as i16);
    request.put_i16(99);
    request.put_i32(42);
    request.put_slice(&[0xde, 0xad]);
    let mut bytes = (request.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&request);
    stream.write_all(&bytes).unwrap();
    let mut response = recv(&mut stream).expect("an answer, not a disconnect");
    assert_eq!(response.get_i32(), 42);
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(body.error_code, Code::UnsupportedVersion.code());
    let produce = body
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 13));
    // The client retries with a version from the list on the same connection.
    let retry: ApiVersionsResponse = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(retry.error_code, 0);
}

#[test]
fn bad_frames_close_only_their_connection() {
    let server = TestServer::start();
    // Longer than any request may be.
    let mut huge = connect(&server);
    let mut bytes = (200 * 1024 * 1024i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    huge.write_all(&bytes).unwrap();
    assert!(closed(&mut huge));
    // A Metadata frame over the admin limit.
    let mut admin = connect(&server);
    let mut bytes = (2 * 1024 * 1024i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
    admin.write_all(&bytes).unwrap();
    assert!(closed(&mut admin));
    // An unknown API key.
    let mut unknown = connect(&server);
    unknown
        .write_all(&[0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0])
        .unwrap();
    assert!(closed(&mut unknown));
    // A negative length, then a frame cut short by the client leaving.
    let mut negative = connect(&server);
    negative.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(closed(&mut negative));
    let mut cut = connect(&server);
    cut.write_all(&[0, 0, 0, 100, 0, 18, 0, 3]).unwrap();
    drop(cut);
    // A known API at a version Weir does not serve.
    let mut old = connect(&server);
    old.write_all(&[0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1])
        .unwrap();
    assert!(closed(&mut old));
    // A body that does not decode.
    let mut garbage = connect(&server);
    let mut request = BytesMut::new();
    request.put_i16(ApiKey::Metadata as i16);
    request.put_i16(1);
    request.put_i32(1);
    request.put_i16(-1);
    request.put_i32(5); // five topics follow, but the frame ends
    let mut bytes = (request.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&request);
    garbage.write_all(&bytes).unwrap();
    assert!(closed(&mut garbage));
    // A count from hell: 14 bytes claiming 2^31 - 1 topics, which the
    // decoder would reserve ~150 GB for before reading any.
    let mut bomb = connect(&server);
    let mut request = BytesMut::new();
    request.put_i16(ApiKey::Metadata as i16);
    request.put_i16(1);
    request.put_i32(1);
    request.put_i16(-1);
    request.put_i32(i32::MAX);
    let mut bytes = (request.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&request);
    bomb.write_all(&bytes).unwrap();
    assert!(closed(&mut bomb));
    still_serves(&server);
}

fn produce(topic: &str, partition: i32, acks: i16, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(records))),
                ]),
        ])
}

/// CRC-32C (Castagnoli), bit by bit: the tests need no dependency for it.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn batch(value: &[u8]) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_000);
    b.push(1_000, Some(b"k"), Some(value), &[]);
    b.build()
}

fn produce_code(stream: &mut TcpStream, request: &ProduceRequest) -> i16 {
    let response: ProduceResponse = call(stream, ApiKey::Produce, 9, request);
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn bad_produce_requests_get_precise_errors_and_write_nothing() {
    let server = TestServer::start();
    server
        .broker
        .create_topic("t", 2, 1, &[("max.message.bytes", "1000")], false)
        .unwrap();
    server
        .broker
        .ensure_internal_topic("__weir_events", 1, &[])
        .unwrap();
    let mut stream = connect(&server);
    assert_eq!(
        produce_code(&mut stream, &produce("t", 0, -1, batch(b"good"))),
        0
    );

    let mut corrupt = batch(b"flipped");
    *corrupt.last_mut().unwrap() ^= 1;
    // Well framed with a good CRC, but the payload is not gzip / the header
    // claims a record that is not there: unreadable to any consumer.
    let mut not_gzip = batch(b"plain");
    not_gzip[21..23].copy_from_slice(&1i16.to_be_bytes());
    let mut lying = batch(b"one record");
    lying[57..61].copy_from_slice(&2i32.to_be_bytes());
    lying[23..27].copy_from_slice(&1i32.to_be_bytes());
    for b in [&mut not_gzip, &mut lying] {
        let crc = crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    let cases = [
        (produce("t", 0, -1, corrupt), Code::CorruptMessage),
        (
            produce("t", 0, -1, batch(&[7u8; 2000])),
            Code::MessageTooLarge,
        ),
        (produce("t", 0, -1, vec![1, 2, 3]), Code::CorruptMessage),
        (produce("t", 0, -1, not_gzip), Code::CorruptMessage),
        (produce("t", 0, -1, lying), Code::CorruptMessage),
        (
            produce("t", 5, -1, batch(b"x")),
            Code::UnknownTopicOrPartition,
        ),
        (
            produce("nope", 0, -1, batch(b"x")),
            Code::UnknownTopicOrPartition,
        ),
        (
            produce("__weir_events", 0, -1, batch(b"x")),
            Code::InvalidTopicException,
        ),
        (produce("t", 0, 5, batch(b"x")), Code::InvalidRequiredAcks),
    ];
    for (request, expected) in cases {
        assert_eq!(
            produce_code(&mut stream, &request),
            expected.code(),
            "{expected:?}"
        );
    }
    let log = server.broker.partition("t", 0).unwrap();
    assert_eq!(log.end_offset(), 1, "only the good batch was written");
    assert_eq!(
        server
            .broker
            .partition("__weir_events", 0)
            .unwrap()
            .end_offset(),
        0
    );

    // A fetch past the end says so, with the bounds.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            kafka_protocol::messages::fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    kafka_protocol::messages::fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(50)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 11, &fetch);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, Code::OffsetOutOfRange.code());
    assert_eq!(partition.high_watermark, 1);
    still_serves(&server);
}

#[test]
fn connections_over_the_limit_wait_until_one_closes() {
    let server = TestServer::start_with(weir_broker::BrokerConfig::default(), |c| {
        c.connections_max = 2
    });
    let mut first = connect(&server);
    let mut second = connect(&server);
    for stream in [&mut first, &mut second] {
        let r: ApiVersionsResponse = call(
            stream,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        );
        assert_eq!(r.error_code, 0);
    }
    // The kernel completes the third handshake, but the server does not
    // take the connection, so its request waits.
    let mut third = connect(&server);
    third
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    third
        .write_all(&common::frame(
            ApiKey::ApiVersions,
            3,
            9,
            &ApiVersionsRequest::default(),
        ))
        .unwrap();
    let mut buf = [0u8; 4];
    let waited = std::io::Read::read(&mut third, &mut buf);
    assert!(waited.is_err(), "served over the limit: {waited:?}");
    drop(first);
    third
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut response = recv(&mut third).expect("served once a slot frees");
    assert_eq!(response.get_i32(), 9);
}
