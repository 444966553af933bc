//! SCIM resources: the User and Group documents the directory answers with, and the reading
//! of a User document into a record (which attributes Atlassian keeps, the `emails` rule).

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{ATLASSIAN_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, invalid_value};
use crate::state::{Dir, GroupRec, UserRec, now_rfc3339};

/// The User attributes Atlassian documents for its directory beyond those kept in dedicated
/// fields (`USER_CORE`): the ScimUser model of the user-provisioning API (create/replace body).
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post
const USER_DOCUMENTED: [&str; 11] = [
    "emails",
    "name",
    "nickName",
    "title",
    "preferredLanguage",
    "department",
    "organization",
    "timezone",
    "phoneNumbers",
    ENTERPRISE_SCHEMA,
    ATLASSIAN_SCHEMA,
];

/// The enterprise extension as Atlassian documents it: `organization` and `department` only
/// (same page, the `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` object).
const ENTERPRISE_DOCUMENTED: [&str; 2] = ["organization", "department"];

/// Atlassian's own extension carries the linked account id.
const ATLASSIAN_DOCUMENTED: [&str; 1] = ["atlassianAccountId"];

/// Core attributes kept in dedicated fields; everything else lives in `attributes`.
const USER_CORE: [&str; 8] = [
    "schemas",
    "id",
    "meta",
    "groups",
    "userName",
    "displayName",
    "active",
    "externalId",
];

pub(super) fn user_resource(base: &str, dir: &Dir, user: &UserRec) -> Value {
    let mut schemas = vec![json!(USER_SCHEMA)];
    for key in user.attributes.keys() {
        if key.starts_with("urn:") {
            schemas.push(json!(key));
        }
    }
    let mut obj = Map::new();
    obj.insert("schemas".into(), Value::Array(schemas));
    obj.insert("id".into(), json!(user.key));
    if let Some(external) = &user.external_id {
        obj.insert("externalId".into(), json!(external));
    }
    obj.insert("userName".into(), json!(user.name));
    for (k, v) in &user.attributes {
        obj.insert(k.clone(), v.clone());
    }
    if !user.display_name.is_empty() {
        obj.insert("displayName".into(), json!(user.display_name));
    }
    obj.insert("active".into(), json!(user.active));
    let groups: Vec<Value> = dir
        .groups_of(&user.key)
        .into_iter()
        .map(|g| {
            json!({"value": g.id, "display": g.name, "type": "direct",
                   "$ref": format!("{base}/Groups/{}", g.id)})
        })
        .collect();
    obj.insert("groups".into(), Value::Array(groups));
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": user.created,
            "lastModified": user.modified,
            "location": format!("{base}/Users/{}", user.key),
        }),
    );
    Value::Object(obj)
}

pub(super) fn group_resource(base: &str, dir: &Dir, group: &GroupRec, with_members: bool) -> Value {
    let mut value = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.name,
        "meta": {
            "resourceType": "Group",
            "created": group.created,
            "lastModified": group.modified,
            "location": format!("{base}/Groups/{}", group.id),
        },
    });
    if let Some(external) = &group.external_id {
        value["externalId"] = json!(external);
    }
    if with_members {
        let members: Vec<Value> = dir
            .direct_members(group)
            .into_iter()
            .map(|u| {
                json!({"type": "User", "value": u.key, "display": u.name,
                       "$ref": format!("{base}/Users/{}", u.key)})
            })
            .collect();
        value["members"] = Value::Array(members);
    }
    value
}

pub(super) fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

pub(super) fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    find_key(map, name).and_then(|k| map.get(&k))
}

/// Attributes of a user as a SCIM document without the read-only parts, for PATCH.
pub(super) fn user_document(user: &UserRec) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert("userName".into(), json!(user.name));
    if !user.display_name.is_empty() {
        doc.insert("displayName".into(), json!(user.display_name));
    }
    doc.insert("active".into(), json!(user.active));
    if let Some(external) = &user.external_id {
        doc.insert("externalId".into(), json!(external));
    }
    for (k, v) in &user.attributes {
        doc.insert(k.clone(), v.clone());
    }
    doc
}

