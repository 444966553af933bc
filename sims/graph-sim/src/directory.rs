//! The directory control of [`GraphSim`]: the Rust API that tests use to change the tenant
//! behind the simulator's back (users, groups, memberships, devices, contacts, service
//! principals and app role assignments) and to read it (ids, lookups, the snapshot). Every
//! change is logged, so delta queries report it as Graph would.

use serde_json::Value;

use crate::{GraphSim, NewUser, ObjectKind, SimError, Snapshot};

impl GraphSim {
    /// Creates a user; returns its object id.
    pub fn add_user(&self, user: NewUser) -> Result<String, SimError> {
        self.write().add_user(user)
    }

    /// Merges properties into a user (`null` clears one): rename the UPN, change mail,
    /// displayName, `onPremisesExtensionAttributes`, `extension_..._x`, anything.
    pub fn update_user(&self, id: &str, patch: Value) -> Result<(), SimError> {
        self.update_kind(id, ObjectKind::User, &patch)
    }

    fn update_kind(&self, id: &str, kind: ObjectKind, patch: &Value) -> Result<(), SimError> {
        let mut t = self.write();
        let ok = t.lookup(id).is_some_and(|i| t.obj(i).kind == kind);
        if !ok {
            return Err(SimError::NotFound(format!("{} '{id}'", kind.type_name())));
        }
        t.update(id, patch).map(|_| ())
    }

    /// Sets `accountEnabled` to false, as an admin blocking sign-in.
    pub fn disable_user(&self, id: &str) -> Result<(), SimError> {
        self.update_user(id, serde_json::json!({"accountEnabled": false}))
    }

    /// Sets `accountEnabled` back to true.
    pub fn enable_user(&self, id: &str) -> Result<(), SimError> {
        self.update_user(id, serde_json::json!({"accountEnabled": true}))
    }

    /// Moves the user to the recycle bin: delta reports `@removed: changed`.
    pub fn soft_delete_user(&self, id: &str) -> Result<(), SimError> {
        self.write().soft_delete_user(id)
    }

    /// Brings a soft-deleted user back from the recycle bin: delta reports it again.
    pub fn restore_user(&self, id: &str) -> Result<(), SimError> {
        self.write().restore_user(id)
    }

    /// Deletes permanently (also from the recycle bin): delta reports `@removed: deleted`.
    pub fn hard_delete_user(&self, id: &str) -> Result<(), SimError> {
        self.write().hard_delete(id, Some(ObjectKind::User))
    }

