//! The planner alone on a synthetic directory: `cargo bench -p idsync-engine --bench planner --
//! --users 100000 --groups 2000 --memberships 500000`. Prints the time of a first plan (empty
//! target) and of a steady-state plan (target already in step, 1% churn), each the best of 3,
//! then the peak heap of one more plan of each (a counting allocator, off while timing so that
//! its atomics do not weigh on the times) and a digest of the whole plan: a change to the planner
//! that must not change its output can be checked by comparing the digests before and after.

// A global allocator is the only way to measure the planner's own peak heap, and implementing
// one takes `unsafe`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idsync_config::{GroupRules, MappingMode, UserRules};
use idsync_engine::{
    CompiledGroupRules, CompiledUserRules, Link, ManagedMemberships, PlanInput, plan,
};
use idsync_model::{
    ActualState, Capabilities, SourceGroup, SourceSnapshot, SourceUser, TargetUser,
};

/// Counts live heap bytes and their peak while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// `plan` only frees what it allocated, so `LIVE` (reset to 0 before it) stays the heap it holds;
// the wrapping add and the guard only keep a stray free of an older block from faking a peak.
fn count_alloc(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed).wrapping_add(size);
        if live < isize::MAX as usize {
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
    }
}

fn count_free(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        count_free(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's arguments.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_alloc(new_size);
            count_free(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak heap it added (the result included).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (out, PEAK.load(Ordering::Relaxed))
}

/// A digest of everything in a plan (`Debug` shows the fields serde skips, too).
fn digest(plan: &impl std::fmt::Debug) -> u64 {
    struct Sink(std::hash::DefaultHasher);
    impl std::fmt::Write for Sink {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut sink = Sink(std::hash::DefaultHasher::new());
    let _ = std::fmt::Write::write_fmt(&mut sink, format_args!("{plan:?}"));
    sink.0.finish()
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A generated source: `users` users, `groups` groups, and `memberships` spread over them.
fn source(users: usize, groups: usize, memberships: usize) -> SourceSnapshot {
    let mut snapshot = SourceSnapshot::default();
    for i in 0..users {
        let attributes = BTreeMap::from([
            (
                "userPrincipalName".to_owned(),
                format!("user{i}@contoso.com"),
            ),
            ("mail".to_owned(), format!("user{i}@contoso.com")),
            ("displayName".to_owned(), format!("User {i}")),
        ]);
        snapshot.users.insert(
            format!("id-{i:08}"),
            SourceUser {
                id: format!("id-{i:08}"),
                enabled: true,
                attributes,
            },
        );
    }
    for g in 0..groups {
        snapshot.groups.insert(
            format!("g-{g:05}"),
            SourceGroup {
                id: format!("g-{g:05}"),
                display_name: format!("group-{g}"),
                user_members: BTreeSet::new(),
                group_members: BTreeSet::new(),
            },
        );
    }
    // A deterministic spread of memberships (an LCG, so that runs compare).
    let mut x: u64 = 42;
    let group_ids: Vec<String> = snapshot.groups.keys().cloned().collect();
    for m in 0..memberships {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let g = &group_ids[(x >> 33) as usize % groups.max(1)];
        let u = format!("id-{:08}", m % users.max(1));
        if let Some(group) = snapshot.groups.get_mut(g) {
            group.user_members.insert(u);
        }
    }
    snapshot
}

/// The target in step with `snapshot` (every account and membership exists, all linked and
/// managed), but for 1% of users, renamed by hand.
fn steady_state(snapshot: &SourceSnapshot) -> (ActualState, Vec<Link>, ManagedMemberships) {
    let mut actual = ActualState::default();
    let mut links = Vec::new();
    let mut managed = BTreeSet::new();
    for (id, u) in &snapshot.users {
        let n: usize = id[3..].parse().unwrap_or(0);
        let name = format!("user{n}");
        let churned = n.is_multiple_of(100);
        actual.users.push(TargetUser {
            key: format!("K{n}"),
            username: if churned {
                format!("old{n}")
            } else {
                name.clone()
            },
            email: u.attributes.get("mail").cloned(),
            display_name: u.attributes.get("displayName").cloned(),
            active: true,
            attributes: BTreeMap::new(),
            external_id: None,
        });
        links.push(Link::new("bench", id.clone(), format!("K{n}"), name));
    }
    for g in snapshot.groups.values() {
        actual.groups.insert(g.display_name.clone());
        let keys: BTreeSet<String> = g
            .user_members
            .iter()
            .map(|u| format!("K{}", u[3..].parse::<usize>().unwrap_or(0)))
            .collect();
        for k in &keys {
            managed.insert((g.display_name.clone(), k.clone()));
        }
        actual.memberships.insert(g.display_name.clone(), keys);
    }
    let managed: ManagedMemberships = managed.into_iter().collect();
    (actual, links, managed)
}

fn main() {
    let users = arg("--users", 100_000);
    let groups = arg("--groups", 2_000);
    let memberships = arg("--memberships", 500_000);
    let snapshot = source(users, groups, memberships);
    let caps = Capabilities {
        custom_attributes: false,
        bulk_membership: false,
        ..Capabilities::FULL
    };
    let user_rules = CompiledUserRules::compile(
        &UserRules {
            username: idsync_config::UsernameRule {
                strip_domain: true,
                lowercase: true,
                ..Default::default()
            },
            ..UserRules::default()
        },
        "users",
    )
    .expect("valid rules");
    let group_rules = CompiledGroupRules::compile(
        &GroupRules {
            mapping: MappingMode::OnTheFly,
            ..GroupRules::default()
        },
        "groups",
    )
    .expect("valid rules");

    let time = |actual: &ActualState, links: &[Link], managed: &ManagedMemberships| {
        let run = || {
            plan(&PlanInput {
                app: "bench",
                target: "jira",
                capabilities: &caps,
                snapshot: &snapshot,
                source_complete: true,
                actual,
                links,
                managed_memberships: managed,
                users: &user_rules,
                groups: &group_rules,
                nested_groups: true,
            })
        };
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let p = run();
            best = best.min(t.elapsed());
            drop(p);
        }
        let (p, peak) = peak_of(run);
        (best, p.operations.len(), peak, digest(&p))
    };

    println!("planner: {users} users, {groups} groups, {memberships} memberships");
    let (t, ops, peak, digest) = time(&ActualState::default(), &[], &ManagedMemberships::default());
    println!(
        "  first plan (empty target): {ops} operations in {} ms, peak heap {:.1} MB, digest {digest:016x}",
        t.as_millis(),
        mb(peak)
    );

    // Steady state: every account and membership exists; then 1% of users differ.
    let (actual, links, managed) = steady_state(&snapshot);
    let (t, ops, peak, digest) = time(&actual, &links, &managed);
    println!(
        "  steady state, 1% renamed: {ops} operations in {} ms, peak heap {:.1} MB, digest {digest:016x}",
        t.as_millis(),
        mb(peak)
    );
}
