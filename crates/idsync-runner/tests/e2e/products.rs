//! Product specifics: Jira project/component lead hand-over before deactivation (and the
//! warning when there is no default lead); Bitbucket deprovisioning by removing the licensed
//! groups, or by deleting; Confluence's username rules.

use atlassian_sim::Product;
use idsync_model::{Operation, OperationKind as K, TargetKind};

use crate::harness::*;

#[tokio::test]
async fn jira_lead_hand_over() {
    let kind = TargetKind::JiraDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let w = World::new(&[kind]).await;
    w.seed(kind, "jira-admin", "admin@contoso.com");
    let config = w.write_config(&[App::new(&tenant, "")]);
    w.sync_ok(&config, "main").await;
    w.atl.add_project("PRJ", "Project", "ada@contoso.com");
    let component = w
        .atl
        .add_component("PRJ", "Backend", Some("bob@contoso.com"));

    // Without a default project lead, a project lead cannot be deactivated: the plan says
    // so and leaves the account; the component lead without a default component lead is
    // deactivated (Jira falls back to the project lead).
    tenant.disable_user(&ada).expect("disabled");
    let report = w.sync_ok(&config, "main").await;
    assert!(ops_of(&report, "jira").is_empty(), "{}", pretty(&report));
    assert!(
        warnings(&report, "jira")
            .iter()
            .any(|w| w.contains("lead project PRJ") && w.contains("default_project_lead")),
        "{:?}",
        warnings(&report, "jira")
    );
    assert!(w.is_active(kind, "ada@contoso.com"));
    assert_eq!(w.atl.project_lead("PRJ"), "ada@contoso.com");

    // With default leads: hand-over first, then deactivation.
    tenant.disable_user(&bob).expect("disabled");
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.users]\ndefault_project_lead = \"jira-admin\"\ndefault_component_lead = \"jira-admin\"\n",
    )]);
    let report = w.sync_ok(&config, "main").await;
    let ops = operations(&report, "jira");
    assert_eq!(
        ops_of(&report, "jira"),
        vec![
            (K::HandOverLead, "ada@contoso.com".into(), String::new()),
            (K::HandOverLead, "bob@contoso.com".into(), String::new()),
            (K::DeactivateUser, "ada@contoso.com".into(), String::new()),
            (K::DeactivateUser, "bob@contoso.com".into(), String::new()),
        ],
        "{}",
        pretty(&report)
    );
    assert!(ops.iter().any(|o| matches!(o,
        Operation::HandOverLead { id, new_lead, .. } if id == "PRJ" && new_lead == "jira-admin")));
    assert_eq!(w.atl.project_lead("PRJ"), "jira-admin");
    assert_eq!(
        w.atl.component_lead(component).as_deref(),
        Some("jira-admin")
    );
    assert!(!w.is_active(kind, "ada@contoso.com"));
    assert!(!w.is_active(kind, "bob@contoso.com"));
    w.assert_converged(&config).await;
}

