//! The saga endpoints through curl, over saga events written straight
//! into the store (as the SDK's runner writes them): sagas listed in the
//! order they started, filtered and paged (also when a filter matches
//! little and the scan bound ends a page); one shown with its steps and
//! events; a parked one resumed once (of two operators at once, one
//! wins); and the problems for bad input, unknown, malformed and not
//! parked sagas.

mod common;

use common::Server;
use serde_json::{Value, json};
use weir_http::HttpLimits;
use weir_sagas::{ErrorKind, EventBody};
use weir_store::{EventStore, ExpectedVersion, NewEvent};

fn started(saga_type: &str) -> EventBody {
    EventBody::Started {
        saga_type: saga_type.into(),
        input: json!({"amount": 100}),
        steps: vec!["reserve".into(), "charge".into(), "ship".into()],
        deadline_ms: None,
    }
}

fn step_started(step: usize, attempt: u32) -> EventBody {
    EventBody::StepStarted {
        step,
        attempt,
        idempotency_key: format!("key-{step}"),
        due_ms: None,
    }
}

fn succeeded(step: usize) -> EventBody {
    EventBody::StepSucceeded {
        step,
        output: json!("ok"),
    }
}

/// Saga `id` run forward through every step.
fn completed(saga_type: &str) -> Vec<EventBody> {
    let mut out = vec![started(saga_type)];
    for step in 0..3 {
        out.extend([step_started(step, 1), succeeded(step)]);
    }
    out.push(EventBody::Completed {});
    out
}

/// Reserve and charge succeeded (charge on its second attempt), ship was
/// refused, and undoing the charge failed twice: parked.
fn parked(saga_type: &str) -> Vec<EventBody> {
    vec![
        started(saga_type),
        step_started(0, 1),
        succeeded(0),
        step_started(1, 1),
        EventBody::StepFailed {
            step: 1,
            error: "503".into(),
            kind: ErrorKind::Transient,
            retry_at_ms: Some(1),
        },
        step_started(1, 2),
        succeeded(1),
        step_started(2, 1),
        EventBody::StepFailed {
            step: 2,
            error: "no courier".into(),
            kind: ErrorKind::Permanent,
            retry_at_ms: None,
        },
        EventBody::Compensating {
            reason: "step ship failed (Permanent): no courier".into(),
        },
        EventBody::CompensationStarted {
            step: 1,
            attempt: 1,
            idempotency_key: "undo-1".into(),
            due_ms: None,
        },
        EventBody::CompensationFailed {
            step: 1,
            error: "payments down".into(),
            kind: ErrorKind::Transient,
            retry_at_ms: Some(2),
        },
        EventBody::CompensationStarted {
            step: 1,
            attempt: 2,
            idempotency_key: "undo-1".into(),
            due_ms: None,
        },
        EventBody::CompensationFailed {
            step: 1,
            error: "payments still down".into(),
            kind: ErrorKind::Transient,
            retry_at_ms: None,
        },
        EventBody::Parked {
            step: 1,
            reason: "compensation of charge failed: payments still down".into(),
        },
    ]
}

fn running(saga_type: &str) -> Vec<EventBody> {
    vec![started(saga_type), step_started(0, 1)]
}

fn append_raw(s: &Server, stream: &str, events: &[(&str, Vec<u8>)]) {
    let events: Vec<NewEvent> = events
        .iter()
        .enumerate()
        .map(|(i, (event_type, data))| NewEvent {
            id: format!("{stream}-{i}"),
            event_type: (*event_type).to_owned(),
            data: data.clone(),
            content_type: "application/json".into(),
            metadata: Vec::new(),
            trace: None,
        })
        .collect();
    s.store
        .append(stream, ExpectedVersion::NoStream, &events)
        .unwrap();
}

/// Writes saga `id`'s events as the runner would.
fn saga(s: &Server, id: &str, bodies: Vec<EventBody>) {
    let events: Vec<_> = bodies
        .iter()
        .map(|b| {
            let (t, data) = b.encode();
            (t, data)
        })
        .collect();
    append_raw(s, &weir_sagas::stream_of(id), &events);
}

