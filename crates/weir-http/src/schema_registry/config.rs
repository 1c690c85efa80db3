//! The registry's compatibility levels and modes, global (`/config`,
//! `/mode`) and per subject (`/config/{subject}`, `/mode/{subject}`): a
//! subject without its own follows the global one, which defaults to
//! BACKWARD and READWRITE. Each route is its own handler so the OpenAPI
//! document lists it; the global and subject forms share the work.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use weir_schemas::{CompatibilityLevel, Mode, SchemaError};

use super::bodies::{
    ErrorBody, LevelAnswer, LevelRequest, LevelSet, ModeAnswer, ModeRequest, SubjectPath,
};
use super::{Answer, answer, body, flag, on_registry};
use crate::AppState;

/// The global level (BACKWARD unless set).
#[utoipa::path(get, path = "/config", tag = "schemas",
    responses((status = 200, body = LevelAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn get_global_config(State(app): State<Arc<AppState>>) -> Answer {
    read_level(&app, None, false).await
}

/// A subject's own level (40408 without one, unless
/// `defaultToGlobal=true`).
#[utoipa::path(get, path = "/config/{subject}", tag = "schemas",
    params(SubjectPath, ("defaultToGlobal" = Option<bool>, Query, description = "the global level when the subject has none")),
    responses((status = 200, body = LevelAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn get_config(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let to_global = flag(&q, "defaultToGlobal")?;
    read_level(&app, Some(subject), to_global).await
}

async fn read_level(app: &AppState, subject: Option<String>, to_global: bool) -> Answer {
    let level = on_registry(app, move |r| match subject {
        None => Ok(r.compatibility(None).unwrap_or_default()),
        Some(s) if to_global => Ok(r.effective_compatibility(&s)),
        Some(s) => r.subject_compatibility(&s),
    })
    .await?;
    Ok(answer(&LevelAnswer {
        compatibility_level: level.as_str().to_owned(),
    }))
}

#[utoipa::path(put, path = "/config", tag = "schemas", request_body = LevelRequest,
    responses((status = 200, body = LevelSet), (status = "4XX", body = ErrorBody)))]
pub(super) async fn put_global_config(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    set_level(&app, None, &headers, &bytes).await
}

#[utoipa::path(put, path = "/config/{subject}", tag = "schemas", request_body = LevelRequest,
    params(SubjectPath),
    responses((status = 200, body = LevelSet), (status = "4XX", body = ErrorBody)))]
pub(super) async fn put_config(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    set_level(&app, Some(subject), &headers, &bytes).await
}

