//! Atlassian SCIM 2.0 user provisioning over real loopback HTTP.

mod common;

use atlassian_sim::{Product, SimUser};
use common::{client, scim, send, start};
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn user_body(name: &str, external: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": name,
        "externalId": external,
        "name": {"givenName": "Dave", "familyName": "Meyer"},
        "displayName": "Dave Meyer",
        "emails": [{"value": name, "type": "work", "primary": true}],
        "active": true,
        ENTERPRISE: {"department": "R&D", "employeeNumber": "42"},
    })
}

#[tokio::test]
async fn user_lifecycle_filters_and_patch() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();

    let response = scim(&sim, http.post(format!("{base}/Users")))
        .json(&user_body("dave@example.com", "oid-1"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["content-type"], "application/scim+json");
    assert!(response.headers().contains_key("location"));
    let (_, created) = common::parts(response).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created[ENTERPRISE]["department"], "R&D");

    let (status, dup) = send(
        scim(&sim, http.post(format!("{base}/Users")))
            .json(&user_body("DAVE@example.com", "oid-2")),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(dup["scimType"], "uniqueness");
    assert_eq!(dup["status"], "409");
    assert_eq!(
        dup["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );

    // Filters: single eq on userName or externalId only.
    let (status, list) = send(scim(
        &sim,
        http.get(format!("{base}/Users"))
            .query(&[("filter", "userName eq \"dave@example.com\"")]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], id.as_str());
    assert_eq!(
        list["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    let (_, list) = send(scim(
        &sim,
        http.get(format!("{base}/Users"))
            .query(&[("filter", "externalId eq \"oid-1\"")]),
    ))
    .await;
    assert_eq!(list["totalResults"], 1);
    let (_, none) = send(scim(
        &sim,
        http.get(format!("{base}/Users"))
            .query(&[("filter", "externalId eq \"OID-1\"")]),
    ))
    .await;
    assert_eq!(none["totalResults"], 0, "externalId is case-exact");
    for bad in [
        "displayName eq \"Dave Meyer\"",
        "userName co \"dave\"",
        "userName eq \"a\" and externalId eq \"b\"",
        "userName eq dave",
    ] {
        let (status, body) = send(scim(
            &sim,
            http.get(format!("{base}/Users")).query(&[("filter", bad)]),
        ))
        .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["scimType"], "invalidFilter", "{bad}");
    }

    // PATCH: deactivate, change the enterprise department, and the primary e-mail.
    let (status, patched) = send(scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "active", "value": false},
            {"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Sales"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "dave.meyer@example.com"},
            {"op": "replace", "value": {"title": "Engineer"}},
        ]
    })))
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(patched[ENTERPRISE]["department"], "Sales");
    // employeeNumber is not documented for Atlassian's directory: dropped on create.
    assert!(patched[ENTERPRISE].get("employeeNumber").is_none());
    let user = sim.user(Product::Scim, "dave@example.com").expect("user");
    assert!(!user.active);
    assert_eq!(user.email, "dave.meyer@example.com");
    assert_eq!(user.attributes["title"], "Engineer");
    assert_eq!(user.attributes[ENTERPRISE]["department"], "Sales");

    // Lowercase `operations` (jira.js) is accepted; a bad op is not.
    let (status, _) = send(
        scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "operations": [{"op": "Replace", "path": "active", "value": true}]
        })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "move", "path": "active", "value": true}]
        })),
    )
    .await;
    assert_eq!(status, 400);

    // PUT clears what it does not mention.
    let (status, replaced) = send(scim(&sim, http.put(format!("{base}/Users/{id}"))).json(
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "dave@example.com", "active": true, "displayName": "Dave",
            "emails": [{"value": "dave@example.com", "type": "work", "primary": true}],
        }),
    ))
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert!(replaced.get(ENTERPRISE).is_none());
    assert!(replaced.get("title").is_none());

    assert_eq!(
        send(scim(&sim, http.delete(format!("{base}/Users/{id}"))))
            .await
            .0,
        204
    );
    let (status, body) = send(scim(&sim, http.get(format!("{base}/Users/{id}")))).await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], "404");
    assert_eq!(
        send(scim(&sim, http.delete(format!("{base}/Users/{id}"))))
            .await
            .0,
        404
    );
    // Recreate with a new POST gets a new id.
    let (status, again) = send(
        scim(&sim, http.post(format!("{base}/Users")))
            .json(&user_body("dave@example.com", "oid-1")),
    )
    .await;
    assert_eq!(status, 201);
    assert_ne!(again["id"], id.as_str());
}

