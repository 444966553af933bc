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

use std::path::Path;
use std::time::Instant;

use idsync_config::{AppConfig, ConfigError, Scope};
use idsync_entra::{EntraError, EntraSource, SourceRead};
use serde_json::json;

mod output;
mod targets;

use output::{
    app_json, config_error_json, error_text, lead_json, print_app, print_json, print_target,
    target_json,
};
use targets::{LeadCheck, check_leads, check_targets, probe_targets};

use crate::CheckArgs;
use crate::exit::CliError;
use crate::store::{select_apps, with_stored_entries_if_any};

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
    // The apps and targets created through the admin API are checked too.
    let chosen = match with_stored_entries_if_any(config).await {
        Ok(config) => select_apps(&config, args.app.as_deref()).map(|names| (config, names)),
        Err(e) => Err(e),
    };
    let (config, names) = match chosen {
        Ok(chosen) => chosen,
        Err(error) => {
            if args.json {
                let kind = match error {
                    CliError::Usage(_) => "usage",
                    _ => "failed",
                };
                print_json(&json!({
                    "config": args.config.display().to_string(),
                    "ok": false,
                    "error": {"kind": kind, "message": format!("{error:#}")},
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

#[cfg(test)]
mod tests;
