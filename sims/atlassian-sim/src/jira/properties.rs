//! User properties (`/user/properties`): the key list and one property read, set and deleted.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::Inner;
use crate::common::{Params, empty, enc, json_response, parse_json};
use crate::state::{Dir, UserRec};

use super::users::find_user;
use super::{API, Res, bad, err, no_user};

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-get
        .route(&format!("{API}/user/properties"), get(property_keys))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-user/#api-api-2-user-properties-propertykey-get
        // (and -put, -delete)
        .route(
            &format!("{API}/user/properties/{{propertyKey}}"),
            get(get_property).put(set_property).delete(delete_property),
        )
}

fn property_user<'a>(dir: &'a Dir, params: &Params) -> Result<&'a UserRec, Response> {
    find_user(dir, params, "userKey")
}

async fn property_keys(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let user = property_user(&state.jira, &params)?;
    let keys: Vec<Value> = user
        .properties
        .keys()
        .map(|k| {
            json!({
                "self": format!("{base}{API}/user/properties/{}?userKey={}", enc(k), enc(&user.key)),
                "key": k,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, json!({"keys": keys})))
}

fn no_property(key: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("Property with key '{key}' not found."),
    )
}

async fn get_property(
    State(sim): State<Arc<Inner>>,
    Path(key): Path<String>,
    params: Params,
) -> Res {
    let state = crate::lock(&sim.state);
    let user = property_user(&state.jira, &params)?;
    let value = user.properties.get(&key).ok_or_else(|| no_property(&key))?;
    Ok(json_response(
        StatusCode::OK,
        json!({"key": key, "value": value}),
    ))
}

async fn set_property(
    State(sim): State<Arc<Inner>>,
    Path(key): Path<String>,
    params: Params,
    body: Bytes,
) -> Res {
    let value = parse_json(&body).map_err(bad)?;
    if key.len() > 255 {
        return Err(bad(
            "The property key cannot be longer than 255 characters.",
        ));
    }
    let mut state = crate::lock(&sim.state);
    let user_key = property_user(&state.jira, &params)?.key.clone();
    let user = state
        .jira
        .user_by_key_mut(&user_key)
        .ok_or_else(|| no_user(&user_key))?;
    // [U] 201 when created, 200 when replaced (the usual Jira entity-property contract).
    let status = if user.properties.insert(key, value).is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(empty(status))
}

async fn delete_property(
    State(sim): State<Arc<Inner>>,
    Path(key): Path<String>,
    params: Params,
) -> Res {
    let mut state = crate::lock(&sim.state);
    let user_key = property_user(&state.jira, &params)?.key.clone();
    let user = state
        .jira
        .user_by_key_mut(&user_key)
        .ok_or_else(|| no_user(&user_key))?;
    user.properties
        .remove(&key)
        .ok_or_else(|| no_property(&key))?;
    Ok(empty(StatusCode::NO_CONTENT))
}
