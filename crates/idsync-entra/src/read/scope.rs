//! The scope: the enterprise application's assignments (read beside users and groups), and
//! which users are in scope once everything is read, nested groups and group names resolved.

use std::collections::{BTreeMap, BTreeSet};

use idsync_config::Scope;
use idsync_config::validate::is_guid;
use idsync_model::{SourceGroup, SourceUser};
use serde_json::Value;

use super::groups::GroupsState;
use super::restart::restarting;
use crate::graph::CallKind;
use crate::{EntraError, EntraSource, ScopeProblem};

pub(crate) struct Assignments {
    pub(crate) users: BTreeSet<String>,
    pub(crate) groups: BTreeSet<String>,
    pub(crate) service_principals: u64,
}

/// What working out the scope needs besides users and groups, read alongside them: for an
/// enterprise app, its assignments. One variant per kind of scope, so that the scope cannot
/// be worked out without what it needs.
pub(super) enum ScopeInput<'s> {
    Directory,
    Groups(&'s [String]),
    Assigned(Assignments),
}

/// The scope's input, with notes on how it was read (a listing restarted after its page
/// token expired).
pub(super) async fn read_scope_input(
    source: &EntraSource,
) -> Result<(ScopeInput<'_>, Vec<String>), EntraError> {
    match &source.scope {
        Scope::Directory => Ok((ScopeInput::Directory, Vec::new())),
        Scope::Groups { groups } => Ok((ScopeInput::Groups(groups), Vec::new())),
        Scope::EnterpriseApp { app_id, .. } => read_assignments(source, app_id)
            .await
            .map(|(found, notes)| (ScopeInput::Assigned(found), notes)),
    }
}

/// `GET /servicePrincipals(appId='{appId}')/appRoleAssignedTo` —
/// https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto?view=graph-rest-1.0
pub(crate) async fn read_assignments(
    source: &EntraSource,
    app_id: &str,
) -> Result<(Assignments, Vec<String>), EntraError> {
    let first = source.graph.url(&format!(
        "/servicePrincipals(appId='{app_id}')/appRoleAssignedTo?$select=principalId,principalType&$top=999"
    ));
    let mut notes = Vec::new();
    let result = restarting!(
        "enterprise application assignments",
        &mut notes,
        assignments_list(source, &first).await
    );
    match result {
        Ok(found) => Ok((found, notes)),
        Err(EntraError::Graph { status: 404, .. }) => Err(EntraError::Scope {
            app: source.app.clone(),
            problems: vec![ScopeProblem {
                field: "scope.app_id".into(),
                message: format!(
                    "the tenant has no enterprise application (service principal) with the \
                     Application ID {app_id}; use the Application ID shown under Enterprise \
                     applications → the app → Properties"
                ),
            }],
        }),
        Err(other) => Err(other),
    }
}

/// One listing of the assignments, from the first page.
async fn assignments_list(source: &EntraSource, first: &str) -> Result<Assignments, EntraError> {
    let mut found = Assignments {
        users: BTreeSet::new(),
        groups: BTreeSet::new(),
        service_principals: 0,
    };
    source
        .graph
        .walk(CallKind::AppAssignments, first.to_owned(), None, |items| {
            for item in items {
                let principal = item.get("principalId").and_then(Value::as_str);
                let kind = item.get("principalType").and_then(Value::as_str);
                match (principal, kind) {
                    (Some(id), Some("User")) => {
                        found.users.insert(id.to_owned());
                    }
                    (Some(id), Some("Group")) => {
                        found.groups.insert(id.to_owned());
                    }
                    (Some(_), Some(_)) => found.service_principals += 1,
                    _ => {
                        return Err(EntraError::Malformed {
                            what: "reading the enterprise application's assignments".into(),
                            url: first.to_owned(),
                            detail: "an assignment without principalId or principalType".into(),
                        });
                    }
                }
            }
            Ok(())
        })
        .await?;
    Ok(found)
}

