//! Username, email and display-name mapping with transforms and fall-backs, and custom
//! attributes (Jira user properties; a warning, once, on targets that have none).

use idsync_config::Config;
use idsync_model::{Operation, OperationKind as K, TargetKind};
use idsync_runner::RunReport;
use serde_json::{Value, json};

use crate::harness::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A custom attribute as the target holds it: a Jira user property, or a SCIM attribute
/// (enterprise extension or core) on Atlassian Cloud.
fn attribute(w: &World, kind: TargetKind, user: &str, name: &str) -> Option<String> {
    match kind {
        TargetKind::JiraDc => w
            .atl
            .user_properties(user)
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned),
        TargetKind::AtlassianCloud => {
            let u = w.user(kind, user).expect("user");
            u.attributes
                .get(ENTERPRISE)
                .and_then(|e| e.get(name))
                .or_else(|| u.attributes.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
        _ => None,
    }
}

fn has_custom_attributes(kind: TargetKind) -> bool {
    matches!(kind, TargetKind::JiraDc | TargetKind::AtlassianCloud)
}

/// Adds ada (no mail, a given name, the on-premises name, a department, a cost center and a
/// badge) and bob (a mail, none of the others) to the tenant; their ids.
fn add_ada_and_bob(tenant: &graph_sim::RunningGraphSim, cost_center: &str) -> (String, String) {
    let mut ada = new_user("Ada.Lovelace@contoso.com");
    ada.mail = None;
    ada.given_name = Some("Ada".into());
    ada.extra = serde_json::from_value(json!({
        "onPremisesSamAccountName": "ALOVELACE",
        "department": "R&D",
        cost_center: "CC-42",
        "onPremisesExtensionAttributes": {"extensionAttribute3": "badge-7"},
    }))
    .expect("properties");
    let ada = tenant.add_user(ada).expect("ada");
    let mut bob = new_user("Bob.Smith@contoso.com");
    bob.mail = Some("bob@mail.contoso.com".into());
    let bob = tenant.add_user(bob).expect("bob");
    (ada, bob)
}

/// The app mapping username (on-premises name, else the UPN, transformed), email, display name
/// (with fall-backs) and three custom attributes, written.
fn mapping_config(w: &World, tenant: &graph_sim::RunningGraphSim, cost_center: &str) -> Config {
    w.write_config(&[App::new(
        tenant,
        format!(
            r#"
[apps.users]
email = ["mail", "userPrincipalName"]
display_name = ["givenName", "displayName"]
custom_attributes = {{ organization = "{cost_center}", title = "onPremisesExtensionAttributes.extensionAttribute3", department = "department" }}

[apps.users.username]
attribute = "onPremisesSamAccountName"
fallback = ["userPrincipalName"]
strip_domain = true
lowercase = true
replace = [{{ pattern = '^(\w+)\.(\w+)$', with = "${{2}}_${{1}}" }}]
"#
        ),
    )])
}

/// Checks the custom attributes after the first run: on the target where it has them (none
/// for bob), else one warning naming them.
fn assert_first_attributes(w: &World, kind: TargetKind, report: &RunReport, name: &str) {
    let warned: Vec<_> = warnings(report, name)
        .into_iter()
        .filter(|w| w.contains("no custom attributes"))
        .collect();
    if has_custom_attributes(kind) {
        let attr = |user: &str, name: &str| attribute(w, kind, user, name);
        assert_eq!(attr("alovelace", "organization").as_deref(), Some("CC-42"));
        assert_eq!(attr("alovelace", "title").as_deref(), Some("badge-7"));
        assert_eq!(attr("alovelace", "department").as_deref(), Some("R&D"));
        for name in ["organization", "title", "department"] {
            assert_eq!(attr("smith_bob", name), None);
        }
        assert!(warned.is_empty(), "{warned:?}");
    } else {
        assert_eq!(warned.len(), 1, "warned once: {:?}", warnings(report, name));
        assert!(warned[0].contains("organization"));
    }
}

/// Checks the run after ada's department changed and cost center went and bob's department
/// came: the attribute operations and the target's values, or no operation at all.
fn assert_changed_attributes(w: &World, kind: TargetKind, report: &RunReport, name: &str) {
    if has_custom_attributes(kind) {
        let mut sets: Vec<(String, String, Option<String>)> = operations(report, name)
            .into_iter()
            .filter_map(|op| match op {
                Operation::SetAttribute {
                    user, name, value, ..
                } => Some((user.clone(), name.clone(), value.clone())),
                _ => None,
            })
            .collect();
        sets.sort();
        assert_eq!(
            sets,
            vec![
                (
                    "alovelace".into(),
                    "department".into(),
                    Some("Engineering".into())
                ),
                ("alovelace".into(), "organization".into(), None),
                (
                    "smith_bob".into(),
                    "department".into(),
                    Some("Sales".into())
                ),
            ]
        );
        let attr = |user: &str, name: &str| attribute(w, kind, user, name);
        assert_eq!(
            attr("alovelace", "department").as_deref(),
            Some("Engineering")
        );
        assert_eq!(attr("alovelace", "organization"), None);
        assert_eq!(attr("smith_bob", "department").as_deref(), Some("Sales"));
    } else {
        assert_eq!(count(report, name, K::SetAttribute), 0);
        assert!(ops_of(report, name).is_empty(), "{}", pretty(report));
    }
}

async fn attribute_mapping(kind: TargetKind) {
    let tenant = tenant().await;
    let cost_center = tenant.extension_property("costCenter");
    let (ada, bob) = add_ada_and_bob(&tenant, &cost_center);
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = mapping_config(&w, &tenant, &cost_center);
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        w.usernames(kind),
        vec!["alovelace", "smith_bob"],
        "{}",
        pretty(&report)
    );
    let a = w.user(kind, "alovelace").expect("ada");
    assert!(
        a.email.eq_ignore_ascii_case("Ada.Lovelace@contoso.com"),
        "email falls back to the UPN: {}",
        a.email
    );
    assert_eq!(a.display_name, "Ada");
    let b = w.user(kind, "smith_bob").expect("bob");
    assert_eq!(b.email, "bob@mail.contoso.com");
    assert_eq!(b.display_name, "Bob Smith", "display name falls back");

    assert_first_attributes(&w, kind, &report, name);
    w.assert_converged(&config).await;

    // A changed and a removed attribute.
    tenant
        .update_user(
            &ada,
            json!({"department": "Engineering", cost_center.clone(): null}),
        )
        .expect("updated");
    tenant
        .update_user(&bob, json!({"department": "Sales"}))
        .expect("updated");
    let report = w.sync_ok(&config, "main").await;
    assert_changed_attributes(&w, kind, &report, name);
    w.assert_converged(&config).await;

    // The username attribute appears for bob: a rename, not a second account.
    tenant
        .update_user(&bob, json!({"onPremisesSamAccountName": "BSMITH"}))
        .expect("updated");
    let report = w.sync_ok(&config, "main").await;
    if kind == TargetKind::ConfluenceDc {
        assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
        assert!(
            warnings(&report, name)
                .iter()
                .any(|w| w.contains("this product cannot rename users")),
            "{:?}",
            warnings(&report, name)
        );
        w.assert_converged(&config).await;
        return;
    }
    assert_eq!(
        ops_of(&report, name),
        vec![(K::RenameUser, "smith_bob".into(), String::new())],
        "{}",
        pretty(&report)
    );
    assert_eq!(w.usernames(kind), vec!["alovelace", "bsmith"]);
    assert_eq!(w.user(kind, "bsmith").expect("bob").key, b.key);
    w.assert_converged(&config).await;
}

