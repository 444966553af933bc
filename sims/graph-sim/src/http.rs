//! Wire helpers shared by the Graph routes: the error envelope, request ids, OData query
//! options (`$select`, `$filter`, `$top`), the `Prefer` header and absolute link building.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::schema::ObjectKind;
use crate::store::DirObject;

/// Ids of the request being handled; task-local so that error bodies built anywhere (also by
/// sim-kit's injected faults) carry the same `request-id` as the response headers.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

tokio::task_local! {
    static REQUEST_IDS: RequestIds;
}

pub(crate) fn current_ids() -> RequestIds {
    REQUEST_IDS.try_with(Clone::clone).unwrap_or_else(|_| {
        let id = uuid::Uuid::new_v4().to_string();
        RequestIds {
            request_id: id.clone(),
            client_request_id: id,
        }
    })
}

/// Outermost middleware: assigns `request-id`, echoes `client-request-id` (Graph generates one
/// when the client sent none) and adds the diagnostic header real responses carry.
pub(crate) async fn request_ids(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/_sim/") {
        return next.run(request).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let ids = RequestIds {
        request_id,
        client_request_id,
    };
    let mut response = REQUEST_IDS.scope(ids.clone(), next.run(request)).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("request-id", ids.request_id.as_str()),
        ("client-request-id", ids.client_request_id.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers.insert(
        HeaderName::from_static("x-ms-ags-diagnostic"),
        HeaderValue::from_static(
            r#"{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"graph-sim"}}"#,
        ),
    );
    response
}

/// Now, in milliseconds since the Unix epoch: when a page token was handed out.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn inner_error_date() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    now.format(&fmt)
        .unwrap_or_else(|_| "2024-01-01T00:00:00".to_owned())
}

/// The Graph error envelope (https://learn.microsoft.com/graph/errors).
pub(crate) fn error_body(code: &str, message: &str) -> Value {
    let ids = current_ids();
    json!({"error": {"code": code, "message": message, "innerError": {
        "date": inner_error_date(),
        "request-id": ids.request_id,
        "client-request-id": ids.client_request_id,
    }}})
}

/// Body of faults injected through sim-kit, in Graph's shape.
pub(crate) fn fault_body(status: StatusCode) -> Value {
    let (code, message) = match status.as_u16() {
        429 => (
            "TooManyRequests",
            "Too many requests from Identifier:graph-sim under category:throttle.aad.ags.msgraph.read. Please try again later.",
        ),
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry after the time in the Retry-After header.",
        ),
        504 => (
            "gatewayTimeout",
            "The server, while acting as a proxy, did not receive a timely response from the upstream server.",
        ),
        500 => ("generalException", "An unspecified error has occurred."),
        401 => (
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        403 => (
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
        404 => ("Request_ResourceNotFound", "Resource does not exist."),
        _ => ("generalException", "An unspecified error has occurred."),
    };
    error_body(code, message)
}

/// A Graph error answer.
#[derive(Debug)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// A `$skiptoken` used too late: Graph answers 400 with this code and message when a
    /// client asks for the next page after the page token expired ("Skip tokens ... can expire
    /// within minutes", https://learn.microsoft.com/en-us/answers/questions/2337800/how-to-handle-directory-expiredpagetoken-error-in;
    /// the message as Graph SDK users report it).
    pub fn expired_page_token() -> Self {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        )
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    pub fn not_found(id: &str) -> Self {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(error_body(self.code, &self.message))).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// `http://{Host}`: links are built from the request's Host header so they work on any port.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Query options as decoded name → value. Repeating an option is a 400, as in Graph.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<BTreeMap<String, String>, GraphError> {
    let mut params = BTreeMap::new();
    let Some(raw) = raw else {
        return Ok(params);
    };
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let key = k.into_owned();
        // OData system query options are case-insensitive; normalise the `$` ones.
        let key = if key.starts_with('$') {
            key.to_ascii_lowercase()
        } else {
            key
        };
        if params.insert(key.clone(), v.into_owned()).is_some() {
            return Err(GraphError::bad_request(format!(
                "Query option '{key}' was specified more than once, but it must be specified at most once."
            )));
        }
    }
    Ok(params)
}

