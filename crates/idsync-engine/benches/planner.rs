//! The planner alone on a synthetic directory: `cargo bench -p idsync-engine --bench planner --
//! --users 100000 --groups 2000 --memberships 500000`. Prints the time of a first plan (empty
//! target) and of a steady-state plan (target already in step, 1% churn), each the best of 3.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use idsync_config::{GroupRules, MappingMode, UserRules};
use idsync_engine::{CompiledGroupRules, CompiledUserRules, Link, PlanInput, plan};
use idsync_model::{
    ActualState, Capabilities, Deprovisioning, SourceGroup, SourceSnapshot, SourceUser, TargetUser,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let users = arg("--users", 100_000);
    let groups = arg("--groups", 2_000);
    let memberships = arg("--memberships", 500_000);
    let mut snapshot = SourceSnapshot::default();
    for i in 0..users {
        let attributes = BTreeMap::from([
            (
                "userPrincipalName".to_owned(),
                format!("user{i}@contoso.com"),
            ),
            ("mail".to_owned(), format!("user{i}@contoso.com")),
            ("displayName".to_owned(), format!("User {i}")),
        ]);
        snapshot.users.insert(
            format!("id-{i:08}"),
            SourceUser {
                id: format!("id-{i:08}"),
                enabled: true,
                attributes,
            },
        );
    }
    for g in 0..groups {
        snapshot.groups.insert(
            format!("g-{g:05}"),
            SourceGroup {
                id: format!("g-{g:05}"),
                display_name: format!("group-{g}"),
                user_members: BTreeSet::new(),
                group_members: BTreeSet::new(),
            },
        );
    }
    // A deterministic spread of memberships (an LCG, so that runs compare).
    let mut x: u64 = 42;
    let group_ids: Vec<String> = snapshot.groups.keys().cloned().collect();
    for m in 0..memberships {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let g = &group_ids[(x >> 33) as usize % groups.max(1)];
        let u = format!("id-{:08}", m % users.max(1));
        if let Some(group) = snapshot.groups.get_mut(g) {
            group.user_members.insert(u);
        }
    }
    let caps = Capabilities {
        rename_user: true,
        update_email: true,
        reads_email: true,
        update_display_name: true,
        deprovisioning: Deprovisioning::Deactivate,
        delete_user: true,
        custom_attributes: false,
        delete_group: true,
        bulk_membership: false,
        leads: true,
    };
    let user_rules = CompiledUserRules::compile(
        &UserRules {
            username: idsync_config::UsernameRule {
                strip_domain: true,
                lowercase: true,
                ..Default::default()
            },
            ..UserRules::default()
        },
        "users",
    )
    .expect("valid rules");
    let group_rules = CompiledGroupRules::compile(
        &GroupRules {
            mapping: MappingMode::OnTheFly,
            ..GroupRules::default()
        },
        "groups",
    )
    .expect("valid rules");

    let time = |actual: &ActualState, links: &[Link], managed: &BTreeSet<(String, String)>| {
        let mut best = Duration::MAX;
        let mut ops = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let p = plan(&PlanInput {
                app: "bench",
                target: "jira",
                capabilities: &caps,
                snapshot: &snapshot,
                source_complete: true,
                actual,
                links,
                managed_memberships: managed,
                users: &user_rules,
                groups: &group_rules,
                nested_groups: true,
            });
            best = best.min(t.elapsed());
            ops = p.operations.len();
        }
        (best, ops)
    };

    println!("planner: {users} users, {groups} groups, {memberships} memberships");
    let (t, ops) = time(&ActualState::default(), &[], &BTreeSet::new());
    println!(
        "  first plan (empty target): {ops} operations in {} ms",
        t.as_millis()
    );

    // Steady state: every account and membership exists; then 1% of users differ.
    let mut actual = ActualState::default();
    let mut links = Vec::new();
    let mut managed = BTreeSet::new();
    for (id, u) in &snapshot.users {
        let n: usize = id[3..].parse().unwrap_or(0);
        let name = format!("user{n}");
        let churned = n.is_multiple_of(100);
        actual.users.push(TargetUser {
            key: format!("K{n}"),
            username: if churned {
                format!("old{n}")
            } else {
                name.clone()
            },
            email: u.attributes.get("mail").cloned(),
            display_name: u.attributes.get("displayName").cloned(),
            active: true,
            attributes: BTreeMap::new(),
            external_id: None,
        });
        links.push(Link {
            app: "bench".into(),
            source_id: id.clone(),
            key: format!("K{n}"),
            username: name,
        });
    }
    for g in snapshot.groups.values() {
        actual.groups.insert(g.display_name.clone());
        let keys: BTreeSet<String> = g
            .user_members
            .iter()
            .map(|u| format!("K{}", u[3..].parse::<usize>().unwrap_or(0)))
            .collect();
        for k in &keys {
            managed.insert((g.display_name.clone(), k.clone()));
        }
        actual.memberships.insert(g.display_name.clone(), keys);
    }
    let (t, ops) = time(&actual, &links, &managed);
    println!(
        "  steady state, 1% renamed: {ops} operations in {} ms",
        t.as_millis()
    );
}
