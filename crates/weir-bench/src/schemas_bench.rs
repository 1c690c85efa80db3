//! `weir-bench schemas`: what validation on write costs, in one run
//! through the same real client.
//!
//! One broker runs in this process with the schema registry's validator
//! installed (as `weir serve` has it). librdkafka produces `--records`
//! values of 1 KiB (acks=all, idempotent, linger.ms=5, as `weir-bench
//! produce`) in the registry's wire format to a fresh 6-partition topic:
//! an order (strings, a long, a double, an enum, a union, an array of
//! line records, a padding note) encoded as Avro, or the same order as
//! JSON. Three kinds of runs alternate so that drift and noise hit all:
//! the Avro bytes to a topic without validation (the baseline), the same
//! bytes to a topic with `confluent.value.schema.validation=true` (each
//! record's id looked up under `<topic>-value` and its payload walked by
//! the schema), and the JSON bytes to a validated topic (parsed and
//! validated by JSON Schema). The medians give the ratio validated /
//! unvalidated per format, against the goal of issue 21 ([`GOAL`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use weir_broker::RecordValidator;
use weir_groups::GroupsConfig;
use weir_schemas::{ImportIds, Limits, Registry, SchemaDef, SchemaType, Validator};

use crate::log_bench::Rng;
use crate::produce_bench::{
    PARTITIONS, Server, Target, VALUE_BYTES, check_stored, produce_phase_with,
};
use crate::report;
use crate::sys;

/// Validated produce's throughput over unvalidated produce that issue 21
/// asks for.
const GOAL: f64 = 0.7;

const AVRO_ORDER: &str = r#"{"type":"record","name":"Order","namespace":"bench","fields":[
  {"name":"id","type":"string"},
  {"name":"customer","type":"string"},
  {"name":"created","type":"long"},
  {"name":"total","type":"double"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}},
  {"name":"coupon","type":["null","string"],"default":null},
  {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
    {"name":"sku","type":"string"},{"name":"qty","type":"int"},{"name":"price","type":"double"}]}}},
  {"name":"note","type":"string"}]}"#;

const JSON_ORDER: &str = r#"{"title":"bench.Order","type":"object",
  "properties":{"id":{"type":"string"},"customer":{"type":"string"},
    "created":{"type":"integer"},"total":{"type":"number"},
    "status":{"enum":["NEW","PAID","SHIPPED"]},"coupon":{"type":["null","string"]},
    "lines":{"type":"array","items":{"type":"object",
      "properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1},
        "price":{"type":"number"}},"required":["sku","qty","price"]}},
    "note":{"type":"string"}},
  "required":["id","customer","created","total","status","lines","note"]}"#;

/// Line items per order.
const LINES: usize = 16;

