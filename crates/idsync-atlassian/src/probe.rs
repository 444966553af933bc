//! What the products' [`Target::probe`](idsync_model::Target::probe) share: which step an
//! error belongs to, and the fix for it. The requests themselves are in the product modules,
//! each with the documentation of what it needs.
//!
//! Every request carries the credentials, so a 401 on the first one (the version) already
//! means they are refused. After the product has accepted them, a 401 or 403 means the
//! account lacks a permission: Bitbucket answers 401 for that (8.14 OpenAPI), and so does
//! Confluence 8.x on admin-only resources (CONFSERVER-98582).

use std::ops::ControlFlow;

use idsync_model::{
    AdminRights, Capabilities, ProbeStep, ProductInfo, TargetError, TargetErrorKind, TargetKind,
    TargetProbe,
};

use reqwest::StatusCode;

use crate::api::{Api, Call, Reply};

/// The first step of a probe, the product and version read (`discovered`): the target
/// answers, and the probe goes on; or, broken off, the probe stopped there.
pub(crate) fn reached(
    discovered: Result<ProductInfo, TargetError>,
    api: &Api,
    capabilities: &Capabilities,
) -> ControlFlow<TargetProbe, TargetProbe> {
    match discovered {
        Ok(info) => ControlFlow::Continue(TargetProbe {
            product: Some(info),
            not_synced: capabilities.unavailable.values().cloned().collect(),
            ..TargetProbe::default()
        }),
        Err(e) => ControlFlow::Break(stop(TargetProbe::default(), api, ProbeStep::Reachable, e)),
    }
}

/// One step of a probe under way: the value `result` holds, or, when it failed, `probe`
/// stopped at `step` by its error and the steps after it broken off.
pub(crate) fn step<T>(
    probe: &mut TargetProbe,
    api: &Api,
    step: ProbeStep,
    result: Result<T, TargetError>,
) -> ControlFlow<(), T> {
    match result {
        Ok(value) => ControlFlow::Continue(value),
        Err(e) => {
            *probe = stop(std::mem::take(probe), api, step, e);
            ControlFlow::Break(())
        }
    }
}

/// Sends `call`, the request `request` that only an administrator may make: its reply, or,
/// when it could not be sent or was refused (401 or 403, after the credentials were
/// accepted), `probe` stopped at [`ProbeStep::AdminRights`].
pub(crate) async fn admin_reply(
    probe: &mut TargetProbe,
    api: &Api,
    request: &str,
    call: Call,
) -> ControlFlow<(), Reply> {
    let reply = step(
        probe,
        api,
        ProbeStep::AdminRights,
        api.send_unchecked(call).await,
    )?;
    if matches!(
        reply.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        *probe = not_admin(std::mem::take(probe), api, request, &reply);
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(reply)
}

/// `probe` stopped by `error`, met while checking `step`.
pub(crate) fn stop(
    probe: TargetProbe,
    api: &Api,
    step: ProbeStep,
    error: TargetError,
) -> TargetProbe {
    let step = match error.kind {
        // No answer, or only failures and refusals to serve: the server is not usable here.
        TargetErrorKind::Unavailable | TargetErrorKind::RateLimited => ProbeStep::Reachable,
        TargetErrorKind::Unauthorized | TargetErrorKind::Forbidden
            if step != ProbeStep::AdminRights =>
        {
            ProbeStep::Credentials
        }
        _ => step,
    };
    let hint = hint(api, step, &error);
    probe.failed(step, error, hint)
}

/// `probe` stopped because `request`, which needs administrator rights, was refused with
/// `reply` (401 or 403) after the credentials were accepted.
pub(crate) fn not_admin(
    probe: TargetProbe,
    api: &Api,
    request: &str,
    reply: &Reply,
) -> TargetProbe {
    let account = match probe.account.as_deref().or(api.basic_username()) {
        Some(name) => format!("the account '{name}'"),
        None => "the account of the personal access token".to_owned(),
    };
    let error = api.err(
        TargetErrorKind::Forbidden,
        format!(
            "{} ({}) accepted the credentials, but {account} may not use {request} (HTTP {}: {}): it lacks the administrator rights idsync needs there",
            api.shown(),
            api.kind,
            reply.status.as_u16(),
            reply.server_message().trim_end_matches(['.', ' ']),
        ),
        Some(reply.status.as_u16()),
    );
    let hint = hint(api, ProbeStep::AdminRights, &error);
    probe.failed(ProbeStep::AdminRights, error, hint)
}

/// Administrator rights confirmed by `request`, which needs `what`.
pub(crate) fn admin_confirmed(request: &str, what: &str) -> AdminRights {
    AdminRights::Confirmed(format!("{request}, which needs {what}, was answered"))
}

fn product(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::JiraDc => "Jira",
        TargetKind::ConfluenceDc => "Confluence",
        TargetKind::BitbucketDc => "Bitbucket",
        TargetKind::AtlassianCloud => "the Atlassian Cloud SCIM directory",
    }
}

/// The fix for `error` at `step`, in the terms of the target's product and credentials.
fn hint(api: &Api, step: ProbeStep, error: &TargetError) -> String {
    let shown = api.shown();
    let basic = api.basic_username().is_some();
    match step {
        ProbeStep::Reachable => match (error.kind, error.status) {
            (TargetErrorKind::Unavailable, None) => format!(
                "check base_url ({shown}) and that this machine reaches it: DNS, proxy, firewall, TLS certificate"
            ),
            (TargetErrorKind::Unavailable, Some(_)) => {
                "the server keeps failing: see its logs, then check again".to_owned()
            }
            (TargetErrorKind::RateLimited, _) => {
                "the server is rate limiting: check again later".to_owned()
            }
            _ if api.kind == TargetKind::AtlassianCloud => format!(
                "base_url ({shown}) does not answer as a SCIM directory: give the directory's SCIM base URL, https://api.atlassian.com/scim/directory/<directory id>"
            ),
            _ => format!(
                "base_url ({shown}) does not answer as {} does: give the address users open, with its context path if there is one (e.g. https://example.com/{})",
                product(api.kind),
                product(api.kind).to_lowercase()
            ),
        },
        ProbeStep::Credentials => match api.kind {
            TargetKind::BitbucketDc => "use `username` and `password` of an account with Admin or System admin permission".to_owned(),
            TargetKind::AtlassianCloud => "regenerate the API key of the identity provider's directory in admin.atlassian.com and set it as `token` (an organization API key or a site API token is refused)".to_owned(),
            TargetKind::JiraDc if basic => "check `username` and `password`, or better, create a personal access token for an administrator account and set it as `token` (Jira 11 turns Basic authentication off by default)".to_owned(),
            TargetKind::ConfluenceDc if basic => "check `username` and `password`, or create a personal access token for an administrator account and set it as `token`".to_owned(),
            _ => format!(
                "create a new personal access token for an administrator account ({} > profile > Personal Access Tokens) and set it as `token`",
                product(api.kind)
            ),
        },
        ProbeStep::AdminRights => match api.kind {
            TargetKind::JiraDc => "give the account the Jira Administrators global permission (Administration > System > Global permissions), or use an administrator's credentials".to_owned(),
            TargetKind::ConfluenceDc => "give the account the Confluence Administrator global permission (General Configuration > Global permissions), or use an administrator's credentials".to_owned(),
            TargetKind::BitbucketDc => "use `username` and `password` of an account with Admin or System admin permission (Administration > Global permissions)".to_owned(),
            TargetKind::AtlassianCloud => "use the directory's own API key as `token`".to_owned(),
        },
    }
}
