//! Confluence Data Center REST (`/confluence/rest/api`): admin user and group management
//! (8.4+ create user, 9.x/10.x user-group membership), Person and Group listings with
//! `start`/`limit` paging, and the asynchronous user deletion (202 + long task).
//!
//! Reference: https://developer.atlassian.com/server/confluence/rest/v1000/ (admin-user,
//! admin-group, group, user, longtask resources); api-contracts.md D. Confluence REST has no
//! rename: none is simulated.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use crate::common::{Caller, Params, empty, enc, error_body, json_response, parse_json, window};
use crate::state::{Dir, LongTask, State as SimState, UserRec, now_rfc3339};
use crate::{Inner, Product};

const CONTEXT: &str = "/confluence";
const API: &str = "/confluence/rest/api";

type Res = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-user/ (create user, 8.4+)
        .route(&format!("{API}/admin/user"), post(create_user))
        // .../api-group-admin-user/ (update user details; delete user → LongTaskSubmission)
        .route(
            &format!("{API}/admin/user/{{username}}"),
            put(update_user).delete(delete_user),
        )
        // .../api-group-admin-user/ (disable / enable)
        .route(
            &format!("{API}/admin/user/{{username}}/disable"),
            put(disable_user),
        )
        .route(
            &format!("{API}/admin/user/{{username}}/enable"),
            put(enable_user),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-longtask/
        .route(&format!("{API}/longtask/{{id}}"), get(long_task))
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-server-information/ (9.1+)
        .route(
            &format!("{API}/server-information"),
            get(crate::versions::confluence_server_information),
        )
        // The application-links manifest every Atlassian server product serves.
        .route(
            &format!("{CONTEXT}/rest/applinks/1.0/manifest"),
            get(crate::versions::confluence_manifest),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-admin-group/
        .route(&format!("{API}/admin/group"), post(create_group))
        .route(
            &format!("{API}/admin/group/{{groupName}}"),
            delete(delete_group),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/ (user-group membership)
        .route(
            &format!("{API}/user/{{username}}/group/{{groupName}}"),
            put(add_member).delete(remove_member),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-group/
        .route(&format!("{API}/group"), get(list_groups))
        .route(&format!("{API}/group/{{groupName}}"), get(get_group))
        .route(
            &format!("{API}/group/{{groupName}}/member"),
            get(group_members),
        )
        // https://developer.atlassian.com/server/confluence/rest/v1000/api-group-user/
        .route(&format!("{API}/user"), get(get_user))
        // .../api-group-user/ (list all users, 8.4+; [U] start/limit params)
        .route(&format!("{API}/user/list"), get(list_users))
        // .../api-group-user/ (groups of a user)
        .route(&format!("{API}/user/memberof"), get(member_of))
        // https://developer.atlassian.com/server/confluence/rest/v910/api-group-user/ (the
        // current user)
        .route(&format!("{API}/user/current"), get(current_user))
}

// ---------------------------------------------------------------------------------------------
// Errors: {"statusCode","data":{...},"message","reason"} ([U] typical Confluence shape).

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(
        status,
        error_body(Some(Product::Confluence), status, &message.into()),
    )
}

fn bad(message: impl Into<String>) -> Response {
    err(StatusCode::BAD_REQUEST, message)
}

fn no_user(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("No user found with username: {name}"),
    )
}

fn no_group(name: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("No group found with name: {name}"),
    )
}

/// [U] Writes against a read-only (LDAP/Crowd) directory: 403.
fn read_only() -> Response {
    err(
        StatusCode::FORBIDDEN,
        "The user directory is read-only: users and groups cannot be changed in Confluence.",
    )
}

fn no_seats() -> Response {
    err(
        StatusCode::PAYMENT_REQUIRED,
        "Your Confluence license does not have enough seats for another user.",
    )
}