#[derive(Debug, Args)]
pub struct SchemasArgs {
    /// Records produced per run [default: 500000, with --quick 5000]
    #[arg(long)]
    records: Option<u64>,
    /// Producer instances, each on its own thread with its own connection
    /// [default: 4, with --quick 2]
    #[arg(long)]
    producers: Option<usize>,
    /// Runs of each kind, alternating [default: 5, with --quick 1]
    #[arg(long)]
    rounds: Option<usize>,
    /// Directory on the disk to measure; a scratch directory is created in
    /// it and deleted afterwards
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Small sizes, for a smoke test that finishes in seconds
    #[arg(long)]
    quick: bool,
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn avro_string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// The wire-format header: magic byte 0 and the schema id.
fn header(id: i32) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// One order of `rng`'s making, as Avro with a note of `note` bytes.
fn avro_order(id: i32, n: u64, note: usize) -> Vec<u8> {
    let mut out = header(id);
    avro_string(&mut out, &format!("order-{n:012}"));
    avro_string(&mut out, &format!("customer-{:06}", n % 100_000));
    varint(&mut out, 1_700_000_000_000 + n as i64);
    out.extend_from_slice(&(n as f64 * 1.25).to_le_bytes());
    varint(&mut out, (n % 3) as i64);
    if n.is_multiple_of(2) {
        varint(&mut out, 0);
    } else {
        varint(&mut out, 1);
        avro_string(&mut out, "SPRING");
    }
    varint(&mut out, LINES as i64);
    for l in 0..LINES as u64 {
        avro_string(&mut out, &format!("SKU-{:05}", (n + l) % 100_000));
        varint(&mut out, 1 + (l % 5) as i64);
        out.extend_from_slice(&(9.99 + l as f64).to_le_bytes());
    }
    varint(&mut out, 0);
    avro_string(&mut out, &"n".repeat(note));
    out
}

/// One order as JSON with a note of `note` bytes.
fn json_order(id: i32, n: u64, note: usize) -> Vec<u8> {
    let lines: Vec<serde_json::Value> = (0..LINES as u64 / 2)
        .map(|l| {
            serde_json::json!({"sku": format!("SKU-{:05}", (n + l) % 100_000),
                "qty": 1 + l % 5, "price": 9.99 + l as f64})
        })
        .collect();
    let status = ["NEW", "PAID", "SHIPPED"][(n % 3) as usize];
    let coupon = if n.is_multiple_of(2) {
        serde_json::Value::Null
    } else {
        "SPRING".into()
    };
    let order = serde_json::json!({
        "id": format!("order-{n:012}"),
        "customer": format!("customer-{:06}", n % 100_000),
        "created": 1_700_000_000_000u64 + n,
        "total": n as f64 * 1.25,
        "status": status,
        "coupon": coupon,
        "lines": lines,
        "note": "n".repeat(note),
    });
    let mut out = header(id);
    out.extend_from_slice(order.to_string().as_bytes());
    out
}

/// `make(note)` padded to exactly [`VALUE_BYTES`] by its note's length.
fn padded(make: impl Fn(usize) -> Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let bare = make(0).len();
    anyhow::ensure!(
        bare < VALUE_BYTES,
        "an order without a note is {bare} bytes"
    );
    // The note's length prefix may grow by a byte (Avro's varint).
    for note in [VALUE_BYTES - bare, VALUE_BYTES - bare - 1] {
        let v = make(note);
        if v.len() == VALUE_BYTES {
            return Ok(v);
        }
    }
    anyhow::bail!("no note length makes an order of {VALUE_BYTES} bytes")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Unvalidated,
    Avro,
    Json,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Unvalidated => "unvalidated (Avro bytes)",
            Self::Avro => "validated Avro",
            Self::Json => "validated JSON",
        }
    }
}

