//! The bodies of the ACL endpoints (`/v1/acls`): bindings as Kafka names
//! their parts (`TOPIC`, `PREFIXED`, `User:alice`, `READ`, `ALLOW`), so
//! what `kafka-acls` prints reads the same here.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Acl {
    /// `TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`, or Weir's
    /// `STREAM`, `CATEGORY`, `DEAD_LETTER_TOPIC`, `SAGA`, `SCHEMA_SUBJECT`.
    pub resource_type: String,
    /// The resource's name, a prefix, or `*` for every resource of the
    /// type (the cluster is `kafka-cluster`).
    pub name: String,
    /// `LITERAL` or `PREFIXED`.
    #[serde(default = "literal")]
    pub pattern_type: String,
    /// `User:<name>`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*` for any.
    #[serde(default = "any_host")]
    pub host: String,
    /// `ALL`, `READ`, `WRITE`, `CREATE`, `DELETE`, `ALTER`, `DESCRIBE`,
    /// `CLUSTER_ACTION`, `DESCRIBE_CONFIGS`, `ALTER_CONFIGS`,
    /// `IDEMPOTENT_WRITE`.
    pub operation: String,
    /// `ALLOW` or `DENY`.
    pub permission: String,
}

fn literal() -> String {
    "LITERAL".to_owned()
}

fn any_host() -> String {
    "*".to_owned()
}

/// `GET /v1/acls`: the bindings the query's filter selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AclList {
    pub acls: Vec<Acl>,
}

/// `POST /v1/acls`: bindings to add, all or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAcls {
    pub acls: Vec<Acl>,
}

/// `DELETE /v1/acls`: the bindings the query's filter removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AclsDeleted {
    pub deleted: Vec<Acl>,
}