// ----- scope -----

pub(super) struct InScope {
    pub(super) users: BTreeSet<String>,
    pub(super) nested_expanded: usize,
    /// The scope goes through a group whose members could not be read.
    pub(super) reaches_unknown: bool,
}

pub(super) fn compute_scope(
    source: &EntraSource,
    users: &BTreeMap<String, SourceUser>,
    groups: &GroupsState,
    input: &ScopeInput<'_>,
    unknown: &BTreeSet<String>,
) -> Result<InScope, EntraError> {
    let nested = source.nested_groups;
    match input {
        ScopeInput::Directory => Ok(InScope {
            users: users.keys().cloned().collect(),
            nested_expanded: 0,
            reaches_unknown: false,
        }),
        ScopeInput::Assigned(assignments) => {
            // Entra does not cascade an assignment to groups nested in an assigned group: only
            // its direct members have access to the app. Going further is an explicit choice.
            let nested = matches!(
                source.scope,
                Scope::EnterpriseApp {
                    expand_nested_groups: true,
                    ..
                }
            );
            let roots: Vec<&str> = assignments.groups.iter().map(String::as_str).collect();
            let expanded = expand(&roots, &groups.groups, nested, unknown);
            let mut members = expanded.users;
            members.extend(assignments.users.iter().cloned());
            members.retain(|id| users.contains_key(id));
            Ok(InScope {
                users: members,
                nested_expanded: expanded.nested,
                reaches_unknown: expanded.reaches_unknown,
            })
        }
        ScopeInput::Groups(names) => {
            let ids = resolve_groups(source, names, &groups.groups)?;
            let roots: Vec<&str> = ids.iter().map(String::as_str).collect();
            let expanded = expand(&roots, &groups.groups, nested, unknown);
            let mut members = expanded.users;
            members.retain(|id| users.contains_key(id));
            Ok(InScope {
                users: members,
                nested_expanded: expanded.nested,
                reaches_unknown: expanded.reaches_unknown,
            })
        }
    }
}

/// The users in scope, with what was read of them. Both are sorted by id and walked side by side:
/// looking each of 100k ids up in the other cost most of a second.
pub(super) fn users_in_scope(
    users: &BTreeMap<String, SourceUser>,
    scope: &BTreeSet<String>,
) -> BTreeMap<String, SourceUser> {
    let mut wanted = scope.iter().peekable();
    users
        .iter()
        .filter(|(id, _)| {
            while let Some(next) = wanted.peek() {
                match next.as_str().cmp(id.as_str()) {
                    std::cmp::Ordering::Less => {
                        wanted.next();
                    }
                    std::cmp::Ordering::Equal => return true,
                    std::cmp::Ordering::Greater => return false,
                }
            }
            false
        })
        .map(|(id, user)| (id.clone(), user.clone()))
        .collect()
}

struct Expanded {
    users: BTreeSet<String>,
    /// Groups reached only through nesting.
    nested: usize,
    /// Some group reached is in `unknown`.
    reaches_unknown: bool,
}

/// The user members of `roots`, and (when `nested`) of every group nested in them, however
/// deep; each group is expanded once, so cycles end. Also says how many groups were reached only
/// through nesting, and whether any group reached is one of `unknown` (members not readable).
fn expand(
    roots: &[&str],
    groups: &BTreeMap<String, SourceGroup>,
    nested: bool,
    unknown: &BTreeSet<String>,
) -> Expanded {
    let mut users = BTreeSet::new();
    let root_set: BTreeSet<&str> = roots.iter().copied().collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(group) = groups.get(id) else {
            continue;
        };
        users.extend(group.user_members.iter().cloned());
        if nested {
            stack.extend(group.group_members.iter().map(String::as_str));
        }
    }
    let expanded = seen
        .iter()
        .filter(|id| !root_set.contains(**id) && groups.contains_key(**id))
        .count();
    let reaches_unknown = !unknown.is_empty() && seen.iter().any(|id| unknown.contains(*id));
    Expanded {
        users,
        nested: expanded,
        reaches_unknown,
    }
}