    /// A security group with this display name (duplicates allowed, as in Entra).
    pub fn create_group(&self, name: &str) -> String {
        let nick: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let props = serde_json::json!({
            "displayName": name, "mailNickname": nick, "mailEnabled": false,
            "securityEnabled": true, "groupTypes": []
        });
        let props = match props {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        // Random ids cannot collide in practice; fall back to an empty id on the impossible.
        self.write()
            .create_object(ObjectKind::Group, props)
            .unwrap_or_default()
    }

    /// Creates a group from Graph properties (`displayName` required).
    pub fn create_group_with(&self, props: Value) -> Result<String, SimError> {
        let Value::Object(map) = props else {
            return Err(SimError::Invalid(
                "group properties must be an object".into(),
            ));
        };
        if !map.get("displayName").is_some_and(Value::is_string) {
            return Err(SimError::Invalid("a group needs a displayName".into()));
        }
        self.write().create_object(ObjectKind::Group, map)
    }

    /// Changes a group's displayName (its id stays).
    pub fn rename_group(&self, id: &str, name: &str) -> Result<(), SimError> {
        self.update_group(id, serde_json::json!({"displayName": name}))
    }

    /// Merges properties into a group (`null` clears one); the control API's group PATCH.
    pub(crate) fn update_group(&self, id: &str, patch: Value) -> Result<(), SimError> {
        self.update_kind(id, ObjectKind::Group, &patch)
    }

    /// Deletes a group permanently: delta reports `@removed: deleted`.
    pub fn delete_group(&self, id: &str) -> Result<(), SimError> {
        self.write().hard_delete(id, Some(ObjectKind::Group))
    }

    /// Idempotent. The member may be a user, group (cycles allowed, not self), device,
    /// org contact or service principal.
    pub fn add_member(&self, group_id: &str, member_id: &str) -> Result<(), SimError> {
        self.write().add_member(group_id, member_id)
    }

    /// Idempotent.
    pub fn remove_member(&self, group_id: &str, member_id: &str) -> Result<(), SimError> {
        self.write().remove_member(group_id, member_id)
    }

    /// A device, to be put in groups as a member that is not a user; returns its id.
    pub fn add_device(&self, display_name: &str) -> Result<String, SimError> {
        let props = serde_json::Map::from_iter([
            ("displayName".to_owned(), Value::from(display_name)),
            (
                "deviceId".to_owned(),
                Value::from(uuid::Uuid::new_v4().to_string()),
            ),
            ("accountEnabled".to_owned(), Value::Bool(true)),
            ("operatingSystem".to_owned(), Value::from("Windows")),
        ]);
        self.write().create_object(ObjectKind::Device, props)
    }

    /// An organisational contact, to be put in groups as a member that is not a user; returns
    /// its id.
    pub fn add_contact(&self, display_name: &str, mail: &str) -> Result<String, SimError> {
        let props = serde_json::Map::from_iter([
            ("displayName".to_owned(), Value::from(display_name)),
            ("mail".to_owned(), Value::from(mail)),
        ]);
        self.write().create_object(ObjectKind::OrgContact, props)
    }

    /// A service principal (enterprise app); `app_id` is generated when `None`.
    pub fn add_service_principal(
        &self,
        display_name: &str,
        app_id: Option<&str>,
    ) -> Result<String, SimError> {
        let mut props = serde_json::Map::from_iter([
            ("displayName".to_owned(), Value::from(display_name)),
            ("appDisplayName".to_owned(), Value::from(display_name)),
            (
                "servicePrincipalType".to_owned(),
                Value::from("Application"),
            ),
            ("accountEnabled".to_owned(), Value::Bool(true)),
        ]);
        if let Some(app_id) = app_id {
            props.insert("appId".into(), Value::from(app_id));
        }
        self.write()
            .create_object(ObjectKind::ServicePrincipal, props)
    }

    /// Hard-deletes any directory object.
    pub fn delete_object(&self, id: &str) -> Result<(), SimError> {
        self.write().hard_delete(id, None)
    }

    /// Assigns a user, group or service principal to an enterprise app (by appId or service
    /// principal object id) with the default access role. Returns the assignment id.
    pub fn assign_app(&self, app: &str, principal_id: &str) -> Result<String, SimError> {
        self.write().assign_app(app, principal_id, None)
    }

    /// Like [`GraphSim::assign_app`], with a given app role instead of the default access;
    /// the control API's assignment with `appRoleId`.
    pub(crate) fn assign_app_role(
        &self,
        app: &str,
        principal_id: &str,
        app_role_id: &str,
    ) -> Result<String, SimError> {
        self.write()
            .assign_app(app, principal_id, Some(app_role_id.to_owned()))
    }

    /// Removes every assignment of the principal to the enterprise app.
    pub fn unassign_app(&self, app: &str, principal_id: &str) -> Result<(), SimError> {
        self.write().unassign_app(app, principal_id)
    }

    /// `(service principal id, appId, displayName)` of every enterprise app.
    pub fn apps(&self) -> Vec<(String, String, String)> {
        let t = self.read();
        t.sps
            .iter()
            .map(|i| t.obj(*i))
            .map(|o| {
                (
                    o.id.clone(),
                    o.str_prop("appId").unwrap_or_default().to_owned(),
                    o.display_name().to_owned(),
                )
            })
            .collect()
    }

    /// Ids of listed users (not soft-deleted), in listing order.
    pub fn user_ids(&self) -> Vec<String> {
        let t = self.read();
        t.ids_of(&t.users)
    }

    /// Ids of every group, in listing order.
    pub fn group_ids(&self) -> Vec<String> {
        let t = self.read();
        t.ids_of(&t.groups)
    }

    /// A user (listed or soft-deleted) by userPrincipalName, case-insensitive.
    pub fn find_user_by_upn(&self, upn: &str) -> Option<String> {
        let t = self.read();
        t.lookup_upn(upn).map(|i| t.obj(i).id.clone())
    }

    /// The first group (in creation order) with this display name.
    pub fn find_group_by_name(&self, name: &str) -> Option<String> {
        self.read().groups_named(name).into_iter().next()
    }

    /// Every group with this display name (Entra allows duplicates).
    pub fn find_groups_by_name(&self, name: &str) -> Vec<String> {
        self.read().groups_named(name)
    }

    /// Every stored property of one object (any kind, soft-deleted included).
    pub fn object(&self, id: &str) -> Option<Value> {
        let t = self.read();
        t.lookup(id).map(|i| Value::Object(t.obj(i).to_json()))
    }

    /// The whole directory as Graph would show it now, for assertions.
    pub fn snapshot(&self) -> Snapshot {
        self.read().snapshot()
    }
}
