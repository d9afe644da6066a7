//! The one query builder for SQL written at run time (search, exports, the audit search):
//! `$n` placeholders that both databases read, the values bound to them, IN lists and ranges,
//! and the tested inliner that writes the values into the text where no bind is possible.

use super::{Backend, StoreError, StoreResult};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    Int(i64),
    Text(String),
}

/// SQL text with its binds, ready to run on one backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Built {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Collects the values of a statement as it is written: each value pushed gives back the
/// placeholder (`$1`, `$2`, …) to write in its place.
pub(crate) struct Builder {
    backend: Backend,
    binds: Vec<Bind>,
}

impl Builder {
    pub(crate) fn new(backend: Backend) -> Builder {
        Builder {
            backend,
            binds: Vec::new(),
        }
    }

    /// The database the statement is written for.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn int(&mut self, v: i64) -> String {
        self.binds.push(Bind::Int(v));
        format!("${}", self.binds.len())
    }

    pub(crate) fn text(&mut self, v: &str) -> String {
        self.binds.push(Bind::Text(v.to_string()));
        format!("${}", self.binds.len())
    }

    /// The inside of an IN list of ids, each bound: `$1, $2, $3`.
    pub(crate) fn ids(&mut self, ids: &[i64]) -> String {
        let list: Vec<String> = ids.iter().map(|s| self.int(*s)).collect();
        list.join(", ")
    }

    /// The conditions of a range of integers (times in microseconds) on `col`, from inclusive
    /// to exclusive, either end open: `col >= $1`, `col < $2`.
    /// `col` is one of `ids`, however many: one bound value (a JSON array read by SQLite's
    /// `json_each`, a PostgreSQL array), not one per id.
    pub(crate) fn one_of(&mut self, col: &str, ids: &[i64]) -> String {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        match self.backend {
            Backend::Sqlite => format!(
                "{col} IN (SELECT value FROM json_each({}))",
                self.text(&format!("[{list}]"))
            ),
            Backend::Postgres => format!(
                "{col} = ANY(CAST({} AS BIGINT[]))",
                self.text(&format!("{{{list}}}"))
            ),
        }
    }

    pub(crate) fn half_open(&mut self, col: &str, lo: Option<i64>, hi: Option<i64>) -> Vec<String> {
        self.bounds(col, lo.map(Bind::Int), (hi.map(Bind::Int), "<"))
    }

    /// The conditions of a range of integers (amounts) on `col`, both ends inclusive, either
    /// end open: `col >= $1`, `col <= $2`.
    pub(crate) fn inclusive(&mut self, col: &str, lo: Option<i64>, hi: Option<i64>) -> Vec<String> {
        self.bounds(col, lo.map(Bind::Int), (hi.map(Bind::Int), "<="))
    }

    /// The conditions of a range of dates (`YYYY-MM-DD`, which sort as text) on `col`, both
    /// ends inclusive, either end open.
    pub(crate) fn dates(&mut self, col: &str, lo: Option<&str>, hi: Option<&str>) -> Vec<String> {
        let text = |v: &str| Bind::Text(v.to_string());
        self.bounds(col, lo.map(text), (hi.map(text), "<="))
    }

    /// `col >= lo` and `col {op} hi`, for the ends that are given, in that order.
    fn bounds(
        &mut self,
        col: &str,
        lo: Option<Bind>,
        (hi, op): (Option<Bind>, &str),
    ) -> Vec<String> {
        let mut parts = Vec::new();
        for (v, op) in [(lo, ">="), (hi, op)] {
            if let Some(v) = v {
                self.binds.push(v);
                parts.push(format!("{col} {op} ${}", self.binds.len()));
            }
        }
        parts
    }

    pub(crate) fn finish(self, sql: String) -> Built {
        Built {
            sql,
            binds: self.binds,
        }
    }
}