/// Bitbucket cannot deactivate: deprovisioning removes every licensed group; reactivation
/// gives the licence back through the first one.
#[tokio::test]
async fn bitbucket_deprovision_by_licensed_groups() {
    let kind = TargetKind::BitbucketDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    add_user(&tenant, "bob@contoso.com");
    let mut w = World::new(&[kind]).await;
    w.target_toml.insert(
        "bitbucket",
        "licensed_groups = [\"stash-users\", \"bitbucket-devs\"]".into(),
    );
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\ndefault_groups_all_users = [\"bitbucket-devs\"]\n",
    )]);
    w.sync_ok(&config, "main").await;
    let both = vec!["ada@contoso.com", "bob@contoso.com"];
    assert_eq!(w.members(kind, "stash-users"), both);
    assert_eq!(w.members(kind, "bitbucket-devs"), both);
    w.assert_converged(&config).await;

    tenant.disable_user(&ada).expect("disabled");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, "bitbucket"),
        vec![(K::DeactivateUser, "ada@contoso.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.members(kind, "stash-users"), vec!["bob@contoso.com"]);
    assert_eq!(w.members(kind, "bitbucket-devs"), vec!["bob@contoso.com"]);
    assert!(w.user(kind, "ada@contoso.com").is_some(), "not deleted");
    w.assert_converged(&config).await;

    tenant.enable_user(&ada).expect("enabled");
    let report = w.sync_ok(&config, "main").await;
    let mut ops = ops_of(&report, "bitbucket");
    ops.sort();
    assert_eq!(
        ops,
        vec![
            (K::ReactivateUser, "ada@contoso.com".into(), String::new()),
            (
                K::AddMembership,
                "ada@contoso.com".into(),
                "bitbucket-devs".into()
            ),
        ],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.members(kind, "stash-users"), both);
    assert_eq!(w.members(kind, "bitbucket-devs"), both);
    w.assert_converged(&config).await;
}

#[tokio::test]
async fn bitbucket_deprovision_by_delete() {
    let kind = TargetKind::BitbucketDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    add_user(&tenant, "bob@contoso.com");
    let mut w = World::new(&[kind]).await;
    w.target_toml
        .insert("bitbucket", "deprovision = \"delete\"".into());
    // Deleting needs the app's leave to delete (the config check refuses it otherwise).
    let config = w.write_config(&[App::new(&tenant, "[apps.users]\ndelete = true\n")]);
    w.sync_ok(&config, "main").await;
    tenant.disable_user(&ada).expect("disabled");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, "bitbucket"),
        vec![(K::DeleteUser, "ada@contoso.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.usernames(kind), vec!["bob@contoso.com"]);
    assert!(w.atl.user(Product::Bitbucket, "ada@contoso.com").is_none());
    w.assert_converged(&config).await;

    // Enabled again: a new account (the old one is gone), linked to the same source user.
    tenant.enable_user(&ada).expect("enabled");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, "bitbucket"),
        vec![(K::CreateUser, "ada@contoso.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    w.assert_converged(&config).await;
}

/// Bitbucket and SCIM add many members to a group in one request; the others one at a time.
async fn members_added_in_batches(kind: TargetKind) {
    let tenant = tenant().await;
    let ids: Vec<String> = (0..6)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n",
    )]);
    w.sync_ok(&config, "main").await;
    add_group(
        &tenant,
        "devs",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    w.atl.kit().reset_counters();
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::AddMembership, 6);
    let (fragment, expected) = match kind {
        TargetKind::BitbucketDc => ("POST /bitbucket/rest/api/1.0/admin/groups/add-users", 1),
        TargetKind::AtlassianCloud => ("PATCH /scim/directory/{directoryId}/Groups/{id}", 1),
        TargetKind::JiraDc => ("POST /jira/rest/api/2/group/user", 6),
        TargetKind::ConfluenceDc => ("/group/", 6),
    };
    assert_eq!(
        w.atl.kit().count_matching(fragment),
        expected,
        "{:?}",
        w.atl.kit().counters()
    );
    assert_eq!(w.members(kind, "devs").len(), 6);
    w.assert_converged(&config).await;
}

crate::per_target!(members_added_in_batches: jira, confluence, bitbucket, cloud);

/// Bitbucket's create call does not say the new account's id: a first sync of many users
/// learns them all with one read of the user list, not one lookup per account.
#[tokio::test]
async fn bitbucket_learns_new_keys_in_one_read() {
    let kind = TargetKind::BitbucketDc;
    let tenant = tenant().await;
    let ids: Vec<String> = (0..25)
        .map(|i| add_user(&tenant, &format!("user{i}@contoso.com")))
        .collect();
    add_group(
        &tenant,
        "devs",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let w = World::new(&[kind]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.groups]\nmapping = \"on_the_fly\"\n",
    )]);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(count(&report, "bitbucket", K::CreateUser), 25);
    let kit = w.atl.kit();
    assert_eq!(kit.count("POST /bitbucket/rest/api/1.0/admin/users"), 25);
    // One read of the (empty) target before planning, one to learn the 25 new ids.
    assert_eq!(
        kit.count("GET /bitbucket/rest/api/1.0/admin/users"),
        2,
        "{:?}",
        kit.counters()
    );
    // The ids learned are the accounts' own: links hold, a rename is a rename.
    tenant
        .update_user(
            &ids[3],
            serde_json::json!({"userPrincipalName": "renamed@contoso.com"}),
        )
        .expect("renamed");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, "bitbucket"),
        vec![(K::RenameUser, "user3@contoso.com".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.members(kind, "devs").len(), 25);
    w.assert_converged(&config).await;
}

