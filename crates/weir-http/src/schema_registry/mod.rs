//! The Confluent Schema Registry REST API at the root of the HTTP
//! listener (`/subjects`, `/schemas`, `/config`, `/mode`,
//! `/compatibility`), over `weir-schemas`' [`Registry`], so Confluent's
//! `SchemaRegistryClient` and serializers work against `weir serve`
//! unchanged. Bodies use Confluent's field names and content types
//! (`bodies.rs`, the types the OpenAPI document shows under the tag
//! `schemas`), and errors are Confluent's `{"error_code", "message"}`
//! bodies, not RFC 9457 problems, since its clients parse those. The
//! subject and schema routes are here, levels and modes in `config.rs`.
//! Each route's ACL is in `auth.rs`; the handlers here filter lists by
//! what the caller may see.

mod bodies;
mod config;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use utoipa::OpenApi;
use weir_auth::acl::{Operation, ResourceType};
use weir_schemas::{ImportIds, Registry, SchemaDef, SchemaError, SchemaType, VersionSpec};

use bodies::{
    CompatibilityAnswer, ErrorBody, IdPath, LevelAnswer, LevelRequest, LevelSet, ModeAnswer,
    ModeRequest, ReferenceBody, Registered, SchemaAnswer, SchemaRequest, SubjectAndVersion,
    SubjectPath, SubjectVersionPath, VersionAnswer,
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
            get(config::get_global_config)
                .put(config::put_global_config)
                .delete(config::delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(config::get_config)
                .put(config::put_config)
                .delete(config::delete_config),
        )
        .route(
            "/mode",
            get(config::get_global_mode)
                .put(config::put_global_mode)
                .delete(config::delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(config::get_mode)
                .put(config::put_mode)
                .delete(config::delete_mode),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_with),
        )
}

/// The registry's part of the OpenAPI document (tag `schemas`).
#[derive(OpenApi)]
#[openapi(
    paths(
        subjects,
        versions,
        register,
        lookup,
        delete_subject,
        version,
        delete_version,
        version_schema,
        referenced_by,
        schemas,
        types,
        by_id,
        by_id_schema,
        by_id_subjects,
        by_id_versions,
        compatibility,
        compatibility_with,
        config::get_global_config,
        config::put_global_config,
        config::delete_global_config,
        config::get_config,
        config::put_config,
        config::delete_config,
        config::get_global_mode,
        config::put_global_mode,
        config::delete_global_mode,
        config::get_mode,
        config::put_mode,
        config::delete_mode,
    ),
    components(schemas(
        ErrorBody,
        ReferenceBody,
        SchemaRequest,
        SchemaAnswer,
        VersionAnswer,
        Registered,
        SubjectAndVersion,
        CompatibilityAnswer,
        LevelAnswer,
        LevelRequest,
        LevelSet,
        ModeRequest,
        ModeAnswer,
    )),
    tags((name = "schemas", description = "Confluent's Schema Registry REST API, at the root of the HTTP listener")),
    modifiers(&RegistryMediaType)
)]
pub(crate) struct SchemaRegistryApi;

/// The registry's requests and answers carry Confluent's media type; the
/// annotations name only body types (which utoipa files under JSON, or
/// plain text for a number), so this gives every operation tagged
/// `schemas` that media type instead.
struct RegistryMediaType;

/// The media types utoipa files bodies under: JSON, plain text for a
/// number.
const GENERIC_MEDIA: [&str; 2] = ["application/json", "text/plain"];

