//! The dead-letter record format: the headers a dead letter carries, how
//! they are built from a failed record and parsed back, and how dead-letter
//! topics are named. Kafka clients (the SDK's consumer runtime through
//! librdkafka, against any cluster) and the broker both write and read dead
//! letters, so this page is the contract between them.
//!
//! # Topics and partitions
//!
//! The dead-letter topic of topic `t` is `t` followed by a suffix, `.dlq`
//! by default ([`DEFAULT_SUFFIX`], [`dead_letter_topic`]): `orders.dlq`.
//! It is a normal topic (not `__`-prefixed, so any Kafka client may read
//! and write it) and has as many partitions as its origin: a record that
//! failed on partition `p` of `t` goes to partition `p` of `t.dlq`, so the
//! failures of one partition stay in the order they happened.
//!
//! # Record
//!
//! A dead letter keeps the failed record's key, value and headers
//! unchanged and appends the headers below (values UTF-8, numbers in
//! decimal ASCII, times in milliseconds since the Unix epoch). Its own
//! timestamp is when it was written to the dead-letter topic.
//!
//! | header | value |
//! |---|---|
//! | `weir.dlq.error` | the error text, at most 4 KiB ([`ERROR_BYTES_MAX`]), cut on a character boundary |
//! | `weir.dlq.error.kind` | `transient`, `permanent` or `decode` |
//! | `weir.dlq.attempts` | how many times handling was tried |
//! | `weir.dlq.first.failure.ms` | when the first attempt failed |
//! | `weir.dlq.last.failure.ms` | when the last attempt failed |
//! | `weir.dlq.group` | the consumer group that failed to handle it |
//! | `weir.dlq.origin.topic` | the topic the record was read from |
//! | `weir.dlq.origin.partition` | its partition |
//! | `weir.dlq.origin.offset` | its offset there |
//! | `weir.dlq.origin.timestamp.ms` | its timestamp there |
//! | `weir.dlq.replayed.from` | replay marker: `<dead-letter topic>/<partition>/<offset>` of the dead letter it was last replayed from |
//! | `weir.dlq.replays` | replay marker: how many times the record was replayed (1 on the first replay) |
//!
//! Every header but the two replay markers is required in a dead letter;
//! the replay markers come together or not at all. No `weir.dlq.*` header
//! appears twice, and none has a null value.
//!
//! # Dead-lettering and replaying again
//!
//! A replay ([`replay_headers`]) produces the record back to its origin
//! topic and partition with its original key, value and headers plus the
//! two replay markers (the failure and origin headers are dropped), and
//! `weir.dlq.replays` one more than the dead letter carried. When a record
//! that already carries `weir.dlq.*` headers fails again
//! ([`dead_letter_headers`]), its failure and origin headers are replaced by
//! the new ones while the replay markers are kept, so a dead letter whose
//! [`DeadLetter::replay`] is set failed again after a replay.

use std::fmt;

use weir_log::batch::Record;

/// The dead-letter topic suffix unless configured otherwise.
pub const DEFAULT_SUFFIX: &str = ".dlq";
/// The prefix every dead-letter header name starts with.
pub const HEADER_PREFIX: &str = "weir.dlq.";
/// Longest error text a dead letter keeps, in bytes.
pub const ERROR_BYTES_MAX: usize = 4 * 1024;

pub const ERROR: &str = "weir.dlq.error";
pub const ERROR_KIND: &str = "weir.dlq.error.kind";
pub const ATTEMPTS: &str = "weir.dlq.attempts";
pub const FIRST_FAILURE_MS: &str = "weir.dlq.first.failure.ms";
pub const LAST_FAILURE_MS: &str = "weir.dlq.last.failure.ms";
pub const GROUP: &str = "weir.dlq.group";
pub const ORIGIN_TOPIC: &str = "weir.dlq.origin.topic";
pub const ORIGIN_PARTITION: &str = "weir.dlq.origin.partition";
pub const ORIGIN_OFFSET: &str = "weir.dlq.origin.offset";
pub const ORIGIN_TIMESTAMP_MS: &str = "weir.dlq.origin.timestamp.ms";
pub const REPLAYED_FROM: &str = "weir.dlq.replayed.from";
pub const REPLAYS: &str = "weir.dlq.replays";

/// The headers every dead letter carries, in the order they are written.
pub const REQUIRED_HEADERS: [&str; 10] = [
    ERROR,
    ERROR_KIND,
    ATTEMPTS,
    FIRST_FAILURE_MS,
    LAST_FAILURE_MS,
    GROUP,
    ORIGIN_TOPIC,
    ORIGIN_PARTITION,
    ORIGIN_OFFSET,
    ORIGIN_TIMESTAMP_MS,
];

/// Most bytes of an offending header value an error message quotes.
const QUOTED_BYTES_MAX: usize = 64;

/// One record header: a name and a value that Kafka allows to be null.
pub type Header = (String, Option<Vec<u8>>);

