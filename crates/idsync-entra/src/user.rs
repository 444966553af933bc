//! One user, for a sign-in sync: the user, their groups and whether they are in the app's
//! scope, in a handful of requests sent side by side, instead of a delta round over the tenant.
//!
//! - the user: `GET /users/{id | userPrincipalName}?$select=…` (the attributes a full read
//!   selects) — https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0
//! - their groups, when the app expands nested groups: `GET /users/{id}/transitiveMemberOf`
//!   — https://learn.microsoft.com/graph/api/user-list-transitivememberof?view=graph-rest-1.0
//!   and otherwise their direct ones, `GET /users/{id}/memberOf`
//!   — https://learn.microsoft.com/graph/api/user-list-memberof?view=graph-rest-1.0
//!   Both plain (`$select=id,displayName&$top=999`), keeping the items whose `@odata.type` is a
//!   group: the OData cast `/microsoft.graph.group` would be an advanced query
//!   (`ConsistencyLevel: eventual` and `$count=true`, as both pages document), served from an
//!   index that "might not be up-to-date with recent changes" — and the change a person signs
//!   in to see is usually a recent one;
//! - for an enterprise-app scope, the app's assignments,
//!   `GET /servicePrincipals(appId='…')/appRoleAssignedTo` (as a full read lists them: the
//!   application permission idsync already holds; `/users/{id}/appRoleAssignments` would need
//!   Directory.Read.All) — https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto?view=graph-rest-1.0
//!
//! Every request addresses the user by the reference given (Graph takes the object id or the
//! UPN alike), so none waits for another.

use std::collections::{BTreeMap, BTreeSet};

use idsync_config::Scope;
use idsync_config::validate::is_guid;
use idsync_http::RequestCounter;
use idsync_model::SourceUser;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::CallKind;
use crate::read::{Assignments, apply_user, read_assignments};
use crate::{EntraError, EntraSource};

/// What a sign-in sync learned of one user.
#[derive(Debug, Clone)]
pub struct OneUser {
    /// The user as Graph gave them.
    pub user: SourceUser,
    /// The groups the app's rules see the user in (object id → display name): through nesting
    /// when the app expands nested groups (`nested_groups`), else direct ones.
    pub groups: BTreeMap<String, String>,
    /// How the app's scope decided.
    pub scope: InScope,
    /// Requests sent, by kind (retries included).
    pub requests: BTreeMap<String, u64>,
}

/// Whether the user is in the app's scope, and why (said to the person who asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InScope {
    /// Whether the user is in the app's scope.
    pub in_scope: bool,
    /// Why, in words.
    pub why: String,
}

/// A group of the user, as `memberOf` lists it.
struct Groups(BTreeMap<String, String>);

