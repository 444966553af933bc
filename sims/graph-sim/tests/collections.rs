//! Users, groups, members, transitive members, app assignments: paging, $select, $filter,
//! errors.

mod common;

use std::collections::BTreeSet;

use graph_sim::{GraphSim, NewUser, TenantSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{ids, start, start_sim};

fn spec() -> TenantSpec {
    TenantSpec {
        users: 230,
        groups: 12,
        memberships: 700,
        ..TenantSpec::default()
    }
}

#[tokio::test]
async fn users_page_by_next_link_with_select() {
    let h = start(&spec()).await;
    let (items, sizes) = h
        .get_all("/v1.0/users?$select=id,userPrincipalName,accountEnabled,mail&$top=50")
        .await;
    assert_eq!(sizes, vec![50, 50, 50, 50, 30]);
    let expected = h.sim.user_ids();
    assert_eq!(ids(&items), expected, "all users, stable order, no repeats");
    for item in &items {
        let keys: BTreeSet<&str> = item
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "userPrincipalName", "accountEnabled", "mail"]),
            "only id + selected"
        );
    }
    // The nextLink carries the query and is absolute on our port.
    let r = h.get("/v1.0/users?$select=id,displayName&$top=3").await;
    let next = r.next_link().expect("more pages");
    assert!(
        next.starts_with(&format!("{}/v1.0/users?", h.sim.base_url)),
        "{next}"
    );
    assert!(next.contains("$skiptoken="), "{next}");
    assert!(
        r.body["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("/v1.0/$metadata#users(displayName)")),
        "{}",
        r.body
    );
    let snapshot = h.sim.snapshot();
    let first = &r.values()[0];
    let id = first["id"].as_str().expect("id");
    assert_eq!(first["displayName"], snapshot.users[id]["displayName"]);
}

#[tokio::test]
async fn default_property_set_without_select() {
    let h = start(&spec()).await;
    let r = h.get("/v1.0/users?$top=1").await;
    let keys: BTreeSet<String> = r.values()[0]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = [
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(keys, expected);
    assert!(r.values()[0]["businessPhones"].is_array());
}

#[tokio::test]
async fn top_filter_and_unsupported_queries() {
    let h = start(&spec()).await;
    for bad in [
        "/v1.0/users?$top=0",
        "/v1.0/users?$top=1000",
        "/v1.0/users?$top=x",
    ] {
        let r = h.get(bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = h.get("/v1.0/groups?$skip=10").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "Request_UnsupportedQuery");
    let r = h.get("/v1.0/users?$filter=displayName ne 'x'").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "Request_UnsupportedQuery");
    let r = h.get("/v1.0/users?$filter=city eq 'Berlin'").await;
    assert_eq!(r.code(), "Request_UnsupportedQuery");
    let r = h.get("/v1.0/users?$select=id,notAProperty").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.get("/v1.0/users?$select=id,skills").await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(r.code(), "NotImplemented");

    // accountEnabled eq false: exactly the disabled users, across pages.
    let snapshot = h.sim.snapshot();
    let disabled: Vec<String> = snapshot
        .users
        .iter()
        .filter(|(_, u)| u["accountEnabled"] == json!(false))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!disabled.is_empty(), "the tenant has disabled users");
    let (items, _) = h
        .get_all("/v1.0/users?$filter=accountEnabled eq false&$select=id,accountEnabled&$top=2")
        .await;
    let got: BTreeSet<String> = ids(&items).into_iter().collect();
    assert_eq!(got, disabled.into_iter().collect::<BTreeSet<_>>());

    // userPrincipalName eq (case-insensitive) and id in (...).
    let (id, user) = snapshot.users.iter().nth(7).expect("user");
    let upn = user["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_uppercase();
    let r = h
        .get(&format!("/v1.0/users?$filter=userPrincipalName eq '{upn}'"))
        .await;
    assert_eq!(ids(r.values()), vec![id.clone()]);
    let other = snapshot.users.keys().nth(3).expect("user");
    let r = h
        .get(&format!("/v1.0/users?$filter=id in ('{id}','{other}')"))
        .await;
    assert_eq!(r.values().len(), 2);
}

#[tokio::test]
async fn display_name_filter_with_quote() {
    let sim = GraphSim::new(&TenantSpec::default());
    let id = sim
        .add_user(NewUser::new(
            "siobhan.obrien@contoso.onmicrosoft.com",
            "Siobhán O'Brien",
        ))
        .expect("added");
    let h = start_sim(sim).await;
    let r = h
        .get("/v1.0/users?$filter=displayName eq 'Siobhán O''Brien'&$select=id,displayName")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ids(r.values()), vec![id]);
}

