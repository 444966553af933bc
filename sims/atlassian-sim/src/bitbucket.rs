//! Bitbucket Data Center REST 1.0, exactly the user/group operations of the official 8.14
//! OpenAPI (`/work/shared/specs/bitbucket-dc-8.14-openapi.yaml`), served under both
//! `/bitbucket/rest/api/1.0` and `/bitbucket/rest/api/latest` (the same API). The operationId
//! of each route is noted beside it.
//!
//! There is deliberately no activate/deactivate and no `remove-groups` endpoint: 8.14 has none.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use crate::common::{Params, bitbucket_exception, empty, json_response, parse_json, window};
use crate::state::{Dir, UserRec, lower, now_rfc3339};
use crate::{Inner, Product};

type Res = Result<Response, Response>;

const PREFIXES: [&str; 2] = ["/bitbucket/rest/api/1.0", "/bitbucket/rest/api/latest"];

pub(crate) fn routes() -> Router<Arc<Inner>> {
    let table: Vec<(&str, MethodRouter<Arc<Inner>>)> = vec![
        // getApplicationProperties (version; no authentication needed)
        (
            "/application-properties",
            get(crate::versions::bitbucket_application_properties),
        ),
        // getUsers_1 / createUser / updateUserDetails / deleteUser
        (
            "/admin/users",
            get(admin_users)
                .post(create_user)
                .put(update_user)
                .delete(delete_user),
        ),
        // renameUser
        ("/admin/users/rename", post(rename_user)),
        // addUserToGroups
        ("/admin/users/add-groups", post(add_user_to_groups)),
        // addGroupToUser (deprecated since 2.10, still in 8.14)
        ("/admin/users/add-group", post(add_group_to_user)),
        // removeGroupFromUser
        ("/admin/users/remove-group", post(remove_group_from_user)),
        // findGroupsForUser
        ("/admin/users/more-members", get(groups_for_user)),
        // findOtherGroupsForUser
        ("/admin/users/more-non-members", get(other_groups_for_user)),
        // getGroups_1 / createGroup / deleteGroup
        (
            "/admin/groups",
            get(admin_groups).post(create_group).delete(delete_group),
        ),
        // addUsersToGroup
        ("/admin/groups/add-users", post(add_users_to_group)),
        // addUserToGroup (deprecated since 2.10, still in 8.14)
        ("/admin/groups/add-user", post(add_user_to_group)),
        // removeUserFromGroup
        ("/admin/groups/remove-user", post(remove_user_from_group)),
        // findUsersInGroup
        ("/admin/groups/more-members", get(users_in_group)),
        // findUsersNotInGroup
        ("/admin/groups/more-non-members", get(users_not_in_group)),
        // get_2 ("Get license details", System Maintenance; ADMIN permission)
        ("/admin/license", get(license)),
        // getGroups
        ("/groups", get(group_names)),
        // getUsers_2
        ("/users", get(users)),
        // getUser
        ("/users/{userSlug}", get(user_by_slug)),
    ];
    let mut router = Router::new();
    for prefix in PREFIXES {
        for (path, method_router) in &table {
            router = router.route(&format!("{prefix}{path}"), method_router.clone());
        }
    }
    router
}

// ---------------------------------------------------------------------------------------------
// Errors: {"errors":[{"context","message","exceptionName"}]} for every status (RestErrors).

fn err_ctx(status: StatusCode, context: Option<&str>, message: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"errors": [{
            "context": context,
            "message": message.into(),
            "exceptionName": bitbucket_exception(status),
        }]}),
    )
}

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    err_ctx(status, None, message)
}

fn bad(message: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, message)
}

fn no_user(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("User {name} does not exist."),
    )
}

fn no_group(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("Group {name} does not exist."),
    )
}

/// [U] User-detail writes in a read-only directory: the spec has no dedicated status; 400
/// ("the request was malformed") is the only failure it lists for create/update/rename.
fn read_only_details() -> Response {
    bad("The user directory is read-only: user details cannot be changed in Bitbucket.")
}

