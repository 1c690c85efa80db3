//! The operator pages: dead-letter topics with inspect and replay, sagas
//! with their timelines, a correlation's events as a tree by causation,
//! and the alerts that are firing.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use weir_api::{Event, ReplayRequest};
use weir_http::handlers;
use weir_http::problem::Body;

use crate::layout::{Nav, enc, next_link, num, page};
use crate::{Page, PageError, Shared, text};

/// Most events of one correlation drawn as a tree.
const CORRELATION_EVENTS_MAX: usize = 500;

pub async fn dead_letter_topics(State(c): State<Shared>) -> Page {
    let topics = handlers::dead_letter_topics(State(c.app.clone()), None)
        .await?
        .0
        .topics;
    let n = topics.len().min(c.config.list_page_max);
    Ok(page(
        "Dead letters",
        Nav::DeadLetters,
        html! {
            h1 { "Dead-letter topics" }
            table #dlq data-refresh="5000" {
                thead { tr {
                    th { "topic" } th { "origin" } th.num { "partitions" } th.num { "depth" } th { "oldest (UTC)" }
                } }
                tbody {
                    @for t in &topics[..n] {
                        tr {
                            td { code { (t.topic) } }
                            td { a href={"/console/topics/" (enc(&t.origin_topic))} { (t.origin_topic) }
                                 @if !t.origin_exists { " " span.error { "(gone)" } } }
                            (num(t.partitions))
                            (num(t.depth))
                            td.mono { @if let Some(ms) = t.oldest_timestamp_ms { (text::time_ms(ms)) } }
                        }
                        tr {
                            td colspan="5" {
                                "inspect partition: "
                                @for p in 0..t.partitions.min(64) {
                                    a href={"/console/dlq/" (enc(&t.topic)) "/partitions/" (p)} { (p) } " "
                                }
                            }
                        }
                    }
                }
            }
            @if topics.is_empty() { p.muted { "No dead-letter topics." } }
            @if n < topics.len() { p.muted { "Showing " (n) " of " (topics.len()) "." } }
        },
    ))
}

/// One dead-letter partition's records from `?offset=`, each with a
/// replay button; `?replayed=` reports a replay just done.
pub async fn dead_letters(
    State(c): State<Shared>,
    Path((topic, partition)): Path<(String, i32)>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let offset: i64 = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let query = HashMap::from([
        ("offset".to_owned(), offset.max(0).to_string()),
        ("limit".to_owned(), c.config.records_page_max.to_string()),
    ]);
    let read = handlers::dead_letters(
        State(c.app.clone()),
        Path((topic.clone(), partition.to_string())),
        Query(query),
    )
    .await?
    .0;
    let base = format!("/console/dlq/{}", enc(&topic));
    let next = (read.records.len() + read.not_dead_letters.len() >= c.config.records_page_max)
        .then(|| format!("{base}/partitions/{partition}?offset={}", read.next_offset));
    Ok(page(
        &format!("{topic} / {partition}"),
        Nav::DeadLetters,
        html! {
            h1 { "Dead letters in " code { (topic) } " · partition " (partition) }
            @if let Some(n) = q.get("replayed") { p.status-ok #replayed { "Replayed " (n) " dead letter(s)." } }
            form.bar method="post" action={(base) "/replay"} {
                input type="hidden" name="all" value="1";
                input type="hidden" name="partition" value=(partition);
                button type="submit" { "Replay this partition from the start" }
            }
            table #dead-letters {
                thead { tr {
                    th.num { "offset" } th { "origin" } th { "error" } th.num { "attempts" }
                    th { "group" } th { "key" } th { "value" } th { "" }
                } }
                tbody {
                    @for r in &read.records {
                        @let (kind, shown) = text::value(r.value_base64.as_deref());
                        tr {
                            (num(r.offset))
                            td.mono { (r.origin.topic) "-" (r.origin.partition) "@" (r.origin.offset) }
                            td { span.error { (text::cut(&r.error)) } br; span.muted { (r.error_kind) } }
                            (num(r.attempts))
                            td { (r.group) }
                            td.value { @if let Some(k) = &r.key { (text::cut(k)) } }
                            td.value { @if kind == "hex" { span.muted { "hex " } } (shown) }
                            td {
                                form.inline method="post" action={(base) "/replay"} {
                                    input type="hidden" name="partition" value=(partition);
                                    input type="hidden" name="offset" value=(r.offset);
                                    button type="submit" { "Replay" }
                                }
                                @if r.replays > 0 { br; span.muted { "replayed " (r.replays) "×" } }
                            }
                        }
                    }
                }
            }
            @for n in &read.not_dead_letters {
                p.muted { "offset " (n.offset) " is not a dead letter: " (n.reason) }
            }
            @if read.records.is_empty() { p.muted { "No dead letters from offset " (offset) "." } }
            (next_link(next))
        },
    ))
}

