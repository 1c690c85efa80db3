//! Who calls the HTTP API and what they may do. One middleware, the
//! guard, runs on every route: it authenticates the caller (a bearer
//! token, static or JWT, when the server has them; otherwise the TLS
//! client certificate's principal or `User:ANONYMOUS`) and checks the
//! route's needs against the server's one authorizer, the same ACLs the
//! Kafka listener checks. The route table below is the whole map from
//! HTTP routes to (operation, resource); a route missing from it is
//! refused, so a new route cannot be served unguarded by mistake.
//! Listing routes are open to any authenticated caller and filter their
//! answer to what the caller may describe ([`Caller::allows`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use weir_auth::acl::{Operation, ResourceType};
use weir_auth::bearer::BearerAuth;
use weir_auth::{Authorizer, Principal};

use crate::AppState;
use crate::problem::ApiError;
use crate::tls::Peer;

/// The server's authentication and authorization, shared with the Kafka
/// listener (the authorizer is the same object).
#[derive(Debug, Clone)]
pub struct Security {
    pub authorizer: Arc<Authorizer>,
    pub bearer: Arc<BearerAuth>,
}

impl Default for Security {
    /// Nothing required, everything allowed: a server without security
    /// configured.
    fn default() -> Self {
        Self {
            authorizer: Arc::new(Authorizer::disabled()),
            bearer: Arc::new(BearerAuth::default()),
        }
    }
}

/// Who is calling and from where; the guard puts it in the request's
/// extensions for the handlers that filter what they list.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub host: IpAddr,
    authorizer: Arc<Authorizer>,
}

impl Caller {
    /// Whether the caller may do `operation` on the resource; a refusal
    /// is not audited (for filtering, or one of two ways to be allowed).
    pub fn allows(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        self.authorizer
            .allows(&self.principal, self.host, operation, resource_type, name)
    }

    /// Whether the caller may do `operation` on the resource, or the 403
    /// problem naming what was refused (audited).
    pub fn check(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), ApiError> {
        if self
            .authorizer
            .authorize(&self.principal, self.host, operation, resource_type, name)
        {
            Ok(())
        } else {
            Err(forbidden(&self.principal, operation, resource_type, name))
        }
    }
}

/// Whether `caller` (absent for in-process callers such as the console,
/// which is guarded as a whole) may describe the resource: what listing
/// routes keep.
pub(crate) fn may_describe(
    caller: Option<&Caller>,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    caller.is_none_or(|c| c.allows(Operation::Describe, resource_type, name))
}

