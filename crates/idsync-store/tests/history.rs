//! The history of a run's operations: every result kept, in order, however many there are.

use idsync_model::op_result::{OpResult, OpStatus};
use idsync_model::{Operation, PlannedOperation};
use idsync_store::Store;

fn result(n: usize, target: &str) -> OpResult {
    OpResult {
        planned: PlannedOperation {
            target: target.to_owned(),
            op: Operation::AddMembership {
                user: format!("user{n}"),
                group: "devs".to_owned(),
                key: format!("K{n}"),
            },
            reason: format!("reason {n}"),
            source_id: Some(format!("id{n}")),
        },
        status: if n.is_multiple_of(7) {
            OpStatus::Failed
        } else {
            OpStatus::Done
        },
        error: (n.is_multiple_of(7)).then(|| format!("refused {n}")),
        error_kind: None,
        key: None,
        duration_ms: n as u64,
    }
}

/// More results than one statement writes, from two targets one after the other: numbered on
/// from where the run had got to, each with what it was and how it ended.
#[tokio::test]
async fn every_result_is_kept_in_order_across_targets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_file(&dir.path().join("idsync.db"))
        .await
        .expect("store opens");
    let lease = store.lock_app("hr", false).await.expect("locked");
    let run = store
        .start_run(&lease, "hr", idsync_model::run::Trigger::Manual, false)
        .await
        .expect("run");
    let jira: Vec<OpResult> = (0..2345).map(|n| result(n, "jira")).collect();
    let wiki: Vec<OpResult> = (0..3).map(|n| result(n, "wiki")).collect();
    store.record_operations(run, &jira).await.expect("kept");
    store.record_operations(run, &wiki).await.expect("kept");

    let kept = store.operations(run).await.expect("read");
    assert_eq!(kept.len(), 2348);
    for (i, (op, expected)) in kept.iter().zip(jira.iter().chain(&wiki)).enumerate() {
        assert_eq!(op.seq, i as i64 + 1);
        assert_eq!(op.target, expected.planned.target);
        assert_eq!(op.kind, "add_membership");
        assert_eq!(op.subject, expected.planned.op.user().unwrap_or_default());
        assert_eq!(
            op.status,
            if expected.error.is_some() {
                "failed"
            } else {
                "done"
            }
        );
        assert_eq!(op.error, expected.error);
        assert_eq!(op.duration_ms, expected.duration_ms as i64);
        assert_eq!(op.detail["reason"], expected.planned.reason.as_str());
    }
}
