//! Reading a Server-Sent Events stream (the WHATWG event-stream format):
//! `id:`, `event:` and `data:` fields, events ended by a blank line,
//! comments (keep-alives) skipped. Lines and events are bounded.

use std::io::{BufRead, BufReader, Read};

/// Longest line or event the reader accepts, in bytes.
pub const SSE_EVENT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `id:` field: what to send back as `Last-Event-ID` to resume.
    pub id: Option<String>,
    /// The `event:` field (`None`: the default, `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// The events of one response, in order, until the server ends it.
pub struct SseStream {
    reader: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").finish_non_exhaustive()
    }
}

impl SseStream {
    pub fn new(reader: impl Read + Send + 'static) -> Self {
        Self {
            reader: BufReader::new(Box::new(reader)),
            line: Vec::new(),
        }
    }

    /// The next event; `Ok(None)` when the stream ended.
    pub fn next_event(&mut self) -> std::io::Result<Option<SseEvent>> {
        let mut event = SseEvent::default();
        let mut has_data = false;
        loop {
            self.line.clear();
            let n = (&mut self.reader)
                .take(SSE_EVENT_BYTES_MAX as u64 + 1)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.len() > SSE_EVENT_BYTES_MAX || event.data.len() > SSE_EVENT_BYTES_MAX {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "an event of the stream is over 16 MiB",
                ));
            }
            let text = String::from_utf8_lossy(&self.line);
            let line = text.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if has_data || event.id.is_some() || event.event.is_some() {
                    return Ok(Some(event));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                _ => {}
            }
        }
    }
}

impl Iterator for SseStream {
    type Item = std::io::Result<SseEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_and_comments_skipped() {
        let text = ": keep-alive\n\nid: 7\nevent: record\ndata: {\"a\":1}\n\n\
                    data: line 1\ndata: line 2\n\n: bye\n";
        let events: Vec<SseEvent> = SseStream::new(std::io::Cursor::new(text.as_bytes().to_vec()))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            events,
            [
                SseEvent {
                    id: Some("7".into()),
                    event: Some("record".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    event: None,
                    data: "line 1\nline 2".into()
                },
            ]
        );
    }
}