impl utoipa::Modify for RegistryMediaType {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for op in crate::operations_mut(api) {
            let ours = op
                .tags
                .as_ref()
                .is_some_and(|t| t.iter().any(|t| t == "schemas"));
            if !ours {
                continue;
            }
            for generic in GENERIC_MEDIA {
                if let Some(body) = &mut op.request_body
                    && let Some(c) = body.content.remove(generic)
                {
                    body.content.insert(CONTENT_TYPE.to_owned(), c);
                }
                for response in op.responses.responses.values_mut() {
                    if let RefOr::T(response) = response
                        && let Some(c) = response.content.shift_remove(generic)
                    {
                        response.content.insert(CONTENT_TYPE.to_owned(), c);
                    }
                }
            }
        }
    }
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
        let body = ErrorBody {
            error_code: self.code,
            message: self.message,
        };
        (self.status, answer(&body)).into_response()
    }
}

/// A JSON answer with the registry's media type.
fn answer(body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).expect("registry answers serialize");
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
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

fn schema_def(b: SchemaRequest) -> Result<(SchemaDef, ImportIds), SrError> {
    let schema = b
        .schema
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| SchemaError::InvalidSchema("the request names no schema".to_owned()))?;
    let schema_type = match b.schema_type {
        None => SchemaType::Avro,
        Some(t) => t.parse()?,
    };
    let references = b.references.unwrap_or_default();
    // A Protobuf descriptor (what Confluent's serializers send) is kept
    // as its `.proto` text.
    let def = weir_schemas::text_form(
        SchemaDef::new(schema_type, schema)
            .with_references(references.into_iter().map(Into::into).collect()),
    );
    Ok((
        def,
        ImportIds {
            id: b.id.filter(|id| *id >= 0),
            version: b.version.filter(|v| *v >= 0),
        },
    ))
}

#[utoipa::path(get, path = "/subjects", tag = "schemas",
    params(("subjectPrefix" = Option<String>, Query, description = "only subjects starting with this"),
        ("deleted" = Option<bool>, Query, description = "include soft-deleted subjects")),
    responses((status = 200, body = Vec<String>), (status = "4XX", body = ErrorBody)))]
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
    Ok(answer(&visible))
}

#[utoipa::path(get, path = "/subjects/{subject}/versions", tag = "schemas",
    params(SubjectPath, ("deleted" = Option<bool>, Query, description = "include soft-deleted versions")),
    responses((status = 200, body = Vec<i32>), (status = "4XX", body = ErrorBody)))]
async fn versions(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let versions = on_registry(&app, move |r| r.versions(&subject, deleted)).await?;
    Ok(answer(&versions))
}

/// Registers a schema under a subject (its existing version and id when
/// the subject has it already); 409 when the subject's level refuses it.
#[utoipa::path(post, path = "/subjects/{subject}/versions", tag = "schemas",
    params(SubjectPath, ("normalize" = Option<bool>, Query, description = "taken, not applied")),
    request_body = SchemaRequest,
    responses((status = 200, body = Registered), (status = "4XX", body = ErrorBody)))]
async fn register(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let (def, import) = schema_def(body(&headers, &bytes)?)?;
    let got = on_registry(&app, move |r| r.register(&subject, &def, import)).await?;
    Ok(answer(&Registered {
        id: got.id,
        version: got.version,
    }))
}

/// Finds the version of a subject holding a schema.
#[utoipa::path(post, path = "/subjects/{subject}", tag = "schemas",
    params(SubjectPath, ("deleted" = Option<bool>, Query, description = "look among soft-deleted versions too")),
    request_body = SchemaRequest,
    responses((status = 200, body = VersionAnswer), (status = "4XX", body = ErrorBody)))]
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
    Ok(answer(&VersionAnswer::from(&found)))
}

#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}", tag = "schemas",
    params(SubjectVersionPath, ("deleted" = Option<bool>, Query, description = "a soft-deleted version too"),
        ("format" = Option<String>, Query, description = "`serialized`: a Protobuf schema as its base64-encoded descriptor")),
    responses((status = 200, body = VersionAnswer), (status = "4XX", body = ErrorBody)))]
