//! The event-store pages: all events by global position (`$all`), one
//! stream, one category, one type; newest first by default, a bounded
//! page at a time, with a live tail over the HTTP API's Server-Sent
//! Events where the API has one.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use weir_api::{Event, Events};
use weir_http::handlers;
use weir_http::problem::ApiError;

use crate::layout::{Nav, enc, next_link, num, page};
use crate::topics::newest_query;
use crate::{Page, PageError, Shared, text};

/// What a page lists.
enum Scope {
    All,
    Stream(String),
    Category(String),
    Type(String),
}

/// All events; `?stream=`, `?category=`, `?type=` or `?correlation=`
/// (the search form, which works without script) go to that page.
pub async fn all(
    State(c): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let find = |key: &str| q.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    for (key, path) in [
        ("stream", "streams"),
        ("category", "categories"),
        ("type", "types"),
        ("correlation", "correlations"),
    ] {
        if let Some(name) = find(key) {
            return Ok(Redirect::to(&format!("/console/{path}/{}", enc(name))).into_response());
        }
    }
    Ok(list(c, Scope::All, q).await?.into_response())
}

pub async fn stream(
    State(c): State<Shared>,
    Path(stream): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    list(c, Scope::Stream(stream), q).await
}

pub async fn category(
    State(c): State<Shared>,
    Path(category): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    list(c, Scope::Category(category), q).await
}

pub async fn by_type(
    State(c): State<Shared>,
    Path(event_type): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    list(c, Scope::Type(event_type), q).await
}

async fn read(c: &Shared, scope: &Scope, q: HashMap<String, String>) -> Result<Events, ApiError> {
    let app = State(c.app.clone());
    Ok(match scope {
        Scope::All => handlers::read_all(app, Query(q)).await?.0,
        Scope::Stream(s) => {
            handlers::read_stream(app, Path(s.clone()), Query(q))
                .await?
                .0
        }
        Scope::Category(s) => {
            handlers::read_category(app, Path(s.clone()), Query(q))
                .await?
                .0
        }
        Scope::Type(s) => handlers::read_type(app, Path(s.clone()), Query(q)).await?.0,
    })
}

async fn list(c: Shared, scope: Scope, q: HashMap<String, String>) -> Page {
    // Only the paging parameters pass to the API, the page size bounded.
    let mut query: HashMap<String, String> = q
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "from" | "direction"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    query
        .entry("direction".to_owned())
        .or_insert_with(|| "backward".to_owned());
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(c.config.records_page_max)
        .clamp(1, c.config.records_page_max);
    query.insert("limit".to_owned(), limit.to_string());
    let events = read(&c, &scope, query).await?;
    let (title, base, live) = match &scope {
        Scope::All => (
            "All events".to_owned(),
            "/console/events".to_owned(),
            Some("/v1/all/live".to_owned()),
        ),
        Scope::Stream(s) => (
            format!("Stream {s}"),
            format!("/console/streams/{}", enc(s)),
            Some(format!("/v1/streams/{}/live", enc(s))),
        ),
        Scope::Category(s) => (
            format!("Category {s}"),
            format!("/console/categories/{}", enc(s)),
            Some(format!("/v1/categories/{}/live", enc(s))),
        ),
        Scope::Type(s) => (
            format!("Type {s}"),
            format!("/console/types/{}", enc(s)),
            None,
        ),
    };
    // The tail starts after the newest event the page could show: a
    // stream's live ids are versions, the others' global positions.
    let newest = read(&c, &scope, newest_query()).await?.events;
    let tail_from = newest.first().map_or(0, |e| match scope {
        Scope::Stream(_) => e.version + 1,
        _ => e.position + 1,
    });
    let next = events
        .next
        .as_deref()
        .and_then(|n| n.split_once('?'))
        .map(|(_, query)| format!("{base}?{query}"));
    Ok(page(
        &title,
        Nav::Events,
        html! {
            h1 { (title) }
            (search_form())
            @if let Some(live) = live {
                h2 { "Live tail" span #live-state.live-state { "connecting…" } }
                ul #tail data-live={(live) "?from=" (tail_from)} {
                    li #tail-empty.muted { "Waiting for new events…" }
                }
            }
            h2 { "Events" span.muted { " newest first" } }
            (table(&events.events))
            @if events.events.is_empty() { p.muted { "No events." } }
            (next_link(next))
        },
    ))
}

fn search_form() -> Markup {
    html! {
        form.bar method="get" action="/console/events" {
            input type="text" name="stream" placeholder="stream";
            input type="text" name="category" placeholder="category";
            input type="text" name="type" placeholder="event type";
            input type="text" name="correlation" placeholder="correlation id";
            button type="submit" { "Go" }
        }
    }
}

/// Events as a table, each linked to its stream, type and correlation.
pub(crate) fn table(events: &[Event]) -> Markup {
    html! {
        table.events #events {
            thead { tr {
                th.num { "position" } th { "stream" } th.num { "version" } th { "type" }
                th { "recorded (UTC)" } th { "correlation" } th { "data" }
            } }
            tbody {
                @for e in events {
                    tr.event {
                        (num(e.position))
                        td { a href={"/console/streams/" (enc(&e.stream))} { (e.stream) } }
                        (num(e.version))
                        td { a href={"/console/types/" (enc(&e.event_type))} { (e.event_type) } }
                        td.mono { (text::time_ms(e.recorded_ms)) }
                        td.mono {
                            @if let Some(id) = &e.correlation_id {
                                a href={"/console/correlations/" (enc(id))} { (id) }
                            }
                        }
                        td.value { (text::json(&e.data)) }
                    }
                }
            }
        }
    }
}
