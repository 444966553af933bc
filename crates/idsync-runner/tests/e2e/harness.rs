//! The end-to-end harness: graph-sim tenants and one atlassian-sim on loopback, a real TOML
//! config written to a temporary folder and loaded with `idsync_config::load`, a SQLite store
//! in that folder, and `idsync_runner::sync_app` — the whole pipeline as `idsync sync` runs it.
//! Tests then assert the simulators' state and the run reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use atlassian_sim::{AtlassianSim, Product, RunningAtlassianSim, SimConfig, SimUser};
use graph_sim::{GraphSim, NewUser, RunningGraphSim};
use idsync_config::Config;
use idsync_model::{Operation, OperationKind, TargetKind};
use idsync_runner::{Quiet, RunReport, RunStatus};
use idsync_store::Store;
use serde_json::Value;

/// Every target kind the suite runs against.
pub const ALL_TARGETS: [TargetKind; 4] = [
    TargetKind::JiraDc,
    TargetKind::ConfluenceDc,
    TargetKind::BitbucketDc,
    TargetKind::AtlassianCloud,
];

/// The Data Center targets.
pub const DC_TARGETS: [TargetKind; 3] = [
    TargetKind::JiraDc,
    TargetKind::ConfluenceDc,
    TargetKind::BitbucketDc,
];

/// The configured name of a target of this kind (`jira`, `confluence`, `bitbucket`, `cloud`).
pub fn target_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::JiraDc => "jira",
        TargetKind::ConfluenceDc => "confluence",
        TargetKind::BitbucketDc => "bitbucket",
        TargetKind::AtlassianCloud => "cloud",
    }
}

pub fn product(kind: TargetKind) -> Product {
    match kind {
        TargetKind::JiraDc => Product::Jira,
        TargetKind::ConfluenceDc => Product::Confluence,
        TargetKind::BitbucketDc => Product::Bitbucket,
        TargetKind::AtlassianCloud => Product::Scim,
    }
}

/// An empty Entra tenant, started; tests add users and groups with the control methods.
pub async fn tenant() -> RunningGraphSim {
    GraphSim::from_json("{}")
        .expect("an empty tenant loads")
        .start()
        .await
        .expect("graph-sim starts")
}

/// A member user `upn` with `mail` = upn and a display name derived from the local part.
pub fn new_user(upn: &str) -> NewUser {
    let local = upn.split('@').next().unwrap_or(upn);
    let display = local
        .split('.')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    NewUser {
        mail: Some(upn.to_owned()),
        ..NewUser::new(upn, display)
    }
}

/// Adds a user (see [`new_user`]) and returns its object id.
pub fn add_user(tenant: &GraphSim, upn: &str) -> String {
    tenant.add_user(new_user(upn)).expect("user added")
}

/// A group with these direct members; returns its id.
pub fn add_group(tenant: &GraphSim, name: &str, members: &[&str]) -> String {
    let id = tenant.create_group(name);
    for m in members {
        tenant.add_member(&id, m).expect("member added");
    }
    id
}

/// One `[[apps]]` entry: its name, which tenant feeds it, and the rest of its TOML (top-level
/// app keys first, then any `[apps.*]` tables). A guard that never holds is added unless the
/// text has its own `[apps.guard]`.
pub struct App<'a> {
    pub name: &'a str,
    pub tenant: &'a RunningGraphSim,
    pub toml: String,
}

impl<'a> App<'a> {
    pub fn new(tenant: &'a RunningGraphSim, toml: impl Into<String>) -> Self {
        App {
            name: "main",
            tenant,
            toml: toml.into(),
        }
    }

    pub fn named(mut self, name: &'a str) -> Self {
        self.name = name;
        self
    }
}

/// The world of one test: the Atlassian simulator, a temporary folder with the config and the
/// store, and the targets in play.
pub struct World {
    pub atl: RunningAtlassianSim,
    pub dir: tempfile::TempDir,
    pub targets: Vec<TargetKind>,
    /// Extra TOML per target kind (appended to its `[[targets]]` entry).
    pub target_toml: BTreeMap<&'static str, String>,
    store: tokio::sync::OnceCell<Store>,
}

