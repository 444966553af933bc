//! Operations: the single steps that turn a target's actual state into the desired one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::target::{LeadKind, UserChanges};

/// One change to one target. Users are named by their account `key` (stable, survives renames)
/// and by `username` (what most Atlassian APIs address them by).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Creates a target group that a mapping needs and the target lacks.
    CreateGroup {
        /// The target group's name.
        group: String,
    },
    /// Deletes a target group. The targets can send it; the planner plans none today.
    DeleteGroup {
        /// The target group's name.
        group: String,
    },
    /// Creates an account for a source user in scope who has none.
    CreateUser {
        /// Username for the new account.
        user: String,
        /// E-mail address, where the rules give one.
        email: Option<String>,
        /// Display name, where the rules give one.
        display_name: Option<String>,
        /// Custom attributes to set once the account exists.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        attributes: BTreeMap<String, String>,
        /// Source object id, sent as SCIM `externalId` where the target has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
    },
    /// Gives an account a new username, following its source user.
    RenameUser {
        /// Account key, stable across renames.
        key: String,
        /// The username it has now.
        user: String,
        /// The username it is to have.
        new_username: String,
    },
    /// Brings an account's e-mail address or display name in line with its source user.
    UpdateUser {
        /// Account key; empty in the plan for an account the run creates (filled in when sent).
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
        /// Only the details that differ.
        changes: UserChanges,
    },
    /// Sets or removes one custom attribute of an account.
    SetAttribute {
        /// Account key; empty in the plan for an account the run creates (filled in when sent).
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
        /// Attribute name, as the target knows it.
        name: String,
        /// `None` removes the attribute.
        value: Option<String>,
    },
    /// Gives a deprovisioned account its access back (its source user is in scope again).
    ReactivateUser {
        /// Account key, stable across renames.
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
    },
    /// Adds an account to a target group.
    AddMembership {
        /// The target group's name.
        group: String,
        /// Account key; empty in the plan for an account the run creates (filled in when sent).
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
    },
    /// Takes an account out of a target group whose membership idsync manages.
    RemoveMembership {
        /// The target group's name.
        group: String,
        /// Account key, stable across renames.
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
    },
    /// Gives a Jira project or component a new lead, so that its old lead can be deactivated or
    /// deleted (Jira refuses both for a project lead).
    HandOverLead {
        /// Whether a project or a component is handed over.
        kind: LeadKind,
        /// Project key or component id.
        id: String,
        /// Username of the current lead, about to be deprovisioned.
        user: String,
        /// Username of the lead taking over.
        new_lead: String,
    },
    /// Takes an account's access away without deleting it, as the target's
    /// [`Deprovisioning`](crate::target::Deprovisioning) says.
    DeactivateUser {
        /// Account key, stable across renames.
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
    },
    /// Deletes an account: a leaver the rules say to delete, or a deprovisioning where the target
    /// can only delete ([`Deprovisioning::Delete`](crate::target::Deprovisioning::Delete)).
    DeleteUser {
        /// Account key, stable across renames.
        key: String,
        /// The account's username, by which most APIs address it.
        user: String,
    },
}

/// The kind of an operation, in plan order: a plan applies all operations of one kind before
/// any of the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// [`Operation::CreateGroup`].
    CreateGroup,
    /// [`Operation::CreateUser`].
    CreateUser,
    /// [`Operation::ReactivateUser`].
    ReactivateUser,
    /// [`Operation::RenameUser`].
    RenameUser,
    /// [`Operation::UpdateUser`].
    UpdateUser,
    /// [`Operation::SetAttribute`].
    SetAttribute,
    /// [`Operation::AddMembership`].
    AddMembership,
    /// [`Operation::RemoveMembership`].
    RemoveMembership,
    /// [`Operation::HandOverLead`].
    HandOverLead,
    /// [`Operation::DeactivateUser`].
    DeactivateUser,
    /// [`Operation::DeleteUser`].
    DeleteUser,
    /// [`Operation::DeleteGroup`].
    DeleteGroup,
}

impl OperationKind {
    /// Every kind, in plan order.
    pub const ALL: [OperationKind; 12] = [
        OperationKind::CreateGroup,
        OperationKind::CreateUser,
        OperationKind::ReactivateUser,
        OperationKind::RenameUser,
        OperationKind::UpdateUser,
        OperationKind::SetAttribute,
        OperationKind::AddMembership,
        OperationKind::RemoveMembership,
        OperationKind::HandOverLead,
        OperationKind::DeactivateUser,
        OperationKind::DeleteUser,
        OperationKind::DeleteGroup,
    ];

