//! Authorization of Kafka requests: what each API checks is one call on
//! its [`Caller`] (`caller.may_topic(Read, name)`), asked of the server's
//! one authorizer with the caller's principal and the host it connected
//! from, as Kafka's `AuthHelper` does. With authorization off every check
//! is a branch on a field; on, a read of the ACL index behind an `Arc`, and
//! no allocation.

use std::sync::{Arc, LazyLock};

use weir_auth::Principal;
use weir_auth::acl::{CLUSTER_NAME, Operation, ResourceType};

use crate::apis::Caller;
use crate::codes::Code;

pub(crate) use weir_auth::acl::Operation::{
    Alter, AlterConfigs, Create, Delete, Describe, DescribeConfigs, IdempotentWrite, Read, Write,
};

/// The principal of a caller nobody authenticated, built once so that a
/// request's caller costs a reference count, not an allocation.
pub(crate) fn anonymous() -> Principal {
    static ANONYMOUS: LazyLock<Principal> = LazyLock::new(Principal::anonymous);
    ANONYMOUS.clone()
}

impl Caller {
    /// Whether the caller may do `operation` on the resource.
    pub(crate) fn may(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.authorizer.authorize(
            &self.principal,
            self.peer.ip(),
            operation,
            resource_type,
            name,
        )
    }

    /// [`Caller::may`] without an audit line on refusal: for what only
    /// filters what the caller is shown (a listing, authorized-operation
    /// bits), as Kafka checks those.
    pub(crate) fn sees(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.authorizer.allows(
            &self.principal,
            self.peer.ip(),
            operation,
            resource_type,
            name,
        )
    }

    pub(crate) fn may_topic(&self, operation: Operation, topic: &str) -> bool {
        self.may(operation, ResourceType::Topic, topic)
    }

    pub(crate) fn may_group(&self, operation: Operation, group: &str) -> bool {
        self.may(operation, ResourceType::Group, group)
    }

    pub(crate) fn may_cluster(&self, operation: Operation) -> bool {
        self.may(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub(crate) fn may_transaction(&self, operation: Operation, transactional_id: &str) -> bool {
        self.may(operation, ResourceType::TransactionalId, transactional_id)
    }

    /// Whether the caller may do `operation` on some resource of the type
    /// (Kafka's `authorizeByResourceType`: an idempotent producer with
    /// WRITE on any topic).
    pub(crate) fn may_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        self.authorizer
            .authorize_any(&self.principal, self.peer.ip(), operation, resource_type)
    }

    /// Whether ACLs are checked at all (CreateAcls and its kin answer
    /// SECURITY_DISABLED when not).
    pub(crate) fn acls_enabled(&self) -> bool {
        self.authorizer.is_enabled()
    }

    /// The authorizer, for the ACL APIs.
    pub(crate) fn authorizer(&self) -> &Arc<weir_auth::Authorizer> {
        &self.authorizer
    }

    /// The bits of `all` (an `include_*_authorized_operations` field: bit
    /// n for the operation of code n) the caller may do on the resource.
    pub(crate) fn authorized_operations(
        &self,
        all: i32,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        if !self.acls_enabled() {
            return all;
        }
        Operation::ALL
            .iter()
            .filter(|op| all & (1 << op.code()) != 0 && self.sees(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// Kafka's check of a group heartbeat (consumer and share groups):
    /// READ on the group, DESCRIBE on every topic subscribed to by name.
    /// The refusal's code and message, if any.
    pub(crate) fn heartbeat_refusal<'a>(
        &self,
        group: &str,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Option<(Code, Option<String>)> {
        if !self.may_group(Read, group) {
            return Some((Code::GroupAuthorizationFailed, None));
        }
        let hidden: Vec<&str> = topics
            .into_iter()
            .filter(|n| !self.may_topic(Describe, n))
            .collect();
        (!hidden.is_empty()).then(|| {
            let message = format!("Topic authorization failed for topics {hidden:?}");
            (Code::TopicAuthorizationFailed, Some(message))
        })
    }

    /// Kafka's check of a described consumer or share group: the caller
    /// must be allowed to DESCRIBE every topic its members subscribe to or
    /// are assigned, else the group is TOPIC_AUTHORIZATION_FAILED (its
    /// members would name the hidden topics).
    pub(crate) fn described_topics_refusal<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Option<String> {
        if !self.acls_enabled() {
            return None;
        }
        let mut seen = std::collections::BTreeSet::new();
        topics
            .into_iter()
            .filter(|t| seen.insert(*t))
            .any(|t| !self.may_topic(Describe, t))
            .then(|| {
                "The group has described topic(s) that the client is not authorized to describe."
                    .to_owned()
            })
    }
}
