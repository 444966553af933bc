//! Sign-in sync: `POST /apps/{app}/users/{user}/sync`, called by an SSO plugin or a reverse
//! proxy as a user signs in, so that their accounts and groups are there before the first page.
//! `user` is an Entra object id, a UPN or a target username. The answer says what changed on
//! each target (operations with reasons and results), as the run recorded with trigger `login`.
//!
//! A repeat for the same app and user within the app's `login_sync_cache_seconds` is answered
//! from memory (`"cached": true`): a proxy may call on every request, and a burst of sign-ins
//! must not become a burst of syncs.

use idsync_config::Config;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;

use crate::error::ApiPath;
use axum::http::StatusCode;
use idsync_runner::{RunError, UserSyncOptions, UserSyncer};
use serde_json::Value;

use super::ApiState;
use crate::error::{ApiError, ErrorEnvelope};
use crate::metrics as m;

/// Answers given lately, by (app, user as given in lower case): until when they hold, and the
/// answer.
type Answers = HashMap<(String, String), (Instant, Arc<Value>)>;

/// App name → the config a syncer was made from, and the syncer.
type Syncers = HashMap<String, (Arc<Config>, Arc<UserSyncer>)>;

/// The service's sign-in syncs: one [`UserSyncer`] per app (its Graph token and target
/// clients kept between sign-ins), and the answers given lately.
#[derive(Clone, Default)]
pub struct LoginSyncs {
    /// Per app: the syncer, with the config it was made from (a config changed through the API
    /// makes a new one).
    syncers: Arc<tokio::sync::Mutex<Syncers>>,
    answers: Arc<Mutex<Answers>>,
}

impl LoginSyncs {
    async fn syncer(&self, state: &ApiState, app: &str) -> Result<Arc<UserSyncer>, RunError> {
        let config = state.config.current();
        let mut syncers = self.syncers.lock().await;
        if let Some((made_from, s)) = syncers.get(app)
            && Arc::ptr_eq(made_from, &config)
        {
            return Ok(Arc::clone(s));
        }
        let syncer = Arc::new(UserSyncer::new(&config, app)?);
        syncers.insert(app.to_owned(), (config, Arc::clone(&syncer)));
        Ok(syncer)
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        // Nothing panics while holding this lock; a poisoned one still holds valid answers.
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer given for this app and user, until it expires.
    fn cached(&self, key: &(String, String)) -> Option<Arc<Value>> {
        let answers = self.answers();
        answers
            .get(key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, v)| Arc::clone(v))
    }

    /// Keeps an answer for `ttl` (its app's window).
    fn keep(&self, key: (String, String), answer: Arc<Value>, ttl: Duration) {
        let mut answers = self.answers();
        let now = Instant::now();
        // Expired answers go as new ones come, each by its own app's window; the map holds
        // the sign-ins of the last window only.
        answers.retain(|_, (until, _)| now < *until);
        answers.insert(key, (now + ttl, answer));
    }
}

/// The user as given, for the cache: the same user in other case (a UPN, a username) is the
/// same sign-in.
fn cache_key(app: &str, user: &str) -> (String, String) {
    (app.to_owned(), idsync_model::name::name_key(user.trim()))
}

fn api_error(e: RunError) -> ApiError {
    match e {
        RunError::UnknownApp(app) => ApiError::not_found(format!(
            "there is no app {app:?}; GET /api/v1/apps lists them"
        )),
        e @ RunError::UnknownUser { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_user", e.to_string())
        }
        RunError::Busy(e) => ApiError::conflict(
            "busy",
            format!(
                "{e}; the sign-in sync gave up waiting (login_sync_wait_seconds): try again once the run ends"
            ),
        ),
        e @ RunError::UserSource { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "source_failed", e.to_string())
        }
        RunError::Store(e) => e.into(),
        e => ApiError::internal(e),
    }
}

/// `POST /apps/{app}/users/{user}/sync`: see the module docs.
#[utoipa::path(
    post,
    path = "/apps/{app}/users/{user}/sync",
    tag = "runs",
    params(
        ("app" = String, Path, description = "The app's name"),
        ("user" = String, Path, description = "Entra object id, user principal name, or target username"),
    ),
    responses(
        (status = 200, description = "What changed for that user on each target (operations with reasons and results); `cached: true` for a repeat within login_sync_cache_seconds", body = Object),
        (status = 404, description = "unknown app or user", body = ErrorEnvelope),
        (status = 409, description = "busy: a run of the app holds it", body = ErrorEnvelope),
        (status = 502, description = "source_failed", body = ErrorEnvelope),
        (status = 503, description = "stopping: idsync is stopping and starts nothing", body = ErrorEnvelope),
    )
)]
pub async fn sync_user(
    State(state): State<ApiState>,
    ApiPath((app, user)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let config = state.config.current();
    let Some(app_config) = config.app(&app) else {
        return Err(api_error(RunError::UnknownApp(app)));
    };
    // Once stopping, nothing is answered, not even from memory: the caller learns at once
    // that this instance is going away (and a stop waits for the syncs it let start).
    let _working = state.coordinator.begin()?;
    let ttl = Duration::from_secs(app_config.login_sync_cache_seconds);
    let key = cache_key(&app, &user);
    if !ttl.is_zero()
        && let Some(answer) = state.logins.cached(&key)
    {
        let mut answer = (*answer).clone();
        answer["cached"] = Value::Bool(true);
        return Ok(Json(answer));
    }
    let started = Instant::now();
    let options = UserSyncOptions::for_app(app_config);
    let result = async {
        let syncer = state.logins.syncer(&state, &app).await?;
        syncer.sync(&state.store, &user, options).await
    }
    .await;
    m::record_login_sync(&app, started.elapsed());
    let report = result.map_err(api_error)?;
    if let Some(run) = &report.run {
        m::record_run(run, started.elapsed());
        tracing::info!(
            app,
            run_id = run.run_id,
            user = report.source_id,
            status = run.status.as_str(),
            "sign-in sync ended"
        );
    }
    // A sync that did not finish cleanly (a target down, an operation refused) is not kept:
    // the next sign-in tries again.
    let settled = report
        .run
        .as_ref()
        .is_none_or(|r| r.status == idsync_runner::RunStatus::Done);
    let mut answer = serde_json::to_value(&report).map_err(ApiError::internal)?;
    answer["cached"] = Value::Bool(false);
    if !ttl.is_zero() && settled {
        state.logins.keep(key, Arc::new(answer.clone()), ttl);
    }
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each answer keeps its own app's window: a sign-in of an app with a short one does not
    /// drop what an app with a long one keeps.
    #[test]
    fn each_answer_expires_by_its_own_apps_window() {
        let logins = LoginSyncs::default();
        let long = cache_key("hr", "Ada@contoso.com");
        let short = cache_key("wiki", "bob");
        logins.keep(
            long.clone(),
            Arc::new(Value::from(1)),
            Duration::from_secs(600),
        );
        logins.keep(short.clone(), Arc::new(Value::from(2)), Duration::ZERO);
        logins.keep(
            cache_key("wiki", "cy"),
            Arc::new(Value::from(3)),
            Duration::ZERO,
        );
        assert_eq!(
            logins
                .cached(&cache_key("hr", "ada@CONTOSO.com"))
                .as_deref(),
            Some(&Value::from(1))
        );
        assert_eq!(logins.cached(&short), None);
        assert_eq!(
            logins.answers().len(),
            2,
            "the expired one went as the next came"
        );
    }
}
