//! How `idsync check` shows what it found: a table per app and per target on the console, or
//! one JSON document (`--json`) whose targets carry the same rows as their tables.

use std::path::Path;

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use idsync_config::ConfigError;
use idsync_entra::EntraError;
use idsync_model::{AdminRights, ProbeStep, Seats, TargetProbe};
use serde_json::{Value, json};

use super::AppCheck;
use super::targets::{LeadCheck, TargetCheck};
use crate::CheckArgs;
use crate::output::problem_json;

pub(super) fn print_target<T>(check: &TargetCheck<T>, leads: &[&LeadCheck]) {
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
pub(super) fn probe_rows(probe: &TargetProbe) -> Vec<(&'static str, String)> {
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

pub(super) fn seats_text(seats: &Seats) -> String {
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

pub(super) fn lead_json(check: &LeadCheck) -> Value {
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

pub(super) fn target_json<T>(check: &TargetCheck<T>) -> Value {
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

pub(super) fn error_text(check: &AppCheck) -> String {
    match &check.result {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

pub(super) fn print_app(check: &AppCheck) {
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

pub(super) fn app_json(check: &AppCheck, file: &Path) -> Value {
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

pub(super) fn config_error_json(args: &CheckArgs, error: &ConfigError) -> Value {
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

pub(super) fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("error: cannot render the JSON document: {e}"),
    }
}