/// Replays what the form names (one record by partition and offset, or a
/// partition from the start with `all`) through the API's replay, then
/// goes back to the partition's page. Refused from another origin: a
/// page elsewhere cannot make an operator's browser replay.
pub async fn replay(
    State(c): State<Shared>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, PageError> {
    check_same_origin(&headers)?;
    let form = parse_form(&body)?;
    let number = |name: &str| -> Result<Option<i64>, PageError> {
        form.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        format!("{name} must be a number, not {v:?}"),
                    )
                })
            })
            .transpose()
    };
    let partition = number("partition")?
        .ok_or_else(|| PageError::new(StatusCode::BAD_REQUEST, "the form names no partition"))?
        as i32;
    let req = ReplayRequest {
        all: form.contains_key("all"),
        partition: Some(partition),
        offset: number("offset")?,
        to_offset: None,
    };
    let done = handlers::replay(State(c.app.clone()), Path(topic.clone()), Body(req))
        .await?
        .0;
    let back = format!(
        "/console/dlq/{}/partitions/{partition}?replayed={}",
        enc(&topic),
        done.replayed
    );
    Ok(Redirect::to(&back).into_response())
}

/// A refusal unless the request's `Origin`, when the browser sends one,
/// is this server (`Host`).
fn check_same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    if origin_host == host {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            format!("a form from {origin} may not act on {host}"),
        ))
    }
}

/// An `application/x-www-form-urlencoded` body whose values are plain
/// numbers or flags (all the console's forms send), by name.
fn parse_form(body: &str) -> Result<HashMap<String, String>, PageError> {
    let mut out = HashMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !plain(k) || !plain(v) || out.len() >= 8 {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "not a console form",
            ));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Sagas in start order, filtered by `?status=` and `?type=`.