fn ids(list: &Value) -> Vec<String> {
    list["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `next` from `path`; returns every saga id and the pages taken.
fn all_pages(s: &Server, path: &str) -> (Vec<String>, usize) {
    let (mut out, mut pages) = (Vec::new(), 0);
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let page = s.ok("GET", &path, None, 200);
        out.extend(ids(&page));
        pages += 1;
        assert!(pages < 50, "paging does not end: {page}");
        next = page["next"].as_str().map(str::to_owned);
    }
    (out, pages)
}

/// Four sagas, a stream that is not a saga but has a `SagaStarted`, and a
/// saga stream whose `SagaStarted` does not decode.
fn fixture(s: &Server) {
    saga(s, "a-1", completed("order"));
    append_raw(s, "other-1", &[("SagaStarted", b"{}".to_vec())]);
    saga(s, "b-2", parked("order"));
    append_raw(
        s,
        "saga-bad",
        &[("SagaStarted", br#"{"steps": 3}"#.to_vec())],
    );
    saga(s, "c-3", running("payment"));
    saga(s, "d-4", parked("payment"));
}

#[test]
fn sagas_are_listed_in_start_order_filtered_and_paged() {
    let s = Server::start(HttpLimits::default());
    assert_eq!(
        s.ok("GET", "/v1/sagas", None, 200),
        json!({"sagas": [], "not_sagas": [], "next": null})
    );
    fixture(&s);

    let list = s.ok("GET", "/v1/sagas", None, 200);
    assert_eq!(ids(&list), ["a-1", "b-2", "c-3", "d-4"]);
    assert_eq!(list["next"], Value::Null);
    let statuses: Vec<_> = list["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["saga_type"].clone(),
                s["status"].clone(),
                s["step"].clone(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("order"), json!("completed"), json!(null)),
            (json!("order"), json!("parked"), json!("charge")),
            (json!("payment"), json!("running"), json!("reserve")),
            (json!("payment"), json!("parked"), json!("charge")),
        ]
    );
    let b = &list["sagas"][1];
    assert_eq!(
        b["reason"],
        "compensation of charge failed: payments still down"
    );
    assert_eq!((&b["steps"], &b["version"]), (&json!(3), &json!(14)));
    assert!(b["started_ms"].as_i64().unwrap() <= b["updated_ms"].as_i64().unwrap());
    // The malformed saga is listed apart, with the reason; the other
    // stream's SagaStarted is not a saga's.
    let not = &list["not_sagas"];
    assert_eq!(not.as_array().unwrap().len(), 1, "{not}");
    assert_eq!(not[0]["stream"], "saga-bad");
    assert!(
        not[0]["reason"].as_str().unwrap().contains("SagaStarted"),
        "{not}"
    );

    let parked = s.ok("GET", "/v1/sagas?status=parked", None, 200);
    assert_eq!(ids(&parked), ["b-2", "d-4"]);
    let payments = s.ok("GET", "/v1/sagas?type=payment", None, 200);
    assert_eq!(ids(&payments), ["c-3", "d-4"]);
    let both = s.ok("GET", "/v1/sagas?type=payment&status=parked", None, 200);
    assert_eq!(ids(&both), ["d-4"]);
    let none = s.ok("GET", "/v1/sagas?type=payment&status=completed", None, 200);
    assert_eq!(ids(&none), Vec::<String>::new());

    // One saga a page; `next` keeps the filters.
    let first = s.ok("GET", "/v1/sagas?limit=1&status=parked", None, 200);
    assert_eq!(ids(&first), ["b-2"]);
    let next = first["next"].as_str().unwrap();
    assert!(next.contains("status=parked"), "{next}");
    let (paged, pages) = all_pages(&s, "/v1/sagas?limit=1");
    assert_eq!(paged, ["a-1", "b-2", "c-3", "d-4"]);
    assert!(pages >= 4, "{pages}");
    let (paged, _) = all_pages(&s, "/v1/sagas?limit=1&type=payment");
    assert_eq!(paged, ["c-3", "d-4"]);

    for bad in [
        "/v1/sagas?status=stuck",
        "/v1/sagas?limit=many",
        "/v1/sagas?from=-1",
    ] {
        let (st, problem, ctype) = s.call("GET", bad, None);
        assert_eq!(
            (st, problem["code"].as_str(), ctype.as_str()),
            (400, Some("bad_request"), "application/problem+json"),
            "{bad}: {problem}"
        );
    }
}

#[test]
fn a_page_looks_at_no_more_started_events_than_the_page_limit() {
    let s = Server::start(HttpLimits {
        page_max: 2,
        ..HttpLimits::default()
    });
    for id in ["a-1", "a-2", "a-3", "a-4"] {
        saga(&s, id, completed("order"));
    }
    saga(&s, "p-5", parked("order"));
    // The first pages look at two sagas each and find none parked, but
    // say where to go on.
    let first = s.ok("GET", "/v1/sagas?status=parked", None, 200);
    assert_eq!(ids(&first), Vec::<String>::new());
    assert!(first["next"].is_string(), "{first}");
    let (found, pages) = all_pages(&s, "/v1/sagas?status=parked");
    assert_eq!(found, ["p-5"]);
    assert_eq!(pages, 3);
    // A limit above the page limit is cut to it.
    let cut = s.ok("GET", "/v1/sagas?limit=50", None, 200);
    assert_eq!(ids(&cut), ["a-1", "a-2"]);
}

#[test]
fn a_saga_is_shown_with_its_steps_and_events() {
    let s = Server::start(HttpLimits::default());
    fixture(&s);
    let shown = s.ok("GET", "/v1/sagas/b-2", None, 200);
    assert_eq!(shown["saga"]["status"], "parked");
    assert_eq!(shown["saga"]["id"], "b-2");
    assert_eq!(shown["timeline"], "/v1/correlations/b-2");
    assert_eq!(
        shown["steps"],
        json!([
            {"name": "reserve", "action": "succeeded", "compensation": "not_started",
             "attempts": 1, "compensation_attempts": 0, "last_error": null},
            {"name": "charge", "action": "succeeded", "compensation": "failed",
             "attempts": 2, "compensation_attempts": 2, "last_error": "payments still down"},
            {"name": "ship", "action": "failed", "compensation": "not_needed",
             "attempts": 1, "compensation_attempts": 0, "last_error": "no courier"},
        ])
    );
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), 15);
    let versions: Vec<_> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (0..15).collect::<Vec<_>>());
    assert_eq!(events[0]["type"], "SagaStarted");
    assert_eq!(events[0]["data"]["saga_type"], "order");
    assert_eq!(events[14]["type"], "SagaParked");
    assert!(events[14]["time"].as_str().unwrap().ends_with('Z'));

    let completed = s.ok("GET", "/v1/sagas/a-1", None, 200);
    let words: Vec<_> = completed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["action"].clone(), s["compensation"].clone()))
        .collect();
    assert_eq!(words, vec![(json!("succeeded"), json!("none")); 3]);

    for (path, status, code) in [
        ("/v1/sagas/nope", 404, "saga_not_found"),
        ("/v1/sagas/bad%20id", 400, "invalid_saga_id"),
        ("/v1/sagas/bad", 422, "saga_malformed"),
    ] {
        let (st, problem, ctype) = s.call("GET", path, None);
        assert_eq!(
            (st, problem["code"].as_str(), ctype.as_str()),
            (status, Some(code), "application/problem+json"),
            "{path}: {problem}"
        );
    }
}