fn seats_full(dir: &Dir) -> bool {
    dir.seats.is_some_and(|seats| dir.active_count() >= seats)
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

/// Person (`type: known`); `status` ("Active"/"Deactivated") only with `expand=status`.
fn person(base: &str, user: &UserRec, with_status: bool) -> Value {
    let mut value = json!({
        "type": "known",
        "username": user.name,
        "userKey": user.key,
        "profilePicture": {
            "path": format!("{CONTEXT}/images/icons/profilepics/default.svg"),
            "width": 48,
            "height": 48,
            "isDefault": true,
        },
        "displayName": user.display_name,
        "_links": {"self": format!("{base}{API}/user?key={}", enc(&user.key))},
    });
    if with_status {
        value["status"] = json!(if user.active { "Active" } else { "Deactivated" });
    } else {
        value["_expandable"] = json!({"status": ""});
    }
    value
}

fn group_json(base: &str, name: &str) -> Value {
    json!({
        "type": "group",
        "name": name,
        "_links": {"self": format!("{base}{API}/group/{}", path_enc(name))},
    })
}

fn path_enc(s: &str) -> String {
    enc(s).replace('+', "%20")
}

fn expands_status(params: &Params) -> bool {
    params
        .get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "status"))
}

/// [U] Confluence lowers `limit` to its own maximum; 200 (the documented default) is used.
const MAX_LIMIT: usize = 200;

/// `{results,start,limit,size,totalCount,_links:{base,context,self,next?}}`; `next` is
/// relative to the base URL, as Confluence writes it.
fn page(
    base: &str,
    path: &str,
    extra: &str,
    params: &Params,
    items: Vec<Value>,
) -> Result<Value, Response> {
    let start = params.usize("start", 0).map_err(bad)?;
    let limit = params.usize("limit", MAX_LIMIT).map_err(bad)?;
    let limit = if limit == 0 {
        MAX_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    let total = items.len();
    let (results, is_last) = window(&items, start, limit);
    let relative = |s: usize| format!("/rest/api{path}?{extra}start={s}&limit={limit}");
    let mut links = json!({
        "base": format!("{base}{CONTEXT}"),
        "context": CONTEXT,
        "self": format!("{base}{CONTEXT}{}", relative(start)),
    });
    if !is_last {
        links["next"] = json!(relative(start + limit));
    }
    Ok(json!({
        "results": results,
        "start": start,
        "limit": limit,
        "size": results.len(),
        "totalCount": total,
        "_links": links,
    }))
}

fn expand_param(params: &Params) -> String {
    match params.get("expand") {
        Some(e) => format!("expand={}&", enc(e)),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Admin: users.

fn body_object(body: &Bytes) -> Result<Value, Response> {
    let value = parse_json(body).map_err(bad)?;
    if !value.is_object() {
        return Err(bad("The request body must be a JSON object"));
    }
    Ok(value)
}

fn opt_str(body: &Value, field: &str) -> Result<Option<String>, Response> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(bad(format!("{field} must be a string"))),
    }
}

/// Why Confluence refuses `userName` on `POST /admin/user`, if it does. The documented
/// requirements (Confluence DC 9.4 and 10.0 REST, Admin User > Create user):
/// https://developer.atlassian.com/server/confluence/rest/v940/api-group-admin-user/ — not
/// blank; none of `\ , + < > ' "`; no whitespace; not "anonymous"; no upper-case characters.
/// The message is the requirement that failed ([U] the product's exact wording).
fn username_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("The userName should not be null or blank".to_owned());
    }
    if name.chars().any(|c| "\\,+<>'\"".contains(c)) {
        return Some(
            "The userName should not contain any of these characters \\ , + < > ' \"".to_owned(),
        );
    }
    if name.chars().any(char::is_whitespace) {
        return Some("The userName should not contain any whitespace characters".to_owned());
    }
    if name.eq_ignore_ascii_case("anonymous") {
        return Some("The userName should not be \"anonymous\"".to_owned());
    }
    if name.chars().any(char::is_uppercase) {
        return Some("The userName should not contain any upper case characters".to_owned());
    }
    None
}

