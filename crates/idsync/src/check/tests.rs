//! Unit tests of `idsync check`: seat wording, failed probes and the targets an app feeds.

use super::output::{probe_rows, seats_text};
use super::targets::{TargetCheck, check_targets};
use super::*;
use idsync_config::Config;
use idsync_model::{ProbeStep, Seats, TargetError, TargetErrorKind, TargetProbe};

fn config() -> Config {
    let text = r#"
[[apps]]
name = "corp"
kind = "entra"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s"
targets = ["jira", "cloud"]

[[apps]]
name = "lab"
kind = "entra"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s"
targets = ["wiki"]

[[targets]]
name = "jira"
kind = "jira-dc"
base_url = "https://jira.example.com"
token = "t"

[[targets]]
name = "wiki"
kind = "confluence-dc"
base_url = "https://example.com/wiki"
token = "t"

[[targets]]
name = "cloud"
kind = "atlassian-cloud"
base_url = "https://api.atlassian.com/scim/directory/d"
token = "t"
"#;
    idsync_config::parse_with_env(
        text,
        std::path::Path::new("idsync.toml"),
        &idsync_config::Env::new(),
    )
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

#[test]
fn seats_read_as_an_administrator_would_say_them() {
    use idsync_model::LicenceSeats;
    let seats = |total, used, remaining| LicenceSeats {
        licence: "Jira Software".into(),
        total,
        used,
        remaining,
    };
    assert_eq!(
        seats_text(&Seats::Licences(vec![
            seats(Some(10), Some(3), Some(7)),
            seats(None, Some(3), None),
            seats(Some(10), None, None),
        ])),
        "Jira Software: 7 of 10 left (3 in use)\nJira Software: unlimited (3 in use)\n\
         Jira Software: 10 in all"
    );
    assert_eq!(
        seats_text(&Seats::Licences(Vec::new())),
        "no licence installed"
    );
    assert_eq!(
        seats_text(&Seats::NotExposed),
        "not exposed by the product's REST API"
    );
}

#[test]
fn a_failed_probe_shows_every_step_up_to_the_failure_and_its_fix() {
    let error = TargetError {
        kind: TargetErrorKind::Unauthorized,
        target: "jira".into(),
        message: "refused".into(),
        status: Some(401),
    };
    let check = TargetCheck {
        target: "jira".into(),
        kind: "jira-dc".into(),
        base_url: "https://jira.example.com/".into(),
        result: Ok(()),
        probe: Some(TargetProbe::default().failed(
            ProbeStep::Credentials,
            error,
            "create a new personal access token",
        )),
    };
    assert!(!check.ok());
    let rows = probe_rows(check.probe.as_ref().expect("probe"));
    assert_eq!(rows[0], ("reachable", "yes".to_owned()));
    assert_eq!(
        rows[1],
        ("credentials", "FAILED (HTTP 401), see below".to_owned())
    );
    assert_eq!(rows[2], ("admin rights", "not checked".to_owned()));
    let doc = target_json(&check);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["credentials"]["status"], "failed");
    assert_eq!(
        doc["credentials"]["hint"],
        "create a new personal access token"
    );
    assert_eq!(doc["admin_rights"]["status"], "not_checked");
    assert_eq!(doc["error"]["step"], "credentials");
    assert_eq!(
        check.failure().as_deref(),
        Some("credentials refused: refused; fix: create a new personal access token")
    );
}

#[test]
fn every_target_an_app_feeds_is_set_up_and_failures_are_reported_per_target() {
    let config = config();
    let names = vec!["corp".to_owned()];
    let checks = check_targets(&config, &names, |t| {
        if t.name == "cloud" {
            Err(TargetError {
                kind: TargetErrorKind::Rejected,
                target: t.name.clone(),
                message: "no client for you".into(),
                status: None,
            })
        } else {
            Ok(())
        }
    });
    let shown: Vec<(&str, bool)> = checks
        .iter()
        .map(|c| (c.target.as_str(), c.result.is_ok()))
        .collect();
    // `wiki` is fed by the other app only.
    assert_eq!(shown, vec![("jira", true), ("cloud", false)]);
    let doc = target_json(&checks[1]);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["message"], "no client for you");
    assert_eq!(
        doc["base_url"],
        "https://api.atlassian.com/scim/directory/d"
    );

    let all = vec!["corp".to_owned(), "lab".to_owned()];
    let checks = check_targets(&config, &all, |t| {
        idsync_atlassian::build_target(t).map(|_| ())
    });
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c.result.is_ok()));
}