#[tokio::test]
async fn short_and_empty_pages() {
    let h = start(&spec()).await;
    h.sim.set_page_cap(Some(7));
    let (items, sizes) = h.get_all("/v1.0/users?$top=999&$select=id").await;
    assert_eq!(items.len(), 230);
    assert!(sizes.iter().all(|s| *s <= 7), "{sizes:?}");
    h.sim.set_page_cap(None);
    h.sim.set_empty_pages(true);
    let (items, sizes) = h.get_all("/v1.0/users?$top=100&$select=id").await;
    assert_eq!(items.len(), 230);
    assert_eq!(sizes, vec![0, 100, 0, 100, 0, 30]);
}

#[tokio::test]
async fn not_found_and_bad_ids() {
    let h = start(&spec()).await;
    let missing = "00000000-0000-0000-0000-00000000abcd";
    let r = h.get(&format!("/v1.0/users/{missing}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "Request_ResourceNotFound");
    let inner = &r.body["error"]["innerError"];
    assert!(inner["date"].is_string() && inner["request-id"].is_string());
    assert!(inner["client-request-id"].is_string());
    let r = h.get(&format!("/v1.0/groups/{missing}/members")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.get("/v1.0/groups/not-a-guid").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.get("/v1.0/nonsense").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A user by id and by UPN; soft-deleted users are neither listed nor found.
    let id = h.sim.user_ids()[0].clone();
    let upn = h.sim.snapshot().users[&id]["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_owned();
    let r = h
        .get(&format!("/v1.0/users/{upn}?$select=id,accountEnabled"))
        .await;
    assert_eq!(r.body["id"], id.as_str());
    h.sim.soft_delete_user(&id).expect("deleted");
    assert_eq!(
        h.get(&format!("/v1.0/users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let (items, _) = h.get_all("/v1.0/users?$select=id&$top=999").await;
    assert!(!ids(&items).contains(&id));
    assert_eq!(items.len(), 229);
}

#[tokio::test]
async fn members_are_typed_and_transitive_members_flatten_cycles() {
    let sim = GraphSim::new(&TenantSpec {
        nesting_depth: 0,
        ..spec()
    });
    let users = sim.user_ids();
    let outer = sim.create_group("Outer");
    let inner = sim.create_group("Inner");
    let innermost = sim.create_group("Innermost");
    let device = sim.add_device("KIOSK-1").expect("device");
    let contact = sim
        .add_contact("Ext Person", "ext@partner.example")
        .expect("contact");
    let sp = sim.add_service_principal("Robot", None).expect("sp");
    sim.add_member(&outer, &users[0]).expect("add");
    sim.add_member(&outer, &inner).expect("add");
    sim.add_member(&outer, &device).expect("add");
    sim.add_member(&outer, &contact).expect("add");
    sim.add_member(&outer, &sp).expect("add");
    sim.add_member(&inner, &users[1]).expect("add");
    sim.add_member(&inner, &innermost).expect("add");
    sim.add_member(&innermost, &users[2]).expect("add");
    sim.add_member(&innermost, &outer).expect("a cycle");
    let h = start_sim(sim).await;

    let (items, _) = h
        .get_all(&format!(
            "/v1.0/groups/{outer}/members?$select=id,displayName,userPrincipalName"
        ))
        .await;
    let types: BTreeSet<(String, String)> = items
        .iter()
        .map(|m| {
            (
                m["id"].as_str().expect("id").to_owned(),
                m["@odata.type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([
            (users[0].clone(), "#microsoft.graph.user".to_owned()),
            (inner.clone(), "#microsoft.graph.group".to_owned()),
            (device.clone(), "#microsoft.graph.device".to_owned()),
            (contact.clone(), "#microsoft.graph.orgContact".to_owned()),
            (sp.clone(), "#microsoft.graph.servicePrincipal".to_owned()),
        ])
    );
    let group_row = items
        .iter()
        .find(|m| m["id"] == inner.as_str())
        .expect("inner");
    assert!(
        group_row.get("userPrincipalName").is_none(),
        "not a group property"
    );
    assert_eq!(group_row["displayName"], "Inner");

    let (items, sizes) = h
        .get_all(&format!(
            "/v1.0/groups/{outer}/transitiveMembers?$select=id&$top=2"
        ))
        .await;
    assert!(sizes.iter().all(|s| *s <= 2));
    let got: BTreeSet<String> = ids(&items).into_iter().collect();
    let expected: BTreeSet<String> = [
        &users[0], &users[1], &users[2], &inner, &innermost, &device, &contact, &sp,
    ]
    .into_iter()
    .cloned()
    .collect();
    assert_eq!(
        got, expected,
        "flattened, cycle-safe, without the group itself"
    );
    assert_eq!(items.len(), expected.len(), "no duplicates");
}

#[tokio::test]
async fn app_role_assignments_by_app_id_and_object_id() {
    let sim = GraphSim::new(&spec());
    let apps = sim.apps();
    let (sp_id, app_id, name) = apps
        .iter()
        .find(|(_, _, n)| n == "Atlassian Cloud")
        .cloned()
        .expect("generated enterprise app");
    let group = sim.create_group("Atlassian Users");
    let user = sim.user_ids()[5].clone();
    sim.assign_app(&app_id, &group).expect("assign group");
    sim.assign_app(&sp_id, &user).expect("assign user");
    let h = start_sim(sim).await;

    let (by_app, _) = h
        .get_all(&format!(
            "/v1.0/servicePrincipals(appId='{app_id}')/appRoleAssignedTo?$top=3"
        ))
        .await;
    let (by_id, _) = h
        .get_all(&format!(
            "/v1.0/servicePrincipals/{sp_id}/appRoleAssignedTo"
        ))
        .await;
    assert_eq!(by_app, by_id);
    let expected = &h.sim.snapshot().app_assignments[&app_id];
    let principals: BTreeSet<String> = by_app
        .iter()
        .map(|a| a["principalId"].as_str().expect("principalId").to_owned())
        .collect();
    assert_eq!(&principals, expected);
    let row = by_app
        .iter()
        .find(|a| a["principalId"] == group.as_str())
        .expect("group assignment");
    assert_eq!(row["principalType"], "Group");
    assert_eq!(row["principalDisplayName"], "Atlassian Users");
    assert_eq!(row["resourceId"], sp_id.as_str());
    assert_eq!(row["resourceDisplayName"], name.as_str());
    assert_eq!(row["appRoleId"], "00000000-0000-0000-0000-000000000000");
    assert!(by_app.iter().any(|a| a["principalType"] == "User"));
    assert!(
        by_app
            .iter()
            .any(|a| a["principalType"] == "ServicePrincipal"),
        "the first app is also assigned to a service principal"
    );

    h.sim.unassign_app(&app_id, &group).expect("unassign");
    let r = h
        .get(&format!(
            "/v1.0/servicePrincipals(appId='{app_id}')/appRoleAssignedTo?$select=principalId"
        ))
        .await;
    assert!(
        r.values()
            .iter()
            .all(|a| a["principalId"] != group.as_str())
    );
    assert!(r.values().iter().all(|a| a.get("principalType").is_none()));
    let r = h
        .get("/v1.0/servicePrincipals(appId='00000000-0000-0000-0000-000000000001')/appRoleAssignedTo")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn generated_tenant_has_the_promised_variety() {
    let sim = GraphSim::new(&TenantSpec::sized(2000, 60));
    let ext = sim.extension_property("costCenter");
    let h = start_sim(sim).await;
    let select = format!(
        "id,userPrincipalName,mail,userType,accountEnabled,onPremisesSamAccountName,onPremisesExtensionAttributes,employeeId,{ext}"
    );
    let (users, _) = h
        .get_all(&format!("/v1.0/users?$select={select}&$top=999"))
        .await;
    assert_eq!(users.len(), 2000);
    let guests: Vec<&Value> = users.iter().filter(|u| u["userType"] == "Guest").collect();
    assert!(!guests.is_empty());
    assert!(guests.iter().all(|g| {
        g["userPrincipalName"]
            .as_str()
            .is_some_and(|u| u.contains("#EXT#@contoso.onmicrosoft.com"))
    }));
    assert!(users.iter().any(|u| u["mail"].is_null()));
    assert!(users.iter().any(|u| u["accountEnabled"] == false));
    assert!(
        users
            .iter()
            .any(|u| u["onPremisesSamAccountName"].is_string())
    );
    assert!(users.iter().any(|u| u[&ext].is_string()));
    assert!(
        users.iter().any(|u| u.get(&ext).is_none()),
        "unset extension properties are left out"
    );
    assert!(users.iter().all(|u| {
        u["onPremisesExtensionAttributes"]
            .as_object()
            .is_some_and(|o| o.len() == 15)
    }));
    let upns: BTreeSet<&str> = users
        .iter()
        .map(|u| u["userPrincipalName"].as_str().expect("upn"))
        .collect();
    assert_eq!(upns.len(), 2000, "UPNs are unique");

    let (groups, _) = h.get_all("/v1.0/groups?$select=id,displayName").await;
    assert_eq!(groups.len(), 60);
    let names: BTreeSet<&str> = groups
        .iter()
        .map(|g| g["displayName"].as_str().expect("name"))
        .collect();
    assert!(names.len() < groups.len(), "duplicate group names exist");
    let snapshot = h.sim.snapshot();
    let nested = snapshot
        .groups
        .values()
        .any(|g| g.members.iter().any(|m| snapshot.groups.contains_key(m)));
    assert!(nested, "some groups are nested");
}