/// `POST /admin/user`: 201 `{"userKey"}`; 409 duplicate; 402 no licence seat; 400 for a
/// `userName` the product refuses ([`username_problem`]).
async fn create_user(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = body_object(&body)?;
    // Checked untrimmed: surrounding whitespace is whitespace too.
    if let Some(Value::String(raw)) = body.get("userName")
        && let Some(problem) = username_problem(raw)
    {
        return Err(bad(problem));
    }
    let name = opt_str(&body, "userName")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("userName is required"))?;
    let email = opt_str(&body, "email")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("email is required"))?;
    if !email.contains('@') {
        return Err(bad(format!("Invalid email address: {email}")));
    }
    let full_name = opt_str(&body, "fullName")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.clone());
    let notify = matches!(body.get("notifyViaEmail"), Some(Value::Bool(true)));
    let password = opt_str(&body, "password")?.filter(|s| !s.is_empty());
    if password.is_none() && !notify {
        return Err(bad("A password is required unless notifyViaEmail is true"));
    }
    let mut state = crate::lock(&sim.state);
    if state.confluence.read_only {
        return Err(read_only());
    }
    if state.confluence.user(&name).is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            format!("A user with username '{name}' already exists"),
        ));
    }
    if seats_full(&state.confluence) {
        return Err(no_seats());
    }
    let key = state.new_key(Product::Confluence);
    let now = now_rfc3339();
    state.confluence.insert_user(UserRec {
        key: key.clone(),
        name,
        email,
        display_name: full_name,
        active: true,
        external_id: None,
        attributes: Default::default(),
        properties: Default::default(),
        created: now.clone(),
        modified: now,
    });
    Ok(json_response(StatusCode::CREATED, json!({"userKey": key})))
}

/// `PUT /admin/user/{username}`: UserDetailsForUpdate — e-mail and full name only; 204.
async fn update_user(
    State(sim): State<Arc<Inner>>,
    Path(username): Path<String>,
    body: Bytes,
) -> Res {
    let body = body_object(&body)?;
    let email = opt_str(&body, "email")?;
    let full_name = opt_str(&body, "fullName")?;
    if let Some(email) = &email
        && !email.contains('@')
    {
        return Err(bad(format!("Invalid email address: {email}")));
    }
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.confluence;
    let key = dir
        .user(&username)
        .ok_or_else(|| no_user(&username))?
        .key
        .clone();
    if dir.read_only {
        return Err(read_only());
    }
    if let Some(user) = dir.user_by_key_mut(&key) {
        if let Some(email) = email.filter(|e| !e.is_empty()) {
            user.email = email;
        }
        if let Some(full_name) = full_name.filter(|f| !f.is_empty()) {
            user.display_name = full_name;
        }
        user.modified = now_rfc3339();
    }
    // [U] 204 (api-contracts.md J.5).
    Ok(empty(StatusCode::NO_CONTENT))
}

fn set_active(sim: &Inner, username: &str, active: bool) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.confluence;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    let currently = dir.user_by_key(&key).is_some_and(|u| u.active);
    if currently == active {
        // Idempotent: nothing to change.
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    if dir.read_only {
        return Err(read_only());
    }
    if active && seats_full(dir) {
        // [U] enabling a user needs a seat like creating one does.
        return Err(no_seats());
    }
    if let Some(user) = dir.user_by_key_mut(&key) {
        user.active = active;
        user.modified = now_rfc3339();
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn disable_user(State(sim): State<Arc<Inner>>, Path(username): Path<String>) -> Res {
    set_active(&sim, &username, false)
}

async fn enable_user(State(sim): State<Arc<Inner>>, Path(username): Path<String>) -> Res {
    set_active(&sim, &username, true)
}

/// `DELETE /admin/user/{username}`: asynchronous; 202 LongTaskSubmission. The user stays
/// until the task completes, which happens on the poll set by
/// `AtlassianSim::set_long_task_polls` (default: the second).
async fn delete_user(State(sim): State<Arc<Inner>>, Path(username): Path<String>) -> Res {
    let mut state = crate::lock(&sim.state);
    let user = state
        .confluence
        .user(&username)
        .ok_or_else(|| no_user(&username))?;
    let (key, name) = (user.key.clone(), user.name.clone());
    if state.confluence.read_only {
        return Err(read_only());
    }
    let fails = state.long_tasks_fail;
    let id = uuid::Uuid::new_v4().to_string();
    state.tasks.insert(
        id.clone(),
        LongTask {
            user_key: key,
            username: name,
            polls: 0,
            done: false,
            fails,
            failed: false,
            started: Instant::now(),
        },
    );
    // [U shape] The status link is relative to the Confluence base URL, as in
    // api-contracts.md D.
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({"id": id, "links": {"status": format!("/rest/api/longtask/{id}")}}),
    ))
}

