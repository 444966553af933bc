//! Application permissions: which of them the app holds, which each route needs, and hidden
//! group membership.
//!
//! An app-only token carries the application permissions an administrator consented to in its
//! `roles` claim, fixed when the token is issued (client-credentials tokens put application
//! permissions in `roles`, not `scp`:
//! <https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>). So the
//! simulator records the permissions with each token it issues; changing the consented set
//! ([`crate::GraphSim::set_permissions`]) affects tokens issued afterwards, as granting or
//! revoking consent in Entra does.
//!
//! A route the token's roles do not cover answers Graph's 403 `Authorization_RequestDenied`
//! "Insufficient privileges to complete the operation." (errors table of
//! <https://learn.microsoft.com/graph/errors> and the JSON batching example), while the other
//! routes keep working.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::schema::ObjectKind;
use crate::store::DirObject;

/// Lets an app read the members of groups with hidden membership. Required on top of the
/// group permissions: "To list the members of a hidden membership group, the Member.Read.Hidden
/// permission is required" (group-list-members and group-list-transitivemembers, Permissions,
/// <https://learn.microsoft.com/graph/api/group-list-members?view=graph-rest-1.0>).
/// Whether Directory.Read.All implies it is not documented (asked, unanswered, in
/// microsoftgraph/microsoft-graph-docs#6459); the simulator takes the stricter reading that it
/// does not [U].
pub const MEMBER_READ_HIDDEN: &str = "Member.Read.Hidden";

/// What a newly started simulator's app holds: the least-privileged application permissions
/// idsync documents, `Member.Read.Hidden` included, so that tests withhold one at a time.
pub const DEFAULT_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Application.Read.All",
    MEMBER_READ_HIDDEN,
];

/// The roles of one token, handed to the handlers by the bearer check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roles(pub Arc<BTreeSet<String>>);

impl Roles {
    pub(crate) fn has(&self, permission: &str) -> bool {
        self.0.iter().any(|r| r.eq_ignore_ascii_case(permission))
    }

    /// Whether the members of `group` may be listed with these roles.
    pub(crate) fn sees_members_of(&self, group: &DirObject) -> bool {
        !hidden_membership(group) || self.has(MEMBER_READ_HIDDEN)
    }
}

/// A group with `visibility: "HiddenMembership"` (Microsoft 365 groups only, set when the group
/// is created and never changed later: group resource, visibility property,
/// <https://learn.microsoft.com/graph/api/resources/group?view=graph-rest-1.0>). SDK docs spell
/// the value `Hiddenmembership` too, so it is compared without case.
pub(crate) fn hidden_membership(obj: &DirObject) -> bool {
    obj.kind == ObjectKind::Group
        && obj
            .str_prop("visibility")
            .is_some_and(|v| v.eq_ignore_ascii_case("HiddenMembership"))
}

// Each list: the application permissions, least privileged first, that the route's
// Permissions table accepts (any one suffices).

/// users list/get/delta: user-list, user-get, user-delta (Permissions),
/// <https://learn.microsoft.com/graph/api/user-delta?view=graph-rest-1.0>.
const USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// groups list/get/delta and members/transitiveMembers: group-delta, group-list-members,
/// group-list-transitivemembers (Permissions),
/// <https://learn.microsoft.com/graph/api/group-delta?view=graph-rest-1.0>.
const GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// servicePrincipals list/get/appRoleAssignedTo: serviceprincipal-list-approleassignedto
/// (Permissions), <https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto?view=graph-rest-1.0>.
const APPLICATIONS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.OwnedBy",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// users/{id}/memberOf: its application row is not filled in the current table; the
/// permissions that read groups and memberships are taken [U].
const MEMBER_OF: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// users/{id}/transitiveMemberOf: user-list-transitivememberof (Permissions, "another user's
/// memberships", Application), <https://learn.microsoft.com/graph/api/user-list-transitivememberof?view=graph-rest-1.0>.
const TRANSITIVE_MEMBER_OF: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// The permissions one of which a request needs, by its matched route (`None`: none, e.g.
/// `$batch`, whose inner requests are checked one by one, or a path Graph answers 400 anyway).
pub(crate) fn required(route: &str, path: &str) -> Option<&'static [&'static str]> {
    let route = route.strip_prefix("/v1.0").unwrap_or(route);
    if route.starts_with("/users/{id}/memberOf") {
        return Some(MEMBER_OF);
    }
    if route.starts_with("/users/{id}/transitiveMemberOf") {
        return Some(TRANSITIVE_MEMBER_OF);
    }
    if route.starts_with("/users") {
        return Some(USERS);
    }
    if route.starts_with("/groups") {
        return Some(GROUPS);
    }
    if route.starts_with("/servicePrincipals") {
        return Some(APPLICATIONS);
    }
    // `/v1.0/{segment}[/appRoleAssignedTo]` serves `servicePrincipals(appId='..')`; any other
    // segment is refused as unknown, whatever the token holds.
    if route.starts_with("/{segment}") {
        let path = path.strip_prefix("/v1.0/").unwrap_or(path);
        return path
            .starts_with("servicePrincipals(")
            .then_some(APPLICATIONS);
    }
    None
}

/// Whether `roles` covers the route (no requirement: always).
pub(crate) fn allowed(roles: &Roles, route: &str, path: &str) -> bool {
    required(route, path).is_none_or(|any| any.iter().any(|p| roles.has(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(list: &[&str]) -> Roles {
        Roles(Arc::new(list.iter().map(|s| (*s).to_owned()).collect()))
    }

    #[test]
    fn each_route_needs_its_own_permission() {
        let users_only = roles(&["User.Read.All"]);
        assert!(allowed(
            &users_only,
            "/v1.0/users/delta",
            "/v1.0/users/delta"
        ));
        assert!(!allowed(
            &users_only,
            "/v1.0/groups/delta",
            "/v1.0/groups/delta"
        ));
        assert!(!allowed(
            &users_only,
            "/v1.0/{segment}/appRoleAssignedTo",
            "/v1.0/servicePrincipals(appId='x')/appRoleAssignedTo"
        ));
        // Unknown segments are left to the handler's 400.
        assert!(allowed(&users_only, "/v1.0/{segment}", "/v1.0/nonsense"));
        assert!(allowed(&users_only, "/v1.0/$batch", "/v1.0/$batch"));
        let directory = roles(&["directory.read.all"]);
        for route in [
            "/v1.0/users",
            "/v1.0/groups/{id}/members",
            "/v1.0/servicePrincipals",
        ] {
            assert!(allowed(&directory, route, route), "{route}");
        }
        assert!(!directory.has(MEMBER_READ_HIDDEN));
    }
}
