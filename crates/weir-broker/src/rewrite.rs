//! What a topic's configs do to a produce before the log sees it, as
//! Kafka's log validator does: every batch's records are read (through
//! any compression, with a cap against decompression bombs); CreateTime
//! timestamps outside `message.timestamp.before.max.ms` /
//! `after.max.ms` are refused; batches are recompressed to the topic's
//! `compression.type` unless it is `producer`; and under `LogAppendTime`
//! each batch is marked so the log stamps its max timestamp with the
//! append time.

use std::io::Write;

use weir_log::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD_BYTES};

use crate::compression::{RecordsError, record_bytes};
use crate::config::{ProduceRules, TargetCodec};
use crate::error::BrokerError;
use crate::validation::{RecordPart, RecordValidator};

const ATTRIBUTES_AT: usize = 21;
const CRC_AT: usize = 17;
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
/// Snappy blocks of Java's xerial framing, which Kafka's clients read.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];

/// Applies `rules` to the concatenated batches of one produce at time
/// `now_ms`. Returns the rewritten bytes when a batch was recompressed,
/// else `None` (the bytes were only changed in place, if at all).
#[cfg(test)]
pub(crate) fn prepare(
    topic: &str,
    partition: i32,
    rules: &ProduceRules,
    batches: &mut [u8],
    now_ms: i64,
    decompressed_bytes_max: usize,
) -> Result<Option<Vec<u8>>, BrokerError> {
    let limits = (now_ms, decompressed_bytes_max);
    prepare_checked(topic, partition, rules, batches, limits, None)
}

