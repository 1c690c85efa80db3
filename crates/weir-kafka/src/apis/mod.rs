//! The Kafka APIs Weir serves, one module each, and the versions of each
//! that it accepts.

pub(crate) mod api_versions;
mod configs;
mod create_partitions;
mod create_topics;
mod delete_topics;
mod fetch;
mod init_producer_id;
mod list_offsets;
mod metadata;
pub(crate) mod produce;

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::Shared;
use crate::conn::ConnError;

/// The versions of each API Weir serves; `None` for APIs it does not.
///
/// Lower bounds: record batches (magic 2) need Produce v3 and Fetch v4.
/// Upper bounds stop before versions that address topics by id only
/// (Fetch v13, Produce v13) or that Weir has not been tested with.
pub(crate) fn supported_versions(api: ApiKey) -> Option<RangeInclusive<i16>> {
    Some(match api {
        ApiKey::Produce => 3..=11,
        ApiKey::Fetch => 4..=12,
        ApiKey::ListOffsets => 1..=6,
        ApiKey::Metadata => 0..=12,
        ApiKey::ApiVersions => 0..=4,
        ApiKey::CreateTopics => 2..=7,
        ApiKey::DeleteTopics => 1..=6,
        ApiKey::InitProducerId => 0..=4,
        ApiKey::DescribeConfigs => 0..=4,
        ApiKey::AlterConfigs => 0..=2,
        ApiKey::IncrementalAlterConfigs => 0..=1,
        ApiKey::CreatePartitions => 0..=3,
        _ => return None,
    })
}

/// Every served API with its versions, in key order.
pub(crate) fn all_supported() -> Vec<(ApiKey, RangeInclusive<i16>)> {
    let mut out: Vec<_> = ApiKey::iter()
        .filter_map(|api| supported_versions(api).map(|v| (api, v)))
        .collect();
    out.sort_by_key(|(api, _)| *api as i16);
    out
}

/// A request's answer: ready now, or (Produce) after its batches are
/// durable.
pub(crate) enum Reply {
    Now(Option<Bytes>),
    Later(produce::Acknowledge),
}

/// Runs one decoded-header request. Everything but the wait for durability
/// happens here, in the order the connection's requests arrive.
pub(crate) async fn dispatch(
    api: ApiKey,
    version: i16,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Reply, ConnError> {
    let now = |body: Bytes| Reply::Now(Some(body));
    Ok(match api {
        ApiKey::ApiVersions => now(api_versions::handle(version, body)?),
        ApiKey::Metadata => now(metadata::handle(version, body, shared).await?),
        ApiKey::Produce => Reply::Later(produce::handle(version, body, shared).await?),
        ApiKey::Fetch => now(fetch::handle(version, body, shared).await?),
        ApiKey::ListOffsets => now(list_offsets::handle(version, body, shared).await?),
        ApiKey::CreateTopics => now(create_topics::handle(version, body, shared).await?),
        ApiKey::DeleteTopics => now(delete_topics::handle(version, body, shared).await?),
        ApiKey::InitProducerId => now(init_producer_id::handle(version, body, shared).await?),
        ApiKey::DescribeConfigs => now(configs::describe(version, body, shared).await?),
        ApiKey::AlterConfigs => now(configs::alter(version, body, shared).await?),
        ApiKey::IncrementalAlterConfigs => {
            now(configs::incremental_alter(version, body, shared).await?)
        }
        ApiKey::CreatePartitions => now(create_partitions::handle(version, body, shared).await?),
        _ => {
            return Err(ConnError::UnknownApiKey {
                api_key: api as i16,
            });
        }
    })
}

/// Decodes a request body of a served API without serving it (what
/// [`crate::decode_request`] checks).
pub(crate) fn decode_only(api: ApiKey, version: i16, body: Bytes) -> Result<(), ConnError> {
    use crate::conn::decode;
    use kafka_protocol::messages as m;
    match api {
        ApiKey::ApiVersions => decode::<m::ApiVersionsRequest>(api, version, body).map(drop),
        ApiKey::Metadata => decode::<m::MetadataRequest>(api, version, body).map(drop),
        ApiKey::Produce => decode::<m::ProduceRequest>(api, version, body).map(drop),
        ApiKey::Fetch => decode::<m::FetchRequest>(api, version, body).map(drop),
        ApiKey::ListOffsets => decode::<m::ListOffsetsRequest>(api, version, body).map(drop),
        ApiKey::CreateTopics => decode::<m::CreateTopicsRequest>(api, version, body).map(drop),
        ApiKey::DeleteTopics => decode::<m::DeleteTopicsRequest>(api, version, body).map(drop),
        ApiKey::InitProducerId => decode::<m::InitProducerIdRequest>(api, version, body).map(drop),
        ApiKey::DescribeConfigs => {
            decode::<m::DescribeConfigsRequest>(api, version, body).map(drop)
        }
        ApiKey::AlterConfigs => decode::<m::AlterConfigsRequest>(api, version, body).map(drop),
        ApiKey::IncrementalAlterConfigs => {
            decode::<m::IncrementalAlterConfigsRequest>(api, version, body).map(drop)
        }
        ApiKey::CreatePartitions => {
            decode::<m::CreatePartitionsRequest>(api, version, body).map(drop)
        }
        _ => Err(ConnError::UnknownApiKey {
            api_key: api as i16,
        }),
    }
}

/// Runs blocking broker work (disk I/O, waiting for a sync) off the async
/// workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("broker calls do not panic")
}

pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_owned())
}

pub(crate) fn topic_name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(str_bytes(s))
}
