//! A tiny blocking RESP2 client over one `TcpStream` for the Redis Streams
//! baseline of `weir-bench queues`: commands go out as arrays of bulk
//! strings (pipelined when asked), replies come back as a [`Reply`] tree.
//! Only what XADD, XGROUP, XREADGROUP and XACK need; limits on every
//! length read so a confused server cannot make it allocate without
//! bound.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// Longest bulk string or array accepted.
const LEN_MAX: i64 = 64 * 1024 * 1024;
/// Deepest nesting accepted.
const DEPTH_MAX: usize = 8;

/// A reply as Redis sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The items of an array reply (none for a nil one).
    pub fn items(&self) -> anyhow::Result<&[Reply]> {
        match self {
            Reply::Array(Some(items)) => Ok(items),
            Reply::Array(None) | Reply::Bulk(None) => Ok(&[]),
            other => bail!("expected an array, got {other:?}"),
        }
    }

    pub fn bytes(&self) -> anyhow::Result<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Ok(b),
            other => bail!("expected a bulk string, got {other:?}"),
        }
    }

    /// Fails on an error reply.
    pub fn ok(self) -> anyhow::Result<Self> {
        match self {
            Reply::Error(e) => bail!("redis: {e}"),
            r => Ok(r),
        }
    }
}

/// One connection.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Resp {
    pub fn connect(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connect to redis on port {port}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: BufWriter::new(stream),
        })
    }

    /// Queues a command without flushing (see [`Resp::flush`]).
    pub fn send(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        write!(self.writer, "*{}\r\n", args.len())?;
        for a in args {
            write!(self.writer, "${}\r\n", a.len())?;
            self.writer.write_all(a)?;
            self.writer.write_all(b"\r\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        Ok(self.writer.flush()?)
    }

    /// Sends one command and reads its reply (an error reply is an error).
    pub fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        self.send(args)?;
        self.flush()?;
        self.read()?.ok()
    }

    /// Reads the next reply.
    pub fn read(&mut self) -> anyhow::Result<Reply> {
        read_reply(&mut self.reader, 0)
    }
}

fn line(r: &mut impl BufRead) -> anyhow::Result<String> {
    let mut s = String::new();
    if r.read_line(&mut s)? == 0 {
        bail!("redis closed the connection");
    }
    if !s.ends_with("\r\n") {
        bail!("a reply line without CRLF: {s:?}");
    }
    s.truncate(s.len() - 2);
    Ok(s)
}

fn len(s: &str) -> anyhow::Result<i64> {
    let n: i64 = s.parse().with_context(|| format!("bad length {s:?}"))?;
    if n > LEN_MAX {
        bail!("length {n} over {LEN_MAX}");
    }
    Ok(n)
}

fn read_reply(r: &mut impl BufRead, depth: usize) -> anyhow::Result<Reply> {
    if depth > DEPTH_MAX {
        bail!("reply nested deeper than {DEPTH_MAX}");
    }
    let l = line(r)?;
    let (kind, rest) = l.split_at(1.min(l.len()));
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(
            rest.parse()
                .with_context(|| format!("bad integer {rest:?}"))?,
        ),
        "$" => match len(rest)? {
            n if n < 0 => Reply::Bulk(None),
            n => {
                let mut b = vec![0; n as usize + 2];
                r.read_exact(&mut b)?;
                b.truncate(n as usize);
                Reply::Bulk(Some(b))
            }
        },
        "*" => match len(rest)? {
            n if n < 0 => Reply::Array(None),
            n => {
                let mut items = Vec::with_capacity(n.min(1024) as usize);
                for _ in 0..n {
                    items.push(read_reply(r, depth + 1)?);
                }
                Reply::Array(Some(items))
            }
        },
        _ => bail!("unknown reply {l:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> anyhow::Result<Reply> {
        read_reply(&mut BufReader::new(bytes), 0)
    }

    #[test]
    fn parses_an_xreadgroup_reply_and_refuses_bad_input() {
        let got =
            parse(b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nv\r\n$1\r\nx\r\n")
                .unwrap();
        let streams = got.items().unwrap();
        let entries = streams[0].items().unwrap()[1].items().unwrap();
        assert_eq!(entries[0].items().unwrap()[0].bytes().unwrap(), b"1-0");
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Array(None));
        assert!(parse(b"-ERR no\r\n").unwrap().ok().is_err());
        assert!(parse(b"$99999999999\r\n").is_err());
        assert!(parse(b"?\r\n").is_err());
        assert!(parse(b"+OK").is_err());
    }
}
