//! What the paged lists (disputes, agreements) share: the query string read as pairs (one too
//! long to be a real query is refused), the `page` parameter, and the link to the next page
//! keeping the filters.

use rocket::http::uri::Origin;
use serde_json::Value;

use super::problem::{parameter_error, Problem};
use super::BASE;

/// The longest query string read.
const QUERY_MAX: usize = 8 * 1024;

/// The request's query parameters, decoded, in order.
// The error is the answer itself, made once per request: its size does not matter.
#[allow(clippy::result_large_err)]
pub(super) fn query_pairs(uri: &Origin<'_>) -> Result<Vec<(String, String)>, Problem> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    if raw.len() > QUERY_MAX {
        return Err(Problem::invalid(vec![parameter_error(
            "query",
            "The query is too long",
        )]));
    }
    Ok(url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect())
}

/// A `page` parameter (from 1 to 100000), or a problem in `errors`.
pub(super) fn page_number(v: &str, errors: &mut Vec<Value>) -> Option<i64> {
    match v.parse::<i64>() {
        Ok(n) if (1..=100_000).contains(&n) => Some(n),
        _ => {
            errors.push(parameter_error(
                "page",
                "page must be a whole number from 1 to 100000",
            ));
            None
        }
    }
}

/// The link to the page after `page` of `path` (under the API's base) with `filters` kept,
/// when `total` rows reach it.
pub(super) fn next_page(
    path: &str,
    filters: &[(&str, &Option<String>)],
    page: i64,
    page_size: i64,
    total: i64,
) -> Option<String> {
    (page * page_size < total).then(|| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        s.append_pair("page", &(page + 1).to_string());
        format!("{BASE}{path}?{}", s.finish())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_keeps_the_filters() {
        let status = Some("lost".to_string());
        assert_eq!(
            next_page("/disputes", &[("status", &status), ("x", &None)], 1, 50, 51),
            Some("/api/v1/disputes?status=lost&page=2".into())
        );
        assert_eq!(next_page("/disputes", &[], 2, 50, 100), None);
        let mut errors = Vec::new();
        assert_eq!(page_number("0", &mut errors), None);
        assert_eq!(page_number("7", &mut errors), Some(7));
        assert_eq!(errors.len(), 1);
    }
}