/// Validates a user document and fills a record's fields from it.
pub(super) fn user_from_document(
    doc: &Map<String, Value>,
    rec: &mut UserRec,
) -> Result<(), Response> {
    let user_name = match get_ci(doc, "userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(invalid_value("userName is required and must be a string")),
    };
    let display_name = match get_ci(doc, "displayName") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid_value("displayName must be a string")),
    };
    let active = match get_ci(doc, "active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        // Some IdPs send "True"/"False" strings; Atlassian accepts them [U].
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(invalid_value("active must be a boolean")),
    };
    let external_id = match get_ci(doc, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid_value("externalId must be a string")),
    };
    let mut attributes = std::collections::BTreeMap::new();
    for (k, v) in doc {
        if USER_CORE.iter().any(|core| core.eq_ignore_ascii_case(k)) || v.is_null() {
            continue;
        }
        // [U] An attribute Atlassian does not document is dropped, not refused: it is neither
        // stored nor returned (RFC 7644 §3.3 lets a provider ignore what it does not keep, and
        // the documented model has no room for it).
        let Some(name) = USER_DOCUMENTED.iter().find(|d| d.eq_ignore_ascii_case(k)) else {
            continue;
        };
        let value = match *name {
            ENTERPRISE_SCHEMA => documented_only(name, v, &ENTERPRISE_DOCUMENTED)?,
            ATLASSIAN_SCHEMA => documented_only(name, v, &ATLASSIAN_DOCUMENTED)?,
            _ => Some(v.clone()),
        };
        if let Some(value) = value {
            attributes.insert((*name).to_owned(), value);
        }
    }
    check_emails(attributes.get("emails"))?;
    let email = primary_email(attributes.get("emails"));
    rec.name = user_name;
    rec.display_name = display_name;
    rec.active = active;
    rec.external_id = external_id;
    rec.attributes = attributes;
    rec.email = email;
    rec.modified = now_rfc3339();
    Ok(())
}

/// An extension object with only the sub-attributes Atlassian documents; `None` when nothing
/// documented is left.
fn documented_only(
    urn: &str,
    value: &Value,
    documented: &[&str],
) -> Result<Option<Value>, Response> {
    let Value::Object(given) = value else {
        return Err(invalid_value(format!("{urn} must be an object")));
    };
    let kept: Map<String, Value> = given
        .iter()
        .filter(|(_, v)| !v.is_null())
        .filter_map(|(k, v)| {
            let name = documented.iter().find(|d| d.eq_ignore_ascii_case(k))?;
            Some(((*name).to_owned(), v.clone()))
        })
        .collect();
    Ok((!kept.is_empty()).then_some(Value::Object(kept)))
}

/// Atlassian: `emails` "is a required field during user creation or modification. One value
/// must be marked as primary." (the ScimUser model of the user-provisioning API,
/// https://developer.atlassian.com/cloud/admin/user-provisioning/rest/api-group-users/#api-scim-directory-directoryid-users-post).
/// Checked on POST, on PUT and on the result of a PATCH. [U] The answer: 400 `invalidValue`
/// in the SCIM error body, as for any other invalid attribute; "one" is read as exactly one
/// (RFC 7643 §2.4 allows `primary` on one value at most).
fn check_emails(emails: Option<&Value>) -> Result<(), Response> {
    const WHAT: &str =
        "emails is required on create and modify, with exactly one value marked primary: true";
    let Some(Value::Array(list)) = emails else {
        return Err(invalid_value(WHAT));
    };
    let primaries: Vec<&Value> = list
        .iter()
        .filter(|e| e.get("primary") == Some(&Value::Bool(true)))
        .collect();
    match primaries.as_slice() {
        [one]
            if one
                .get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty()) =>
        {
            Ok(())
        }
        _ => Err(invalid_value(WHAT)),
    }
}

fn primary_email(emails: Option<&Value>) -> String {
    let Some(Value::Array(list)) = emails else {
        return String::new();
    };
    list.iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| list.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
