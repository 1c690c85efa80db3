//! The store's correlation convention: an event whose metadata is a JSON
//! object with a string `correlationid` at its top level belongs to that
//! correlation (the SDK's envelope writes its extensions so), and the
//! correlation index lists each correlation's events in global order.
//!
//! Every append passes through here, so the common cases cost no JSON
//! parse: empty metadata, and metadata without the bytes
//! `"correlationid"`, are answered by a byte search. Only metadata that
//! names the key is parsed, and then only the key's value is kept (the
//! other fields are skipped, not built). The same function reads the
//! metadata at append and when the index is rebuilt from the log, so the
//! two always agree.

use std::borrow::Cow;

use crate::StoreError;

/// Longest correlation id the index keeps, in bytes (as for event ids).
/// A longer one, or an empty one, leaves its event out of the index.
pub const CORRELATION_ID_BYTES_MAX: usize = 256;

/// The key as every JSON writer writes it. A key spelled with escapes
/// (`"correlation\u0069d"`) is not found by the byte search, and the
/// event is not indexed: at append and at rebuild alike.
const KEY: &[u8] = b"\"correlationid\"";

/// Only the key the index needs; serde skips the other fields without
/// building them.
#[derive(serde::Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    correlationid: Option<Cow<'a, str>>,
}

/// The correlation id an event with `metadata` is indexed under, if any:
/// the top-level string `correlationid` of a JSON object, 1 to
/// [`CORRELATION_ID_BYTES_MAX`] bytes. Metadata that is not such an object
/// (not JSON, an array, a number for the id, a repeated key) has none.
pub fn correlation_of(metadata: &[u8]) -> Option<Cow<'_, str>> {
    if metadata.len() < KEY.len() || !contains(metadata, KEY) {
        return None;
    }
    // Serde reads a struct from an array too (by field order): only an
    // object has a `correlationid`.
    if metadata.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let probe: Probe<'_> = serde_json::from_slice(metadata).ok()?;
    probe
        .correlationid
        .filter(|id| (1..=CORRELATION_ID_BYTES_MAX).contains(&id.len()))
}

/// Checks a correlation id a reader asks for: 1 to
/// [`CORRELATION_ID_BYTES_MAX`] bytes (no other id can be in the index).
pub fn validate_correlation_id(id: &str) -> Result<(), StoreError> {
    if (1..=CORRELATION_ID_BYTES_MAX).contains(&id.len()) {
        Ok(())
    } else {
        Err(StoreError::InvalidCorrelationId {
            id: id.chars().take(64).collect(),
            reason: format!(
                "a correlation id is 1 to {CORRELATION_ID_BYTES_MAX} bytes, not {}",
                id.len()
            ),
        })
    }
}

/// Whether `needle` occurs in `haystack` (metadata is small: a plain scan
/// for the needle's first byte, then a compare).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    haystack[..=last_start]
        .iter()
        .enumerate()
        .any(|(i, &b)| b == first && &haystack[i..i + needle.len()] == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(metadata: &str) -> Option<String> {
        correlation_of(metadata.as_bytes()).map(Cow::into_owned)
    }

    #[test]
    fn the_sdk_shape_and_other_objects_are_read() {
        let sdk = r#"{"source":"/bank","subject":"a","dataversion":1,"correlationid":"c-1","causationid":"e-0"}"#;
        assert_eq!(of(sdk).as_deref(), Some("c-1"));
        assert_eq!(of(r#"{"correlationid":"c-2"}"#).as_deref(), Some("c-2"));
        assert_eq!(
            of(r#" { "correlationid" : "c\u0033" } "#).as_deref(),
            Some("c3")
        );
        assert_eq!(
            of(r#"{"nested":{"correlationid":"no"},"correlationid":"yes"}"#).as_deref(),
            Some("yes")
        );
    }

    #[test]
    fn everything_else_has_none() {
        for metadata in [
            "",
            "{}",
            r#"{"by":1}"#,
            r#"{"correlationid":1}"#,
            r#"{"correlationid":null}"#,
            r#"{"correlationid":""}"#,
            r#"{"nested":{"correlationid":"c"}}"#,
            r#"["correlationid","c"]"#,
            r#"{"correlationid":"a","correlationid":"b"}"#,
            r#"{"correlationid":"c""#,
            r#""correlationid""#,
            r#"{"correlation\u0069d":"c"}"#,
        ] {
            assert_eq!(of(metadata), None, "{metadata}");
        }
        let long = format!(r#"{{"correlationid":"{}"}}"#, "x".repeat(257));
        assert_eq!(of(&long), None);
        let longest = format!(r#"{{"correlationid":"{}"}}"#, "x".repeat(256));
        assert_eq!(of(&longest).map(|s| s.len()), Some(256));
    }

    #[test]
    fn ids_asked_for_are_checked() {
        assert!(validate_correlation_id("c-1").is_ok());
        assert!(validate_correlation_id("").is_err());
        assert!(validate_correlation_id(&"x".repeat(257)).is_err());
    }
}
