//! The API table of `docs/design/kafka-compat.md` ("APIs and versions")
//! against what a live server lists in ApiVersions, both ways: every
//! served API is in the first table with its key and versions, every API
//! there is served, and every other API kafka-protocol knows is in the
//! second table (not served).

mod common;

use std::collections::BTreeMap;

use common::{TestServer, call, connect};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

/// The rows of the markdown tables in the doc's "APIs and versions"
/// section: the first table, then the second, as cells.
fn tables() -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{crate_dir}/../../docs/design/kafka-compat.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = doc
        .split("\n## APIs and versions\n")
        .nth(1)
        .expect("the doc has an \"APIs and versions\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table {
            // A new table: its header row.
            tables.push(Vec::new());
            in_table = true;
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        let cells = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        tables.last_mut().unwrap().push(cells);
    }
    assert_eq!(tables.len(), 2, "served and not-served tables");
    let not_served = tables.pop().unwrap();
    (tables.pop().unwrap(), not_served)
}

/// An API named in the doc, checked against kafka-protocol's name for its key.
fn api(name: &str, key: &str) -> ApiKey {
    let key: i16 = key
        .parse()
        .unwrap_or_else(|_| panic!("{name}: key {key:?}"));
    let api = ApiKey::try_from(key).unwrap_or_else(|()| panic!("{name}: unknown key {key}"));
    assert_eq!(format!("{api:?}"), name, "the doc's name for key {key}");
    api
}

#[test]
fn the_doc_lists_exactly_the_served_apis_and_versions() {
    let (served_rows, unserved_rows) = tables();
    let documented: BTreeMap<i16, (i16, i16)> = served_rows
        .iter()
        .map(|row| {
            let api = api(&row[0], &row[1]);
            let (min, max) = row[2]
                .split_once('-')
                .unwrap_or_else(|| panic!("{}: versions {:?}", row[0], row[2]));
            (api as i16, (min.parse().unwrap(), max.parse().unwrap()))
        })
        .collect();
    assert_eq!(documented.len(), served_rows.len(), "an API twice");

    let server = TestServer::start();
    let mut stream = connect(&server);
    let response: ApiVersionsResponse = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let live: BTreeMap<i16, (i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect();
    for (key, versions) in &live {
        assert_eq!(
            documented.get(key),
            Some(versions),
            "ApiVersions lists key {key} as {versions:?}"
        );
    }
    for (key, versions) in &documented {
        assert_eq!(live.get(key), Some(versions), "the doc lists key {key}");
    }

    // Every other API is in the not-served table, once, and not served.
    let mut unserved: Vec<i16> = unserved_rows
        .iter()
        .map(|row| api(&row[0], &row[1]) as i16)
        .collect();
    for key in &unserved {
        assert!(!live.contains_key(key), "key {key} is served");
    }
    unserved.sort_unstable();
    let mut everything: Vec<i16> = live.keys().copied().chain(unserved).collect();
    everything.sort_unstable();
    let mut known: Vec<i16> = ApiKey::iter().map(|a| a as i16).collect();
    known.sort_unstable();
    assert_eq!(everything, known, "every API, served or not, once");
}
