//! The executor's journal contract, on a small in-memory target: what a phase will do is
//! recorded before any of it is sent, every result of a phase is recorded before the next phase
//! starts, and once the journal fails nothing more is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use idsync_engine::executor::Journal;
use idsync_engine::{ExecOptions, OpResult, OpStatus, execute};
use idsync_model::{
    ActualState, Applied, Capabilities, Operation, PlannedOperation, Target, TargetError,
    TargetKind, TargetUser,
};

/// What happened, in order, seen from both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Before(Vec<String>),
    Sent(String),
    Recorded(Vec<String>),
}

type Log = Mutex<Vec<Event>>;

/// Accounts and memberships in memory; logs every request.
struct MemoryTarget<'a> {
    log: &'a Log,
    caps: Capabilities,
}

fn describe(op: &Operation) -> String {
    format!(
        "{} {}",
        op.kind().as_str(),
        op.user().or(op.group()).unwrap_or_default()
    )
}

#[async_trait::async_trait]
impl Target for MemoryTarget<'_> {
    fn name(&self) -> &str {
        "memory"
    }
    fn kind(&self) -> TargetKind {
        TargetKind::JiraDc
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn discover(&self) -> Result<idsync_model::ProductInfo, TargetError> {
        Ok(idsync_model::ProductInfo {
            product: "Test".into(),
            version: None,
        })
    }

    async fn read_state(&self, _attributes: &[String]) -> Result<ActualState, TargetError> {
        Ok(ActualState::default())
    }
    async fn read_user(
        &self,
        _username: &str,
        _attributes: &[String],
    ) -> Result<Option<(TargetUser, BTreeSet<String>)>, TargetError> {
        Ok(None)
    }
    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        self.log
            .lock()
            .expect("log")
            .push(Event::Sent(describe(op)));
        Ok(match op {
            Operation::CreateUser { user, .. } => Applied::UserKey(format!("key-{user}")),
            _ => Applied::Done,
        })
    }
    fn request_counts(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// Logs what it is given; fails from the `fail_at`-th call to `record` on.
struct LoggingJournal<'a> {
    log: &'a Log,
    fail_at: Option<usize>,
    records: Mutex<usize>,
}

#[async_trait::async_trait]
impl Journal for LoggingJournal<'_> {
    async fn before_phase(&self, operations: &[PlannedOperation]) -> Result<(), String> {
        let ops = operations.iter().map(|p| describe(&p.op)).collect();
        self.log.lock().expect("log").push(Event::Before(ops));
        Ok(())
    }
    async fn record(&self, results: &[OpResult]) -> Result<(), String> {
        let mut n = self.records.lock().expect("count");
        *n += 1;
        if self.fail_at.is_some_and(|at| *n >= at) {
            return Err("disk full".into());
        }
        let done = results.iter().map(|r| describe(&r.planned.op)).collect();
        self.log.lock().expect("log").push(Event::Recorded(done));
        Ok(())
    }
}

fn caps() -> Capabilities {
    Capabilities {
        custom_attributes: false,
        delete_group: false,
        bulk_membership: false,
        leads: false,
        ..Capabilities::FULL
    }
}

fn planned(op: Operation) -> PlannedOperation {
    PlannedOperation {
        target: "memory".into(),
        op,
        reason: "test".into(),
        source_id: Some("src".into()),
    }
}

/// Three accounts created, then added to a group (their keys known only once created).
fn plan() -> Vec<PlannedOperation> {
    let users = ["ada", "bob", "cy"];
    let mut ops: Vec<PlannedOperation> = users
        .iter()
        .map(|u| {
            planned(Operation::CreateUser {
                user: (*u).into(),
                email: None,
                display_name: None,
                attributes: BTreeMap::new(),
                external_id: None,
            })
        })
        .collect();
    ops.extend(users.iter().map(|u| {
        planned(Operation::AddMembership {
            group: "devs".into(),
            key: String::new(),
            user: (*u).into(),
        })
    }));
    ops
}

fn options() -> ExecOptions {
    ExecOptions {
        concurrency: 2,
        record_every: 2,
        ..ExecOptions::default()
    }
}

#[tokio::test]
async fn each_phase_is_announced_before_it_is_sent_and_recorded_before_the_next() {
    let log = Log::default();
    let target = MemoryTarget {
        log: &log,
        caps: caps(),
    };
    let journal = LoggingJournal {
        log: &log,
        fail_at: None,
        records: Mutex::new(0),
    };
    let results = execute(&target, plan(), options(), &journal, |_| {}).await;
    assert!(
        results.iter().all(|r| r.status == OpStatus::Done),
        "{results:?}"
    );
    let log = log.into_inner().expect("log");
    let position = |wanted: &dyn Fn(&Event) -> bool| {
        log.iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("not in {log:?}"))
    };
    let first_create_sent =
        position(&|e| matches!(e, Event::Sent(s) if s.starts_with("create_user")));
    let creates_announced =
        position(&|e| matches!(e, Event::Before(ops) if ops[0].starts_with("create_user")));
    let members_announced =
        position(&|e| matches!(e, Event::Before(ops) if ops[0].starts_with("add_membership")));
    let first_member_sent =
        position(&|e| matches!(e, Event::Sent(s) if s.starts_with("add_membership")));
    assert!(creates_announced < first_create_sent, "{log:?}");
    assert!(members_announced < first_member_sent, "{log:?}");
    // Every creation is recorded before the memberships that depend on it are announced.
    let recorded_creates: usize = log[..members_announced]
        .iter()
        .map(|e| match e {
            Event::Recorded(r) => r.iter().filter(|s| s.starts_with("create_user")).count(),
            _ => 0,
        })
        .sum();
    assert_eq!(recorded_creates, 3, "{log:?}");
    // Batches are at most `record_every` long.
    assert!(
        log.iter()
            .all(|e| !matches!(e, Event::Recorded(r) if r.len() > 2)),
        "{log:?}"
    );
    // The memberships went out with the new accounts' keys.
    assert!(results.iter().any(|r| matches!(&r.planned.op,
        Operation::AddMembership { key, .. } if key == "key-ada")));
}

#[tokio::test]
async fn once_the_journal_fails_nothing_more_is_sent() {
    let log = Log::default();
    let target = MemoryTarget {
        log: &log,
        caps: caps(),
    };
    let journal = LoggingJournal {
        log: &log,
        fail_at: Some(1),
        records: Mutex::new(0),
    };
    let results = execute(&target, plan(), options(), &journal, |_| {}).await;
    let log = log.into_inner().expect("log");
    assert!(
        !log.iter()
            .any(|e| matches!(e, Event::Sent(s) if s.starts_with("add_membership"))),
        "no membership is sent after the journal failed: {log:?}"
    );
    let skipped: Vec<&OpResult> = results
        .iter()
        .filter(|r| r.status == OpStatus::Skipped)
        .collect();
    assert!(skipped.len() >= 3, "{results:?}");
    assert!(
        skipped.iter().all(|r| r
            .error
            .as_deref()
            .is_some_and(|e| e.contains("state store"))),
        "{skipped:?}"
    );
    assert_eq!(results.len(), 6, "every operation has a result");
}
