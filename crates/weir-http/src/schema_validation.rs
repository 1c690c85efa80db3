//! Validation on write of stream categories over HTTP: list the
//! categories whose appends are checked against the schema registry,
//! and turn a category's validation on or off. Appends to a validated
//! category whose events do not match their subject's schema answer 422
//! (`schema_validation`, with the event's index and id); topics opt in
//! through their configs (`confluent.value.schema.validation`) instead.

use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use weir_api::{CategoryValidation, ValidatedCategories};
use weir_auth::acl::ResourceType;

use crate::auth::{Caller, may_describe};
use crate::problem::ApiError;
use crate::{AppState, ProblemMediaType, blocking};

/// The routes, merged into the API's router.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/schema-validation/categories", get(list))
        .route(
            "/v1/schema-validation/categories/{category}",
            get(show).put(enable).delete(disable),
        )
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list, show, enable, disable),
    components(schemas(weir_api::Problem)),
    modifiers(&ProblemMediaType)
)]
pub(crate) struct SchemaValidationApi;

fn registry(app: &AppState) -> Result<Arc<weir_schemas::Registry>, ApiError> {
    app.schema_registry.clone().ok_or_else(|| {
        ApiError::not_found("no_schema_registry", "this server runs no schema registry")
    })
}

fn refused(e: weir_schemas::SchemaError) -> ApiError {
    use axum::http::StatusCode;
    match e.http_status() {
        422 => ApiError::new(StatusCode::BAD_REQUEST, "invalid_category", e.to_string()),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_error",
            e.to_string(),
        ),
    }
}

/// The categories whose appends are validated (those the caller may
/// describe).
#[utoipa::path(get, path = "/v1/schema-validation/categories", tag = "schemas",
    responses((status = 200, body = ValidatedCategories), (status = "4XX", body = weir_api::Problem)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<ValidatedCategories>, ApiError> {
    let registry = registry(&app)?;
    let caller = caller.as_ref().map(|Extension(c)| c);
    let categories = registry
        .validated_categories()
        .into_iter()
        .filter(|c| may_describe(caller, ResourceType::Category, c))
        .collect();
    Ok(Json(ValidatedCategories { categories }))
}

/// Whether a category's appends are validated.
#[utoipa::path(get, path = "/v1/schema-validation/categories/{category}", tag = "schemas",
    params(("category" = String, Path, example = "order")),
    responses((status = 200, body = CategoryValidation), (status = "4XX", body = weir_api::Problem)))]
pub async fn show(
    State(app): State<Arc<AppState>>,
    Path(category): Path<String>,
) -> Result<Json<CategoryValidation>, ApiError> {
    let enabled = registry(&app)?.validated_categories().contains(&category);
    Ok(Json(CategoryValidation { category, enabled }))
}

async fn set(
    app: &AppState,
    category: String,
    enabled: bool,
) -> Result<Json<CategoryValidation>, ApiError> {
    let registry = registry(app)?;
    let name = category.clone();
    blocking(move || {
        registry
            .set_category_validation(&name, enabled)
            .map_err(refused)
    })
    .await?;
    Ok(Json(CategoryValidation { category, enabled }))
}

/// Turns validation on: from now on every event appended to a stream of
/// the category must match the schema of subject `<category>-<type>`.
#[utoipa::path(put, path = "/v1/schema-validation/categories/{category}", tag = "schemas",
    params(("category" = String, Path, example = "order")),
    responses((status = 200, body = CategoryValidation), (status = "4XX", body = weir_api::Problem)))]
pub async fn enable(
    State(app): State<Arc<AppState>>,
    Path(category): Path<String>,
) -> Result<Json<CategoryValidation>, ApiError> {
    set(&app, category, true).await
}

/// Turns validation off.
#[utoipa::path(delete, path = "/v1/schema-validation/categories/{category}", tag = "schemas",
    params(("category" = String, Path, example = "order")),
    responses((status = 200, body = CategoryValidation), (status = "4XX", body = weir_api::Problem)))]
pub async fn disable(
    State(app): State<Arc<AppState>>,
    Path(category): Path<String>,
) -> Result<Json<CategoryValidation>, ApiError> {
    set(&app, category, false).await
}