/// [U] Membership writes in a read-only directory: 403 (the spec's "disallowed" status for
/// group changes).
fn read_only_groups() -> Response {
    err(
        StatusCode::FORBIDDEN,
        "The user directory is read-only: group memberships cannot be changed in Bitbucket.",
    )
}

fn licence_error() -> Response {
    err_ctx(
        StatusCode::FORBIDDEN,
        None,
        "Adding this user would exceed the number of users allowed by the server's license.",
    )
}

// ---------------------------------------------------------------------------------------------
// Paging: {size,limit,isLastPage,start,nextPageStart?,values}; start/limit, default 25.

/// [U] The cap is 1000 (the usual Bitbucket `page.max.*` setting).
const MAX_LIMIT: usize = 1000;

fn paging(params: &Params) -> Result<(usize, usize), Response> {
    let start = params.usize("start", 0).map_err(bad)?;
    let limit = params.usize("limit", 25).map_err(bad)?;
    let limit = if limit == 0 { 25 } else { limit.min(MAX_LIMIT) };
    Ok((start, limit))
}

fn page(values: Vec<Value>, start: usize, limit: usize, total: usize) -> Value {
    let is_last = start.saturating_add(values.len()) >= total;
    let mut page = json!({
        "size": values.len(),
        "limit": limit,
        "isLastPage": is_last,
        "start": start,
        "values": values,
    });
    if !is_last {
        page["nextPageStart"] = json!(start + limit);
    }
    page
}

fn paged<T: Clone>(
    items: &[T],
    params: &Params,
    render: impl Fn(&T) -> Value,
) -> Result<Value, Response> {
    let (start, limit) = paging(params)?;
    let (slice, _) = window(items, start, limit);
    let values: Vec<Value> = slice.iter().map(render).collect();
    Ok(page(values, start, limit, items.len()))
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

/// Bitbucket derives a URL-safe slug from the username.
fn slug(name: &str) -> String {
    lower(name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn numeric_id(user: &UserRec) -> Value {
    user.key
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(user.key.clone()))
}

/// RestApplicationUser.
fn app_user(base: &str, user: &UserRec) -> Value {
    json!({
        "name": user.name,
        "emailAddress": user.email,
        "active": user.active,
        "displayName": user.display_name,
        "id": numeric_id(user),
        "slug": slug(&user.name),
        "type": "NORMAL",
        "links": {"self": [{"href": format!("{base}/bitbucket/users/{}", slug(&user.name))}]},
    })
}

/// RestDetailedUser: `mutableDetails` / `mutableGroups` are false for read-only directories.
fn detailed_user(base: &str, dir: &Dir, user: &UserRec) -> Value {
    let mut value = app_user(base, user);
    let directory = if dir.read_only {
        "Read-only LDAP directory"
    } else {
        "Bitbucket Internal Directory"
    };
    value["directoryName"] = json!(directory);
    value["deletable"] = json!(true);
    value["mutableDetails"] = json!(!dir.read_only);
    value["mutableGroups"] = json!(!dir.read_only);
    value
}

/// RestDetailedGroup.
fn detailed_group(name: &str) -> Value {
    json!({"name": name, "deletable": true})
}

/// Whether `haystack` contains `needle` (already lower case), ignoring case. Filters scan every
/// user, so the ASCII case compares in place instead of lower-casing a copy of each field.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    if h.is_ascii() && n.is_ascii() {
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    lower(haystack).contains(needle)
}

fn user_filter(user: &UserRec, filter: &str) -> bool {
    filter.is_empty()
        || contains_ci(&user.name, filter)
        || contains_ci(&user.display_name, filter)
        || contains_ci(&user.email, filter)
}

// ---------------------------------------------------------------------------------------------
// Licensing: users in a licence-granting group hold a seat.

fn licence_groups(sim: &Inner) -> BTreeSet<String> {
    let config = &sim.config;
    config
        .bitbucket_licence_groups
        .iter()
        .map(|g| lower(g))
        .chain(std::iter::once(lower(&config.bitbucket_default_group)))
        .collect()
}

fn licensed(dir: &Dir, grants: &BTreeSet<String>, key: &str) -> bool {
    grants
        .iter()
        .filter_map(|g| dir.groups.get(g))
        .any(|g| g.members.contains(key))
}

fn licensed_count(dir: &Dir, grants: &BTreeSet<String>) -> usize {
    let keys: BTreeSet<&String> = grants
        .iter()
        .filter_map(|g| dir.groups.get(g))
        .flat_map(|g| g.members.iter())
        .collect();
    keys.len()
}

/// `Err(403)` when adding `key` to `groups` would take a seat that is not there.
fn check_seat(
    sim: &Inner,
    dir: &Dir,
    key: Option<&str>,
    groups: &[String],
) -> Result<(), Response> {
    let Some(seats) = dir.seats else {
        return Ok(());
    };
    let grants = licence_groups(sim);
    if !groups.iter().any(|g| grants.contains(&lower(g))) {
        return Ok(());
    }
    if key.is_some_and(|k| licensed(dir, &grants, k)) {
        return Ok(());
    }
    if licensed_count(dir, &grants) >= seats {
        return Err(licence_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Body helpers.

fn object_body(body: &Bytes) -> Result<Value, Response> {
    let value = parse_json(body).map_err(bad)?;
    if !value.is_object() {
        return Err(bad("The request body must be a JSON object"));
    }
    Ok(value)
}

fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, Response> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some(field),
            format!("{field} must be a string"),
        )),
    }
}

