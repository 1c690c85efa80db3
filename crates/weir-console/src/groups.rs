//! The consumer-group pages: every group with its state and lag, and one
//! group with its members, their assignments, lag per partition and its
//! total lag over time (from the console's samples).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use maud::html;
use weir_http::handlers;

use crate::layout::{Nav, enc, next_link, num, page};
use crate::samples::sample_on_view;
use crate::{Page, Shared, chart};

/// The groups by name, a page at a time from `?after=`.
pub async fn list(State(c): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Page {
    sample_on_view(&c).await;
    let mut groups = handlers::groups(State(c.app.clone()), None).await.0.groups;
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    let after = q.get("after").cloned().unwrap_or_default();
    let rest: Vec<_> = groups.into_iter().filter(|g| g.group > after).collect();
    let n = rest.len().min(c.config.list_page_max);
    let next =
        (n < rest.len()).then(|| format!("/console/groups?after={}", enc(&rest[n - 1].group)));
    Ok(page(
        "Consumer groups",
        Nav::Groups,
        html! {
            h1 { "Consumer groups" }
            table #groups data-refresh="5000" {
                thead { tr {
                    th { "group" } th { "type" } th { "state" } th { "protocol type" } th.num { "lag" }
                } }
                tbody {
                    @for g in &rest[..n] {
                        @let lag = c.samples.lag(&g.group).last().map(|s| s.1);
                        tr {
                            td { a.group-link href={"/console/groups/" (enc(&g.group))} { (g.group) } }
                            td { (g.group_type) }
                            td { (g.state) }
                            td { (g.protocol_type) }
                            td.num.group-lag class=[lag.filter(|l| *l > 0).map(|_| "lagging")] {
                                @match lag { Some(l) => (l), None => "—" }
                            }
                        }
                    }
                }
            }
            @if rest.is_empty() { p.muted { "No consumer groups yet." } }
            (next_link(next))
        },
    ))
}

/// One group: members and assignments, lag per partition, lag over time.
pub async fn show(State(c): State<Shared>, Path(group): Path<String>) -> Page {
    sample_on_view(&c).await;
    let info = handlers::describe_group(State(c.app.clone()), Path(group.clone()))
        .await?
        .0;
    let points: Vec<(i64, f64)> = c
        .samples
        .lag(&group)
        .into_iter()
        .map(|(t, l)| (t, l as f64))
        .collect();
    Ok(page(
        &group,
        Nav::Groups,
        html! {
            h1 { "Group " code { (info.group) } }
            div #group-live data-refresh="5000" {
                div.cards {
                    div.card { div.big #lag-total class=[(info.lag_total > 0).then_some("lagging")] { (info.lag_total) } div.label { "total lag" } }
                    div.card { div.big { (info.state) } div.label { "state" } }
                    div.card { div.big { (info.members.len()) } div.label { "members" } }
                    div.card { div.big { (info.generation) } div.label { "generation" } }
                }
                (chart::line("total lag", &points))
                h2 { "Lag per partition" }
                table #group-partitions {
                    thead { tr {
                        th { "topic" } th.num { "partition" } th.num { "committed" }
                        th.num { "end offset" } th.num { "lag" } th { "member" }
                    } }
                    tbody {
                        @for p in &info.partitions {
                            tr {
                                td { a href={"/console/topics/" (enc(&p.topic))} { (p.topic) } }
                                (num(p.partition))
                                (num(opt(p.committed_offset)))
                                (num(opt(p.end_offset)))
                                td.num.partition-lag class=[p.lag.filter(|l| *l > 0).map(|_| "lagging")] { (opt(p.lag)) }
                                td.mono { (p.member_id.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
                @if info.partitions.is_empty() { p.muted { "No committed offsets or assignments." } }
                h2 { "Members" }
                table #members {
                    thead { tr { th { "member" } th { "client id" } th { "host" } th { "assignment" } } }
                    tbody {
                        @for m in &info.members {
                            tr {
                                td.mono { (m.member_id) @if let Some(i) = &m.instance_id { br; span.muted { "instance " (i) } } }
                                td { (m.client_id) }
                                td { (m.client_host) }
                                td {
                                    @for a in &m.assignment {
                                        div { (a.topic) ": " (a.partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if info.members.is_empty() { p.muted { "No members: the group is empty." } }
                p.muted { "protocol " (info.protocol_type) " / " (info.protocol) " · " (info.group_type) " group" }
            }
        },
    ))
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| v.to_string())
}