/// Completes a deletion task: the user (and their memberships) disappear.
pub(crate) fn finish_task(state: &mut SimState, id: &str) {
    let Some(task) = state.tasks.get_mut(id) else {
        return;
    };
    if task.done || task.failed {
        return;
    }
    if task.fails {
        task.failed = true;
        return;
    }
    task.done = true;
    let key = task.user_key.clone();
    state.confluence.remove_user(&key);
}

/// `GET /longtask/{id}`: LongTaskStatus, as Confluence Data Center reports it: `successful` is
/// true from the moment the task starts and turns false only when it fails; there is no
/// `finished` field; the task is finished when `percentageComplete` reaches 100. (Confluence's
/// own task classes, `LongTaskFactory`/`ProgressMeter`; api-contracts.md D.)
/// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-longtask/#api-rest-api-longtask-id-get
async fn long_task(State(sim): State<Arc<Inner>>, Path(id): Path<String>) -> Res {
    let mut state = crate::lock(&sim.state);
    let needed = state.task_polls_to_complete;
    let task = state
        .tasks
        .get_mut(&id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("No long task with id {id}")))?;
    task.polls += 1;
    let complete_now = !task.done && !task.failed && task.polls >= needed;
    if complete_now {
        finish_task(&mut state, &id);
    }
    let task = state
        .tasks
        .get(&id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("No long task with id {id}")))?;
    let elapsed = u64::try_from(task.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (percentage, messages) = if task.done {
        (
            100,
            json!([{"translation": format!("User {} has been deleted.", task.username), "args": []}]),
        )
    } else if task.failed {
        // [U] Where a failed task's percentage stops is not documented: here, half way.
        (
            50,
            json!([{"translation": format!("Could not delete user {}: the task failed.", task.username), "args": []}]),
        )
    } else {
        (
            50,
            json!([{"translation": format!("Deleting user {}.", task.username), "args": []}]),
        )
    };
    Ok(json_response(
        StatusCode::OK,
        json!({
            "id": id,
            "name": {"key": "com.atlassian.confluence.user.DeleteUserLongRunningTask", "args": [task.username]},
            "elapsedTime": elapsed,
            "percentageComplete": percentage,
            "successful": !task.failed,
            "messages": messages,
        }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Admin: groups and memberships.

/// `POST /admin/group` `{"name","type":"group"}`: [U] 201 with the Group; 409 when it exists.
async fn create_group(State(sim): State<Arc<Inner>>, body: Bytes) -> Res {
    let body = body_object(&body)?;
    let name = opt_str(&body, "name")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("name is required"))?;
    if let Some(kind) = opt_str(&body, "type")?
        && kind != "group"
    {
        return Err(bad(format!("Unsupported group type: {kind}")));
    }
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    if state.confluence.read_only {
        return Err(read_only());
    }
    if state.confluence.group(&name).is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            format!("A group with name '{name}' already exists"),
        ));
    }
    state
        .confluence
        .insert_group(&name, uuid::Uuid::new_v4().to_string());
    Ok(json_response(StatusCode::CREATED, group_json(&base, &name)))
}