async fn version(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let spec = version_spec(&version)?;
    let serialized = wants_serialized(&q);
    let found = on_registry(&app, move |r| {
        let mut found = r.subject_version(&subject, spec, deleted)?;
        if serialized && found.schema.schema_type == SchemaType::Protobuf {
            found.schema.schema = r.serialized(&found.schema)?;
        }
        Ok(found)
    })
    .await?;
    Ok(answer(&VersionAnswer::from(&found)))
}

/// Whether a read asks for Confluent's `serialized` format (a Protobuf
/// schema's descriptor instead of its text; other types have one form).
fn wants_serialized(q: &HashMap<String, String>) -> bool {
    q.get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("serialized"))
}

/// A version's schema text alone (JSON for Avro and JSON Schema).
#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}/schema", tag = "schemas",
    params(SubjectVersionPath, ("deleted" = Option<bool>, Query)),
    responses((status = 200, body = serde_json::Value), (status = "4XX", body = ErrorBody)))]
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

/// The ids of the schemas referencing a version.
#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}/referencedby", tag = "schemas",
    params(SubjectVersionPath),
    responses((status = 200, body = Vec<i32>), (status = "4XX", body = ErrorBody)))]
async fn referenced_by(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let spec = version_spec(&version)?;
    let ids = on_registry(&app, move |r| r.referenced_by(&subject, spec)).await?;
    Ok(answer(&ids))
}

/// Deletes every version of a subject: soft, or (after that) for good.
#[utoipa::path(delete, path = "/subjects/{subject}", tag = "schemas",
    params(SubjectPath, ("permanent" = Option<bool>, Query, description = "delete for good (after a soft delete)")),
    responses((status = 200, body = Vec<i32>, description = "the versions deleted"),
        (status = "4XX", body = ErrorBody)))]
async fn delete_subject(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let permanent = flag(&q, "permanent")?;
    let gone = on_registry(&app, move |r| r.delete_subject(&subject, permanent)).await?;
    Ok(answer(&gone))
}

/// Deletes one version: soft, or (after that) for good.
#[utoipa::path(delete, path = "/subjects/{subject}/versions/{version}", tag = "schemas",
    params(SubjectVersionPath, ("permanent" = Option<bool>, Query, description = "delete for good (after a soft delete)")),
    responses((status = 200, body = i32, description = "the version deleted"),
        (status = "4XX", body = ErrorBody)))]
async fn delete_version(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let permanent = flag(&q, "permanent")?;
    let spec = version_spec(&version)?;
    let gone = on_registry(&app, move |r| r.delete_version(&subject, spec, permanent)).await?;
    Ok(answer(&gone))
}

/// Every subject version, in subject and version order, a page at most.
#[utoipa::path(get, path = "/schemas", tag = "schemas",
    params(("subjectPrefix" = Option<String>, Query),
        ("deleted" = Option<bool>, Query),
        ("latestOnly" = Option<bool>, Query, description = "only each subject's latest version"),
        ("offset" = Option<usize>, Query),
        ("limit" = Option<i64>, Query, description = "-1 or absent: the server's page limit")),
    responses((status = 200, body = Vec<VersionAnswer>), (status = "4XX", body = ErrorBody)))]
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
    let out: Vec<VersionAnswer> = all
        .iter()
        .filter(|v| allows(caller.as_ref(), Operation::Read, &v.subject))
        .skip(offset)
        .take(limit)
        .map(VersionAnswer::from)
        .collect();
    Ok(answer(&out))
}

#[utoipa::path(get, path = "/schemas/types", tag = "schemas",
    responses((status = 200, body = Vec<String>, example = json!(["AVRO", "JSON", "PROTOBUF"])),
        (status = "4XX", body = ErrorBody)))]
async fn types() -> Answer {
    let names: Vec<&str> = SchemaType::ALL.iter().map(|t| t.as_str()).collect();
    Ok(answer(&names))
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

/// A schema by its global id (what deserializers read).
#[utoipa::path(get, path = "/schemas/ids/{id}", tag = "schemas",
    params(IdPath, ("subject" = Option<String>, Query, description = "taken, not needed"),
        ("format" = Option<String>, Query, description = "`serialized`: a Protobuf schema as its base64-encoded descriptor")),
    responses((status = 200, body = SchemaAnswer), (status = "4XX", body = ErrorBody)))]
