//! The simulated directory: an arena of directory objects with indexes, group edges in both
//! directions, app role assignments, and an append-only change log that delta queries read.
//!
//! Objects are addressed internally by their arena index (`u32`), which is also the stable
//! listing order (creation order); hard-deleted objects keep their slot as a tombstone so that
//! log entries and delta rounds can still name them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::{Key, ObjectKind, Props};

mod control;
mod json;

/// Errors of the control API (Rust and `/_sim/` HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No object (of the kind asked for) has that id or name; HTTP 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// The change clashes with what the tenant holds (a UPN or id taken, a user not in the
    /// state the change needs); HTTP 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong (bad JSON, a required property missing); HTTP 400.
    #[error("invalid: {0}")]
    Invalid(String),
}

/// What a client needs to get a token from the simulated authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Tenant GUID (the `{tenant}` path segment of the token endpoint).
    pub tenant_id: String,
    /// The tenant's initial domain, e.g. `contoso.onmicrosoft.com`; also accepted as `{tenant}`.
    pub tenant_domain: String,
    /// The app registration's client id the authority accepts.
    pub client_id: String,
    /// The client secret the authority accepts; any other gets AADSTS7000215.
    pub client_secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    Active,
    SoftDeleted,
    HardDeleted,
}

#[derive(Debug, Clone)]
pub(crate) struct DirObject {
    pub id: String,
    pub kind: ObjectKind,
    pub life: Life,
    pub props: Props,
    /// Direct members (groups only), by arena index.
    pub members: BTreeSet<u32>,
    /// Groups this object is a direct member of.
    pub member_of: BTreeSet<u32>,
    /// `appRoleAssignedTo` of a service principal, in creation order.
    pub assignments: Vec<Assignment>,
}

impl DirObject {
    pub(crate) fn str_prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }

    pub(crate) fn display_name(&self) -> &str {
        self.str_prop("displayName").unwrap_or("")
    }

    /// Every stored property plus `id`, as Graph would show the full object.
    pub(crate) fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("id".into(), Value::String(self.id.clone()));
        for (k, v) in self.props.iter() {
            map.insert(k.to_string(), v.clone());
        }
        map
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    /// Creation sequence; the paging cursor of `appRoleAssignedTo`.
    pub seq: u64,
    pub id: String,
    pub principal: u32,
    pub app_role_id: String,
    pub created: String,
}

/// One entry of the change log. Delta tokens are positions in this log.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Created(u32),
    Updated(u32, Vec<Key>),
    SoftDeleted(u32),
    Restored(u32),
    HardDeleted(u32),
    MemberAdded { group: u32, member: u32 },
    MemberRemoved { group: u32, member: u32 },
}

/// A user to add through the control API. Only `userPrincipalName` is required on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    /// Object id; a random GUID when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Unique in the tenant (case-insensitive); a clash is a [`SimError::Conflict`].
    pub user_principal_name: String,
    /// `displayName`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `givenName`.
    #[serde(default)]
    pub given_name: Option<String>,
    /// `surname`.
    #[serde(default)]
    pub surname: Option<String>,
    /// `mail`; null when absent, as for many real users.
    #[serde(default)]
    pub mail: Option<String>,
    /// `accountEnabled`; true when absent.
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// `Member` when absent.
    #[serde(default)]
    pub user_type: Option<String>,
    /// Any other Graph properties (department, employeeId, onPremisesExtensionAttributes,
    /// `extension_{appId}_{name}`, ...), stored as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

impl Default for NewUser {
    fn default() -> Self {
        NewUser {
            id: None,
            user_principal_name: String::new(),
            display_name: None,
            given_name: None,
            surname: None,
            mail: None,
            account_enabled: true,
            user_type: None,
            extra: Map::new(),
        }
    }
}

impl NewUser {
    /// A member user with only a UPN and a display name; the rest as [`Default`].
    pub fn new(user_principal_name: impl Into<String>, display_name: impl Into<String>) -> Self {
        NewUser {
            user_principal_name: user_principal_name.into(),
            display_name: Some(display_name.into()),
            ..NewUser::default()
        }
    }
}

/// A view of the directory for assertions in tests: what Graph would show right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Listed users (not soft-deleted): id → every stored property.
    pub users: BTreeMap<String, Value>,
    /// Users in the recycle bin (soft-deleted, restorable).
    pub soft_deleted_users: BTreeMap<String, Value>,
    /// Groups: id → name, properties and members.
    pub groups: BTreeMap<String, SnapshotGroup>,
    /// Devices: id → every stored property.
    pub devices: BTreeMap<String, Value>,
    /// Organisational contacts: id → every stored property.
    pub org_contacts: BTreeMap<String, Value>,
    /// Service principals (enterprise apps): id → every stored property.
    pub service_principals: BTreeMap<String, Value>,
    /// appId → principal ids assigned to that enterprise app.
    pub app_assignments: BTreeMap<String, BTreeSet<String>>,
}

