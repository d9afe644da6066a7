//! What the disputes and agreements lists share: their filters read from the query string
//! (the last value of a name wins, trimmed), each refusal kept for the error summary and beside
//! its field, a status from a fixed list, a service among those offered, the page number, and
//! the page's context (the form as typed, the choices, Previous and Next keeping the filters).

use serde_json::{json, Map, Value};

use crate::services::ServiceAccount;
use crate::web::dashboard::QueryPairs;
use crate::web::pages::problem;

/// A list's filters as read so far, with their problems.
pub struct ListFilters<'q> {
    query: &'q QueryPairs,
    errors: Vec<Value>,
    field_errors: Map<String, Value>,
}

impl<'q> ListFilters<'q> {
    pub fn new(query: &'q QueryPairs) -> ListFilters<'q> {
        ListFilters {
            query,
            errors: Vec::new(),
            field_errors: Map::new(),
        }
    }

    /// The value of `name` as typed (its last, trimmed), or empty.
    pub fn get(&self, name: &str) -> String {
        self.query
            .0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }

    /// Refuse `field` with `message`.
    pub fn refuse(&mut self, field: &str, message: &str) {
        self.errors.push(problem(field, message));
        self.field_errors.insert(field.into(), json!(message));
    }

    /// Whether nothing has been refused.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// A status from `allowed`, or none (empty); anything else is refused.
    pub fn status(&mut self, raw: &str, allowed: &[&str]) -> Option<String> {
        if raw.is_empty() {
            return None;
        }
        if allowed.contains(&raw) {
            return Some(raw.to_string());
        }
        self.refuse("status", "Choose a status from the list");
        None
    }

    /// The services to list: every one `offered` (empty slug), or the one named; a slug not
    /// offered is refused (and lists nothing).
    pub fn services(&mut self, slug: &str, offered: &[&ServiceAccount]) -> Vec<i64> {
        if slug.is_empty() {
            return offered.iter().map(|s| s.id).collect();
        }
        match offered.iter().find(|s| s.slug == slug) {
            Some(s) => vec![s.id],
            None => {
                self.refuse("service", "Choose a service from the list");
                Vec::new()
            }
        }
    }

    /// A day as typed (27/3/2026), or none (empty); one that does not read is refused.
    pub fn date(&mut self, field: &str, raw: &str) -> Option<time::Date> {
        if raw.is_empty() {
            return None;
        }
        let parsed = crate::search::query::parse_date(raw);
        if parsed.is_none() {
            self.refuse(field, "Enter a real date, like 27/3/2026");
        }
        parsed
    }

    /// The page number asked for (from 1); anything else is the first page.
    pub fn page(raw: &str) -> i64 {
        match raw.parse::<i64>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => 1,
        }
    }

    /// Put the list's shared context into `c`: the rows and their total, the problems, the
    /// form as typed (`fields`, in the order links keep them), the status and service choices,
    /// and Previous and Next (`path` with the filters and the page).
    pub fn finish(self, c: &mut Map<String, Value>, list: ListPage<'_>) {
        let href = |n: i64| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in list.fields {
                if !v.is_empty() {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("page", &n.to_string());
            format!("{}?{}", list.path, q.finish())
        };
        let last = (list.total + list.page_size - 1) / list.page_size;
        c.insert("rows".into(), Value::Array(list.rows));
        c.insert("total".into(), json!(list.total));
        c.insert("errors".into(), Value::Array(self.errors));
        c.insert("field_errors".into(), Value::Object(self.field_errors));
        let fields: Map<String, Value> = list
            .fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        c.insert("fields".into(), Value::Object(fields));
        let mut status_options = vec![json!({"value": "", "text": "Any status"})];
        status_options.extend(
            list.statuses
                .iter()
                .map(|s| json!({"value": s, "text": (list.status_label)(s)})),
        );
        c.insert("status_options".into(), Value::Array(status_options));
        let mut service_options = vec![json!({"value": "", "text": "All your services"})];
        service_options.extend(
            list.offered
                .iter()
                .map(|s| json!({"value": s.slug, "text": s.name})),
        );
        c.insert("service_options".into(), Value::Array(service_options));
        let page = list.page;
        c.insert(
            "prev_href".into(),
            json!((page > 1).then(|| href(page - 1))),
        );
        c.insert(
            "next_href".into(),
            json!((page < last).then(|| href(page + 1))),
        );
        c.insert("page".into(), json!(page));
    }
}

/// One page of a list, for `ListFilters::finish`.
pub struct ListPage<'a> {
    /// Where the list lives, such as "/disputes".
    pub path: &'a str,
    pub rows: Vec<Value>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    /// The filters as typed: (name, value).
    pub fields: &'a [(&'a str, &'a str)],
    pub statuses: &'a [&'a str],
    pub status_label: fn(&str) -> &'static str,
    pub offered: &'a [&'a ServiceAccount],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn filters_are_read_and_refused_in_plain_words() {
        let q = pairs(&[("status", "won"), ("status", " lost "), ("page", "x")]);
        let mut f = ListFilters::new(&q);
        assert_eq!(f.get("status"), "lost");
        assert_eq!(f.status("lost", &["won", "lost"]), Some("lost".into()));
        assert!(f.ok());
        assert_eq!(f.status("open", &["won", "lost"]), None);
        assert!(f.date("from", "31/2/2026").is_none());
        assert!(!f.ok());
        assert_eq!(ListFilters::page("x"), 1);
        assert_eq!(ListFilters::page("3"), 3);
        let mut c = Map::new();
        f.finish(
            &mut c,
            ListPage {
                path: "/disputes",
                rows: Vec::new(),
                total: 120,
                page: 2,
                page_size: 50,
                fields: &[("status", "lost"), ("service", "")],
                statuses: &["won", "lost"],
                status_label: |s| if s == "won" { "Won" } else { "Lost" },
                offered: &[],
            },
        );
        assert_eq!(c["prev_href"], "/disputes?status=lost&page=1");
        assert_eq!(c["next_href"], "/disputes?status=lost&page=3");
        assert_eq!(c["field_errors"]["status"], "Choose a status from the list");
        assert_eq!(c["errors"].as_array().map(Vec::len), Some(2));
    }
}
