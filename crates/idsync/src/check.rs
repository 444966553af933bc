//! `idsync check`: validate the config, sign in, read the source in its scope, print counts;
//! then, for every target the apps feed, set up its client as `sync` would (so that a setting
//! only the client refuses fails here too) and probe it ([`Target::probe`]): does it answer at
//! `base_url`, does it accept the credentials, may their account administer users and groups,
//! which product and version it runs and what that version will not let idsync sync, and how
//! many licence seats are left where the product says (Jira, Bitbucket). On Jira targets that
//! passed, it also looks up the default project and component leads the rules in force there
//! name (`users.default_project_lead`, `users.default_component_lead`), which take over what a
//! deprovisioned user led. Every request sent to a target only reads.
//!
//! It changes nothing anywhere and keeps no state: the read is always a full one. The console's
//! "Test configuration" runs the same thing with `--json`, where each target carries the same
//! rows as the table printed for it.
//!
//! Exit codes: 0 when every app was read (its manual group mappings each naming exactly one
//! source group), every target's client set up and its probe passed, and every default lead
//! found active; 1 when an app could not be read (sign-in, permission, network), a manual
//! mapping names no source group or several, a target's client could not be set up, a target
//! is unreachable, refuses the credentials or finds its account no administrator (each with
//! the fix), or a default lead is missing, inactive or could not be looked up; 2 when the
//! config itself is wrong, including a scope that names a group or enterprise application the
//! tenant does not have, or a group name several groups share (shown at its line, as other
//! config errors). What a target's version cannot do is shown, and is no failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use idsync_config::{AppConfig, Config, ConfigError, Scope, TargetConfig};
use idsync_entra::{EntraError, EntraSource, SourceRead};
use idsync_model::{AdminRights, LeadKind, ProbeStep, Seats, Target, TargetError, TargetProbe};
use serde_json::{Value, json};

use crate::CheckArgs;
use crate::exit::CliError;
use crate::output::problem_json;
use crate::store::select_apps;

/// The outcome for one app.
struct AppCheck {
    app: String,
    scope: String,
    result: Result<SourceRead, EntraError>,
    /// When the read failed because the scope names what the tenant does not have: those
    /// fields, each at its line of the config. The config is wrong for this tenant.
    config_problems: Option<ConfigError>,
    /// What the read shows wrong in the rules: a manual mapping naming no source group, or
    /// several. A sync would run, but not as the config means it.
    problems: Vec<String>,
    elapsed_ms: u64,
}

/// The outcome for one target: its client (`T`) could be set up, or why not; and, once set
/// up, what its probe found.
struct TargetCheck<T> {
    target: String,
    kind: String,
    /// `base_url`, redacted.
    base_url: String,
    result: Result<T, TargetError>,
    probe: Option<TargetProbe>,
}

impl<T> TargetCheck<T> {
    fn ok(&self) -> bool {
        self.result.is_ok() && self.probe.as_ref().is_none_or(TargetProbe::ok)
    }

    /// What failed and the fix; `None` when nothing did.
    fn failure(&self) -> Option<String> {
        if let Err(e) = &self.result {
            return Some(e.message.clone());
        }
        let failure = self.probe.as_ref()?.failure.as_ref()?;
        Some(format!(
            "{}: {}; fix: {}",
            step_failed(failure.step),
            failure.error.message,
            failure.hint
        ))
    }
}

/// How a failed step is named in messages.
fn step_failed(step: ProbeStep) -> &'static str {
    match step {
        ProbeStep::Reachable => "not reachable",
        ProbeStep::Credentials => "credentials refused",
        ProbeStep::AdminRights => "no administrator rights",
    }
}

/// A default lead (`users.default_project_lead` or `users.default_component_lead`) of an app,
/// looked up on one Jira target it feeds.
struct LeadCheck {
    app: String,
    target: String,
    lead: LeadKind,
    /// As config errors name fields: `apps[0].users.default_project_lead`, or
    /// `apps[0].overrides.jira.users.default_project_lead` when an override sets the rules.
    field: String,
    username: String,
    /// `Err` when the target could not be asked.
    result: Result<LeadStatus, TargetError>,
    /// Not asked at all: the target failed its probe (whose error `result` holds), which is
    /// reported, with its fix, for the target.
    not_asked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeadStatus {
    Active,
    Missing,
    Inactive,
}

impl LeadCheck {
    fn ok(&self) -> bool {
        matches!(self.result, Ok(LeadStatus::Active))
    }