async fn by_id(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let mut def = readable_schema(&app, caller.as_ref(), &id).await?;
    if wants_serialized(&q) && def.schema_type == SchemaType::Protobuf {
        let text = def.clone();
        def.schema = on_registry(&app, move |r| r.serialized(&text)).await?;
    }
    Ok(answer(&SchemaAnswer::from(&def)))
}

/// A schema's text alone by id.
#[utoipa::path(get, path = "/schemas/ids/{id}/schema", tag = "schemas",
    params(IdPath),
    responses((status = 200, body = serde_json::Value), (status = "4XX", body = ErrorBody)))]
async fn by_id_schema(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Answer {
    let def = readable_schema(&app, caller.as_ref(), &id).await?;
    Ok(raw_schema(def.schema))
}

/// The subjects with a version using a schema id.
#[utoipa::path(get, path = "/schemas/ids/{id}/subjects", tag = "schemas",
    params(IdPath, ("deleted" = Option<bool>, Query)),
    responses((status = 200, body = Vec<String>), (status = "4XX", body = ErrorBody)))]
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
    Ok(answer(&visible))
}

/// The subject versions using a schema id.
#[utoipa::path(get, path = "/schemas/ids/{id}/versions", tag = "schemas",
    params(IdPath, ("deleted" = Option<bool>, Query)),
    responses((status = 200, body = Vec<SubjectAndVersion>), (status = "4XX", body = ErrorBody)))]
async fn by_id_versions(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let deleted = flag(&q, "deleted")?;
    let id = schema_id(&id)?;
    let all = on_registry(&app, move |r| r.versions_by_id(id, deleted)).await?;
    let visible: Vec<SubjectAndVersion> = all
        .into_iter()
        .filter(|(s, _)| allows(caller.as_ref(), Operation::Describe, s))
        .map(|(subject, version)| SubjectAndVersion { subject, version })
        .collect();
    if visible.is_empty() {
        return Err(SchemaError::SchemaNotFound(format!("with id {id}")).into());
    }
    Ok(answer(&visible))
}

/// Tests a schema against what the subject's level checks (the latest
/// version, or every live one under a TRANSITIVE level).
#[utoipa::path(post, path = "/compatibility/subjects/{subject}/versions", tag = "schemas",
    params(SubjectPath, ("verbose" = Option<bool>, Query, description = "name each breaking change")),
    request_body = SchemaRequest,
    responses((status = 200, body = CompatibilityAnswer), (status = "4XX", body = ErrorBody)))]
async fn compatibility(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    test_compatibility(&app, subject, None, &q, &headers, &bytes).await
}

/// Tests a schema against one version of the subject.
#[utoipa::path(post, path = "/compatibility/subjects/{subject}/versions/{version}", tag = "schemas",
    params(SubjectVersionPath, ("verbose" = Option<bool>, Query, description = "name each breaking change")),
    request_body = SchemaRequest,
    responses((status = 200, body = CompatibilityAnswer), (status = "4XX", body = ErrorBody)))]
async fn compatibility_with(
    State(app): State<Arc<AppState>>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let spec = version_spec(&version)?;
    test_compatibility(&app, subject, Some(spec), &q, &headers, &bytes).await
}

async fn test_compatibility(
    app: &AppState,
    subject: String,
    spec: Option<VersionSpec>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Answer {
    let verbose = flag(q, "verbose")?;
    let (def, _) = schema_def(body(headers, bytes)?)?;
    let report = on_registry(app, move |r| r.test_compatibility(&subject, &def, spec)).await?;
    Ok(answer(&CompatibilityAnswer {
        is_compatible: report.is_compatible,
        messages: verbose.then_some(report.messages),
    }))
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
