//! Groups: `/groups/delta` rounds with `members@delta`, and groups with hidden membership
//! whose members the app cannot read (kept as last read, never taken as empty).

use std::collections::{BTreeMap, BTreeSet};

use idsync_model::SourceGroup;
use serde_json::Value;

use super::delta_round;
use super::restart::{initial_round, restarting};
use super::users::object_id;
use crate::error::grant_steps;
use crate::graph::CallKind;
use crate::{EntraError, EntraSource, ReadKind};

#[derive(Default)]
pub(super) struct GroupsState {
    pub(super) groups: BTreeMap<String, SourceGroup>,
    pub(super) ignored: BTreeMap<String, BTreeMap<String, String>>,
    /// Groups with hidden membership met in this read's round (not kept between reads:
    /// `visibility` comes with every group of a full round and with each group a later round
    /// lists).
    pub(super) hidden: BTreeSet<String>,
    /// Some group with hidden membership came with `members@delta` in this round: the app
    /// can read hidden memberships (Member.Read.Hidden is granted for all such groups at once).
    pub(super) hidden_members_seen: bool,
}

impl GroupsState {
    pub(super) fn from_parts(
        groups: BTreeMap<String, SourceGroup>,
        ignored: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Self {
        GroupsState {
            groups,
            ignored,
            ..GroupsState::default()
        }
    }
}

pub(super) struct GroupsPart {
    pub(super) state: GroupsState,
    /// `None` when some group's membership is unknown: the next read reads groups in full,
    /// the only way to learn a hidden membership once it can be read (later rounds carry
    /// changes only).
    pub(super) link: Option<String>,
    pub(super) kind: ReadKind,
    pub(super) notes: Vec<String>,
    /// Groups with hidden membership whose members could not be read.
    pub(super) unknown: BTreeSet<String>,
}

/// The least-privileged application permission that reads the members of groups with hidden
/// membership ("To list the members of a hidden membership group, the Member.Read.Hidden
/// permission is required": https://learn.microsoft.com/graph/api/group-list-members?view=graph-rest-1.0).
const MEMBER_READ_HIDDEN: &str = "Member.Read.Hidden";

/// `GET /groups/delta?$select=displayName,visibility,members` —
/// https://learn.microsoft.com/graph/api/group-delta?view=graph-rest-1.0 and
/// https://learn.microsoft.com/graph/delta-query-groups
///
/// `carry`: what an earlier read knew of the groups, when `previous` cannot be continued; it
/// only stands in for the members of groups this read cannot see.
pub(super) async fn read_groups(
    source: &EntraSource,
    previous: Option<(GroupsState, String)>,
    mut carry: Option<GroupsState>,
) -> Result<GroupsPart, EntraError> {
    let mut notes = Vec::new();
    if let Some((mut state, link)) = previous {
        // As for users: member additions and removals are sets, so re-applying is harmless.
        let result = restarting!(
            "groups",
            &mut notes,
            groups_round(source, link.clone(), &mut state).await
        );
        match result {
            Ok(link) => {
                let unknown = settle_hidden(source, &mut state, None, &mut notes);
                return Ok(GroupsPart {
                    state,
                    link: unknown.is_empty().then_some(link),
                    kind: ReadKind::Delta,
                    notes,
                    unknown,
                });
            }
            Err(EntraError::DeltaReset { reason, .. }) => {
                tracing::warn!(app = %source.app, %reason, "groups delta token refused; reading all groups");
                notes.push(format!(
                    "groups: the delta token was refused ({reason}); did a full read of groups"
                ));
                // Rounds without Member.Read.Hidden never touch a hidden group's members, so
                // what the cut-short round left of them is what was known before.
                carry = Some(state);
            }
            Err(other) => return Err(other),
        }
    }
    let first = source
        .graph
        .url("/groups/delta?$select=displayName,visibility,members");
    let mut state: GroupsState;
    // Left unset: `initial_round!` makes it fresh on every try, so nothing of a cut-short one
    // is kept when the round starts over.
    let link = restarting!(
        "groups",
        &mut notes,
        initial_round!(state, groups_round(source, first.clone(), &mut state).await)
    )?;
    let unknown = settle_hidden(source, &mut state, carry.as_ref(), &mut notes);
    Ok(GroupsPart {
        state,
        link: unknown.is_empty().then_some(link),
        kind: ReadKind::Full,
        notes,
        unknown,
    })
}

/// Finds the groups with hidden membership whose members this read could not see, and says so.
///
/// Without Member.Read.Hidden, Graph does not say that it left members out: what it answers is
/// not documented, and the neighbouring APIs were seen to leave hidden memberships out silently
/// (microsoftgraph/microsoft-graph-docs#12552), so a hidden group may simply come without
/// `members@delta`, like an empty group. Taking that as "nobody is in it" would deprovision its
/// members. So [U], the safe reading: when no group with hidden membership came with members in
/// this round, every one of them that holds no member is taken as unreadable (with the
/// permission, hidden groups come with their members, and one that shows any proves it granted);
/// one that really has no members is reported too, until it has one.
///
/// Each unreadable group keeps the members `carry` (an earlier read) knew, if any. Returns their
/// ids; the planner removes nobody for their sake.
fn settle_hidden(
    source: &EntraSource,
    state: &mut GroupsState,
    carry: Option<&GroupsState>,
    notes: &mut Vec<String>,
) -> BTreeSet<String> {
    if state.hidden_members_seen || state.hidden.is_empty() {
        return BTreeSet::new();
    }
    let unknown: BTreeSet<String> = state
        .hidden
        .iter()
        .filter(|id| {
            state.groups.get(*id).is_some_and(|g| {
                g.user_members.is_empty()
                    && g.group_members.is_empty()
                    && !state.ignored.contains_key(*id)
            })
        })
        .cloned()
        .collect();
    if unknown.is_empty() {
        return unknown;
    }
    let mut carried = 0usize;
    for id in &unknown {
        let Some(known) = carry.and_then(|c| c.groups.get(id)) else {
            continue;
        };
        if let Some(group) = state.groups.get_mut(id) {
            group.user_members = known.user_members.clone();
            group.group_members = known.group_members.clone();
            carried +=
                usize::from(!known.user_members.is_empty() || !known.group_members.is_empty());
        }
        if let Some(others) = carry.and_then(|c| c.ignored.get(id)) {
            state.ignored.insert(id.clone(), others.clone());
        }
    }
    let named: Vec<String> = unknown
        .iter()
        .take(5)
        .map(|id| {
            let name = state.groups.get(id).map_or("", |g| g.display_name.as_str());
            format!("\"{name}\" ({id})")
        })
        .collect();
    let more = unknown.len().saturating_sub(named.len());
    tracing::warn!(
        app = %source.app,
        groups = unknown.len(),
        "groups with hidden membership cannot be read without {MEMBER_READ_HIDDEN}"
    );
    notes.push(format!(
        "groups: {} group(s) with hidden membership whose members the app cannot read: {}{}. \
         Grant the application permission {MEMBER_READ_HIDDEN}: {}. Until then their \
         membership is unknown: idsync keeps the members it last read ({carried} of these \
         groups had some), takes nobody out of the target groups they feed, deprovisions nobody \
         who may be in scope through them, and reads groups in full on every run. (A group with \
         hidden membership that really has no members is listed too, until it has one.)",
        unknown.len(),
        named.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        grant_steps(MEMBER_READ_HIDDEN)
    ));
    unknown
}

async fn groups_round(
    source: &EntraSource,
    url: String,
    state: &mut GroupsState,
) -> Result<String, EntraError> {
    delta_round(
        source,
        CallKind::GroupsDelta,
        "reading groups",
        url,
        |item| apply_group(state, item),
    )
    .await
}

/// Applies one groups-delta item. A big group comes back on several pages, each with more
/// `members@delta`: entries merge into the group. In the initial round `members@delta` holds
/// the full membership, later only changes; membership sets make replays harmless.
fn apply_group(state: &mut GroupsState, item: Value) -> Result<(), String> {
    let Value::Object(map) = item else {
        return Err("a groups-delta item that is not an object".into());
    };
    let id = object_id(&map)?;
    if map.contains_key("@removed") {
        state.groups.remove(&id);
        state.ignored.remove(&id);
        state.hidden.remove(&id);
        return Ok(());
    }
    // Visibility is set when a group is created and never changes (group resource,
    // `visibility`: https://learn.microsoft.com/graph/api/resources/group?view=graph-rest-1.0);
    // SDK docs also spell the value `Hiddenmembership`.
    let hidden = map
        .get("visibility")
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("HiddenMembership"));
    if hidden {
        state.hidden.insert(id.clone());
        // Only a member shown proves the permission: an empty `members@delta` could be what
        // Graph sends for a group it hides, and taking that for "no members" would remove
        // everyone from the groups it feeds.
        if map
            .get("members@delta")
            .and_then(Value::as_array)
            .is_some_and(|members| !members.is_empty())
        {
            state.hidden_members_seen = true;
        }
    }
    let group = state
        .groups
        .entry(id.clone())
        .or_insert_with(|| SourceGroup {
            id: id.clone(),
            display_name: String::new(),
            user_members: BTreeSet::new(),
            group_members: BTreeSet::new(),
        });
    if let Some(name) = map.get("displayName").and_then(Value::as_str) {
        group.display_name = name.to_owned();
    }
    let Some(members) = map.get("members@delta") else {
        return Ok(());
    };
    let Value::Array(members) = members else {
        return Err(format!("members@delta of group {id} is not an array"));
    };
    for member in members {
        let Value::Object(m) = member else {
            return Err(format!(
                "a members@delta entry of group {id} is not an object"
            ));
        };
        let member_id = object_id(m)?;
        let kind = m
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.");
        if m.contains_key("@removed") {
            // Membership removed, or the member object deleted: gone either way.
            group.user_members.remove(&member_id);
            group.group_members.remove(&member_id);
            if let Some(others) = state.ignored.get_mut(&id) {
                others.remove(&member_id);
                if others.is_empty() {
                    state.ignored.remove(&id);
                }
            }
            continue;
        }
        match kind {
            "user" => {
                group.user_members.insert(member_id);
            }
            "group" => {
                // A group cannot contain itself; ignore the impossible rather than loop on it.
                if member_id != id {
                    group.group_members.insert(member_id);
                }
            }
            other => {
                let other = if other.is_empty() { "unknown" } else { other };
                state
                    .ignored
                    .entry(id.clone())
                    .or_default()
                    .insert(member_id, other.to_owned());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Only a member shown proves that hidden memberships can be read: a hidden group that
    /// comes with an empty `members@delta` (what Graph may send without Member.Read.Hidden)
    /// leaves them unproven, so such groups are held as unreadable rather than taken as empty.
    #[test]
    fn an_empty_member_list_does_not_prove_hidden_members_readable() {
        let mut state = GroupsState::default();
        apply_group(
            &mut state,
            json!({"id": "g1", "displayName": "Hidden", "visibility": "HiddenMembership", "members@delta": []}),
        )
        .expect("applied");
        assert!(state.hidden.contains("g1"));
        assert!(!state.hidden_members_seen);
        apply_group(
            &mut state,
            json!({"id": "g2", "displayName": "Shown", "visibility": "HiddenMembership",
                   "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}]}),
        )
        .expect("applied");
        assert!(state.hidden_members_seen);
    }

    #[test]
    fn split_groups_merge_and_removals_apply() {
        let mut state = GroupsState::default();
        let user = |id: &str| json!({"@odata.type": "#microsoft.graph.user", "id": id});
        apply_group(
            &mut state,
            json!({"id": "g", "displayName": "G", "members@delta": [user("a"), user("b")]}),
        )
        .expect("valid");
        apply_group(
            &mut state,
            json!({"id": "g", "members@delta": [user("c"),
                {"@odata.type": "#microsoft.graph.device", "id": "d"},
                {"@odata.type": "#microsoft.graph.group", "id": "g2"}]}),
        )
        .expect("valid");
        let g = &state.groups["g"];
        assert_eq!(g.display_name, "G");
        assert_eq!(g.user_members.len(), 3);
        assert!(g.group_members.contains("g2"));
        assert_eq!(state.ignored["g"]["d"], "device");
        apply_group(
            &mut state,
            json!({"id": "g", "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": "a", "@removed": {"reason": "deleted"}},
                {"@odata.type": "#microsoft.graph.device", "id": "d", "@removed": {"reason": "deleted"}}]}),
        )
        .expect("valid");
        assert_eq!(state.groups["g"].user_members.len(), 2);
        assert!(!state.ignored.contains_key("g"));
    }
}
