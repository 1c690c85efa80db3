//! The overview, the topics pages (partitions with their offsets and
//! throughput) and the records browser of one partition.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::html;
use weir_http::handlers;

use crate::layout::{Nav, enc, next_link, num, page};
use crate::samples::{rates, sample_on_view};
use crate::{Page, PageError, Shared, chart, text};

/// The overview: a card per area with its headline figure.
pub async fn overview(State(c): State<Shared>) -> Page {
    sample_on_view(&c).await;
    let app = c.app.clone();
    let topics = handlers::topics(State(app.clone()), None).await.0.topics;
    let groups = handlers::groups(State(app.clone()), None).await.0.groups;
    let user_topics: Vec<_> = topics.iter().filter(|t| !t.internal).collect();
    let lag_total: i64 = groups
        .iter()
        .take(c.config.sampled_max)
        .filter_map(|g| c.samples.lag(&g.group).last().map(|s| s.1))
        .sum();
    let newest = handlers::read_all(State(app.clone()), Query(newest_query()))
        .await
        .map(|e| e.0.events.first().map_or(0, |e| e.position + 1))
        .unwrap_or(0);
    let dead = handlers::dead_letter_topics(State(app.clone()), None)
        .await
        .map(|d| d.0.topics)
        .unwrap_or_default();
    let depth: u64 = dead.iter().map(|d| d.depth).sum();
    let alerts = handlers::alerts(State(app.clone())).await.0.alerts;
    let shown = user_topics.len().min(c.config.list_page_max);
    Ok(page(
        "Overview",
        Nav::Overview,
        html! {
            h1 { "Overview" }
            div.cards #overview-cards data-refresh="5000" {
                (card("/console/topics", "topics", user_topics.len()))
                (card("/console/groups", "consumer groups", groups.len()))
                (card("/console/groups", "total lag", lag_total))
                (card("/console/events", "events stored", newest))
                (card("/console/dlq", "dead letters", depth))
                (card("/console/alerts", "alerts firing", alerts.len()))
            }
            h2 { "Topics" }
            table #overview-topics data-refresh="5000" {
                thead { tr { th { "topic" } th.num { "partitions" } th.num { "records/s" } } }
                tbody {
                    @for t in &user_topics[..shown] {
                        tr {
                            td { a href={"/console/topics/" (enc(&t.name))} { (t.name) } }
                            (num(t.partitions))
                            (num(rate_text(c.samples.rate(&t.name))))
                        }
                    }
                }
            }
            @if shown < user_topics.len() {
                p.muted { a href="/console/topics" { "All topics →" } }
            }
        },
    ))
}

fn card(href: &str, label: &str, value: impl std::fmt::Display) -> maud::Markup {
    html! {
        a.card href=(href) style="text-decoration:none;color:inherit" {
            div.big { (value) }
            div.label { (label) }
        }
    }
}

/// `?direction=backward&limit=1`: the newest event.
pub(crate) fn newest_query() -> HashMap<String, String> {
    HashMap::from([
        ("direction".to_owned(), "backward".to_owned()),
        ("limit".to_owned(), "1".to_owned()),
    ])
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), chart::fmt)
}

