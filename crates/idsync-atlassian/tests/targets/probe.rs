//! `Target::probe`: what `idsync check` learns of each product, reading only.

use std::time::{Duration, Instant};

use atlassian_sim::{Product, SimUser};
use idsync_config::Secret;
use idsync_model::{
    AdminRights, LicenceSeats, ProbeStep, Seats, TargetErrorKind, TargetKind, TargetProbe,
};

use crate::common::{build, config, start, target, wrong_token};

const KINDS: [TargetKind; 4] = [
    TargetKind::JiraDc,
    TargetKind::ConfluenceDc,
    TargetKind::BitbucketDc,
    TargetKind::AtlassianCloud,
];

fn failed_at(probe: &TargetProbe) -> Option<ProbeStep> {
    probe.failure.as_ref().map(|f| f.step)
}

fn hint(probe: &TargetProbe) -> String {
    probe
        .failure
        .as_ref()
        .map(|f| f.hint.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn probe_with_administrator_credentials_passes_every_step() {
    let sim = start().await;
    // Confluence shows group members to administrators only: the probe needs a group.
    sim.seed_user(Product::Confluence, SimUser::new("ada"));
    sim.seed_membership(Product::Confluence, "confluence-users", "ada");
    for kind in KINDS {
        let probe = target(&sim, kind).probe().await;
        assert!(probe.ok(), "{kind}: {probe:#?}");
        for step in ProbeStep::ALL {
            assert_eq!(probe.passed(step), Some(true), "{kind} {step:?}");
        }
        assert!(
            matches!(probe.admin, Some(AdminRights::Confirmed(_))),
            "{kind}: {probe:#?}"
        );
        assert!(probe.not_synced.is_empty(), "{kind}: {probe:#?}");
        let product = probe.product.clone().expect("product read");
        match kind {
            TargetKind::JiraDc => {
                assert_eq!(product.to_string(), "Jira 10.3.0");
                assert_eq!(probe.account.as_deref(), Some("admin"));
            }
            TargetKind::ConfluenceDc => {
                assert_eq!(product.to_string(), "Confluence 9.2.0");
                assert_eq!(probe.account.as_deref(), Some("admin"));
                assert_eq!(probe.seats, Seats::NotExposed);
            }
            TargetKind::BitbucketDc => {
                assert_eq!(product.to_string(), "Bitbucket 9.4.0");
                assert_eq!(probe.account.as_deref(), Some("admin"));
            }
            TargetKind::AtlassianCloud => {
                assert_eq!(product.to_string(), "Atlassian Cloud");
                assert_eq!(probe.seats, Seats::NotExposed);
            }
        }
    }
}

/// One licence, `name`, with its seats in all, used and left.
fn licence(name: &str, total: Option<u64>, used: Option<u64>, remaining: Option<u64>) -> Seats {
    Seats::Licences(vec![LicenceSeats {
        licence: name.into(),
        total,
        used,
        remaining,
    }])
}

#[tokio::test]
async fn jira_and_bitbucket_seats_follow_the_licence() {
    let sim = start().await;
    let jira = target(&sim, TargetKind::JiraDc);
    let probe = jira.probe().await;
    let unlimited = licence("Jira Software", None, Some(0), None);
    assert_eq!(probe.seats, unlimited, "unlimited");
    sim.set_licence_seats(Product::Jira, Some(10));
    for name in ["ada", "bob", "cyd"] {
        sim.seed_user(Product::Jira, SimUser::new(name));
    }
    let probe = target(&sim, TargetKind::JiraDc).probe().await;
    assert_eq!(
        probe.seats,
        licence("Jira Software", Some(10), Some(3), Some(7))
    );

    sim.set_licence_seats(Product::Bitbucket, Some(25));
    for name in ["ada", "bob"] {
        sim.seed_user(Product::Bitbucket, SimUser::new(name));
        sim.seed_membership(Product::Bitbucket, "stash-users", name);
    }
    let probe = target(&sim, TargetKind::BitbucketDc).probe().await;
    assert_eq!(
        probe.seats,
        licence("Bitbucket", Some(25), Some(2), Some(23))
    );
}

#[tokio::test]
async fn wrong_credentials_stop_the_probe_with_the_fix() {
    let sim = start().await;
    for kind in KINDS {
        let probe = wrong_token(&sim, kind).probe().await;
        assert_eq!(
            failed_at(&probe),
            Some(ProbeStep::Credentials),
            "{kind}: {probe:#?}"
        );
        assert_eq!(probe.passed(ProbeStep::Reachable), Some(true), "{kind}");
        assert_eq!(probe.passed(ProbeStep::AdminRights), None, "{kind}");
        let failure = probe.failure.as_ref().expect("failure");
        assert_eq!(failure.error.kind, TargetErrorKind::Unauthorized, "{kind}");
        let hint = hint(&probe);
        let expected = match kind {
            TargetKind::JiraDc | TargetKind::ConfluenceDc => "create a new personal access token",
            TargetKind::BitbucketDc => "Admin or System admin",
            TargetKind::AtlassianCloud => "API key",
        };
        assert!(hint.contains(expected), "{kind}: {hint}");
    }
}

#[tokio::test]
async fn an_account_that_is_no_administrator_stops_the_probe_at_admin_rights() {
    let sim = start().await;
    sim.seed_user(Product::Confluence, SimUser::new("ada"));
    sim.seed_membership(Product::Confluence, "confluence-users", "ada");
    let c = sim.config().clone();
    let plain = |kind| {
        let mut config = config(&sim, kind);
        match kind {
            TargetKind::JiraDc => config.token = Some(Secret::new(c.jira_plain_token.clone())),
            TargetKind::ConfluenceDc => {
                config.token = Some(Secret::new(c.confluence_plain_token.clone()))
            }
            _ => {
                config.username = Some(c.bitbucket_plain_user.clone());
                config.password = Some(Secret::new(c.bitbucket_plain_password.clone()));
            }
        }
        build(&config)
    };
    for (kind, says) in [
        (TargetKind::JiraDc, "Jira Administrators"),
        (TargetKind::ConfluenceDc, "Confluence Administrator"),
        (TargetKind::BitbucketDc, "Admin or System admin"),
    ] {
        let probe = plain(kind).probe().await;
        assert_eq!(
            failed_at(&probe),
            Some(ProbeStep::AdminRights),
            "{kind}: {probe:#?}"
        );
        assert_eq!(probe.passed(ProbeStep::Credentials), Some(true));
        assert_eq!(probe.account.as_deref(), Some("developer"), "{kind}");
        assert!(
            probe.product.is_some(),
            "what was learned stays: {probe:#?}"
        );
        assert!(hint(&probe).contains(says), "{kind}: {}", hint(&probe));
        let message = &probe.failure.as_ref().expect("failure").error.message;
        assert!(message.contains("accepted the credentials"), "{message}");
        assert!(
            message.contains("lacks the administrator rights"),
            "{message}"
        );
    }
    // Confluence 8.5 answers 401 there (CONFSERVER-98582): still the rights, not the token.
    sim.set_version(Product::Confluence, "8.5.0");
    let probe = plain(TargetKind::ConfluenceDc).probe().await;
    assert_eq!(
        failed_at(&probe),
        Some(ProbeStep::AdminRights),
        "{probe:#?}"
    );
    assert!(
        probe
            .failure
            .as_ref()
            .is_some_and(|f| f.error.message.contains("HTTP 401")),
        "{probe:#?}"
    );
}

#[tokio::test]
async fn a_closed_port_is_reported_unreachable_without_waiting_out_the_retries() {
    let sim = start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address").port()
    };
    for kind in KINDS {
        let mut config = config(&sim, kind);
        let url = format!("http://127.0.0.1:{closed}{}", config.base_url.path());
        config.base_url = url.parse().expect("url");
        let started = Instant::now();
        let probe = build(&config).probe().await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{kind}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            failed_at(&probe),
            Some(ProbeStep::Reachable),
            "{kind}: {probe:#?}"
        );
        assert!(
            hint(&probe).contains("check base_url"),
            "{kind}: {}",
            hint(&probe)
        );
        assert_eq!(
            probe.failure.as_ref().map(|f| f.error.kind),
            Some(TargetErrorKind::Unavailable)
        );
    }
}

#[tokio::test]
async fn an_old_confluence_says_what_it_will_not_sync_and_a_groupless_one_what_it_cannot_tell() {
    let sim = start().await;
    sim.set_version(Product::Confluence, "8.3.0");
    let probe = target(&sim, TargetKind::ConfluenceDc).probe().await;
    // No group: the rights cannot be told, which is no failure.
    assert!(probe.ok(), "{probe:#?}");
    assert!(
        matches!(&probe.admin, Some(AdminRights::NotVerified(why)) if why.contains("no group")),
        "{probe:#?}"
    );
    assert_eq!(
        probe.product.as_ref().map(ToString::to_string).as_deref(),
        Some("Confluence 8.3.0")
    );
    assert_eq!(probe.not_synced.len(), 4, "{:#?}", probe.not_synced);
    assert!(
        probe
            .not_synced
            .iter()
            .any(|n| n.contains("cannot create users") && n.contains("needs Confluence 8.4")),
        "{:#?}",
        probe.not_synced
    );
}
