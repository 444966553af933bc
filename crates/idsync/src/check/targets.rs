//! The targets half of `idsync check`: each target's client set up and probed, and the default
//! leads looked up on the Jira targets, with what failed and its fix.

use std::collections::BTreeMap;
use std::sync::Arc;

use idsync_config::{Config, TargetConfig};
use idsync_model::{LeadKind, ProbeStep, Target, TargetError, TargetProbe};

/// The outcome for one target: its client (`T`) could be set up, or why not; and, once set
/// up, what its probe found.
pub(super) struct TargetCheck<T> {
    pub(super) target: String,
    pub(super) kind: String,
    /// `base_url`, redacted.
    pub(super) base_url: String,
    pub(super) result: Result<T, TargetError>,
    pub(super) probe: Option<TargetProbe>,
}

impl<T> TargetCheck<T> {
    pub(super) fn ok(&self) -> bool {
        self.result.is_ok() && self.probe.as_ref().is_none_or(TargetProbe::ok)
    }

    /// What failed and the fix; `None` when nothing did.
    pub(super) fn failure(&self) -> Option<String> {
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
pub(super) fn step_failed(step: ProbeStep) -> &'static str {
    match step {
        ProbeStep::Reachable => "not reachable",
        ProbeStep::Credentials => "credentials refused",
        ProbeStep::AdminRights => "no administrator rights",
    }
}

/// A default lead (`users.default_project_lead` or `users.default_component_lead`) of an app,
/// looked up on one Jira target it feeds.
pub(super) struct LeadCheck {
    pub(super) app: String,
    pub(super) target: String,
    pub(super) lead: LeadKind,
    /// As config errors name fields: `apps[0].users.default_project_lead`, or
    /// `apps[0].overrides.jira.users.default_project_lead` when an override sets the rules.
    pub(super) field: String,
    pub(super) username: String,
    /// `Err` when the target could not be asked.
    pub(super) result: Result<LeadStatus, TargetError>,
    /// Not asked at all: the target failed its probe (whose error `result` holds), which is
    /// reported, with its fix, for the target.
    pub(super) not_asked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeadStatus {
    Active,
    Missing,
    Inactive,
}

impl LeadCheck {
    pub(super) fn ok(&self) -> bool {
        matches!(self.result, Ok(LeadStatus::Active))
    }

    pub(super) fn status(&self) -> &'static str {
        match self.result {
            Ok(LeadStatus::Active) => "active",
            Ok(LeadStatus::Missing) => "missing",
            Ok(LeadStatus::Inactive) => "inactive",
            Err(_) => "lookup_failed",
        }
    }

    /// What is wrong and the fix; `None` when the lead is fine.
    pub(super) fn problem(&self) -> Option<String> {
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

/// Sets up (with `build`) the client of every target the apps `names` feed, in the config's
/// order, each once. Nothing is sent: this finds what `sync` would refuse before its first
/// request (credentials, limits, TLS setup).
pub(super) fn check_targets<T>(
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
pub(super) async fn probe_targets(targets: &mut [TargetCheck<Arc<dyn Target>>]) {
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
pub(super) async fn check_leads(
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
pub(super) async fn lead_status(
    target: &dyn Target,
    username: &str,
) -> Result<LeadStatus, TargetError> {
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