#[test]
fn a_parked_saga_is_resumed_once_and_nothing_else_is() {
    let s = Server::start(HttpLimits::default());
    fixture(&s);
    let before = s.store.stream_version("saga-a-1").unwrap();
    for (path, body, status, code) in [
        (
            "/v1/sagas/a-1/resume",
            r#"{"by": "alice"}"#,
            409,
            "saga_not_parked",
        ),
        (
            "/v1/sagas/c-3/resume",
            r#"{"by": "alice"}"#,
            409,
            "saga_not_parked",
        ),
        (
            "/v1/sagas/nope/resume",
            r#"{"by": "alice"}"#,
            404,
            "saga_not_found",
        ),
        (
            "/v1/sagas/bad%20id/resume",
            r#"{"by": "alice"}"#,
            400,
            "invalid_saga_id",
        ),
        ("/v1/sagas/b-2/resume", r#"{"by": ""}"#, 400, "bad_request"),
        (
            "/v1/sagas/b-2/resume",
            r#"{"by": "a\u0007b"}"#,
            400,
            "bad_request",
        ),
        ("/v1/sagas/b-2/resume", "{}", 422, "invalid_body"),
        (
            "/v1/sagas/b-2/resume",
            r#"{"by": "alice", "force": true}"#,
            422,
            "invalid_body",
        ),
    ] {
        let (st, problem, _) = s.call("POST", path, Some(body));
        assert_eq!(
            (st, problem["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {problem}"
        );
    }
    let long = json!({"by": "x".repeat(201)}).to_string();
    let (st, _, _) = s.call("POST", "/v1/sagas/b-2/resume", Some(&long));
    assert_eq!(st, 400);
    let (_, problem, _) = s.call("POST", "/v1/sagas/a-1/resume", Some(r#"{"by": "alice"}"#));
    assert!(
        problem["detail"].as_str().unwrap().contains("completed"),
        "{problem}"
    );
    // Nothing was written by the refusals.
    assert_eq!(s.store.stream_version("saga-a-1").unwrap(), before);
    assert_eq!(s.store.stream_version("saga-b-2").unwrap(), Some(14));

    let resumed = s.ok(
        "POST",
        "/v1/sagas/b-2/resume",
        Some(r#"{"by": "alice"}"#),
        200,
    );
    assert_eq!(
        (
            &resumed["status"],
            &resumed["version"],
            &resumed["step"],
            &resumed["reason"]
        ),
        (
            &json!("compensating"),
            &json!(15),
            &json!("charge"),
            &json!("step ship failed (Permanent): no courier")
        )
    );
    let shown = s.ok("GET", "/v1/sagas/b-2", None, 200);
    let last = shown["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["type"], &last["data"]),
        (&json!("SagaResumed"), &json!({"by": "alice"}))
    );
    // The failed compensation is to be tried again.
    assert_eq!(shown["steps"][1]["compensation"], "not_started");
    // Correlated with the saga, caused by its SagaParked.
    let recorded = s
        .store
        .read_stream("saga-b-2", 14, weir_store::Direction::Forward, 10)
        .unwrap();
    let metadata: Value = serde_json::from_slice(&recorded[1].metadata).unwrap();
    assert_eq!(metadata["correlationid"], "b-2");
    assert_eq!(metadata["causationid"], recorded[0].id.as_str());
    assert_eq!(metadata["source"], "/sagas/order");

    // Resumed already: not parked any more.
    let (st, problem, _) = s.call("POST", "/v1/sagas/b-2/resume", Some(r#"{"by": "bob"}"#));
    assert_eq!(
        (st, problem["code"].as_str()),
        (409, Some("saga_not_parked"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("compensating"));
}

#[test]
fn of_two_operators_resuming_at_once_one_wins() {
    let s = Server::start(HttpLimits::default());
    let ids: Vec<String> = (0..8).map(|i| format!("race-{i}")).collect();
    for id in &ids {
        saga(&s, id, parked("order"));
    }
    for id in &ids {
        let path = format!("/v1/sagas/{id}/resume");
        let statuses: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let calls: Vec<_> = ["alice", "bob"]
                .into_iter()
                .map(|by| {
                    let (s, path) = (&s, &path);
                    scope.spawn(move || {
                        let body = json!({"by": by}).to_string();
                        let (st, body, _) = s.call("POST", path, Some(&body));
                        (st, body)
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut codes: Vec<u16> = statuses.iter().map(|(st, _)| *st).collect();
        codes.sort();
        assert_eq!(codes, [200, 409], "{id}: {statuses:?}");
        let loser = statuses.iter().find(|(st, _)| *st == 409).unwrap();
        assert_eq!(loser.1["code"], "saga_not_parked", "{loser:?}");
        let events = s.ok("GET", &format!("/v1/sagas/{id}"), None, 200)["events"].clone();
        let resumed = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "SagaResumed")
            .count();
        assert_eq!(resumed, 1, "{id}");
    }
}

#[test]
fn the_openapi_document_describes_the_saga_routes() {
    let s = Server::start(HttpLimits::default());
    let doc = s.ok("GET", "/openapi.json", None, 200);
    for path in ["/v1/sagas", "/v1/sagas/{id}", "/v1/sagas/{id}/resume"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // The older routes are still there beside them.
    assert!(doc["paths"].get("/v1/topics").is_some());
    for schema in ["SagaList", "SagaDetail", "SagaSummary", "ResumeSaga"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
    let conflict = &doc["paths"]["/v1/sagas/{id}/resume"]["post"]["responses"]["409"];
    assert!(
        conflict["content"]
            .get("application/problem+json")
            .is_some(),
        "{conflict}"
    );
}
