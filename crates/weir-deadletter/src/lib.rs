//! `weir-deadletter`: dead letters as a broker feature. A record a consumer
//! group could not handle is kept, unchanged, in the dead-letter topic of
//! its topic (`orders.dlq` for `orders`), with headers saying why and where
//! it came from; any Kafka client can read them, and Weir can list
//! dead-letter topics, read dead letters and replay them to their origin.
//!
//! [`format`] is the record format, the contract with the SDK's consumer
//! runtime (which may write dead letters to any Kafka cluster). The
//! operations ([`send`], [`list`], [`read`], [`replay`], [`purge`]) block
//! on disk I/O, own no sockets and no runtime, and are bounded per call.
//! A purge moves the partitions' log start offsets forward (Kafka's
//! DeleteRecords), durably, so every Kafka client sees the dead letters
//! gone too.
//!
//! ```
//! use weir_broker::{Broker, BrokerConfig};
//! use weir_deadletter::format::{DEFAULT_SUFFIX, ErrorKind, Failure, Origin};
//! use weir_deadletter::{Original, Purge, Selection};
//! use weir_log::{DataDir, DirConfig};
//!
//! let tmp = tempfile::tempdir()?;
//! let broker = Broker::open(DataDir::open(tmp.path(), DirConfig::default())?, BrokerConfig::default())?;
//! broker.create_topic("orders", 3, -1, &[], false)?;
//!
//! // A consumer of group "billing" gave up on orders-1 offset 7.
//! let failure = Failure {
//!     error: "card declined".into(),
//!     kind: ErrorKind::Permanent,
//!     attempts: 1,
//!     first_failure_ms: 1_000,
//!     last_failure_ms: 1_000,
//!     group: "billing".into(),
//! };
//! let origin = Origin { topic: "orders".into(), partition: 1, offset: 7, timestamp_ms: 900 };
//! let original = Original { key: Some(b"order-42"), value: Some(b"{}"), headers: &[] };
//! let offset = weir_deadletter::send(&broker, DEFAULT_SUFFIX, original, &failure, &origin)?;
//!
//! let topics = weir_deadletter::list(&broker, DEFAULT_SUFFIX)?;
//! assert_eq!((topics[0].topic.as_str(), topics[0].partitions, topics[0].depth), ("orders.dlq", 3, 1));
//! let page = weir_deadletter::read(&broker, "orders.dlq", 1, 0, 10)?;
//! assert_eq!(page.dead_letters[0].1.failure, failure);
//!
//! let outcome = weir_deadletter::replay(&broker, "orders.dlq", Selection::One { partition: 1, offset })?;
//! assert_eq!(outcome.replayed, 1);
//!
//! // Replayed, so purged: partition 1's dead letters below offset 1.
//! let purged = weir_deadletter::purge(&broker, DEFAULT_SUFFIX, "orders.dlq", Purge::Below { partition: 1, to_offset: 1 })?;
//! assert_eq!((purged[0].purged, purged[0].log_start_offset), (1, 1));
//! assert_eq!(weir_deadletter::list(&broker, DEFAULT_SUFFIX)?[0].depth, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod format;
mod ops;
mod purge;
pub mod queue_claim;
pub mod queue_io;
pub mod queue_slot;
mod replay;

pub use error::DeadLetterError;
pub use ops::{
    DeadLetterTopic, Original, Page, READ_BYTES_MAX, READ_COUNT_MAX, depths, list, read, send,
};
pub use purge::{PartitionPurged, Purge, purge};
pub use replay::{REPLAY_BATCH_BYTES_MAX, REPLAY_COUNT_MAX, ReplayOutcome, Selection, replay};
