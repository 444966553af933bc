//! Property names the simulator knows per directory object type, the default `$select` sets,
//! and the collection-valued properties (which Graph returns as `[]`, never `null`).
//!
//! The lists follow the v1.0 resource pages on learn.microsoft.com:
//! - user: <https://learn.microsoft.com/graph/api/resources/user?view=graph-rest-1.0>
//! - group: <https://learn.microsoft.com/graph/api/resources/group?view=graph-rest-1.0>
//! - device: <https://learn.microsoft.com/graph/api/resources/device?view=graph-rest-1.0>
//! - orgContact: <https://learn.microsoft.com/graph/api/resources/orgcontact?view=graph-rest-1.0>
//! - servicePrincipal: <https://learn.microsoft.com/graph/api/resources/serviceprincipal?view=graph-rest-1.0>

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Property name as stored: the well-known names are borrowed statics, so a 100k-user tenant
/// does not allocate a key string per property per user; directory extension names are owned.
pub(crate) type Key = Cow<'static, str>;

/// The kinds of directory object that can be group members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// `microsoft.graph.user`.
    User,
    /// `microsoft.graph.group`.
    Group,
    /// `microsoft.graph.device`.
    Device,
    /// `microsoft.graph.orgContact`.
    OrgContact,
    /// `microsoft.graph.servicePrincipal` (an enterprise app).
    ServicePrincipal,
}

impl ObjectKind {
    /// The `@odata.type` Graph puts on a member of this kind (`#microsoft.graph.user`).
    pub(crate) fn odata_type(self) -> &'static str {
        match self {
            ObjectKind::User => "#microsoft.graph.user",
            ObjectKind::Group => "#microsoft.graph.group",
            ObjectKind::Device => "#microsoft.graph.device",
            ObjectKind::OrgContact => "#microsoft.graph.orgContact",
            ObjectKind::ServicePrincipal => "#microsoft.graph.servicePrincipal",
        }
    }

    /// The type name used in Graph error messages (`microsoft.graph.user`).
    pub(crate) fn type_name(self) -> &'static str {
        &self.odata_type()[1..]
    }

    /// `principalType` of an appRoleAssignment.
    pub(crate) fn principal_type(self) -> &'static str {
        match self {
            ObjectKind::User => "User",
            ObjectKind::Group => "Group",
            ObjectKind::ServicePrincipal => "ServicePrincipal",
            ObjectKind::Device => "Device",
            ObjectKind::OrgContact => "OrgContact",
        }
    }

    pub(crate) fn schema(self) -> &'static [&'static str] {
        match self {
            ObjectKind::User => USER_PROPS,
            ObjectKind::Group => GROUP_PROPS,
            ObjectKind::Device => DEVICE_PROPS,
            ObjectKind::OrgContact => CONTACT_PROPS,
            ObjectKind::ServicePrincipal => SP_PROPS,
        }
    }

    /// Properties returned when the request has no `$select`.
    pub(crate) fn default_select(self) -> &'static [&'static str] {
        match self {
            ObjectKind::User => USER_DEFAULT,
            // v1.0 returns the full directory property set for these types by default.
            ObjectKind::Group => GROUP_PROPS,
            ObjectKind::Device => DEVICE_PROPS,
            ObjectKind::OrgContact => CONTACT_PROPS,
            ObjectKind::ServicePrincipal => SP_PROPS,
        }
    }

    pub(crate) fn has_property(self, name: &str) -> bool {
        name == "id" || is_extension_property(name) || self.schema().contains(&name)
    }
}