/// Rejects system query options the route does not take.
pub(crate) fn allow_options(
    params: &BTreeMap<String, String>,
    allowed: &[&str],
) -> Result<(), GraphError> {
    for key in params.keys().filter(|k| k.starts_with('$')) {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        return Err(match key.as_str() {
            "$skip" => GraphError::unsupported("'$skip' is not supported by the service."),
            "$count" | "$search" | "$orderby" => GraphError::unsupported(format!(
                "Query option '{key}' needs an advanced query (ConsistencyLevel: eventual), which this simulator does not implement."
            )),
            "$expand" => GraphError::unsupported("'$expand' is not supported here."),
            other => GraphError::bad_request(format!(
                "The query specified in the URI is not valid. Query option '{other}' is not allowed."
            )),
        });
    }
    Ok(())
}

/// `$top`: 1..=999, default 100.
pub(crate) fn parse_top(params: &BTreeMap<String, String>) -> Result<usize, GraphError> {
    match params.get("$top") {
        None => Ok(100),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n),
            _ => Err(GraphError::bad_request(format!(
                "Invalid page size specified: '{v}'. Must be between 1 and 999 inclusive."
            ))),
        },
    }
}

/// `$select` as a list (`id` dropped: it is always returned). `None` means "default set".
/// `kinds` are the types whose properties may be named; unknown names are a 400.
pub(crate) fn parse_select(
    params: &BTreeMap<String, String>,
    kinds: &[ObjectKind],
    extra_allowed: &[&str],
    type_name: &str,
) -> Result<Option<Vec<String>>, GraphError> {
    let Some(raw) = params.get("$select") else {
        return Ok(None);
    };
    let mut names = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let known = kinds.iter().any(|k| k.has_property(name))
            || extra_allowed.contains(&name)
            || (kinds.contains(&ObjectKind::User)
                && crate::schema::USER_NOT_IN_DELTA.contains(&name));
        if !known {
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{name}' on type '{type_name}'."
            )));
        }
        if name != "id" && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(Some(names))
}

/// Lists refuse properties kept outside the directory (user-list.md): 501.
pub(crate) fn refuse_non_directory(select: &Option<Vec<String>>) -> Result<(), GraphError> {
    if let Some(names) = select
        && names
            .iter()
            .any(|n| crate::schema::USER_NON_DIRECTORY.contains(&n.as_str()))
    {
        return Err(GraphError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "This operation target is not yet supported.",
        ));
    }
    Ok(())
}

/// `@odata.context` for a collection: `{base}/v1.0/$metadata#users(id,displayName)`.
pub(crate) fn context(base: &str, entity_set: &str, select: &Option<Vec<String>>) -> String {
    match select {
        Some(names) if !names.is_empty() => {
            format!("{base}/v1.0/$metadata#{entity_set}({})", names.join(","))
        }
        _ => format!("{base}/v1.0/$metadata#{entity_set}"),
    }
}

/// Renders an object with `id`, the selected (or default) properties and optionally its
/// `@odata.type` (directoryObject collections). For mixed-type collections a selected name the
/// type does not have is left out; unset directory extensions are left out, as Graph does.
pub(crate) fn render(
    obj: &DirObject,
    select: Option<&[String]>,
    typed: bool,
) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    if typed {
        map.insert(
            "@odata.type".into(),
            Value::String(obj.kind.odata_type().into()),
        );
    }
    map.insert("id".into(), Value::String(obj.id.clone()));
    let mut put = |name: &str| {
        if let Some(v) = obj.props.get(name) {
            map.insert(name.to_owned(), crate::schema::wire_value(name, v));
        } else if !crate::schema::is_extension_property(name) {
            map.insert(name.to_owned(), crate::schema::absent_value(name));
        }
    };
    match select {
        None => obj.kind.default_select().iter().for_each(|n| put(n)),
        Some(names) => {
            for name in names {
                if !typed || obj.kind.has_property(name) {
                    put(name);
                }
            }
        }
    }
    map
}

/// The `Prefer` request header (odata.maxpagesize, return=minimal).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Prefer {
    pub max_page_size: Option<usize>,
    pub minimal: bool,
}