/// Why handling failed, as the handler classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Might succeed later (a downstream was down); retries ran out.
    Transient,
    /// Will fail however often it is tried.
    Permanent,
    /// The record could not be decoded; always permanent.
    Decode,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Decode => "decode",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "transient" => Some(Self::Transient),
            "permanent" => Some(Self::Permanent),
            "decode" => Some(Self::Decode),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How handling a record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The last error's text; written cut to [`ERROR_BYTES_MAX`].
    pub error: String,
    pub kind: ErrorKind,
    pub attempts: u32,
    pub first_failure_ms: i64,
    pub last_failure_ms: i64,
    /// The consumer group that failed to handle the record.
    pub group: String,
}

/// Where the failed record was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// The replay markers: the record was replayed from a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The dead letter it was last replayed from.
    pub from_topic: String,
    pub from_partition: i32,
    pub from_offset: i64,
    /// How many times it was replayed, at least 1.
    pub replays: u32,
}

/// A dead letter read back: the original record and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The original record's headers, in order, without any `weir.dlq.*`.
    pub headers: Vec<Header>,
    pub failure: Failure,
    pub origin: Origin,
    /// Set when the record had been replayed before it failed this time.
    pub replay: Option<Replay>,
}

/// Why a record is not a well-formed dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a dead letter: the record has no weir.dlq.* failure or origin header")]
    NotDeadLetter,
    #[error("dead letter without its {name} header")]
    MissingHeader { name: &'static str },
    #[error("dead letter with {name} twice")]
    DuplicateHeader { name: String },
    #[error("dead letter with a malformed {name} header {value:?}: {reason}")]
    BadHeader {
        name: &'static str,
        /// The value, cut to 64 bytes (lossy UTF-8).
        value: String,
        reason: &'static str,
    },
}

/// The dead-letter topic of `origin_topic`: its name followed by `suffix`.
pub fn dead_letter_topic(origin_topic: &str, suffix: &str) -> String {
    format!("{origin_topic}{suffix}")
}

/// The origin topic a dead-letter topic is named after, or `None` when
/// `topic` does not end with `suffix` (or is nothing but the suffix).
pub fn origin_topic<'a>(topic: &'a str, suffix: &str) -> Option<&'a str> {
    topic
        .strip_suffix(suffix)
        .filter(|origin| !origin.is_empty())
}

