//! `weir-console`: Weir's web console, served by `weir serve` itself at
//! `/console` on the HTTP listener. Pages are HTML rendered on the server
//! (maud templates, which escape every value they interpolate) from the
//! same handlers the HTTP API serves (`weir_http::handlers`), so the
//! console shows exactly what `/v1` shows, under the same limits; a
//! little embedded JavaScript refreshes parts of a page and tails live
//! events over the API's Server-Sent Events. Charts are inline SVG drawn
//! here. No asset comes from outside the binary.
//!
//! ```no_run
//! # async fn serve(app: std::sync::Arc<weir_http::AppState>, listener: tokio::net::TcpListener) {
//! let console = weir_console::router(app.clone(), weir_console::ConsoleConfig::default());
//! weir_http::run_with(listener, app, console, std::future::pending()).await.unwrap();
//! # }
//! ```

mod chart;
mod events;
mod groups;
mod layout;
mod ops;
mod samples;
mod text;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use weir_http::AppState;
use weir_http::problem::ApiError;

pub use samples::Samples;

/// Limits and intervals of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// How often group lag and topic end offsets are sampled for the
    /// charts and the throughput figures, in ms.
    pub sample_ms: u64,
    /// Most samples kept per group or topic (the chart's width).
    pub samples_max: usize,
    /// Most groups and most topics sampled; the rest show no history.
    pub sampled_max: usize,
    /// Most topics or groups listed on one page.
    pub list_page_max: usize,
    /// Most records or events shown on one page.
    pub records_page_max: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            sample_ms: 5_000,
            samples_max: 120,
            sampled_max: 256,
            list_page_max: 100,
            records_page_max: 50,
        }
    }
}

/// What the console's pages share.
#[derive(Debug)]
pub(crate) struct Console {
    pub app: Arc<AppState>,
    pub config: ConsoleConfig,
    pub samples: Samples,
}

pub(crate) type Shared = Arc<Console>;

/// The console's routes, under `/console`, over the API's state. Starts
/// the sampler task (it ends when the router is dropped), so call it
/// within a tokio runtime.
pub fn router(app: Arc<AppState>, config: ConsoleConfig) -> Router {
    let console = Arc::new(Console {
        samples: Samples::new(config.samples_max, config.sampled_max),
        app,
        config,
    });
    samples::spawn_sampler(Arc::downgrade(&console));
    let pages = Router::new()
        .route("/", get(topics::overview))
        .route("/topics", get(topics::list))
        .route("/topics/{topic}", get(topics::show))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(topics::records),
        )
        .route("/groups", get(groups::list))
        .route("/groups/{group}", get(groups::show))
        .route("/events", get(events::all))
        .route("/streams/{stream}", get(events::stream))
        .route("/categories/{category}", get(events::category))
        .route("/types/{event_type}", get(events::by_type))
        .route("/correlations/{id}", get(ops::correlation))
        .route("/dlq", get(ops::dead_letter_topics))
        .route(
            "/dlq/{topic}/partitions/{partition}",
            get(ops::dead_letters),
        )
        .route("/dlq/{topic}/replay", post(ops::replay))
        .route("/sagas", get(ops::sagas))
        .route("/sagas/{id}", get(ops::saga))
        .route("/alerts", get(ops::alerts))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(not_found)
        .with_state(console);
    Router::new()
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .nest("/console", pages)
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    PageError::new(StatusCode::NOT_FOUND, "no such page").into_response()
}

/// A page's failure, shown as a page with the API's problem text.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    detail: String,
}

impl PageError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status,
            detail: e.detail,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = layout::page(
            "Error",
            layout::Nav::None,
            maud::html! {
                h1 { "Error " (self.status.as_u16()) }
                p.error { (self.detail) }
            },
        );
        (self.status, body).into_response()
    }
}

pub(crate) type Page = Result<Markup, PageError>;

/// How long a page waits for one sample before showing what it has.
pub(crate) const SAMPLE_WAIT: Duration = Duration::from_secs(2);
