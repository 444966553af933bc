//! `idsync check`: validate the config, sign in, read the source in its scope, print counts;
//! and set up the client of every target the apps feed, as `sync` would (nothing is sent to
//! the targets), so that a setting only the client refuses fails here too.
//!
//! It changes nothing anywhere and keeps no state: the read is always a full one. The console's
//! "Test configuration" runs the same thing with `--json`.
//!
//! Exit codes: 0 when every app was read (its manual group mappings each naming exactly one
//! source group) and every target's client set up, 1 when an app could not be read (sign-in,
//! permission, scope, network), a manual mapping names no source group or several, or a
//! target's client could not be set up, 2 when the config itself is wrong.

use std::time::Instant;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use idsync_config::{AppConfig, Config, ConfigError, Scope, TargetConfig};
use idsync_entra::{EntraError, EntraSource, SourceRead};
use idsync_model::TargetError;
use serde_json::{Value, json};

use crate::CheckArgs;
use crate::exit::CliError;
use crate::store::select_apps;

/// The outcome for one app.
struct AppCheck {
    app: String,
    scope: String,
    result: Result<SourceRead, EntraError>,
    /// What the read shows wrong in the rules: a manual mapping naming no source group, or
    /// several. A sync would run, but not as the config means it.
    problems: Vec<String>,
    elapsed_ms: u64,
}

/// The outcome for one target: its client could be set up, or why not.
struct TargetCheck {
    target: String,
    kind: String,
    /// `base_url`, redacted.
    base_url: String,
    result: Result<(), TargetError>,
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
    let targets = check_targets(&config, &names, |t| {
        idsync_atlassian::build_target(t).map(|_| ())
    });
    let mut checks = Vec::new();
    for name in &names {
        let Some(app) = config.app(name) else {
            continue;
        };
        tracing::info!(app = %name, "signing in and reading the source");
        let position = config.apps.iter().position(|a| a.name == app.name);
        checks.push(check_app(app, position.unwrap_or_default()).await);
    }
    let mut failures: Vec<String> = checks
        .iter()
        .filter(|c| c.result.is_err())
        .map(|c| format!("app {:?}: {}", c.app, error_text(c)))
        .collect();
    failures.extend(checks.iter().flat_map(|c| {
        c.problems
            .iter()
            .map(move |p| format!("app {:?}: {p}", c.app))
    }));
    failures.extend(targets.iter().filter_map(|t| {
        t.result
            .as_ref()
            .err()
            .map(|e| format!("target {:?}: {}", t.target, e.message))
    }));
    if args.json {
        print_json(&json!({
            "config": args.config.display().to_string(),
            "ok": failures.is_empty(),
            "warnings": config.warnings,
            "apps": checks.iter().map(app_json).collect::<Vec<_>>(),
            "targets": targets.iter().map(target_json).collect::<Vec<_>>(),
        }));
    } else {
        for warning in &config.warnings {
            outln!("warning: {warning}");
        }
        for check in &checks {
            print_app(check);
        }
        for target in &targets {
            print_target(target);
        }
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
fn check_targets(
    config: &Config,
    names: &[String],
    build: impl Fn(&TargetConfig) -> Result<(), TargetError>,
) -> Vec<TargetCheck> {
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
        })
        .collect()
}

fn print_target(check: &TargetCheck) {
    match &check.result {
        Ok(()) => outln!(
            "target {} ({}, {}): client set up (not contacted)",
            check.target,
            check.kind,
            check.base_url
        ),
        Err(e) => outln!(
            "target {} ({}, {}): FAILED: {}",
            check.target,
            check.kind,
            check.base_url,
            e.message
        ),
    }
}

fn target_json(check: &TargetCheck) -> Value {
    let mut doc = json!({
        "target": check.target,
        "kind": check.kind,
        "base_url": check.base_url,
        "ok": check.result.is_ok(),
    });
    if let Err(e) = &check.result {
        doc["error"] = json!({"kind": e.kind, "message": e.message});
    }
    doc
}

fn error_text(check: &AppCheck) -> String {
    match &check.result {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// `position` is the app's index in the config, to name fields as config errors do.
async fn check_app(app: &AppConfig, position: usize) -> AppCheck {
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
    AppCheck {
        app: app.name.clone(),
        scope: describe_scope(app),
        result,
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
        Scope::EnterpriseApp { app_id } => {
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
    let read = match &check.result {
        Ok(read) => read,
        Err(error) => {
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

fn app_json(check: &AppCheck) -> Value {
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
            "problems": error.problems().iter().map(|p| json!({
                "field": p.field,
                "line": p.line,
                "env_var": p.env_var,
                "message": p.message,
            })).collect::<Vec<_>>(),
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