/// A sqlx query with the values of `binds` (a `&[Bind]`) bound in order.
macro_rules! bound {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for bind in $binds {
            q = match bind {
                $crate::store::sql::Bind::Int(v) => q.bind(*v),
                $crate::store::sql::Bind::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}
pub(crate) use bound;

/// The text of a built query with its values written in, for statements that take no binds
/// (PostgreSQL's COPY) and for the bench's "same SQL run directly". One pass over the text,
/// so that a value is never read again as a placeholder; text is quoted for `backend`
/// whatever its content (PostgreSQL's `E'…'` form does not depend on
/// `standard_conforming_strings`).
pub fn inline(backend: Backend, built: &Built) -> StoreResult<String> {
    let bad = |what: String| StoreError::Invalid(format!("an inlined query: {what}"));
    let mut sql = String::with_capacity(built.sql.len() + 64);
    let mut chars = built.sql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let digits = built.sql[at + c.len_utf8()..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if c != '$' || digits == 0 {
            sql.push(c);
            continue;
        }
        let number = &built.sql[at + 1..at + 1 + digits];
        for _ in 0..digits {
            chars.next();
        }
        let index: usize = number.parse().map_err(|_| bad(format!("${number}")))?;
        let bind = index
            .checked_sub(1)
            .and_then(|i| built.binds.get(i))
            .ok_or_else(|| bad(format!("no value for ${number}")))?;
        match bind {
            Bind::Int(v) => sql.push_str(&v.to_string()),
            Bind::Text(t) if t.contains('\0') => return Err(bad("a NUL in a text value".into())),
            Bind::Text(t) => match backend {
                Backend::Sqlite => {
                    sql.push('\'');
                    sql.push_str(&t.replace('\'', "''"));
                    sql.push('\'');
                }
                Backend::Postgres => {
                    sql.push_str("E'");
                    sql.push_str(&t.replace('\\', "\\\\").replace('\'', "''"));
                    sql.push('\'');
                }
            },
        }
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_count_up_as_values_are_pushed() {
        let mut b = Builder::new(Backend::Postgres);
        let ids = b.ids(&[4, 5]);
        let mut conds = b.half_open("j.created_at", Some(1), Some(2));
        conds.extend(b.inclusive("j.amount", None, Some(300)));
        conds.extend(b.dates("j.settled_date", Some("2026-10-01"), None));
        let built = b.finish(format!("{ids} | {}", conds.join(" AND ")));
        assert_eq!(
            built.sql,
            "$1, $2 | j.created_at >= $3 AND j.created_at < $4 AND j.amount <= $5 \
             AND j.settled_date >= $6"
        );
        assert_eq!(built.binds.len(), 6);
        assert_eq!(built.binds[5], Bind::Text("2026-10-01".into()));
    }

    #[test]
    fn inlined_values_are_quoted_once_and_never_read_as_placeholders() {
        let built = Built {
            sql: "SELECT $1, $2, $10, '$' || $2".into(),
            binds: vec![
                Bind::Text("it's $10 \\ ok".into()),
                Bind::Int(-5),
                Bind::Int(1),
                Bind::Int(2),
                Bind::Int(3),
                Bind::Int(4),
                Bind::Int(5),
                Bind::Int(6),
                Bind::Int(7),
                Bind::Int(99),
            ],
        };
        assert_eq!(
            inline(Backend::Postgres, &built).unwrap(),
            "SELECT E'it''s $10 \\\\ ok', -5, 99, '$' || -5"
        );
        assert_eq!(
            inline(Backend::Sqlite, &built).unwrap(),
            "SELECT 'it''s $10 \\ ok', -5, 99, '$' || -5"
        );
        let missing = Built {
            sql: "SELECT $2".into(),
            binds: vec![Bind::Int(1)],
        };
        assert!(inline(Backend::Postgres, &missing).is_err());
        let nul = Built {
            sql: "SELECT $1".into(),
            binds: vec![Bind::Text("a\0b".into())],
        };
        assert!(inline(Backend::Postgres, &nul).is_err());
    }
}
