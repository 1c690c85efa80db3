//! The queue endpoints (`/v1/queues/...`): claim records of a topic for a
//! consumer of a queue group, ack, nack (release or reject), extend a
//! lock, list pending records, and autoclaim idle ones.

use weir_api::{
    Acked, AutoclaimRequest, ClaimRequest, Claimed, PendingList, QueueGroupDeleted, RecordAck,
    SettleRequest, Settled,
};

use crate::{Client, Result, encode_segment};

fn path(group: &str, topic: &str, what: &str) -> String {
    format!(
        "/v1/queues/{}/topics/{}/{what}",
        encode_segment(group),
        encode_segment(topic)
    )
}

impl Client {
    /// Claims records of `topic` for a consumer of queue `group`.
    pub fn claim(&self, group: &str, topic: &str, req: &ClaimRequest) -> Result<Claimed> {
        self.post(&path(group, topic, "claim"), req)
    }

    /// Claims records other consumers held at least `min_idle_ms`.
    pub fn autoclaim(&self, group: &str, topic: &str, req: &AutoclaimRequest) -> Result<Claimed> {
        self.post(&path(group, topic, "autoclaim"), req)
    }

    /// Acknowledges a held record (done for good).
    pub fn ack(&self, group: &str, topic: &str, record: &RecordAck) -> Result<Acked> {
        self.post(&path(group, topic, "ack"), record)
    }

    /// Releases a held record (or rejects it, with `record.reject`).
    pub fn nack(&self, group: &str, topic: &str, record: &RecordAck) -> Result<Acked> {
        self.post(&path(group, topic, "nack"), record)
    }

    /// Settles many held records of one partition in one durable write.
    pub fn settle(&self, group: &str, topic: &str, request: &SettleRequest) -> Result<Settled> {
        self.post(&path(group, topic, "settle"), request)
    }

    /// Extends the lock on a held record to `record.lock_ms` from now.
    pub fn extend(&self, group: &str, topic: &str, record: &RecordAck) -> Result<Acked> {
        self.post(&path(group, topic, "extend"), record)
    }

    /// Deletes queue `group`'s state in every partition.
    pub fn delete_queue_group(&self, group: &str) -> Result<QueueGroupDeleted> {
        self.delete(&format!("/v1/queues/{}", encode_segment(group)), &[])
    }

    /// The records queue `group`'s consumers hold.
    pub fn pending(&self, group: &str) -> Result<PendingList> {
        self.get(
            &format!("/v1/queues/{}/pending", encode_segment(group)),
            &[],
        )
    }
}