impl World {
    pub async fn new(targets: &[TargetKind]) -> World {
        let atl = AtlassianSim::new(SimConfig::default())
            .start()
            .await
            .expect("atlassian-sim starts");
        World {
            atl,
            dir: tempfile::tempdir().expect("temp dir"),
            targets: targets.to_vec(),
            target_toml: BTreeMap::new(),
            store: tokio::sync::OnceCell::new(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("idsync.toml")
    }

    /// The TOML of the whole config for these apps.
    pub fn config_text(&self, apps: &[App<'_>]) -> String {
        let sim = self.atl.config();
        let mut text = String::from("data_dir = \"data\"\n\n");
        for app in apps {
            let creds = app.tenant.credentials();
            text += &format!(
                "[[apps]]\nname = \"{}\"\nkind = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n{}\n",
                app.name,
                creds.tenant_id,
                creds.client_id,
                creds.client_secret,
                app.tenant.authority_url(),
                app.tenant.graph_url(),
                app.toml,
            );
            if !app.toml.contains("[apps.guard]") {
                text += "[apps.guard]\nmax_deprovision_percent = 100.0\nmax_deprovision_count = 1000\nmax_membership_removal_percent = 100.0\nmax_membership_removal_count = 100000\n\n";
            }
        }
        for kind in &self.targets {
            let token = |token: &str| format!("token = \"{token}\"");
            let (url, credentials) = match kind {
                TargetKind::JiraDc => (self.atl.jira_url(), token(&sim.jira_token)),
                TargetKind::ConfluenceDc => {
                    (self.atl.confluence_url(), token(&sim.confluence_token))
                }
                // Bitbucket refuses HTTP access tokens on its admin endpoints: Basic auth.
                TargetKind::BitbucketDc => (
                    self.atl.bitbucket_url(),
                    format!(
                        "username = \"{}\"\npassword = \"{}\"",
                        sim.admin_user, sim.admin_password
                    ),
                ),
                TargetKind::AtlassianCloud => (self.atl.scim_url(), token(&sim.scim_token)),
            };
            text += &format!(
                "[[targets]]\nname = \"{}\"\nkind = \"{}\"\nbase_url = \"{url}\"\n{credentials}\n{}\n\n",
                target_name(*kind),
                kind.as_str(),
                self.target_toml
                    .get(target_name(*kind))
                    .map(String::as_str)
                    .unwrap_or(""),
            );
        }
        text
    }

    /// Writes the config file and loads it as `idsync` does.
    pub fn write_config(&self, apps: &[App<'_>]) -> Config {
        let path = self.config_path();
        let text = self.config_text(apps);
        std::fs::write(&path, &text).expect("config written");
        idsync_config::load(&path).unwrap_or_else(|e| panic!("config loads: {e}\n{text}"))
    }

    pub async fn store(&self, config: &Config) -> &Store {
        self.store
            .get_or_init(|| async {
                Store::open_file(&config.data_dir.join("idsync.db"))
                    .await
                    .expect("store opens")
            })
            .await
    }

    pub async fn run(&self, config: &Config, app: &str, dry_run: bool) -> RunReport {
        self.run_with(config, app, dry_run, false).await
    }

    pub async fn run_with(
        &self,
        config: &Config,
        app: &str,
        dry_run: bool,
        full_read: bool,
    ) -> RunReport {
        let store = self.store(config).await;
        idsync_runner::sync_app(
            config,
            app,
            store,
            idsync_runner::RunOptions {
                dry_run,
                full_read,
                ..idsync_runner::RunOptions::manual()
            },
            Arc::new(Quiet),
        )
        .await
        .expect("the run itself works")
    }

    /// A real sync of `app`; panics (with the report) unless it is done.
    pub async fn sync_ok(&self, config: &Config, app: &str) -> RunReport {
        let report = self.run(config, app, false).await;
        Self::assert_done(report)
    }

    /// A real sync of `app` that reads every target in full, as the first run of the day (or
    /// `idsync sync --full-read`) does: the way changes made by hand on a target are seen.
    pub async fn sync_full_ok(&self, config: &Config, app: &str) -> RunReport {
        let report = self.run_with(config, app, false, true).await;
        Self::assert_done(report)
    }

    fn assert_done(report: RunReport) -> RunReport {
        assert_eq!(
            report.status,
            RunStatus::Done,
            "run should be done: {}",
            pretty(&report)
        );
        report
    }

    /// A dry run of every app plans nothing at all: planned from what idsync knows of the
    /// targets, and again from a full read of them (so what idsync knows must match them).
    pub async fn assert_converged(&self, config: &Config) {
        for full_read in [false, true] {
            for app in &config.apps {
                let report = self.run_with(config, &app.name, true, full_read).await;
                assert_eq!(report.status, RunStatus::Planned, "{}", pretty(&report));
                let ops = all_ops(&report);
                assert!(
                    ops.is_empty(),
                    "a second sync of {} (full read: {full_read}) should plan nothing, but plans {}",
                    app.name,
                    pretty(&ops)
                );
            }
        }
    }

    // ----- target state -----

    pub fn user(&self, kind: TargetKind, name: &str) -> Option<SimUser> {
        self.atl.user(product(kind), name)
    }

    pub fn usernames(&self, kind: TargetKind) -> Vec<String> {
        let mut names: Vec<String> = self
            .atl
            .users(product(kind))
            .into_iter()
            .map(|u| u.name)
            .collect();
        names.sort();
        names
    }

    pub fn members(&self, kind: TargetKind, group: &str) -> Vec<String> {
        let mut m = self.atl.members(product(kind), group);
        m.sort();
        m
    }

    pub fn has_group(&self, kind: TargetKind, group: &str) -> bool {
        self.atl
            .groups(product(kind))
            .iter()
            .any(|g| g.eq_ignore_ascii_case(group))
    }

    /// Whether a user counts as active on the target: `active` on Jira, Confluence and SCIM,
    /// holding a licensed group on Bitbucket.
    pub fn is_active(&self, kind: TargetKind, name: &str) -> bool {
        let user = self
            .user(kind, name)
            .unwrap_or_else(|| panic!("{name} exists on {kind}"));
        match kind {
            TargetKind::BitbucketDc => self
                .members(kind, "stash-users")
                .iter()
                .any(|m| m.eq_ignore_ascii_case(name)),
            _ => user.active,
        }
    }

    /// Seeds an existing account on a target (not created by idsync).
    pub fn seed(&self, kind: TargetKind, name: &str, email: &str) -> String {
        let mut user = SimUser::new(name);
        user.email = email.to_owned();
        let key = self.atl.seed_user(product(kind), user);
        if kind == TargetKind::BitbucketDc {
            self.atl
                .seed_membership(Product::Bitbucket, "stash-users", name);
        }
        key
    }
}

/// Every planned or applied operation of a report, over all targets.
pub fn all_ops(report: &RunReport) -> Vec<Value> {
    report
        .targets
        .iter()
        .flat_map(|t| t.operations.iter())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
        .collect()
}

/// The operations of one target as (op, user, group) triples, for compact assertions, in plan
/// order (by kind, then user, then group). An applied report lists results as they completed:
/// kinds come one after the other, but within a kind operations run concurrently.
pub fn ops_of(report: &RunReport, target: &str) -> Vec<(OperationKind, String, String)> {
    let mut ops: Vec<_> = report
        .targets
        .iter()
        .filter(|t| t.target == target)
        .flat_map(|t| t.operations.iter())
        .map(|o| {
            let op = &o.planned.op;
            (
                op.kind(),
                op.user().unwrap_or("").to_owned(),
                op.group().unwrap_or("").to_owned(),
            )
        })
        .collect();
    ops.sort();
    ops
}

/// How many operations of `kind` the report has for `target`.
pub fn count(report: &RunReport, target: &str, kind: OperationKind) -> usize {
    ops_of(report, target)
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .count()
}

/// Asserts that `report` holds `expected` operations of `kind` on `target`, showing the whole
/// report when it does not.
#[track_caller]
pub fn assert_count(report: &RunReport, target: &str, kind: OperationKind, expected: usize) {
    assert_eq!(count(report, target, kind), expected, "{}", pretty(report));
}

pub fn operations<'r>(report: &'r RunReport, target: &str) -> Vec<&'r Operation> {
    report
        .targets
        .iter()
        .filter(|t| t.target == target)
        .flat_map(|t| t.operations.iter())
        .map(|o| &o.planned.op)
        .collect()
}

pub fn warnings<'r>(report: &'r RunReport, target: &str) -> Vec<&'r str> {
    report
        .targets
        .iter()
        .filter(|t| t.target == target)
        .flat_map(|t| t.warnings.iter())
        .map(String::as_str)
        .collect()
}

pub fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub fn kind_of(name: &str) -> TargetKind {
    match name {
        "jira" => TargetKind::JiraDc,
        "confluence" => TargetKind::ConfluenceDc,
        "bitbucket" => TargetKind::BitbucketDc,
        "cloud" => TargetKind::AtlassianCloud,
        other => panic!("unknown target {other}"),
    }
}

/// One `#[tokio::test]` per listed target (`jira`, `confluence`, `bitbucket`, `cloud`) calling
/// `async fn $test(kind: TargetKind)` of the enclosing module.
#[macro_export]
macro_rules! per_target {
    ($test:ident: $($kind:ident),+ $(,)?) => {
        mod $test {
            $(
                #[tokio::test]
                async fn $kind() {
                    super::$test($crate::harness::kind_of(stringify!($kind))).await
                }
            )+
        }
    };
}

/// Approves a held run as `idsync approve` does, with the default window of a day.
pub async fn approve(
    store: &Store,
    run_id: i64,
) -> Result<idsync_store::RunRecord, idsync_store::StoreError> {
    let day = 24 * 60 * 60;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    store.approve_run(run_id, day, now + day).await
}
