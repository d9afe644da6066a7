//! SQLite's export page as one JSON array of rows: what the reader needs of it before its rows
//! are written (how many, the last one's key, whether they came in key order).

use std::borrow::Cow;

use serde::Deserialize;

use super::{Key, Range};
use crate::store::StoreResult;

/// What the reader needs of a JSON page: how many rows, the last one's key, and whether
/// the rows came in key order.
pub(super) struct JsonKeys {
    by_settled: bool,
    pub(super) count: usize,
    pub(super) last: Option<Key>,
    pub(super) ordered: bool,
}

impl JsonKeys {
    pub(super) fn scan(text: &str, range: &Range) -> StoreResult<JsonKeys> {
        use serde::de::Deserializer as _;
        let mut keys = JsonKeys {
            by_settled: matches!(range, Range::Settled { .. }),
            count: 0,
            last: None,
            ordered: true,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        (&mut de)
            .deserialize_seq(&mut keys)
            .and_then(|()| de.end())
            .map_err(|e| crate::store::StoreError::Invalid(format!("a packed export page: {e}")))?;
        Ok(keys)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut JsonKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of export rows")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut rows: A) -> Result<(), A::Error> {
        while let Some(RowKey(id, date, created_at)) = rows.next_element::<RowKey<'de>>()? {
            let key = Key {
                date: if self.by_settled {
                    date.map(Cow::into_owned)
                } else {
                    None
                },
                created_at,
                id,
            };
            if let Some(before) = &self.last {
                let order = |k: &Key| (k.date.clone(), k.created_at, k.id);
                if order(before) >= order(&key) {
                    self.ordered = false;
                }
            }
            self.last = Some(key);
            self.count += 1;
        }
        Ok(())
    }
}

/// The key fields at the head of a packed row (id, settled date, created), the rest skipped.
struct RowKey<'a>(i64, Option<Cow<'a, str>>, i64);

impl<'de> Deserialize<'de> for RowKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RowKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an export row")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut row: A,
            ) -> Result<RowKey<'de>, A::Error> {
                use serde::de::Error;
                #[derive(Deserialize)]
                struct Date<'a>(#[serde(borrow)] Option<Cow<'a, str>>);
                let id: i64 = row
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("no id"))?;
                let Date(date) = row
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("no settled date"))?;
                let created: i64 = row
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("no created time"))?;
                while row.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RowKey(id, date, created))
            }
        }
        d.deserialize_seq(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::exports::PageRows;

    #[test]
    fn a_json_page_gives_its_count_last_key_and_order_before_its_rows_are_read() {
        let row = |id: i64, date: &str, created: i64, reference: &str| {
            serde_json::json!([
                id,
                date,
                created,
                "pay",
                reference,
                "d",
                null,
                100,
                null,
                null,
                null,
                null,
                "success",
                null,
                null,
                1,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                "{\"k\":\"v\"}",
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null
            ])
        };
        let created = Range::Created {
            from: 0,
            to: i64::MAX,
        };
        let settled = Range::Settled {
            from: "2026-01-01".into(),
            to: "2026-12-31".into(),
        };
        let text = serde_json::json!([
            row(1, "2026-10-02", 10, "A"),
            row(2, "2026-10-01", 10, "tab\there \"quoted\""),
            row(3, "2026-10-01", 11, "C"),
        ])
        .to_string();
        let keys = JsonKeys::scan(&text, &created).unwrap();
        assert_eq!((keys.count, keys.ordered), (3, true));
        assert_eq!(
            keys.last,
            Some(Key {
                date: None,
                created_at: 11,
                id: 3
            })
        );
        // By settlement date the same rows are out of order.
        let keys = JsonKeys::scan(&text, &settled).unwrap();
        assert!(!keys.ordered);
        assert_eq!(
            keys.last.and_then(|k| k.date).as_deref(),
            Some("2026-10-01")
        );
        // Rows are read with their text borrowed, escapes undone.
        let page = PageRows::Json {
            text,
            count: 3,
            last: None,
        };
        let mut seen = Vec::new();
        page.each(|r| seen.push((r.id, r.reference.to_string(), r.finished)))
            .unwrap();
        assert_eq!(seen[1], (2, "tab\there \"quoted\"".to_string(), true));
        assert_eq!(seen.len(), 3);
        // An empty page, and text that is not a page.
        let empty = JsonKeys::scan("[]", &created).unwrap();
        assert_eq!((empty.count, empty.last), (0, None));
        assert!(JsonKeys::scan("[[1]]", &created).is_err());
        assert!(JsonKeys::scan("{}", &created).is_err());
    }
}
