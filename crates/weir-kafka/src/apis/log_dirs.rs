//! DescribeLogDirs: the one data directory (its absolute path, the size of
//! its file system and the space left), with the size of each partition's
//! segments. Replicas are never moved between directories here, so no
//! partition is a future replica and none lags; AlterReplicaLogDirs to the
//! data directory is the no-op a Kafka broker makes of a move to the
//! directory a replica is already in, and to any other path is
//! LOG_DIR_NOT_FOUND.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ApiKey, DescribeLogDirsRequest,
    DescribeLogDirsResponse,
};

use super::{Caller, blocking, str_bytes, topic_name};
use crate::Shared;
use crate::authz::{Alter, Describe};
use crate::codes::Code;
use crate::conn::{ConnError, decode, encode};

pub(crate) async fn handle(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: DescribeLogDirsRequest = decode(ApiKey::DescribeLogDirs, version, body)?;
    if !caller.may_cluster(Describe) {
        // As Kafka: no directories, and (from v3) the reason.
        let response = DescribeLogDirsResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code());
        return encode(ApiKey::DescribeLogDirs, version, &response);
    }
    // Null asks for every partition; otherwise only those named.
    let wanted: Option<HashMap<String, Vec<i32>>> = request.topics.map(|topics| {
        let mut wanted: HashMap<String, Vec<i32>> = HashMap::new();
        for t in topics {
            wanted
                .entry(t.topic.0.to_string())
                .or_default()
                .extend(t.partitions);
        }
        wanted
    });
    let shared = shared.clone();
    let mut result = blocking(move || describe(&shared, wanted.as_ref())).await;
    if version < 4 {
        // The sizes of the file system came with v4.
        result = result.with_total_bytes(-1).with_usable_bytes(-1);
    }
    encode(
        ApiKey::DescribeLogDirs,
        version,
        &DescribeLogDirsResponse::default().with_results(vec![result]),
    )
}

/// The data directory's absolute path, as log dirs are named to clients.
fn log_dir(shared: &Shared) -> std::path::PathBuf {
    let root = shared.broker.data_dir().root();
    std::path::absolute(root).unwrap_or_else(|_| root.to_owned())
}

pub(crate) async fn alter(
    version: i16,
    body: Bytes,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Bytes, ConnError> {
    let request: AlterReplicaLogDirsRequest = decode(ApiKey::AlterReplicaLogDirs, version, body)?;
    let shared = shared.clone();
    let denied = !caller.may_cluster(Alter);
    let results = blocking(move || {
        let here = log_dir(&shared);
        let mut results: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
        for dir in request.dirs {
            let same_dir = Path::new(dir.path.as_str()) == here;
            for topic in dir.topics {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|&p| {
                        let code = match shared.broker.partition(&topic.name.0, p) {
                            _ if denied => Code::ClusterAuthorizationFailed,
                            Err(_) => Code::UnknownTopicOrPartition,
                            Ok(_) if !same_dir => Code::LogDirNotFound,
                            Ok(_) => Code::None,
                        };
                        AlterReplicaLogDirPartitionResult::default()
                            .with_partition_index(p)
                            .with_error_code(code.code())
                    })
                    .collect();
                results.push(
                    AlterReplicaLogDirTopicResult::default()
                        .with_topic_name(topic.name)
                        .with_partitions(partitions),
                );
            }
        }
        results
    })
    .await;
    encode(
        ApiKey::AlterReplicaLogDirs,
        version,
        &AlterReplicaLogDirsResponse::default().with_results(results),
    )
}

fn describe(shared: &Shared, wanted: Option<&HashMap<String, Vec<i32>>>) -> DescribeLogDirsResult {
    let log_dir = log_dir(shared);
    let result =
        DescribeLogDirsResult::default().with_log_dir(str_bytes(&log_dir.to_string_lossy()));
    let (total_bytes, usable_bytes) = match disk_space(&log_dir) {
        Ok(space) => space,
        Err(e) => {
            tracing::warn!(%e, dir = %log_dir.display(), "describing the data directory failed");
            return result.with_error_code(Code::KafkaStorageError.code());
        }
    };
    let topics = shared
        .broker
        .topics()
        .iter()
        .filter_map(|topic| {
            let asked = match wanted {
                None => None,
                Some(w) => Some(w.get(&topic.name)?),
            };
            let partitions: Vec<DescribeLogDirsPartition> = (0..topic.partition_count() as i32)
                .filter(|p| asked.is_none_or(|a| a.contains(p)))
                .filter_map(|p| {
                    let log = topic.partition(p).ok()?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p)
                            .with_partition_size(
                                i64::try_from(log.size_bytes()).unwrap_or(i64::MAX),
                            )
                            .with_offset_lag(0)
                            .with_is_future_key(false),
                    )
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    result
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes)
}

/// The size of the file system holding `dir` and the bytes an unprivileged
/// writer may still use there, from statvfs(3).
#[allow(
    unsafe_code,
    reason = "statvfs has no std wrapper; see the SAFETY note"
)]
fn disk_space(dir: &Path) -> std::io::Result<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and
    // `stat` points to writable memory of the struct's size.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the whole struct.
    let stat = unsafe { stat.assume_init() };
    let bytes = |blocks: u64| {
        i64::try_from(u128::from(blocks) * u128::from(stat.f_frsize)).unwrap_or(i64::MAX)
    };
    Ok((bytes(stat.f_blocks), bytes(stat.f_bavail)))
}
