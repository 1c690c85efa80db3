//! The query side of read models: typed [`Query`] objects (a query is its
//! own type, apart from commands and events), and [`Select`], filtering,
//! sorting and paging over one table of a read model, with table and
//! column names checked against the database so no caller text becomes
//! SQL.

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ToSql};
use serde_json::{Map, Value};

use crate::{Error, Projection, Projector};

/// Most rows one page returns.
pub const PAGE_ROWS_MAX: usize = 1_000;
/// Most filters and sort keys in one select.
pub const SELECT_TERMS_MAX: usize = 16;

/// A question to a read model with a typed answer.
pub trait Query {
    type Answer;
    fn run(&self, conn: &Connection) -> rusqlite::Result<Self::Answer>;
}

/// A comparison in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// SQL `LIKE` (`%` and `_` wildcards).
    Like,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Like => "LIKE",
        }
    }
}

/// Filter, sort and page one table of a read model.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    table: String,
    filters: Vec<(String, Op, SqlValue)>,
    order: Vec<(String, bool)>,
    limit: usize,
    offset: usize,
}

/// One page of rows, each a JSON object of column to value.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<Map<String, Value>>,
    /// Rows that match the filters, on all pages.
    pub total: u64,
    /// The offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

impl Select {
    /// Every row of `table`, 100 per page.
    pub fn from(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            filters: Vec::new(),
            order: Vec::new(),
            limit: 100,
            offset: 0,
        }
    }

    /// Only rows where `column op value`.
    pub fn filter(mut self, column: impl Into<String>, op: Op, value: impl Into<SqlValue>) -> Self {
        self.filters.push((column.into(), op, value.into()));
        self
    }

    /// Sorted by `column`, ascending; later calls break ties.
    pub fn order_by(mut self, column: impl Into<String>) -> Self {
        self.order.push((column.into(), false));
        self
    }

    /// Sorted by `column`, descending.
    pub fn order_by_desc(mut self, column: impl Into<String>) -> Self {
        self.order.push((column.into(), true));
        self
    }

    /// At most `limit` rows (at most [`PAGE_ROWS_MAX`]).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` matching rows.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    fn check(&self, conn: &Connection) -> Result<(), Error> {
        let bad = |reason: String| Error::InvalidQuery { reason };
        if self.filters.len() + self.order.len() > SELECT_TERMS_MAX {
            return Err(bad(format!(
                "at most {SELECT_TERMS_MAX} filters and sort keys"
            )));
        }
        if self.limit == 0 || self.limit > PAGE_ROWS_MAX {
            return Err(bad(format!(
                "a page has 1 to {PAGE_ROWS_MAX} rows, not {}",
                self.limit
            )));
        }
        let table_ok = !self.table.starts_with("weir_")
            && !self.table.starts_with("sqlite_")
            && conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
                    [&self.table],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                > 0;
        if !table_ok {
            return Err(bad(format!("no table {:?}", self.table)));
        }
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .map_err(|e| bad(e.to_string()))?;
        let columns: Vec<String> = stmt
            .query_map([&self.table], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| bad(e.to_string()))?;
        let named = self
            .filters
            .iter()
            .map(|f| &f.0)
            .chain(self.order.iter().map(|o| &o.0));
        for c in named {
            if !columns.contains(c) {
                return Err(bad(format!("table {:?} has no column {c:?}", self.table)));
            }
        }
        Ok(())
    }

    /// Runs the select on `conn`.
    pub fn run(&self, conn: &Connection) -> Result<Page, Error> {
        self.check(conn)?;
        let quote = |s: &str| format!("\"{s}\"");
        let mut where_sql = String::new();
        for (i, (c, op, _)) in self.filters.iter().enumerate() {
            where_sql.push_str(if i == 0 { " WHERE " } else { " AND " });
            where_sql.push_str(&format!("{} {} ?{}", quote(c), op.sql(), i + 1));
        }
        let params: Vec<&dyn ToSql> = self.filters.iter().map(|f| &f.2 as &dyn ToSql).collect();
        let bad = |e: rusqlite::Error| Error::InvalidQuery {
            reason: e.to_string(),
        };
        let table = quote(&self.table);
        let total: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table}{where_sql}"),
                params.as_slice(),
                |r| r.get(0),
            )
            .map_err(bad)?;
        let mut sql = format!("SELECT * FROM {table}{where_sql}");
        for (i, (c, desc)) in self.order.iter().enumerate() {
            sql.push_str(if i == 0 { " ORDER BY " } else { ", " });
            sql.push_str(&quote(c));
            sql.push_str(if *desc { " DESC" } else { " ASC" });
        }
        sql.push_str(&format!(" LIMIT {} OFFSET {}", self.limit, self.offset));
        let mut stmt = conn.prepare(&sql).map_err(bad)?;
        let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let rows = stmt
            .query_map(params.as_slice(), |r| {
                let mut row = Map::new();
                for (i, n) in names.iter().enumerate() {
                    row.insert(n.clone(), json(r.get_ref(i)?));
                }
                Ok(row)
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(bad)?;
        let end = self.offset + rows.len();
        Ok(Page {
            next_offset: ((end as u64) < total as u64).then_some(end),
            rows,
            total: total as u64,
        })
    }
}

fn json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(b.to_vec()),
    }
}

impl<P: Projection> Projector<P> {
    /// Filters, sorts and pages a table of the read model.
    pub fn select(&self, select: &Select) -> Result<Page, Error> {
        self.read(|conn| Ok(select.run(conn)))?
    }

    /// Asks the read model a typed query.
    pub fn ask<Q: Query>(&self, query: &Q) -> Result<Q::Answer, Error> {
        self.read(|conn| query.run(conn))
    }
}
