//! One run per app at a time, however many triggers arrive. A trigger for an app that is idle
//! starts a run; one that arrives while the app runs is queued, once: a third trigger during
//! the same run joins the queued one instead of stacking another run, and the queued run
//! starts as soon as the current one ends, so no trigger is lost.
//!
//! Runs of one app across processes (a CLI `idsync sync` beside the service) are kept apart by
//! the store's app lock; this module only keeps the service from piling runs up behind it.
//!
//! At a stop ([`Coordinator::stop`]) nothing new starts (runs, dry runs, sign-in syncs: see
//! [`Coordinator::begin`]); a run applying sends nothing more, and a run still reading its
//! source is cut short at once rather than after the source's retries: it has planned nothing,
//! so it is recorded `interrupted` with no operations, and its read is not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use idsync_config::Config;
use idsync_runner::{Progress, RunError, RunOptions, RunReport, RunStatus, Trigger};
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
    /// How much work is going on (runs, queued runs, dry runs, sign-in syncs); shutdown waits
    /// for it to reach zero.
    active: watch::Sender<usize>,
    /// Turned true by [`Coordinator::stop`]: runs in progress stop sending, nothing new starts.
    stopping: watch::Sender<bool>,
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

/// Why a dry run answered no plan.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error(transparent)]
    /// It was refused before it started (unknown app, stopping).
    Refused(#[from] TriggerError),
    #[error(transparent)]
    /// idsync itself could not do it (store, rules).
    Run(#[from] RunError),
}

/// Work the coordinator waits for at a stop (a dry run, a sign-in sync), from
/// [`Coordinator::begin`] until dropped.
pub struct Working(Coordinator);

impl Drop for Working {
    fn drop(&mut self) {
        self.0
            .inner
            .active
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// What the runner says and asks as a run goes on: the phase it is in, and whether the
/// service is stopping.
struct RunWatch {
    stopping: watch::Receiver<bool>,
    reading_source: watch::Sender<bool>,
}

impl Progress for RunWatch {
    fn phase(&self, what: &str) {
        // Until the next phase the run has only read, so cutting it short loses nothing.
        self.reading_source
            .send_replace(what == idsync_runner::phase::READING_SOURCE);
    }

    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

impl RunWatch {
    /// Resolves when the service is stopping while the run reads its source; never once the
    /// run is past its source read (from then on the runner stops on its own, between
    /// operations, and records what it did).
    async fn stopped_reading_source(&self) {
        let mut stopping = self.stopping.clone();
        let mut reading = self.reading_source.subscribe();
        // Neither sender can go while this runs (the coordinator and `self` hold them); were
        // one gone, nothing could stop the run early, which is what waiting for ever does.
        if stopping.wait_for(|s| *s).await.is_err() || reading.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a run cut short during its source read is interrupted.
const STOPPED_READING_SOURCE: &str = "idsync was stopping while the run read its source: nothing was planned or applied, and the read was not kept; the next run reads again";

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
                stopping: watch::Sender::new(false),
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
    /// recorded; the run ends `interrupted`), a run reading its source is cut short, queued
    /// runs do not start, triggers and new work are refused.
    pub fn stop(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Whether [`Coordinator::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// Turns true when [`Coordinator::stop`] is called.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// Counts work that is not a queued run (a dry run, a sign-in sync) until the guard is
    /// dropped, so that a stop waits for it; refused once stopping.
    pub fn begin(&self) -> Result<Working, TriggerError> {
        // Counted before the check: a stop that comes in between then waits for this work,
        // instead of both missing each other.
        self.inner.active.send_modify(|n| *n += 1);
        let working = Working(self.clone());
        if self.is_stopping() {
            return Err(TriggerError::Stopping);
        }
        Ok(working)
    }

    /// A dry run of `app`, now (waiting for a run of the app in progress): the plan, applying
    /// nothing. Refused once stopping; one that is reading its source when the stop comes is
    /// cut short and reported `interrupted`.
    pub async fn dry_run(&self, app: &str, full_read: bool) -> Result<RunReport, DryRunError> {
        if self.config().app(app).is_none() {
            return Err(TriggerError::UnknownApp(app.to_owned()).into());
        }
        let _working = self.begin()?;
        let options = RunOptions {
            trigger: Trigger::Manual,
            dry_run: true,
            full_read,
            wait: true,
        };
        Ok(self.run_app(app, options).await?)
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
        let result = self.run_app(app, options).instrument(span).await;
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

    /// Runs the app with the config in force, cut short if the service stops while the source
    /// is read (see the module docs).
    async fn run_app(&self, app: &str, options: RunOptions) -> Result<RunReport, RunError> {
        let started = Instant::now();
        let config = self.config();
        let watch = Arc::new(RunWatch {
            stopping: self.inner.stopping.subscribe(),
            reading_source: watch::Sender::new(false),
        });
        let run = idsync_runner::sync_app(
            &config,
            app,
            &self.inner.store,
            options,
            Arc::clone(&watch) as Arc<dyn Progress>,
        );
        tokio::select! {
            biased;
            result = run => result,
            () = watch.stopped_reading_source() => {
                tracing::info!(app, "stopping: the run was reading its source, and ends there");
                self.record_stopped(app, options, started).await
            }
        }
    }

    /// Records the end of a run cut short during its source read. Its future is gone, and its
    /// hold on the app's lock with it, but the history still has it running: with the lock
    /// taken again, it is closed `interrupted`.
    async fn record_stopped(
        &self,
        app: &str,
        options: RunOptions,
        started: Instant,
    ) -> Result<RunReport, RunError> {
        let store = &self.inner.store;
        let lease = store.lock_app(app, true).await?;
        let closed = store.close_interrupted_runs(&lease, app).await?;
        let (run_id, status, error) = match closed.iter().max() {
            Some(&run_id) => {
                store
                    .finish_run(
                        run_id,
                        RunStatus::Interrupted,
                        &serde_json::json!({}),
                        &serde_json::json!({ "notes": [STOPPED_READING_SOURCE] }),
                        Some(STOPPED_READING_SOURCE),
                    )
                    .await?;
                (
                    run_id,
                    RunStatus::Interrupted,
                    Some(STOPPED_READING_SOURCE.to_owned()),
                )
            }
            // The run had recorded its own end already (its read had just failed), or another
            // process took the app over and closed it: the history says how it ended.
            None => {
                let last = store.runs(Some(app), 1).await?.into_iter().next();
                let status = last
                    .as_ref()
                    .and_then(|r| serde_json::from_value(serde_json::json!(r.status)).ok())
                    .unwrap_or(RunStatus::Interrupted);
                let run_id = last.as_ref().map_or(0, |r| r.id);
                (run_id, status, last.and_then(|r| r.error))
            }
        };
        Ok(RunReport {
            run_id,
            app: app.to_owned(),
            trigger: options.trigger,
            dry_run: options.dry_run,
            status,
            source: serde_json::Value::Null,
            notes: Vec::new(),
            targets: Vec::new(),
            totals: Default::default(),
            hold: None,
            error,
            config_problems: Vec::new(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            planner_ms: 0,
        })
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
