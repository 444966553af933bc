//! Syncs each app with a `schedule` on its own. One task per scheduled app: it works out the
//! next moment from the schedule, waits for it on the [`Clock`], and hands a trigger to the
//! [`Coordinator`], which queues it if the app is still running. The next moment of an interval
//! counts from the last start, recorded in the history, so that a restart of the service does
//! not add a run. The tasks follow the config in force: apps created, changed or deleted
//! through the admin API are scheduled, rescheduled or no longer scheduled at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use idsync_config::{Config, Schedule};
use idsync_runner::Trigger;
use idsync_store::Store;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::runs::{Coordinator, Request};

/// When each scheduled app runs next, for the API to show.
#[derive(Clone, Default)]
pub struct NextRuns(Arc<Mutex<BTreeMap<String, OffsetDateTime>>>);

impl NextRuns {
    /// When `app` runs next; `None` for an app without a schedule.
    pub fn get(&self, app: &str) -> Option<OffsetDateTime> {
        self.lock().get(app).copied()
    }

    fn set(&self, app: &str, when: Option<OffsetDateTime>) {
        let mut next = self.lock();
        match when {
            Some(when) => next.insert(app.to_owned(), when),
            None => next.remove(app),
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, OffsetDateTime>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts one task per scheduled app, and keeps them in step with the config in force: an
/// app added, removed or given another schedule (through the admin API) gets its task
/// started, stopped or started afresh. Everything ends when `stop` turns true.
pub fn start(
    mut config: watch::Receiver<Arc<Config>>,
    store: Store,
    coordinator: Coordinator,
    clock: Arc<dyn Clock>,
    next_runs: NextRuns,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Each scheduled app's task, with the schedule it follows (as written).
        let mut tasks: BTreeMap<String, (String, tokio::task::JoinHandle<()>)> = BTreeMap::new();
        loop {
            let wanted: BTreeMap<String, Schedule> = config
                .borrow_and_update()
                .apps
                .iter()
                .filter_map(|app| Some((app.name.clone(), app.schedule.clone()?)))
                .collect();
            let stale: Vec<String> = tasks
                .iter()
                .filter(|(app, (text, _))| wanted.get(*app).is_none_or(|s| s.to_string() != **text))
                .map(|(app, _)| app.clone())
                .collect();
            for app in stale {
                if let Some((_, task)) = tasks.remove(&app) {
                    // A task only waits or hands a trigger over (the run itself is the
                    // coordinator's): stopping it anywhere loses nothing.
                    task.abort();
                    let _ = task.await;
                    next_runs.set(&app, None);
                }
            }
            for (app, schedule) in wanted {
                if tasks.contains_key(&app) {
                    continue;
                }
                let text = schedule.to_string();
                let task = AppSchedule {
                    app: app.clone(),
                    schedule,
                    store: store.clone(),
                    coordinator: coordinator.clone(),
                    clock: Arc::clone(&clock),
                    next_runs: next_runs.clone(),
                };
                tasks.insert(app, (text, tokio::spawn(task.run(stop.clone()))));
            }
            let changed = tokio::select! {
                changed = config.changed() => changed.is_ok(),
                _ = stop.wait_for(|stopping| *stopping) => break,
            };
            if !changed {
                // The config can no longer change: the tasks go on until the stop.
                let _ = stop.wait_for(|stopping| *stopping).await;
                break;
            }
        }
        // Each task sees the stop too.
        for (_, (_, task)) in tasks {
            let _ = task.await;
        }
    })
}

struct AppSchedule {
    app: String,
    schedule: Schedule,
    store: Store,
    coordinator: Coordinator,
    clock: Arc<dyn Clock>,
    next_runs: NextRuns,
}

impl AppSchedule {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut last_started = self.last_started_from_history().await;
        loop {
            let now = self.clock.now();
            let Some(next) = self.schedule.next_run(last_started, now) else {
                tracing::warn!(app = self.app, schedule = %self.schedule, "the schedule has no further occurrence");
                self.next_runs.set(&self.app, None);
                return;
            };
            self.next_runs.set(&self.app, Some(next));
            tokio::select! {
                () = self.clock.sleep_until(next) => {}
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
            last_started = Some(self.clock.now());
            match self
                .coordinator
                .trigger(&self.app, Request::new(Trigger::Schedule))
            {
                Ok(accepted) => {
                    tracing::info!(app = self.app, ?accepted, "scheduled sync");
                }
                Err(e) => {
                    tracing::error!(app = self.app, error = %e, "scheduled sync refused");
                    return;
                }
            }
        }
    }

    async fn last_started_from_history(&self) -> Option<OffsetDateTime> {
        match self.store.last_run_started(&self.app).await {
            Ok(started) => started.and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()),
            Err(e) => {
                // Without the history the schedule starts afresh: one run now, then on time.
                tracing::warn!(app = self.app, error = %e, "cannot read when the app last ran");
                None
            }
        }
    }
}
