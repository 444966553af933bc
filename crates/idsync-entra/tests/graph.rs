//! The Entra source against graph-sim over real loopback HTTP: sign-in errors, paging, `$select`,
//! scopes, nesting, delta rounds, resyncs, throttling and cut-short reads.
//!
//! One test binary on purpose: every extra one costs a link on a 2-core machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use graph_sim::{GraphSim, NewUser, RunningGraphSim, TenantSpec};
use idsync_config::{AppConfig, Env};
use idsync_entra::{
    DirectoryState, EntraError, EntraSource, ReadKind, Retry, SourceOptions, SourceRead,
};
use serde_json::json;
use sim_kit::{FaultKind, FaultRule};

// ----- helpers -----

async fn start(spec: &TenantSpec) -> RunningGraphSim {
    GraphSim::new(spec).start().await.expect("graph-sim starts")
}

/// An app pointed at the simulator; `extra` is more TOML for the `[[apps]]` table.
fn app(sim: &RunningGraphSim, extra: &str) -> AppConfig {
    let c = sim.credentials();
    let text = format!(
        "[[apps]]\nname = \"test\"\nkind = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
         client_secret = '{}'\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n{extra}\n",
        c.tenant_id,
        c.client_id,
        c.client_secret,
        sim.authority_url(),
        sim.graph_url()
    );
    let config = idsync_config::parse_with_env(&text, Path::new("test.toml"), &Env::new())
        .unwrap_or_else(|e| panic!("test config is valid: {e}"));
    config.apps.into_iter().next().expect("one app")
}

fn attrs(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn default_attrs() -> BTreeSet<String> {
    attrs(&["mail", "displayName", "userPrincipalName"])
}

fn source(app: &AppConfig) -> EntraSource {
    source_with(app, &default_attrs())
}

fn source_with(app: &AppConfig, attributes: &BTreeSet<String>) -> EntraSource {
    EntraSource::with_options(
        app,
        attributes,
        SourceOptions {
            retry: Retry::fast(),
            ..SourceOptions::default()
        },
    )
    .expect("source builds")
}

fn new_user(upn: &str) -> NewUser {
    serde_json::from_value(json!({"userPrincipalName": upn, "displayName": upn, "mail": upn}))
        .expect("a NewUser")
}

fn status_fault(status: u16, retry_after: Option<u64>) -> FaultRule {
    FaultRule::once(FaultKind::Status {
        status,
        retry_after,
        body: None,
    })
}

/// The state with the parts that differ between equivalent reads (links) taken out.
fn content(state: &DirectoryState) -> DirectoryState {
    DirectoryState {
        users_delta_link: None,
        groups_delta_link: None,
        ..state.clone()
    }
}

/// Asserts the read holds exactly what the simulator's tenant holds.
fn assert_matches_tenant(read: &SourceRead, sim: &GraphSim) {
    let truth = sim.snapshot();
    let users: BTreeSet<&String> = read.state.users.keys().collect();
    let expected: BTreeSet<&String> = truth.users.keys().collect();
    assert_eq!(users, expected, "directory users");
    for (id, props) in &truth.users {
        let user = &read.state.users[id];
        assert_eq!(
            user.enabled,
            props["accountEnabled"].as_bool().unwrap_or(true),
            "enabled of {id}"
        );
        assert_eq!(
            user.attr("userPrincipalName"),
            props["userPrincipalName"].as_str()
        );
    }
    let groups: BTreeSet<&String> = read.state.groups.keys().collect();
    let expected: BTreeSet<&String> = truth.groups.keys().collect();
    assert_eq!(groups, expected, "groups");
    for (id, group) in &truth.groups {
        let ours = &read.state.groups[id];
        assert_eq!(ours.display_name, group.display_name);
        let mut members: BTreeSet<String> = ours.user_members.clone();
        members.extend(ours.group_members.iter().cloned());
        if let Some(others) = read.state.ignored_members.get(id) {
            members.extend(others.keys().cloned());
        }
        assert_eq!(members, group.members, "members of group {id}");
    }
}

// ----- full reads, paging, $select -----

#[tokio::test]
async fn a_full_read_holds_the_whole_tenant() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    let read = source.read(None).await.expect("read");
    assert_matches_tenant(&read, &sim);
    let stats = &read.stats;
    assert_eq!(stats.mode, idsync_model::run::ReadMode::Full);
    assert_eq!(stats.users_in_scope, sim.snapshot().users.len());
    assert_eq!(stats.enabled + stats.disabled, stats.users_in_scope);
    assert!(stats.disabled > 0, "the default tenant has disabled users");
    assert!(stats.nested_group_memberships > 0, "and nested groups");
    assert!(stats.ignored_members.get("device").copied().unwrap_or(0) > 0);
    assert!(
        stats
            .ignored_members
            .get("orgContact")
            .copied()
            .unwrap_or(0)
            > 0
    );
    // One token, one page of users (50 < 999) and one of groups: the minimum.
    assert_eq!(
        stats.requests,
        BTreeMap::from([
            ("groups/delta".to_owned(), 1),
            ("token".to_owned(), 1),
            ("users/delta".to_owned(), 1)
        ])
    );
    assert_eq!(stats.requests_total, 3);
    assert!(read.state.users_delta_link.is_some() && read.state.groups_delta_link.is_some());
    assert!(read.notes.is_empty(), "{:?}", read.notes);
    // The snapshot: users in scope (all of them here) and every group.
    assert_eq!(read.snapshot.users.len(), read.state.users.len());
    assert_eq!(read.snapshot.groups, read.state.groups);
}