/// [`prepare`], with every record's key and value checked by `validator`
/// where the topic's schema rules ask for it (before anything is
/// rewritten, so a refused produce changes nothing). `limits` is the time
/// now and the decompressed size cap.
pub(crate) fn prepare_checked(
    topic: &str,
    partition: i32,
    rules: &ProduceRules,
    batches: &mut [u8],
    (now_ms, decompressed_bytes_max): (i64, usize),
    validator: Option<&dyn RecordValidator>,
) -> Result<Option<Vec<u8>>, BrokerError> {
    let mut checker = match (rules.schemas.any(), validator) {
        (false, _) => None,
        (true, Some(v)) => Some(v.batch(topic)),
        (true, None) => {
            return Err(BrokerError::RecordRefused {
                topic: topic.to_owned(),
                partition,
                index: 0,
                reason:
                    "the topic's schema validation is on, but this server has no schema registry"
                        .to_owned(),
            });
        }
    };
    let records_error = |source| BrokerError::InvalidRecords {
        topic: topic.to_owned(),
        source,
    };
    let mut rewritten: Option<Vec<u8>> = None;
    let mut pos = 0;
    // Framing errors are left to the log's validation, which names them
    // precisely: the walk stops at the first batch it cannot frame.
    while let Ok(header) = BatchHeader::parse(&batches[pos..]) {
        let end = pos + header.total_bytes();
        if header.length < (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 || end > batches.len() {
            break;
        }
        let bytes = &batches[pos..end];
        let body = record_bytes(bytes, decompressed_bytes_max).map_err(records_error)?;
        let mut ts_min = i64::MAX;
        let mut ts_max = i64::MIN;
        let mut keyless = false;
        let mut refused: Option<(i64, String)> = None;
        let checks = checker.as_mut().filter(|_| !header.is_control());
        let mut checks = checks.map(|c| (c, rules.schemas));
        batch::for_each_record(&body, &header, |r| {
            ts_min = ts_min.min(r.timestamp);
            ts_max = ts_max.max(r.timestamp);
            keyless |= r.key.is_none();
            if let (Some((check, schemas)), None) = (checks.as_mut(), &refused) {
                let parts = [
                    (RecordPart::Key, schemas.key, r.key),
                    (RecordPart::Value, schemas.value, r.value),
                ];
                for (part, strategy, bytes) in parts {
                    let (Some(strategy), Some(bytes)) = (strategy, bytes) else {
                        continue;
                    };
                    if let Err(reason) = check.check(part, strategy, bytes) {
                        refused = Some((r.offset - header.base_offset, reason));
                        break;
                    }
                }
            }
            Ok::<_, weir_log::BatchError>(())
        })
        .map_err(|e| records_error(RecordsError::Records(e)))?;
        if let Some((index, reason)) = refused {
            return Err(BrokerError::RecordRefused {
                topic: topic.to_owned(),
                partition,
                index: i32::try_from(index).unwrap_or(i32::MAX),
                reason,
            });
        }
        if keyless && rules.keys_required && !header.is_control() {
            return Err(BrokerError::KeyRequired {
                topic: topic.to_owned(),
                partition,
            });
        }
        if !rules.log_append_time && header.record_count > 0 {
            check_timestamps(topic, rules, ts_min, ts_max, now_ms)?;
        }
        let recompress = match rules.codec {
            TargetCodec::Codec(codec) if codec != header.compression() => Some(codec),
            _ => None,
        };
        match (recompress, rewritten.as_mut()) {
            (Some(codec), _) => {
                let out = rewritten.get_or_insert_with(|| batches[..pos].to_vec());
                let payload = compress(codec, rules.gzip_level, &body);
                let start = out.len();
                out.extend_from_slice(&bytes[..HEADER_BYTES]);
                out.extend_from_slice(&payload);
                set_codec(&mut out[start..], codec);
                mark(&mut out[start..], rules.log_append_time);
            }
            (None, Some(out)) => {
                let start = out.len();
                out.extend_from_slice(bytes);
                mark(&mut out[start..], rules.log_append_time);
            }
            (None, None) => {
                drop(body);
                mark(&mut batches[pos..end], rules.log_append_time);
            }
        }
        pos = end;
    }
    if let Some(out) = rewritten.as_mut() {
        // Whatever could not be framed goes along for the log to refuse.
        out.extend_from_slice(&batches[pos..]);
    }
    Ok(rewritten)
}

fn check_timestamps(
    topic: &str,
    rules: &ProduceRules,
    ts_min: i64,
    ts_max: i64,
    now_ms: i64,
) -> Result<(), BrokerError> {
    let earliest = now_ms.saturating_sub(rules.timestamp_before_max_ms);
    let latest = now_ms.saturating_add(rules.timestamp_after_max_ms);
    let bad = if ts_min < earliest {
        Some((
            ts_min,
            "message.timestamp.before.max.ms",
            rules.timestamp_before_max_ms,
        ))
    } else if ts_max > latest {
        Some((
            ts_max,
            "message.timestamp.after.max.ms",
            rules.timestamp_after_max_ms,
        ))
    } else {
        None
    };
    match bad {
        None => Ok(()),
        Some((timestamp_ms, config, bound_ms)) => Err(BrokerError::InvalidTimestamp {
            topic: topic.to_owned(),
            timestamp_ms,
            now_ms,
            config,
            bound_ms,
        }),
    }
}

/// Sets the batch's codec bits and length for its new payload, and its
/// CRC.
fn set_codec(batch: &mut [u8], codec: i16) {
    let length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = be_i16(batch, ATTRIBUTES_AT) & !COMPRESSION_MASK | codec;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    reseal(batch);
}

/// Under LogAppendTime, sets the batch's timestamp-type bit (the log then
/// writes the append time as its max timestamp).
fn mark(batch: &mut [u8], log_append_time: bool) {
    let attributes = be_i16(batch, ATTRIBUTES_AT);
    if !log_append_time || attributes & TIMESTAMP_TYPE_LOG_APPEND != 0 {
        return;
    }
    let attributes = attributes | TIMESTAMP_TYPE_LOG_APPEND;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    reseal(batch);
}

fn reseal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Compresses record bytes as Kafka's clients would write them.
pub fn compress(codec: i16, gzip_level: Option<u32>, records: &[u8]) -> Vec<u8> {
    match codec {
        1 => {
            let level =
                gzip_level.map_or_else(flate2::Compression::default, flate2::Compression::new);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
            gz.write_all(records).expect("writes to a Vec do not fail");
            gz.finish().expect("writes to a Vec do not fail")
        }
        2 => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder
                    .compress_vec(block)
                    .expect("blocks are far below snappy's limit");
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
        3 => {
            let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
            lz.write_all(records).expect("writes to a Vec do not fail");
            lz.finish().expect("writes to a Vec do not fail")
        }
        4 => {
            ruzstd::encoding::compress_to_vec(records, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => records.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::validate_records;
    use weir_log::batch::BatchBuilder;

    fn rules(codec: TargetCodec, log_append_time: bool) -> ProduceRules {
        ProduceRules {
            codec,
            gzip_level: None,
            log_append_time,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            keys_required: false,
            schemas: crate::SchemaRules::default(),
        }
    }

    fn two_batches(ts: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for n in 0..2 {
            let mut b = BatchBuilder::new(ts);
            for i in 0..10 {
                b.push(
                    ts + i,
                    Some(b"k"),
                    Some(format!("v{n}-{i}").as_bytes()),
                    &[],
                );
            }
            out.extend_from_slice(&b.build());
        }
        out
    }

    #[test]
    fn batches_are_recompressed_to_every_codec_and_read_back() {
        let now = 1_700_000_000_000;
        let plain = two_batches(now);
        for codec in [1, 2, 3, 4] {
            let mut bytes = plain.clone();
            let out = prepare(
                "t",
                0,
                &rules(TargetCodec::Codec(codec), false),
                &mut bytes,
                now,
                1 << 20,
            )
            .unwrap()
            .expect("recompressed");
            let headers = batch::validate_all(&out).unwrap();
            assert_eq!(headers.len(), 2);
            for (h, range) in headers {
                assert_eq!(h.compression(), codec);
                validate_records(&out[range], 1 << 20).unwrap();
            }
            // And back to none.
            let mut again = out.clone();
            let back = prepare(
                "t",
                0,
                &rules(TargetCodec::Codec(0), false),
                &mut again,
                now,
                1 << 20,
            )
            .unwrap()
            .unwrap();
            assert_eq!(back, plain);
        }
        // Same codec, or producer: untouched.
        let mut bytes = plain.clone();
        assert!(
            prepare(
                "t",
                0,
                &rules(TargetCodec::Codec(0), false),
                &mut bytes,
                now,
                1 << 20
            )
            .unwrap()
            .is_none()
        );
        assert!(
            prepare(
                "t",
                0,
                &rules(TargetCodec::Producer, false),
                &mut bytes,
                now,
                1 << 20
            )
            .unwrap()
            .is_none()
        );
        assert_eq!(bytes, plain);
    }

    #[test]
    fn log_append_time_marks_batches_and_skips_bounds() {
        let mut bytes = two_batches(0);
        assert!(
            prepare(
                "t",
                0,
                &rules(TargetCodec::Producer, true),
                &mut bytes,
                10_000_000,
                1 << 20
            )
            .unwrap()
            .is_none()
        );
        for (h, _) in batch::validate_all(&bytes).unwrap() {
            assert!(h.is_log_append_time());
        }
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused() {
        let now = 1_700_000_000_000;
        let mut r = rules(TargetCodec::Producer, false);
        let mut future = two_batches(now + 3_600_001);
        assert!(matches!(
            prepare("t", 0, &r, &mut future, now, 1 << 20),
            Err(BrokerError::InvalidTimestamp {
                config: "message.timestamp.after.max.ms",
                ..
            })
        ));
        r.timestamp_before_max_ms = 1000;
        let mut past = two_batches(now - 1001);
        assert!(matches!(
            prepare("t", 0, &r, &mut past, now, 1 << 20),
            Err(BrokerError::InvalidTimestamp {
                config: "message.timestamp.before.max.ms",
                ..
            })
        ));
        let mut fine = two_batches(now - 1000);
        // The last record is 9 ms later than the first, still in bounds.
        prepare("t", 0, &r, &mut fine, now, 1 << 20).unwrap();
    }
}
