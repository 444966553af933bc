//! The `/_sim/` control API over HTTP, sim-kit faults in Graph's shape, and tenant JSON.

mod common;

use graph_sim::{GraphSim, TenantSpec};
use reqwest::{Method, StatusCode};
use serde_json::json;

use common::{ids, start, start_sim};

#[tokio::test]
async fn control_routes_drive_the_directory() {
    let h = start(&TenantSpec::default()).await;
    let r = h
        .control(
            Method::POST,
            "/_sim/users",
            Some(
                json!({"userPrincipalName": "ctl.user@contoso.onmicrosoft.com",
                        "displayName": "Ctl User", "department": "QA",
                        "onPremisesExtensionAttributes": {"extensionAttribute3": "x"}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().expect("id").to_owned();

    let r = h
        .control(
            Method::GET,
            "/_sim/users?upn=CTL.USER@contoso.onmicrosoft.com",
            None,
        )
        .await;
    assert_eq!(r.body["id"], id.as_str());

    let r = h
        .control(
            Method::POST,
            "/_sim/users",
            Some(json!({"userPrincipalName": "ctl.user@contoso.onmicrosoft.com"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "UPNs are unique");

    let r = h
        .control(
            Method::PATCH,
            &format!("/_sim/users/{id}"),
            Some(json!({"displayName": "Renamed", "department": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = h
        .get(&format!(
            "/v1.0/users/{id}?$select=displayName,department,onPremisesExtensionAttributes"
        ))
        .await;
    assert_eq!(r.body["displayName"], "Renamed");
    assert!(r.body["department"].is_null());
    assert_eq!(
        r.body["onPremisesExtensionAttributes"]["extensionAttribute3"],
        "x"
    );

    for action in ["disable", "soft-delete", "restore", "enable"] {
        let r = h
            .control(Method::POST, &format!("/_sim/users/{id}/{action}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{action}: {}", r.body);
    }
    let r = h
        .get(&format!("/v1.0/users/{id}?$select=accountEnabled"))
        .await;
    assert_eq!(r.body["accountEnabled"], true);

    let r = h
        .control(
            Method::POST,
            "/_sim/groups",
            Some(json!({"displayName": "Ctl Group"})),
        )
        .await;
    let gid = r.body["id"].as_str().expect("gid").to_owned();
    let r = h
        .control(
            Method::POST,
            &format!("/_sim/groups/{gid}/members"),
            Some(json!({"id": id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .get(&format!("/v1.0/groups/{gid}/members?$select=id"))
        .await;
    assert_eq!(ids(r.values()), vec![id.clone()]);
    let r = h
        .control(
            Method::DELETE,
            &format!("/_sim/groups/{gid}/members/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h.get(&format!("/v1.0/groups/{gid}/members")).await;
    assert!(r.values().is_empty());
    let r = h
        .control(
            Method::PATCH,
            &format!("/_sim/groups/{gid}"),
            Some(json!({"displayName": "G2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h.control(Method::GET, "/_sim/groups?name=g2", None).await;
    assert_eq!(r.body, json!([gid]));

    let r = h.control(Method::GET, "/_sim/apps", None).await;
    let app_id = r.body[1]["appId"]
        .as_str()
        .expect("an enterprise app")
        .to_owned();
    let r = h
        .control(
            Method::POST,
            &format!("/_sim/apps/{app_id}/assignments"),
            Some(json!({"principalId": gid})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(h.sim.snapshot().app_assignments[&app_id].contains(&gid));
    let r = h
        .control(
            Method::DELETE,
            &format!("/_sim/apps/{app_id}/assignments/{gid}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(!h.sim.snapshot().app_assignments[&app_id].contains(&gid));

    let r = h
        .control(Method::DELETE, &format!("/_sim/groups/{gid}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get(&format!("/v1.0/groups/{gid}")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = h
        .control(Method::DELETE, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .control(Method::DELETE, &format!("/_sim/users/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .control(Method::POST, "/_sim/users", Some(json!({"oops": 1})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_knobs_over_http() {
    let h = start(&TenantSpec::default()).await;
    let r = h
        .control(
            Method::PUT,
            "/_sim/paging",
            Some(json!({"pageCap": 4, "emptyPages": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["pageCap"], 4);
    assert_eq!(r.body["groupsDeltaMaxMemberRefs"], 500);
    assert_eq!(h.get("/v1.0/users?$top=50").await.values().len(), 4);
    h.control(Method::PUT, "/_sim/paging", Some(json!({"pageCap": null})))
        .await;
    assert_eq!(h.get("/v1.0/users?$top=50").await.values().len(), 50);

    let r = h
        .control(
            Method::PUT,
            "/_sim/auth",
            Some(json!({"denyPermission": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/v1.0/users").await.status, StatusCode::FORBIDDEN);
    h.control(
        Method::PUT,
        "/_sim/auth",
        Some(json!({"denyPermission": false})),
    )
    .await;

    let (_, link) = h.delta_round("/v1.0/users/delta", &[]).await;
    h.control(Method::POST, "/_sim/delta/expire", None).await;
    assert_eq!(h.get(&link).await.code(), "syncStateNotFound");
    h.control(Method::POST, "/_sim/delta/resync", None).await;
    assert_eq!(h.get("/v1.0/users/delta").await.status, StatusCode::GONE);

    let r = h.control(Method::GET, "/_sim/credentials", None).await;
    assert_eq!(r.body["clientId"], h.sim.credentials().client_id.as_str());
}

#[tokio::test]
async fn injected_faults_look_like_graph() {
    let h = start(&TenantSpec::default()).await;
    let r = h
        .control(
            Method::POST,
            "/_sim/faults",
            Some(json!({"kind": "status", "status": 429, "retry_after": 7,
                        "path_contains": "/v1.0/users", "times": 2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        let r = h
            .get_with(
                "/v1.0/users",
                &[("client-request-id", "0b1e5c9a-1111-4222-8333-444455556666")],
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers["retry-after"], "7");
        assert_eq!(r.code(), "TooManyRequests");
        let inner = &r.body["error"]["innerError"];
        assert_eq!(
            inner["client-request-id"],
            "0b1e5c9a-1111-4222-8333-444455556666"
        );
        assert_eq!(
            inner["request-id"].as_str(),
            r.headers["request-id"].to_str().ok()
        );
    }
    assert_eq!(h.get("/v1.0/users").await.status, StatusCode::OK);
    assert_eq!(h.get("/v1.0/groups").await.status, StatusCode::OK);

    for (status, code) in [
        (503, "serviceNotAvailable"),
        (504, "gatewayTimeout"),
        (500, "generalException"),
    ] {
        h.sim.kit().inject(
            sim_kit::FaultRule::once(sim_kit::FaultKind::Status {
                status,
                retry_after: None,
                body: None,
            })
            .on_path("/groups/delta"),
        );
        let r = h.get("/v1.0/groups/delta").await;
        assert_eq!(r.status.as_u16(), status);
        assert_eq!(r.code(), code);
    }
    assert!(h.sim.kit().count("GET /v1.0/users") >= 3);
    assert!(h.sim.kit().count("GET /v1.0/groups/delta") >= 3);

    // A dropped connection: the body breaks off.
    h.sim
        .kit()
        .inject(sim_kit::FaultRule::once(sim_kit::FaultKind::Drop).on_path("/v1.0/groups"));
    let resp = h
        .http
        .get(format!("{}/v1.0/groups", h.sim.base_url))
        .bearer_auth(&h.token)
        .send()
        .await;
    let broken = match resp {
        Err(_) => true,
        Ok(resp) => resp.json::<serde_json::Value>().await.is_err(),
    };
    assert!(broken, "the client must see a broken body");
}

#[tokio::test]
async fn tenant_json_round_trip() {
    let sim = GraphSim::new(&TenantSpec::default());
    let g = sim.create_group("Exported");
    let u = sim.user_ids()[0].clone();
    sim.add_member(&g, &u).expect("member");
    sim.soft_delete_user(&sim.user_ids()[1]).expect("deleted");
    let exported = sim.to_json();
    let loaded = GraphSim::from_json(&exported).expect("loads");
    assert_eq!(loaded.snapshot(), sim.snapshot());
    assert_eq!(loaded.credentials(), sim.credentials());

    let h = start_sim(loaded).await;
    let r = h.control(Method::GET, "/_sim/tenant", None).await;
    assert_eq!(
        r.body,
        serde_json::from_str::<serde_json::Value>(&exported).expect("json")
    );

    let minimal = json!({
        "users": [{"userPrincipalName": "solo@contoso.onmicrosoft.com", "displayName": "Solo"}],
        "groups": [{"displayName": "Solo Group", "members": []}],
    });
    let sim = GraphSim::from_json(&minimal.to_string()).expect("loads");
    assert_eq!(sim.user_ids().len(), 1);
    assert!(sim.find_group_by_name("solo group").is_some());
    assert!(GraphSim::from_json(r#"{"users": [{"displayName": "no upn"}]}"#).is_err());
    assert!(GraphSim::from_json("not json").is_err());
}
