//! `/v1/acls`: the server's ACLs over HTTP, the same ones CreateAcls,
//! DescribeAcls and DeleteAcls manage over Kafka (one authorizer). A query
//! string is a filter as Kafka has them: every field optional, `ANY` or
//! absent for everything, `pattern_type=MATCH` for the bindings that
//! apply to a resource name.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use weir_api::{Acl, AclList, AclsDeleted, CreateAcls};
use weir_auth::AuthorizerError;
use weir_auth::acl::{
    AccessEntry, AclBinding, AclFilter, Operation, PatternType, Permission, ResourcePattern,
    ResourceType,
};

use crate::problem::{ApiError, Body};
use crate::{AppState, blocking};

/// The table: the authorizer's errors.
impl From<AuthorizerError> for ApiError {
    fn from(e: AuthorizerError) -> Self {
        let (status, code, kafka) = match &e {
            AuthorizerError::Disabled => (StatusCode::BAD_REQUEST, "security_disabled", Some(54)),
            AuthorizerError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_acl", Some(42)),
            AuthorizerError::TooMany { .. } => (StatusCode::BAD_REQUEST, "too_many_acls", None),
            AuthorizerError::Io { .. } | AuthorizerError::Corrupt { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "storage_error", None)
            }
        };
        let mut out = ApiError::new(status, code, e.to_string());
        out.kafka_error_code = kafka;
        out
    }
}

/// The ACLs a filter selects.
#[utoipa::path(get, path = "/v1/acls", tag = "acls",
    params(
        ("resource_type" = Option<String>, Query, description = "TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, STREAM, CATEGORY, DEAD_LETTER_TOPIC, SAGA, SCHEMA_SUBJECT or ANY"),
        ("name" = Option<String>, Query),
        ("pattern_type" = Option<String>, Query, description = "LITERAL, PREFIXED, MATCH or ANY"),
        ("principal" = Option<String>, Query, example = "User:alice"),
        ("host" = Option<String>, Query),
        ("operation" = Option<String>, Query),
        ("permission" = Option<String>, Query, description = "ALLOW, DENY or ANY")),
    responses((status = 200, body = AclList), (status = "4XX", body = weir_api::Problem)))]
pub async fn describe(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AclList>, ApiError> {
    let filter = filter(&q)?;
    let acls = app.security.authorizer.describe(&filter)?;
    Ok(Json(AclList {
        acls: acls.iter().map(to_api).collect(),
    }))
}

/// Adds ACLs, all or none, durably; they apply to the next request of
/// every connection, HTTP and Kafka.
#[utoipa::path(post, path = "/v1/acls", tag = "acls", request_body = CreateAcls,
    responses((status = 201, body = AclList), (status = "4XX", body = weir_api::Problem)))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Body(req): Body<CreateAcls>,
) -> Result<(StatusCode, Json<AclList>), ApiError> {
    let bindings = req
        .acls
        .iter()
        .map(from_api)
        .collect::<Result<Vec<_>, _>>()?;
    let authorizer = app.security.authorizer.clone();
    let created = bindings.clone();
    blocking(move || authorizer.create(&bindings)).await?;
    Ok((
        StatusCode::CREATED,
        Json(AclList {
            acls: created.iter().map(to_api).collect(),
        }),
    ))
}

/// Removes the ACLs a filter selects. The filter must name something: a
/// query that selects every ACL needs `all=true`, so a bare `DELETE`
/// cannot open or close the whole server by mistake.
#[utoipa::path(delete, path = "/v1/acls", tag = "acls",
    params(
        ("resource_type" = Option<String>, Query),
        ("name" = Option<String>, Query),
        ("pattern_type" = Option<String>, Query),
        ("principal" = Option<String>, Query),
        ("host" = Option<String>, Query),
        ("operation" = Option<String>, Query),
        ("permission" = Option<String>, Query),
        ("all" = Option<bool>, Query, description = "true to delete with a filter that selects every ACL")),
    responses((status = 200, body = AclsDeleted), (status = "4XX", body = weir_api::Problem)))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AclsDeleted>, ApiError> {
    let filter = filter(&q)?;
    if filter == AclFilter::any() && q.get("all").map(String::as_str) != Some("true") {
        return Err(ApiError::bad_request(
            "this filter selects every ACL: add all=true to delete them all",
        ));
    }
    let authorizer = app.security.authorizer.clone();
    let removed = blocking(move || authorizer.delete(std::slice::from_ref(&filter))).await?;
    Ok(Json(AclsDeleted {
        deleted: removed.iter().flatten().map(to_api).collect(),
    }))
}

fn parse<T: FromStr<Err = weir_auth::acl::AclError>>(value: &str) -> Result<T, ApiError> {
    value
        .parse()
        .map_err(|e: weir_auth::acl::AclError| ApiError::bad_request(e.to_string()))
}

fn filter(q: &HashMap<String, String>) -> Result<AclFilter, ApiError> {
    const FIELDS: [&str; 8] = [
        "resource_type",
        "name",
        "pattern_type",
        "principal",
        "host",
        "operation",
        "permission",
        "all",
    ];
    if let Some(unknown) = q.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown filter field {unknown:?} (known: {})",
            FIELDS.join(", ")
        )));
    }
    let mut f = AclFilter::any();
    if let Some(v) = q.get("resource_type") {
        f.resource_type = parse::<ResourceType>(v)?;
    }
    if let Some(v) = q.get("pattern_type") {
        f.pattern_type = parse::<PatternType>(v)?;
    }
    if let Some(v) = q.get("operation") {
        f.operation = parse::<Operation>(v)?;
    }
    if let Some(v) = q.get("permission") {
        f.permission = parse::<Permission>(v)?;
    }
    f.name = q.get("name").cloned();
    f.principal = q.get("principal").cloned();
    f.host = q.get("host").cloned();
    Ok(f)
}

fn from_api(a: &Acl) -> Result<AclBinding, ApiError> {
    let binding = AclBinding {
        pattern: ResourcePattern {
            resource_type: parse(&a.resource_type)?,
            name: a.name.clone(),
            pattern_type: parse(&a.pattern_type)?,
        },
        entry: AccessEntry {
            principal: a.principal.clone(),
            host: a.host.clone(),
            operation: parse(&a.operation)?,
            permission: parse(&a.permission)?,
        },
    };
    binding
        .validate()
        .map_err(|e| ApiError::from(AuthorizerError::from(e)))?;
    Ok(binding)
}

fn to_api(b: &AclBinding) -> Acl {
    Acl {
        resource_type: b.pattern.resource_type.name().to_owned(),
        name: b.pattern.name.clone(),
        pattern_type: b.pattern.pattern_type.name().to_owned(),
        principal: b.entry.principal.clone(),
        host: b.entry.host.clone(),
        operation: b.entry.operation.name().to_owned(),
        permission: b.entry.permission.name().to_owned(),
    }
}