crate::per_target!(attribute_mapping: jira, confluence, bitbucket, cloud);

/// Atlassian Cloud creates no account without a primary e-mail: a source user without one is
/// a warning naming the user in the plan, not a refused request at apply time; the others are
/// created and the run is done.
async fn a_user_without_email_is_a_warning(kind: TargetKind) {
    let tenant = tenant().await;
    add_user(&tenant, "ada@contoso.com");
    let mut bob = new_user("bob@contoso.com");
    bob.mail = None;
    tenant.add_user(bob).expect("bob");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(
        &tenant,
        r#"
[apps.users]
email = ["mail"]
"#,
    )]);
    let report = w.sync_ok(&config, "main").await;
    let created: Vec<String> = operations(&report, name)
        .into_iter()
        .filter_map(|op| match op {
            Operation::CreateUser { user, .. } => Some(user.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{}", pretty(&report));
    assert!(created[0].contains("ada"), "{created:?}");
    assert_eq!(w.usernames(kind), created);
    let warned: Vec<_> = warnings(&report, name)
        .into_iter()
        .filter(|w| w.contains("bob") && w.contains("no e-mail address"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", warnings(&report, name));
    w.assert_converged(&config).await;
}

crate::per_target!(a_user_without_email_is_a_warning: cloud);