    fn status(&self) -> &'static str {
        match self.result {
            Ok(LeadStatus::Active) => "active",
            Ok(LeadStatus::Missing) => "missing",
            Ok(LeadStatus::Inactive) => "inactive",
            Err(_) => "lookup_failed",
        }
    }

    /// What is wrong and the fix; `None` when the lead is fine.
    fn problem(&self) -> Option<String> {
        let who = format!("{}: Jira user '{}'", self.field, self.username);
        let led = match self.lead {
            LeadKind::Project => "projects",
            LeadKind::Component => "components",
        };
        let role = format!("it is to take over the {led} led by users idsync deprovisions");
        match &self.result {
            Ok(LeadStatus::Active) => None,
            Ok(LeadStatus::Missing) => Some(format!(
                "{who} does not exist; {role}: create the account or name an active one"
            )),
            Ok(LeadStatus::Inactive) => Some(format!(
                "{who} is inactive; {role}: activate the account or name an active one"
            )),
            Err(e) => Some(format!("{who} could not be looked up: {}", e.message)),
        }
    }
}

pub async fn run(args: CheckArgs) -> Result<(), CliError> {
    let config = match idsync_config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            if args.json {
                print_json(&config_error_json(&args, &error));
            }
            return Err(CliError::Usage(error.to_string()));
        }
    };
    let names = match select_apps(&config, args.app.as_deref()) {
        Ok(names) => names,
        Err(error) => {
            if args.json {
                print_json(&json!({
                    "config": args.config.display().to_string(),
                    "ok": false,
                    "error": {"kind": "usage", "message": error.to_string()},
                }));
            }
            return Err(error);
        }
    };
    let mut targets = check_targets(&config, &names, idsync_atlassian::build_target);
    probe_targets(&mut targets).await;
    let mut checks = Vec::new();
    for name in &names {
        let Some(app) = config.app(name) else {
            continue;
        };
        tracing::info!(app = %name, "signing in and reading the source");
        let position = config.apps.iter().position(|a| a.name == app.name);
        checks.push(check_app(app, position.unwrap_or_default(), &args.config).await);
    }
    let leads = check_leads(&config, &names, &targets).await;
    let config_problems: Vec<&ConfigError> = checks
        .iter()
        .filter_map(|c| c.config_problems.as_ref())
        .collect();
    let mut failures: Vec<String> = checks
        .iter()
        .filter(|c| c.result.is_err() && c.config_problems.is_none())
        .map(|c| format!("app {:?}: {}", c.app, error_text(c)))
        .collect();
    failures.extend(checks.iter().flat_map(|c| {
        c.problems
            .iter()
            .map(move |p| format!("app {:?}: {p}", c.app))
    }));
    failures.extend(
        targets
            .iter()
            .filter_map(|t| t.failure().map(|f| format!("target {:?}: {f}", t.target))),
    );
    failures.extend(leads.iter().filter(|l| !l.not_asked).filter_map(|l| {
        l.problem()
            .map(|p| format!("app {:?}: target {:?}: {p}", l.app, l.target))
    }));
    if args.json {
        print_json(&json!({
            "config": args.config.display().to_string(),
            "ok": failures.is_empty() && config_problems.is_empty(),
            "warnings": config.warnings,
            "apps": checks.iter().map(|c| app_json(c, &args.config)).collect::<Vec<_>>(),
            "targets": targets.iter().map(target_json).collect::<Vec<_>>(),
            "leads": leads.iter().map(lead_json).collect::<Vec<_>>(),
        }));
    } else {
        for warning in &config.warnings {
            outln!("warning: {warning}");
        }
        for check in &checks {
            print_app(check);
        }
        for target in &targets {
            let of_target: Vec<&LeadCheck> =
                leads.iter().filter(|l| l.target == target.target).collect();
            print_target(target, &of_target);
        }
    }
    if !config_problems.is_empty() {
        // A config wrong for this tenant is a config error (exit 2), shown as one, at its
        // line; other failures are named after it, since they need fixing too.
        let lines: Vec<String> = config_problems
            .iter()
            .map(|e| e.to_string())
            .chain(failures)
            .collect();
        return Err(CliError::Usage(lines.join("\n")));
    }
    match failures.as_slice() {
        [] => Ok(()),
        [one] => Err(CliError::Failed(anyhow::anyhow!("{one}"))),
        many => Err(CliError::Failed(anyhow::anyhow!(
            "{} checks failed: {}",
            many.len(),
            many.join("; ")
        ))),
    }
}