/// Group names or ids from `scope.groups` → group ids. Unknown and ambiguous names are errors,
/// one per entry (`scope.groups[i]`), that list the candidates.
fn resolve_groups(
    source: &EntraSource,
    names: &[String],
    groups: &BTreeMap<String, SourceGroup>,
) -> Result<Vec<String>, EntraError> {
    let mut ids = Vec::new();
    let mut problems = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut problem = |message: String| {
            problems.push(ScopeProblem {
                field: format!("scope.groups[{i}]"),
                message,
            })
        };
        let wanted = name.trim();
        if is_guid(wanted) {
            match groups.keys().find(|id| id.eq_ignore_ascii_case(wanted)) {
                Some(id) => ids.push(id.clone()),
                None => problem(format!("no group has the object id {wanted}")),
            }
            continue;
        }
        let matches: Vec<&SourceGroup> = groups
            .values()
            .filter(|g| g.display_name.eq_ignore_ascii_case(wanted))
            .collect();
        match matches.as_slice() {
            [one] => ids.push(one.id.clone()),
            [] => {
                let lower = wanted.to_lowercase();
                let words: Vec<&str> = lower.split_whitespace().collect();
                let mut similar: Vec<&str> = groups
                    .values()
                    .map(|g| g.display_name.as_str())
                    .filter(|n| {
                        let n = n.to_lowercase();
                        n.contains(&lower)
                            || lower.contains(&n)
                            || words.iter().any(|w| w.len() >= 3 && n.contains(w))
                    })
                    .collect();
                similar.sort_unstable();
                similar.dedup();
                let listed = if similar.is_empty() {
                    format!(
                        "no group has a similar name ({} groups exist)",
                        groups.len()
                    )
                } else {
                    let shown: Vec<String> = similar
                        .iter()
                        .take(10)
                        .map(|n| format!("\"{n}\""))
                        .collect();
                    let more = similar.len().saturating_sub(10);
                    format!(
                        "similar names: {}{}",
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    )
                };
                problem(format!("no group is named \"{wanted}\"; {listed}"));
            }
            many => {
                let listed: Vec<String> = many
                    .iter()
                    .map(|g| format!("\"{}\" ({})", g.display_name, g.id))
                    .collect();
                problem(format!(
                    "{} groups are named \"{wanted}\": {}; write the object id of the one you \
                     mean instead",
                    many.len(),
                    listed.join(", ")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(ids)
    } else {
        Err(EntraError::Scope {
            app: source.app.clone(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_survives_cycles() {
        let group = |id: &str, users: &[&str], groups: &[&str]| SourceGroup {
            id: id.into(),
            display_name: id.into(),
            user_members: users.iter().map(|s| s.to_string()).collect(),
            group_members: groups.iter().map(|s| s.to_string()).collect(),
        };
        let groups: BTreeMap<String, SourceGroup> = [
            group("a", &["u1"], &["b"]),
            group("b", &["u2"], &["c"]),
            group("c", &["u3"], &["a"]),
        ]
        .into_iter()
        .map(|g| (g.id.clone(), g))
        .collect();
        let none = BTreeSet::new();
        let all = expand(&["a"], &groups, true, &none);
        assert_eq!(all.users.len(), 3);
        assert_eq!(all.nested, 2);
        assert!(!all.reaches_unknown);
        let direct = expand(&["a"], &groups, false, &none);
        assert_eq!(direct.users.len(), 1);
        assert_eq!(direct.nested, 0);
        // "c" cannot be read: reached through nesting only.
        let unknown: BTreeSet<String> = ["c".to_owned()].into();
        assert!(expand(&["a"], &groups, true, &unknown).reaches_unknown);
        assert!(!expand(&["a"], &groups, false, &unknown).reaches_unknown);
    }
}