fn req_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, Response> {
    opt_str(body, field)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            err_ctx(
                StatusCode::BAD_REQUEST,
                Some(field),
                format!("{field} is required"),
            )
        })
}

fn str_list(body: &Value, field: &str) -> Result<Vec<String>, Response> {
    match body.get(field) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    err_ctx(
                        StatusCode::BAD_REQUEST,
                        Some(field),
                        format!("{field} must be a list of strings"),
                    )
                })
            })
            .collect(),
        _ => Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some(field),
            format!("{field} is required"),
        )),
    }
}

fn req_param<'a>(params: &'a Params, name: &str) -> Result<&'a str, Response> {
    params.text(name).ok_or_else(|| {
        err_ctx(
            StatusCode::BAD_REQUEST,
            Some(name),
            format!("The {name} parameter is required."),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Users.

async fn admin_users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let users: Vec<&UserRec> = dir
        .users
        .values()
        .filter(|u| user_filter(u, &filter))
        .collect();
    let body = paged(&users, &params, |u| detailed_user(&base, dir, u))?;
    Ok(json_response(StatusCode::OK, body))
}

/// createUser: QUERY parameters, no body; 204 on success.
async fn create_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.trim().to_owned();
    let display_name = req_param(&params, "displayName")?.trim().to_owned();
    let email = req_param(&params, "emailAddress")?.trim().to_owned();
    let notify = params.bool("notify", false).map_err(bad)?;
    let add_to_default = params.bool("addToDefaultGroup", true).map_err(bad)?;
    if !notify && params.text("password").is_none() {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("password"),
            "A password is required unless notify is set.",
        ));
    }
    if !email.contains('@') {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("emailAddress"),
            "Please enter a valid e-mail address.",
        ));
    }
    let mut state = crate::lock(&sim.state);
    if state.bitbucket.read_only {
        return Err(read_only_details());
    }
    if state.bitbucket.user(&name).is_some() {
        return Err(err_ctx(
            StatusCode::CONFLICT,
            Some("name"),
            format!("A user with the name {name} already exists."),
        ));
    }
    let default_group = sim.config.bitbucket_default_group.clone();
    if add_to_default {
        // The user is not created when the default group would exceed the licence.
        check_seat(
            &sim,
            &state.bitbucket,
            None,
            std::slice::from_ref(&default_group),
        )?;
    }
    let key = state.new_key(Product::Bitbucket);
    let now = now_rfc3339();
    let dir = &mut state.bitbucket;
    dir.insert_user(UserRec {
        key: key.clone(),
        name,
        email,
        display_name,
        active: true,
        external_id: None,
        attributes: Default::default(),
        properties: Default::default(),
        created: now.clone(),
        modified: now,
    });
    if add_to_default {
        if dir.group(&default_group).is_none() {
            dir.insert_group(&default_group, uuid::Uuid::new_v4().to_string());
        }
        if let Some(group) = dir.group_mut(&default_group) {
            group.members.insert(key);
        }
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// updateUserDetails: body UserUpdate `{name, displayName, email}`; 200 RestDetailedUser.
async fn update_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let name = req_str(&body, "name")?.to_owned();
    let display_name = opt_str(&body, "displayName")?.map(str::to_owned);
    let email = opt_str(&body, "email")?.map(str::to_owned);
    if let Some(email) = &email
        && !email.contains('@')
    {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("email"),
            "Please enter a valid e-mail address.",
        ));
    }
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    if dir.read_only {
        return Err(read_only_details());
    }
    if let Some(user) = dir.user_by_key_mut(&key) {
        if let Some(d) = display_name.filter(|d| !d.trim().is_empty()) {
            user.display_name = d;
        }
        if let Some(e) = email {
            user.email = e;
        }
        user.modified = now_rfc3339();
    }
    let user = dir.user_by_key(&key).ok_or_else(|| no_user(&name))?;
    Ok(json_response(
        StatusCode::OK,
        detailed_user(&base, dir, user),
    ))
}

