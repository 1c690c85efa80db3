//! Checks Avro binary data against a writer schema without decoding it
//! into values: the schema is compiled once into a flat program of nodes
//! (named types by index, so recursive records work) and the bytes are
//! walked by it, each value's encoding checked (zig-zag varints in range,
//! booleans 0 or 1, UTF-8 strings, enum and union indexes in range,
//! blocks of arrays and maps) and every byte consumed. A walk allocates
//! nothing, which keeps validated produce close to unvalidated produce;
//! decoding through `apache-avro` would build a value tree per record.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, UuidSchema};

/// Deepest nesting of values a datum may have.
const DEPTH_MAX: usize = 64;
/// Most values one datum may hold (arrays of nulls take no bytes).
const STEPS_MAX: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(usize),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<(String, usize)>),
}

/// A schema compiled for [`Program::check`].
#[derive(Debug, Clone)]
pub(crate) struct Program {
    nodes: Vec<Node>,
    root: usize,
}

impl Program {
    /// Compiles `schema` (references already inlined).
    pub(crate) fn compile(schema: &Schema) -> Result<Self, String> {
        let mut c = Compiler {
            nodes: Vec::new(),
            names: HashMap::new(),
        };
        let root = c.node(schema)?;
        Ok(Self {
            nodes: c.nodes,
            root,
        })
    }

    /// Whether `bytes` is exactly one datum of the schema.
    pub(crate) fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let mut cursor = Cursor {
            bytes,
            pos: 0,
            steps: 0,
        };
        self.walk(&mut cursor, self.root, 0)?;
        if cursor.pos != bytes.len() {
            return Err(format!(
                "{} bytes left after the datum ends at byte {}",
                bytes.len() - cursor.pos,
                cursor.pos
            ));
        }
        Ok(())
    }

    fn walk(&self, c: &mut Cursor<'_>, node: usize, depth: usize) -> Result<(), String> {
        if depth > DEPTH_MAX {
            return Err(format!("values nest deeper than {DEPTH_MAX}"));
        }
        c.steps += 1;
        if c.steps > STEPS_MAX {
            return Err(format!("more than {STEPS_MAX} values"));
        }
        match &self.nodes[node] {
            Node::Null => Ok(()),
            Node::Boolean => match c.take(1)?[0] {
                0 | 1 => Ok(()),
                b => Err(c.at(format!("boolean byte {b}, not 0 or 1"))),
            },
            Node::Int => c.int().map(drop),
            Node::Long => c.long().map(drop),
            Node::Float => c.take(4).map(drop),
            Node::Double => c.take(8).map(drop),
            Node::Bytes => c.sized().map(drop),
            Node::String => {
                let s = c.sized()?;
                std::str::from_utf8(s)
                    .map(drop)
                    .map_err(|_| c.at("a string that is not UTF-8".to_owned()))
            }
            Node::Fixed(n) => c.take(*n).map(drop),
            Node::Enum(symbols) => {
                let i = c.int()?;
                if i < 0 || i as usize >= *symbols {
                    return Err(c.at(format!("enum index {i} of {symbols} symbols")));
                }
                Ok(())
            }
            Node::Union(branches) => {
                let i = c.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| c.at(format!("union branch {i} of {}", branches.len())))?;
                self.walk(c, *branch, depth + 1)
            }
            Node::Record(fields) => {
                for (name, field) in fields {
                    self.walk(c, *field, depth + 1)
                        .map_err(|e| format!("field '{name}': {e}"))?;
                }
                Ok(())
            }
            Node::Array(items) => self.blocks(c, depth, |p, c| p.walk(c, *items, depth + 1)),
            Node::Map(values) => self.blocks(c, depth, |p, c| {
                let key = c.sized()?;
                std::str::from_utf8(key).map_err(|_| c.at("a map key that is not UTF-8".into()))?;
                p.walk(c, *values, depth + 1)
            }),
        }
    }

    /// The blocks of an array or map: a count (negative: followed by the
    /// block's byte size), that many items, until a count of 0.
    fn blocks(
        &self,
        c: &mut Cursor<'_>,
        depth: usize,
        mut item: impl FnMut(&Self, &mut Cursor<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let mut count = c.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count
                    .checked_neg()
                    .ok_or_else(|| c.at("a block count out of range".into()))?;
                // The block's byte size, there to skip it by; Avro's
                // decoders read past it without judging it.
                c.long()?;
            }
            for _ in 0..count {
                c.steps += 1;
                if c.steps > STEPS_MAX {
                    return Err(format!("more than {STEPS_MAX} values (depth {depth})"));
                }
                item(self, c)?;
            }
        }
    }
}

struct Compiler {
    nodes: Vec<Node>,
    names: HashMap<String, usize>,
}

impl Compiler {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn named(&mut self, name: String, node: Node) -> usize {
        let at = self.push(node);
        self.names.insert(name, at);
        at
    }

    fn node(&mut self, schema: &Schema) -> Result<usize, String> {
        Ok(match schema {
            Schema::Null => self.push(Node::Null),
            Schema::Boolean => self.push(Node::Boolean),
            Schema::Int | Schema::Date | Schema::TimeMillis => self.push(Node::Int),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.push(Node::Long),
            Schema::Float => self.push(Node::Float),
            Schema::Double => self.push(Node::Double),
            Schema::Bytes | Schema::BigDecimal => self.push(Node::Bytes),
            Schema::String => self.push(Node::String),
            Schema::Uuid(UuidSchema::String) => self.push(Node::String),
            Schema::Uuid(UuidSchema::Bytes) => self.push(Node::Bytes),
            Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Fixed(f) | Schema::Duration(f) => {
                self.named(f.name.fullname(None), Node::Fixed(f.size))
            }
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => self.push(Node::Bytes),
                InnerDecimalSchema::Fixed(f) => {
                    self.named(f.name.fullname(None), Node::Fixed(f.size))
                }
            },
            Schema::Enum(e) => self.named(e.name.fullname(None), Node::Enum(e.symbols.len())),
            Schema::Array(a) => {
                let items = self.node(&a.items)?;
                self.push(Node::Array(items))
            }
            Schema::Map(m) => {
                let values = self.node(&m.types)?;
                self.push(Node::Map(values))
            }
            Schema::Union(u) => {
                let branches = u
                    .variants()
                    .iter()
                    .map(|v| self.node(v))
                    .collect::<Result<Vec<_>, _>>()?;
                self.push(Node::Union(branches))
            }
            Schema::Record(r) => {
                // Named before its fields, which may refer to it.
                let at = self.named(r.name.fullname(None), Node::Record(Vec::new()));
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    fields.push((f.name.clone(), self.node(&f.schema)?));
                }
                self.nodes[at] = Node::Record(fields);
                at
            }
            Schema::Ref { name } => *self
                .names
                .get(&name.fullname(None))
                .ok_or_else(|| format!("the schema refers to an undefined type '{name}'"))?,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    steps: usize,
}

impl<'a> Cursor<'a> {
    fn at(&self, what: String) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.at(format!(
                "{n} bytes wanted, {} left",
                self.bytes.len() - self.pos
            )));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A zig-zag varint of at most 10 bytes.
    fn long(&mut self) -> Result<i64, String> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.at("a varint cut short".to_owned()));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.at("a varint longer than 64 bits".to_owned()));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(self.at("a varint longer than 10 bytes".to_owned()))
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.at(format!("int {v} out of range")))
    }

    /// A length-prefixed run of bytes.
    fn sized(&mut self) -> Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| self.at(format!("a length of {n}")))?;
        self.take(n)
    }
}

#[cfg(test)]
#[path = "avro_tests.rs"]
mod tests;