async fn set_level(
    app: &AppState,
    subject: Option<String>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Answer {
    let b: LevelRequest = body(headers, bytes)?;
    let text = b.compatibility.or(b.compatibility_level).ok_or_else(|| {
        SchemaError::InvalidCompatibilityLevel("(none given: set compatibility)".to_owned())
    })?;
    let level: CompatibilityLevel = text.parse()?;
    on_registry(app, move |r| r.set_compatibility(subject.as_deref(), level)).await?;
    Ok(answer(&LevelSet {
        compatibility: level.as_str().to_owned(),
    }))
}

/// Resets the global level to BACKWARD; answers the level it had.
#[utoipa::path(delete, path = "/config", tag = "schemas",
    responses((status = 200, body = LevelAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn delete_global_config(State(app): State<Arc<AppState>>) -> Answer {
    delete_level(&app, None).await
}

/// Removes a subject's own level; answers the level it had.
#[utoipa::path(delete, path = "/config/{subject}", tag = "schemas", params(SubjectPath),
    responses((status = 200, body = LevelAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn delete_config(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
) -> Answer {
    delete_level(&app, Some(subject)).await
}

async fn delete_level(app: &AppState, subject: Option<String>) -> Answer {
    let before = on_registry(app, move |r| {
        if let Some(s) = &subject {
            // Nothing of its own to delete: Confluent's 40408 (or 40401
            // for a subject it never saw).
            r.subject_compatibility(s)?;
        }
        r.delete_compatibility(subject.as_deref())
    })
    .await?;
    Ok(answer(&LevelAnswer {
        compatibility_level: before.as_str().to_owned(),
    }))
}

/// The global mode (READWRITE unless set).
#[utoipa::path(get, path = "/mode", tag = "schemas",
    responses((status = 200, body = ModeAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn get_global_mode(State(app): State<Arc<AppState>>) -> Answer {
    read_mode(&app, None, false).await
}

/// A subject's own mode (40409 without one, unless
/// `defaultToGlobal=true`).
#[utoipa::path(get, path = "/mode/{subject}", tag = "schemas",
    params(SubjectPath, ("defaultToGlobal" = Option<bool>, Query, description = "the global mode when the subject has none")),
    responses((status = 200, body = ModeAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn get_mode(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let to_global = flag(&q, "defaultToGlobal")?;
    read_mode(&app, Some(subject), to_global).await
}

async fn read_mode(app: &AppState, subject: Option<String>, to_global: bool) -> Answer {
    let mode = on_registry(app, move |r| match subject {
        None => Ok(r.mode(None).unwrap_or_default()),
        Some(s) if to_global => Ok(r.effective_mode_of(&s)),
        Some(s) => r.subject_mode(&s),
    })
    .await?;
    Ok(answer(&ModeAnswer {
        mode: mode.as_str().to_owned(),
    }))
}

#[utoipa::path(put, path = "/mode", tag = "schemas", request_body = ModeRequest,
    params(("force" = Option<bool>, Query, description = "IMPORT even though schemas exist")),
    responses((status = 200, body = ModeAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn put_global_mode(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    set_mode(&app, None, &q, &headers, &bytes).await
}

#[utoipa::path(put, path = "/mode/{subject}", tag = "schemas", request_body = ModeRequest,
    params(SubjectPath, ("force" = Option<bool>, Query, description = "IMPORT even though the subject has schemas")),
    responses((status = 200, body = ModeAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn put_mode(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    set_mode(&app, Some(subject), &q, &headers, &bytes).await
}

async fn set_mode(
    app: &AppState,
    subject: Option<String>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Answer {
    let force = flag(q, "force")?;
    let b: ModeRequest = body(headers, bytes)?;
    let text = b
        .mode
        .ok_or_else(|| SchemaError::InvalidMode("(none given: set mode)".to_owned()))?;
    let mode: Mode = text.parse()?;
    on_registry(app, move |r| r.set_mode(subject.as_deref(), mode, force)).await?;
    Ok(answer(&ModeAnswer {
        mode: mode.as_str().to_owned(),
    }))
}

/// Resets the global mode to READWRITE; answers the mode it had.
#[utoipa::path(delete, path = "/mode", tag = "schemas",
    responses((status = 200, body = ModeAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn delete_global_mode(State(app): State<Arc<AppState>>) -> Answer {
    delete_mode_of(&app, None).await
}

/// Removes a subject's own mode; answers the mode it had.
#[utoipa::path(delete, path = "/mode/{subject}", tag = "schemas", params(SubjectPath),
    responses((status = 200, body = ModeAnswer), (status = "4XX", body = ErrorBody)))]
pub(super) async fn delete_mode(
    State(app): State<Arc<AppState>>,
    Path(subject): Path<String>,
) -> Answer {
    delete_mode_of(&app, Some(subject)).await
}

async fn delete_mode_of(app: &AppState, subject: Option<String>) -> Answer {
    let before = on_registry(app, move |r| {
        if let Some(s) = &subject {
            r.subject_mode(s)?;
        }
        r.delete_mode(subject.as_deref())
    })
    .await?;
    Ok(answer(&ModeAnswer {
        mode: before.as_str().to_owned(),
    }))
}
