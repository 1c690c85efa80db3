//! The Confluent Schema Registry REST API at the root of the HTTP
//! listener (`/subjects`, `/schemas`, `/config`, `/mode`,
//! `/compatibility`), over `weir-schemas`' [`Registry`], so Confluent's
//! `SchemaRegistryClient` and serializers work against `weir serve`
//! unchanged. Bodies use Confluent's field names and content types, and
//! errors are Confluent's `{"error_code", "message"}` bodies, not RFC 9457
//! problems, since its clients parse those. Each route's ACL is in
//! `auth.rs`; the handlers here filter lists by what the caller may see.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use weir_auth::acl::{Operation, ResourceType};
use weir_schemas::{
    CompatibilityLevel, ImportIds, Mode, Reference, Registry, SchemaDef, SchemaError, SchemaType,
    SubjectVersion, VersionSpec,
};

use crate::AppState;
use crate::auth::Caller;

/// The media type every answer carries, as Confluent's registry.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request media types taken (besides none at all).
const ACCEPTED: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// The path prefixes the registry's routes live under (for
/// [`confluent_errors`]).
const PREFIXES: [&str; 5] = [
    "/subjects",
    "/schemas",
    "/config",
    "/mode",
    "/compatibility",
];

/// The registry's routes, merged into the API's router.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas", get(schemas))
        .route("/schemas/types", get(types))
        .route("/schemas/ids/{id}", get(by_id))
        .route("/schemas/ids/{id}/schema", get(by_id_schema))
        .route("/schemas/ids/{id}/subjects", get(by_id_subjects))
        .route("/schemas/ids/{id}/versions", get(by_id_versions))
        .route(
            "/config",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(get_mode).put(put_mode).delete(delete_mode))
        .route(
            "/mode/{subject}",
            get(get_mode).put(put_mode).delete(delete_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
}

/// A refusal as Confluent's registry answers it.
#[derive(Debug)]
pub struct SrError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl SrError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn forbidden(caller: &Caller, operation: Operation, what: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            40301,
            format!("{} may not {operation} {what}", caller.principal),
        )
    }
}

impl From<SchemaError> for SrError {
    fn from(e: SchemaError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, e.error_code(), e.to_string())
    }
}

impl IntoResponse for SrError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message});
        (self.status, answer(body)).into_response()
    }
}

/// A JSON answer with the registry's media type.
fn answer(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body.to_string(),
    )
        .into_response()
}

type Answer = Result<Response, SrError>;

/// The registry, or 404 when the server runs none.
fn registry(app: &AppState) -> Result<Arc<Registry>, SrError> {
    app.schema_registry.clone().ok_or_else(|| {
        SrError::new(
            StatusCode::NOT_FOUND,
            404,
            "this server runs no schema registry",
        )
    })
}

/// Runs `f` on the registry off the async workers (writes wait for the
/// log's sync).
async fn on_registry<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&Registry) -> Result<T, SchemaError> + Send + 'static,
) -> Result<T, SrError> {
    let registry = registry(app)?;
    tokio::task::spawn_blocking(move || f(&registry))
        .await
        .map_err(|e| SrError::new(StatusCode::INTERNAL_SERVER_ERROR, 50001, e.to_string()))?
        .map_err(SrError::from)
}

/// A boolean query parameter: `true`/`false` in any case (Python's
/// client sends `True`), absent is `false`.
fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, SrError> {
    match q.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(SrError::new(
            StatusCode::BAD_REQUEST,
            400,
            format!("query parameter {name} must be true or false, not {v:?}"),
        )),
    }
}

fn version_spec(v: &str) -> Result<VersionSpec, SrError> {
    v.parse().map_err(SrError::from)
}

fn schema_id(id: &str) -> Result<i32, SrError> {
    id.parse().map_err(|_| {
        SrError::from(SchemaError::SchemaNotFound(format!(
            "with id {id:?} (not a number)"
        )))
    })
}