    /// As in plans, results and the history (`create_user`).
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::CreateGroup => "create_group",
            OperationKind::CreateUser => "create_user",
            OperationKind::ReactivateUser => "reactivate_user",
            OperationKind::RenameUser => "rename_user",
            OperationKind::UpdateUser => "update_user",
            OperationKind::SetAttribute => "set_attribute",
            OperationKind::AddMembership => "add_membership",
            OperationKind::RemoveMembership => "remove_membership",
            OperationKind::HandOverLead => "hand_over_lead",
            OperationKind::DeactivateUser => "deactivate_user",
            OperationKind::DeleteUser => "delete_user",
            OperationKind::DeleteGroup => "delete_group",
        }
    }

    /// Operations that take access away: held back when the source read was incomplete, and
    /// counted against the mass-change threshold (deactivations and deletions).
    pub fn is_removal(self) -> bool {
        matches!(
            self,
            OperationKind::RemoveMembership
                | OperationKind::DeactivateUser
                | OperationKind::DeleteUser
                | OperationKind::DeleteGroup
        )
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Operation {
    /// Which kind of operation this is (its phase in the plan).
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::CreateGroup { .. } => OperationKind::CreateGroup,
            Operation::DeleteGroup { .. } => OperationKind::DeleteGroup,
            Operation::CreateUser { .. } => OperationKind::CreateUser,
            Operation::RenameUser { .. } => OperationKind::RenameUser,
            Operation::UpdateUser { .. } => OperationKind::UpdateUser,
            Operation::SetAttribute { .. } => OperationKind::SetAttribute,
            Operation::ReactivateUser { .. } => OperationKind::ReactivateUser,
            Operation::AddMembership { .. } => OperationKind::AddMembership,
            Operation::RemoveMembership { .. } => OperationKind::RemoveMembership,
            Operation::HandOverLead { .. } => OperationKind::HandOverLead,
            Operation::DeactivateUser { .. } => OperationKind::DeactivateUser,
            Operation::DeleteUser { .. } => OperationKind::DeleteUser,
        }
    }

    /// The username the operation is about, if it is about a user.
    pub fn user(&self) -> Option<&str> {
        match self {
            Operation::CreateGroup { .. } | Operation::DeleteGroup { .. } => None,
            Operation::CreateUser { user, .. }
            | Operation::RenameUser { user, .. }
            | Operation::UpdateUser { user, .. }
            | Operation::SetAttribute { user, .. }
            | Operation::ReactivateUser { user, .. }
            | Operation::AddMembership { user, .. }
            | Operation::RemoveMembership { user, .. }
            | Operation::HandOverLead { user, .. }
            | Operation::DeactivateUser { user, .. }
            | Operation::DeleteUser { user, .. } => Some(user),
        }
    }

    /// The group the operation is about, if any.
    pub fn group(&self) -> Option<&str> {
        match self {
            Operation::CreateGroup { group }
            | Operation::DeleteGroup { group }
            | Operation::AddMembership { group, .. }
            | Operation::RemoveMembership { group, .. } => Some(group),
            _ => None,
        }
    }
}

/// An operation in a plan: which target, what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOperation {
    /// The configured name of the target it applies to.
    pub target: String,
    /// What to do.
    #[serde(flatten)]
    pub op: Operation,
    /// Why, in words shown in the plan and the history.
    pub reason: String,
    /// The source object this operation serves (Entra object id), for links and history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_names_op_target_user_and_reason() {
        let planned = PlannedOperation {
            target: "jira".into(),
            op: Operation::AddMembership {
                group: "devs".into(),
                key: "JIRAUSER10000".into(),
                user: "ada".into(),
            },
            reason: "member of Entra group 'Developers'".into(),
            source_id: None,
        };
        let json = serde_json::to_value(&planned).expect("serialisable");
        assert_eq!(json["op"], "add_membership");
        assert_eq!(json["target"], "jira");
        assert_eq!(json["user"], "ada");
        assert_eq!(json["group"], "devs");
        assert_eq!(json["reason"], "member of Entra group 'Developers'");
        let back: PlannedOperation = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, planned);
    }

    #[test]
    fn kinds_are_in_plan_order() {
        let mut sorted = OperationKind::ALL;
        sorted.sort();
        assert_eq!(sorted, OperationKind::ALL);
        assert!(OperationKind::AddMembership < OperationKind::RemoveMembership);
        assert!(OperationKind::HandOverLead < OperationKind::DeactivateUser);
    }
}
