//! CreateAcls, DescribeAcls and DeleteAcls over the server's authorizer,
//! so Kafka's tools (`kafka-acls.sh`, admin clients) manage Weir's ACLs:
//! creating and deleting need ALTER on the cluster, describing DESCRIBE;
//! a server without authorization answers SECURITY_DISABLED. Each
//! creation and each filter is answered on its own (INVALID_REQUEST, with
//! the reason, for a bad one). Weir's resource types (codes 100-104) are
//! taken on the wire when named; a filter of type ANY selects Kafka's
//! types only, so a Kafka client never receives a type it cannot parse.
//!
//! Versions 1-3: v0 went with Kafka 4 (KIP-896), and is what the
//! `kafka-protocol` crate no longer decodes.

use bytes::Bytes;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_auth::AuthorizerError;
use weir_auth::acl::{
    AccessEntry, AclBinding, AclFilter, Operation, PatternType, Permission, ResourcePattern,
    ResourceType,
};

use super::{Caller, blocking, str_bytes};
use crate::authz::{Alter, Describe};
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

/// Most creations or filters one request may carry: the request frame
/// limit bounds them already; this bounds the work of one request.
const ITEMS_MAX: usize = 10_000;

/// Kafka's resource types, which a filter of type ANY stands for here.
const KAFKA_TYPES: [ResourceType; 4] = [
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::Cluster,
    ResourceType::TransactionalId,
];

/// The message of SECURITY_DISABLED, as Kafka words it.
const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

/// A refusal of one item: a code and its message.
type Refusal = (Code, Option<String>);

fn message(text: &str) -> Option<StrBytes> {
    Some(str_bytes(text))
}

/// Whether the caller may change (`Alter`) or read (`Describe`) the ACLs.
fn gate(caller: &Caller, operation: Operation) -> Option<Refusal> {
    if !caller.acls_enabled() {
        Some((Code::SecurityDisabled, Some(NO_AUTHORIZER.to_owned())))
    } else if !caller.may_cluster(operation) {
        Some((Code::ClusterAuthorizationFailed, None))
    } else {
        None
    }
}

fn code<T>(what: &str, code: i8, from: fn(i8) -> Option<T>) -> Result<T, String> {
    from(code).ok_or_else(|| format!("unknown {what} code {code}"))
}

fn binding(
    c: &kafka_protocol::messages::create_acls_request::AclCreation,
) -> Result<AclBinding, String> {
    let binding = AclBinding {
        pattern: ResourcePattern {
            resource_type: code("resource type", c.resource_type, ResourceType::from_code)?,
            name: c.resource_name.to_string(),
            pattern_type: code(
                "pattern type",
                c.resource_pattern_type,
                PatternType::from_code,
            )?,
        },
        entry: AccessEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: code("operation", c.operation, Operation::from_code)?,
            permission: code("permission", c.permission_type, Permission::from_code)?,
        },
    };
    binding.validate().map_err(|e| e.to_string())?;
    Ok(binding)
}

/// A filter from its wire fields (the same in DescribeAcls and
/// DeleteAcls).
#[allow(clippy::too_many_arguments, reason = "the filter's seven wire fields")]
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: code("resource type", resource_type, ResourceType::from_code)?,
        name: name.map(ToString::to_string),
        pattern_type: code("pattern type", pattern_type, PatternType::from_code)?,
        principal: principal.map(ToString::to_string),
        host: host.map(ToString::to_string),
        operation: code("operation", operation, Operation::from_code)?,
        permission: code("permission", permission, Permission::from_code)?,
    })
}

/// An ANY filter as one filter per Kafka resource type; any other as
/// itself.
fn on_wire(filter: AclFilter) -> Vec<AclFilter> {
    if filter.resource_type != ResourceType::Any {
        return vec![filter];
    }
    KAFKA_TYPES
        .iter()
        .map(|t| AclFilter {
            resource_type: *t,
            ..filter.clone()
        })
        .collect()
}

fn storage_refusal(e: &AuthorizerError) -> Refusal {
    let code = match e {
        AuthorizerError::Disabled => Code::SecurityDisabled,
        AuthorizerError::Invalid(_) | AuthorizerError::TooMany { .. } => Code::InvalidRequest,
        AuthorizerError::Io { .. } | AuthorizerError::Corrupt { .. } => Code::UnknownServerError,
    };
    (code, Some(e.to_string()))
}

pub(crate) async fn create(version: i16, body: Bytes, caller: &Caller) -> Result<Bytes, ConnError> {
    let request: CreateAclsRequest = decode(ApiKey::CreateAcls, version, body)?;
    let n = request.creations.len();
    let mut outcomes: Vec<Result<AclBinding, Refusal>> = if let Some(r) = gate(caller, Alter) {
        vec![Err(r); n]
    } else if n > ITEMS_MAX {
        let r = (
            Code::InvalidRequest,
            Some(format!("{n} creations are over the limit of {ITEMS_MAX}")),
        );
        vec![Err(r); n]
    } else {
        request
            .creations
            .iter()
            .map(|c| binding(c).map_err(|m| (Code::InvalidRequest, Some(m))))
            .collect()
    };
    let valid: Vec<AclBinding> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().cloned())
        .collect();
    if !valid.is_empty() {
        let authorizer = caller.authorizer().clone();
        let stored = blocking(move || authorizer.create(&valid)).await;
        if let Err(e) = stored {
            let refusal = storage_refusal(&e);
            for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *o = Err(refusal.clone());
            }
        }
    }
    let results = outcomes
        .into_iter()
        .map(|o| match o {
            Ok(_) => AclCreationResult::default().with_error_message(None),
            Err((code, text)) => AclCreationResult::default()
                .with_error_code(code.code())
                .with_error_message(text.as_deref().and_then(message)),
        })
        .collect();
    encode(
        ApiKey::CreateAcls,
        version,
        &CreateAclsResponse::default().with_results(results),
    )
}