/// Whether the caller (absent: no guard ran, an in-process caller) may
/// do `operation` on `subject`.
fn allows(caller: Option<&Extension<Caller>>, operation: Operation, subject: &str) -> bool {
    caller.is_none_or(|c| c.allows(operation, ResourceType::SchemaSubject, subject))
}

/// A schema as clients post it. Unknown fields (`metadata`, `ruleSet` of
/// newer clients) are taken and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    id: Option<i32>,
    version: Option<i32>,
}

/// A JSON body of a registry request: its media type one of [`ACCEPTED`]
/// (or none), its JSON shaped as `T`.
fn body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, SrError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !ACCEPTED.iter().any(|a| a.eq_ignore_ascii_case(essence)) {
            return Err(SrError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                415,
                format!("content type {ct:?} is not one of {}", ACCEPTED.join(", ")),
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| {
        SrError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
            format!("unreadable request body: {e}"),
        )
    })
}

fn schema_def(b: SchemaBody) -> Result<(SchemaDef, ImportIds), SrError> {
    let schema = b
        .schema
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| SchemaError::InvalidSchema("the request names no schema".to_owned()))?;
    let schema_type = match b.schema_type {
        None => SchemaType::Avro,
        Some(t) => t.parse()?,
    };
    let def = SchemaDef::new(schema_type, schema).with_references(b.references.unwrap_or_default());
    Ok((
        def,
        ImportIds {
            id: b.id.filter(|id| *id >= 0),
            version: b.version.filter(|v| *v >= 0),
        },
    ))
}

/// A schema's fields as Confluent writes them: `schemaType` left out for
/// AVRO, `references` left out when there are none.
fn schema_fields(def: &SchemaDef, out: &mut serde_json::Map<String, Value>) {
    if def.schema_type != SchemaType::Avro {
        out.insert("schemaType".into(), json!(def.schema_type.as_str()));
    }
    if !def.references.is_empty() {
        out.insert("references".into(), json!(def.references));
    }
    out.insert("schema".into(), json!(def.schema));
}

fn subject_version_json(v: &SubjectVersion) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), json!(v.subject));
    out.insert("version".into(), json!(v.version));
    out.insert("id".into(), json!(v.id));
    schema_fields(&v.schema, &mut out);
    if v.deleted {
        out.insert("deleted".into(), json!(true));
    }
    Value::Object(out)
}

async fn subjects(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let prefix = q.get("subjectPrefix").cloned().unwrap_or_default();
    let all = on_registry(&app, move |r| Ok(r.subjects(&prefix, deleted))).await?;
    let visible: Vec<String> = all
        .into_iter()
        .filter(|s| allows(caller.as_ref(), Operation::Describe, s))
        .collect();
    Ok(answer(json!(visible)))
}

async fn versions(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let versions = on_registry(&app, move |r| r.versions(&subject, deleted)).await?;
    Ok(answer(json!(versions)))
}

async fn register(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let (def, import) = schema_def(body(&headers, &bytes)?)?;
    let got = on_registry(&app, move |r| r.register(&subject, &def, import)).await?;
    Ok(answer(json!({"id": got.id, "version": got.version})))
}

async fn lookup(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let (def, _) = schema_def(body(&headers, &bytes)?)?;
    let found = on_registry(&app, move |r| r.lookup(&subject, &def, deleted)).await?;
    Ok(answer(subject_version_json(&found)))
}

async fn version(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let spec = version_spec(&version)?;
    let found = on_registry(&app, move |r| r.subject_version(&subject, spec, deleted)).await?;
    Ok(answer(subject_version_json(&found)))
}

async fn version_schema(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let spec = version_spec(&version)?;
    let found = on_registry(&app, move |r| r.subject_version(&subject, spec, deleted)).await?;
    Ok(raw_schema(found.schema.schema))
}

/// A schema's text alone, as `/schema` routes answer it.
fn raw_schema(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}

async fn referenced_by(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let spec = version_spec(&version)?;
    let ids = on_registry(&app, move |r| r.referenced_by(&subject, spec)).await?;
    Ok(answer(json!(ids)))
}