/// The 403 problem: the error code names the resource type as Kafka's
/// errors do (`topic_authorization_failed`), with the Kafka code where
/// Kafka has one.
fn forbidden(
    who: &Principal,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> ApiError {
    let (code, kafka) = match resource_type {
        ResourceType::Topic => ("topic_authorization_failed", Some(29)),
        ResourceType::Group => ("group_authorization_failed", Some(30)),
        ResourceType::Cluster => ("cluster_authorization_failed", Some(31)),
        ResourceType::TransactionalId => ("transactional_id_authorization_failed", Some(53)),
        ResourceType::Stream => ("stream_authorization_failed", None),
        ResourceType::Category => ("category_authorization_failed", None),
        ResourceType::DeadLetterTopic => ("dead_letter_topic_authorization_failed", None),
        ResourceType::Saga => ("saga_authorization_failed", None),
        ResourceType::SchemaSubject => ("schema_subject_authorization_failed", None),
        ResourceType::Any => ("authorization_failed", None),
    };
    let mut e = ApiError::new(
        StatusCode::FORBIDDEN,
        code,
        format!("{who} may not {operation} {resource_type} {name:?}"),
    );
    e.kafka_error_code = kafka;
    e
}

/// The 401 problem, with the challenge RFC 6750 asks for.
fn unauthenticated(detail: String, bad_token: bool) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail).into_response();
    let challenge = if bad_token {
        "Bearer realm=\"weir\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"weir\""
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Where a check takes its resource name from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    /// A path parameter.
    Param(&'static str),
    /// A fixed name: the cluster, or `$all` for reads across streams.
    Fixed(&'static str),
    /// A persistent subscription's target parameter: a stream, `$ce-<c>`
    /// (the category) or `$all`.
    Target,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing, not even authentication (health probes).
    Open,
    /// An authenticated caller; the handler filters or checks the rest.
    Authenticated,
    /// Every listed check must pass.
    All(&'static [(Operation, ResourceType, Name)]),
}

const CLUSTER: Name = Name::Fixed(weir_auth::acl::CLUSTER_NAME);
/// The name cross-stream reads ($all, by type, by correlation) check.
pub const ALL_STREAMS: &str = "$all";
const ALL: Name = Name::Fixed(ALL_STREAMS);

/// The route table: what each (method, route) needs.
fn need(method: &Method, route: &str) -> Option<Need> {
    use Name::Param;
    use Operation::*;
    use ResourceType::*;
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let put = *method == Method::PUT;
    let delete = *method == Method::DELETE;
    const TOPIC: Name = Param("topic");
    const GROUP: Name = Param("group");
    const STREAM: Name = Param("stream");
    const SUBJECT: Name = Param("subject");
    let need = match route {
        "/healthz" | "/readyz" if get => Need::Open,
        "/openapi.json" if get => Need::Authenticated,
        "/metrics" | "/v1/alerts" if get => Need::All(&[(Describe, Cluster, CLUSTER)]),
        "/v1/acls" if get => Need::All(&[(Describe, Cluster, CLUSTER)]),
        "/v1/acls" if post || delete => Need::All(&[(Alter, Cluster, CLUSTER)]),
        // Lists filter; topic creation checks Create on the cluster or the
        // topic named in the body.
        "/v1/topics" | "/v1/groups" | "/v1/dlq" | "/v1/sagas" | "/v1/subscriptions" if get => {
            Need::Authenticated
        }
        "/v1/topics" if post => Need::Authenticated,
        "/v1/topics/{topic}" if get => Need::All(&[(Describe, Topic, TOPIC)]),
        "/v1/topics/{topic}" if delete => Need::All(&[(Delete, Topic, TOPIC)]),
        "/v1/topics/{topic}/configs" if *method == Method::PATCH => {
            Need::All(&[(AlterConfigs, Topic, TOPIC)])
        }
        "/v1/topics/{topic}/records" if post => Need::All(&[(Write, Topic, TOPIC)]),
        "/v1/topics/{topic}/partitions/{partition}/records"
        | "/v1/topics/{topic}/partitions/{partition}/live"
            if get =>
        {
            Need::All(&[(Read, Topic, TOPIC)])
        }
        "/v1/dlq/{topic}/partitions/{partition}/records" if get => {
            Need::All(&[(Read, DeadLetterTopic, TOPIC)])
        }
        // A replay reads the dead letters and writes to their origin.
        "/v1/dlq/{topic}/replay" if post => {
            Need::All(&[(Read, DeadLetterTopic, TOPIC), (Write, Topic, TOPIC)])
        }
        "/v1/dlq/{topic}/purge" if post => Need::All(&[(Delete, DeadLetterTopic, TOPIC)]),
        "/v1/groups/{group}" if get => Need::All(&[(Describe, Group, GROUP)]),
        "/v1/groups/{group}" if delete => Need::All(&[(Delete, Group, GROUP)]),
        "/v1/groups/{group}/offsets/reset" if post => Need::All(&[(Read, Group, GROUP)]),
        "/v1/streams/{stream}" | "/v1/streams/{stream}/snapshot" | "/v1/streams/{stream}/live"
            if get =>
        {
            Need::All(&[(Read, Stream, STREAM)])
        }
        "/v1/streams/{stream}" if post => Need::All(&[(Write, Stream, STREAM)]),
        "/v1/streams/{stream}/snapshot" if put => Need::All(&[(Write, Stream, STREAM)]),
        "/v1/streams/{stream}" if delete => Need::All(&[(Delete, Stream, STREAM)]),
        "/v1/streams/{stream}/metadata" if get => Need::All(&[(Describe, Stream, STREAM)]),
        "/v1/streams/{stream}/metadata" if put => Need::All(&[(Alter, Stream, STREAM)]),
        "/v1/all"
        | "/v1/all/live"
        | "/v1/types/{event_type}"
        | "/v1/correlations/{correlation_id}"
            if get =>
        {
            Need::All(&[(Read, Stream, ALL)])
        }
        "/v1/schema-validation/categories" if get => Need::Authenticated,
        "/v1/schema-validation/categories/{category}" if get => {
            Need::All(&[(Describe, Category, Param("category"))])
        }
        "/v1/schema-validation/categories/{category}" if put || delete => {
            Need::All(&[(Alter, Category, Param("category"))])
        }
        "/v1/categories/{category}" | "/v1/categories/{category}/live" if get => {
            Need::All(&[(Read, Category, Param("category"))])
        }
        "/v1/queues/{group}" if delete => Need::All(&[(Delete, Group, GROUP)]),
        "/v1/queues/{group}/pending" if get => Need::All(&[(Describe, Group, GROUP)]),
        "/v1/queues/{group}/topics/{topic}/claim"
        | "/v1/queues/{group}/topics/{topic}/autoclaim"
        | "/v1/queues/{group}/topics/{topic}/ack"
        | "/v1/queues/{group}/topics/{topic}/nack"
        | "/v1/queues/{group}/topics/{topic}/settle"
        | "/v1/queues/{group}/topics/{topic}/extend"
            if post =>
        {
            Need::All(&[(Read, Group, GROUP), (Read, Topic, TOPIC)])
        }
        "/v1/sagas/{id}" if get => Need::All(&[(Describe, Saga, Param("id"))]),
        "/v1/sagas/{id}/resume" if post => Need::All(&[(Alter, Saga, Param("id"))]),
        "/v1/subscriptions/{target}/{group}" | "/v1/subscriptions/{target}/{group}/info" if get => {
            Need::All(&[(Describe, Group, GROUP)])
        }
        "/v1/subscriptions/{target}/{group}" if put => {
            Need::All(&[(Alter, Group, GROUP), (Read, Stream, Name::Target)])
        }
        "/v1/subscriptions/{target}/{group}" if delete => Need::All(&[(Delete, Group, GROUP)]),
        "/v1/subscriptions/{target}/{group}/read"
        | "/v1/subscriptions/{target}/{group}/ack"
        | "/v1/subscriptions/{target}/{group}/nack"
            if post =>
        {
            Need::All(&[(Read, Group, GROUP), (Read, Stream, Name::Target)])
        }
        // Replaying parked events writes them back for the group.
        "/v1/subscriptions/{target}/{group}/replay-parked" if post => {
            Need::All(&[(Alter, Group, GROUP), (Read, Stream, Name::Target)])
        }
        // The schema registry (Confluent's API at the root). Reads of a
        // subject's schemas need READ on it, its version list DESCRIBE;
        // lists filter by DESCRIBE (`/schemas`, showing texts, by READ);
        // a schema by id needs READ on one of the subjects using it,
        // checked by the handler.
        "/subjects" | "/schemas" | "/schemas/types" if get => Need::Authenticated,
        "/schemas/ids/{id}"
        | "/schemas/ids/{id}/schema"
        | "/schemas/ids/{id}/subjects"
        | "/schemas/ids/{id}/versions"
            if get =>
        {
            Need::Authenticated
        }
        "/subjects/{subject}/versions" if get => Need::All(&[(Describe, SchemaSubject, SUBJECT)]),
        "/subjects/{subject}/versions" if post => Need::All(&[(Write, SchemaSubject, SUBJECT)]),
        "/subjects/{subject}/versions/{version}"
        | "/subjects/{subject}/versions/{version}/schema"
        | "/subjects/{subject}/versions/{version}/referencedby"
            if get =>
        {
            Need::All(&[(Read, SchemaSubject, SUBJECT)])
        }
        // A lookup and a compatibility test read the subject's schemas.
        "/subjects/{subject}"
        | "/compatibility/subjects/{subject}/versions"
        | "/compatibility/subjects/{subject}/versions/{version}"
            if post =>
        {
            Need::All(&[(Read, SchemaSubject, SUBJECT)])
        }
        "/subjects/{subject}" | "/subjects/{subject}/versions/{version}" if delete => {
            Need::All(&[(Delete, SchemaSubject, SUBJECT)])
        }
        "/config" | "/mode" if get => Need::All(&[(DescribeConfigs, Cluster, CLUSTER)]),
        "/config" | "/mode" if put || delete => Need::All(&[(AlterConfigs, Cluster, CLUSTER)]),
        "/config/{subject}" | "/mode/{subject}" if get => {
            Need::All(&[(DescribeConfigs, SchemaSubject, SUBJECT)])
        }
        "/config/{subject}" | "/mode/{subject}" if put || delete => {
            Need::All(&[(AlterConfigs, SchemaSubject, SUBJECT)])
        }
        // The web console is an operator's view of everything: describing
        // the cluster shows it, altering the cluster acts through it.
        r if r == "/console" || r.starts_with("/console/") => {
            if get {
                Need::All(&[(Describe, Cluster, CLUSTER)])
            } else {
                Need::All(&[(Alter, Cluster, CLUSTER)])
            }
        }
        _ => return None,
    };
    Some(need)
}

/// The resource a check names, from the request's path parameters.
fn resource(
    resource_type: ResourceType,
    name: Name,
    params: &RawPathParams,
) -> (ResourceType, String) {
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    };
    match name {
        Name::Param(key) => (resource_type, param(key)),
        Name::Fixed(fixed) => (resource_type, fixed.to_owned()),
        Name::Target => {
            let target = param("target");
            match target.strip_prefix("$ce-") {
                Some(category) => (ResourceType::Category, category.to_owned()),
                None => (resource_type, target),
            }
        }
    }
}

/// The guard: authenticates, then checks the route's needs.
pub(crate) async fn guard(
    State(app): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let Some(need) = need(request.method(), route) else {
        // A method the route does not serve (a client's mistake, e.g.
        // TRACE): 405, as the router would answer.
        let served = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ];
        if served.iter().any(|m| need(m, route).is_some()) {
            tracing::debug!(route, method = %request.method(), "method not served on this route");
            return ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{route} does not serve {}", request.method()),
            )
            .into_response();
        }
        // Fail closed: a route the table does not know is not served.
        tracing::error!(route, method = %request.method(), "no authorization rule for this route");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization_failed",
            format!("no authorization rule covers {} {route}", request.method()),
        )
        .into_response();
    };
    if need == Need::Open {
        return next.run(request).await;
    }
    let security = &app.security;
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| &c.0);
    // A client certificate's principal (an anonymous one is no principal).
    let tls = peer
        .map(|p| p.principal.clone())
        .filter(|p| !p.is_anonymous());
    let host = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.addr.ip());
    let principal = match (bearer, security.bearer.is_configured()) {
        (Some(token), true) => match security.bearer.authenticate(token) {
            Ok(a) => a.principal,
            Err(e) => {
                tracing::info!(target: weir_auth::AUDIT_TARGET, %e, route, "bearer token refused");
                return unauthenticated(format!("the bearer token was refused: {e}"), true);
            }
        },
        // A server with tokens wants one, unless a client certificate
        // already says who this is.
        (None, true) if tls.is_none() => {
            return unauthenticated(
                "this server requires a bearer token (Authorization: Bearer <token>)".into(),
                false,
            );
        }
        _ => tls.unwrap_or_else(Principal::anonymous),
    };
    let caller = Caller {
        principal,
        host,
        authorizer: security.authorizer.clone(),
    };
    if let Need::All(checks) = need {
        for &(operation, resource_type, name) in checks {
            let (resource_type, name) = resource(resource_type, name, &params);
            if let Err(e) = caller.check(operation, resource_type, &name) {
                return e.into_response();
            }
        }
    }
    let admin = is_admin(request.method(), route).then(|| {
        (
            caller.principal.to_string(),
            request.method().clone(),
            route.to_owned(),
        )
    });
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if let Some((principal, method, route)) = admin {
        tracing::info!(
            target: weir_auth::AUDIT_TARGET,
            principal,
            %host,
            %method,
            route,
            status = response.status().as_u16(),
            "admin request"
        );
    }
    response
}

