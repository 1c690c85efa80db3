//! Checks that a compressed batch really holds the records its header
//! claims: the payload is decompressed (gzip, snappy in raw or xerial
//! framing, lz4 frames, zstd), with a cap against decompression bombs, and
//! every record parsed. The batch is then stored as sent, never
//! recompressed; this only refuses what a consumer could not read.

use std::io::Read;

use weir_log::BatchError;
use weir_log::batch::{self, BatchHeader, HEADER_BYTES};

/// Why a batch's records are unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    #[error("unknown compression codec {codec}")]
    UnknownCodec { codec: i16 },
    #[error("{codec} payload does not decompress: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("{codec} payload decompresses to more than {bytes_max} bytes")]
    TooLarge {
        codec: &'static str,
        bytes_max: usize,
    },
    #[error("records do not match the header: {0}")]
    Records(BatchError),
}

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

/// Validates the records of one whole batch (`bytes`), decompressing at
/// most `decompressed_bytes_max` bytes.
pub fn validate_records(bytes: &[u8], decompressed_bytes_max: usize) -> Result<(), RecordsError> {
    let header = BatchHeader::parse(bytes).map_err(RecordsError::Records)?;
    let body = record_bytes(bytes, decompressed_bytes_max)?;
    check(&body, &header)
}

/// The record bytes of one whole batch (`bytes`): its payload, decompressed
/// (at most `decompressed_bytes_max` bytes) if the batch is compressed.
/// `weir_log::batch::parse_records` reads the records from them.
pub fn record_bytes(
    bytes: &[u8],
    decompressed_bytes_max: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, RecordsError> {
    let header = BatchHeader::parse(bytes).map_err(RecordsError::Records)?;
    let payload = &bytes[HEADER_BYTES.min(bytes.len())..header.total_bytes().min(bytes.len())];
    let body = match header.compression() {
        0 => return Ok(std::borrow::Cow::Borrowed(payload)),
        1 => read_capped(
            "gzip",
            flate2::read::GzDecoder::new(payload),
            decompressed_bytes_max,
        )?,
        2 => snappy(payload, decompressed_bytes_max)?,
        3 => read_capped(
            "lz4",
            lz4_flex::frame::FrameDecoder::new(payload),
            decompressed_bytes_max,
        )?,
        4 => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(payload).map_err(|e| {
                RecordsError::Corrupt {
                    codec: "zstd",
                    reason: e.to_string(),
                }
            })?;
            read_capped("zstd", decoder, decompressed_bytes_max)?
        }
        codec => return Err(RecordsError::UnknownCodec { codec }),
    };
    Ok(std::borrow::Cow::Owned(body))
}

fn check(body: &[u8], header: &BatchHeader) -> Result<(), RecordsError> {
    batch::parse_records(body, header)
        .map(drop)
        .map_err(RecordsError::Records)
}

fn read_capped(
    codec: &'static str,
    reader: impl Read,
    bytes_max: usize,
) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    reader
        .take(bytes_max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordsError::Corrupt {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > bytes_max {
        return Err(RecordsError::TooLarge { codec, bytes_max });
    }
    Ok(out)
}

/// Snappy as Kafka clients write it: Java's and most others' xerial
/// framing (a magic header, then length-prefixed raw blocks), or one raw
/// block.
fn snappy(payload: &[u8], bytes_max: usize) -> Result<Vec<u8>, RecordsError> {
    let corrupt = |reason: String| RecordsError::Corrupt {
        codec: "snappy",
        reason,
    };
    let mut out = Vec::new();
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), RecordsError> {
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if out.len() + len > bytes_max {
            return Err(RecordsError::TooLarge {
                codec: "snappy",
                bytes_max,
            });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(())
    };
    if !payload.starts_with(&XERIAL_MAGIC) {
        raw(payload, &mut out)?;
        return Ok(out);
    }
    let mut rest = payload
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| corrupt("short xerial header".into()))?;
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| corrupt("short xerial block length".into()))?;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("xerial block runs past the payload".into()))?;
        raw(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use weir_log::batch::BatchBuilder;

    /// A batch whose records are those of `plain`, compressed with `codec`.
    fn compressed(plain: &[u8], codec: i16, payload: Vec<u8>) -> Vec<u8> {
        let mut out = plain[..HEADER_BYTES].to_vec();
        out.extend_from_slice(&payload);
        let length = (out.len() - 12) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        out[21..23].copy_from_slice(&codec.to_be_bytes());
        out
    }

    fn plain() -> Vec<u8> {
        let mut b = BatchBuilder::new(10);
        for i in 0..20 {
            b.push(
                10 + i,
                Some(b"key"),
                Some(format!("value-{i}").as_bytes()),
                &[("h", b"v")],
            );
        }
        b.build()
    }

    #[test]
    fn every_codec_is_read_and_checked() {
        let plain = plain();
        let records = &plain[HEADER_BYTES..];
        assert_eq!(validate_records(&plain, 1 << 20), Ok(()));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(records).unwrap();
        let gzip = compressed(&plain, 1, gz.finish().unwrap());
        assert_eq!(validate_records(&gzip, 1 << 20), Ok(()));
        let raw_snappy = compressed(
            &plain,
            2,
            snap::raw::Encoder::new().compress_vec(records).unwrap(),
        );
        assert_eq!(validate_records(&raw_snappy, 1 << 20), Ok(()));
        let block = snap::raw::Encoder::new().compress_vec(records).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&block);
        assert_eq!(
            validate_records(&compressed(&plain, 2, xerial), 1 << 20),
            Ok(())
        );
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(records).unwrap();
        assert_eq!(
            validate_records(&compressed(&plain, 3, lz.finish().unwrap()), 1 << 20),
            Ok(())
        );
        let zstd =
            ruzstd::encoding::compress_to_vec(records, ruzstd::encoding::CompressionLevel::Fastest);
        assert_eq!(
            validate_records(&compressed(&plain, 4, zstd), 1 << 20),
            Ok(())
        );
        // Too big once decompressed.
        assert!(matches!(
            validate_records(&gzip, 100),
            Err(RecordsError::TooLarge { .. })
        ));
    }

    #[test]
    fn damage_is_named() {
        let plain = plain();
        assert!(matches!(
            validate_records(&compressed(&plain, 1, b"not gzip at all".to_vec()), 1 << 20),
            Err(RecordsError::Corrupt { codec: "gzip", .. })
        ));
        assert!(matches!(
            validate_records(&compressed(&plain, 7, Vec::new()), 1 << 20),
            Err(RecordsError::UnknownCodec { codec: 7 })
        ));
        // A header that claims more records than there are.
        let mut lying = plain.clone();
        lying[57..61].copy_from_slice(&21i32.to_be_bytes());
        assert!(matches!(
            validate_records(&lying, 1 << 20),
            Err(RecordsError::Records(_))
        ));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain[HEADER_BYTES..plain.len() - 3]).unwrap();
        assert!(matches!(
            validate_records(&compressed(&plain, 1, gz.finish().unwrap()), 1 << 20),
            Err(RecordsError::Records(_))
        ));
    }
}
