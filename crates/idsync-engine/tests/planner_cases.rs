//! Planner cases worth pinning down one by one.

use std::collections::{BTreeMap, BTreeSet};

use idsync_config::{GroupRules, MappingMode, UserRules};
use idsync_engine::{CompiledGroupRules, CompiledUserRules, PlanInput, plan};
use idsync_model::{
    ActualState, Capabilities, Deprovisioning, Operation, SourceGroup, SourceSnapshot, SourceUser,
};

fn caps() -> Capabilities {
    Capabilities {
        rename_user: true,
        update_email: true,
        reads_email: true,
        update_display_name: true,
        deprovisioning: Deprovisioning::Deactivate,
        delete_user: true,
        custom_attributes: false,
        delete_group: true,
        bulk_membership: false,
        leads: false,
    }
}

fn group(id: &str, users: &[&str], groups: &[&str]) -> SourceGroup {
    SourceGroup {
        id: id.into(),
        display_name: id.into(),
        user_members: users.iter().map(|s| s.to_string()).collect(),
        group_members: groups.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn nested_groups_with_a_cycle_give_every_group_once() {
    let mut snapshot = SourceSnapshot::default();
    snapshot.users.insert(
        "u1".into(),
        SourceUser {
            id: "u1".into(),
            enabled: true,
            attributes: BTreeMap::from([("userPrincipalName".into(), "ada@x.example".into())]),
        },
    );
    // a ⊃ b ⊃ c ⊃ a: a cycle; the user is a direct member of c only.
    for g in [
        group("a", &[], &["b"]),
        group("b", &[], &["c"]),
        group("c", &["u1"], &["a"]),
        group("lonely", &[], &[]),
    ] {
        snapshot.groups.insert(g.id.clone(), g);
    }
    let users = CompiledUserRules::compile(&UserRules::default(), "users").expect("valid");
    let groups = CompiledGroupRules::compile(
        &GroupRules {
            mapping: MappingMode::OnTheFly,
            ..GroupRules::default()
        },
        "groups",
    )
    .expect("valid");
    let caps = caps();
    let actual = ActualState::default();
    let managed = idsync_engine::ManagedMemberships::default();
    for (nested, expected) in [(true, vec!["a", "b", "c"]), (false, vec!["c"])] {
        let p = plan(&PlanInput {
            app: "corp",
            target: "jira",
            capabilities: &caps,
            snapshot: &snapshot,
            source_complete: true,
            actual: &actual,
            links: &[],
            managed_memberships: &managed,
            users: &users,
            groups: &groups,
            nested_groups: nested,
        });
        let memberships: Vec<&str> = p
            .operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::AddMembership { group, .. } => Some(group.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(memberships, expected, "nested_groups = {nested}");
        let created: BTreeSet<&str> = p
            .operations
            .iter()
            .filter_map(|o| match &o.op {
                Operation::CreateGroup { group } => Some(group.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            created,
            expected.iter().copied().collect(),
            "only groups someone is in are created (import_groups is off)"
        );
    }
}