/// Whether a request changes the server rather than its data (an append,
/// a produce, a queue's claims and acknowledgements are data): each one
/// leaves an audit line with its outcome, allowed or not, with or without
/// an authorizer.
fn is_admin(method: &Method, route: &str) -> bool {
    if *method == Method::GET || *method == Method::HEAD {
        return false;
    }
    let data = match route {
        "/v1/topics/{topic}/records" | "/v1/streams/{stream}" => *method == Method::POST,
        "/v1/streams/{stream}/snapshot" => *method == Method::PUT,
        r if r.starts_with("/v1/queues/{group}/topics/") => true,
        "/v1/subscriptions/{target}/{group}/read"
        | "/v1/subscriptions/{target}/{group}/ack"
        | "/v1/subscriptions/{target}/{group}/nack" => true,
        // Schema registry reads posted as bodies.
        "/subjects/{subject}"
        | "/compatibility/subjects/{subject}/versions"
        | "/compatibility/subjects/{subject}/versions/{version}" => *method == Method::POST,
        _ => false,
    };
    !data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_route_has_a_rule() {
        let doc = crate::openapi();
        for (path, item) in &doc.paths.paths {
            let methods = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    assert!(need(&method, path).is_some(), "{method} {path} has no rule");
                }
            }
        }
    }

    #[test]
    fn subscription_targets_name_streams_or_categories() {
        assert_eq!(
            need(&Method::POST, "/v1/subscriptions/{target}/{group}/read"),
            Some(Need::All(&[
                (Operation::Read, ResourceType::Group, Name::Param("group")),
                (Operation::Read, ResourceType::Stream, Name::Target),
            ]))
        );
        assert_eq!(need(&Method::GET, "/healthz"), Some(Need::Open));
        assert_eq!(need(&Method::POST, "/healthz"), None);
        assert_eq!(need(&Method::GET, "/v1/unknown"), None);
    }
}