/// Jira refuses to deactivate a project lead: when handing the project over fails, the
/// deactivation is not even attempted (it says why), and the next run does both.
#[tokio::test]
async fn a_failed_lead_hand_over_holds_back_the_deactivation() {
    use atlassian_sim::{FaultKind, FaultRule};
    let kind = TargetKind::JiraDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[kind]).await;
    w.seed(kind, "jira-admin", "admin@contoso.com");
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.users]\ndefault_project_lead = \"jira-admin\"\n",
    )]);
    w.sync_ok(&config, "main").await;
    w.atl.add_project("PRJ", "Project", "ada@contoso.com");
    tenant.disable_user(&ada).expect("disabled");
    w.atl.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 400,
            retry_after: None,
            body: None,
        })
        .on_method("PUT")
        .on_path("/rest/api/2/project/PRJ"),
    );
    let deactivations_sent = |w: &World| {
        w.atl
            .kit()
            .counters()
            .iter()
            .filter(|(k, _)| k.starts_with("PUT") && k.contains("user"))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    let before = deactivations_sent(&w);
    let report = w.run(&config, "main", false).await;
    let results = &report.targets[0].operations;
    let deactivation = results
        .iter()
        .find(|r| r.planned.op.kind() == K::DeactivateUser)
        .expect("planned");
    assert_eq!(
        deactivation.status,
        idsync_engine::OpStatus::Skipped,
        "{}",
        pretty(&report)
    );
    assert!(
        deactivation
            .error
            .as_deref()
            .is_some_and(|e| e.contains("could not be handed over")),
        "{deactivation:?}"
    );
    assert_eq!(deactivations_sent(&w), before, "nothing sent for ada");
    assert!(w.is_active(kind, "ada@contoso.com"));

    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, "jira", K::DeactivateUser, 1);
    assert_eq!(w.atl.project_lead("PRJ"), "jira-admin");
    assert!(!w.is_active(kind, "ada@contoso.com"));
}

/// Confluence DC refuses a userName with upper case, whitespace or any of `\ , + < > ' "`
/// (the simulator too, with a 400): idsync lower-cases the names it creates there, says so in
/// the plan, and reports a name that still holds a refused character as a warning naming the
/// user, never as a failed creation.
#[tokio::test]
async fn confluence_usernames_are_lower_cased_and_refused_names_are_warned_about() {
    let kind = TargetKind::ConfluenceDc;
    let tenant = tenant().await;
    add_user(&tenant, "Ada.Lovelace@contoso.com");
    let obrien = add_user(&tenant, "o'brien@contoso.com");
    let w = World::new(&[kind]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);

    let plan = w.run(&config, "main", true).await;
    let created: Vec<&idsync_engine::OpResult> = plan
        .targets
        .iter()
        .flat_map(|t| t.operations.iter())
        .filter(|o| o.planned.op.kind() == K::CreateUser)
        .collect();
    assert_eq!(created.len(), 1, "{}", pretty(&plan));
    assert_eq!(
        created[0].planned.op.user(),
        Some("ada.lovelace@contoso.com")
    );
    assert!(
        created[0].planned.reason.contains("lower-cased"),
        "the dry run says why: {}",
        created[0].planned.reason
    );

    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        ops_of(&report, "confluence"),
        vec![(
            K::CreateUser,
            "ada.lovelace@contoso.com".into(),
            String::new()
        )],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.usernames(kind), vec!["ada.lovelace@contoso.com"]);
    assert!(
        warnings(&report, "confluence")
            .iter()
            .any(|w| w.contains(&format!("skipped source user {obrien}"))
                && w.contains("o'brien@contoso.com")
                && w.contains("`'`")),
        "{:?}",
        warnings(&report, "confluence")
    );
    w.assert_converged(&config).await;
}
