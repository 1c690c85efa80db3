//! `weir-log`: Weir's durable partition log.
//!
//! A [`DataDir`] holds many [`Log`]s (one per partition or internal log).
//! Each log is a sequence of segments storing Kafka RecordBatch v2 bytes as
//! producers sent them, with offsets assigned on append, so a fetch can
//! serve file bytes unchanged. One sync scheduler per data directory shares
//! each `fdatasync` among all logs and appenders (group commit); under
//! [`FsyncPolicy::Always`] an append returns only once durable and readers
//! never see a record a crash could take back. The on-disk format and the
//! recovery rules are in `docs/design/log-format.md`.
//!
//! The crate owns no sockets and no async runtime; all file access goes
//! through the [`Storage`] seam, which [`sim::SimStorage`] implements for
//! crash tests.
//!
//! ```
//! use weir_log::{batch::BatchBuilder, DataDir, DirConfig, LogConfig};
//!
//! let tmp = tempfile::tempdir()?;
//! let dir = DataDir::open(tmp.path(), DirConfig::default())?;
//! let log = dir.open_log("orders-0", LogConfig::default())?;
//!
//! let mut batch = BatchBuilder::new(1_700_000_000_000);
//! batch.push(1_700_000_000_000, Some(b"order-1"), Some(b"placed"), &[]);
//! let info = log.append(&mut batch.build())?; // durable when it returns
//! assert_eq!((info.base_offset, info.last_offset), (0, 0));
//!
//! let read = log.read(0, 1 << 20)?;
//! let records = weir_log::batch::records(&read.bytes)?;
//! assert_eq!(records[0].value, Some(&b"placed"[..]));
//! assert_eq!(read.next_offset, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
mod changes;
mod checkpoint;
mod clean;
mod config;
mod dir;
mod error;
mod log;
mod segment;
pub mod sim;
mod snapshot;
pub mod stats;
mod storage;
mod sync;

pub use changes::{Changed, Changes};
pub use clean::{CleanBatch, CleanOptions, CleanOutcome, CleanPolicy, Retain, Throttle};
pub use config::{
    BATCH_BYTES_LIMIT, Clock, DirConfig, FsyncPolicy, LogConfig, ManualClock, SEGMENT_BYTES_LIMIT,
    SEGMENT_BYTES_MIN, SystemClock,
};
pub use dir::{DataDir, LOG_NAME_BYTES_MAX, validate_log_name};
pub use error::{BatchError, LogError, Result};
pub use log::{AppendInfo, Log, ReadBatches, RecordsDeleted, RetentionOutcome, TimeMatch};
pub use snapshot::{SNAPSHOT_BYTES_MAX, SNAPSHOTS_KEPT};
pub use storage::{DirLock, OsStorage, Storage, StorageFile};
pub use sync::{GATHER_WAIT_MAX, SyncHistograms, SyncStats, UntilDurable};