#[tokio::test]
async fn select_names_exactly_the_attributes_needed() {
    let sim = start(&TenantSpec::default()).await;
    let cost_center = sim.extension_property("costCenter");
    let wanted = attrs(&[
        "mail",
        "employeeId",
        "onPremisesExtensionAttributes.extensionAttribute3",
        &cost_center,
    ]);
    let source = source_with(&app(&sim, ""), &wanted);
    let mut expected = vec![
        "accountEnabled".to_owned(),
        "employeeId".to_owned(),
        cost_center.clone(),
        "id".to_owned(),
        "mail".to_owned(),
        "onPremisesExtensionAttributes".to_owned(),
        "userPrincipalName".to_owned(),
    ];
    expected.sort();
    assert_eq!(source.select(), expected.as_slice());
    // The request carries exactly that $select: a fault matching the exact query fires.
    let query = format!("/v1.0/users/delta?$select={}", expected.join(","));
    sim.kit()
        .inject(FaultRule::once(FaultKind::Delay { millis: 1 }).on_path(query));
    let someone = sim.user_ids()[0].clone();
    sim.update_user(
        &someone,
        json!({"employeeId": "E-1", &cost_center: "CC-7",
               "onPremisesExtensionAttributes": {"extensionAttribute3": "ext-3"}}),
    )
    .expect("user exists");
    let read = source.read(None).await.expect("read");
    assert!(
        sim.kit().pending_faults().is_empty(),
        "the users request had exactly the expected $select"
    );
    let allowed: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    for user in read.state.users.values() {
        for key in user.attributes.keys() {
            let top = key.split('.').next().unwrap_or(key);
            assert!(allowed.contains(top), "unexpected attribute {key}");
        }
    }
    let user = &read.state.users[&someone];
    assert_eq!(user.attr("employeeId"), Some("E-1"));
    assert_eq!(user.attr(&cost_center), Some("CC-7"));
    assert_eq!(
        user.attr("onPremisesExtensionAttributes.extensionAttribute3"),
        Some("ext-3")
    );
    // The users without the extension simply do not have it.
    assert!(
        read.state
            .users
            .values()
            .any(|u| u.attr(&cost_center).is_none())
    );
}

#[tokio::test]
async fn an_attribute_users_do_not_have_is_explained() {
    let sim = start(&TenantSpec::default()).await;
    let source = source_with(&app(&sim, ""), &attrs(&["mail", "emploeeId"]));
    let error = source.read(None).await.expect_err("no such property");
    let message = error.to_string();
    assert!(
        matches!(error, EntraError::Graph { status: 400, .. }),
        "{error:?}"
    );
    assert!(message.contains("emploeeId"), "{message}");
    assert!(message.contains("read_attributes"), "{message}");
}

/// The field behind an unknown name is named when the config has it.
#[tokio::test]
async fn an_unknown_attribute_names_the_field_that_asks_for_it() {
    let sim = start(&TenantSpec::default()).await;
    let app = app(&sim, "read_attributes = [\"emploeeId\"]");
    let source = source_with(&app, &app.source_attributes());
    let error = source.read(None).await.expect_err("no such property");
    let message = error.to_string();
    assert!(
        message.contains("'emploeeId' is asked for by `read_attributes` of app 'test'"),
        "{message}"
    );
    assert!(message.contains("spelling"), "{message}");
}