pub(crate) fn describe(version: i16, body: Bytes, caller: &Caller) -> Result<Bytes, ConnError> {
    let r: DescribeAclsRequest = decode(ApiKey::DescribeAcls, version, body)?;
    let refused = |(code, text): Refusal| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(text.as_deref().and_then(message))
    };
    let response = if let Some(r) = gate(caller, Describe) {
        refused(r)
    } else {
        let parsed = filter(
            r.resource_type_filter,
            r.resource_name_filter.as_ref(),
            r.pattern_type_filter,
            r.principal_filter.as_ref(),
            r.host_filter.as_ref(),
            r.operation,
            r.permission_type,
        );
        match parsed {
            Err(m) => refused((Code::InvalidRequest, Some(m))),
            Ok(f) => {
                let mut found = Vec::new();
                let mut failed = None;
                for f in on_wire(f) {
                    match caller.authorizer().describe(&f) {
                        Ok(bindings) => found.extend(bindings),
                        Err(e) => failed = Some(storage_refusal(&e)),
                    }
                }
                match failed {
                    Some(r) => refused(r),
                    None => DescribeAclsResponse::default()
                        .with_error_message(None)
                        .with_resources(by_resource(found)),
                }
            }
        }
    };
    encode(ApiKey::DescribeAcls, version, &response)
}

/// Bindings grouped by resource pattern, as DescribeAcls answers them.
fn by_resource(mut bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    bindings.sort();
    let mut out: Vec<DescribeAclsResource> = Vec::new();
    let mut last: Option<ResourcePattern> = None;
    for b in bindings {
        if last.as_ref() != Some(&b.pattern) {
            out.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.pattern.resource_type.code())
                    .with_resource_name(str_bytes(&b.pattern.name))
                    .with_pattern_type(b.pattern.pattern_type.code()),
            );
            last = Some(b.pattern.clone());
        }
        let e = &b.entry;
        out.last_mut().expect("just pushed").acls.push(
            AclDescription::default()
                .with_principal(str_bytes(&e.principal))
                .with_host(str_bytes(&e.host))
                .with_operation(e.operation.code())
                .with_permission_type(e.permission.code()),
        );
    }
    out
}

pub(crate) async fn delete(version: i16, body: Bytes, caller: &Caller) -> Result<Bytes, ConnError> {
    let request: DeleteAclsRequest = decode(ApiKey::DeleteAcls, version, body)?;
    let n = request.filters.len();
    // Per request filter: the wire filters it stands for, or its refusal.
    let parsed: Vec<Result<Vec<AclFilter>, Refusal>> = if let Some(r) = gate(caller, Alter) {
        vec![Err(r); n]
    } else if n > ITEMS_MAX {
        let r = (
            Code::InvalidRequest,
            Some(format!("{n} filters are over the limit of {ITEMS_MAX}")),
        );
        vec![Err(r); n]
    } else {
        request
            .filters
            .iter()
            .map(|f| {
                filter(
                    f.resource_type_filter,
                    f.resource_name_filter.as_ref(),
                    f.pattern_type_filter,
                    f.principal_filter.as_ref(),
                    f.host_filter.as_ref(),
                    f.operation,
                    f.permission_type,
                )
                .map(on_wire)
                .map_err(|m| (Code::InvalidRequest, Some(m)))
            })
            .collect()
    };
    let flat: Vec<AclFilter> = parsed.iter().flatten().flatten().cloned().collect();
    let authorizer = caller.authorizer().clone();
    let removed = if flat.is_empty() {
        Ok(Vec::new())
    } else {
        blocking(move || authorizer.delete(&flat)).await
    };
    let mut removed = match removed {
        Ok(removed) => Ok(removed.into_iter()),
        Err(e) => Err(storage_refusal(&e)),
    };
    let results = parsed
        .into_iter()
        .map(|p| {
            let refusal = match (&p, &mut removed) {
                (Err(r), _) => Err(r.clone()),
                (Ok(_), Err(r)) => Err(r.clone()),
                (Ok(filters), Ok(removed)) => Ok(removed
                    .by_ref()
                    .take(filters.len())
                    .flatten()
                    .collect::<Vec<_>>()),
            };
            match refusal {
                Err((code, text)) => DeleteAclsFilterResult::default()
                    .with_error_code(code.code())
                    .with_error_message(text.as_deref().and_then(message)),
                Ok(matched) => DeleteAclsFilterResult::default()
                    .with_error_message(None)
                    .with_matching_acls(matched.into_iter().map(matching).collect()),
            }
        })
        .collect();
    encode(
        ApiKey::DeleteAcls,
        version,
        &DeleteAclsResponse::default().with_filter_results(results),
    )
}

fn matching(b: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_error_message(None)
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(str_bytes(&b.pattern.name))
        .with_pattern_type(b.pattern.pattern_type.code())
        .with_principal(str_bytes(&b.entry.principal))
        .with_host(str_bytes(&b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission.code())
}