pub(crate) fn parse_prefer(headers: &HeaderMap) -> Prefer {
    let mut prefer = Prefer::default();
    for value in headers.get_all("prefer") {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',').map(str::trim) {
            let (name, val) = part.split_once('=').unwrap_or((part, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "odata.maxpagesize" => {
                    prefer.max_page_size = val.trim().trim_matches('"').parse().ok();
                }
                "return" => prefer.minimal = val.trim().eq_ignore_ascii_case("minimal"),
                _ => {}
            }
        }
    }
    prefer
}

/// Appends query parameters to a link: `$name` keys stay readable, values are form-encoded.
pub(crate) fn link(base: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut out = format!("{base}{path}");
    for (i, (k, v)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
    }
    out
}

// ----- $filter -----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
}

/// The `$filter` subset the simulator understands. Everything else is `Request_UnsupportedQuery`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    Eq(String, Lit),
    In(String, Vec<Lit>),
    StartsWith(String, String),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
}

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '(' => {
                chars.next();
                toks.push(Tok::Open);
            }
            ')' => {
                chars.next();
                toks.push(Tok::Close);
            }
            ',' => {
                chars.next();
                toks.push(Tok::Comma);
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        '\'' => break,
                        other => s.push(other),
                    }
                }
                toks.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '/' || c == '.' || c == '-' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '/' || c == '.' || c == '-' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                toks.push(Tok::Ident(s));
            }
            _ => return None,
        }
    }
    Some(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, tok: Tok) -> Option<()> {
        (self.next()? == tok).then_some(())
    }

    fn or_expr(&mut self) -> Option<Filter> {
        let mut parts = vec![self.and_expr()?];
        while self.peek_word("or") {
            self.pos += 1;
            parts.push(self.and_expr()?);
        }
        Some(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Option<Filter> {
        let mut parts = vec![self.primary()?];
        while self.peek_word("and") {
            self.pos += 1;
            parts.push(self.primary()?);
        }
        Some(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn literal(&mut self) -> Option<Lit> {
        match self.next()? {
            Tok::Str(s) => Some(Lit::Str(s)),
            Tok::Ident(w) if w == "true" => Some(Lit::Bool(true)),
            Tok::Ident(w) if w == "false" => Some(Lit::Bool(false)),
            _ => None,
        }
    }

    fn primary(&mut self) -> Option<Filter> {
        match self.next()? {
            Tok::Open => {
                let inner = self.or_expr()?;
                self.expect(Tok::Close)?;
                Some(inner)
            }
            Tok::Ident(f) if f.eq_ignore_ascii_case("startswith") => {
                self.expect(Tok::Open)?;
                let Tok::Ident(prop) = self.next()? else {
                    return None;
                };
                self.expect(Tok::Comma)?;
                let Tok::Str(prefix) = self.next()? else {
                    return None;
                };
                self.expect(Tok::Close)?;
                Some(Filter::StartsWith(prop, prefix))
            }
            Tok::Ident(prop) => {
                let Tok::Ident(op) = self.next()? else {
                    return None;
                };
                match op.as_str() {
                    "eq" => Some(Filter::Eq(prop, self.literal()?)),
                    "in" => {
                        self.expect(Tok::Open)?;
                        let mut values = vec![self.literal()?];
                        loop {
                            match self.next()? {
                                Tok::Comma => values.push(self.literal()?),
                                Tok::Close => break,
                                _ => return None,
                            }
                        }
                        Some(Filter::In(prop, values))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Result<Filter, GraphError> {
        let unsupported = || GraphError::unsupported(format!("Unsupported Query: '{text}'."));
        let toks = tokenize(text).ok_or_else(unsupported)?;
        let mut parser = Parser { toks, pos: 0 };
        let filter = parser.or_expr().ok_or_else(unsupported)?;
        if parser.pos != parser.toks.len() {
            return Err(unsupported());
        }
        Ok(filter)
    }

    /// Checks that every property named is filterable here.
    pub(crate) fn check(&self, allowed: &[&str]) -> Result<(), GraphError> {
        let ok = |p: &str| {
            if p == "id" || allowed.contains(&p) {
                Ok(())
            } else {
                Err(GraphError::unsupported(format!(
                    "Unsupported or invalid query filter clause specified for property '{p}'."
                )))
            }
        };
        match self {
            Filter::Eq(p, _) | Filter::In(p, _) => ok(p),
            Filter::StartsWith(p, _) if p == "id" => ok("startsWith(id)"),
            Filter::StartsWith(p, _) => ok(p),
            Filter::And(parts) | Filter::Or(parts) => {
                parts.iter().try_for_each(|f| f.check(allowed))
            }
        }
    }

    pub(crate) fn matches(&self, obj: &DirObject) -> bool {
        let eq = |p: &str, lit: &Lit| -> bool {
            if p == "id" {
                return matches!(lit, Lit::Str(s) if s.eq_ignore_ascii_case(&obj.id));
            }
            match (obj.props.get(p), lit) {
                (Some(Value::String(v)), Lit::Str(s)) => v.to_lowercase() == s.to_lowercase(),
                (Some(Value::Bool(v)), Lit::Bool(b)) => v == b,
                _ => false,
            }
        };
        match self {
            Filter::Eq(p, lit) => eq(p, lit),
            Filter::In(p, lits) => lits.iter().any(|l| eq(p, l)),
            Filter::StartsWith(p, prefix) => obj
                .props
                .get(p.as_str())
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_lowercase().starts_with(&prefix.to_lowercase())),
            Filter::And(parts) => parts.iter().all(|f| f.matches(obj)),
            Filter::Or(parts) => parts.iter().any(|f| f.matches(obj)),
        }
    }

    /// When the filter pins objects by id or userPrincipalName, the candidate values, so the
    /// handler can use an index instead of scanning.
    pub(crate) fn pinned(&self) -> Option<(&'static str, Vec<String>)> {
        let strs = |lits: &[Lit]| -> Option<Vec<String>> {
            lits.iter()
                .map(|l| match l {
                    Lit::Str(s) => Some(s.clone()),
                    Lit::Bool(_) => None,
                })
                .collect()
        };
        match self {
            Filter::Eq(p, l) if p == "id" => Some(("id", strs(std::slice::from_ref(l))?)),
            Filter::In(p, ls) if p == "id" => Some(("id", strs(ls)?)),
            Filter::Eq(p, l) if p == "userPrincipalName" => {
                Some(("userPrincipalName", strs(std::slice::from_ref(l))?))
            }
            Filter::In(p, ls) if p == "userPrincipalName" => Some(("userPrincipalName", strs(ls)?)),
            Filter::Or(parts) => {
                let mut all = Vec::new();
                let mut prop = None;
                for part in parts {
                    let (p, vals) = part.pinned()?;
                    if prop.is_some_and(|q| q != p) {
                        return None;
                    }
                    prop = Some(p);
                    all.extend(vals);
                }
                Some((prop?, all))
            }
            _ => None,
        }
    }

    /// The id list of a delta filter: `id eq 'a' or id eq 'b'` (at most 50).
    pub(crate) fn delta_ids(&self) -> Option<Vec<String>> {
        let one = |f: &Filter| match f {
            Filter::Eq(p, Lit::Str(s)) if p == "id" => Some(s.to_ascii_lowercase()),
            _ => None,
        };
        match self {
            Filter::Or(parts) => parts.iter().map(one).collect(),
            other => one(other).map(|id| vec![id]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(
            Filter::parse("accountEnabled eq false").ok(),
            Some(Filter::Eq("accountEnabled".into(), Lit::Bool(false)))
        );
        assert_eq!(
            Filter::parse("displayName eq 'O''Brien'").ok(),
            Some(Filter::Eq("displayName".into(), Lit::Str("O'Brien".into())))
        );
        let f = Filter::parse("id in ('a', 'b')").ok();
        assert_eq!(
            f,
            Some(Filter::In(
                "id".into(),
                vec![Lit::Str("a".into()), Lit::Str("b".into())]
            ))
        );
        let f = Filter::parse("id eq 'A' or id eq 'b'").expect("parses");
        assert_eq!(f.delta_ids(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(Filter::parse("displayName ne 'x'").is_err());
        assert!(Filter::parse("endswith(mail,'x')").is_err());
        assert!(Filter::parse("displayName eq 'unterminated").is_err());
    }
}
