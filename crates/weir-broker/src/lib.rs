//! `weir-broker`: topics and partitions over `weir-log`, with Kafka's
//! topic configs, limits and internal-topic rules. It owns no sockets and no
//! runtime; the Kafka server (`weir-kafka`) and the HTTP API call into it.
//!
//! ```
//! use weir_broker::{Broker, BrokerConfig};
//! use weir_log::{DataDir, DirConfig, batch::BatchBuilder};
//!
//! let tmp = tempfile::tempdir()?;
//! let broker = Broker::open(DataDir::open(tmp.path(), DirConfig::default())?, BrokerConfig::default())?;
//! broker.create_topic("orders", 6, -1, &[("retention.ms", "86400000")], false)?;
//!
//! let key = b"order-42";
//! let partition = weir_broker::partitioner::partition_for_key(key, 6) as i32;
//! let mut batch = BatchBuilder::new(0);
//! batch.push(0, Some(key), Some(b"placed"), &[]);
//! let info = broker.produce("orders", partition, &mut batch.build())?;
//! assert_eq!(info.base_offset, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod broker;
pub mod compact;
pub mod compression;
mod config;
pub mod config_defs;
mod defaults;
mod error;
mod partition_state;
pub mod partitioner;
mod producers;
pub mod queue_log;
mod rewrite;
mod topic;
pub mod txn_index;
pub mod txn_log;
mod validation;

pub use broker::{Broker, BrokerConfig, TOPIC_NAME_BYTES_MAX, validate_topic_name};
pub use config::{
    Compaction, ConfigEntry, ConfigOp, ConfigSource, ProduceRules, Synonym, TargetCodec,
    TopicConfig, TopicDefaults, list_items, validate_default,
};
pub use defaults::DefaultsScope;
pub use error::BrokerError;
pub use producers::ProducerState;
pub use rewrite::compress;
pub use topic::{Produced, Topic, TopicTraffic, TrafficCounts};
pub use validation::{BatchValidator, RecordPart, RecordValidator, SchemaRules, SubjectStrategy};