/// Sets up (with `build`) the client of every target the apps `names` feed, in the config's
/// order, each once. Nothing is sent: this finds what `sync` would refuse before its first
/// request (credentials, limits, TLS setup).
fn check_targets<T>(
    config: &Config,
    names: &[String],
    build: impl Fn(&TargetConfig) -> Result<T, TargetError>,
) -> Vec<TargetCheck<T>> {
    let fed = |target: &TargetConfig| {
        names
            .iter()
            .filter_map(|n| config.app(n))
            .any(|app| app.targets.is_empty() || app.targets.contains(&target.name))
    };
    config
        .targets
        .iter()
        .filter(|t| fed(t))
        .map(|t| TargetCheck {
            target: t.name.clone(),
            kind: t.kind.to_string(),
            base_url: idsync_config::load::redact_url(t.base_url.as_str()),
            result: build(t),
            probe: None,
        })
        .collect()
}

/// Probes every target whose client could be set up, one after another (a handful of reads
/// each).
async fn probe_targets(targets: &mut [TargetCheck<Arc<dyn Target>>]) {
    for check in targets.iter_mut() {
        if let Ok(target) = &check.result {
            tracing::info!(target = %check.target, "probing the target");
            check.probe = Some(target.probe().await);
        }
    }
}

/// The default leads of the apps `names`, looked up on each Jira target (a kind whose
/// accounts can lead projects and components) whose client could be set up, with the user
/// rules in force there. Each username is asked for once per target; none on a target that
/// failed its probe (the lead is then reported as not looked up, with the probe's error).
async fn check_leads(
    config: &Config,
    names: &[String],
    targets: &[TargetCheck<Arc<dyn Target>>],
) -> Vec<LeadCheck> {
    let mut found: BTreeMap<(String, String), Result<LeadStatus, TargetError>> = BTreeMap::new();
    let mut checks = Vec::new();
    for (position, app) in config.apps.iter().enumerate() {
        if !names.contains(&app.name) {
            continue;
        }
        for tc in idsync_runner::targets_of(config, app) {
            let Some(checked) = targets.iter().find(|t| t.target == tc.name) else {
                continue;
            };
            let Ok(target) = &checked.result else {
                continue;
            };
            let refused = checked
                .probe
                .as_ref()
                .and_then(|p| p.failure.as_ref())
                .map(|f| f.error.clone());
            if !target.capabilities().leads {
                continue;
            }
            let (rules, section) = app.user_rules_for(&tc.name);
            for (lead, field, username) in [
                (
                    LeadKind::Project,
                    "default_project_lead",
                    &rules.default_project_lead,
                ),
                (
                    LeadKind::Component,
                    "default_component_lead",
                    &rules.default_component_lead,
                ),
            ] {
                let Some(username) = username else {
                    continue;
                };
                let key = (tc.name.clone(), username.clone());
                let result = match (&refused, found.get(&key)) {
                    (Some(error), _) => Err(error.clone()),
                    (None, Some(known)) => known.clone(),
                    (None, None) => {
                        tracing::info!(target = %tc.name, %username, "looking up a default lead");
                        let result = lead_status(target.as_ref(), username).await;
                        found.insert(key, result.clone());
                        result
                    }
                };
                checks.push(LeadCheck {
                    app: app.name.clone(),
                    target: tc.name.clone(),
                    lead,
                    field: format!("apps[{position}].{section}.{field}"),
                    username: username.clone(),
                    result,
                    not_asked: refused.is_some(),
                });
            }
        }
    }
    checks
}

/// Whether `username` is an active account of `target`: one read-only lookup.
async fn lead_status(target: &dyn Target, username: &str) -> Result<LeadStatus, TargetError> {
    // Asking for an empty name would be a malformed request, not an answer.
    if username.trim().is_empty() {
        return Ok(LeadStatus::Missing);
    }
    Ok(match target.read_user(username, &[]).await? {
        None => LeadStatus::Missing,
        Some((user, _)) if user.active => LeadStatus::Active,
        Some(_) => LeadStatus::Inactive,
    })
}