/// Directory properties of a user that `$select` may name.
pub(crate) const USER_PROPS: &[&str] = &[
    "accountEnabled",
    "ageGroup",
    "assignedLicenses",
    "assignedPlans",
    "businessPhones",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "givenName",
    "identities",
    "imAddresses",
    "isResourceAccount",
    "jobTitle",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "passwordPolicies",
    "postalCode",
    "preferredDataLocation",
    "preferredLanguage",
    "provisionedPlans",
    "proxyAddresses",
    "securityIdentifier",
    "showInAddressList",
    "signInSessionsValidFromDateTime",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// Default user property set of `GET /users` (user-list.md).
pub(crate) const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// User properties stored outside the directory: only a single-user GET returns them; a list
/// with them in `$select` is answered with 501 (user-list.md, "Properties ... not supported").
pub(crate) const USER_NON_DIRECTORY: &[&str] = &[
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mailboxSettings",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
];

/// User properties a users delta query cannot `$select`. Properties kept outside the
/// directory's main store are not supported in change tracking
/// (https://learn.microsoft.com/graph/delta-query-overview#limitations, "Properties stored
/// outside of the main data store"), and neither is `signInActivity`; Graph answers such a
/// `$select` with 400 `BadRequest` "Invalid request for delta query: for this entity set,
/// $expand/$select is not supported for the following properties: ..." (seen for `birthday`
/// in microsoftgraph/microsoft-graph-docs#14141 and for `signInActivity` in
/// microsoftgraph/microsoft-graph-explorer-v4#3189).
pub(crate) const USER_NOT_IN_DELTA: &[&str] = &[
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mailboxSettings",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "signInActivity",
    "skills",
];

pub(crate) const GROUP_PROPS: &[&str] = &[
    "classification",
    "createdDateTime",
    "creationOptions",
    "deletedDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "theme",
    "visibility",
];

pub(crate) const DEVICE_PROPS: &[&str] = &[
    "accountEnabled",
    "createdDateTime",
    "deviceId",
    "displayName",
    "isCompliant",
    "isManaged",
    "operatingSystem",
    "operatingSystemVersion",
    "trustType",
];

pub(crate) const CONTACT_PROPS: &[&str] = &[
    "companyName",
    "department",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "proxyAddresses",
    "surname",
];

pub(crate) const SP_PROPS: &[&str] = &[
    "accountEnabled",
    "appDisplayName",
    "appId",
    "appRoles",
    "displayName",
    "servicePrincipalType",
    "tags",
];

/// Collection-valued properties: absent means `[]` on the wire.
const COLLECTIONS: &[&str] = &[
    "assignedLicenses",
    "assignedPlans",
    "businessPhones",
    "identities",
    "imAddresses",
    "otherMails",
    "provisionedPlans",
    "proxyAddresses",
    "creationOptions",
    "groupTypes",
    "onPremisesProvisioningErrors",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "serviceProvisioningErrors",
    "appRoles",
    "tags",
];

/// `extension_{appIdNoHyphens}_{name}`: a directory extension property.
pub(crate) fn is_extension_property(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("extension_") else {
        return false;
    };
    let Some((app, attr)) = rest.split_once('_') else {
        return false;
    };
    app.len() == 32 && app.bytes().all(|b| b.is_ascii_hexdigit()) && !attr.is_empty()
}

/// The value Graph shows for a property the object has no value for.
pub(crate) fn absent_value(name: &str) -> Value {
    if COLLECTIONS.contains(&name) {
        Value::Array(Vec::new())
    } else if name == "onPremisesExtensionAttributes" {
        empty_extension_attributes()
    } else {
        Value::Null
    }
}

pub(crate) fn empty_extension_attributes() -> Value {
    let mut map = serde_json::Map::new();
    for i in 1..=15 {
        map.insert(format!("extensionAttribute{i}"), Value::Null);
    }
    Value::Object(map)
}

/// Borrows the static name when the property is a known one, so stored keys stay cheap.
pub(crate) fn intern(name: &str) -> Key {
    for list in [
        USER_PROPS,
        GROUP_PROPS,
        DEVICE_PROPS,
        CONTACT_PROPS,
        SP_PROPS,
        USER_NOT_IN_DELTA,
    ] {
        if let Some(found) = list.iter().find(|p| **p == name) {
            return Cow::Borrowed(found);
        }
    }
    Cow::Owned(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_names() {
        assert!(is_extension_property(
            "extension_0123456789abcdef0123456789abcdef_costCenter"
        ));
        assert!(!is_extension_property("extension_123_costCenter"));
        assert!(!is_extension_property("displayName"));
    }

    #[test]
    fn intern_borrows_known_names() {
        assert!(matches!(intern("displayName"), Cow::Borrowed(_)));
        assert!(matches!(intern("extension_x_y"), Cow::Owned(_)));
    }
}

/// An object's properties: a vector sorted by name. One allocation per object instead of a
/// tree of nodes, which matters at 100k users (memory and page faults dominate generation).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Props(Vec<(Key, Value)>);

impl Props {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Props(Vec::with_capacity(n))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    pub(crate) fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Inserts only when the name has no value yet.
    pub(crate) fn insert_default(&mut self, key: Key, value: impl FnOnce() -> Value) {
        if let Err(i) = self.find(&key) {
            self.0.insert(i, (key, value()));
        }
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<Value> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FromIterator<(Key, Value)> for Props {
    fn from_iter<I: IntoIterator<Item = (Key, Value)>>(iter: I) -> Self {
        let mut props = Props::default();
        for (k, v) in iter {
            props.insert(k, v);
        }
        props
    }
}

/// The wire form of a stored property: `onPremisesExtensionAttributes` is stored sparse and
/// always shown with all fifteen attributes.
pub(crate) fn wire_value(name: &str, stored: &Value) -> Value {
    match (name, stored) {
        ("onPremisesExtensionAttributes", Value::Object(set)) => {
            let mut full = empty_extension_attributes();
            if let Value::Object(map) = &mut full {
                for (k, v) in set {
                    map.insert(k.clone(), v.clone());
                }
            }
            full
        }
        _ => stored.clone(),
    }
}
