//! Apps and targets created through the admin API, over loopback against graph-sim and
//! atlassian-sim: created, synced, changed, deleted, checked as the file is, kept across a
//! restart with their secrets sealed, and the secrets never in an answer, the database file
//! or the logs.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::harness::{App, World, add_user, tenant};
use common::{Service, next_finished, on_clock};
use idsync_config::Config;
use idsync_model::TargetKind;
use idsync_runner::{RunStatus, Trigger};
use idsync_server::{ManualClock, ServeOptions};
use idsync_store::Store;
use idsync_store::sealed::KeySource;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every log line written while the test runs, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every log line of this test binary, at every level, from the first call on. One subscriber
/// for the process: a thread's own (`set_default`) misses what other threads log, and its
/// callsite filters race with the other tests'.
fn capture_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
    .clone()
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The bytes of the database and its write-ahead log, as a person copying the files would
/// have them.
fn database_bytes(data_dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["idsync.db", "idsync.db-wal"] {
        if let Ok(b) = std::fs::read(data_dir.join(name)) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Whether the wiki (Confluence, the target the `hr` app feeds) has the account.
fn on_wiki(w: &World, username: &str) -> bool {
    w.user(TargetKind::ConfluenceDc, username).is_some()
}

/// A tenant of its own, with a client secret no other tenant of the test has.
async fn hr_tenant(secret: &str) -> graph_sim::RunningGraphSim {
    graph_sim::GraphSim::from_json(&json!({ "clientSecret": secret }).to_string())
        .expect("a tenant")
        .start()
        .await
        .expect("graph-sim starts")
}

fn hr_app(tenant: &graph_sim::RunningGraphSim, extra: Value) -> Value {
    let creds = tenant.credentials();
    let mut app = json!({
        "name": "hr",
        "kind": "entra",
        "tenant_id": creds.tenant_id,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "authority_url": tenant.authority_url(),
        "graph_url": tenant.graph_url(),
        "targets": ["wiki"],
        "guard": {
            "max_deprovision_percent": 100.0,
            "max_deprovision_count": 1000,
            "max_membership_removal_percent": 100.0,
            "max_membership_removal_count": 100000,
        },
    });
    if let (Some(app), Value::Object(extra)) = (app.as_object_mut(), extra) {
        app.extend(extra);
    }
    app
}

/// Creates the `wiki` target (Confluence) and the `hr` app through the API, and checks their
/// answers (provisioned by the API, secrets masked) and the list (after the file's app).
async fn create_wiki_and_hr(
    service: &Service,
    w: &World,
    hr: &graph_sim::RunningGraphSim,
    confluence_token: &str,
) {
    let (status, target) = service
        .post(
            "/api/v1/targets",
            json!({
                "name": "wiki",
                "kind": "confluence-dc",
                "base_url": w.atl.confluence_url(),
                "token": confluence_token,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{target}");
    assert_eq!(target["provisioned"], "api");
    assert_eq!(target["credentials"], "********");
    assert_eq!(target["entry"]["token"], "********");
    let (status, app) = service.post("/api/v1/apps", hr_app(hr, json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["provisioned"], "api");
    assert_eq!(app["client_secret"], "********");
    assert_eq!(app["targets"], json!(["wiki"]));
    let (_, listed) = service.get("/api/v1/apps").await;
    let names: Vec<&str> = listed["apps"]
        .as_array()
        .map(|a| a.iter().filter_map(|a| a["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["main", "hr"]);
    let (_, file_app) = service.get("/api/v1/apps/main").await;
    assert_eq!(file_app["provisioned"], "file");
    assert!(file_app.get("entry").is_none());
}

/// Checks that the database holds sealed values and none of `secrets` in plain text.
fn assert_sealed_in_store(data_dir: &Path, secrets: &[&str]) {
    let db = database_bytes(data_dir);
    assert!(contains(&db, "v1:"), "the sealed values are in the store");
    for secret in secrets {
        assert!(
            !contains(&db, secret),
            "{secret} in plain text in the database"
        );
    }
}

/// Checks that a restart over sealed secrets is refused with the wrong key, and with the key
/// file moved away (no new key made over them); puts the key file back after.
async fn assert_restarts_refused_without_the_key(
    w: &World,
    config: &Config,
    store: &Store,
    token: &str,
    clock: &ManualClock,
) {
    let wrong_key = ServeOptions {
        secret_key: Some(KeySource::Env("ab".repeat(32))),
        ..on_clock(clock)
    };
    let e = Service::start_on(w, config, store, Some(token), wrong_key)
        .await
        .err()
        .expect("the wrong key is refused");
    let message = format!("{e:#}");
    assert!(
        message.contains("IDSYNC_SECRET_KEY")
            && (message.contains("app:hr:client_secret") || message.contains("target:wiki:token")),
        "{message}"
    );
    let data_dir = w.dir.path().join("data");
    let key_file = data_dir.join("secret.key");
    let aside = data_dir.join("secret.key.aside");
    std::fs::rename(&key_file, &aside).expect("key moved away");
    let e = Service::start_on(w, config, store, Some(token), on_clock(clock))
        .await
        .err()
        .expect("no key");
    let message = format!("{e:#}");
    assert!(
        message.contains("secret.key") && message.contains("Restore"),
        "{message}"
    );
    assert!(
        !key_file.exists(),
        "no new key was made over sealed secrets"
    );
    std::fs::rename(&aside, &key_file).expect("key restored");
}

/// Gives `hr` a 30-minute schedule through the API, waits until it shows a next run, moves the
/// clock past it and checks that the scheduler ran `hr` to the end.
async fn schedule_hr_and_see_it_run(
    service: &Service,
    hr: &graph_sim::RunningGraphSim,
    clock: &ManualClock,
) {
    // A kept secret is never sent somewhere new: pointing the entry elsewhere takes the
    // secret itself.
    for moved in [
        json!({"client_secret": "********", "authority_url": "https://attacker.example/"}),
        json!({"client_secret": "********", "graph_url": "https://attacker.example/"}),
    ] {
        let (status, body) = service
            .put("/api/v1/apps/hr", hr_app(hr, moved.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{moved}: {body}");
        assert_eq!(body["error"]["field"], "client_secret", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("give the secret again"), "{message}");
    }
    let (status, app) = service
        .put(
            "/api/v1/apps/hr",
            hr_app(hr, json!({"client_secret": "********", "schedule": "30m"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    let mut events = service.running.coordinator.subscribe();
    let mut next_run = Value::Null;
    for _ in 0..100 {
        next_run = service.get("/api/v1/apps/hr").await.1["next_run"].clone();
        if next_run.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(next_run.is_string(), "the app is scheduled");
    clock.advance(Duration::from_secs(40 * 60));
    let scheduled = next_finished(&mut events).await;
    assert_eq!(
        (scheduled.app.as_str(), scheduled.trigger),
        ("hr", Trigger::Schedule)
    );
    assert_eq!(scheduled.outcome.expect("works").status, RunStatus::Done);
}

/// Deletes `wiki` (refused while `hr` feeds it), then `hr` (its 4 runs stay in the history),
/// then `wiki`, leaving the file's target alone.
async fn delete_hr_then_wiki(service: &Service) {
    let (status, body) = service.delete("/api/v1/targets/wiki").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "in_use");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"hr\""),
        "{body}"
    );
    let (status, _) = service.delete("/api/v1/apps/hr").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = service.get("/api/v1/apps/hr").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(service.running.next_runs.get("hr").is_none());
    let (_, history) = service.get("/api/v1/runs?app=hr").await;
    assert_eq!(
        history["runs"].as_array().map_or(0, Vec::len),
        4,
        "{history}"
    );
    let (status, _) = service.delete("/api/v1/targets/wiki").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, targets) = service.get("/api/v1/targets").await;
    assert_eq!(targets["targets"].as_array().map_or(0, Vec::len), 1);
}

/// Checks that none of `secrets` is in the API's answers, the database or the logs (and that
/// the logs were captured at all).
fn assert_secrets_nowhere(secrets: &[&str], answers: &Mutex<String>, data_dir: &Path, logs: &Logs) {
    let answers = answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let db = database_bytes(data_dir);
    let logged = logs.text();
    assert!(
        logged.contains("created through the admin API"),
        "logs were captured"
    );
    for secret in secrets {
        assert!(!answers.contains(secret), "{secret} in an API answer");
        assert!(!contains(&db, secret), "{secret} in the database");
        assert!(!logged.contains(secret), "{secret} in the logs");
    }
}

#[tokio::test]
async fn apps_and_targets_created_through_the_api_sync_change_survive_a_restart_and_keep_their_secrets()
 {
    let logs = capture_logs();

    const CLIENT_SECRET: &str = "hr-app-s3cret-value-0042";
    let file_tenant = tenant().await;
    add_user(&file_tenant, "alice@contoso.com");
    let hr = hr_tenant(CLIENT_SECRET).await;
    add_user(&hr, "erin@fabrikam.com");
    let w = World::new(&[TargetKind::JiraDc]).await;
    // The file's app names its target: an app with no `targets` feeds every target, those
    // created through the API too.
    let config = w.write_config(&[App::new(&file_tenant, "targets = [\"jira\"]\n")]);
    let store = w.store(&config).await.clone();
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let answers: Arc<Mutex<String>> = Arc::default();
    let service = Service::start_on(&w, &config, &store, None, on_clock(&clock))
        .await
        .expect("starts")
        .keeping_answers_in(&answers);
    let token = service.token.clone();
    let confluence_token = w.atl.config().confluence_token.clone();
    let secrets = [CLIENT_SECRET, confluence_token.as_str()];

    // A target and an app, created.
    create_wiki_and_hr(&service, &w, &hr, &confluence_token).await;

    // Their connections test as the file's do.
    let (_, probe) = service.post("/api/v1/targets/wiki/test", json!({})).await;
    assert_eq!(probe["ok"], true, "{probe}");
    let (_, probe) = service.post("/api/v1/apps/hr/test", json!({})).await;
    assert_eq!(probe["ok"], true, "{probe}");

    // A sync of the new app puts its users on the new target, and only there.
    service.sync_done("hr").await;
    assert!(on_wiki(&w, "erin@fabrikam.com"));
    assert!(w.user(TargetKind::JiraDc, "erin@fabrikam.com").is_none());
    service.sync_done("main").await;
    assert!(!on_wiki(&w, "alice@contoso.com"));

    // The store holds them sealed.
    let data_dir = w.dir.path().join("data");
    assert_sealed_in_store(&data_dir, &secrets);

    // A restart on the same store and key has them again, working.
    assert!(service.running.shutdown().await);
    assert_restarts_refused_without_the_key(&w, &config, &store, &token, &clock).await;
    let service = Service::start_on(&w, &config, &store, Some(&token), on_clock(&clock))
        .await
        .expect("restarts")
        .keeping_answers_in(&answers);
    let (status, app) = service.get("/api/v1/apps/hr").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app["provisioned"], "api");
    add_user(&hr, "gina@fabrikam.com");
    service.sync_done("hr").await;
    assert!(on_wiki(&w, "gina@fabrikam.com"));

    // A rule changed (the masked secret sent back keeps the stored one): the next run follows.
    let (status, app) = service
        .put(
            "/api/v1/apps/hr",
            hr_app(
                &hr,
                json!({"client_secret": "********", "users": {"create": false}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["entry"]["users"]["create"], false);
    add_user(&hr, "hank@fabrikam.com");
    // The kept secret works.
    service.sync_done("hr").await;
    assert!(!on_wiki(&w, "hank@fabrikam.com"));

    // A schedule given: the scheduler follows it at once.
    schedule_hr_and_see_it_run(&service, &hr, &clock).await;
    assert!(on_wiki(&w, "hank@fabrikam.com"));

    // A target an app feeds stays; the app goes, its history stays; then the target goes.
    delete_hr_then_wiki(&service).await;
    assert!(service.running.shutdown().await);

    // Nowhere in plain text: answers, database, logs.
    assert_secrets_nowhere(&secrets, &answers, &data_dir, &logs);
}

/// An app entry `api-app` on `tenant`, with `extra` fields put over it.
fn api_app(tenant: &graph_sim::RunningGraphSim, extra: Value) -> Value {
    let creds = tenant.credentials();
    let mut app = json!({
        "name": "api-app",
        "kind": "entra",
        "tenant_id": creds.tenant_id,
        "client_id": creds.client_id,
        "client_secret": "s",
        "authority_url": tenant.authority_url(),
        "graph_url": tenant.graph_url(),
    });
    if let (Some(app), Value::Object(extra)) = (app.as_object_mut(), extra) {
        app.extend(extra);
    }
    app
}

/// Checks that each of a set of bad app entries is refused as invalid, naming its field.
async fn assert_each_problem_names_its_field(
    service: &Service,
    tenant: &graph_sim::RunningGraphSim,
) {
    for (extra, field) in [
        (json!({"client_id": "not-a-guid"}), "client_id"),
        (json!({"targets": ["nope"]}), "targets"),
        (json!({"schedule": "every tuesday"}), "schedule"),
        (
            json!({"users": {"username": {"replace": [{"pattern": "([", "with": ""}]}}}),
            "users.username.replace[0].pattern",
        ),
        (json!({"client_secret": null}), "client_secret"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"client_secret": "env:HOME"}), "client_secret"),
        (json!({"name": "has space"}), "name"),
    ] {
        let (status, body) = service
            .post("/api/v1/apps", api_app(tenant, extra.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{body}");
        let got = body["error"]["field"].as_str().unwrap_or_default();
        assert!(got.starts_with(field), "{extra}: field {got:?} in {body}");
    }
}

#[tokio::test]
async fn entries_are_checked_as_the_file_is_and_what_the_file_provisions_stays_as_it_is() {
    // Logged like the other test, so that its log search covers this one too.
    capture_logs();
    let tenant = tenant().await;
    let w = World::new(&[TargetKind::JiraDc]).await;
    let config = w.write_config(&[App::new(&tenant, "")]);
    let store = w.store(&config).await.clone();
    // A key given by the administrator is checked at the start, before any secret needs it.
    let bad_key = ServeOptions {
        secret_key: Some(KeySource::Env("abc".into())),
        ..ServeOptions::default()
    };
    let e = Service::start_on(&w, &config, &store, None, bad_key)
        .await
        .err()
        .expect("a malformed key stops the start");
    assert!(format!("{e:#}").contains("IDSYNC_SECRET_KEY"), "{e:#}");
    let service = Service::start_on(&w, &config, &store, None, ServeOptions::default())
        .await
        .expect("starts");
    let creds = tenant.credentials();
    let app = |extra: Value| api_app(&tenant, extra);

    // Each problem comes back with its field, in the entry.
    assert_each_problem_names_its_field(&service, &tenant).await;
    let (status, body) = service.post("/api/v1/apps", json!([1, 2])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = service
        .post(
            "/api/v1/targets",
            json!({"name": "wiki", "kind": "confluence-dc", "base_url": w.atl.confluence_url()}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    // Names the file uses, and names taken already, are refused.
    let (status, body) = service
        .post(
            "/api/v1/targets",
            json!({"name": "jira", "kind": "jira-dc", "base_url": w.atl.jira_url(), "token": "t"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "name_taken");
    let (status, body) = service
        .post("/api/v1/apps", app(json!({"name": "main"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = service.post("/api/v1/apps", app(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = service.post("/api/v1/apps", app(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "name_taken");

    // A change that does not pass leaves the entry as it was.
    let (status, body) = service
        .put("/api/v1/apps/api-app", app(json!({"client_id": "nope"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "client_id");
    let (_, kept) = service.get("/api/v1/apps/api-app").await;
    assert_eq!(kept["client_id"], creds.client_id.as_str());
    let (status, body) = service
        .put("/api/v1/apps/api-app", app(json!({"name": "renamed"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "name");
    let (status, _) = service.put("/api/v1/apps/nope", app(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = service.delete("/api/v1/targets/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // What the file provisions is changed in the file.
    for (status, body) in [
        service
            .put("/api/v1/apps/main", app(json!({"name": "main"})))
            .await,
        service.delete("/api/v1/apps/main").await,
        service.delete("/api/v1/targets/jira").await,
    ] {
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "provisioned_by_file");
    }
    assert!(service.running.shutdown().await);
}