fn print_target<T>(check: &TargetCheck<T>, leads: &[&LeadCheck]) {
    let header = format!(
        "target {} ({}, {})",
        check.target, check.kind, check.base_url
    );
    let probe = match (&check.result, &check.probe) {
        (Err(e), _) => {
            outln!("{header}: FAILED: {}", e.message);
            return;
        }
        (Ok(_), None) => {
            outln!("{header}: client set up (not contacted)");
            return;
        }
        (Ok(_), Some(probe)) => probe,
    };
    outln!("{header}");
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![Cell::new("check"), Cell::new("result")]);
    for (what, shown) in probe_rows(probe) {
        t.add_row(vec![Cell::new(what), Cell::new(shown)]);
    }
    outln!("{t}");
    if let Some(failure) = &probe.failure {
        outln!("  error: {}", failure.error.message);
        outln!("  fix: {}", failure.hint);
    }
    for lead in leads {
        if lead.not_asked {
            outln!(
                "  default lead {} = '{}': not looked up (the target failed its check)",
                lead.field,
                lead.username
            );
            continue;
        }
        match lead.problem() {
            None => outln!(
                "  default lead {} = '{}': active",
                lead.field,
                lead.username
            ),
            Some(problem) => outln!("  error: {problem}"),
        }
    }
}

/// The rows of a target's table: each step, then what was learned.
fn probe_rows(probe: &TargetProbe) -> Vec<(&'static str, String)> {
    // The error itself is printed under the table, with its fix: it is long.
    let step = |step: ProbeStep, passed: String| match probe.passed(step) {
        Some(true) => passed,
        Some(false) => match probe.failure.as_ref().and_then(|f| f.error.status) {
            Some(status) => format!("FAILED (HTTP {status}), see below"),
            None => "FAILED, see below".to_owned(),
        },
        None => "not checked".to_owned(),
    };
    let credentials = match &probe.account {
        Some(account) => format!("accepted (account {account})"),
        None => "accepted".to_owned(),
    };
    let admin = match &probe.admin {
        Some(AdminRights::Confirmed(how)) => format!("yes: {how}"),
        // Not a failure: shown as the product left it.
        Some(AdminRights::NotVerified(why)) => format!("not verified: {why}"),
        None => String::new(),
    };
    let admin = step(ProbeStep::AdminRights, admin);
    let product = match &probe.product {
        Some(info) => info.to_string(),
        None => "not read".to_owned(),
    };
    let not_synced = match (&probe.product, probe.not_synced.as_slice()) {
        (None, _) => "not known".to_owned(),
        (Some(_), []) => "nothing: this version has every resource idsync uses".to_owned(),
        (Some(_), lines) => lines.join("\n"),
    };
    vec![
        ("reachable", step(ProbeStep::Reachable, "yes".to_owned())),
        ("credentials", step(ProbeStep::Credentials, credentials)),
        ("admin rights", admin),
        ("product", product),
        ("not synced at this version", not_synced),
        ("licence seats", seats_text(&probe.seats)),
    ]
}

