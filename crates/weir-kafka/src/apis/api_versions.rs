//! ApiVersions: which APIs and versions Weir serves (and KIP-511's answer
//! to a client that asks with a version newer than Weir's).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;

use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

fn response(error: Code) -> ApiVersionsResponse {
    let api_keys = super::all_supported()
        .into_iter()
        .map(|(api, range)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(*range.start())
                .with_max_version(*range.end())
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error.code())
        .with_api_keys(api_keys)
}

pub(crate) fn handle(version: i16, body: Bytes) -> Result<Bytes, ConnError> {
    let _request: ApiVersionsRequest = decode(ApiKey::ApiVersions, version, body)?;
    encode(ApiKey::ApiVersions, version, &response(Code::None))
}

/// The whole response frame (header v0 and a v0 body with
/// UNSUPPORTED_VERSION) for an ApiVersions request of a version Weir does
/// not know, which it therefore cannot decode.
pub(crate) fn unsupported(correlation_id: i32) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    response(Code::UnsupportedVersion)
        .encode(&mut out, 0)
        .expect("a v0 ApiVersions response always encodes");
    out.to_vec()
}
