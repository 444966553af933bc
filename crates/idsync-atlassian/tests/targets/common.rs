//! Helpers shared by the target tests: a started simulator, target configurations pointing at
//! it, and operation builders.

use std::collections::BTreeMap;
use std::sync::Arc;

use atlassian_sim::{AtlassianSim, FaultKind, FaultRule, Product, RunningAtlassianSim, SimConfig};
use idsync_config::{Secret, TargetConfig};
use idsync_model::{Applied, Operation, Target, TargetError, TargetKind, UserChanges};

pub async fn start() -> RunningAtlassianSim {
    AtlassianSim::new(SimConfig::default())
        .start()
        .await
        .expect("simulator starts")
}

/// A target configuration for `kind` on the simulator, with the right token.
pub fn config(sim: &RunningAtlassianSim, kind: TargetKind) -> TargetConfig {
    let c = sim.config();
    let (url, token) = match kind {
        TargetKind::JiraDc => (sim.jira_url(), Some(c.jira_token.clone())),
        TargetKind::ConfluenceDc => (sim.confluence_url(), Some(c.confluence_token.clone())),
        // Bitbucket refuses HTTP access tokens on its admin endpoints: Basic auth.
        TargetKind::BitbucketDc => (sim.bitbucket_url(), None),
        TargetKind::AtlassianCloud => (sim.scim_url(), Some(c.scim_token.clone())),
    };
    let basic = token.is_none();
    let name = kind.as_str().replace("-dc", "").replace("atlassian-", "");
    TargetConfig {
        token: token.map(Secret::new),
        username: basic.then(|| c.admin_user.clone()),
        password: basic.then(|| Secret::new(c.admin_password.clone())),
        timeout_seconds: 10,
        full_read_every_minutes: 0,
        ..TargetConfig::new(name, kind, url.parse().expect("simulator URL"))
    }
}

pub fn build(config: &TargetConfig) -> Arc<dyn Target> {
    idsync_atlassian::build_target(config).expect("target builds")
}

pub fn target(sim: &RunningAtlassianSim, kind: TargetKind) -> Arc<dyn Target> {
    build(&config(sim, kind))
}

/// A target whose token (Bitbucket: password) the simulator does not know.
pub fn wrong_token(sim: &RunningAtlassianSim, kind: TargetKind) -> Arc<dyn Target> {
    let mut config = config(sim, kind);
    if config.token.is_some() {
        config.token = Some(Secret::new("not-the-token"));
    } else {
        config.password = Some(Secret::new("not-the-password"));
    }
    build(&config)
}

pub async fn ok(target: &dyn Target, op: Operation) -> Applied {
    match target.apply(&op).await {
        Ok(applied) => applied,
        Err(e) => panic!("{op:?} failed: {e} ({:?})", e.kind),
    }
}

pub async fn fails(target: &dyn Target, op: Operation) -> TargetError {
    match target.apply(&op).await {
        Ok(applied) => panic!("{op:?} should fail but gave {applied:?}"),
        Err(e) => e,
    }
}

/// Creates a user and returns its key, learning it the way the executor does when the product
/// does not say it (Bitbucket).
pub async fn create_and_key(target: &dyn Target, op: Operation) -> String {
    let user = op.user().unwrap_or_default().to_lowercase();
    match ok(target, op).await {
        Applied::CreatedWithoutKey => target
            .complete_creations(std::slice::from_ref(&user))
            .await
            .expect("creation completed")
            .remove(&user)
            .expect("the new user is reported")
            .expect("the new user is complete"),
        other => key_of(other),
    }
}

pub fn key_of(applied: Applied) -> String {
    match applied {
        Applied::UserKey(key) | Applied::Adopted(key) => key,
        other => panic!("expected a user key, got {other:?}"),
    }
}

// -- operation builders ------------------------------------------------------------------------

pub fn create_group(group: &str) -> Operation {
    Operation::CreateGroup {
        group: group.into(),
    }
}

pub fn delete_group(group: &str) -> Operation {
    Operation::DeleteGroup {
        group: group.into(),
    }
}

pub fn create_user(user: &str) -> Operation {
    Operation::CreateUser {
        user: user.into(),
        // SCIM usernames are e-mail addresses already.
        email: Some(if user.contains('@') {
            user.to_owned()
        } else {
            format!("{user}@example.com")
        }),
        display_name: Some(format!("User {user}")),
        attributes: BTreeMap::new(),
        external_id: Some(format!("entra-{user}")),
    }
}

