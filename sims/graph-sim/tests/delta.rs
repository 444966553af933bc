//! Users and groups delta: initial and incremental rounds, removals, minimal responses,
//! split groups, token expiry and forced resync.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use graph_sim::{GraphSim, NewUser, TenantSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{Harness, ids, start, start_sim};

const USER_SELECT: &str =
    "/v1.0/users/delta?$select=id,userPrincipalName,displayName,mail,accountEnabled";

fn spec() -> TenantSpec {
    TenantSpec {
        users: 250,
        groups: 8,
        memberships: 500,
        ..TenantSpec::default()
    }
}

fn by_id(items: &[Value]) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|v| (v["id"].as_str().expect("id").to_owned(), v.clone()))
        .collect()
}

#[tokio::test]
async fn users_initial_round_returns_everyone_then_only_changes() {
    let h = start(&spec()).await;
    let (items, delta_link) = h.delta_round(USER_SELECT, &[]).await;
    assert_eq!(ids(&items), h.sim.user_ids());
    assert!(delta_link.starts_with(&format!("{}/v1.0/users/delta?$deltatoken=", h.sim.base_url)));
    let first = &items[0];
    let keys: BTreeSet<&str> = first
        .as_object()
        .expect("obj")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "userPrincipalName",
            "displayName",
            "mail",
            "accountEnabled"
        ])
    );

    // No changes: an empty round with a new deltaLink.
    let (items, delta_link) = h.delta_round(&delta_link, &[]).await;
    assert!(items.is_empty(), "{items:?}");

    // Add, rename (UPN), disable, soft delete, hard delete; a change to an unselected property.
    let users = h.sim.user_ids();
    let added = h
        .sim
        .add_user(NewUser {
            mail: Some("new.person@contoso.com".into()),
            ..NewUser::new("new.person@contoso.onmicrosoft.com", "New Person")
        })
        .expect("added");
    h.sim
        .update_user(
            &users[0],
            json!({"userPrincipalName": "renamed@contoso.onmicrosoft.com"}),
        )
        .expect("renamed");
    h.sim.disable_user(&users[1]).expect("disabled");
    h.sim.soft_delete_user(&users[2]).expect("soft deleted");
    h.sim.hard_delete_user(&users[3]).expect("hard deleted");
    h.sim
        .update_user(&users[4], json!({"jobTitle": "Chief Tester"}))
        .expect("updated");

    let (items, delta_link) = h.delta_round(&delta_link, &[]).await;
    let got = by_id(&items);
    assert_eq!(got.len(), 5, "{items:#?}");
    assert_eq!(got[&added]["displayName"], "New Person");
    assert_eq!(got[&added]["mail"], "new.person@contoso.com");
    assert_eq!(
        got[&users[0]]["userPrincipalName"],
        "renamed@contoso.onmicrosoft.com"
    );
    assert!(
        got[&users[0]]["displayName"].is_string(),
        "full selected set by default"
    );
    assert_eq!(got[&users[1]]["accountEnabled"], false);
    assert_eq!(got[&users[2]]["@removed"], json!({"reason": "changed"}));
    assert_eq!(got[&users[3]]["@removed"], json!({"reason": "deleted"}));
    assert!(!got.contains_key(&users[4]), "jobTitle is not selected");

    // Restore comes back as a full object; then hard delete of a soft-deleted user.
    h.sim.restore_user(&users[2]).expect("restored");
    let (items, delta_link) = h.delta_round(&delta_link, &[]).await;
    let got = by_id(&items);
    assert_eq!(got.len(), 1);
    assert!(got[&users[2]]["userPrincipalName"].is_string());
    h.sim.soft_delete_user(&users[2]).expect("soft deleted");
    h.sim.hard_delete_user(&users[2]).expect("purged");
    let (items, _) = h.delta_round(&delta_link, &[]).await;
    assert_eq!(
        items,
        vec![json!({"id": users[2], "@removed": {"reason": "deleted"}})]
    );
}

