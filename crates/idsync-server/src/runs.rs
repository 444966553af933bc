//! One run per app at a time, however many triggers arrive. A trigger for an app that is idle
//! starts a run; one that arrives while the app runs is queued, once: a third trigger during
//! the same run joins the queued one instead of stacking another run, and the queued run
//! starts as soon as the current one ends, so no trigger is lost.
//!
//! Runs of one app across processes (a CLI `idsync sync` beside the service) are kept apart by
//! the store's app lock; this module only keeps the service from piling runs up behind it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use idsync_config::Config;
use idsync_runner::{Progress, RunOptions, RunReport, RunStatus, Trigger};
use idsync_store::Store;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use crate::metrics as m;

/// What became of a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Accepted {
    /// The app was idle: its run has started.
    Started,
    /// The app is running: a run starts when it ends.
    Queued,
    /// The app is running and a run is already queued: this trigger joins it.
    AlreadyQueued,
}

/// How a run the coordinator started ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The app the run was of.
    pub app: String,
    /// What started it.
    pub trigger: Trigger,
    /// The run's report, or why idsync itself could not run it (store, rules).
    pub outcome: Result<Arc<RunReport>, String>,
}

/// A run asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// What asked for the run.
    pub trigger: Trigger,
    /// Read the source and every target in full.
    pub full_read: bool,
}

impl Request {
    /// A request with this trigger and no full read.
    pub fn new(trigger: Trigger) -> Self {
        Request {
            trigger,
            full_read: false,
        }
    }

    /// Two requests folded into one queued run: it does what either asked (a full read if
    /// either wanted one) and keeps the first trigger.
    fn join(self, other: Request) -> Request {
        Request {
            trigger: self.trigger,
            full_read: self.full_read || other.full_read,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    running: bool,
    queued: Option<Request>,
}

/// Starts runs of the configured apps, one per app at a time.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    /// The config in force: each run takes it as it is when the run starts.
    config: watch::Receiver<Arc<Config>>,
    store: Store,
    slots: Mutex<HashMap<String, Slot>>,
    finished: broadcast::Sender<Finished>,
    /// How many runs are going on; shutdown waits for it to reach zero.
    active: watch::Sender<usize>,
    /// Set by [`Coordinator::stop`]: runs in progress stop sending, nothing new starts.
    stopping: Arc<AtomicBool>,
}

/// Why a trigger was refused.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("there is no app {0:?} in the config")]
    /// The app is not in the config.
    UnknownApp(String),
    #[error("idsync is stopping: no new run starts")]
    /// The service is stopping.
    Stopping,
}

/// What the runner asks while it applies: whether the service is stopping.
struct StopWatch(Arc<AtomicBool>);

impl Progress for StopWatch {
    fn stopping(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Coordinator {
    /// A coordinator running the apps of the config it is given, with `store`.
    pub fn new(config: watch::Receiver<Arc<Config>>, store: Store) -> Self {
        let (finished, _) = broadcast::channel(64);
        Coordinator {
            inner: Arc::new(Inner {
                config,
                store,
                slots: Mutex::default(),
                finished,
                active: watch::Sender::new(0),
                stopping: Arc::default(),
            }),
        }
    }

    /// Every run that ends, as it ends.
    pub fn subscribe(&self) -> broadcast::Receiver<Finished> {
        self.inner.finished.subscribe()
    }

    /// Whether a run of the app is going on.
    pub fn is_running(&self, app: &str) -> bool {
        self.slots().get(app).is_some_and(|s| s.running)
    }

    /// Asks for a run of `app`: started now, or queued behind the one in progress.
    pub fn trigger(&self, app: &str, request: Request) -> Result<Accepted, TriggerError> {
        if self.config().app(app).is_none() {
            return Err(TriggerError::UnknownApp(app.to_owned()));
        }
        if self.is_stopping() {
            return Err(TriggerError::Stopping);
        }
        let mut slots = self.slots();
        let slot = slots.entry(app.to_owned()).or_default();
        if slot.running {
            return Ok(match slot.queued {
                Some(queued) => {
                    slot.queued = Some(queued.join(request));
                    Accepted::AlreadyQueued
                }
                None => {
                    slot.queued = Some(request);
                    Accepted::Queued
                }
            });
        }
        slot.running = true;
        drop(slots);
        self.inner.active.send_modify(|n| *n += 1);
        let this = self.clone();
        let app = app.to_owned();
        tokio::spawn(async move { this.run_until_queue_empty(app, request).await });
        Ok(Accepted::Started)
    }

    /// Stops: runs in progress send nothing more (operations in flight finish and are
    /// recorded; the run ends `interrupted`), queued runs do not start, triggers are refused.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether [`Coordinator::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Relaxed)
    }

    /// Resolves once no run is going on (queued ones included).
    pub async fn idle(&self) {
        let mut active = self.inner.active.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = active.wait_for(|n| *n == 0).await;
    }

    async fn run_until_queue_empty(self, app: String, first: Request) {
        let mut request = first;
        loop {
            let outcome = self.run_once(&app, request).await;
            let _ = self.inner.finished.send(Finished {
                app: app.clone(),
                trigger: request.trigger,
                outcome,
            });
            let mut slots = self.slots();
            let slot = slots.entry(app.clone()).or_default();
            match slot.queued.take() {
                Some(_) if self.is_stopping() => {
                    slot.running = false;
                    break;
                }
                Some(next) => request = next,
                None => {
                    slot.running = false;
                    break;
                }
            }
        }
        self.inner.active.send_modify(|n| *n = n.saturating_sub(1));
    }

    async fn run_once(&self, app: &str, request: Request) -> Result<Arc<RunReport>, String> {
        let started = Instant::now();
        let trigger = request.trigger;
        let options = RunOptions {
            trigger,
            dry_run: false,
            full_read: request.full_read,
            // A run of the app in another process (the CLI) finishes first.
            wait: true,
        };
        // Every line the run logs carries the app, the trigger and (once the runner has
        // recorded it) the run id.
        let span = tracing::info_span!(
            "run",
            app,
            trigger = trigger.as_str(),
            run_id = tracing::field::Empty
        );
        let config = self.config();
        let result = idsync_runner::sync_app(
            &config,
            app,
            &self.inner.store,
            options,
            Arc::new(StopWatch(Arc::clone(&self.inner.stopping))),
        )
        .instrument(span)
        .await;
        match result {
            Ok(report) => {
                m::record_run(&report, started.elapsed());
                if report.status == RunStatus::Done {
                    m::record_success(app);
                }
                tracing::info!(
                    app,
                    run_id = report.run_id,
                    status = report.status.as_str(),
                    "run ended"
                );
                Ok(Arc::new(report))
            }
            Err(e) => {
                tracing::error!(app, error = %e, "the run could not be done");
                m::record_run_error(app, trigger, started.elapsed());
                Err(e.to_string())
            }
        }
    }

    /// The config in force now.
    fn config(&self) -> Arc<Config> {
        self.inner.config.borrow().clone()
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // Nothing panics while holding this lock; a poisoned one still holds valid slots.
        self.inner.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}
