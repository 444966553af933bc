//! The read itself: users and groups by delta rounds, enterprise-app assignments, the scope.
//! Each concern is a module; this one ties them together into one [`SourceRead`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use idsync_http::RequestCounter;
use idsync_model::run::ReadMode;
use idsync_model::{SourceSnapshot, SourceUser};

use serde_json::Value;

use crate::graph::{CallKind, MAX_PAGE_PREFER};
use crate::{DirectoryState, EntraError, EntraSource, ReadKind, ReadStats, SourceRead};

mod groups;
mod restart;
mod scope;
mod users;

pub use restart::PAGE_TOKEN_RESTARTS;

use groups::{GroupsPart, GroupsState, read_groups};
use scope::{InScope, ScopeInput, compute_scope, read_scope_input, users_in_scope};
use users::{UsersPart, read_users};
// The sign-in read of one user (`crate::user`) applies users and reads assignments as a full
// read does.
pub(crate) use scope::{Assignments, read_assignments};
pub(crate) use users::apply_user;

pub(crate) async fn read(
    source: &EntraSource,
    previous: Option<DirectoryState>,
) -> Result<SourceRead, EntraError> {
    let started = Instant::now();
    let before = source.counter.snapshot();
    let mut notes = Vec::new();
    let from = continued(source, previous, &mut notes);
    let (users, groups, (scope_input, assignment_notes)) = tokio::try_join!(
        read_users(source, from.users),
        read_groups(source, from.groups, from.carry),
        read_scope_input(source),
    )?;
    notes.extend(users.notes.iter().cloned());
    notes.extend(groups.notes.iter().cloned());
    notes.extend(assignment_notes);

    let scope = compute_scope(
        source,
        &users.users,
        &groups.state,
        &scope_input,
        &groups.unknown,
    )?;
    // Whoever is outside the scope may be a member we cannot see of a group the scope reaches:
    // leaving the scope cannot be told from that, so none of them is taken as gone.
    let maybe_in_scope: BTreeSet<String> = if scope.reaches_unknown {
        users
            .users
            .keys()
            .filter(|id| !scope.users.contains(*id))
            .cloned()
            .collect()
    } else {
        BTreeSet::new()
    };
    if !maybe_in_scope.is_empty() {
        notes.push(format!(
            "scope: it reaches group(s) with hidden membership whose members cannot be read; \
             the {} directory user(s) outside the scope are not deprovisioned for having left \
             it until Member.Read.Hidden is granted",
            maybe_in_scope.len()
        ));
    }

    let snapshot = SourceSnapshot {
        users: users_in_scope(&users.users, &scope.users),
        groups: groups.state.groups.clone(),
        membership_unknown: groups.unknown.clone(),
        maybe_in_scope,
    };
    let requests = RequestCounter::difference(&before, &source.counter.snapshot());
    let stats = read_stats(
        &users,
        &groups,
        &scope,
        &scope_input,
        &snapshot,
        requests,
        started,
    );
    let state = DirectoryState {
        select: source.select.clone(),
        users: users.users,
        groups: groups.state.groups,
        users_delta_link: Some(users.link),
        groups_delta_link: groups.link,
        ignored_members: groups.state.ignored,
        origin: source.origin.clone(),
    };
    Ok(SourceRead {
        state,
        snapshot,
        stats,
        notes,
    })
}

/// What a read continues from.
struct Continued {
    /// The users the stored state knew with the deltaLink to go on from; `None`: read in full.
    users: Option<(BTreeMap<String, SourceUser>, String)>,
    /// The same for groups.
    groups: Option<(GroupsState, String)>,
    /// What was known of the groups, for groups whose members this read cannot see (hidden
    /// membership): kept even when everything else is read afresh, as long as it is the same
    /// tenant.
    carry: Option<GroupsState>,
}

