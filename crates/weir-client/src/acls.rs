//! The ACL endpoints (`/v1/acls`): list the ACLs a filter selects, add
//! some, remove what a filter selects.

use weir_api::{Acl, AclList, AclsDeleted, CreateAcls};

use crate::{Client, Result};

/// Which ACLs a call selects, as Kafka's filters have it: `None` is any.
/// `pattern_type` may be `MATCH` (the ACLs that apply to a resource name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclQuery {
    pub resource_type: Option<String>,
    pub name: Option<String>,
    pub pattern_type: Option<String>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<String>,
    pub permission: Option<String>,
}

impl AclQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("resource_type", &self.resource_type),
            ("name", &self.name),
            ("pattern_type", &self.pattern_type),
            ("principal", &self.principal),
            ("host", &self.host),
            ("operation", &self.operation),
            ("permission", &self.permission),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

impl Client {
    /// The ACLs `query` selects.
    pub fn acls(&self, query: &AclQuery) -> Result<AclList> {
        self.get("/v1/acls", &query.pairs())
    }

    /// Adds `acls`, all or none.
    pub fn create_acls(&self, acls: Vec<Acl>) -> Result<AclList> {
        self.post("/v1/acls", &CreateAcls { acls })
    }

    /// Removes the ACLs `query` selects; a query selecting every ACL is
    /// refused unless `all`.
    pub fn delete_acls(&self, query: &AclQuery, all: bool) -> Result<AclsDeleted> {
        let mut pairs = query.pairs();
        if all {
            pairs.push(("all", "true".to_owned()));
        }
        self.delete("/v1/acls", &pairs)
    }
}
