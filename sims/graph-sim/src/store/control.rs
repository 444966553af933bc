//! The directory's control operations (creating, changing and deleting objects, memberships
//! and app role assignments; each is logged for delta queries) and the reads the control API
//! answers with (ids, groups by name, the snapshot).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::schema::{Key, ObjectKind, Props, intern};

use super::{
    Change, Life, NewUser, SimError, Snapshot, SnapshotGroup, Tenant, lower, now_iso,
    user_extra_capacity,
};

impl Tenant {
    pub(crate) fn add_user(&mut self, user: NewUser) -> Result<String, SimError> {
        let mut props = Props::with_capacity(user_extra_capacity());
        for (k, v) in user.extra {
            if k == "id" || k.starts_with('@') {
                continue;
            }
            props.insert(intern(&k), v);
        }
        let upn = user.user_principal_name;
        let nickname = upn.split('@').next().unwrap_or(&upn).to_owned();
        props.insert(intern("userPrincipalName"), Value::String(upn));
        props.insert_default(intern("mailNickname"), || Value::String(nickname));
        let display = user.display_name.unwrap_or_default();
        props.insert(intern("displayName"), Value::String(display));
        for (k, v) in [
            ("givenName", user.given_name),
            ("surname", user.surname),
            ("mail", user.mail),
        ] {
            if let Some(v) = v {
                props.insert(intern(k), Value::String(v));
            }
        }
        props.insert(intern("accountEnabled"), Value::Bool(user.account_enabled));
        props.insert(
            intern("userType"),
            Value::String(user.user_type.unwrap_or_else(|| "Member".into())),
        );
        props.insert_default(intern("createdDateTime"), || Value::String(now_iso()));
        let id = user.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(SimError::Invalid(format!("id '{id}' is not a GUID")));
        }
        let idx = self.insert(id, ObjectKind::User, props, Life::Active)?;
        self.record(Change::Created(idx));
        Ok(self.obj(idx).id.clone())
    }

    /// Applies a JSON merge of properties (`null` clears one). Returns the changed names.
    pub(crate) fn update(&mut self, id: &str, patch: &Value) -> Result<Vec<Key>, SimError> {
        let idx = self.need(id, None)?;
        if self.obj(idx).life == Life::HardDeleted {
            return Err(SimError::NotFound(format!("object '{id}'")));
        }
        let patch = patch
            .as_object()
            .ok_or_else(|| SimError::Invalid("the patch must be a JSON object".into()))?;
        let kind = self.obj(idx).kind;
        let mut changed = Vec::new();
        for (k, v) in patch {
            if k == "id" {
                return Err(SimError::Invalid("id cannot change".into()));
            }
            if k.starts_with('@') || k == "members" {
                return Err(SimError::Invalid(format!("'{k}' cannot be patched")));
            }
            if kind == ObjectKind::User && k == "userPrincipalName" {
                let new = v
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| SimError::Invalid("userPrincipalName must be text".into()))?;
                let key = lower(new);
                match self.by_upn.get(&key) {
                    Some(other) if *other != idx => {
                        return Err(SimError::Conflict(format!(
                            "Another object with the same value for property userPrincipalName already exists: '{new}'"
                        )));
                    }
                    _ => {}
                }
                if let Some(old) = self.obj(idx).str_prop("userPrincipalName") {
                    let old = lower(old);
                    self.by_upn.remove(&old);
                }
                self.by_upn.insert(key, idx);
            }
            if kind == ObjectKind::ServicePrincipal && k == "appId" {
                return Err(SimError::Invalid("appId cannot change".into()));
            }
            let obj = self.obj_mut(idx);
            let current = obj.props.get(k.as_str()).unwrap_or(&Value::Null);
            // The extension attributes are one complex value; a patch names only the
            // attributes it changes, as a Graph PATCH does.
            let merged;
            let v = match (k.as_str(), current, v) {
                ("onPremisesExtensionAttributes", Value::Object(old), Value::Object(new)) => {
                    let mut map = old.clone();
                    for (name, value) in new {
                        if value.is_null() {
                            map.remove(name);
                        } else {
                            map.insert(name.clone(), value.clone());
                        }
                    }
                    merged = Value::Object(map);
                    &merged
                }
                _ => v,
            };
            if current == v {
                continue;
            }
            if v.is_null() {
                obj.props.remove(k.as_str());
            } else {
                obj.props.insert(intern(k), v.clone());
            }
            changed.push(intern(k));
        }
        if !changed.is_empty() {
            self.record(Change::Updated(idx, changed.clone()));
        }
        Ok(changed)
    }

    pub(crate) fn soft_delete_user(&mut self, id: &str) -> Result<(), SimError> {
        let idx = self.need(id, Some(ObjectKind::User))?;
        if self.obj(idx).life != Life::Active {
            return Err(SimError::Conflict(format!("user '{id}' is not active")));
        }
        let obj = self.obj_mut(idx);
        obj.life = Life::SoftDeleted;
        obj.props
            .insert(intern("deletedDateTime"), Value::String(now_iso()));
        // Graph hides a deleted user from its groups; the edges come back on restore.
        let groups: Vec<u32> = obj.member_of.iter().copied().collect();
        self.record(Change::SoftDeleted(idx));
        for group in groups {
            self.record(Change::MemberRemoved { group, member: idx });
        }
        Ok(())
    }

    pub(crate) fn restore_user(&mut self, id: &str) -> Result<(), SimError> {
        let idx = self.need(id, Some(ObjectKind::User))?;
        if self.obj(idx).life != Life::SoftDeleted {
            return Err(SimError::Conflict(format!("user '{id}' is not deleted")));
        }
        let obj = self.obj_mut(idx);
        obj.life = Life::Active;
        obj.props.remove("deletedDateTime");
        let groups: Vec<u32> = obj.member_of.iter().copied().collect();
        self.record(Change::Restored(idx));
        for group in groups {
            self.record(Change::MemberAdded { group, member: idx });
        }
        Ok(())
    }

    /// Permanently deletes any object (users may be active or soft-deleted).
    pub(crate) fn hard_delete(
        &mut self,
        id: &str,
        kind: Option<ObjectKind>,
    ) -> Result<(), SimError> {
        let idx = self.need(id, kind)?;
        let was_active = self.obj(idx).life == Life::Active;
        let parents: Vec<u32> = self.obj(idx).member_of.iter().copied().collect();
        for group in parents {
            self.obj_mut(group).members.remove(&idx);
            if was_active {
                self.record(Change::MemberRemoved { group, member: idx });
            }
        }
        let children: Vec<u32> = self.obj(idx).members.iter().copied().collect();
        for child in children {
            self.obj_mut(child).member_of.remove(&idx);
        }
        let sps: Vec<u32> = self.sps.iter().copied().collect();
        for sp in sps {
            self.obj_mut(sp).assignments.retain(|a| a.principal != idx);
        }
        let obj = self.obj_mut(idx);
        obj.life = Life::HardDeleted;
        obj.members.clear();
        obj.member_of.clear();
        obj.assignments.clear();
        let (kind, obj_id) = (obj.kind, obj.id.clone());
        let upn = obj.str_prop("userPrincipalName").map(lower);
        let app_id = obj.str_prop("appId").map(lower);
        self.by_id.remove(&obj_id);
        if kind == ObjectKind::User
            && let Some(upn) = upn
        {
            self.by_upn.remove(&upn);
        }
        if kind == ObjectKind::ServicePrincipal
            && let Some(app_id) = app_id
        {
            self.by_app_id.remove(&app_id);
        }
        self.kind_set_mut(kind).remove(&idx);
        self.record(Change::HardDeleted(idx));
        Ok(())
    }

    pub(crate) fn create_object(
        &mut self,
        kind: ObjectKind,
        props: Map<String, Value>,
    ) -> Result<String, SimError> {
        let id = match props.get("id") {
            Some(Value::String(id)) => {
                uuid::Uuid::parse_str(id)
                    .map_err(|_| SimError::Invalid(format!("id '{id}' is not a GUID")))?;
                id.clone()
            }
            Some(_) => return Err(SimError::Invalid("id must be a GUID string".into())),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let mut stored = Props::default();
        for (k, v) in props {
            if k != "id" && !k.starts_with('@') && k != "members" && !v.is_null() {
                stored.insert(intern(&k), v);
            }
        }
        stored.insert_default(intern("createdDateTime"), || Value::String(now_iso()));
        if kind == ObjectKind::ServicePrincipal {
            stored.insert_default(intern("appId"), || {
                Value::String(uuid::Uuid::new_v4().to_string())
            });
        }
        let idx = self.insert(id, kind, stored, Life::Active)?;
        self.record(Change::Created(idx));
        Ok(self.obj(idx).id.clone())
    }

    pub(crate) fn add_member(&mut self, group_id: &str, member_id: &str) -> Result<(), SimError> {
        let group = self.need(group_id, Some(ObjectKind::Group))?;
        let member = self.need(member_id, None)?;
        if group == member {
            return Err(SimError::Invalid(
                "a group cannot be a member of itself".into(),
            ));
        }
        if self.obj(group).members.contains(&member) {
            return Ok(());
        }
        self.link(group, member);
        if self.obj(member).life == Life::Active {
            self.record(Change::MemberAdded { group, member });
        }
        Ok(())
    }

    pub(crate) fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
    ) -> Result<(), SimError> {
        let group = self.need(group_id, Some(ObjectKind::Group))?;
        let member = self.need(member_id, None)?;
        if !self.obj_mut(group).members.remove(&member) {
            return Ok(());
        }
        self.obj_mut(member).member_of.remove(&group);
        if self.obj(member).life == Life::Active {
            self.record(Change::MemberRemoved { group, member });
        }
        Ok(())
    }

    /// The service principal for an appId or a service principal object id.
    pub(crate) fn find_sp(&self, app: &str) -> Result<u32, SimError> {
        self.lookup_app_id(app)
            .or_else(|| {
                self.lookup(app)
                    .filter(|i| self.obj(*i).kind == ObjectKind::ServicePrincipal)
            })
            .ok_or_else(|| SimError::NotFound(format!("service principal '{app}'")))
    }

    pub(crate) fn assign_app(
        &mut self,
        app: &str,
        principal_id: &str,
        app_role_id: Option<String>,
    ) -> Result<String, SimError> {
        let sp = self.find_sp(app)?;
        let principal = self.need(principal_id, None)?;
        match self.obj(principal).kind {
            ObjectKind::User | ObjectKind::Group | ObjectKind::ServicePrincipal => {}
            other => {
                return Err(SimError::Invalid(format!(
                    "a {} cannot be assigned to an app",
                    other.type_name()
                )));
            }
        }
        Ok(self.add_assignment(sp, principal, app_role_id, None))
    }

    pub(crate) fn unassign_app(&mut self, app: &str, principal_id: &str) -> Result<(), SimError> {
        let sp = self.find_sp(app)?;
        let principal = self.need(principal_id, None)?;
        self.obj_mut(sp)
            .assignments
            .retain(|a| a.principal != principal);
        Ok(())
    }

    // ----- reads for the control API -----

    pub(crate) fn ids_of(&self, set: &BTreeSet<u32>) -> Vec<String> {
        set.iter()
            .map(|i| self.obj(*i))
            .filter(|o| o.life == Life::Active)
            .map(|o| o.id.clone())
            .collect()
    }

    pub(crate) fn groups_named(&self, name: &str) -> Vec<String> {
        self.groups
            .iter()
            .map(|i| self.obj(*i))
            .filter(|o| o.life == Life::Active && o.display_name().eq_ignore_ascii_case(name))
            .map(|o| o.id.clone())
            .collect()
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let values = |set: &BTreeSet<u32>, life: Life| -> BTreeMap<String, Value> {
            set.iter()
                .map(|i| self.obj(*i))
                .filter(|o| o.life == life)
                .map(|o| (o.id.clone(), Value::Object(o.to_json())))
                .collect()
        };
        let groups = self
            .groups
            .iter()
            .map(|i| self.obj(*i))
            .filter(|o| o.life == Life::Active)
            .map(|o| {
                let members = o
                    .members
                    .iter()
                    .map(|m| self.obj(*m))
                    .filter(|m| m.life == Life::Active)
                    .map(|m| m.id.clone())
                    .collect();
                (
                    o.id.clone(),
                    SnapshotGroup {
                        display_name: o.display_name().to_owned(),
                        props: Value::Object(o.to_json()),
                        members,
                    },
                )
            })
            .collect();
        let app_assignments = self
            .sps
            .iter()
            .map(|i| self.obj(*i))
            .filter(|o| o.life == Life::Active)
            .map(|sp| {
                let principals = sp
                    .assignments
                    .iter()
                    .map(|a| self.obj(a.principal).id.clone())
                    .collect();
                (
                    sp.str_prop("appId").unwrap_or_default().to_owned(),
                    principals,
                )
            })
            .collect();
        Snapshot {
            users: values(&self.users, Life::Active),
            soft_deleted_users: values(&self.users, Life::SoftDeleted),
            groups,
            devices: values(&self.devices, Life::Active),
            org_contacts: values(&self.contacts, Life::Active),
            service_principals: values(&self.sps, Life::Active),
            app_assignments,
        }
    }
}
