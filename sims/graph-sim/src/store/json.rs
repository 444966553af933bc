//! JSON import and export of a whole tenant (the format is documented in the crate docs):
//! `to_json` writes what `from_json` reads back.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::schema::{ObjectKind, Props, intern, is_extension_property};

use super::{Credentials, Life, SimError, Tenant};

impl Tenant {
    pub(crate) fn to_json(&self) -> Value {
        let list = |set: &BTreeSet<u32>, life: Life| -> Vec<Value> {
            set.iter()
                .map(|i| self.obj(*i))
                .filter(|o| o.life == life)
                .map(|o| Value::Object(o.to_json()))
                .collect()
        };
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|i| self.obj(*i))
            .filter(|o| o.life == Life::Active)
            .map(|o| {
                let mut m = o.to_json();
                // Sorted by id so that an export does not depend on arena order.
                let ids: BTreeSet<&str> =
                    o.members.iter().map(|i| self.obj(*i).id.as_str()).collect();
                let members: Vec<Value> = ids
                    .into_iter()
                    .map(|id| Value::String(id.to_owned()))
                    .collect();
                m.insert("members".into(), Value::Array(members));
                Value::Object(m)
            })
            .collect();
        let sps: Vec<Value> = self
            .sps
            .iter()
            .map(|i| self.obj(*i))
            .filter(|o| o.life == Life::Active)
            .map(|o| {
                let mut m = o.to_json();
                let assignments: Vec<Value> = o
                    .assignments
                    .iter()
                    .map(|a| {
                        json!({"id": a.id, "principalId": self.obj(a.principal).id,
                               "appRoleId": a.app_role_id})
                    })
                    .collect();
                m.insert("appRoleAssignedTo".into(), Value::Array(assignments));
                Value::Object(m)
            })
            .collect();
        json!({
            "tenantId": self.creds.tenant_id,
            "tenantDomain": self.creds.tenant_domain,
            "clientId": self.creds.client_id,
            "clientSecret": self.creds.client_secret,
            "extensionAppId": self.extension_app_id,
            "users": list(&self.users, Life::Active),
            "deletedUsers": list(&self.users, Life::SoftDeleted),
            "groups": groups,
            "devices": list(&self.devices, Life::Active),
            "orgContacts": list(&self.contacts, Life::Active),
            "servicePrincipals": sps,
        })
    }

    pub(crate) fn from_json(doc: &Value, defaults: Credentials) -> Result<Tenant, SimError> {
        let text = |key: &str, default: String| -> Result<String, SimError> {
            match doc.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(SimError::Invalid(format!("'{key}' must be a string"))),
            }
        };
        let creds = Credentials {
            tenant_id: text("tenantId", defaults.tenant_id)?,
            tenant_domain: text("tenantDomain", defaults.tenant_domain)?,
            client_id: text("clientId", defaults.client_id)?,
            client_secret: text("clientSecret", defaults.client_secret)?,
        };
        uuid::Uuid::parse_str(&creds.tenant_id)
            .map_err(|_| SimError::Invalid("tenantId must be a GUID".into()))?;
        let ext = text("extensionAppId", uuid::Uuid::new_v4().to_string())?;
        let mut tenant = Tenant::new(creds, ext);
        let array = |key: &str| -> Result<Vec<Value>, SimError> {
            match doc.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(_) => Err(SimError::Invalid(format!("'{key}' must be an array"))),
            }
        };
        let mut imported = Vec::new();
        let sections = [
            ("users", ObjectKind::User, Life::Active),
            ("deletedUsers", ObjectKind::User, Life::SoftDeleted),
            ("groups", ObjectKind::Group, Life::Active),
            ("devices", ObjectKind::Device, Life::Active),
            ("orgContacts", ObjectKind::OrgContact, Life::Active),
            (
                "servicePrincipals",
                ObjectKind::ServicePrincipal,
                Life::Active,
            ),
        ];
        for (key, kind, life) in sections {
            for item in array(key)? {
                imported.push(tenant.import_object(key, kind, life, item)?);
            }
        }
        // Edges last: members and principals may come later in the document.
        for object in &imported {
            tenant.link_imported(object)?;
        }
        Ok(tenant)
    }

    /// Adds one object of an import section; its members and role assignments are returned
    /// for linking once every object is in.
    fn import_object(
        &mut self,
        key: &str,
        kind: ObjectKind,
        life: Life,
        item: Value,
    ) -> Result<Imported, SimError> {
        let Value::Object(map) = item else {
            return Err(SimError::Invalid(format!("'{key}' items must be objects")));
        };
        let id = match map.get("id") {
            Some(Value::String(id)) if uuid::Uuid::parse_str(id).is_ok() => id.clone(),
            None => uuid::Uuid::new_v4().to_string(),
            Some(other) => {
                return Err(SimError::Invalid(format!("bad id {other} in '{key}'")));
            }
        };
        let mut props = Props::default();
        let mut members = None;
        let mut assignments = None;
        for (k, v) in map {
            match k.as_str() {
                "id" => {}
                "members" if kind == ObjectKind::Group => members = Some(v),
                "appRoleAssignedTo" if kind == ObjectKind::ServicePrincipal => {
                    assignments = Some(v)
                }
                _ if v.is_null() => {}
                _ => {
                    if !kind.has_property(&k) && !is_extension_property(&k) {
                        // Unknown names are kept: tests may model newer properties.
                        tracing::debug!(property = %k, "unknown property imported");
                    }
                    props.insert(intern(&k), v);
                }
            }
        }
        if kind == ObjectKind::ServicePrincipal && !props.contains_key("appId") {
            props.insert(
                intern("appId"),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
        }
        let idx = self.insert(id, kind, props, life)?;
        let members = members.map(|m| member_ids(&m)).transpose()?;
        let assignments = match assignments {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        Ok(Imported {
            idx,
            members: members.unwrap_or_default(),
            assignments,
        })
    }

    /// Links an imported group's members and a service principal's role assignments.
    fn link_imported(&mut self, object: &Imported) -> Result<(), SimError> {
        for id in &object.members {
            let member = self
                .lookup(id)
                .ok_or_else(|| SimError::Invalid(format!("unknown member '{id}'")))?;
            self.link(object.idx, member);
        }
        for a in &object.assignments {
            let principal = a
                .get("principalId")
                .and_then(Value::as_str)
                .and_then(|p| self.lookup(p))
                .ok_or_else(|| SimError::Invalid("assignment with unknown principalId".into()))?;
            let role = a
                .get("appRoleId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let id = a.get("id").and_then(Value::as_str).map(str::to_owned);
            self.add_assignment(object.idx, principal, role, id);
        }
        Ok(())
    }
}

/// An imported object, with the edges still to link.
struct Imported {
    idx: u32,
    members: Vec<String>,
    assignments: Vec<Value>,
}

/// A group's `members`: ids, or objects with an `id`.
fn member_ids(members: &Value) -> Result<Vec<String>, SimError> {
    members
        .as_array()
        .ok_or_else(|| SimError::Invalid("group members must be an array".into()))?
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) => o
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| SimError::Invalid("member without id".into())),
            _ => Err(SimError::Invalid("member must be an id".into())),
        })
        .collect()
}