fn seats_text(seats: &Seats) -> String {
    match seats {
        Seats::NotRead => "not read".to_owned(),
        Seats::NotExposed => "not exposed by the product's REST API".to_owned(),
        Seats::Licences(licences) if licences.is_empty() => "no licence installed".to_owned(),
        Seats::Licences(licences) => licences
            .iter()
            .map(|l| {
                let used = l.used.map(|u| format!(" ({u} in use)")).unwrap_or_default();
                match (l.total, l.remaining) {
                    (None, _) => format!("{}: unlimited{used}", l.licence),
                    (Some(total), Some(left)) => {
                        format!("{}: {left} of {total} left{used}", l.licence)
                    }
                    (Some(total), None) => format!("{}: {total} in all{used}", l.licence),
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn lead_json(check: &LeadCheck) -> Value {
    let mut doc = json!({
        "app": check.app,
        "target": check.target,
        "field": check.field,
        "username": check.username,
        "ok": check.ok(),
        "status": check.status(),
        "asked": !check.not_asked,
    });
    if let Some(problem) = check.problem() {
        doc["message"] = json!(problem);
    }
    if let Err(e) = &check.result {
        doc["error"] = json!({"kind": e.kind, "message": e.message});
    }
    doc
}

fn target_json<T>(check: &TargetCheck<T>) -> Value {
    let mut doc = json!({
        "target": check.target,
        "kind": check.kind,
        "base_url": check.base_url,
        "ok": check.ok(),
    });
    if let Err(e) = &check.result {
        doc["error"] = json!({"kind": e.kind, "message": e.message});
    }
    let Some(probe) = &check.probe else {
        return doc;
    };
    let step = |step: ProbeStep| {
        let status = match probe.passed(step) {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "not_checked",
        };
        let mut doc = json!({"status": status});
        if let Some(failure) = probe.failure.as_ref().filter(|f| f.step == step) {
            doc["error"] = json!({"kind": failure.error.kind, "message": failure.error.message});
            doc["hint"] = json!(failure.hint);
        }
        doc
    };
    doc["reachable"] = step(ProbeStep::Reachable);
    doc["credentials"] = step(ProbeStep::Credentials);
    if let Some(account) = &probe.account {
        doc["credentials"]["account"] = json!(account);
    }
    doc["admin_rights"] = step(ProbeStep::AdminRights);
    match &probe.admin {
        Some(AdminRights::Confirmed(how)) => doc["admin_rights"]["detail"] = json!(how),
        Some(AdminRights::NotVerified(why)) => {
            doc["admin_rights"]["status"] = json!("not_verified");
            doc["admin_rights"]["detail"] = json!(why);
        }
        None => {}
    }
    doc["product"] = json!(probe.product.as_ref().map(|p| &p.product));
    doc["version"] = json!(
        probe
            .product
            .as_ref()
            .and_then(|p| p.version)
            .map(|v| v.to_string())
    );
    doc["not_synced"] = json!(probe.not_synced);
    doc["licence_seats"] = match &probe.seats {
        Seats::NotRead => json!({"status": "not_read"}),
        Seats::NotExposed => json!({"status": "not_exposed"}),
        Seats::Licences(licences) => json!({"status": "read", "licences": licences}),
    };
    if let Some(failure) = &probe.failure {
        doc["error"] = json!({
            "kind": failure.error.kind,
            "message": failure.error.message,
            "step": failure.step.as_str(),
            "hint": failure.hint,
        });
    }
    doc
}

fn error_text(check: &AppCheck) -> String {
    match &check.result {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// `position` is the app's index in the config, to name fields as config errors do; `file`
/// the config, to place problems in it.
async fn check_app(app: &AppConfig, position: usize, file: &Path) -> AppCheck {
    let started = Instant::now();
    // The attributes a sync of this app would read, so that a missing directory extension
    // shows up here rather than at the first sync.
    let result = match EntraSource::new(app, &app.source_attributes()) {
        Ok(source) => source.read(None).await,
        Err(e) => Err(e),
    };
    let problems = match &result {
        Ok(read) => mapping_problems(app, position, &read.snapshot),
        Err(_) => Vec::new(),
    };
    let config_problems = match &result {
        Err(EntraError::Scope { problems, .. }) => Some(idsync_config::locate(
            file,
            problems
                .iter()
                .map(|p| {
                    idsync_config::Problem::new(format!("apps[{position}].{}", p.field), &p.message)
                })
                .collect(),
        )),
        _ => None,
    };
    AppCheck {
        app: app.name.clone(),
        scope: describe_scope(app),
        result,
        config_problems,
        problems,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The manual mappings of the app's group rules, and of each per-target override, that name
/// no source group or several in this read.
fn mapping_problems(
    app: &AppConfig,
    position: usize,
    snapshot: &idsync_model::SourceSnapshot,
) -> Vec<String> {
    let field = format!("apps[{position}].groups");
    let mut problems = idsync_engine::rules::manual_mapping_problems(&app.groups, &field, snapshot);
    for (target, o) in &app.overrides {
        if let Some(groups) = &o.groups {
            let field = format!("apps[{position}].overrides.{target}.groups");
            problems.extend(idsync_engine::rules::manual_mapping_problems(
                groups, &field, snapshot,
            ));
        }
    }
    problems
}

fn describe_scope(app: &AppConfig) -> String {
    let nesting = if app.nested_groups {
        "nested groups expanded"
    } else {
        "nested groups not expanded"
    };
    match &app.scope {
        Scope::Directory => "the whole directory".to_owned(),
        Scope::EnterpriseApp {
            app_id,
            expand_nested_groups,
        } => {
            let nesting = if *expand_nested_groups {
                "members of nested groups too, beyond Entra's own rule"
            } else {
                "direct members of assigned groups, as Entra assigns"
            };
            format!("users assigned to enterprise app {app_id} ({nesting})")
        }
        Scope::Groups { groups } => format!(
            "members of {} ({nesting})",
            groups
                .iter()
                .map(|g| format!("\"{g}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn print_app(check: &AppCheck) {
    outln!("app {}: {}", check.app, check.scope);
    let read = match (&check.result, &check.config_problems) {
        (Ok(read), _) => read,
        (Err(_), Some(located)) => {
            outln!(
                "  FAILED after {} ms: the scope names what the tenant does not have:",
                check.elapsed_ms
            );
            for line in located.to_string().lines() {
                outln!("  {line}");
            }
            return;
        }
        (Err(error), None) => {
            outln!("  FAILED after {} ms: {error}", check.elapsed_ms);
            return;
        }
    };
    let s = &read.stats;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![Cell::new("what"), Cell::new("count")]);
    let ignored = if s.ignored_members.is_empty() && s.ignored_app_assignments == 0 {
        "none".to_owned()
    } else {
        let mut parts: Vec<String> = s
            .ignored_members
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        if s.ignored_app_assignments > 0 {
            parts.push(format!(
                "servicePrincipal assignments {}",
                s.ignored_app_assignments
            ));
        }
        parts.join(", ")
    };
    let requests = s
        .requests
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (what, count) in [
        ("users in scope", s.users_in_scope.to_string()),
        ("  enabled", s.enabled.to_string()),
        ("  disabled", s.disabled.to_string()),
        ("users in the directory", s.directory_users.to_string()),
        ("groups", s.groups.to_string()),
        ("memberships (user in group)", s.memberships.to_string()),
        (
            "nested group memberships",
            s.nested_group_memberships.to_string(),
        ),
        (
            "nested groups expanded",
            s.nested_groups_expanded.to_string(),
        ),
        ("ignored members", ignored),
        ("requests", format!("{} ({requests})", s.requests_total)),
        ("time", format!("{:.2} s", check.elapsed_ms as f64 / 1000.0)),
    ] {
        t.add_row(vec![Cell::new(what), Cell::new(count)]);
    }
    outln!("{t}");
    for note in &read.notes {
        outln!("  note: {note}");
    }
    for problem in &check.problems {
        outln!("  error: {problem}");
    }
}

fn app_json(check: &AppCheck, file: &Path) -> Value {
    match &check.result {
        Ok(read) => json!({
            "app": check.app,
            "ok": check.problems.is_empty(),
            "scope": check.scope,
            "stats": read.stats,
            "notes": read.notes,
            "problems": check.problems,
            "elapsed_ms": check.elapsed_ms,
        }),
        Err(error) => {
            let mut e = json!({"kind": error.kind(), "message": error.to_string()});
            match error {
                EntraError::SignIn { code, .. } => e["aadsts"] = json!(code),
                EntraError::PermissionDenied { permission, .. } => {
                    e["permission"] = json!(permission)
                }
                _ => {}
            }
            if let Some(located) = &check.config_problems {
                e["problems"] = located
                    .problems()
                    .iter()
                    .map(|p| problem_json(file, p))
                    .collect();
            }
            json!({
                "app": check.app,
                "ok": false,
                "scope": check.scope,
                "error": e,
                "elapsed_ms": check.elapsed_ms,
            })
        }
    }
}

fn config_error_json(args: &CheckArgs, error: &ConfigError) -> Value {
    json!({
        "config": args.config.display().to_string(),
        "ok": false,
        "error": {
            "kind": "config",
            "message": error.to_string(),
            "problems": error
                .problems()
                .iter()
                .map(|p| problem_json(&args.config, p))
                .collect::<Vec<_>>(),
        },
    })
}

fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("error: cannot render the JSON document: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_model::TargetErrorKind;

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
}