pub fn create_user_with(user: &str, attributes: &[(&str, &str)]) -> Operation {
    let mut op = create_user(user);
    if let Operation::CreateUser { attributes: a, .. } = &mut op {
        *a = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }
    op
}

pub fn update_user(key: &str, user: &str, email: &str, display_name: &str) -> Operation {
    Operation::UpdateUser {
        key: key.into(),
        user: user.into(),
        changes: UserChanges {
            email: Some(email.into()),
            display_name: Some(display_name.into()),
        },
    }
}

pub fn rename(key: &str, user: &str, new_username: &str) -> Operation {
    Operation::RenameUser {
        key: key.into(),
        user: user.into(),
        new_username: new_username.into(),
    }
}

pub fn set_attribute(key: &str, user: &str, name: &str, value: Option<&str>) -> Operation {
    Operation::SetAttribute {
        key: key.into(),
        user: user.into(),
        name: name.into(),
        value: value.map(str::to_owned),
    }
}

pub fn deactivate(key: &str, user: &str) -> Operation {
    Operation::DeactivateUser {
        key: key.into(),
        user: user.into(),
    }
}

pub fn reactivate(key: &str, user: &str) -> Operation {
    Operation::ReactivateUser {
        key: key.into(),
        user: user.into(),
    }
}

pub fn delete_user(key: &str, user: &str) -> Operation {
    Operation::DeleteUser {
        key: key.into(),
        user: user.into(),
    }
}

pub fn add(group: &str, key: &str, user: &str) -> Operation {
    Operation::AddMembership {
        group: group.into(),
        key: key.into(),
        user: user.into(),
    }
}

pub fn remove(group: &str, key: &str, user: &str) -> Operation {
    Operation::RemoveMembership {
        group: group.into(),
        key: key.into(),
        user: user.into(),
    }
}

/// Sum of the target's request counts whose key contains `fragment`.
pub fn requests(target: &dyn Target, fragment: &str) -> u64 {
    target
        .request_counts()
        .iter()
        .filter(|(k, _)| k.contains(fragment))
        .map(|(_, v)| v)
        .sum()
}

/// The target's request count under exactly `key` (e.g. `"GET /rest/api/2/group/member"`).
pub fn count(target: &dyn Target, key: &str) -> u64 {
    target.request_counts().get(key).copied().unwrap_or(0)
}

/// Every request whose path (with query) contains `path` fails for good: a 403, which is not
/// retried, or a 503 that every retry meets again (`Retry-After: 0` keeps the test quick).
pub fn fail_for_good(sim: &RunningAtlassianSim, path: &str, status: u16) {
    sim.kit().inject(
        FaultRule::once(FaultKind::Status {
            status,
            retry_after: Some(0),
            body: None,
        })
        .on_path(path)
        .times(0),
    );
}

/// Deletes a user and a group, each twice (the second time is `AlreadyDone`), and checks that
/// the simulator holds neither any more.
pub async fn delete_user_and_group(
    t: &dyn Target,
    sim: &RunningAtlassianSim,
    product: Product,
    key: &str,
    user: &str,
    group: &str,
) {
    assert_eq!(ok(t, delete_user(key, user)).await, Applied::Done);
    assert_eq!(ok(t, delete_user(key, user)).await, Applied::AlreadyDone);
    assert!(sim.user(product, user).is_none());
    assert_eq!(ok(t, delete_group(group)).await, Applied::Done);
    assert_eq!(ok(t, delete_group(group)).await, Applied::AlreadyDone);
    assert!(!sim.groups(product).contains(&group.to_owned()));
}

/// The next request whose path contains `path` (and, if given, with `method`) is answered
/// 429 with `Retry-After: 1`.
pub fn throttle_once(sim: &RunningAtlassianSim, path: &str, method: Option<&str>) {
    let rule = FaultRule::once(FaultKind::Status {
        status: 429,
        retry_after: Some(1),
        body: None,
    })
    .on_path(path);
    sim.kit().inject(match method {
        Some(method) => rule.on_method(method),
        None => rule,
    });
}

/// Every request whose path contains `path` is answered 404, as by a server version that
/// lacks the resource.
pub fn missing_resource(sim: &RunningAtlassianSim, path: &str) {
    sim.kit().inject(
        FaultRule::once(FaultKind::Status {
            status: 404,
            retry_after: None,
            body: None,
        })
        .on_path(path)
        .times(0),
    );
}
