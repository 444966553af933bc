//! Prometheus metrics, served at `/metrics`. The runner and the HTTP clients record through the
//! `metrics` facade (a no-op in the one-shot CLI, where no recorder is installed); the service
//! installs one recorder per process and renders it on each scrape.
//!
//! Names follow Prometheus' conventions: `_total` for counters, base units (seconds) in names.

use std::sync::OnceLock;
use std::time::Duration;

use idsync_runner::{RunReport, Trigger};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Run and sign-in durations, in seconds: a sign-in sync is expected well under a second, a
/// first sync of a large tenant takes minutes.
const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The process's recorder: installed by the first service started in the process (tests start
/// several), shared by the others.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first (by an embedding program); its
        // figures then go there, and /metrics shows what this handle saw: nothing.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(
        "idsync_runs_total",
        "Sync runs, by app, trigger and status."
    );
    metrics::describe_histogram!(
        "idsync_run_duration_seconds",
        metrics::Unit::Seconds,
        "How long sync runs took, by app and trigger."
    );
    metrics::describe_counter!(
        "idsync_operations_total",
        "Operations applied to targets, by target, kind and result."
    );
    metrics::describe_gauge!(
        "idsync_last_success_timestamp_seconds",
        metrics::Unit::Seconds,
        "When each app's last run that ended done finished (unix time)."
    );
    metrics::describe_histogram!(
        "idsync_login_sync_duration_seconds",
        metrics::Unit::Seconds,
        "How long sign-in syncs of one user took, by app."
    );
    metrics::describe_counter!(
        "idsync_http_requests_total",
        "Requests sent to Microsoft Graph and Atlassian products, by service and instance (every attempt)."
    );
    metrics::describe_counter!(
        "idsync_http_throttle_waits_total",
        "Waits before retrying a throttled or failed request, by service and instance."
    );
    metrics::describe_histogram!(
        "idsync_http_retry_wait_seconds",
        metrics::Unit::Seconds,
        "How long each wait before a retry was (Retry-After or backoff), by service and instance."
    );
}

/// A run that ended (whatever its status).
pub fn record_run(report: &RunReport, took: Duration) {
    let app = report.app.clone();
    let trigger = report.trigger.as_str();
    counter!("idsync_runs_total", "app" => app.clone(), "trigger" => trigger, "status" => report.status.as_str())
        .increment(1);
    histogram!("idsync_run_duration_seconds", "app" => app, "trigger" => trigger)
        .record(took.as_secs_f64());
    // Counted per (target, kind, result) first: a first sync applies millions of operations.
    let mut counts: std::collections::BTreeMap<(&str, &'static str, &'static str), u64> =
        std::collections::BTreeMap::new();
    for target in &report.targets {
        for result in &target.operations {
            let outcome = result.status.as_str();
            *counts
                .entry((&target.target, result.planned.op.kind().as_str(), outcome))
                .or_default() += 1;
        }
    }
    for ((target, kind, outcome), n) in counts {
        counter!(
            "idsync_operations_total",
            "target" => target.to_owned(),
            "kind" => kind,
            "result" => outcome
        )
        .increment(n);
    }
}

/// A sign-in sync of one user, however it ended (answers from the cache are not counted).
pub fn record_login_sync(app: &str, took: Duration) {
    histogram!("idsync_login_sync_duration_seconds", "app" => app.to_owned())
        .record(took.as_secs_f64());
}

/// A run idsync itself could not do (store or rules trouble).
pub fn record_run_error(app: &str, trigger: Trigger, took: Duration) {
    counter!("idsync_runs_total", "app" => app.to_owned(), "trigger" => trigger.as_str(), "status" => "error")
        .increment(1);
    histogram!("idsync_run_duration_seconds", "app" => app.to_owned(), "trigger" => trigger.as_str())
        .record(took.as_secs_f64());
}

/// The app's run ended done, now.
pub fn record_success(app: &str) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    #[allow(clippy::cast_precision_loss)] // unix seconds fit an f64 exactly until the year 2^53.
    gauge!("idsync_last_success_timestamp_seconds", "app" => app.to_owned()).set(now as f64);
}
