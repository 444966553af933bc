//! Projects and components, kept for their leads: a user who leads one cannot be deleted or
//! deactivated until the lead changes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::Inner;
use crate::common::{Params, json_response};
use crate::state::State as SimState;

use super::users::{object_body, str_field};
use super::{API, Res, err, field_err, user_brief};

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-get
        .route(&format!("{API}/project"), get(list_projects))
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-get
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-put
        .route(
            &format!("{API}/project/{{projectIdOrKey}}"),
            get(get_project).put(update_project),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-project/#api-api-2-project-projectidorkey-components-get
        .route(
            &format!("{API}/project/{{projectIdOrKey}}/components"),
            get(project_components),
        )
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-component/#api-api-2-component-id-get
        // https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-component/#api-api-2-component-id-put
        .route(
            &format!("{API}/component/{{id}}"),
            get(get_component).put(update_component),
        )
}

fn project_json(base: &str, state: &SimState, key: &str, with_lead: bool) -> Option<Value> {
    let project = state.projects.get(key)?;
    let mut value = json!({
        "self": format!("{base}{API}/project/{}", project.id),
        "id": project.id.to_string(),
        "key": project.key,
        "name": project.name,
        "projectTypeKey": "software",
        "avatarUrls": {},
    });
    if with_lead {
        value["lead"] = match state.jira.user_by_key(&project.lead) {
            Some(user) => user_brief(base, user),
            None => json!({"key": project.lead, "name": project.lead, "active": false}),
        };
    }
    Some(value)
}

fn find_project_key(state: &SimState, id_or_key: &str) -> Option<String> {
    let upper = id_or_key.to_uppercase();
    if state.projects.contains_key(&upper) {
        return Some(upper);
    }
    state
        .projects
        .values()
        .find(|p| p.id.to_string() == id_or_key)
        .map(|p| p.key.clone())
}

fn no_project(key: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("No project could be found with key '{key}'."),
    )
}

async fn list_projects(State(sim): State<Arc<Inner>>, params: Params) -> Res {
    let with_lead = params
        .get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "lead"));
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let projects: Vec<Value> = state
        .projects
        .keys()
        .filter_map(|k| project_json(&base, &state, k, with_lead))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(projects)))
}

async fn get_project(State(sim): State<Arc<Inner>>, Path(id_or_key): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let key = find_project_key(&state, &id_or_key).ok_or_else(|| no_project(&id_or_key))?;
    let value = project_json(&base, &state, &key, true).ok_or_else(|| no_project(&id_or_key))?;
    Ok(json_response(StatusCode::OK, value))
}

/// `PUT /project/{key}` `{"lead":"username"}`. [U] Jira DC documents 201 for a successful
/// project update.
async fn update_project(
    State(sim): State<Arc<Inner>>,
    Path(id_or_key): Path<String>,
    body: Bytes,
) -> Res {
    let body = object_body(&body)?;
    let lead = str_field(&body, "lead")?.map(str::to_owned);
    let name = str_field(&body, "name")?.map(str::to_owned);
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let key = find_project_key(&state, &id_or_key).ok_or_else(|| no_project(&id_or_key))?;
    let lead_key = match &lead {
        Some(lead) => {
            let user = state.jira.user(lead).ok_or_else(|| {
                field_err(
                    StatusCode::BAD_REQUEST,
                    "projectLead",
                    "The user you have specified as project lead does not exist.",
                )
            })?;
            if !user.active {
                return Err(field_err(
                    StatusCode::BAD_REQUEST,
                    "projectLead",
                    "The user you have specified as project lead is not active.",
                ));
            }
            Some(user.key.clone())
        }
        None => None,
    };
    if let Some(project) = state.projects.get_mut(&key) {
        if let Some(lead_key) = lead_key {
            project.lead = lead_key;
        }
        if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
            project.name = name;
        }
    }
    let value = project_json(&base, &state, &key, true).ok_or_else(|| no_project(&key))?;
    Ok(json_response(StatusCode::CREATED, value))
}

fn component_json(base: &str, state: &SimState, id: u64) -> Option<Value> {
    let component = state.components.get(&id)?;
    let project = state.projects.get(&component.project);
    let mut value = json!({
        "self": format!("{base}{API}/component/{id}"),
        "id": id.to_string(),
        "name": component.name,
        "project": component.project,
        "projectId": project.map(|p| p.id),
        "assigneeType": if component.lead.is_some() { "COMPONENT_LEAD" } else { "PROJECT_DEFAULT" },
        "isAssigneeTypeValid": true,
    });
    if let Some(lead) = component.lead.as_deref()
        && let Some(user) = state.jira.user_by_key(lead)
    {
        value["lead"] = user_brief(base, user);
        value["leadUserName"] = json!(user.name);
    }
    Some(value)
}

async fn project_components(State(sim): State<Arc<Inner>>, Path(id_or_key): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let key = find_project_key(&state, &id_or_key).ok_or_else(|| no_project(&id_or_key))?;
    let components: Vec<Value> = state
        .components
        .values()
        .filter(|c| c.project == key)
        .filter_map(|c| component_json(&base, &state, c.id))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(components)))
}

fn no_component(id: &str) -> Response {
    err(
        StatusCode::NOT_FOUND,
        format!("The component with id {id} does not exist."),
    )
}

async fn get_component(State(sim): State<Arc<Inner>>, Path(id): Path<String>) -> Res {
    let base = sim.base();
    let state = crate::lock(&sim.state);
    let value = id
        .parse::<u64>()
        .ok()
        .and_then(|n| component_json(&base, &state, n))
        .ok_or_else(|| no_component(&id))?;
    Ok(json_response(StatusCode::OK, value))
}

/// `PUT /component/{id}` `{"leadUserName":"x"}`; an empty name clears the lead.
async fn update_component(
    State(sim): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Res {
    let body = object_body(&body)?;
    let lead = str_field(&body, "leadUserName")?.map(str::to_owned);
    let base = sim.base();
    let mut state = crate::lock(&sim.state);
    let n = id
        .parse::<u64>()
        .ok()
        .filter(|n| state.components.contains_key(n))
        .ok_or_else(|| no_component(&id))?;
    let new_lead = match lead.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(name) => {
            let user = state.jira.user(name).ok_or_else(|| {
                field_err(
                    StatusCode::BAD_REQUEST,
                    "leadUserName",
                    format!("The user {name} does not exist."),
                )
            })?;
            Some(Some(user.key.clone()))
        }
    };
    if let (Some(new_lead), Some(component)) = (new_lead, state.components.get_mut(&n)) {
        component.lead = new_lead;
    }
    let value = component_json(&base, &state, n).ok_or_else(|| no_component(&id))?;
    Ok(json_response(StatusCode::OK, value))
}
