//! List queries: the single-`eq` `filter` Atlassian supports, 1-based paging of the
//! ListResponse, and `excludedAttributes`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{LIST_SCHEMA, MAX_COUNT, Res, err, invalid_value, scim_json};
use crate::common::Params;

/// Parses `attr eq "value"`, the only filter Atlassian supports (one `eq`, no `and`/`or`).
pub(super) fn parse_filter(filter: &str, allowed: &[&str]) -> Result<(String, String), Response> {
    let invalid = || {
        err(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            format!(
                "Unsupported filter '{filter}': only a single 'eq' on {} is supported",
                allowed.join(" or ")
            ),
        )
    };
    let trimmed = filter.trim();
    let (attr, rest) = trimmed
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let (op, rest) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let attr = allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(attr))
        .ok_or_else(invalid)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(invalid());
    }
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(invalid)?;
    // A JSON string literal: handles \" and \\ escapes; an unescaped quote inside (another
    // clause) fails to parse.
    let value: String = serde_json::from_str(&format!("\"{inner}\"")).map_err(|_| invalid())?;
    Ok(((*attr).to_owned(), value))
}

pub(super) fn list_response(params: &Params, resources: Vec<Value>) -> Res {
    let start_index = params.usize("startIndex", 1).map_err(invalid_value)?.max(1);
    let count = params
        .usize("count", MAX_COUNT)
        .map_err(invalid_value)?
        .min(MAX_COUNT);
    let total = resources.len();
    let page: Vec<Value> = resources
        .into_iter()
        .skip(start_index - 1)
        .take(count)
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

pub(super) fn excluded(params: &Params, attr: &str) -> bool {
    params
        .get("excludedAttributes")
        .is_some_and(|list| list.split(',').any(|a| a.trim().eq_ignore_ascii_case(attr)))
}