async fn delete_subject(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let permanent = flag(&q, "permanent")?;
    let gone = on_registry(&app, move |r| r.delete_subject(&subject, permanent)).await?;
    Ok(answer(json!(gone)))
}

async fn delete_version(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let permanent = flag(&q, "permanent")?;
    let spec = version_spec(&version)?;
    let gone = on_registry(&app, move |r| r.delete_version(&subject, spec, permanent)).await?;
    Ok(answer(json!(gone)))
}

async fn schemas(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let latest_only = flag(&q, "latestOnly")?;
    let prefix = q.get("subjectPrefix").cloned().unwrap_or_default();
    let number = |name: &str, default: usize| -> Result<usize, SrError> {
        q.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| {
                SrError::new(
                    StatusCode::BAD_REQUEST,
                    400,
                    format!("{name} must be a number"),
                )
            })
        })
    };
    let offset = number("offset", 0)?;
    // Confluent's -1 (or absent) means no limit; ours is the page maximum.
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("-1") => app.limits.page_max,
        Some(_) => number("limit", 0)?.min(app.limits.page_max),
    };
    let all = on_registry(&app, move |r| Ok(r.schemas(&prefix, deleted, latest_only))).await?;
    // Schema texts are what a version read (READ) shows.
    let out: Vec<Value> = all
        .iter()
        .filter(|v| allows(caller.as_ref(), Operation::Read, &v.subject))
        .skip(offset)
        .take(limit)
        .map(subject_version_json)
        .collect();
    Ok(answer(json!(out)))
}

async fn types() -> Answer {
    let names: Vec<&str> = SchemaType::ALL.iter().map(|t| t.as_str()).collect();
    Ok(answer(json!(names)))
}

/// Schema `id`, if the caller may read one of the subjects using it
/// (soft-deleted ones too: a deserializer reads old data).
async fn readable_schema(
    app: &AppState,
    caller: Option<&Extension<Caller>>,
    id: &str,
) -> Result<SchemaDef, SrError> {
    let id = schema_id(id)?;
    let (def, subjects) = on_registry(app, move |r| {
        let def = r.schema_by_id(id)?;
        Ok((def, r.subjects_by_id(id, true)?))
    })
    .await?;
    if let Some(c) = caller
        && !subjects.iter().any(|s| allows(Some(c), Operation::Read, s))
    {
        return Err(SrError::forbidden(
            c,
            Operation::Read,
            &format!("a subject of schema {id}"),
        ));
    }
    Ok(def)
}