/// `DELETE /admin/group/{groupName}`: [U] 204; 404 when missing.
async fn delete_group(State(sim): State<Arc<Inner>>, Path(group): Path<String>) -> Res {
    let mut state = crate::lock(&sim.state);
    if state.confluence.group(&group).is_none() {
        return Err(no_group(&group));
    }
    if state.confluence.read_only {
        return Err(read_only());
    }
    state.confluence.remove_group(&group);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn membership(sim: &Inner, username: &str, group: &str, add: bool) -> Res {
    let mut state = crate::lock(&sim.state);
    let dir = &mut state.confluence;
    let key = dir
        .user(username)
        .ok_or_else(|| no_user(username))?
        .key
        .clone();
    if dir.group(group).is_none() {
        return Err(no_group(group));
    }
    if dir.read_only {
        return Err(read_only());
    }
    if let Some(g) = dir.group_mut(group) {
        // Idempotent both ways: 204 whether or not anything changed.
        if add {
            g.members.insert(key);
        } else {
            g.members.remove(&key);
        }
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn add_member(
    State(sim): State<Arc<Inner>>,
    Path((username, group)): Path<(String, String)>,
) -> Res {
    membership(&sim, &username, &group, true)
}

async fn remove_member(
    State(sim): State<Arc<Inner>>,
    Path((username, group)): Path<(String, String)>,
) -> Res {
    membership(&sim, &username, &group, false)
}

// ---------------------------------------------------------------------------------------------
// Reads.

async fn list_groups(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let groups: Vec<Value> = state
        .confluence
        .groups
        .values()
        .map(|g| group_json(&base, &g.name))
        .collect();
    let body = page(&base, "/group", &expand_param(&params), &params, groups)?;
    Ok(json_response(StatusCode::OK, body))
}

async fn get_group(State(sim): State<Arc<Inner>>, Path(group): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let g = state
        .confluence
        .group(&group)
        .ok_or_else(|| no_group(&group))?;
    Ok(json_response(StatusCode::OK, group_json(&base, &g.name)))
}

/// `GET /group/{groupName}/member`: direct members as Person objects.
async fn group_members(
    State(sim): State<Arc<Inner>>,
    Path(group): Path<String>,
    params: Params,
) -> Res {
    let with_status = expands_status(&params);
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.confluence;
    let g = dir.group(&group).ok_or_else(|| no_group(&group))?;
    let members: Vec<Value> = dir
        .direct_members(g)
        .into_iter()
        .map(|u| person(&base, u, with_status))
        .collect();
    let path = format!("/group/{}/member", path_enc(&g.name));
    let body = page(&base, &path, &expand_param(&params), &params, members)?;
    Ok(json_response(StatusCode::OK, body))
}

fn find_user<'a>(dir: &'a Dir, params: &Params) -> Result<&'a UserRec, Response> {
    if let Some(name) = params.text("username") {
        return dir.user(name).ok_or_else(|| no_user(name));
    }
    if let Some(key) = params.text("key") {
        return dir.user_by_key(key).ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                format!("No user found with key: {key}"),
            )
        });
    }
    Err(bad("A username or key parameter is required"))
}

/// `GET /user?username=|key=`: Person; `expand=status` adds "Active"/"Deactivated".
async fn get_user(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let user = find_user(&state.confluence, &params)?;
    Ok(json_response(
        StatusCode::OK,
        person(&base, user, expands_status(&params)),
    ))
}

/// `GET /user/current`: the account the credentials belong to, as a Person. One the directory
/// does not hold (the simulator's built-in administrator) gets a user key made from its name.
async fn current_user(
    State(sim): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let body = match state.confluence.user(&caller.name) {
        Some(user) => person(&base, user, expands_status(&params)),
        None => {
            let key = format!(
                "{:0>32}",
                caller
                    .name
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            person(
                &base,
                &UserRec {
                    key,
                    name: caller.name.clone(),
                    email: String::new(),
                    display_name: caller.name.clone(),
                    active: true,
                    external_id: None,
                    attributes: Default::default(),
                    properties: Default::default(),
                    created: now_rfc3339(),
                    modified: now_rfc3339(),
                },
                expands_status(&params),
            )
        }
    };
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /user/list`: every user (active and deactivated), paged like the other lists.
async fn list_users(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let with_status = expands_status(&params);
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let users: Vec<Value> = state
        .confluence
        .users
        .values()
        .map(|u| person(&base, u, with_status))
        .collect();
    let body = page(&base, "/user/list", &expand_param(&params), &params, users)?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /user/memberof?username=|key=`: the user's groups.
async fn member_of(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let dir = &state.confluence;
    let user = find_user(dir, &params)?;
    let groups: Vec<Value> = dir
        .groups_of(&user.key)
        .into_iter()
        .map(|g| group_json(&base, &g.name))
        .collect();
    let extra = format!("username={}&", enc(&user.name));
    let body = page(&base, "/user/memberof", &extra, &params, groups)?;
    Ok(json_response(StatusCode::OK, body))
}