/// deleteUser: `?name=`; 200 with the deleted RestDetailedUser.
async fn delete_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.to_owned();
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let user = dir.user(&name).ok_or_else(|| no_user(&name))?;
    if lower(&name) == lower(&sim.config.admin_user) {
        return Err(err(StatusCode::CONFLICT, "You cannot delete yourself."));
    }
    if dir.read_only {
        return Err(read_only_details());
    }
    let body = detailed_user(&base, dir, user);
    let key = user.key.clone();
    dir.remove_user(&key);
    Ok(json_response(StatusCode::OK, body))
}

/// renameUser: body UserRename `{name, newName}`; 200 RestDetailedUser. The spec lists no 409,
/// so a taken name is a 400.
async fn rename_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let name = req_str(&body, "name")?.to_owned();
    let new_name = req_str(&body, "newName")?.trim().to_owned();
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    if dir.read_only {
        return Err(read_only_details());
    }
    if !dir.rename_user(&key, &new_name) {
        return Err(err_ctx(
            StatusCode::BAD_REQUEST,
            Some("newName"),
            format!("A user with the name {new_name} already exists."),
        ));
    }
    let user = dir.user_by_key(&key).ok_or_else(|| no_user(&new_name))?;
    Ok(json_response(
        StatusCode::OK,
        detailed_user(&base, dir, user),
    ))
}

/// Adds one user to several groups after checking they all exist and the licence allows it.
fn add_memberships(sim: &Inner, username: &str, groups: &[String]) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    for group in groups {
        if dir.group(group).is_none() {
            return Err(no_group(group));
        }
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    check_seat(sim, dir, Some(&key), groups)?;
    for group in groups {
        if let Some(g) = dir.group_mut(group) {
            g.members.insert(key.clone());
            g.modified = now_rfc3339();
        }
    }
    // 200 with an empty JSON body ("content: application/json: {}").
    Ok(empty(StatusCode::OK))
}

/// addUserToGroups: body UserAndGroups `{user, groups[]}`.
async fn add_user_to_groups(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let user = req_str(&body, "user")?.to_owned();
    let groups = str_list(&body, "groups")?;
    add_memberships(&sim, &user, &groups)
}

/// addGroupToUser (deprecated): GroupPickerContext, `context` = user, `itemName` = group.
async fn add_group_to_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let user = req_str(&body, "context")?.to_owned();
    let group = req_str(&body, "itemName")?.to_owned();
    add_memberships(&sim, &user, &[group])
}

fn remove_membership(sim: &Inner, username: &str, group: &str) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    if dir.group(group).is_none() {
        return Err(no_group(group));
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    if let Some(g) = dir.group_mut(group) {
        // Removing a non-member is not an error.
        g.members.remove(&key);
    }
    Ok(empty(StatusCode::OK))
}