async fn by_id(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Answer {
    let def = readable_schema(&app, caller.as_ref(), &id).await?;
    let mut out = serde_json::Map::new();
    schema_fields(&def, &mut out);
    Ok(answer(Value::Object(out)))
}

async fn by_id_schema(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Answer {
    let def = readable_schema(&app, caller.as_ref(), &id).await?;
    Ok(raw_schema(def.schema))
}

async fn by_id_subjects(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let id = schema_id(&id)?;
    let all = on_registry(&app, move |r| r.subjects_by_id(id, deleted)).await?;
    let visible: Vec<String> = all
        .into_iter()
        .filter(|s| allows(caller.as_ref(), Operation::Describe, s))
        .collect();
    if visible.is_empty() {
        return Err(SchemaError::SchemaNotFound(format!("with id {id}")).into());
    }
    Ok(answer(json!(visible)))
}

async fn by_id_versions(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let id = schema_id(&id)?;
    let all = on_registry(&app, move |r| r.versions_by_id(id, deleted)).await?;
    let visible: Vec<Value> = all
        .into_iter()
        .filter(|(s, _)| allows(caller.as_ref(), Operation::Describe, s))
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    if visible.is_empty() {
        return Err(SchemaError::SchemaNotFound(format!("with id {id}")).into());
    }
    Ok(answer(json!(visible)))
}

/// `/config` or `/config/{subject}`'s subject.
fn subject_of(params: &HashMap<String, String>) -> Option<String> {
    params.get("subject").cloned()
}

async fn get_config(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let to_global = flag(&q, "defaultToGlobal")?;
    let subject = subject_of(&params);
    let level = on_registry(&app, move |r| match subject {
        None => Ok(r.compatibility(None).unwrap_or_default()),
        Some(s) if to_global => Ok(r.effective_compatibility(&s)),
        Some(s) => r.subject_compatibility(&s),
    })
    .await?;
    Ok(answer(json!({"compatibilityLevel": level.as_str()})))
}

#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

async fn put_config(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let b: ConfigBody = body(&headers, &bytes)?;
    let text = b.compatibility.or(b.compatibility_level).ok_or_else(|| {
        SchemaError::InvalidCompatibilityLevel("(none given: set compatibility)".to_owned())
    })?;
    let level: CompatibilityLevel = text.parse()?;
    let subject = subject_of(&params);
    on_registry(&app, move |r| {
        r.set_compatibility(subject.as_deref(), level)
    })
    .await?;
    Ok(answer(json!({"compatibility": level.as_str()})))
}

async fn delete_config(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
) -> Answer {
    let subject = subject_of(&params);
    let before = on_registry(&app, move |r| {
        if let Some(s) = &subject {
            // Nothing of its own to delete: Confluent's 40408 (or 40401
            // for a subject it never saw).
            r.subject_compatibility(s)?;
        }
        r.delete_compatibility(subject.as_deref())
    })
    .await?;
    Ok(answer(json!({"compatibilityLevel": before.as_str()})))
}

async fn get_mode(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let to_global = flag(&q, "defaultToGlobal")?;
    let subject = subject_of(&params);
    let mode = on_registry(&app, move |r| match subject {
        None => Ok(r.mode(None).unwrap_or_default()),
        Some(s) if to_global => Ok(r.effective_mode_of(&s)),
        Some(s) => r.subject_mode(&s),
    })
    .await?;
    Ok(answer(json!({"mode": mode.as_str()})))
}

#[derive(Debug, Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

async fn put_mode(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let force = flag(&q, "force")?;
    let b: ModeBody = body(&headers, &bytes)?;
    let text = b
        .mode
        .ok_or_else(|| SchemaError::InvalidMode("(none given: set mode)".to_owned()))?;
    let mode: Mode = text.parse()?;
    let subject = subject_of(&params);
    on_registry(&app, move |r| r.set_mode(subject.as_deref(), mode, force)).await?;
    Ok(answer(json!({"mode": mode.as_str()})))
}

async fn delete_mode(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
) -> Answer {
    let subject = subject_of(&params);
    let before = on_registry(&app, move |r| {
        if let Some(s) = &subject {
            r.subject_mode(s)?;
        }
        r.delete_mode(subject.as_deref())
    })
    .await?;
    Ok(answer(json!({"mode": before.as_str()})))
}

async fn compatibility(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let verbose = flag(&q, "verbose")?;
    let subject = subject_of(&params).unwrap_or_default();
    let spec = params.get("version").map(|v| version_spec(v)).transpose()?;
    let (def, _) = schema_def(body(&headers, &bytes)?)?;
    let report = on_registry(&app, move |r| r.test_compatibility(&subject, &def, spec)).await?;
    let mut out = json!({"is_compatible": report.is_compatible});
    if verbose {
        out["messages"] = json!(report.messages);
    }
    Ok(answer(out))
}

/// Rewrites the guard's and the router's RFC 9457 problems on registry
/// paths (401, 403, 404 of an unknown route, 413, 415) into Confluent's
/// error body, whose clients read `error_code` and `message`: the code is
/// the status followed by 01 for 401 and 403 (Confluent's 40101, 40301),
/// else the status.
pub(crate) async fn confluent_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let ours = PREFIXES
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !ours || !is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = problem
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or_else(|| parts.status.canonical_reason().unwrap_or("error"))
        .to_owned();
    let status = parts.status.as_u16();
    let code = match status {
        401 | 403 => u32::from(status) * 100 + 1,
        s => u32::from(s),
    };
    let mut out = SrError::new(parts.status, code, message).into_response();
    // Keep the guard's challenge (WWW-Authenticate) and the like.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
