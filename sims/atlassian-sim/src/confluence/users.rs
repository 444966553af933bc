//! Admin: users (`/admin/user...`): create, update, disable and enable, and the asynchronous
//! deletion (202 + a long task, which `finish_task` completes).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::common::{empty, json_response};
use crate::state::{LongTask, State as SimState, UserRec, now_rfc3339};
use crate::{Inner, Product};

use super::{API, Res, bad, body_object, err, no_seats, no_user, opt_str, read_only, seats_full};

pub(super) fn routes() -> Router<Arc<Inner>> {
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