/// One group in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotGroup {
    /// `displayName`.
    pub display_name: String,
    /// Every stored property.
    pub props: Value,
    /// Direct members Graph lists (soft-deleted members are hidden, as in Graph).
    pub members: BTreeSet<String>,
}

impl Snapshot {
    /// Users reachable from `group_id` through nested groups (cycle-safe).
    pub fn transitive_user_members(&self, group_id: &str) -> BTreeSet<String> {
        let mut users = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![group_id.to_owned()];
        while let Some(g) = stack.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(group) = self.groups.get(&g) {
                for m in &group.members {
                    if self.users.contains_key(m) {
                        users.insert(m.clone());
                    } else if self.groups.contains_key(m) {
                        stack.push(m.clone());
                    }
                }
            }
        }
        users
    }

    /// The users who have access to enterprise app `app_id` as Entra decides it: those
    /// assigned directly, and the direct user members of assigned groups. Microsoft documents
    /// that group-based assignment does not reach the members of groups nested in an assigned
    /// group:
    /// https://learn.microsoft.com/entra/identity/enterprise-apps/assign-user-or-group-access-portal
    pub fn users_with_app_access(&self, app_id: &str) -> BTreeSet<String> {
        let mut users = BTreeSet::new();
        for principal in self.app_assignments.get(app_id).into_iter().flatten() {
            if self.users.contains_key(principal) {
                users.insert(principal.clone());
            } else if let Some(group) = self.groups.get(principal) {
                users.extend(
                    group
                        .members
                        .iter()
                        .filter(|m| self.users.contains_key(*m))
                        .cloned(),
                );
            }
        }
        users
    }
}

pub(crate) struct Tenant {
    pub creds: Credentials,
    /// App whose directory extensions (`extension_{appIdNoHyphens}_costCenter`) users carry.
    pub extension_app_id: String,
    pub objects: Vec<DirObject>,
    by_id: HashMap<String, u32>,
    by_upn: HashMap<String, u32>,
    by_app_id: HashMap<String, u32>,
    pub users: BTreeSet<u32>,
    pub groups: BTreeSet<u32>,
    pub devices: BTreeSet<u32>,
    pub contacts: BTreeSet<u32>,
    pub sps: BTreeSet<u32>,
    pub log: Vec<Change>,
    /// Bumped by `expire_delta_tokens`; tokens of older epochs are refused.
    pub epoch: u64,
    next_assignment_seq: u64,
}

pub(crate) fn now_iso() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .map(|s| {
            // Graph prints whole seconds with a `Z` suffix.
            let trimmed = s.split('.').next().unwrap_or(&s).trim_end_matches('Z');
            format!("{trimmed}Z")
        })
        .unwrap_or_else(|_| "2024-01-01T00:00:00Z".to_owned())
}

/// Room for the properties a typical user carries, so building one allocates once.
pub(crate) const fn user_extra_capacity() -> usize {
    30
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Lower-cases in place only when needed (generated ids and UPNs already are).
fn lower_owned(s: String) -> String {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        s.to_ascii_lowercase()
    } else {
        s
    }
}

impl Tenant {
    pub(crate) fn new(creds: Credentials, extension_app_id: String) -> Tenant {
        Tenant {
            creds,
            extension_app_id,
            objects: Vec::new(),
            by_id: HashMap::new(),
            by_upn: HashMap::new(),
            by_app_id: HashMap::new(),
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            devices: BTreeSet::new(),
            contacts: BTreeSet::new(),
            sps: BTreeSet::new(),
            log: Vec::new(),
            epoch: 0,
            next_assignment_seq: 1,
        }
    }

    pub(crate) fn with_capacity(mut self, objects: usize) -> Tenant {
        self.objects.reserve(objects);
        self.by_id.reserve(objects);
        self
    }

    pub(crate) fn extension_attr(&self, name: &str) -> String {
        format!(
            "extension_{}_{name}",
            self.extension_app_id.replace('-', "")
        )
    }

    pub(crate) fn obj(&self, idx: u32) -> &DirObject {
        &self.objects[idx as usize]
    }

    fn obj_mut(&mut self, idx: u32) -> &mut DirObject {
        &mut self.objects[idx as usize]
    }

    /// Any object that is not hard-deleted, by id (case-insensitive).
    pub(crate) fn lookup(&self, id: &str) -> Option<u32> {
        self.by_id
            .get(id)
            .or_else(|| self.by_id.get(&lower(id)))
            .copied()
    }

    pub(crate) fn lookup_upn(&self, upn: &str) -> Option<u32> {
        self.by_upn.get(&lower(upn)).copied()
    }

    pub(crate) fn lookup_app_id(&self, app_id: &str) -> Option<u32> {
        self.by_app_id.get(&lower(app_id)).copied()
    }