/// The topics by name, a page at a time from `?after=`.
pub async fn list(State(c): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Page {
    sample_on_view(&c).await;
    let mut topics = handlers::topics(State(c.app.clone()), None).await.0.topics;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let after = q.get("after").cloned().unwrap_or_default();
    let rest: Vec<_> = topics.into_iter().filter(|t| t.name > after).collect();
    let n = rest.len().min(c.config.list_page_max);
    let next =
        (n < rest.len()).then(|| format!("/console/topics?after={}", enc(&rest[n - 1].name)));
    let app = c.app.clone();
    let mut rows = Vec::with_capacity(n);
    for t in &rest[..n] {
        let info = handlers::describe_topic(State(app.clone()), Path(t.name.clone())).await;
        let (start, end) = info.map_or((0, 0), |i| {
            let ps = &i.0.partitions;
            (
                ps.iter().map(|p| p.start_offset).sum::<i64>(),
                ps.iter().map(|p| p.end_offset).sum::<i64>(),
            )
        });
        rows.push((t, end - start));
    }
    Ok(page(
        "Topics",
        Nav::Topics,
        html! {
            h1 { "Topics" }
            table #topics data-refresh="5000" {
                thead { tr {
                    th { "topic" } th.num { "partitions" } th.num { "records held" }
                    th.num { "records/s" } th { "" }
                } }
                tbody {
                    @for (t, held) in &rows {
                        tr {
                            td { a.topic-link href={"/console/topics/" (enc(&t.name))} { (t.name) } }
                            (num(t.partitions))
                            (num(held))
                            (num(rate_text(c.samples.rate(&t.name))))
                            td { @if t.internal { span.muted { "internal" } } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No topics yet." } }
            (next_link(next))
        },
    ))
}

/// One topic: its partitions with start, end and durable offsets, its
/// throughput and configs.
pub async fn show(State(c): State<Shared>, Path(topic): Path<String>) -> Page {
    sample_on_view(&c).await;
    let info = handlers::describe_topic(State(c.app.clone()), Path(topic.clone()))
        .await?
        .0;
    let samples = c.samples.ends(&topic);
    let rate_points = rates(&samples);
    let base = format!("/console/topics/{}", enc(&topic));
    Ok(page(
        &topic,
        Nav::Topics,
        html! {
            h1 { "Topic " code { (info.name) } @if info.internal { " " span.muted { "(internal)" } } }
            div #topic-live data-refresh="5000" {
                div.cards {
                    div.card { div.big { (info.partitions.len()) } div.label { "partitions" } }
                    div.card {
                        div.big #throughput { (rate_text(crate::samples::rate_of(&samples))) }
                        div.label { "records/s" }
                    }
                }
                (chart::line("records/s", &rate_points))
                h2 { "Partitions" }
                table #partitions {
                    thead { tr {
                        th { "partition" } th.num { "start offset" } th.num { "end offset" }
                        th.num { "durable offset" } th.num { "records" } th { "" }
                    } }
                    tbody {
                        @for p in &info.partitions {
                            tr {
                                td { (p.partition) }
                                (num(p.start_offset)) (num(p.end_offset)) (num(p.durable_offset))
                                (num(p.end_offset - p.start_offset))
                                td { a href={(base) "/partitions/" (p.partition)} { "browse records" } }
                            }
                        }
                    }
                }
            }
            h2 { "Configs" }
            table {
                tbody {
                    @for (k, v) in &info.configs { tr { td.mono { (k) } td.mono { (v) } } }
                }
            }
        },
    ))
}

/// Records of one partition from `?offset=` (default its start), at most
/// `records_page_max` (or `?limit=` below it).
pub async fn records(
    State(c): State<Shared>,
    Path((topic, partition)): Path<(String, i32)>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let info = handlers::describe_topic(State(c.app.clone()), Path(topic.clone()))
        .await?
        .0;
    let p = info
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .ok_or_else(|| {
            PageError::new(StatusCode::NOT_FOUND, format!("no partition {partition}"))
        })?;
    let number = |name: &str| -> Result<Option<i64>, PageError> {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        format!("{name} must be a number, not {v:?}"),
                    )
                })
            })
            .transpose()
    };
    let offset = number("offset")?
        .unwrap_or(p.start_offset)
        .max(p.start_offset);
    let limit = number("limit")?
        .map_or(c.config.records_page_max, |l| l.max(1) as usize)
        .min(c.config.records_page_max);
    let query = HashMap::from([
        ("offset".to_owned(), offset.to_string()),
        ("limit".to_owned(), limit.to_string()),
    ]);
    let read = handlers::records(
        State(c.app.clone()),
        Path((topic.clone(), partition.to_string())),
        Query(query),
    )
    .await?
    .0;
    let base = format!("/console/topics/{}/partitions/{partition}", enc(&topic));
    let next = (read.next_offset < read.high_watermark && !read.records.is_empty())
        .then(|| format!("{base}?offset={}&limit={limit}", read.next_offset));
    Ok(page(
        &format!("{topic} / {partition}"),
        Nav::Topics,
        html! {
            h1 {
                a href={"/console/topics/" (enc(&topic))} { code { (topic) } }
                " · partition " (partition)
            }
            form.bar method="get" action=(base) {
                label { "from offset " input type="number" name="offset" value=(offset) min=(p.start_offset); }
                label { "limit " input type="number" name="limit" value=(limit) min="1" max=(c.config.records_page_max); }
                button type="submit" { "Show" }
                span.muted { "offsets " (p.start_offset) " to " (p.end_offset) " (exclusive)" }
            }
            table #records {
                thead { tr {
                    th.num { "offset" } th { "timestamp (UTC)" } th { "key" } th { "value" } th { "headers" }
                } }
                tbody {
                    @for r in &read.records {
                        @let (kind, shown) = text::value(r.value_base64.as_deref());
                        tr {
                            (num(r.offset))
                            td.mono { (text::time_ms(r.timestamp_ms)) }
                            td.value { @if let Some(k) = &r.key { (text::cut(k)) } @else { span.muted { "null" } } }
                            td.value class={"value-" (kind)} {
                                @if kind == "null" { span.muted { "null" } }
                                @else if kind == "hex" { span.muted { "hex " } (shown) }
                                @else { (shown) }
                            }
                            td.value {
                                @for (k, v) in &r.headers { div { b { (text::cut(k)) } ": " (text::cut(v)) } }
                            }
                        }
                    }
                }
            }
            @if read.records.is_empty() { p.muted { "No records from offset " (offset) "." } }
            (next_link(next))
        },
    ))
}
