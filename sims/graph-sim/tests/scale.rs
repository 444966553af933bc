//! A company-sized tenant: 100k users, 2k groups, 500k memberships. Checks counts only
//! (no timing assertions); it shows that generation and paging stay cheap at this size, and
//! how many delta pages a first read of it takes.

mod common;

use graph_sim::{GraphSim, TenantSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_users() {
    let spec = TenantSpec::sized(100_000, 2_000);
    assert_eq!(spec.memberships, 500_000);
    let sim = GraphSim::new(&spec);
    let snapshot_groups = sim.group_ids().len();
    assert_eq!(snapshot_groups, 2_000);
    let h = common::start_sim(sim).await;

    let (users, sizes) = h
        .get_all("/v1.0/users?$select=id,userPrincipalName&$top=999")
        .await;
    assert_eq!(users.len(), 100_000);
    assert_eq!(sizes.len(), 101);

    // Direct user memberships across all groups add up to the target.
    let snapshot = h.sim.snapshot();
    let direct: usize = snapshot
        .groups
        .values()
        .map(|g| {
            g.members
                .iter()
                .filter(|m| snapshot.users.contains_key(*m))
                .count()
        })
        .sum();
    assert_eq!(direct, 500_000);

    // The biggest group pages through /members without trouble.
    let (gid, biggest) = snapshot
        .groups
        .iter()
        .max_by_key(|(_, g)| g.members.len())
        .expect("groups");
    let (members, _) = h
        .get_all(&format!("/v1.0/groups/{gid}/members?$select=id&$top=999"))
        .await;
    assert_eq!(members.len(), biggest.members.len());

    // A first delta read, as idsync makes it (asking for 999 a page, which Graph caps): users
    // 200 a page, groups with their members 500 member references a page (see `PagingKnobs`).
    let prefer = [("Prefer", "odata.maxpagesize=999")];
    let mut url = "/v1.0/users/delta?$select=id,accountEnabled,userPrincipalName".to_owned();
    let mut user_pages = 0;
    loop {
        let r = h.get_with(&url, &prefer).await;
        user_pages += 1;
        assert!(r.values().len() <= 200);
        match r.next_link() {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(user_pages, 500);
    let all_refs: usize = snapshot.groups.values().map(|g| g.members.len()).sum();
    let mut url = "/v1.0/groups/delta?$select=displayName,members".to_owned();
    let mut group_pages = 0;
    loop {
        let r = h.get_with(&url, &prefer).await;
        group_pages += 1;
        match r.next_link() {
            Some(next) => url = next,
            None => break,
        }
    }
    // Every page but the last is full of member references; groups without members add none.
    assert_eq!(
        group_pages,
        all_refs.div_ceil(500),
        "{all_refs} member references"
    );
}
