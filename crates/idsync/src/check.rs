//! `idsync check`: validate the config, sign in, read the source in its scope, print counts.
//!
//! It changes nothing anywhere and keeps no state: the read is always a full one. The console's
//! "Test configuration" runs the same thing with `--json`.
//!
//! Exit codes: 0 when every app was read, 1 when an app could not be (sign-in, permission,
//! scope, network), 2 when the config itself is wrong.

use std::time::Instant;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use idsync_config::{AppConfig, ConfigError, Scope};
use idsync_entra::{EntraError, EntraSource, SourceRead};
use serde_json::{Value, json};

use crate::CheckArgs;
use crate::exit::CliError;
use crate::store::select_apps;

/// The outcome for one app.
struct AppCheck {
    app: String,
    scope: String,
    result: Result<SourceRead, EntraError>,
    elapsed_ms: u64,
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
    let mut checks = Vec::new();
    for name in &names {
        let Some(app) = config.app(name) else {
            continue;
        };
        tracing::info!(app = %name, "signing in and reading the source");
        checks.push(check_app(app).await);
    }
    let failed: Vec<&AppCheck> = checks.iter().filter(|c| c.result.is_err()).collect();
    if args.json {
        print_json(&json!({
            "config": args.config.display().to_string(),
            "ok": failed.is_empty(),
            "apps": checks.iter().map(app_json).collect::<Vec<_>>(),
        }));
    } else {
        for check in &checks {
            print_app(check);
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        [one] => Err(CliError::Failed(anyhow::anyhow!(
            "app {:?}: {}",
            one.app,
            error_text(one)
        ))),
        many => Err(CliError::Failed(anyhow::anyhow!(
            "{} apps could not be read: {}",
            many.len(),
            many.iter()
                .map(|c| format!("app {:?}: {}", c.app, error_text(c)))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

fn error_text(check: &AppCheck) -> String {
    match &check.result {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

async fn check_app(app: &AppConfig) -> AppCheck {
    let started = Instant::now();
    // The attributes a sync of this app would read, so that a missing directory extension
    // shows up here rather than at the first sync.
    let result = match EntraSource::new(app, &app.source_attributes()) {
        Ok(source) => source.read(None).await,
        Err(e) => Err(e),
    };
    AppCheck {
        app: app.name.clone(),
        scope: describe_scope(app),
        result,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
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
}

fn app_json(check: &AppCheck) -> Value {
    match &check.result {
        Ok(read) => json!({
            "app": check.app,
            "ok": true,
            "scope": check.scope,
            "stats": read.stats,
            "notes": read.notes,
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