/// A path segment as Graph reads it: a UPN may hold `#` (guests: `…#EXT#@…`) and other
/// characters that would end or change the path.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl EntraSource {
    /// Reads one user (by object id or UPN), their groups and whether the app's scope takes
    /// them. `Ok(None)`: the directory has no such user.
    pub async fn read_one_user(&self, reference: &str) -> Result<Option<OneUser>, EntraError> {
        let before = self.counter.snapshot();
        let at = segment(reference.trim());
        let user = self.user(&at);
        // The groups the scope needs may differ from those the rules map with: an
        // enterprise-app scope goes through direct groups only (Entra's rule), unless told to
        // expand them.
        let (scope_transitive, needs_assignments) = match &self.scope {
            Scope::Directory => (None, false),
            Scope::Groups { .. } => (Some(self.nested_groups), false),
            Scope::EnterpriseApp {
                expand_nested_groups,
                ..
            } => (Some(*expand_nested_groups), true),
        };
        let mapped = self.groups_of(&at, self.nested_groups);
        let scoped = async {
            match scope_transitive {
                Some(transitive) if transitive != self.nested_groups => {
                    self.groups_of(&at, transitive).await.map(Some)
                }
                _ => Ok(None),
            }
        };
        let assignments = async {
            match &self.scope {
                Scope::EnterpriseApp { app_id, .. } if needs_assignments => {
                    read_assignments(self, app_id).await.map(|(a, _)| Some(a))
                }
                _ => Ok(None),
            }
        };
        let (user, mapped, scoped, assignments) = tokio::join!(user, mapped, scoped, assignments);
        // The user first: an unknown user makes the group reads fail too, with 404.
        let Some(user) = user? else {
            return Ok(None);
        };
        let mapped = mapped?;
        let scoped = scoped?;
        let assignments = assignments?;
        let scope_groups = scoped.as_ref().unwrap_or(&mapped);
        let scope = self.decide_scope(&user, scope_groups, assignments.as_ref());
        Ok(Some(OneUser {
            user,
            groups: mapped.0,
            scope,
            requests: RequestCounter::difference(&before, &self.counter.snapshot()),
        }))
    }

    /// `GET /users/{at}?$select=…`; `None` on 404.
    async fn user(&self, at: &str) -> Result<Option<SourceUser>, EntraError> {
        let url = self
            .graph
            .url(&format!("/users/{at}?$select={}", self.select.join(",")));
        let response = match self.graph.get(CallKind::User, &url, None).await {
            Ok(r) => r,
            Err(EntraError::Graph { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let item: Value =
            serde_json::from_slice(&response.body).map_err(|e| EntraError::Malformed {
                what: "reading the user".into(),
                url: url.clone(),
                detail: format!("not a user object: {e}"),
            })?;
        let mut users = BTreeMap::new();
        apply_user(&mut users, item).map_err(|detail| EntraError::Malformed {
            what: "reading the user".into(),
            url: url.clone(),
            detail,
        })?;
        Ok(users.into_values().next())
    }

    /// The user's groups, direct or (with `transitive`) through nesting; other directory
    /// objects (directory roles, administrative units) are left out. A user Graph does not
    /// know has none (the user read says so).
    async fn groups_of(&self, at: &str, transitive: bool) -> Result<Groups, EntraError> {
        let (kind, relation) = if transitive {
            (CallKind::TransitiveMemberOf, "transitiveMemberOf")
        } else {
            (CallKind::MemberOf, "memberOf")
        };
        let first = self.graph.url(&format!(
            "/users/{at}/{relation}?$select=id,displayName&$top=999"
        ));
        let mut groups = BTreeMap::new();
        let walked = self
            .graph
            .walk(kind, first.clone(), None, |items| {
                for item in items {
                    if item.get("@odata.type").and_then(Value::as_str)
                        != Some("#microsoft.graph.group")
                    {
                        continue;
                    }
                    let id = item.get("id").and_then(Value::as_str).ok_or_else(|| {
                        EntraError::Malformed {
                            what: "reading the user's groups".into(),
                            url: first.clone(),
                            detail: "a group without an id".into(),
                        }
                    })?;
                    let name = item
                        .get("displayName")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    groups.insert(id.to_owned(), name.to_owned());
                }
                Ok(())
            })
            .await;
        match walked {
            Ok(_) => Ok(Groups(groups)),
            Err(EntraError::Graph { status: 404, .. }) => Ok(Groups(BTreeMap::new())),
            Err(e) => Err(e),
        }
    }

    /// The scope's verdict on one user, by the rule a full read applies to everyone.
    fn decide_scope(
        &self,
        user: &SourceUser,
        groups: &Groups,
        assignments: Option<&Assignments>,
    ) -> InScope {
        let verdict = |in_scope: bool, why: String| InScope { in_scope, why };
        match &self.scope {
            Scope::Directory => verdict(true, "scope is the whole directory".into()),
            Scope::Groups { groups: wanted } => {
                let how = if self.nested_groups {
                    "directly or through nested groups"
                } else {
                    "directly"
                };
                let hit = wanted.iter().find_map(|entry| {
                    let entry = entry.trim();
                    groups.0.iter().find(|(id, name)| {
                        if is_guid(entry) {
                            id.eq_ignore_ascii_case(entry)
                        } else {
                            name.eq_ignore_ascii_case(entry)
                        }
                    })
                });
                match hit {
                    Some((id, name)) => verdict(
                        true,
                        format!("member ({how}) of scope group \"{name}\" ({id})"),
                    ),
                    None => verdict(
                        false,
                        format!(
                            "not a member ({how}) of any scope group ({})",
                            wanted.join(", ")
                        ),
                    ),
                }
            }
            Scope::EnterpriseApp {
                app_id,
                expand_nested_groups,
            } => {
                let Some(assignments) = assignments else {
                    return verdict(false, "the app's assignments were not read".into());
                };
                if assignments.users.contains(&user.id) {
                    return verdict(true, format!("assigned to enterprise application {app_id}"));
                }
                let via: BTreeSet<&String> = groups
                    .0
                    .keys()
                    .filter(|g| assignments.groups.contains(*g))
                    .collect();
                let how = if *expand_nested_groups {
                    "member, directly or through nested groups,"
                } else {
                    "direct member"
                };
                match via.first() {
                    Some(group) => verdict(
                        true,
                        format!(
                            "{how} of group \"{}\" ({group}), assigned to enterprise application {app_id}",
                            groups.0.get(*group).map(String::as_str).unwrap_or_default()
                        ),
                    ),
                    None => verdict(
                        false,
                        format!(
                            "neither assigned to enterprise application {app_id} nor a {how} of a group assigned to it"
                        ),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_guest_upn_stays_one_path_segment() {
        assert_eq!(
            segment("ada_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            "ada_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
        );
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(
            segment("0c1d2e3f-aaaa-bbbb-cccc-000000000001"),
            "0c1d2e3f-aaaa-bbbb-cccc-000000000001"
        );
    }
}