    /// An object Graph shows (neither soft- nor hard-deleted) of the given kind.
    pub(crate) fn visible(&self, id: &str, kind: ObjectKind) -> Option<u32> {
        let idx = self.lookup(id)?;
        let o = self.obj(idx);
        (o.kind == kind && o.life == Life::Active).then_some(idx)
    }

    fn need(&self, id: &str, kind: Option<ObjectKind>) -> Result<u32, SimError> {
        let idx = self
            .lookup(id)
            .ok_or_else(|| SimError::NotFound(format!("object '{id}'")))?;
        if let Some(kind) = kind
            && self.obj(idx).kind != kind
        {
            return Err(SimError::NotFound(format!(
                "'{id}' is not a {}",
                kind.type_name()
            )));
        }
        Ok(idx)
    }

    /// Adds an object without logging (generation and JSON import).
    pub(crate) fn insert(
        &mut self,
        id: String,
        kind: ObjectKind,
        props: Props,
        life: Life,
    ) -> Result<u32, SimError> {
        let id = lower_owned(id);
        if self.by_id.contains_key(&id) {
            return Err(SimError::Conflict(format!(
                "an object with id '{id}' exists"
            )));
        }
        let upn = if kind == ObjectKind::User {
            let upn = props
                .get("userPrincipalName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| SimError::Invalid("a user needs a userPrincipalName".into()))?;
            let key = lower(upn);
            if self.by_upn.contains_key(&key) {
                return Err(SimError::Conflict(format!(
                    "Another object with the same value for property userPrincipalName already exists: '{upn}'"
                )));
            }
            Some(key)
        } else {
            None
        };
        let app_id = if kind == ObjectKind::ServicePrincipal {
            props.get("appId").and_then(Value::as_str).map(lower)
        } else {
            None
        };
        let idx = u32::try_from(self.objects.len())
            .map_err(|_| SimError::Invalid("directory is full".into()))?;
        self.objects.push(DirObject {
            id: id.clone(),
            kind,
            life,
            props,
            members: BTreeSet::new(),
            member_of: BTreeSet::new(),
            assignments: Vec::new(),
        });
        self.by_id.insert(id, idx);
        if let Some(upn) = upn {
            self.by_upn.insert(upn, idx);
        }
        if let Some(app_id) = app_id {
            self.by_app_id.insert(app_id, idx);
        }
        self.kind_set_mut(kind).insert(idx);
        Ok(idx)
    }

    fn kind_set_mut(&mut self, kind: ObjectKind) -> &mut BTreeSet<u32> {
        match kind {
            ObjectKind::User => &mut self.users,
            ObjectKind::Group => &mut self.groups,
            ObjectKind::Device => &mut self.devices,
            ObjectKind::OrgContact => &mut self.contacts,
            ObjectKind::ServicePrincipal => &mut self.sps,
        }
    }

    /// Adds a membership edge without logging (generation and import).
    pub(crate) fn link(&mut self, group: u32, member: u32) {
        if group == member {
            return;
        }
        self.obj_mut(group).members.insert(member);
        self.obj_mut(member).member_of.insert(group);
    }

    /// Sets many groups' direct members at once (generation). Each list is sorted and
    /// deduplicated here; building the sets in bulk is far cheaper than one insert per edge.
    pub(crate) fn bulk_members(&mut self, edges: Vec<(u32, Vec<u32>)>) {
        let mut reverse: HashMap<u32, Vec<u32>> = HashMap::new();
        for (group, mut members) in edges {
            members.sort_unstable();
            members.dedup();
            members.retain(|m| *m != group);
            for m in &members {
                reverse.entry(*m).or_default().push(group);
            }
            let set = &mut self.obj_mut(group).members;
            if set.is_empty() {
                *set = members.into_iter().collect();
            } else {
                set.extend(members);
            }
        }
        for (member, groups) in reverse {
            self.obj_mut(member).member_of.extend(groups);
        }
    }

    pub(crate) fn add_assignment(
        &mut self,
        sp: u32,
        principal: u32,
        app_role_id: Option<String>,
        id: Option<String>,
    ) -> String {
        let role = app_role_id.unwrap_or_else(|| uuid::Uuid::nil().to_string());
        if let Some(existing) = self
            .obj(sp)
            .assignments
            .iter()
            .find(|a| a.principal == principal && a.app_role_id == role)
        {
            return existing.id.clone();
        }
        let seq = self.next_assignment_seq;
        self.next_assignment_seq += 1;
        let id = id.unwrap_or_else(random_assignment_id);
        self.obj_mut(sp).assignments.push(Assignment {
            seq,
            id: id.clone(),
            principal,
            app_role_id: role,
            created: now_iso(),
        });
        id
    }

    fn record(&mut self, change: Change) {
        self.log.push(change);
    }
}

/// appRoleAssignment ids look like 43 base64url characters.
pub(crate) fn random_assignment_id() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let mut bytes = a.as_bytes().to_vec();
    bytes.extend_from_slice(&b.as_bytes()[..16]);
    let mut s = crate::token::base64url(&bytes);
    s.truncate(43);
    s
}
