//! `weir-bench`: benchmarks that report ratios against baselines measured in the same run.

mod compaction_bench;
mod consumers_bench;
mod groups_bench;
mod heap;
mod http_bench;
mod log_bench;
mod metrics_bench;
mod outbox_bench;
mod produce_bench;
mod queues_bench;
mod raw;
mod redis_baseline;
mod report;
mod resp;
mod sagas_bench;
mod schemas_bench;
mod sdk_bench;
mod security_bench;
mod store_bench;
mod sys;
mod txn_bench;

use clap::{Parser, Subcommand};

/// The broker runs in this process for `weir-bench produce`; it gets the
/// allocator `weir serve` installs (see `weir_kafka::GuardedAllocator`),
/// wrapped to count the Rust heap (see [`heap`]).
#[global_allocator]
static ALLOCATOR: heap::Counting<weir_kafka::GuardedAllocator> =
    heap::Counting(weir_kafka::GuardedAllocator);

/// Weir's benchmarks; each reports a ratio against a baseline measured in
/// the same run on the same machine.
#[derive(Debug, Parser)]
#[command(name = "weir-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The durable partition log (weir-log): durable append throughput and
    /// latency against raw write+fdatasync, sequential read against pread,
    /// and peak memory while appending.
    Log(log_bench::LogArgs),
    /// The Kafka broker end to end: librdkafka producers (acks=all,
    /// idempotent) against the in-process broker, then a consumer reading it
    /// all back, against Redis Streams XADD with appendfsync always and raw
    /// write+fdatasync of the same bytes with as many syncs.
    Produce(produce_bench::ProduceArgs),
    /// Consumer groups through librdkafka: how long a group takes to
    /// rebalance when a member joins or leaves (against the heartbeat
    /// interval), and a group's fetch throughput against one consumer's.
    Groups(groups_bench::GroupsArgs),
    /// The event store (weir-store, in process) against a throwaway
    /// PostgreSQL doing the same work in the same run, and against the
    /// disk's limit (raw write+fdatasync): single-event appends with an
    /// exact expected version (1 and 16 writers), 100-event appends,
    /// reading one stream and reading all.
    Store(store_bench::StoreArgs),
    /// The HTTP/JSON API: batched produce over HTTP against the Kafka
    /// protocol for the same records, and event appends over HTTP against
    /// the store's API in process.
    Http(http_bench::HttpArgs),
    /// Command handling through the SDK, embedded: load + decide + append
    /// on one hot aggregate and over many aggregates, with and without
    /// snapshots, against the store's plain appends.
    Sdk(sdk_bench::SdkArgs),
    /// Sagas through the SDK's runner: completed 4-step sagas per second
    /// with 1,000 in flight, embedded and against `weir serve` in this
    /// process, against the store's single-event append rate.
    Sagas(sagas_bench::SagasArgs),
    /// The SDK's consumer runtime (weir::Service) through librdkafka:
    /// handler throughput against a bare rdkafka loop doing the same
    /// per-record work, the drain after a downstream recovers, and the
    /// memory held while a downstream is down, bounded by the in-flight
    /// limit rather than the backlog.
    Consumers(consumers_bench::ConsumersArgs),
    /// The transactional outbox's relay (SQLite and PostgreSQL outboxes)
    /// draining rows to the event store and to a topic on the in-process
    /// broker, against plain inserts of the same rows into the same
    /// database.
    Outbox(outbox_bench::OutboxArgs),
    /// Transactional produce through librdkafka: transactions of 100 and
    /// 1,000 records against idempotent produce of the same records, in
    /// the same run.
    Transactions(txn_bench::TxnArgs),
    /// The log cleaner: MB/s of a compacted topic's segments cleaned, and
    /// the p99 latency of durable produces to another topic while it
    /// cleans, against the same producer alone (goal: at most 1.5×).
    Compaction(compaction_bench::CompactionArgs),
    /// Queues: records acknowledged one by one per second by competing
    /// consumers of one partition over the HTTP queue API, against Redis
    /// Streams (XREADGROUP + XACK, appendfsync always) and a classic
    /// consumer group committing each offset synchronously, in one run.
    Queues(queues_bench::QueuesArgs),
    /// Kafka clients over SASL_SSL (TLS, SCRAM-SHA-512) against
    /// PLAINTEXT: librdkafka's produce (acks=all) and consume throughput
    /// through each listener of one in-process server, in alternating
    /// runs, and the ratio per direction (goal: at least 0.8).
    Security(security_bench::SecurityArgs),
    /// Validation on write: librdkafka producing 1 KiB orders in the
    /// schema registry's wire format to topics with
    /// confluent.value.schema.validation (Avro, JSON) against the same
    /// Avro bytes to a topic without it, alternating in one run.
    Schemas(schemas_bench::SchemasArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Log(args) => log_bench::run(&args),
        Command::Produce(args) => produce_bench::run(&args),
        Command::Groups(args) => groups_bench::run(&args),
        Command::Store(args) => store_bench::run(&args),
        Command::Http(args) => http_bench::run(&args),
        Command::Sdk(args) => sdk_bench::run(&args),
        Command::Sagas(args) => sagas_bench::run(args),
        Command::Consumers(args) => consumers_bench::run(&args),
        Command::Outbox(args) => outbox_bench::run(&args),
        Command::Transactions(args) => txn_bench::run(&args),
        Command::Compaction(args) => compaction_bench::run(&args),
        Command::Queues(args) => queues_bench::run(&args),
        Command::Security(args) => security_bench::run(&args),
        Command::Schemas(args) => schemas_bench::run(&args),
    }
}