/// `error` cut to at most [`ERROR_BYTES_MAX`] bytes on a char boundary.
pub fn truncate_error(error: &str) -> &str {
    if error.len() <= ERROR_BYTES_MAX {
        return error;
    }
    let mut end = ERROR_BYTES_MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

fn is_replay_marker(name: &str) -> bool {
    name == REPLAYED_FROM || name == REPLAYS
}

/// The headers of the dead letter of a record with `original` headers:
/// those headers in order, without any earlier failure or origin headers
/// (replay markers stay), then the failure and origin headers.
pub fn dead_letter_headers(
    original: &[(&str, Option<&[u8]>)],
    failure: &Failure,
    origin: &Origin,
) -> Vec<Header> {
    let mut out: Vec<Header> = original
        .iter()
        .filter(|(name, _)| !name.starts_with(HEADER_PREFIX) || is_replay_marker(name))
        .map(|&(name, value)| (name.to_owned(), value.map(<[u8]>::to_vec)))
        .collect();
    let values = [
        truncate_error(&failure.error).to_owned(),
        failure.kind.as_str().to_owned(),
        failure.attempts.to_string(),
        failure.first_failure_ms.to_string(),
        failure.last_failure_ms.to_string(),
        failure.group.clone(),
        origin.topic.clone(),
        origin.partition.to_string(),
        origin.offset.to_string(),
        origin.timestamp_ms.to_string(),
    ];
    for (name, value) in REQUIRED_HEADERS.iter().zip(values) {
        out.push(((*name).to_owned(), Some(value.into_bytes())));
    }
    out
}

/// The headers a replay of `dead_letter` (stored at `from_topic`,
/// `from_partition`, `from_offset`) is produced with: the original ones,
/// then the replay markers with the replay count one higher.
pub fn replay_headers(
    dead_letter: &DeadLetter,
    from_topic: &str,
    from_partition: i32,
    from_offset: i64,
) -> Vec<Header> {
    let replays = dead_letter
        .replay
        .as_ref()
        .map_or(0, |r| r.replays)
        .saturating_add(1);
    let mut out = dead_letter.headers.clone();
    out.push((
        REPLAYED_FROM.to_owned(),
        Some(format!("{from_topic}/{from_partition}/{from_offset}").into_bytes()),
    ));
    out.push((REPLAYS.to_owned(), Some(replays.to_string().into_bytes())));
    out
}

/// Reads a stored record back as a dead letter.
pub fn parse_dead_letter(record: &Record<'_>) -> Result<DeadLetter, FormatError> {
    let mut found: [Option<&[u8]>; 12] = [None; 12];
    let names = all_names();
    let mut headers = Vec::with_capacity(record.headers.len());
    for &(name, value) in &record.headers {
        if !name.starts_with(HEADER_PREFIX) {
            headers.push((name.to_owned(), value.map(<[u8]>::to_vec)));
            continue;
        }
        // An unknown weir.dlq.* header (from a later version) is dropped:
        // it is not one of the original record's headers.
        let Some(idx) = names.iter().position(|n| *n == name) else {
            continue;
        };
        if found[idx].is_some() {
            return Err(FormatError::DuplicateHeader {
                name: name.to_owned(),
            });
        }
        let Some(value) = value else {
            return Err(bad(names[idx], b"", "null value"));
        };
        found[idx] = Some(value);
    }
    if found[..REQUIRED_HEADERS.len()].iter().all(Option::is_none) {
        return Err(FormatError::NotDeadLetter);
    }
    let get = |idx: usize| found[idx].ok_or(FormatError::MissingHeader { name: names[idx] });
    let failure = Failure {
        error: text(ERROR, get(0)?)?.to_owned(),
        kind: {
            let v = get(1)?;
            ErrorKind::parse(text(ERROR_KIND, v)?)
                .ok_or_else(|| bad(ERROR_KIND, v, "not transient, permanent or decode"))?
        },
        attempts: number(ATTEMPTS, get(2)?)?,
        first_failure_ms: number(FIRST_FAILURE_MS, get(3)?)?,
        last_failure_ms: number(LAST_FAILURE_MS, get(4)?)?,
        group: text(GROUP, get(5)?)?.to_owned(),
    };
    if failure.error.len() > ERROR_BYTES_MAX {
        return Err(bad(ERROR, get(0)?, "longer than 4096 bytes"));
    }
    let origin = Origin {
        topic: text(ORIGIN_TOPIC, get(6)?)?.to_owned(),
        partition: non_negative(ORIGIN_PARTITION, get(7)?)?,
        offset: non_negative(ORIGIN_OFFSET, get(8)?)?,
        timestamp_ms: number(ORIGIN_TIMESTAMP_MS, get(9)?)?,
    };
    if origin.topic.is_empty() {
        return Err(bad(ORIGIN_TOPIC, b"", "empty"));
    }
    let replay = match (found[10], found[11]) {
        (None, None) => None,
        (Some(_), None) => return Err(FormatError::MissingHeader { name: REPLAYS }),
        (None, Some(_)) => {
            return Err(FormatError::MissingHeader {
                name: REPLAYED_FROM,
            });
        }
        (Some(from), Some(replays)) => Some(parse_replay(from, replays)?),
    };
    Ok(DeadLetter {
        key: record.key.map(<[u8]>::to_vec),
        value: record.value.map(<[u8]>::to_vec),
        headers,
        failure,
        origin,
        replay,
    })
}

/// Required headers, then the two replay markers: the index of each in
/// `parse_dead_letter`'s table.
fn all_names() -> [&'static str; 12] {
    let mut names = [""; 12];
    names[..10].copy_from_slice(&REQUIRED_HEADERS);
    names[10] = REPLAYED_FROM;
    names[11] = REPLAYS;
    names
}

fn parse_replay(from: &[u8], replays: &[u8]) -> Result<Replay, FormatError> {
    let replays: u32 = number(REPLAYS, replays)?;
    if replays == 0 {
        return Err(bad(
            REPLAYS,
            b"0",
            "a replayed record was replayed at least once",
        ));
    }
    let shape = || bad(REPLAYED_FROM, from, "not <topic>/<partition>/<offset>");
    let mut parts = text(REPLAYED_FROM, from)?.rsplitn(3, '/');
    let (Some(offset), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(shape());
    };
    if topic.is_empty() {
        return Err(shape());
    }
    let from_partition = partition.parse().ok().filter(|p: &i32| *p >= 0);
    let from_offset = offset.parse().ok().filter(|o: &i64| *o >= 0);
    let (Some(from_partition), Some(from_offset)) = (from_partition, from_offset) else {
        return Err(shape());
    };
    Ok(Replay {
        from_topic: topic.to_owned(),
        from_partition,
        from_offset,
        replays,
    })
}

fn bad(name: &'static str, value: &[u8], reason: &'static str) -> FormatError {
    let quoted = &value[..value.len().min(QUOTED_BYTES_MAX)];
    FormatError::BadHeader {
        name,
        value: String::from_utf8_lossy(quoted).into_owned(),
        reason,
    }
}

fn text<'a>(name: &'static str, value: &'a [u8]) -> Result<&'a str, FormatError> {
    std::str::from_utf8(value).map_err(|_| bad(name, value, "not UTF-8"))
}

/// A decimal number: ASCII digits with an optional leading minus, nothing
/// else (no sign `+`, no spaces).
fn number<T: std::str::FromStr>(name: &'static str, value: &[u8]) -> Result<T, FormatError> {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad(name, value, "not a decimal number"));
    }
    text(name, value)?
        .parse()
        .map_err(|_| bad(name, value, "out of range"))
}

fn non_negative<T>(name: &'static str, value: &[u8]) -> Result<T, FormatError>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    let n: T = number(name, value)?;
    if n < T::default() {
        return Err(bad(name, value, "negative"));
    }
    Ok(n)
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
