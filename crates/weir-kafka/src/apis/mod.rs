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
mod produce;

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};

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

/// Runs one decoded-header request; returns the encoded response body, or
/// `None` when the client wants no response.
pub(crate) async fn dispatch(
    api: ApiKey,
    version: i16,
    header: &RequestHeader,
    body: Bytes,
    shared: &Arc<Shared>,
) -> Result<Option<Bytes>, ConnError> {
    let _ = header;
    match api {
        ApiKey::ApiVersions => api_versions::handle(version, body).map(Some),
        ApiKey::Metadata => metadata::handle(version, body, shared).await.map(Some),
        ApiKey::Produce => produce::handle(version, body, shared).await,
        ApiKey::Fetch => fetch::handle(version, body, shared).await.map(Some),
        ApiKey::ListOffsets => list_offsets::handle(version, body, shared).await.map(Some),
        ApiKey::CreateTopics => create_topics::handle(version, body, shared).await.map(Some),
        ApiKey::DeleteTopics => delete_topics::handle(version, body, shared).await.map(Some),
        ApiKey::InitProducerId => init_producer_id::handle(version, body, shared)
            .await
            .map(Some),
        ApiKey::DescribeConfigs => configs::describe(version, body, shared).await.map(Some),
        ApiKey::AlterConfigs => configs::alter(version, body, shared).await.map(Some),
        ApiKey::IncrementalAlterConfigs => configs::incremental_alter(version, body, shared)
            .await
            .map(Some),
        ApiKey::CreatePartitions => create_partitions::handle(version, body, shared)
            .await
            .map(Some),
        _ => Err(ConnError::UnknownApiKey {
            api_key: api as i16,
        }),
    }
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
