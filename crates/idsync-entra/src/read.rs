//! The read itself: users and groups by delta rounds, enterprise-app assignments, the scope.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use idsync_config::Scope;
use idsync_config::validate::is_guid;
use idsync_http::RequestCounter;
use idsync_model::run::ReadMode;
use idsync_model::{SourceGroup, SourceSnapshot, SourceUser};
use serde_json::{Map, Value};

use crate::graph::{CallKind, MAX_PAGE_PREFER};
use crate::{
    DirectoryState, EntraError, EntraSource, ReadKind, ReadStats, ScopeProblem, SourceRead,
};

pub(crate) async fn read(
    source: &EntraSource,
    previous: Option<DirectoryState>,
) -> Result<SourceRead, EntraError> {
    let started = Instant::now();
    let before = source.counter.snapshot();
    let mut notes = Vec::new();
    // What was known of the groups, for groups whose members this read cannot see (hidden
    // membership): kept even when everything else is read afresh, as long as it is the same
    // tenant.
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
    let (prev_users, prev_groups) = match previous {
        Some(p) => {
            let groups = GroupsState::from_parts(p.groups, p.ignored_members);
            // No groups deltaLink: the last read left some group's membership unknown and
            // groups are read in full again; what it knew is the fallback.
            let prev_groups = match p.groups_delta_link {
                Some(link) => Some((groups, link)),
                None => {
                    carry = Some(groups);
                    None
                }
            };
            (p.users_delta_link.map(|link| (p.users, link)), prev_groups)
        }
        None => (None, None),
    };

    let (users, groups, (scope_input, assignment_notes)) = tokio::try_join!(
        read_users(source, prev_users),
        read_groups(source, prev_groups, carry),
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
    let enabled = snapshot.users.values().filter(|u| u.enabled).count();
    let mut ignored_members: BTreeMap<String, u64> = BTreeMap::new();
    for members in groups.state.ignored.values() {
        for kind in members.values() {
            *ignored_members.entry(kind.clone()).or_default() += 1;
        }
    }
    let requests = RequestCounter::difference(&before, &source.counter.snapshot());
    let mode = match (users.kind, groups.kind) {
        (ReadKind::Full, ReadKind::Full) => ReadMode::Full,
        (ReadKind::Delta, ReadKind::Delta) => ReadMode::Delta,
        _ => ReadMode::Mixed,
    };
    let stats = ReadStats {
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
        ignored_app_assignments: match &scope_input {
            ScopeInput::Assigned(a) => a.service_principals,
            ScopeInput::Directory | ScopeInput::Groups(_) => 0,
        },
        requests_total: requests.values().sum(),
        requests,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
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

// ----- restarting rounds -----

/// How many times one read starts a round again after Graph let one of its page tokens expire
/// (400 `Directory_ExpiredPageToken`). Pages are asked for back to back, so an expiry means a
/// long pause (throttling, a slow network); a few more tries ride that out, and a round that
/// keeps expiring fails with a clear message instead of looping.
pub const PAGE_TOKEN_RESTARTS: usize = 3;

/// Counts the restarts of one round after expired page tokens. A round is run in a loop:
/// [`Restarts::settle`] says whether to run it again (a page token expired and the bound is
/// not reached) or what to return; [`Restarts::note`] then says so in the read's notes.
struct Restarts {
    label: &'static str,
    count: usize,
}

impl Restarts {
    fn new(label: &'static str) -> Self {
        Restarts { label, count: 0 }
    }

    /// `None`: start the round over. Otherwise the outcome of the round.
    fn settle<T>(&mut self, tried: Result<T, EntraError>) -> Option<Result<T, EntraError>> {
        let Err(EntraError::PageTokenExpired { what, message, .. }) = tried else {
            return Some(tried);
        };
        if self.count == PAGE_TOKEN_RESTARTS {
            let restarts = self.count;
            return Some(Err(EntraError::PageTokenExpired {
                what,
                restarts,
                message: format!(
                    "{message} It happened again after idsync had started the round over \
                     {restarts} times: Graph's page tokens expire when the next page is asked \
                     for too late, and pages came too slowly (long throttling pauses, a slow \
                     network or proxy). Nothing was changed; sync again later, when Graph \
                     answers faster."
                ),
            }));
        }
        self.count += 1;
        tracing::warn!(
            label = self.label,
            restarts = self.count,
            "a Graph page token expired; starting the round over"
        );
        None
    }

    /// A note for the read when the round had to start over.
    fn note(&self, notes: &mut Vec<String>) {
        if self.count > 0 {
            notes.push(format!(
                "{}: a page token expired while the round was paged through \
                 (Directory_ExpiredPageToken); the round was started over {} time{}",
                self.label,
                self.count,
                if self.count == 1 { "" } else { "s" }
            ));
        }
    }
}

// ----- users -----

struct UsersPart {
    users: BTreeMap<String, SourceUser>,
    link: String,
    kind: ReadKind,
    notes: Vec<String>,
}

/// `GET /users/delta` — https://learn.microsoft.com/graph/api/user-delta?view=graph-rest-1.0
async fn read_users(
    source: &EntraSource,
    previous: Option<(BTreeMap<String, SourceUser>, String)>,
) -> Result<UsersPart, EntraError> {
    let mut notes = Vec::new();
    if let Some((mut users, link)) = previous {
        // Restarting a round from its deltaLink re-applies what the cut-short try applied:
        // delta items are whole objects and removals, so applying them twice is harmless
        // (the same holds for Graph's own replays).
        let mut restarts = Restarts::new("users");
        let result = loop {
            let tried = users_round(source, link.clone(), &mut users).await;
            if let Some(result) = restarts.settle(tried) {
                break result;
            }
        };
        restarts.note(&mut notes);
        match result {
            Ok(link) => {
                return Ok(UsersPart {
                    users,
                    link,
                    kind: ReadKind::Delta,
                    notes,
                });
            }
            Err(EntraError::DeltaReset { reason, .. }) => {
                tracing::warn!(app = %source.app, %reason, "users delta token refused; reading all users");
                notes.push(format!(
                    "users: the delta token was refused ({reason}); did a full read of users"
                ));
            }
            Err(other) => return Err(other),
        }
    }
    let first = source
        .graph
        .url(&format!("/users/delta?$select={}", source.select.join(",")));
    let mut users = BTreeMap::new();
    let mut restarts = Restarts::new("users");
    let link = loop {
        // Starting over (when it does): nothing of a cut-short try is kept.
        users.clear();
        let tried = match users_round(source, first.clone(), &mut users).await {
            // A skip token of the initial round can be refused as out of date when the
            // tenant's sync state moves on while it is paged through: start over once.
            Err(EntraError::DeltaReset { .. }) => {
                users.clear();
                users_round(source, first.clone(), &mut users).await
            }
            other => other,
        };
        if let Some(result) = restarts.settle(tried) {
            break result;
        }
    }
    .map_err(|e| explain_select_error(source, e))?;
    restarts.note(&mut notes);
    Ok(UsersPart {
        users,
        link,
        kind: ReadKind::Full,
        notes,
    })
}

/// Graph's answer to a users `$select` it will not serve, 400 with the names in its message:
/// a property that change tracking does not support ("... $expand/$select is not supported
/// for the following properties: birthday", observed; the limits are in
/// https://learn.microsoft.com/graph/delta-query-overview#limitations), or a name users do not
/// have ("Could not find a property named 'x' on type 'microsoft.graph.user'"). Made into an
/// error that names each property and the fields of the app's config that ask for it, since
/// that is where it has to be fixed. Any other error is returned as it is.
fn explain_select_error(source: &EntraSource, error: EntraError) -> EntraError {
    let EntraError::Graph {
        what,
        status: 400,
        code,
        message,
        request_id,
    } = error
    else {
        return error;
    };
    const NOT_IN_DELTA: &str = "not supported for the following properties:";
    let (names, not_in_delta): (Vec<String>, bool) =
        if let Some((_, list)) = message.split_once(NOT_IN_DELTA) {
            let names = list
                .split(',')
                .map(|n| n.trim().trim_end_matches('.').to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            (names, true)
        } else if let Some((_, rest)) = message.split_once("property named '") {
            let name = rest.split('\'').next().unwrap_or_default().to_owned();
            (vec![name], false)
        } else {
            return EntraError::Graph {
                what,
                status: 400,
                code,
                message,
                request_id,
            };
        };
    let mut explained = Vec::new();
    for name in &names {
        // Graph may spell a name in its own case; the config's spelling is the one to show.
        let fields = source
            .attribute_fields
            .iter()
            .find(|(property, _)| property.eq_ignore_ascii_case(name));
        let asked_by = match fields {
            Some((property, fields)) => format!(
                "'{property}' is asked for by {} of app '{}'",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                source.app
            ),
            None => format!(
                "'{name}' is asked for by the users rules or read_attributes of app '{}'",
                source.app
            ),
        };
        explained.push(asked_by);
    }
    let advice = if not_in_delta {
        "idsync reads users with a delta query, and Microsoft Graph does not track these \
         properties there (properties kept outside the directory's main store, such as skills or \
         birthday, and signInActivity; https://learn.microsoft.com/graph/delta-query-overview#limitations). \
         Remove them from those fields, or map a directory property instead (an extension \
         attribute, for example)"
    } else {
        "Users have no property of that name: check its spelling (directory extensions are \
         extension_<appIdWithoutHyphens>_<name>)"
    };
    EntraError::Graph {
        what,
        status: 400,
        code,
        message: format!(
            "{}. {}. {advice}.",
            message.trim_end_matches(['.', ' ']),
            explained.join("; ")
        ),
        request_id,
    }
}

/// One delta round from `url` to its deltaLink, applied to `users`.
async fn users_round(
    source: &EntraSource,
    url: String,
    users: &mut BTreeMap<String, SourceUser>,
) -> Result<String, EntraError> {
    let link = source
        .graph
        .walk(
            CallKind::UsersDelta,
            url.clone(),
            Some(MAX_PAGE_PREFER),
            |items| {
                for item in items {
                    apply_user(users, item).map_err(|detail| EntraError::Malformed {
                        what: "reading users".into(),
                        url: url.clone(),
                        detail,
                    })?;
                }
                Ok(())
            },
        )
        .await?;
    link.ok_or_else(|| EntraError::Malformed {
        what: "reading users".into(),
        url,
        detail: "the last page has neither @odata.nextLink nor @odata.deltaLink".into(),
    })
}

/// Applies one users-delta item. Objects come with every selected property (we never ask for
/// `return=minimal`), so a user is replaced whole; that also drops attributes Graph leaves out
/// when they are empty (unset directory extensions). Replays are harmless.
pub(crate) fn apply_user(
    users: &mut BTreeMap<String, SourceUser>,
    item: Value,
) -> Result<(), String> {
    let Value::Object(map) = item else {
        return Err("a users-delta item that is not an object".into());
    };
    let id = object_id(&map)?;
    if map.contains_key("@removed") {
        // `changed` (soft-deleted, restorable) and `deleted` alike: the user is gone from the
        // directory, so the engine sees them leave the scope.
        users.remove(&id);
        return Ok(());
    }
    let enabled = match map.get("accountEnabled") {
        Some(Value::Bool(b)) => *b,
        // Never seen in full responses; keep what we knew, and never assume enabled for a
        // user we know nothing about.
        _ => users.get(&id).is_some_and(|u| u.enabled),
    };
    let mut attributes = BTreeMap::new();
    for (key, value) in &map {
        if key == "id" || key.starts_with('@') || key.contains("@odata") {
            continue;
        }
        flatten(key, value, &mut attributes);
    }
    users.insert(
        id.clone(),
        SourceUser {
            id,
            enabled,
            attributes,
        },
    );
    Ok(())
}

/// Graph property → attribute strings: nested objects flattened with a dot, arrays keep their
/// first value, null and empty omitted.
fn flatten(key: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::String(s) => {
            out.insert(key.to_owned(), s.clone());
        }
        Value::Bool(_) | Value::Number(_) => {
            out.insert(key.to_owned(), value.to_string());
        }
        Value::Array(items) => {
            if let Some(first) = items.iter().find(|v| !v.is_null()) {
                flatten(key, first, out);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                if !k.starts_with('@') {
                    flatten(&format!("{key}.{k}"), v, out);
                }
            }
        }
    }
}

fn object_id(map: &Map<String, Value>) -> Result<String, String> {
    map.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "an item without an id".to_owned())
}

// ----- groups -----

#[derive(Default)]
struct GroupsState {
    groups: BTreeMap<String, SourceGroup>,
    ignored: BTreeMap<String, BTreeMap<String, String>>,
    /// Groups with hidden membership met in this read's round (not kept between reads:
    /// `visibility` comes with every group of a full round and with each group a later round
    /// lists).
    hidden: BTreeSet<String>,
    /// Some group with hidden membership came with `members@delta` in this round: the app
    /// can read hidden memberships (Member.Read.Hidden is granted for all such groups at once).
    hidden_members_seen: bool,
}

impl GroupsState {
    fn from_parts(
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

struct GroupsPart {
    state: GroupsState,
    /// `None` when some group's membership is unknown: the next read reads groups in full,
    /// the only way to learn a hidden membership once it can be read (later rounds carry
    /// changes only).
    link: Option<String>,
    kind: ReadKind,
    notes: Vec<String>,
    /// Groups with hidden membership whose members could not be read.
    unknown: BTreeSet<String>,
}

/// The least-privileged application permission that reads the members of groups with hidden
/// membership ("To list the members of a hidden membership group, the Member.Read.Hidden
/// permission is required": https://learn.microsoft.com/graph/api/group-list-members?view=graph-rest-1.0).
pub(crate) const MEMBER_READ_HIDDEN: &str = "Member.Read.Hidden";

/// `GET /groups/delta?$select=displayName,visibility,members` —
/// https://learn.microsoft.com/graph/api/group-delta?view=graph-rest-1.0 and
/// https://learn.microsoft.com/graph/delta-query-groups
///
/// `carry`: what an earlier read knew of the groups, when `previous` cannot be continued; it
/// only stands in for the members of groups this read cannot see.
async fn read_groups(
    source: &EntraSource,
    previous: Option<(GroupsState, String)>,
    mut carry: Option<GroupsState>,
) -> Result<GroupsPart, EntraError> {
    let mut notes = Vec::new();
    if let Some((mut state, link)) = previous {
        // As for users: member additions and removals are sets, so re-applying is harmless.
        let mut restarts = Restarts::new("groups");
        let result = loop {
            let tried = groups_round(source, link.clone(), &mut state).await;
            if let Some(result) = restarts.settle(tried) {
                break result;
            }
        };
        restarts.note(&mut notes);
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
    let mut state = GroupsState::default();
    let mut restarts = Restarts::new("groups");
    let link = loop {
        let tried = match groups_round(source, first.clone(), &mut state).await {
            Err(EntraError::DeltaReset { .. }) => {
                state = GroupsState::default();
                groups_round(source, first.clone(), &mut state).await
            }
            other => other,
        };
        if let Some(result) = restarts.settle(tried) {
            break result;
        }
        // Starting over: nothing of the cut-short try is kept.
        state = GroupsState::default();
    }?;
    restarts.note(&mut notes);
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
         Grant the application permission {MEMBER_READ_HIDDEN}: Entra admin center → App \
         registrations → the app → API permissions → Add a permission → Microsoft Graph → \
         Application permissions → {MEMBER_READ_HIDDEN}, then \"Grant admin consent for <your \
         tenant>\". Until then their membership is unknown: idsync keeps the members it last \
         read ({carried} of these groups had some), takes nobody out of the target groups they \
         feed, deprovisions nobody who may be in scope through them, and reads groups in full \
         on every run. (A group with hidden membership that really has no members is listed \
         too, until it has one.)",
        unknown.len(),
        named.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ));
    unknown
}

async fn groups_round(
    source: &EntraSource,
    url: String,
    state: &mut GroupsState,
) -> Result<String, EntraError> {
    let link = source
        .graph
        .walk(
            CallKind::GroupsDelta,
            url.clone(),
            Some(MAX_PAGE_PREFER),
            |items| {
                for item in items {
                    apply_group(state, item).map_err(|detail| EntraError::Malformed {
                        what: "reading groups".into(),
                        url: url.clone(),
                        detail,
                    })?;
                }
                Ok(())
            },
        )
        .await?;
    link.ok_or_else(|| EntraError::Malformed {
        what: "reading groups".into(),
        url,
        detail: "the last page has neither @odata.nextLink nor @odata.deltaLink".into(),
    })
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

// ----- enterprise application assignments -----

pub(crate) struct Assignments {
    pub(crate) users: BTreeSet<String>,
    pub(crate) groups: BTreeSet<String>,
    pub(crate) service_principals: u64,
}

/// What working out the scope needs besides users and groups, read alongside them: for an
/// enterprise app, its assignments. One variant per kind of scope, so that the scope cannot
/// be worked out without what it needs.
enum ScopeInput<'s> {
    Directory,
    Groups(&'s [String]),
    Assigned(Assignments),
}

/// The scope's input, with notes on how it was read (a listing restarted after its page
/// token expired).
async fn read_scope_input(
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
    let mut restarts = Restarts::new("enterprise application assignments");
    let result = loop {
        let tried = assignments_list(source, &first).await;
        if let Some(result) = restarts.settle(tried) {
            break result;
        }
    };
    restarts.note(&mut notes);
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

struct InScope {
    users: BTreeSet<String>,
    nested_expanded: usize,
    /// The scope goes through a group whose members could not be read.
    reaches_unknown: bool,
}

fn compute_scope(
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
fn users_in_scope(
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
    fn users_are_flattened() {
        let mut users = BTreeMap::new();
        apply_user(
            &mut users,
            json!({
                "id": "u1", "accountEnabled": false, "mail": null,
                "userPrincipalName": "a@x", "otherMails": ["first@x", "second@x"],
                "proxyAddresses": [],
                "onPremisesExtensionAttributes": {"extensionAttribute3": "cc-1", "extensionAttribute4": null},
                "extension_abc_costCenter": 42
            }),
        )
        .expect("valid");
        let u = &users["u1"];
        assert!(!u.enabled);
        assert_eq!(u.attr("otherMails"), Some("first@x"));
        assert_eq!(u.attr("mail"), None);
        assert_eq!(u.attr("proxyAddresses"), None);
        assert_eq!(
            u.attr("onPremisesExtensionAttributes.extensionAttribute3"),
            Some("cc-1")
        );
        assert_eq!(
            u.attr("onPremisesExtensionAttributes.extensionAttribute4"),
            None
        );
        assert_eq!(u.attr("extension_abc_costCenter"), Some("42"));
        apply_user(
            &mut users,
            json!({"id": "u1", "@removed": {"reason": "changed"}}),
        )
        .expect("valid");
        assert!(users.is_empty());
        assert!(apply_user(&mut users, json!({"displayName": "no id"})).is_err());
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