/// removeGroupFromUser: GroupPickerContext, `context` = user, `itemName` = group.
async fn remove_group_from_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let user = req_str(&body, "context")?.to_owned();
    let group = req_str(&body, "itemName")?.to_owned();
    remove_membership(&sim, &user, &group)
}

/// findGroupsForUser: the groups `context` (a user) belongs to. The 8.14 document's
/// description and response schema for this operation are copied from the users listing; the
/// operation's name and Bitbucket itself return a page of RestDetailedGroup.
async fn groups_for_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    let names: Vec<String> = dir
        .groups_of(&key)
        .into_iter()
        .filter(|g| contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| detailed_group(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// findOtherGroupsForUser: groups `context` (a user) is not in.
async fn other_groups_for_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let key = dir.user(&name).ok_or_else(|| no_user(&name))?.key.clone();
    let names: Vec<String> = dir
        .groups
        .values()
        .filter(|g| !g.members.contains(&key) && contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| detailed_group(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// getUsers_2: page of RestApplicationUser, `filter` and `group` supported.
async fn users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let users: Vec<&UserRec> = match params.text("group") {
        Some(group) => match dir.group(group) {
            Some(g) => dir.direct_members(g),
            None => Vec::new(),
        },
        None => dir.users.values().collect(),
    }
    .into_iter()
    .filter(|u| user_filter(u, &filter))
    .collect();
    let body = paged(&users, &params, |u| app_user(&base, u))?;
    Ok(json_response(StatusCode::OK, body))
}

/// getUser: by slug (not necessarily the username).
async fn user_by_slug(State(sim): State<Arc<Inner>>, Path(user_slug): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let wanted = lower(&user_slug);
    let user = state
        .bitbucket
        .users
        .values()
        .find(|u| slug(&u.name) == wanted)
        .ok_or_else(|| no_user(&user_slug))?;
    Ok(json_response(StatusCode::OK, app_user(&base, user)))
}

/// get_2: the installed licence (RestBitbucketLicense). Its user limit follows the licence-seat
/// knob (`AtlassianSim::set_licence_seats`) and `status.currentNumberOfUsers` counts the users
/// in a licence-granting group, as creating users and adding them to such groups do. The dates
/// and texts are fixed placeholders. [U] An unlimited licence is shown with
/// `unlimitedNumberOfUsers` and a limit of -1.
async fn license(State(sim): State<Arc<Inner>>) -> Res {
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let used = licensed_count(dir, &licence_groups(&sim));
    let maximum = dir
        .seats
        .map_or(-1, |seats| i64::try_from(seats).unwrap_or(i64::MAX));
    const SERVER_ID: &str = "B0B0-SIMU-LATE-D000";
    Ok(json_response(
        StatusCode::OK,
        json!({
            "creationDate": 1_767_225_600_000_i64,
            "purchaseDate": 1_767_225_600_000_i64,
            "expiryDate": 1_830_297_600_000_i64,
            "maintenanceExpiryDate": 1_830_297_600_000_i64,
            "gracePeriodEndDate": 1_832_889_600_000_i64,
            "numberOfDaysBeforeExpiry": 730,
            "numberOfDaysBeforeGracePeriodExpiry": 760,
            "numberOfDaysBeforeMaintenanceExpiry": 730,
            "daysBeforeExpiry": 730,
            "maximumNumberOfUsers": maximum,
            "unlimitedNumberOfUsers": dir.seats.is_none(),
            "serverId": SERVER_ID,
            "supportEntitlementNumber": "SEN-SIMULATED",
            "license": "<encoded license text>",
            "status": {"serverId": SERVER_ID, "currentNumberOfUsers": used},
        }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Groups.

async fn admin_groups(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let names: Vec<String> = state
        .bitbucket
        .groups
        .values()
        .filter(|g| contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| detailed_group(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// getGroups: a page of group names (strings).
async fn group_names(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let filter = lower(params.get("filter").unwrap_or(""));
    let state = crate::lock(&sim.state);
    let names: Vec<String> = state
        .bitbucket
        .groups
        .values()
        .filter(|g| contains_ci(&g.name, &filter))
        .map(|g| g.name.clone())
        .collect();
    let body = paged(&names, &params, |n| json!(n))?;
    Ok(json_response(StatusCode::OK, body))
}

/// createGroup: `?name=`; 200 RestDetailedGroup; 409 when it exists.
async fn create_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.trim().to_owned();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    if dir.group(&name).is_some() {
        return Err(err_ctx(
            StatusCode::CONFLICT,
            Some("name"),
            format!("A group named {name} already exists."),
        ));
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    dir.insert_group(&name, uuid::Uuid::new_v4().to_string());
    Ok(json_response(StatusCode::OK, detailed_group(&name)))
}

/// deleteGroup: `?name=`; 200 with the deleted RestDetailedGroup.
async fn delete_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let name = req_param(&params, "name")?.to_owned();
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    let display = dir
        .group(&name)
        .ok_or_else(|| no_group(&name))?
        .name
        .clone();
    if dir.read_only {
        return Err(read_only_groups());
    }
    dir.remove_group(&name);
    Ok(json_response(StatusCode::OK, detailed_group(&display)))
}

/// Adds several users to one group: all must exist; the licence is checked for each newcomer.
fn add_users(sim: &Inner, group: &str, users: &[String]) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.bitbucket;
    if dir.group(group).is_none() {
        return Err(no_group(group));
    }
    let mut keys = Vec::new();
    for user in users {
        keys.push(dir.user(user).ok_or_else(|| no_user(user))?.key.clone());
    }
    if dir.read_only {
        return Err(read_only_groups());
    }
    if let Some(seats) = dir.seats {
        let grants = licence_groups(sim);
        if grants.contains(&lower(group)) {
            let newcomers: BTreeSet<&String> =
                keys.iter().filter(|k| !licensed(dir, &grants, k)).collect();
            if licensed_count(dir, &grants) + newcomers.len() > seats {
                return Err(licence_error());
            }
        }
    }
    if let Some(g) = dir.group_mut(group) {
        g.members.extend(keys);
        g.modified = now_rfc3339();
    }
    Ok(empty(StatusCode::OK))
}

/// addUsersToGroup: body GroupAndUsers `{group, users[]}`.
async fn add_users_to_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let group = req_str(&body, "group")?.to_owned();
    let users = str_list(&body, "users")?;
    add_users(&sim, &group, &users)
}

/// addUserToGroup (deprecated): UserPickerContext, `context` = group, `itemName` = user.
async fn add_user_to_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let group = req_str(&body, "context")?.to_owned();
    let user = req_str(&body, "itemName")?.to_owned();
    add_users(&sim, &group, &[user])
}

/// removeUserFromGroup: UserPickerContext, `context` = group, `itemName` = user.
async fn remove_user_from_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = object_body(&body)?;
    let group = req_str(&body, "context")?.to_owned();
    let user = req_str(&body, "itemName")?.to_owned();
    remove_membership(&sim, &user, &group)
}

/// findUsersInGroup: direct members of `context` (a group), RestDetailedUser page.
async fn users_in_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let group = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let g = dir.group(&group).ok_or_else(|| no_group(&group))?;
    let users: Vec<&UserRec> = dir
        .direct_members(g)
        .into_iter()
        .filter(|u| user_filter(u, &filter))
        .collect();
    let body = paged(&users, &params, |u| detailed_user(&base, dir, u))?;
    Ok(json_response(StatusCode::OK, body))
}

/// findUsersNotInGroup: users not directly in `context` (a group).
async fn users_not_in_group(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let group = req_param(&params, "context")?.to_owned();
    let filter = lower(params.get("filter").unwrap_or(""));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let g = dir.group(&group).ok_or_else(|| no_group(&group))?;
    let users: Vec<&UserRec> = dir
        .users
        .values()
        .filter(|u| !g.members.contains(&u.key) && user_filter(u, &filter))
        .collect();
    let body = paged(&users, &params, |u| detailed_user(&base, dir, u))?;
    Ok(json_response(StatusCode::OK, body))
}
