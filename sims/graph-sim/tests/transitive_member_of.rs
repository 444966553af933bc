//! `/users/{id}/transitiveMemberOf`: every group a user is in, through nested groups too,
//! addressed by object id or UPN, paged.

mod common;

use graph_sim::{GraphSim, NewUser};
use reqwest::StatusCode;

use common::{ids, start_sim};

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn nested_groups_are_listed_once_and_paged() {
    let sim = GraphSim::from_json("{}").expect("empty tenant");
    let ada = sim
        .add_user(NewUser::new("ada@contoso.com", "Ada"))
        .expect("user");
    let bob = sim
        .add_user(NewUser::new("bob@contoso.com", "Bob"))
        .expect("user");
    let team = sim.create_group("team");
    let dept = sim.create_group("dept");
    let all = sim.create_group("all");
    let other = sim.create_group("other");
    sim.add_member(&team, &ada).expect("member");
    sim.add_member(&dept, &team).expect("nested");
    sim.add_member(&all, &dept).expect("nested");
    // A cycle ends.
    sim.add_member(&team, &all).expect("nested");
    sim.add_member(&other, &bob).expect("member");
    let h = start_sim(sim).await;

    let (items, sizes) = h
        .get_all(&format!(
            "/v1.0/users/{ada}/transitiveMemberOf?$select=id,displayName&$top=2"
        ))
        .await;
    assert_eq!(sizes, vec![2, 1]);
    assert_eq!(
        sorted(ids(&items)),
        sorted(vec![team.clone(), dept.clone(), all.clone()])
    );
    assert!(
        items
            .iter()
            .all(|i| i["@odata.type"] == "#microsoft.graph.group"),
        "{items:?}"
    );
    // Direct memberships only through memberOf.
    let (direct, _) = h.get_all(&format!("/v1.0/users/{ada}/memberOf")).await;
    assert_eq!(ids(&direct), vec![team.clone()]);
    // By UPN too.
    let (by_upn, _) = h
        .get_all("/v1.0/users/bob@contoso.com/transitiveMemberOf?$select=id")
        .await;
    assert_eq!(ids(&by_upn), vec![other]);
    let r = h
        .get("/v1.0/users/00000000-0000-0000-0000-000000000001/transitiveMemberOf")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "Request_ResourceNotFound");
}