pub async fn sagas(State(c): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Page {
    let mut query: HashMap<String, String> = q
        .into_iter()
        .filter(|(k, v)| matches!(k.as_str(), "status" | "type" | "from") && !v.is_empty())
        .collect();
    query.insert("limit".to_owned(), c.config.list_page_max.to_string());
    let list = handlers::sagas(State(c.app.clone()), None, Query(query.clone()))
        .await?
        .0;
    let next = list
        .next
        .as_deref()
        .and_then(|n| n.split_once('?'))
        .map(|(_, q)| format!("/console/sagas?{q}"));
    let status = query.get("status").cloned().unwrap_or_default();
    Ok(page(
        "Sagas",
        Nav::Sagas,
        html! {
            h1 { "Sagas" }
            form.bar method="get" action="/console/sagas" {
                select name="status" {
                    @for s in ["", "running", "compensating", "parked", "completed", "compensated"] {
                        option value=(s) selected[s == status] { @if s.is_empty() { "any status" } @else { (s) } }
                    }
                }
                input type="text" name="type" placeholder="saga type" value=[query.get("type")];
                button type="submit" { "Filter" }
            }
            table #sagas data-refresh="5000" {
                thead { tr {
                    th { "saga" } th { "type" } th { "status" } th { "step" } th.num { "steps" }
                    th { "started (UTC)" } th { "updated (UTC)" } th { "reason" }
                } }
                tbody {
                    @for s in &list.sagas {
                        tr {
                            td { a href={"/console/sagas/" (enc(&s.id))} { (s.id) } }
                            td { (s.saga_type) }
                            td class={"status-" (s.status)} { (s.status) }
                            td { (s.step.as_deref().unwrap_or("")) }
                            (num(s.steps))
                            td.mono { (text::time_ms(s.started_ms)) }
                            td.mono { (text::time_ms(s.updated_ms)) }
                            td { (s.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            @if list.sagas.is_empty() { p.muted { "No sagas." } }
            @for n in &list.not_sagas { p.muted { "stream " (n.stream) " is not a saga: " (n.reason) } }
            (next_link(next))
        },
    ))
}

/// One saga: its summary, steps and timeline of events.
pub async fn saga(State(c): State<Shared>, Path(id): Path<String>) -> Page {
    let d = handlers::saga(State(c.app.clone()), Path(id.clone()))
        .await?
        .0;
    let s = &d.saga;
    Ok(page(
        &format!("Saga {id}"),
        Nav::Sagas,
        html! {
            h1 { "Saga " code { (s.id) } }
            div.cards {
                div.card { div.big class={"status-" (s.status)} { (s.status) } div.label { "status" } }
                div.card { div.big { (s.saga_type) } div.label { "type" } }
                div.card { div.big { (s.step.as_deref().unwrap_or("—")) } div.label { "step" } }
            }
            @if let Some(r) = &s.reason { p { "Reason: " (r) } }
            p { a href={"/console/correlations/" (enc(&s.id))} { "Correlation trace →" } }
            h2 { "Steps" }
            table #saga-steps {
                thead { tr {
                    th { "step" } th { "action" } th { "compensation" } th.num { "attempts" }
                    th.num { "compensation attempts" } th { "last error" }
                } }
                tbody {
                    @for st in &d.steps {
                        tr {
                            td { (st.name) } td { (st.action) } td { (st.compensation) }
                            (num(st.attempts)) (num(st.compensation_attempts))
                            td.error { (st.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            h2 { "Timeline" }
            ol.timeline #saga-timeline {
                @for e in &d.events {
                    li {
                        span.mono { (text::time_ms(e.recorded_ms)) } " · v" (e.version) " · "
                        b { (e.event_type) } " " span.mono.muted { (text::json(&e.data)) }
                    }
                }
            }
        },
    ))
}

/// A correlation's events as a tree by causation: an event hangs under
/// the event its `causation_id` names, when that one is in the
/// correlation; the others are roots.
pub async fn correlation(State(c): State<Shared>, Path(id): Path<String>) -> Page {
    let query = HashMap::from([("limit".to_owned(), CORRELATION_EVENTS_MAX.to_string())]);
    let events = handlers::read_correlation(State(c.app.clone()), Path(id.clone()), Query(query))
        .await?
        .0;
    Ok(page(
        &format!("Correlation {id}"),
        Nav::Events,
        html! {
            h1 { "Correlation " code { (id) } }
            p.muted { (events.events.len()) " event(s), as a tree by causation" }
            (tree(&events.events))
            @if events.next.is_some() { p.muted { "Only the first " (CORRELATION_EVENTS_MAX) " events are drawn." } }
        },
    ))
}

/// The events nested by causation, built with an explicit stack (a long
/// causation chain cannot overflow the thread's stack).
fn tree(events: &[Event]) -> Markup {
    let index: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut roots = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e.causation_id.as_deref().and_then(|c| index.get(c)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    // Enter(i) writes the node and pushes its children; Exit closes it.
    enum Step {
        Enter(usize),
        Exit,
    }
    let mut out = String::from("<ul class=\"tree\" id=\"correlation-tree\">");
    let mut stack: Vec<Step> = roots.iter().rev().map(|&i| Step::Enter(i)).collect();
    let mut drawn = vec![false; events.len()];
    while let Some(step) = stack.pop() {
        match step {
            Step::Exit => out.push_str("</ul></li>"),
            Step::Enter(i) if drawn[i] => {}
            Step::Enter(i) => {
                drawn[i] = true;
                let e = &events[i];
                out.push_str("<li>");
                out.push_str(&node(e).into_string());
                out.push_str("<ul class=\"tree\">");
                stack.push(Step::Exit);
                stack.extend(children[i].iter().rev().map(|&c| Step::Enter(c)));
            }
        }
    }
    out.push_str("</ul>");
    PreEscaped(out)
}

fn node(e: &Event) -> Markup {
    html! {
        b { (e.event_type) } " "
        a href={"/console/streams/" (enc(&e.stream))} { (e.stream) } " v" (e.version)
        span.muted { " #" (e.position) " · " (text::time_ms(e.recorded_ms)) }
        div.mono.muted { (text::json(&e.data)) }
    }
}

pub async fn alerts(State(c): State<Shared>) -> Page {
    let a = handlers::alerts(State(c.app.clone())).await.0;
    let limit = |v: Option<u64>| v.map_or_else(|| "not watched".to_owned(), |v| v.to_string());
    Ok(page(
        "Alerts",
        Nav::Alerts,
        html! {
            h1 { "Alerts" }
            p.muted {
                "dead-letter depth threshold: " (limit(a.dead_letter_depth_max))
                " · group lag threshold: " (limit(a.group_lag_max))
            }
            table #alerts data-refresh="5000" {
                thead { tr { th { "kind" } th { "subject" } th.num { "value" } th.num { "threshold" } th { "since (UTC)" } } }
                tbody {
                    @for al in &a.alerts {
                        tr.firing {
                            td { (al.kind) } td { (al.subject) } (num(al.value)) (num(al.threshold))
                            td.mono { (text::time_ms(al.since_ms)) }
                        }
                    }
                }
            }
            @if a.alerts.is_empty() { p.muted { "Nothing is firing." } }
            @if a.dropped > 0 { p.error { (a.dropped) " alert(s) dropped past the limit." } }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, causation: Option<&str>) -> Event {
        Event {
            stream: "s-1".into(),
            version: 0,
            position: 0,
            id: id.into(),
            event_type: format!("T{id}"),
            data: serde_json::json!({}),
            metadata: None,
            content_type: "application/json".into(),
            recorded: String::new(),
            recorded_ms: 0,
            correlation_id: None,
            causation_id: causation.map(str::to_owned),
            traceparent: None,
            tracestate: None,
        }
    }

    #[test]
    fn a_correlation_nests_by_causation() {
        let events = [
            event("a", None),
            event("b", Some("a")),
            event("c", Some("b")),
            event("d", Some("a")),
            event("e", Some("elsewhere")),
        ];
        let html = tree(&events).into_string();
        let order: Vec<usize> = ["Ta", "Tb", "Tc", "Td", "Te"]
            .iter()
            .map(|t| html.find(&format!("<b>{t}</b>")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{html}");
        // c sits two levels under a, d one, e is a root.
        let depth = |t: &str| {
            let at = html.find(&format!("<b>{t}</b>")).unwrap();
            html[..at].matches("<ul").count() - html[..at].matches("</ul>").count()
        };
        assert_eq!((depth("Ta"), depth("Tb"), depth("Tc")), (1, 2, 3));
        assert_eq!((depth("Td"), depth("Te")), (2, 1));
    }

    #[test]
    fn forms_from_other_origins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(check_same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(check_same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(
            check_same_origin(&h).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(parse_form("partition=0&offset=12").is_ok());
        assert!(parse_form("partition=<x>").is_err());
    }
}