#[tokio::test]
async fn paging_is_one_based_and_capped_at_100() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();
    for i in 0..230 {
        let mut user = SimUser::new(&format!("u{i:03}@example.com"));
        user.display_name = format!("User {i}");
        sim.seed_user(Product::Scim, user);
    }
    let mut start_index = 1;
    let mut seen = Vec::new();
    loop {
        let (status, page) = send(scim(
            &sim,
            http.get(format!("{base}/Users")).query(&[
                ("startIndex", start_index.to_string()),
                ("count", "500".to_owned()),
            ]),
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(page["totalResults"], 230);
        assert_eq!(page["startIndex"], start_index);
        let n = page["itemsPerPage"].as_u64().expect("itemsPerPage") as usize;
        assert!(n <= 100);
        for r in page["Resources"].as_array().expect("Resources") {
            seen.push(r["userName"].as_str().expect("userName").to_owned());
        }
        if n == 0 || start_index + n > 230 {
            break;
        }
        start_index += n;
    }
    assert_eq!(seen.len(), 230);
    assert_eq!(seen[0], "u000@example.com");
    let (_, zero) = send(scim(
        &sim,
        http.get(format!("{base}/Users"))
            .query(&[("startIndex", "0"), ("count", "1")]),
    ))
    .await;
    assert_eq!(zero["startIndex"], 1);
    assert_eq!(zero["Resources"][0]["userName"], "u000@example.com");
}

#[tokio::test]
async fn groups_members_patch_rename_refused_and_delete() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();
    let a = sim.seed_user(Product::Scim, SimUser::new("a@example.com"));
    let b = sim.seed_user(Product::Scim, SimUser::new("b@example.com"));

    let (status, group) = send(scim(&sim, http.post(format!("{base}/Groups"))).json(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "confluence-users", "externalId": "g-1"
    })))
    .await;
    assert_eq!(status, 201);
    let gid = group["id"].as_str().expect("id").to_owned();
    let (status, dup) = send(
        scim(&sim, http.post(format!("{base}/Groups")))
            .json(&json!({"displayName": "Confluence-Users"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(dup["scimType"], "uniqueness");

    let patch = |ops: Value| {
        scim(&sim, http.patch(format!("{base}/Groups/{gid}")))
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}))
    };
    let (status, body) = send(patch(json!([{"op": "add", "path": "members", "value": [{"value": a, "display": "a"}, {"value": b}]}]))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members"].as_array().expect("members").len(), 2);
    assert_eq!(body["members"][0]["type"], "User");
    assert_eq!(
        sim.members(Product::Scim, "confluence-users"),
        vec!["a@example.com", "b@example.com"]
    );

    // Removal in the value-list form (what Microsoft's Atlassian Cloud connector sends); the
    // filter form and a remove without value are refused, and leave the group as it was.
    let filter_form = json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}]);
    for refused in [
        filter_form,
        json!([{"op": "remove", "path": "members"}]),
        json!([{"op": "remove", "path": "members", "value": []}]),
        json!([{"op": "replace", "path": "members", "value": [{"value": b}]}]),
    ] {
        let (status, body) = send(patch(refused.clone())).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert_eq!(body["status"], "400", "{refused}");
        assert_eq!(
            body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{refused}"
        );
        assert!(body["scimType"].is_string(), "{refused}: {body}");
    }
    assert_eq!(
        sim.members(Product::Scim, "confluence-users"),
        vec!["a@example.com", "b@example.com"]
    );
    let (status, _) = send(patch(
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": a}]}]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        sim.members(Product::Scim, "confluence-users"),
        vec!["b@example.com"]
    );
    let (status, body) = send(patch(
        json!([{"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}]),
    ))
    .await;
    assert_eq!(status, 400, "{body}");

    // The user shows the group.
    let (_, user) = send(scim(&sim, http.get(format!("{base}/Users/{b}")))).await;
    assert_eq!(user["groups"][0]["display"], "confluence-users");

    // Renames are refused, by PATCH and by PUT.
    let (status, body) = send(patch(
        json!([{"op": "replace", "path": "displayName", "value": "renamed"}]),
    ))
    .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().expect("detail").contains("rename"));
    let (status, _) = send(
        scim(&sim, http.put(format!("{base}/Groups/{gid}")))
            .json(&json!({"displayName": "renamed", "members": []})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = send(
        scim(&sim, http.put(format!("{base}/Groups/{gid}")))
            .json(&json!({"displayName": "confluence-users", "members": [{"value": a}]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["members"][0]["value"], a.as_str());

    let (status, list) = send(scim(
        &sim,
        http.get(format!("{base}/Groups")).query(&[
            ("filter", "displayName eq \"confluence-users\""),
            ("excludedAttributes", "members"),
        ]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 1);
    assert!(list["Resources"][0].get("members").is_none());
    let (status, body) = send(scim(
        &sim,
        http.get(format!("{base}/Groups"))
            .query(&[("filter", "externalId eq \"g-1\"")]),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["scimType"], "invalidFilter");

    assert_eq!(
        send(scim(&sim, http.delete(format!("{base}/Groups/{gid}"))))
            .await
            .0,
        204
    );
    assert_eq!(
        send(scim(&sim, http.delete(format!("{base}/Groups/{gid}"))))
            .await
            .0,
        404
    );
    assert!(sim.groups(Product::Scim).is_empty());
}

#[tokio::test]
async fn discovery_auth_and_directory() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();
    let (status, spc) = send(scim(
        &sim,
        http.get(format!("{base}/ServiceProviderConfig")),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 100);
    let (_, schemas) = send(scim(&sim, http.get(format!("{base}/Schemas")))).await;
    assert_eq!(schemas["totalResults"], 3);
    let (status, _) = send(scim(&sim, http.get(format!("{base}/Schemas/{ENTERPRISE}")))).await;
    assert_eq!(status, 200);
    let (_, types) = send(scim(&sim, http.get(format!("{base}/ResourceTypes")))).await;
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");

    // Bearer only: the admin's Basic credentials are refused.
    let (status, body) = send(
        http.get(format!("{base}/Users"))
            .basic_auth("admin", Some("admin")),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], "401");
    assert_eq!(
        send(
            http.get(format!("{base}/Users"))
                .bearer_auth(&sim.config().jira_token)
        )
        .await
        .0,
        401
    );
    let other = format!("{}/scim/directory/other-dir/Users", sim.base_url);
    assert_eq!(send(scim(&sim, http.get(other))).await.0, 404);

    let (status, body) = send(scim(&sim, http.post(format!("{base}/Users"))).body("{")).await;
    assert_eq!(status, 400);
    assert_eq!(body["scimType"], "invalidSyntax");
    let (status, body) =
        send(scim(&sim, http.post(format!("{base}/Users"))).json(&json!({"active": true}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["scimType"], "invalidValue");
}

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn assert_scim_400(status: u16, body: &Value, scim_type: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["status"], "400", "{what}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{what}"
    );
    assert_eq!(body["scimType"], scim_type, "{what}: {body}");
}

/// Atlassian: `emails` is required on create and modify, one value marked primary.
#[tokio::test]
async fn emails_with_one_primary_are_required_on_create_and_modify() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();
    let without = |emails: Option<Value>| {
        let mut body = user_body("erin@example.com", "oid-e");
        match emails {
            Some(e) => body["emails"] = e,
            None => {
                body.as_object_mut().expect("object").remove("emails");
            }
        }
        body
    };
    for (what, body) in [
        ("no emails", without(None)),
        ("empty list", without(Some(json!([])))),
        (
            "none primary",
            without(Some(json!([{"value": "erin@example.com", "type": "work"}]))),
        ),
        (
            "two primaries",
            without(Some(json!([
                {"value": "erin@example.com", "primary": true},
                {"value": "erin@home.example", "primary": true},
            ]))),
        ),
        (
            "primary without value",
            without(Some(json!([{"type": "work", "primary": true}]))),
        ),
    ] {
        let (status, body) = send(scim(&sim, http.post(format!("{base}/Users"))).json(&body)).await;
        assert_scim_400(status, &body, "invalidValue", what);
        assert!(
            body["detail"].as_str().expect("detail").contains("primary"),
            "{what}: {body}"
        );
    }
    assert!(sim.users(Product::Scim).is_empty());

    let (status, created) = send(
        scim(&sim, http.post(format!("{base}/Users"))).json(&without(Some(json!([
            {"value": "erin@home.example", "type": "home"},
            {"value": "erin@example.com", "type": "work", "primary": true},
        ])))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        sim.user(Product::Scim, "erin@example.com")
            .expect("created")
            .email,
        "erin@example.com"
    );

    // PUT (modify) without emails is refused and changes nothing.
    let (status, body) = send(scim(&sim, http.put(format!("{base}/Users/{id}"))).json(
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "erin@example.com", "displayName": "Erin"}),
    ))
    .await;
    assert_scim_400(status, &body, "invalidValue", "PUT without emails");
    // PATCH whose result has no primary e-mail is refused too.
    for ops in [
        json!([{"op": "remove", "path": "emails"}]),
        json!([{"op": "replace", "path": "emails", "value": [{"value": "e@example.com"}]}]),
    ] {
        let (status, body) =
            send(scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(&patch_op(ops.clone())))
                .await;
        assert_scim_400(status, &body, "invalidValue", &ops.to_string());
    }
    let erin = sim.user(Product::Scim, "erin@example.com").expect("there");
    assert_eq!(erin.email, "erin@example.com");
    assert_eq!(erin.display_name, "Dave Meyer");

    // Replacing the list with one primary value is a modify Atlassian takes.
    let (status, body) = send(scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(
        &patch_op(json!([
            {"op": "replace", "path": "emails",
             "value": [{"value": "erin.new@example.com", "type": "work", "primary": true}]}
        ])),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sim.user(Product::Scim, "erin@example.com")
            .expect("there")
            .email,
        "erin.new@example.com"
    );
}

/// Only the attributes Atlassian documents are kept: others are dropped, not refused.
#[tokio::test]
async fn undocumented_attributes_are_dropped() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();
    let mut body = user_body("fay@example.com", "oid-f");
    body[ENTERPRISE] = json!({
        "department": "R&D", "organization": "Contoso",
        "employeeNumber": "42", "costCenter": "4711", "division": "West",
        "manager": {"value": "someone"},
    });
    body["shoeSize"] = json!("44");
    body["title"] = json!("Engineer");
    body["urn:example:custom:1.0:User"] = json!({"badge": "7"});
    let (status, created) = send(scim(&sim, http.post(format!("{base}/Users"))).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created[ENTERPRISE],
        json!({"department": "R&D", "organization": "Contoso"})
    );
    assert!(created.get("shoeSize").is_none());
    assert!(created.get("urn:example:custom:1.0:User").is_none());
    assert_eq!(created["title"], "Engineer");
    let id = created["id"].as_str().expect("id").to_owned();

    // A PATCH of an undocumented attribute is answered, and the attribute is not kept.
    let (status, patched) = send(scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(
        &patch_op(json!([
            {"op": "replace", "path": format!("{ENTERPRISE}:costCenter"), "value": "4711"},
            {"op": "replace", "path": "shoeSize", "value": "45"},
            {"op": "replace", "path": format!("{ENTERPRISE}:organization"), "value": "Fabrikam"},
        ])),
    ))
    .await;
    assert_eq!(status, 200, "{patched}");
    let (_, read) = send(scim(&sim, http.get(format!("{base}/Users/{id}")))).await;
    assert_eq!(
        read[ENTERPRISE],
        json!({"department": "R&D", "organization": "Fabrikam"})
    );
    assert!(read.get("shoeSize").is_none());
    let stored = sim.user(Product::Scim, "fay@example.com").expect("there");
    assert!(!stored.attributes.contains_key("shoeSize"));
    assert!(stored.attributes[ENTERPRISE].get("costCenter").is_none());

    // The schema the directory publishes says the same.
    let (_, schema) = send(scim(&sim, http.get(format!("{base}/Schemas/{ENTERPRISE}")))).await;
    let names: Vec<&str> = schema["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, vec!["organization", "department"]);
}

/// userName changes by PATCH replace with path userName, or by PUT; other forms are refused.
#[tokio::test]
async fn user_name_changes_by_replace_path_or_put_only() {
    let sim = start().await;
    let http = client();
    let base = sim.scim_url();
    let id = sim.seed_user(Product::Scim, SimUser::new("gil@example.com"));
    let user_patch =
        |ops: Value| scim(&sim, http.patch(format!("{base}/Users/{id}"))).json(&patch_op(ops));
    for ops in [
        json!([{"op": "add", "path": "userName", "value": "gil2@example.com"}]),
        json!([{"op": "replace", "value": {"userName": "gil2@example.com"}}]),
        json!([{"op": "add", "value": {"userName": "gil2@example.com", "title": "x"}}]),
        json!([{"op": "remove", "path": "userName"}]),
    ] {
        let (status, body) = send(user_patch(ops.clone())).await;
        assert_scim_400(status, &body, "invalidPath", &ops.to_string());
    }
    assert!(sim.user(Product::Scim, "gil@example.com").is_some());

    let (status, body) = send(user_patch(json!([
        {"op": "Replace", "path": "userName", "value": "gil2@example.com"}
    ])))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userName"], "gil2@example.com");
    assert_eq!(body["id"], id.as_str());

    let (status, body) = send(scim(&sim, http.put(format!("{base}/Users/{id}"))).json(
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "gil3@example.com",
                "emails": [{"value": "gil3@example.com", "primary": true}]}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let gil = sim
        .user(Product::Scim, "gil3@example.com")
        .expect("renamed");
    assert_eq!(gil.key, id);
    assert!(sim.user(Product::Scim, "gil2@example.com").is_none());
}