#[tokio::test]
async fn minimal_responses_carry_only_changed_properties() {
    let h = start(&spec()).await;
    let (_, link) = h.delta_round(USER_SELECT, &[]).await;
    let user = h.sim.user_ids()[10].clone();
    h.sim
        .update_user(&user, json!({"displayName": "Changed Name"}))
        .expect("ok");
    let (items, _) = h.delta_round(&link, &[("Prefer", "return=minimal")]).await;
    assert_eq!(
        items,
        vec![json!({"id": user, "displayName": "Changed Name"})]
    );
}

#[tokio::test]
async fn page_size_preference_and_empty_pages() {
    let h = start(&spec()).await;
    let r = h
        .get_with(USER_SELECT, &[("Prefer", "odata.maxpagesize=40")])
        .await;
    assert_eq!(r.values().len(), 40);
    assert_eq!(r.headers["preference-applied"], "odata.maxpagesize=40");
    assert!(r.next_link().is_some() && r.delta_link().is_none());

    h.sim.set_empty_pages(true);
    let mut url = USER_SELECT.to_owned();
    let mut sizes = Vec::new();
    loop {
        let r = h.get(&url).await;
        sizes.push(r.values().len());
        match r.next_link() {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(sizes, vec![0, 200, 0, 50]);
}

/// Graph serves at most 200 users and 200 groups a delta page, and 500 `members@delta`
/// entries over a page's groups, whatever `odata.maxpagesize` asks (a preference; see
/// `PagingKnobs` for the sources); smaller preferences are honoured.
#[tokio::test]
async fn delta_pages_are_no_bigger_than_graph_serves() {
    let sim = GraphSim::new(&TenantSpec {
        users: 450,
        groups: 260,
        memberships: 2_000,
        ..spec()
    });
    let h = start_sim(sim).await;
    for (prefer, expected) in [
        (None, vec![200, 200, 50]),
        (Some("odata.maxpagesize=999"), vec![200, 200, 50]),
        (Some("odata.maxpagesize=150"), vec![150, 150, 150]),
    ] {
        let headers: Vec<(&str, &str)> = prefer.iter().map(|p| ("Prefer", *p)).collect();
        let mut url = USER_SELECT.to_owned();
        let mut sizes = Vec::new();
        loop {
            let r = h.get_with(&url, &headers).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            sizes.push(r.values().len());
            if prefer == Some("odata.maxpagesize=999") && sizes.len() == 1 {
                assert_eq!(r.headers["preference-applied"], "odata.maxpagesize=200");
            }
            match r.next_link() {
                Some(next) => url = next,
                None => break,
            }
        }
        assert_eq!(sizes, expected, "{prefer:?}");
    }

    let snapshot = h.sim.snapshot();
    let total_refs: usize = snapshot.groups.values().map(|g| g.members.len()).sum();
    let mut url = "/v1.0/groups/delta?$select=displayName,members".to_owned();
    let (mut groups_seen, mut refs_seen, mut pages) = (BTreeSet::new(), 0, 0);
    loop {
        let r = h
            .get_with(&url, &[("Prefer", "odata.maxpagesize=999")])
            .await;
        pages += 1;
        assert!(r.values().len() <= 200, "groups per page");
        let refs: usize = r
            .values()
            .iter()
            .map(|g| g["members@delta"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(refs <= 500, "members@delta per page: {refs}");
        refs_seen += refs;
        for g in r.values() {
            groups_seen.insert(g["id"].as_str().expect("id").to_owned());
        }
        match r.next_link() {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(groups_seen.len(), snapshot.groups.len());
    assert_eq!(refs_seen, total_refs);
    // Members, not groups, set the number of pages: each full page holds 500 of them.
    assert!(
        pages >= total_refs.div_ceil(500),
        "{pages} pages for {total_refs}"
    );
}

#[tokio::test]
async fn latest_token_and_id_filter() {
    let h = start(&spec()).await;
    let r = h
        .get("/v1.0/users/delta?$deltatoken=latest&$select=id,displayName")
        .await;
    assert!(r.values().is_empty());
    let link = r.delta_link().expect("deltaLink only");
    assert!(r.next_link().is_none());
    let users = h.sim.user_ids();
    h.sim
        .update_user(&users[0], json!({"displayName": "X"}))
        .expect("ok");
    let (items, _) = h.delta_round(&link, &[]).await;
    assert_eq!(ids(&items), vec![users[0].clone()]);

    let filter = format!(
        "/v1.0/users/delta?$filter=id eq '{}' or id eq '{}'",
        users[5], users[9]
    );
    let (items, _) = h.delta_round(&filter, &[]).await;
    assert_eq!(ids(&items), vec![users[5].clone(), users[9].clone()]);
    let too_many = (0..51)
        .map(|i| format!("id eq '{}'", users[i]))
        .collect::<Vec<_>>()
        .join(" or ");
    let r = h
        .get(&format!("/v1.0/users/delta?$filter={too_many}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.get("/v1.0/users/delta?$filter=displayName eq 'x'").await;
    assert_eq!(r.code(), "Request_UnsupportedQuery");
}

async fn group_state(
    h: &Harness,
    first: &str,
) -> (BTreeMap<String, BTreeSet<String>>, String, usize) {
    // Merge members@delta per group across pages, as clients must.
    let mut url = first.to_owned();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pages = 0;
    loop {
        let r = h.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        pages += 1;
        for g in r.values() {
            let entry = groups
                .entry(g["id"].as_str().expect("id").to_owned())
                .or_default();
            for m in g["members@delta"].as_array().into_iter().flatten() {
                let id = m["id"].as_str().expect("member id").to_owned();
                if m.get("@removed").is_some() {
                    entry.remove(&id);
                } else {
                    entry.insert(id);
                }
            }
        }
        match (r.next_link(), r.delta_link()) {
            (Some(n), None) => url = n,
            (None, Some(d)) => return (groups, d, pages),
            other => panic!("exactly one link expected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn groups_initial_round_has_full_membership_split_across_pages() {
    let sim = GraphSim::new(&spec());
    sim.set_group_delta_budget(3, 25);
    let empty = sim.create_group("Empty group");
    let h = start_sim(sim).await;
    let snapshot = h.sim.snapshot();
    let (groups, _, pages) =
        group_state(&h, "/v1.0/groups/delta?$select=displayName,members").await;
    assert!(pages > 10, "small budgets force many pages, got {pages}");
    for (id, g) in &snapshot.groups {
        assert_eq!(groups.get(id), Some(&g.members), "group {}", g.display_name);
    }
    // A group split across pages appears more than once; an empty group has no members@delta.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut url = "/v1.0/groups/delta?$select=displayName,members".to_owned();
    loop {
        let r = h.get(&url).await;
        assert!(r.values().len() <= 3);
        let refs: usize = r
            .values()
            .iter()
            .map(|g| g["members@delta"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(refs <= 25, "member budget per page");
        for g in r.values() {
            *seen
                .entry(g["id"].as_str().expect("id").to_owned())
                .or_default() += 1;
            if g["id"] == empty.as_str() {
                assert!(g.get("members@delta").is_none());
                assert_eq!(g["displayName"], "Empty group");
            }
        }
        match r.next_link() {
            Some(n) => url = n,
            None => break,
        }
    }
    assert!(seen.values().any(|n| *n > 1), "a large group spans pages");
    assert_eq!(seen[&empty], 1);
}

#[tokio::test]
async fn groups_incremental_round_carries_membership_changes() {
    let h = start(&spec()).await;
    let (_, link, _) = group_state(&h, "/v1.0/groups/delta?$select=displayName,members").await;
    let snapshot = h.sim.snapshot();
    let (gid, group) = snapshot
        .groups
        .iter()
        .find(|(_, g)| g.members.len() >= 2)
        .expect("a populated group");
    let leaving = group.members.iter().next().expect("member").clone();
    let joining = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !group.members.contains(u))
        .expect("an outsider");
    h.sim.add_member(gid, &joining).expect("added");
    h.sim.remove_member(gid, &leaving).expect("removed");
    let renamed = snapshot
        .groups
        .keys()
        .find(|g| *g != gid)
        .expect("other")
        .clone();
    h.sim
        .rename_group(&renamed, "Renamed Group")
        .expect("renamed");
    let new_group = h.sim.create_group("Brand New");
    h.sim.add_member(&new_group, &joining).expect("added");

    let r = h.get(&link).await;
    let got = by_id(r.values());
    assert_eq!(got.len(), 3, "{:#?}", r.values());
    let changes = got[gid]["members@delta"]
        .as_array()
        .expect("member changes only");
    assert_eq!(changes.len(), 2);
    assert!(changes.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": joining})));
    assert!(changes.contains(
        &json!({"@odata.type": "#microsoft.graph.user", "id": leaving,
        "@removed": {"reason": "deleted"}})
    ));
    assert_eq!(got[&renamed]["displayName"], "Renamed Group");
    assert!(got[&renamed].get("members@delta").is_none());
    assert_eq!(got[&new_group]["displayName"], "Brand New");
    assert_eq!(
        got[&new_group]["members@delta"].as_array().map(Vec::len),
        Some(1)
    );
    let next = r.delta_link().expect("one page");

    // Deleting a group and soft-deleting a member.
    let member = h.sim.snapshot().groups[gid]
        .members
        .iter()
        .next()
        .expect("m")
        .clone();
    let member_is_user = h.sim.snapshot().users.contains_key(&member);
    h.sim.delete_group(&new_group).expect("deleted");
    if member_is_user {
        h.sim.soft_delete_user(&member).expect("soft deleted");
    }
    let (items, _) = h.delta_round(&next, &[]).await;
    let got = by_id(&items);
    assert_eq!(
        got[&new_group],
        json!({"id": new_group, "@removed": {"reason": "deleted"}})
    );
    if member_is_user {
        let changes = got[gid]["members@delta"].as_array().expect("changes");
        assert!(
            changes
                .iter()
                .any(|m| m["id"] == member.as_str() && m["@removed"].is_object())
        );
    }
}

#[tokio::test]
async fn expired_tokens_and_forced_resync() {
    let h = start(&spec()).await;
    let (_, link) = h.delta_round(USER_SELECT, &[]).await;
    let r = h.get(USER_SELECT).await;
    let skip = r.next_link().expect("paged");

    h.sim.expire_delta_tokens();
    for url in [&link, &skip] {
        let r = h.get(url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "syncStateNotFound");
    }

    // After a fresh initial round, a forced resync answers 410 with a Location to start over.
    let (_, link) = h.delta_round(USER_SELECT, &[]).await;
    h.sim.force_resync();
    let r = h.get(&link).await;
    assert_eq!(r.status, StatusCode::GONE);
    let location = r.headers["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with(&format!("{}/v1.0/users/delta?", h.sim.base_url)));
    assert!(location.ends_with("$deltatoken="), "{location}");
    assert!(
        location.contains("userPrincipalName"),
        "keeps the query: {location}"
    );
    let (items, _) = h.delta_round(&location, &[]).await;
    assert_eq!(items.len(), 250, "a full round again");
    assert_eq!(items[0].as_object().map(|o| o.len()), Some(5));
    // Groups were armed too.
    let r = h.get("/v1.0/groups/delta").await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(h.get("/v1.0/groups/delta").await.status, StatusCode::OK);
}

#[tokio::test]
async fn replays_repeat_objects_the_client_already_has() {
    let h = start(&spec()).await;
    let (_, link) = h.delta_round(USER_SELECT, &[]).await;
    h.sim.replay_next_delta(3);
    let (items, link) = h.delta_round(&link, &[]).await;
    assert_eq!(ids(&items), h.sim.user_ids()[..3].to_vec());
    let (items, _) = h.delta_round(&link, &[]).await;
    assert!(items.is_empty(), "replays happen once");
}

#[tokio::test]
async fn changes_during_a_round_show_up_in_the_next() {
    let h = start(&spec()).await;
    let r = h.get(USER_SELECT).await;
    let next = r.next_link().expect("paged");
    let early = h.sim.user_ids()[0].clone();
    h.sim
        .update_user(&early, json!({"displayName": "Changed Mid-Round"}))
        .expect("ok");
    let (_, link) = h.delta_round(&next, &[]).await;
    let (items, _) = h.delta_round(&link, &[]).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["displayName"], "Changed Mid-Round");
}

/// The delta function is reached as `delta`, `delta()` (Kiota-generated SDKs) and the fully
/// qualified `microsoft.graph.delta` (https://learn.microsoft.com/graph/delta-query-overview).
#[tokio::test]
async fn the_delta_function_call_forms_are_the_same_function() {
    let h = start(&spec()).await;
    let select = "?$select=id,userPrincipalName,displayName,mail,accountEnabled";
    let (expected, _) = h.delta_round(USER_SELECT, &[]).await;
    for form in [
        "delta()",
        "microsoft.graph.delta",
        "microsoft.graph.delta()",
    ] {
        let (items, link) = h
            .delta_round(&format!("/v1.0/users/{form}{select}"), &[])
            .await;
        assert_eq!(ids(&items), ids(&expected), "{form}");
        // The link it hands out works like any other.
        let (items, _) = h.delta_round(&link, &[]).await;
        assert!(items.is_empty(), "{form}: {items:?}");
    }
    let (groups, _) = h.delta_round("/v1.0/groups/delta", &[]).await;
    let (same, _) = h.delta_round("/v1.0/groups/delta()", &[]).await;
    assert_eq!(ids(&groups), ids(&same));
    // Eight groups; one may come on two pages when its members do not fit in one.
    let distinct: BTreeSet<String> = ids(&groups).into_iter().collect();
    assert_eq!(distinct.len(), 8);
}

/// Properties change tracking does not support (kept outside the directory's main store, and
/// signInActivity): the users delta query refuses them with a 400 that names them.
#[tokio::test]
async fn a_select_of_a_property_delta_does_not_support_is_a_400_naming_it() {
    let h = start(&spec()).await;
    for (select, named) in [
        ("id,birthday", "birthday"),
        ("id,displayName,signInActivity", "signInActivity"),
        ("skills,aboutMe,mail", "skills,aboutMe"),
    ] {
        let r = h
            .get(&format!("/v1.0/users/delta()?$select={select}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{select}: {}", r.body);
        assert_eq!(r.code(), "BadRequest");
        let message = r.body["error"]["message"].as_str().expect("message");
        assert_eq!(
            message,
            format!(
                "Invalid request for delta query: for this entity set, $expand/$select is not \
                 supported for the following properties: {named}"
            )
        );
        assert!(r.body["error"]["innerError"]["request-id"].is_string());
    }
    // A plain list still answers a property kept outside the directory with 501, as before.
    let r = h.get("/v1.0/users?$select=id,birthday").await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    // A name no user has is still "could not find".
    let r = h.get("/v1.0/users/delta?$select=id,birthdate").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Could not find a property named 'birthdate'")),
        "{}",
        r.body
    );
}

/// Page tokens expire by age when the knob is set: a `$skiptoken` (delta round or list) used
/// too late gets 400 `Directory_ExpiredPageToken`; a fresh one and a deltaLink do not. Also
/// reachable over the control API.
#[tokio::test]
async fn page_tokens_used_too_late_are_refused_as_expired() {
    let h = start(&spec()).await;
    h.sim
        .set_page_token_max_age(Some(std::time::Duration::from_millis(500)));
    let (_, delta_link) = h.delta_round(USER_SELECT, &[]).await;
    let first = h.get(USER_SELECT).await;
    let skip = first.next_link().expect("paged");
    let list = h.get("/v1.0/users?$top=5").await;
    let list_skip = list.next_link().expect("paged");
    // In time: fine.
    assert_eq!(h.get(&skip).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    for url in [&skip, &list_skip] {
        let r = h.get(url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.code(), "Directory_ExpiredPageToken");
        assert_eq!(
            r.body["error"]["message"],
            "The specified page token value has expired and can no longer be included in your request."
        );
    }
    // A deltaLink is no page token: it lives its 7 days.
    assert_eq!(h.get(&delta_link).await.status, StatusCode::OK);
    // Starting over works: each page's token is fresh.
    let (items, _) = h.delta_round(USER_SELECT, &[]).await;
    assert_eq!(items.len(), 250);

    // Off again over the control API (and on, with another age).
    let r = h
        .control(
            reqwest::Method::PUT,
            "/_sim/paging",
            Some(json!({"pageTokenMaxAgeMs": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(h.get(&skip).await.status, StatusCode::OK);
    h.control(
        reqwest::Method::PUT,
        "/_sim/paging",
        Some(json!({"pageTokenMaxAgeMs": 0})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(h.get(&skip).await.code(), "Directory_ExpiredPageToken");
}
