//! DeleteTopics: each named topic deleted with all its data and the
//! offsets groups committed for it, with an error code per topic. Topics
//! named by id alone are looked up by id.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse};

use super::{Caller, blocking, str_bytes, topic_name};
use crate::Shared;
use crate::authz::Delete;
use crate::codes::{Code, for_broker_error};
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DeleteTopicsRequest = decode(ApiKey::DeleteTopics, version, body)?;
    let broker = shared.broker.clone();
    let groups = shared.groups.clone();
    let caller = caller.clone();
    // v6 names topics in `topics` (by name or id); earlier versions in
    // `topic_names`.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let results = blocking(move || {
        wanted
            .into_iter()
            .map(|(name, id)| {
                let name =
                    name.or_else(|| broker.topic_by_id(id.as_u128()).map(|t| t.name.clone()));
                let result = DeletableTopicResult::default().with_topic_id(id);
                // An id no topic has: no name (null), UNKNOWN_TOPIC_ID, as
                // Kafka's controller answers.
                let Some(name) = name else {
                    return result
                        .with_name(None)
                        .with_error_code(Code::UnknownTopicId.code())
                        .with_error_message(Some(str_bytes(&format!("no topic has the id {id}"))));
                };
                let result = result.with_name(Some(topic_name(&name)));
                if !caller.may_topic(Delete, &name) {
                    return result.with_error_code(Code::TopicAuthorizationFailed.code());
                }
                match broker.delete_topic(&name) {
                    Ok(()) => {
                        // A topic made again under this name starts with no
                        // group positions, as in Kafka. The topic is gone
                        // either way; a failure here is only logged.
                        let forgotten = groups.offsets().delete_topic(&name).and_then(|p| p.wait());
                        if let Err(e) = forgotten {
                            tracing::warn!(topic = %name, %e, "dropping the deleted topic's committed offsets failed");
                        }
                        result
                    }
                    Err(e) => result
                        .with_error_code(for_broker_error(&e).code())
                        .with_error_message(Some(str_bytes(&e.to_string()))),
                }
            })
            .collect()
    })
    .await;
    encode(
        ApiKey::DeleteTopics,
        version,
        &DeleteTopicsResponse::default().with_responses(results),
    )
}
