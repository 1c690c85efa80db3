//! The persistent-subscription endpoints (`/v1/subscriptions/...`):
//! create or change, describe, delete and list groups; read events for a
//! consumer, ack and nack them, replay the parked stream.

use weir_api::{
    SubscriptionAck, SubscriptionDone, SubscriptionEvents, SubscriptionGroups, SubscriptionInfo,
    SubscriptionNack, SubscriptionRead, SubscriptionSettings,
};

use crate::{Client, Result, encode_segment};

fn path(target: &str, group: &str, what: &str) -> String {
    format!(
        "/v1/subscriptions/{}/{}{what}",
        encode_segment(target),
        encode_segment(group)
    )
}

impl Client {
    /// Creates subscription `group` on `target` (a stream id,
    /// `$ce-<category>` or `$all`), or changes its settings.
    pub fn put_subscription(
        &self,
        target: &str,
        group: &str,
        settings: &SubscriptionSettings,
    ) -> Result<SubscriptionInfo> {
        self.put(&path(target, group, ""), settings)
    }

    /// A group's settings, consumers, checkpoint and parked events.
    pub fn subscription(&self, target: &str, group: &str) -> Result<SubscriptionInfo> {
        self.get(&path(target, group, ""), &[])
    }

    pub fn delete_subscription(&self, target: &str, group: &str) -> Result<()> {
        self.delete(&path(target, group, ""), &[])
    }

    pub fn subscriptions(&self) -> Result<SubscriptionGroups> {
        self.get("/v1/subscriptions", &[])
    }

    /// Events for a consumer of the group (long-polling with `wait_ms`).
    pub fn read_subscription(
        &self,
        target: &str,
        group: &str,
        read: &SubscriptionRead,
    ) -> Result<SubscriptionEvents> {
        self.post(&path(target, group, "/read"), read)
    }

    pub fn ack_subscription(
        &self,
        target: &str,
        group: &str,
        ack: &SubscriptionAck,
    ) -> Result<SubscriptionDone> {
        self.post(&path(target, group, "/ack"), ack)
    }

    pub fn nack_subscription(
        &self,
        target: &str,
        group: &str,
        nack: &SubscriptionNack,
    ) -> Result<SubscriptionDone> {
        self.post(&path(target, group, "/nack"), nack)
    }

    /// Delivers every event parked so far to the group once more.
    pub fn replay_parked(&self, target: &str, group: &str) -> Result<SubscriptionDone> {
        self.post(
            &path(target, group, "/replay-parked"),
            &serde_json::Value::Null,
        )
    }
}