/// Graph refuses a users delta `$select` of a property change tracking does not support
/// (delta-query-overview, "Limitations"); idsync reads users by delta, so the error names the
/// property and the config field that asked for it, whatever the function-call form.
#[tokio::test]
async fn a_property_delta_cannot_track_names_the_attribute_and_its_field() {
    let sim = start(&TenantSpec::default()).await;
    let app = app(
        &sim,
        "read_attributes = [\"signInActivity\"]\n\n[apps.users]\n\
         custom_attributes = { born = \"birthday\" }\n\n\
         [apps.overrides.wiki.users]\nusername = { attribute = \"birthday\" }\n\n\
         [[targets]]\nname = \"wiki\"\nkind = \"jira-dc\"\n\
         base_url = \"https://wiki.example.com\"\ntoken = \"t\"\n",
    );
    let source = source_with(&app, &app.source_attributes());
    let error = source.read(None).await.expect_err("refused by Graph");
    assert!(
        matches!(error, EntraError::Graph { status: 400, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for expected in [
        "not supported for the following properties",
        "'birthday' is asked for by `overrides.wiki.users.username.attribute`, \
         `users.custom_attributes.born` of app 'test'",
        "'signInActivity' is asked for by `read_attributes` of app 'test'",
        "delta query",
        "delta-query-overview",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // Nothing is stored or half-read: the read failed before any user was taken.
    assert_eq!(sim.kit().count_matching("users/delta"), 1, "{message}");
}

#[tokio::test]
async fn short_and_empty_pages_are_followed_to_the_end() {
    let sim = start(&TenantSpec::default()).await;
    sim.set_page_cap(Some(7));
    sim.set_empty_pages(true);
    sim.set_group_delta_budget(3, 5);
    let source = source(&app(&sim, ""));
    let read = source.read(None).await.expect("read");
    assert_matches_tenant(&read, &sim);
    let ours = source.request_counts();
    let kit = sim.kit();
    assert_eq!(ours["users/delta"], kit.count("GET /v1.0/users/delta"));
    assert_eq!(ours["groups/delta"], kit.count("GET /v1.0/groups/delta"));
    // 50 users in pages of at most 7, each after an empty page.
    assert!(ours["users/delta"] >= 16, "{ours:?}");
}

// ----- sign-in and permission errors -----

async fn sign_in_error(app: &AppConfig) -> (u32, String) {
    match source(app).read(None).await {
        Err(EntraError::SignIn { code, message, .. }) => (code, message),
        other => panic!("expected a sign-in error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_aadsts_error_names_cause_and_fix() {
    let sim = start(&TenantSpec::default()).await;
    let base = app(&sim, "");

    let mut wrong_secret = base.clone();
    wrong_secret.client_secret = idsync_config::Secret::new("6f9a1c7e-secret-id-not-value");
    let (code, message) = sign_in_error(&wrong_secret).await;
    assert_eq!(code, 7000215);
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert!(
        message.contains("secret's ID was pasted instead of its Value"),
        "{message}"
    );

    sim.set_secret_expired(true);
    let (code, message) = sign_in_error(&base).await;
    assert_eq!(code, 7000222);
    assert!(
        message.contains("expired") && message.contains("New client secret"),
        "{message}"
    );
    sim.set_secret_expired(false);

    let mut wrong_app = base.clone();
    wrong_app.client_id = "0f0f0f0f-1111-2222-3333-444444444444".into();
    let (code, message) = sign_in_error(&wrong_app).await;
    assert_eq!(code, 700016);
    assert!(message.contains("Application (client) ID"), "{message}");

    let mut wrong_tenant = base.clone();
    wrong_tenant.tenant_id = "0a0a0a0a-1111-2222-3333-444444444444".into();
    let (code, message) = sign_in_error(&wrong_tenant).await;
    assert_eq!(code, 90002);
    assert!(message.contains("Directory (tenant) ID"), "{message}");

    let mut malformed_tenant = base.clone();
    malformed_tenant.tenant_id = "contoso".into();
    let (code, message) = sign_in_error(&malformed_tenant).await;
    assert_eq!(code, 900023);
    assert!(message.contains("neither a GUID nor a domain"), "{message}");

    let mut bad_scope = base.clone();
    bad_scope.graph_url = url::Url::parse("https://graph.example.invalid").expect("url");
    let (code, message) = sign_in_error(&bad_scope).await;
    assert_eq!(code, 70011);
    assert!(message.contains("graph_url"), "{message}");

    let mut no_secret = base.clone();
    no_secret.client_secret = idsync_config::Secret::new("");
    let (code, message) = sign_in_error(&no_secret).await;
    assert_eq!(code, 7000218);
    assert!(message.contains("client_secret"), "{message}");

    // Nothing of the secret leaks into the messages.
    let (_, message) = sign_in_error(&wrong_secret).await;
    assert!(!message.contains("6f9a1c7e-secret-id-not-value"));
}

#[tokio::test]
async fn a_missing_permission_names_it_and_admin_consent() {
    let sim = start(&TenantSpec::default()).await;
    sim.deny_permission(true);
    let error = source(&app(&sim, "")).read(None).await.expect_err("denied");
    let EntraError::PermissionDenied {
        permission,
        message,
    } = &error
    else {
        panic!("expected PermissionDenied, got {error:?}");
    };
    assert!(
        ["User.Read.All", "GroupMember.Read.All"].contains(permission),
        "{permission}"
    );
    assert!(message.contains("Directory.Read.All"), "{message}");
    assert!(message.contains("Grant admin consent"), "{message}");

    let error = source(&app(
        &sim,
        "[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"9e9e9e9e-1111-2222-3333-444444444444\"",
    ))
    .read(None)
    .await
    .expect_err("denied");
    assert!(
        matches!(error, EntraError::PermissionDenied { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn each_missing_permission_is_named_alone_with_where_to_grant_it() {
    let sim = start(&TenantSpec::default()).await;
    let app_id = "7c7c7c7c-1111-2222-3333-444444444444";
    sim.add_service_principal("Atlassian", Some(app_id))
        .expect("enterprise app");
    let assigned = sim.user_ids()[0].clone();
    sim.assign_app(app_id, &assigned).expect("assigned");
    let scoped = format!("[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"{app_id}\"");
    for (withheld, doing) in [
        ("User.Read.All", "reading users"),
        ("GroupMember.Read.All", "reading groups"),
        ("Application.Read.All", "assignments"),
    ] {
        sim.set_permissions(graph_sim::DEFAULT_PERMISSIONS);
        sim.withhold_permission(withheld);
        // Each source signs in afresh: its token carries the permissions consented now.
        let error = source(&app(&sim, &scoped))
            .read(None)
            .await
            .expect_err("a permission is missing");
        let EntraError::PermissionDenied {
            permission,
            message,
        } = &error
        else {
            panic!("{withheld}: expected PermissionDenied, got {error:?}");
        };
        assert_eq!(*permission, withheld);
        for part in [
            doing,
            withheld,
            "403 Authorization_RequestDenied",
            "Entra admin center → App registrations → the app → API permissions → Add a permission → Microsoft Graph → Application permissions",
            "Grant admin consent",
        ] {
            assert!(message.contains(part), "{withheld}: {part:?} in {message}");
        }
        assert_eq!(error.kind(), "permission_denied");
    }
    // Application.Read.All is only needed for the enterprise-app scope.
    sim.set_permissions(graph_sim::DEFAULT_PERMISSIONS);
    sim.withhold_permission("Application.Read.All");
    source(&app(&sim, ""))
        .read(None)
        .await
        .expect("directory scope reads without Application.Read.All");
    // Group.Read.All stands in for GroupMember.Read.All.
    sim.set_permissions(&["User.Read.All", "Group.Read.All", "Member.Read.Hidden"]);
    source(&app(&sim, ""))
        .read(None)
        .await
        .expect("Group.Read.All reads groups");
}

/// A Microsoft 365 group with hidden membership and two members, and a public group with two
/// others; both are the app's scope.
struct HiddenTenant {
    hidden: String,
    hidden_members: Vec<String>,
    public_members: Vec<String>,
    scoped: String,
}

fn hidden_tenant(sim: &GraphSim) -> HiddenTenant {
    let users = sim.user_ids();
    let hidden = sim
        .create_group_with(json!({
            "displayName": "Hidden class", "mailNickname": "hiddenclass",
            "groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false,
            "visibility": "HiddenMembership"
        }))
        .expect("hidden group");
    let public = sim.create_group("Open team");
    let hidden_members = vec![users[0].clone(), users[1].clone()];
    let public_members = vec![users[2].clone(), users[3].clone()];
    for u in &hidden_members {
        sim.add_member(&hidden, u).expect("member");
    }
    for u in &public_members {
        sim.add_member(&public, u).expect("member");
    }
    HiddenTenant {
        hidden,
        hidden_members,
        public_members,
        scoped: "[apps.scope]\nkind = \"groups\"\ngroups = [\"Hidden class\", \"Open team\"]"
            .to_owned(),
    }
}

fn hidden_note(read: &SourceRead) -> Option<&String> {
    read.notes
        .iter()
        .find(|n| n.contains("hidden membership") && n.contains("Member.Read.Hidden"))
}

#[tokio::test]
async fn hidden_members_are_read_with_member_read_hidden() {
    let sim = start(&TenantSpec::default()).await;
    let t = hidden_tenant(&sim);
    // A second hidden group with no members: with the permission, its emptiness is believed
    // because the other hidden group shows members.
    sim.create_group_with(json!({
        "displayName": "Empty hidden", "groupTypes": ["Unified"], "visibility": "HiddenMembership"
    }))
    .expect("group");
    let read = source(&app(&sim, &t.scoped))
        .read(None)
        .await
        .expect("read");
    let members = &read.state.groups[&t.hidden].user_members;
    assert_eq!(members.iter().cloned().collect::<Vec<_>>(), {
        let mut m = t.hidden_members.clone();
        m.sort();
        m
    });
    for u in t.hidden_members.iter().chain(&t.public_members) {
        assert!(read.snapshot.users.contains_key(u), "{u} in scope");
    }
    assert!(read.snapshot.membership_unknown.is_empty());
    assert!(read.snapshot.maybe_in_scope.is_empty());
    assert_eq!(read.stats.hidden_membership_unknown, 0);
    assert!(hidden_note(&read).is_none(), "{:?}", read.notes);
    assert!(read.state.groups_delta_link.is_some());
    assert_matches_tenant(&read, &sim);
}

#[tokio::test]
async fn hidden_members_that_cannot_be_read_are_unknown_never_gone() {
    let sim = start(&TenantSpec::default()).await;
    let t = hidden_tenant(&sim);
    let app = app(&sim, &t.scoped);
    let first = source(&app)
        .read(None)
        .await
        .expect("read with the permission");
    assert_eq!(first.state.groups[&t.hidden].user_members.len(), 2);

    // The permission is taken away. A delta round shows nothing of the hidden group (Graph
    // reports none of its membership changes), so what was read stays.
    sim.withhold_permission("Member.Read.Hidden");
    let outsider = sim.user_ids()[10].clone();
    sim.add_member(&t.hidden, &outsider).expect("joins unseen");
    let second = source(&app)
        .read(Some(first.state.clone()))
        .await
        .expect("delta read");
    assert_eq!(second.stats.groups_read, ReadKind::Delta);
    assert_eq!(
        second.state.groups[&t.hidden].user_members,
        first.state.groups[&t.hidden].user_members
    );

    // A full read of groups (the delta token expired) cannot see the hidden members: the group
    // keeps the members last read, is unknown, and whoever is outside the scope may be in it.
    sim.expire_delta_tokens();
    let third = source(&app)
        .read(Some(second.state.clone()))
        .await
        .expect("full read");
    assert_eq!(third.stats.groups_read, ReadKind::Full);
    assert_eq!(
        third.state.groups[&t.hidden].user_members, first.state.groups[&t.hidden].user_members,
        "kept, not emptied"
    );
    assert_eq!(
        third.snapshot.membership_unknown,
        BTreeSet::from([t.hidden.clone()])
    );
    assert_eq!(third.stats.hidden_membership_unknown, 1);
    for u in t.hidden_members.iter().chain(&t.public_members) {
        assert!(third.snapshot.users.contains_key(u), "{u} still in scope");
    }
    assert!(third.snapshot.maybe_in_scope.contains(&outsider));
    assert!(
        !third
            .snapshot
            .maybe_in_scope
            .iter()
            .any(|u| third.snapshot.users.contains_key(u))
    );
    let note = hidden_note(&third).expect("a note names the group and the permission");
    for part in [
        "\"Hidden class\"",
        t.hidden.as_str(),
        "Application permissions → Member.Read.Hidden",
        "Grant admin consent",
    ] {
        assert!(note.contains(part), "{part:?} in {note}");
    }
    // Groups are read in full again until it is resolved.
    assert!(third.state.groups_delta_link.is_none());
    let fourth = source(&app)
        .read(Some(third.state.clone()))
        .await
        .expect("read");
    assert_eq!(fourth.stats.groups_read, ReadKind::Full);
    assert_eq!(fourth.stats.users_read, ReadKind::Delta);
    assert_eq!(
        fourth.state.groups[&t.hidden].user_members,
        first.state.groups[&t.hidden].user_members
    );
    assert!(hidden_note(&fourth).is_some());

    // A first read without the permission knows no member: still unknown, not empty.
    let fresh = source(&app).read(None).await.expect("read");
    assert!(fresh.state.groups[&t.hidden].user_members.is_empty());
    assert_eq!(
        fresh.snapshot.membership_unknown,
        BTreeSet::from([t.hidden.clone()])
    );
    assert!(fresh.snapshot.maybe_in_scope.contains(&t.hidden_members[0]));

    // Granted: the next read sees the members as they are now, and the note is gone.
    sim.grant_permission("Member.Read.Hidden");
    let fifth = source(&app)
        .read(Some(fourth.state.clone()))
        .await
        .expect("read");
    assert!(
        fifth.state.groups[&t.hidden]
            .user_members
            .contains(&outsider)
    );
    assert!(fifth.snapshot.membership_unknown.is_empty());
    assert!(fifth.snapshot.maybe_in_scope.is_empty());
    assert!(hidden_note(&fifth).is_none(), "{:?}", fifth.notes);
    assert!(fifth.state.groups_delta_link.is_some());
    assert_matches_tenant(&fifth, &sim);
}

#[tokio::test]
async fn a_hidden_group_outside_the_scope_holds_back_no_one() {
    let sim = start(&TenantSpec::default()).await;
    let t = hidden_tenant(&sim);
    sim.withhold_permission("Member.Read.Hidden");
    let only_public = "[apps.scope]\nkind = \"groups\"\ngroups = [\"Open team\"]";
    let read = source(&app(&sim, only_public))
        .read(None)
        .await
        .expect("read");
    // Still reported (a mapping may use it), but the scope does not go through it.
    assert_eq!(
        read.snapshot.membership_unknown,
        BTreeSet::from([t.hidden.clone()])
    );
    assert!(read.snapshot.maybe_in_scope.is_empty());
    let read = source(&app(&sim, "")).read(None).await.expect("read");
    assert!(read.snapshot.maybe_in_scope.is_empty(), "directory scope");
}

#[tokio::test]
async fn one_token_serves_many_tasks_and_a_revoked_one_is_replaced() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    // Five reads at once all need a token: one request is made, the others wait for it.
    let (a, b, c, d, e) = tokio::join!(
        source.read(None),
        source.read(None),
        source.read(None),
        source.read(None),
        source.read(None)
    );
    assert!([a, b, c, d, e].iter().all(Result::is_ok));
    assert_eq!(source.request_counts()["token"], 1, "single flight");
    sim.revoke_tokens();
    source.read(None).await.expect("read with a new token");
    assert_eq!(source.request_counts()["token"], 2);
}

#[tokio::test]
async fn a_token_is_renewed_shortly_before_it_expires() {
    let sim = start(&TenantSpec::default()).await;
    // A 2 s token is renewed after half its life; the first one is reused until then.
    sim.set_token_lifetime(std::time::Duration::from_secs(2));
    let source = source(&app(&sim, ""));
    source.read(None).await.expect("first read");
    source.read(None).await.expect("second read, same token");
    assert_eq!(source.request_counts()["token"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    source.read(None).await.expect("third read, new token");
    assert_eq!(source.request_counts()["token"], 2);
    assert_eq!(sim.kit().count_matching("/oauth2/v2.0/token"), 2);
}

// ----- scopes and nesting -----

struct Nest {
    a: String,
    users: Vec<String>,
}

/// Groups A ⊃ B ⊃ C ⊃ A (a cycle), one new user in each, plus a device, a contact and a service
/// principal in A.
fn nest(sim: &GraphSim) -> Nest {
    let a = sim.create_group("Nest A");
    let b = sim.create_group("Nest B");
    let c = sim.create_group("Nest C");
    let mut users = Vec::new();
    for (group, upn) in [
        (&a, "na@contoso.com"),
        (&b, "nb@contoso.com"),
        (&c, "nc@contoso.com"),
    ] {
        let u = sim.add_user(new_user(upn)).expect("user");
        sim.add_member(group, &u).expect("member");
        users.push(u);
    }
    sim.add_member(&a, &b).expect("nest");
    sim.add_member(&b, &c).expect("nest");
    sim.add_member(&c, &a).expect("cycle");
    let device = sim.add_device("laptop-1").expect("device");
    let contact = sim.add_contact("Ext", "ext@example.com").expect("contact");
    let sp = sim
        .add_service_principal("Robot", None)
        .expect("service principal");
    for m in [&device, &contact, &sp] {
        sim.add_member(&a, m).expect("member");
    }
    Nest { a, users }
}

#[tokio::test]
async fn group_scope_expands_nested_groups_through_a_cycle() {
    let sim = start(&TenantSpec::default()).await;
    let nest = nest(&sim);
    let scoped = "[apps.scope]\nkind = \"groups\"\ngroups = [\"Nest A\"]";
    let read = source(&app(&sim, scoped)).read(None).await.expect("read");
    let in_scope: BTreeSet<&String> = read.snapshot.users.keys().collect();
    assert_eq!(in_scope, nest.users.iter().collect());
    assert_eq!(read.stats.users_in_scope, 3);
    assert_eq!(read.stats.nested_groups_expanded, 2);
    assert_eq!(
        read.stats.ignored_members.get("device"),
        Some(&(1 + device_count(&sim)))
    );
    assert!(read.stats.ignored_members.get("servicePrincipal").copied() >= Some(1));
    assert_matches_tenant(&read, &sim);

    let flat = format!("nested_groups = false\n{scoped}");
    let read = source(&app(&sim, &flat)).read(None).await.expect("read");
    assert_eq!(
        read.snapshot.users.keys().collect::<Vec<_>>(),
        vec![&nest.users[0]]
    );
    assert_eq!(read.stats.nested_groups_expanded, 0);

    // By object id, too.
    let by_id = format!("[apps.scope]\nkind = \"groups\"\ngroups = [\"{}\"]", nest.a);
    let read = source(&app(&sim, &by_id)).read(None).await.expect("read");
    assert_eq!(read.stats.users_in_scope, 3);
}

/// Devices the generated tenant already put in groups (memberships).
fn device_count(sim: &GraphSim) -> u64 {
    let truth = sim.snapshot();
    truth
        .groups
        .values()
        .map(|g| {
            g.members
                .iter()
                .filter(|m| truth.devices.contains_key(*m))
                .count() as u64
        })
        .sum::<u64>()
        - 1
}

#[tokio::test]
async fn unknown_and_ambiguous_group_names_list_the_candidates() {
    let sim = start(&TenantSpec::default()).await;
    let first = sim.create_group("Jira Users");
    let second = sim.create_group("Jira Users");
    sim.create_group("Jira Administrators");

    // Each problem names its entry of scope.groups; the one found is no problem.
    let ambiguous =
        "[apps.scope]\nkind = \"groups\"\ngroups = [\"Jira Administrators\", \"jira users\"]";
    let error = source(&app(&sim, ambiguous))
        .read(None)
        .await
        .expect_err("ambiguous");
    let problems = scope_problems(&error);
    assert_eq!(problems.len(), 1, "{error:?}");
    let (field, message) = &problems[0];
    assert_eq!(field, "scope.groups[1]");
    assert!(message.contains("2 groups are named"), "{message}");
    assert!(
        message.contains(&first) && message.contains(&second),
        "{message}"
    );
    assert!(message.contains("object id"), "{message}");
    assert_eq!(error.to_string(), format!("{field}: {message}"));

    let unknown = "[apps.scope]\nkind = \"groups\"\ngroups = [\"Jira\", \"0b0b0b0b-1111-2222-3333-444444444444\"]";
    let error = source(&app(&sim, unknown))
        .read(None)
        .await
        .expect_err("unknown");
    let problems = scope_problems(&error);
    assert_eq!(
        problems.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["scope.groups[0]", "scope.groups[1]"],
        "{error:?}"
    );
    let message = &problems[0].1;
    assert!(message.contains("no group is named \"Jira\""), "{message}");
    assert!(message.contains("\"Jira Administrators\""), "{message}");
    let message = &problems[1].1;
    assert!(message.contains("no group has the object id"), "{message}");
    assert!(
        !error.to_string().contains("app '"),
        "callers name the app: {error}"
    );
}

/// (field, message) of each problem of a scope error.
fn scope_problems(error: &EntraError) -> Vec<(String, String)> {
    match error {
        EntraError::Scope { app, problems } => {
            assert_eq!(app, "test");
            problems
                .iter()
                .map(|p| (p.field.clone(), p.message.clone()))
                .collect()
        }
        other => panic!("not a scope error: {other:?}"),
    }
}

#[tokio::test]
async fn enterprise_app_scope_takes_assigned_users_and_groups() {
    let sim = start(&TenantSpec::default()).await;
    let nest = nest(&sim);
    let app_id = "5a5a5a5a-1111-2222-3333-444444444444";
    sim.add_service_principal("Atlassian", Some(app_id))
        .expect("enterprise app");
    let direct = sim.add_user(new_user("direct@contoso.com")).expect("user");
    let robot = sim.add_service_principal("Robot 2", None).expect("sp");
    sim.assign_app(app_id, &direct).expect("assign user");
    sim.assign_app(app_id, &nest.users[0]).expect("assign user");
    sim.assign_app(app_id, &nest.a).expect("assign group");
    sim.assign_app(app_id, &robot).expect("assign sp");

    // As Entra assigns: users assigned directly, and the direct members of assigned groups;
    // not the members of Nest B and Nest C, nested in the assigned Nest A.
    let scoped = format!("[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"{app_id}\"");
    let source = source(&app(&sim, &scoped));
    let read = source.read(None).await.expect("read");
    let expected: BTreeSet<String> = [direct.clone(), nest.users[0].clone()].into();
    assert_eq!(
        read.snapshot.users.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(sim.snapshot().users_with_app_access(app_id), expected);
    assert_eq!(read.stats.ignored_app_assignments, 1);
    assert_eq!(read.stats.nested_groups_expanded, 0);
    assert_eq!(
        read.stats.requests["servicePrincipals/appRoleAssignedTo"], 1,
        "assignments: one page of up to 999"
    );

    // Further than Entra, when asked: the nested groups' members too, through the cycle.
    let further = format!("{scoped}\nexpand_nested_groups = true");
    let read = self::source(&app(&sim, &further))
        .read(None)
        .await
        .expect("read");
    let mut expected: BTreeSet<String> = nest.users.iter().cloned().collect();
    expected.insert(direct.clone());
    assert_eq!(
        read.snapshot.users.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(read.stats.nested_groups_expanded, 2);

    let unknown = "[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"6b6b6b6b-1111-2222-3333-444444444444\"";
    let error = self::source(&app(&sim, unknown))
        .read(None)
        .await
        .expect_err("no such app");
    let problems = scope_problems(&error);
    assert_eq!(problems.len(), 1, "{error:?}");
    assert_eq!(problems[0].0, "scope.app_id");
    assert!(
        problems[0].1.contains("Enterprise applications")
            && problems[0]
                .1
                .contains("6b6b6b6b-1111-2222-3333-444444444444"),
        "{error}"
    );
}

// ----- delta -----

#[tokio::test]
async fn a_delta_read_converges_to_what_a_full_read_sees() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    let ids = sim.user_ids();
    let groups = sim.group_ids();

    let added = sim
        .add_user(new_user("new.person@contoso.com"))
        .expect("user");
    sim.update_user(&ids[0], json!({"userPrincipalName": "renamed@contoso.com"}))
        .expect("rename");
    sim.disable_user(&ids[1]).expect("disable");
    sim.soft_delete_user(&ids[2]).expect("soft delete");
    sim.hard_delete_user(&ids[3]).expect("hard delete");
    sim.update_user(&ids[4], json!({"mail": null}))
        .expect("clear mail");
    sim.add_member(&groups[0], &added).expect("member");
    let gone = first.state.groups[&groups[1]]
        .user_members
        .iter()
        .next()
        .cloned()
        .expect("group 1 has a user");
    sim.remove_member(&groups[1], &gone).expect("remove");
    sim.rename_group(&groups[2], "Renamed Group")
        .expect("rename group");
    let fresh = sim.create_group("Fresh Group");
    sim.add_member(&fresh, &ids[5]).expect("member");
    sim.delete_group(&groups[3]).expect("delete group");

    let before = source.request_counts();
    let delta = source
        .read(Some(first.state.clone()))
        .await
        .expect("delta read");
    assert_eq!(delta.stats.mode, idsync_model::run::ReadMode::Delta);
    assert_eq!(delta.stats.users_read, ReadKind::Delta);
    assert!(delta.notes.is_empty(), "{:?}", delta.notes);
    assert_eq!(delta.stats.requests.get("token"), None, "token reused");
    assert_eq!(
        source.request_counts()["users/delta"] - before["users/delta"],
        1
    );

    let state = &delta.state;
    assert_eq!(
        state.users[&ids[0]].attr("userPrincipalName"),
        Some("renamed@contoso.com")
    );
    assert!(!state.users[&ids[1]].enabled);
    assert!(
        !state.users.contains_key(&ids[2]),
        "soft-deleted (@removed changed)"
    );
    assert!(
        !state.users.contains_key(&ids[3]),
        "hard-deleted (@removed deleted)"
    );
    assert!(!delta.snapshot.users.contains_key(&ids[2]));
    assert_eq!(state.users[&ids[4]].attr("mail"), None, "cleared attribute");
    assert!(state.groups[&groups[0]].user_members.contains(&added));
    assert!(!state.groups[&groups[1]].user_members.contains(&gone));
    assert_eq!(state.groups[&groups[2]].display_name, "Renamed Group");
    assert!(state.groups[&fresh].user_members.contains(&ids[5]));
    assert!(!state.groups.contains_key(&groups[3]));

    let full = self::source(&app(&sim, ""))
        .read(None)
        .await
        .expect("full read");
    assert_eq!(content(state), content(&full.state), "delta == full");
    assert_matches_tenant(&delta, &sim);

    // Nothing changed: a delta round of one page each, same content.
    let again = source
        .read(Some(delta.state.clone()))
        .await
        .expect("empty delta");
    assert_eq!(content(&again.state), content(&delta.state));
    assert_eq!(again.stats.requests_total, 2);
}

#[tokio::test]
async fn a_group_split_across_pages_is_merged_in_full_and_delta_rounds() {
    let sim = start(&TenantSpec::default()).await;
    let big = sim.create_group("Big Group");
    let ids = sim.user_ids();
    for id in ids.iter().take(20) {
        sim.add_member(&big, id).expect("member");
    }
    sim.set_group_delta_budget(2, 6);
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    assert_eq!(first.state.groups[&big].user_members.len(), 20);
    assert_matches_tenant(&first, &sim);
    assert!(
        source.request_counts()["groups/delta"] > 4,
        "the group spanned pages"
    );

    for id in ids.iter().skip(20).take(15) {
        sim.add_member(&big, id).expect("member");
    }
    for id in ids.iter().take(5) {
        sim.remove_member(&big, id).expect("remove");
    }
    let delta = source.read(Some(first.state)).await.expect("delta read");
    assert_eq!(delta.state.groups[&big].user_members.len(), 30);
    assert_matches_tenant(&delta, &sim);
}

#[tokio::test]
async fn replayed_changes_are_idempotent() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    let ids = sim.user_ids();
    sim.disable_user(&ids[7]).expect("disable");
    sim.replay_next_delta(10);
    let delta = source
        .read(Some(first.state))
        .await
        .expect("delta with replays");
    assert!(!delta.state.users[&ids[7]].enabled);
    let full = self::source(&app(&sim, "")).read(None).await.expect("full");
    assert_eq!(content(&delta.state), content(&full.state));
    // And the same round applied twice changes nothing.
    let again = source.read(Some(delta.state.clone())).await.expect("again");
    assert_eq!(content(&again.state), content(&delta.state));
}

#[tokio::test]
async fn an_expired_delta_token_falls_back_to_a_full_read() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    let added = sim
        .add_user(new_user("after.expiry@contoso.com"))
        .expect("user");
    sim.expire_delta_tokens();
    let read = source.read(Some(first.state)).await.expect("fallback");
    assert_eq!(read.stats.mode, idsync_model::run::ReadMode::Full);
    assert_eq!(read.stats.users_read, ReadKind::Full);
    assert!(read.state.users.contains_key(&added));
    assert_eq!(read.notes.len(), 2, "{:?}", read.notes);
    assert!(
        read.notes
            .iter()
            .any(|n| n.starts_with("users: the delta token was refused (syncStateNotFound")),
        "{:?}",
        read.notes
    );
    assert!(read.notes.iter().all(|n| n.contains("did a full read")));
    assert_matches_tenant(&read, &sim);
}

#[tokio::test]
async fn a_410_resync_falls_back_to_a_full_read() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    sim.disable_user(&sim.user_ids()[0]).expect("disable");
    sim.force_resync();
    let read = source.read(Some(first.state)).await.expect("fallback");
    assert_eq!(read.stats.mode, idsync_model::run::ReadMode::Full);
    assert!(
        read.notes.iter().any(|n| n.contains("410 Gone")),
        "{:?}",
        read.notes
    );
    assert_matches_tenant(&read, &sim);
    // The next read is a delta read again.
    let next = source.read(Some(read.state)).await.expect("delta");
    assert_eq!(next.stats.mode, idsync_model::run::ReadMode::Delta);
}

/// Graph's page tokens expire when the next page is asked for too late (400
/// `Directory_ExpiredPageToken`): the round starts over, with a note, in a first read and in a
/// delta read alike.
#[tokio::test]
async fn a_page_token_that_expires_once_starts_the_round_over() {
    let sim = start(&TenantSpec::sized(300, 6)).await;
    sim.set_page_cap(Some(40));
    sim.set_page_token_max_age(Some(std::time::Duration::from_millis(300)));
    // The third page of users comes too late once.
    sim.kit().inject(
        FaultRule::once(FaultKind::Delay { millis: 600 })
            .on_path("users/delta?$skiptoken")
            .after(1),
    );
    let source = source(&app(&sim, ""));
    let read = source
        .read(None)
        .await
        .expect("completes after one restart");
    assert_matches_tenant(&read, &sim);
    assert_eq!(read.notes.len(), 1, "{:?}", read.notes);
    assert!(
        read.notes[0].starts_with("users: a page token expired")
            && read.notes[0].contains("started over 1 time"),
        "{:?}",
        read.notes
    );

    // A delta round of several pages, with one of its page tokens used too late.
    for i in 0..90 {
        sim.add_user(new_user(&format!("late.{i}@contoso.com")))
            .expect("user");
    }
    sim.kit().inject(
        FaultRule::once(FaultKind::Delay { millis: 600 }).on_path("users/delta?$skiptoken"),
    );
    let delta = source.read(Some(read.state)).await.expect("delta read");
    assert_eq!(delta.stats.users_read, ReadKind::Delta);
    assert_matches_tenant(&delta, &sim);
    assert!(
        delta
            .notes
            .iter()
            .any(|n| n.contains("started over 1 time")),
        "{:?}",
        delta.notes
    );
}

#[tokio::test]
async fn a_page_token_that_keeps_expiring_fails_the_read_clearly() {
    let sim = start(&TenantSpec::sized(200, 3)).await;
    sim.set_page_cap(Some(50));
    sim.set_page_token_max_age(Some(std::time::Duration::from_millis(300)));
    // Every next page of users comes too late.
    sim.kit().inject(
        FaultRule::once(FaultKind::Delay { millis: 600 })
            .on_path("users/delta?$skiptoken")
            .times(0),
    );
    let error = source(&app(&sim, ""))
        .read(None)
        .await
        .expect_err("gives up");
    let EntraError::PageTokenExpired { restarts, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*restarts, idsync_entra::PAGE_TOKEN_RESTARTS);
    assert_eq!(error.kind(), "page_token_expired");
    let message = error.to_string();
    assert!(message.starts_with("reading users: "), "{message}");
    assert!(message.contains("Directory_ExpiredPageToken"), "{message}");
    assert!(
        message.contains(&format!(
            "started the round over {} times",
            idsync_entra::PAGE_TOKEN_RESTARTS
        )),
        "{message}"
    );
    assert!(message.contains("sync again later"), "{message}");
    // The first page and one late page per try: bounded, no endless loop.
    assert_eq!(
        sim.kit().count_matching("users/delta"),
        2 * (idsync_entra::PAGE_TOKEN_RESTARTS as u64 + 1)
    );
}

#[tokio::test]
async fn changed_attributes_mean_a_full_read() {
    let sim = start(&TenantSpec::default()).await;
    let first = source(&app(&sim, "")).read(None).await.expect("full read");
    let wider = source_with(&app(&sim, ""), &attrs(&["mail", "employeeId"]));
    let read = wider.read(Some(first.state)).await.expect("read");
    assert_eq!(read.stats.mode, idsync_model::run::ReadMode::Full);
    assert!(
        read.notes[0].contains("attributes to read changed"),
        "{:?}",
        read.notes
    );
}

// ----- throttling and faults -----

#[tokio::test]
async fn throttling_honours_retry_after_and_the_read_completes() {
    let sim = start(&TenantSpec::default()).await;
    sim.kit()
        .inject(status_fault(429, Some(1)).on_path("/users/delta").times(2));
    sim.kit()
        .inject(status_fault(503, Some(1)).on_path("/groups/delta"));
    sim.kit()
        .inject(status_fault(504, None).on_path("/oauth2/v2.0/token"));
    let source = source(&app(&sim, ""));
    let read = source.read(None).await.expect("read after throttling");
    assert_matches_tenant(&read, &sim);
    let counts = source.request_counts();
    assert_eq!(counts["users/delta"], 3, "two 429s, then the page");
    assert_eq!(counts["groups/delta"], 2, "one 503, then the page");
    assert_eq!(counts["token"], 2, "one 504, then the token");
    assert_eq!(
        counts["users/delta"],
        sim.kit().count("GET /v1.0/users/delta")
    );
}

#[tokio::test]
async fn a_dropped_connection_never_yields_a_snapshot() {
    let sim = start(&TenantSpec::default()).await;
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    sim.kit().inject(
        FaultRule::once(FaultKind::Drop)
            .on_path("/groups/delta")
            .times(0),
    );
    let error = source.read(None).await.expect_err("cut short");
    assert!(matches!(error, EntraError::Http(_)), "{error:?}");
    let error = source.read(Some(first.state)).await.expect_err("cut short");
    assert!(matches!(error, EntraError::Http(_)), "{error:?}");
    sim.kit().clear_faults();
    // A drop that heals within the retries is invisible.
    sim.kit().inject(
        FaultRule::once(FaultKind::Drop)
            .on_path("/users/delta")
            .times(2),
    );
    source.read(None).await.expect("healed");
}

#[tokio::test]
async fn server_errors_past_the_retries_never_yield_a_snapshot() {
    let sim = start(&TenantSpec::default()).await;
    sim.set_page_cap(Some(10));
    // The third users page fails for good.
    sim.kit().inject(
        status_fault(500, None)
            .on_path("/users/delta")
            .after(2)
            .times(0),
    );
    let source = source(&app(&sim, ""));
    let error = source.read(None).await.expect_err("5xx after retries");
    match &error {
        EntraError::Http(idsync_http::HttpError::Exhausted {
            status, attempts, ..
        }) => {
            assert_eq!(status.as_u16(), 500);
            assert_eq!(*attempts, Retry::fast().max_attempts);
        }
        other => panic!("expected exhausted retries, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_json_never_yields_a_snapshot() {
    let sim = start(&TenantSpec::default()).await;
    sim.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 200,
            retry_after: None,
            body: Some(json!({"not": "a page"})),
        })
        .on_path("/users/delta"),
    );
    let error = source(&app(&sim, ""))
        .read(None)
        .await
        .expect_err("malformed");
    assert!(matches!(error, EntraError::Malformed { .. }), "{error:?}");
    assert!(
        error.to_string().contains("not a Graph collection page"),
        "{error}"
    );
}

// ----- links to other hosts -----

/// A listener on loopback that counts the connections made to it: the host a forged link
/// points at, which must never see a request (and so never the token).
async fn bystander() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("bound").port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(connection);
        }
    });
    (port, hits)
}

/// A link that starts with `graph_url` (so a string-prefix check lets it through) but whose
/// host is the bystander: `http://127.0.0.1:<graph port>@127.0.0.1:<bystander port>/…` has the
/// user info `127.0.0.1:<graph port>`.
fn forged_link(sim: &RunningGraphSim, port: u16, path: &str) -> String {
    format!(
        "{}@127.0.0.1:{port}{path}",
        sim.graph_url().trim_end_matches('/')
    )
}

fn assert_refused(error: &EntraError, sim: &RunningGraphSim, port: u16) {
    assert!(matches!(error, EntraError::ForeignLink { .. }), "{error:?}");
    let message = error.to_string();
    // Names the link (host and port, without the user info) and the configured graph_url.
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}/v1.0/users/delta")),
        "{message}"
    );
    assert!(message.contains(sim.graph_url()), "{message}");
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_before_the_token_is_sent() {
    let sim = start(&TenantSpec::sized(20, 3)).await;
    let (port, hits) = bystander().await;
    let link = forged_link(&sim, port, "/v1.0/users/delta?$skiptoken=next");
    sim.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 200,
            retry_after: None,
            body: Some(json!({"value": [], "@odata.nextLink": link})),
        })
        .on_path("/users/delta"),
    );
    let error = source(&app(&sim, ""))
        .read(None)
        .await
        .expect_err("a link to another host is not followed");
    assert_refused(&error, &sim, port);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_stored_delta_link_to_another_origin_is_refused_before_the_token_is_sent() {
    let sim = start(&TenantSpec::sized(20, 3)).await;
    let source = source(&app(&sim, ""));
    let first = source.read(None).await.expect("full read");
    let (port, hits) = bystander().await;
    let mut state = first.state;
    state.users_delta_link = Some(forged_link(
        &sim,
        port,
        "/v1.0/users/delta?$deltatoken=stored",
    ));
    let error = source
        .read(Some(state))
        .await
        .expect_err("a link to another host is not followed");
    assert_refused(&error, &sim, port);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

// ----- one user, for a sign-in sync -----

#[tokio::test]
async fn one_user_by_id_or_upn_with_groups_and_scope_in_a_few_requests() {
    let sim = start(&TenantSpec::default()).await;
    let nest = nest(&sim);
    // nc is in Nest C, nested in Nest B, nested in Nest A (and the cycle back).
    let nc = nest.users[2].clone();
    let scoped = "[apps.scope]\nkind = \"groups\"\ngroups = [\"Nest A\"]";
    let source = source(&app(&sim, scoped));
    let one = source
        .read_one_user(&nc)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(one.user.id, nc);
    assert_eq!(one.user.attr("mail"), Some("nc@contoso.com"));
    assert!(one.user.enabled);
    let names: BTreeSet<&str> = one.groups.values().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["Nest A", "Nest B", "Nest C"]));
    assert!(one.scope.in_scope, "{:?}", one.scope);
    assert!(one.scope.why.contains("Nest A"), "{}", one.scope.why);
    // The token, the user and the groups through nesting: no delta round.
    assert_eq!(
        one.requests,
        BTreeMap::from([
            ("token".to_owned(), 1),
            ("users/{id}".to_owned(), 1),
            ("users/{id}/transitiveMemberOf".to_owned(), 1),
        ])
    );

    // By UPN, without nesting: direct groups only, so Nest A does not take nc.
    let flat = self::source(&app(&sim, &format!("nested_groups = false\n{scoped}")));
    let one = flat
        .read_one_user("nc@contoso.com")
        .await
        .expect("read")
        .expect("known");
    assert_eq!(one.user.id, nc);
    assert_eq!(one.groups.values().collect::<Vec<_>>(), ["Nest C"]);
    assert!(!one.scope.in_scope);
    assert!(one.requests.contains_key("users/{id}/memberOf"));

    // Unknown: nothing, not an error.
    assert!(
        source
            .read_one_user("nobody@contoso.com")
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn one_user_in_an_enterprise_app_scope_as_entra_assigns() {
    let sim = start(&TenantSpec::default()).await;
    let nest = nest(&sim);
    let app_id = "5a5a5a5a-1111-2222-3333-444444444445";
    sim.add_service_principal("Atlassian", Some(app_id))
        .expect("enterprise app");
    let direct = sim.add_user(new_user("direct@contoso.com")).expect("user");
    sim.assign_app(app_id, &direct).expect("assign user");
    sim.assign_app(app_id, &nest.a).expect("assign group");
    let scoped = format!("[apps.scope]\nkind = \"enterprise_app\"\napp_id = \"{app_id}\"");
    let source = source(&app(&sim, &scoped));
    let verdict = |id: &str| {
        let source = &source;
        let id = id.to_owned();
        async move {
            source
                .read_one_user(&id)
                .await
                .expect("read")
                .expect("known")
                .scope
        }
    };
    assert!(verdict(&direct).await.in_scope);
    // A direct member of the assigned group; not one of a group nested in it.
    let member = verdict(&nest.users[0]).await;
    assert!(member.in_scope, "{member:?}");
    assert!(member.why.contains("Nest A"), "{}", member.why);
    let nested = verdict(&nest.users[1]).await;
    assert!(!nested.in_scope, "{nested:?}");
    // The app expands nested groups for its mappings, but the scope stays Entra's: direct
    // groups are read for it besides.
    let one = source
        .read_one_user(&nest.users[1])
        .await
        .expect("read")
        .expect("known");
    assert!(one.requests.contains_key("users/{id}/memberOf"));
    assert!(one.requests.contains_key("users/{id}/transitiveMemberOf"));
    assert!(
        one.requests
            .contains_key("servicePrincipals/appRoleAssignedTo")
    );

    let further = self::source(&app(
        &sim,
        &format!("{scoped}\nexpand_nested_groups = true"),
    ));
    let one = further
        .read_one_user(&nest.users[1])
        .await
        .expect("read")
        .expect("known");
    assert!(one.scope.in_scope, "{:?}", one.scope);
}
