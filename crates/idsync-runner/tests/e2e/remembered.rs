//! What idsync has to remember because a product will not tell it: the e-mail address it last
//! sent to a Confluence account (Confluence's REST API reports none), that an account could not
//! be renamed (reported once, not on every run), and that an adopted account keeps its own
//! username (`users.rename_adopted = false`). Also the true reason of a rename that follows an
//! adoption by e-mail.

use graph_sim::GraphSim;
use idsync_model::{Operation, OperationKind as K, TargetKind};
use serde_json::json;

use crate::harness::*;

fn set_mail(tenant: &GraphSim, id: &str, mail: &str) {
    tenant
        .update_user(id, json!({ "mail": mail }))
        .expect("mail changed");
}

/// The e-mail addresses the operations of `report` on `target` send, by account.
fn emails_sent(report: &idsync_runner::RunReport, target: &str) -> Vec<(String, String)> {
    operations(report, target)
        .into_iter()
        .filter_map(|op| match op {
            Operation::UpdateUser { user, changes, .. } => {
                changes.email.as_ref().map(|e| (user.clone(), e.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn confluence_email_changes_reach_the_account_once() {
    let kind = TargetKind::ConfluenceDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    // An account that exists before idsync, adopted by username: its e-mail is not known.
    w.seed(kind, "bob@contoso.com", "bob.old@contoso.com");
    let bob = add_user(&tenant, "bob@contoso.com");
    let config = w.write_config(&[App::new(&tenant, "")]);

    let report = w.sync_ok(&config, "main").await;
    // The adopted account is sent the source's address once, saying why.
    let update = report
        .targets
        .iter()
        .flat_map(|t| &t.operations)
        .find(|r| r.planned.op.kind() == K::UpdateUser)
        .expect("an update for bob");
    assert!(
        update.planned.reason.contains("e-mail set once"),
        "{}",
        pretty(&report)
    );
    assert_eq!(
        w.user(kind, "bob@contoso.com").expect("bob").email,
        "bob@contoso.com"
    );
    w.assert_converged(&config).await;

    // A change at the source reaches the account, planned from what idsync knows...
    set_mail(&tenant, &ada, "ada.lovelace@contoso.com");
    let report = w.sync_ok(&config, "main").await;
    assert_eq!(
        emails_sent(&report, name),
        vec![(
            "ada@contoso.com".to_owned(),
            "ada.lovelace@contoso.com".to_owned()
        )],
        "{}",
        pretty(&report)
    );
    assert_eq!(
        w.user(kind, "ada@contoso.com").expect("ada").email,
        "ada.lovelace@contoso.com"
    );
    // ...and from a full read (which reports no e-mail at all), without an update every run.
    let report = w.sync_full_ok(&config, "main").await;
    assert!(ops_of(&report, name).is_empty(), "{}", pretty(&report));
    set_mail(&tenant, &bob, "robert@contoso.com");
    let report = w.sync_full_ok(&config, "main").await;
    assert_eq!(
        emails_sent(&report, name),
        vec![(
            "bob@contoso.com".to_owned(),
            "robert@contoso.com".to_owned()
        )],
        "{}",
        pretty(&report)
    );
    assert_eq!(
        w.user(kind, "bob@contoso.com").expect("bob").email,
        "robert@contoso.com"
    );
    w.assert_converged(&config).await;
}

#[tokio::test]
async fn confluence_says_that_adoption_by_email_cannot_find_accounts() {
    let kind = TargetKind::ConfluenceDc;
    let tenant = tenant().await;
    add_user(&tenant, "bob@contoso.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    // The same person under another username: Confluence cannot show idsync the e-mail.
    w.seed(kind, "legacy-bob", "bob@contoso.com");
    let config = w.write_config(&[App::new(&tenant, "")]);
    for dry_run in [true, false] {
        let report = w.run(&config, "main", dry_run).await;
        assert!(
            warnings(&report, name)
                .iter()
                .any(|w| w.contains("created without adoption by e-mail")
                    && w.contains("\"bob@contoso.com\"")),
            "dry run {dry_run}: {:?}",
            warnings(&report, name)
        );
    }
    // Without "email" in adopt_by nothing was promised: no such warning.
    let tenant = self::tenant().await;
    add_user(&tenant, "cyd@contoso.com");
    let w = World::new(&[kind]).await;
    let config = w.write_config(&[App::new(
        &tenant,
        "[apps.users]\nadopt_by = [\"username\"]\n",
    )]);
    let report = w.run(&config, "main", true).await;
    assert!(
        !warnings(&report, name)
            .iter()
            .any(|w| w.contains("adoption by e-mail")),
        "{:?}",
        warnings(&report, name)
    );
}

#[tokio::test]
async fn a_username_confluence_cannot_take_is_reported_once() {
    let kind = TargetKind::ConfluenceDc;
    let tenant = tenant().await;
    let ada = add_user(&tenant, "ada@contoso.com");
    let w = World::new(&[kind]).await;
    let name = target_name(kind);
    let config = w.write_config(&[App::new(&tenant, "")]);
    w.sync_ok(&config, "main").await;
    let not_renamed = |report: &idsync_runner::RunReport| {
        warnings(report, name)
            .iter()
            .filter(|w| w.contains("cannot rename users"))
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
    };

    tenant
        .update_user(&ada, json!({"userPrincipalName": "ada.byron@contoso.com"}))
        .expect("renamed at the source");
    // A dry run says it, and does not count as having said it.
    let report = w.run(&config, "main", true).await;
    assert_eq!(
        not_renamed(&report).len(),
        1,
        "{:?}",
        warnings(&report, name)
    );
    let report = w.sync_ok(&config, "main").await;
    let said = not_renamed(&report);
    assert!(
        said.len() == 1 && said[0].contains("\"ada.byron@contoso.com\""),
        "{said:?}"
    );
    // Said once: not again, planned from what idsync knows or from a full read.
    let report = w.sync_ok(&config, "main").await;
    assert!(not_renamed(&report).is_empty(), "{}", pretty(&report));
    let report = w.sync_full_ok(&config, "main").await;
    assert!(not_renamed(&report).is_empty(), "{}", pretty(&report));
    // Another name wanted is news again.
    tenant
        .update_user(&ada, json!({"userPrincipalName": "countess@contoso.com"}))
        .expect("renamed at the source");
    let report = w.sync_ok(&config, "main").await;
    let said = not_renamed(&report);
    assert!(
        said.len() == 1 && said[0].contains("\"countess@contoso.com\""),
        "{said:?}"
    );
    assert_eq!(w.usernames(kind), vec!["ada@contoso.com"]);
}

/// The rename that follows an adoption by e-mail says so, and `users.rename_adopted = false`
/// keeps the adopted account's username until the source gives another one.
async fn adoption_renames_only_as_asked(kind: TargetKind) {
    let name = target_name(kind);
    // Default: renamed, with the true reason.
    {
        let tenant = tenant().await;
        add_user(&tenant, "bob@contoso.com");
        let w = World::new(&[kind]).await;
        w.seed(kind, "legacy-bob", "bob@contoso.com");
        let config = w.write_config(&[App::new(&tenant, "")]);
        let report = w.sync_ok(&config, "main").await;
        let rename = report
            .targets
            .iter()
            .flat_map(|t| &t.operations)
            .find(|r| r.planned.op.kind() == K::RenameUser)
            .expect("a rename");
        assert!(
            rename.planned.reason.contains("adopted by e-mail")
                && !rename.planned.reason.contains("changed at the source"),
            "{}",
            rename.planned.reason
        );
        assert_eq!(w.usernames(kind), vec!["bob@contoso.com"]);
    }
    // rename_adopted = false: the account keeps its username, on this run and the next.
    let tenant = tenant().await;
    let bob = add_user(&tenant, "bob@contoso.com");
    let w = World::new(&[kind]).await;
    let key = w.seed(kind, "legacy-bob", "bob@contoso.com");
    let config = w.write_config(&[App::new(&tenant, "[apps.users]\nrename_adopted = false\n")]);
    let report = w.sync_ok(&config, "main").await;
    assert_count(&report, name, K::RenameUser, 0);
    let adoption = &report
        .targets
        .iter()
        .find(|t| t.target == name)
        .expect("target report")
        .adoptions;
    assert!(
        adoption.len() == 1 && adoption[0].reason.contains("keeps its username"),
        "{adoption:?}"
    );
    w.assert_converged(&config).await;
    w.sync_full_ok(&config, "main").await;
    assert_eq!(w.usernames(kind), vec!["legacy-bob"]);
    // The source gives another username: now it is a rename at the source.
    tenant
        .update_user(&bob, json!({"userPrincipalName": "robert@contoso.com"}))
        .expect("renamed at the source");
    let report = w.sync_ok(&config, "main").await;
    let renames: Vec<_> = report
        .targets
        .iter()
        .flat_map(|t| &t.operations)
        .filter(|r| r.planned.op.kind() == K::RenameUser)
        .collect();
    assert!(
        renames.len() == 1 && renames[0].planned.reason.contains("changed at the source"),
        "{}",
        pretty(&report)
    );
    assert_eq!(w.usernames(kind), vec!["robert@contoso.com"]);
    assert_eq!(w.user(kind, "robert@contoso.com").expect("bob").key, key);
    w.assert_converged(&config).await;
}

crate::per_target!(adoption_renames_only_as_asked: jira, bitbucket, cloud);