/// What of `previous` this read can go on from; says in `notes` why a stored state is not
/// continued.
fn continued(
    source: &EntraSource,
    previous: Option<DirectoryState>,
    notes: &mut Vec<String>,
) -> Continued {
    let mut carry: Option<GroupsState> = None;
    let previous = match previous {
        Some(p) if p.origin != source.origin && !p.origin.is_empty() => {
            notes.push(format!(
                "the stored state came from another tenant or Graph endpoint ({}); did a full read",
                p.origin
            ));
            None
        }
        Some(p) if p.select != source.select => {
            notes.push(format!(
                "the user attributes to read changed (was {}, now {}); did a full read",
                p.select.join(","),
                source.select.join(",")
            ));
            carry = Some(GroupsState::from_parts(p.groups, p.ignored_members));
            None
        }
        other => other,
    };
    let Some(p) = previous else {
        return Continued {
            users: None,
            groups: None,
            carry,
        };
    };
    let groups = GroupsState::from_parts(p.groups, p.ignored_members);
    // No groups deltaLink: the last read left some group's membership unknown and groups are
    // read in full again; what it knew is the fallback.
    let prev_groups = match p.groups_delta_link {
        Some(link) => Some((groups, link)),
        None => {
            carry = Some(groups);
            None
        }
    };
    Continued {
        users: p.users_delta_link.map(|link| (p.users, link)),
        groups: prev_groups,
        carry,
    }
}

/// The read's counts, and the time it took since `started`.
fn read_stats(
    users: &UsersPart,
    groups: &GroupsPart,
    scope: &InScope,
    scope_input: &ScopeInput<'_>,
    snapshot: &SourceSnapshot,
    requests: BTreeMap<String, u64>,
    started: Instant,
) -> ReadStats {
    let enabled = snapshot.users.values().filter(|u| u.enabled).count();
    let mut ignored_members: BTreeMap<String, u64> = BTreeMap::new();
    for members in groups.state.ignored.values() {
        for kind in members.values() {
            *ignored_members.entry(kind.clone()).or_default() += 1;
        }
    }
    let mode = match (users.kind, groups.kind) {
        (ReadKind::Full, ReadKind::Full) => ReadMode::Full,
        (ReadKind::Delta, ReadKind::Delta) => ReadMode::Delta,
        _ => ReadMode::Mixed,
    };
    ReadStats {
        mode,
        users_read: users.kind,
        groups_read: groups.kind,
        directory_users: users.users.len(),
        users_in_scope: snapshot.users.len(),
        enabled,
        disabled: snapshot.users.len() - enabled,
        groups: groups.state.groups.len(),
        memberships: groups
            .state
            .groups
            .values()
            .map(|g| g.user_members.len())
            .sum(),
        nested_group_memberships: groups
            .state
            .groups
            .values()
            .map(|g| g.group_members.len())
            .sum(),
        nested_groups_expanded: scope.nested_expanded,
        hidden_membership_unknown: groups.unknown.len(),
        ignored_members,
        ignored_app_assignments: match scope_input {
            ScopeInput::Assigned(a) => a.service_principals,
            ScopeInput::Directory | ScopeInput::Groups(_) => 0,
        },
        requests_total: requests.values().sum(),
        requests,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// One delta round from `url` to its deltaLink, each item handed to `apply` (whose refusal of an
/// item is a malformed response, as is a last page without a deltaLink).
async fn delta_round(
    source: &EntraSource,
    kind: CallKind,
    what: &str,
    url: String,
    mut apply: impl FnMut(Value) -> Result<(), String>,
) -> Result<String, EntraError> {
    let malformed = |detail: String| EntraError::Malformed {
        what: what.into(),
        url: url.clone(),
        detail,
    };
    let link = source
        .graph
        .walk(kind, url.clone(), Some(MAX_PAGE_PREFER), |items| {
            for item in items {
                apply(item).map_err(malformed)?;
            }
            Ok(())
        })
        .await?;
    link.ok_or_else(|| {
        malformed("the last page has neither @odata.nextLink nor @odata.deltaLink".into())
    })
}