pub fn run(args: &SchemasArgs) -> anyhow::Result<()> {
    let records = args
        .records
        .unwrap_or(if args.quick { 5_000 } else { 500_000 });
    let producers = args.producers.unwrap_or(if args.quick { 2 } else { 4 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 5 });
    anyhow::ensure!(records > 0, "--records must be at least 1");
    anyhow::ensure!(producers > 0, "--producers must be at least 1");
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    let (scratch, root) = sys::scratch_dir(&args.dir, "weir-bench-schemas.")?;
    let (_, librdkafka_version) = rdkafka::util::get_rdkafka_version();
    println!(
        "weir-bench schemas: scratch {} on {}; {rounds} round(s) of {records} records of {VALUE_BYTES} B values per kind, {producers} producers (librdkafka {librdkafka_version}), topics of {PARTITIONS} partitions; {} logical CPUs",
        root.display(),
        sys::describe_mount(&root),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut server = Server::start(&root.join("weir"), GroupsConfig::default())?;
    let registry = Arc::new(
        Registry::open_on_broker(server.broker.clone(), Limits::default())
            .context("open the schema registry")?,
    );
    let validator: Arc<dyn RecordValidator> = Arc::new(Validator::new(registry.clone()));
    anyhow::ensure!(server.broker.set_record_validator(&validator));
    let register = |subject: &str, t: SchemaType, text: &str| -> anyhow::Result<i32> {
        let def = SchemaDef::new(t, text);
        Ok(registry
            .register(subject, &def, ImportIds::default())
            .with_context(|| format!("register {subject}"))?
            .id)
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for (k, kind) in [Kind::Unvalidated, Kind::Avro, Kind::Json]
            .into_iter()
            .enumerate()
        {
            let topic = format!("bench-{round}-{k}");
            let configs: &[(&str, &str)] = match kind {
                Kind::Unvalidated => &[],
                _ => &[("confluent.value.schema.validation", "true")],
            };
            let created = server
                .broker
                .create_topic(&topic, PARTITIONS as i64, 1, configs, false)
                .with_context(|| format!("create topic {topic}"))?;
            let subject = format!("{topic}-value");
            let id = match kind {
                Kind::Json => register(&subject, SchemaType::Json, JSON_ORDER)?,
                _ => register(&subject, SchemaType::Avro, AVRO_ORDER)?,
            };
            let mut n = rng.next_u64() % 1_000_000;
            let mut make = || {
                n += 1;
                let v = match kind {
                    Kind::Json => padded(|note| json_order(id, n, note)),
                    _ => padded(|note| avro_order(id, n, note)),
                };
                v.expect("orders pad to the value size")
            };
            let target = Target {
                bootstrap: server.addr.to_string(),
                topic: topic.clone(),
                settings: Vec::new(),
            };
            eprintln!(
                "[weir-bench] {} (round {round}): {producers} producers sending {records} records ...",
                kind.name()
            );
            let mut produced =
                produce_phase_with(&server.broker, &target, records, producers, &mut make)
                    .with_context(|| format!("produce {}", kind.name()))?;
            check_stored(&created, records)?;
            drop(created);
            server
                .broker
                .delete_topic(&topic)
                .with_context(|| format!("delete topic {topic}"))?;
            produced.row.phase = format!("{} #{round}", kind.name());
            rates[k].push(produced.row.records_per_sec());
            rows.push(produced.row);
        }
    }
    server.shutdown();
    drop(server);
    drop(scratch);

    println!();
    println!(
        "produce (acks=all, fsync=always; latency: send to delivery report); MB = 10^6 bytes of record values"
    );
    report::print_table(&rows);
    println!();
    let base = report::median(&mut rates[0]);
    for k in [1, 2] {
        let kind = [Kind::Unvalidated, Kind::Avro, Kind::Json][k];
        let rate = report::median(&mut rates[k]);
        let ratio = rate / base;
        println!(
            "{}: median of {rounds}: {rate:.0} records/s against {base:.0} unvalidated; ratio {ratio:.2} (goal >= {GOAL}: {})",
            kind.name(),
            if ratio >= GOAL { "met" } else { "NOT met" },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's values are what its schemas accept, and exactly
    /// the value size.
    #[test]
    fn the_orders_match_their_schemas() {
        let registry = Arc::new(
            Registry::open(Box::new(weir_schemas::MemoryLog::new()), Limits::default()).unwrap(),
        );
        let v = Validator::new(registry.clone());
        let reg = |s: &str, t, text| {
            registry
                .register(s, &SchemaDef::new(t, text), ImportIds::default())
                .unwrap()
                .id
        };
        let avro = reg("t-value", SchemaType::Avro, AVRO_ORDER);
        let json = reg("j-value", SchemaType::Json, JSON_ORDER);
        use weir_broker::{RecordPart, SubjectStrategy};
        for n in [0, 1, 2, 99_999, 123_456_789] {
            let a = padded(|note| avro_order(avro, n, note)).unwrap();
            let j = padded(|note| json_order(json, n, note)).unwrap();
            assert_eq!((a.len(), j.len()), (VALUE_BYTES, VALUE_BYTES));
            v.check_record("t", RecordPart::Value, SubjectStrategy::Topic, &a)
                .unwrap();
            v.check_record("j", RecordPart::Value, SubjectStrategy::Topic, &j)
                .unwrap();
        }
    }
}
