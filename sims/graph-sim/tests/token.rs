//! Token endpoint: success shape, every AADSTS error, and the bearer check on Graph routes.

mod common;

use std::time::Duration;

use graph_sim::TenantSpec;
use reqwest::StatusCode;

use common::{Reply, start};

const SCOPE: &str = "https://graph.microsoft.com/.default";

fn assert_aadsts(r: &Reply, status: StatusCode, error: &str, code: u64) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"], error, "{}", r.body);
    assert_eq!(
        r.body["error_codes"],
        serde_json::json!([code]),
        "{}",
        r.body
    );
    let description = r.body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(r.body[field].is_string(), "{field} missing in {}", r.body);
    }
    assert_eq!(
        r.body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
}

#[tokio::test]
async fn success_shape_and_tenant_by_domain() {
    let h = start(&TenantSpec::default()).await;
    let c = h.sim.credentials();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("scope", SCOPE),
    ];
    let r = h.token_request(&h.token_url(), &form).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3599);
    assert_eq!(r.body["ext_expires_in"], 3599);
    let token = r.body["access_token"].as_str().expect("token");
    assert!(!token.is_empty());
    assert_ne!(token, h.token, "each request gets a fresh token");

    let by_domain = format!("{}/{}/oauth2/v2.0/token", h.sim.base_url, c.tenant_domain);
    let r = h.token_request(&by_domain, &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn every_aadsts_error() {
    let h = start(&TenantSpec::default()).await;
    let c = h.sim.credentials();
    let url = h.token_url();
    let good = |secret: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "CLIENT"),
            ("client_secret", secret),
            ("scope", SCOPE),
        ]
    };
    let fill = |mut form: Vec<(&'static str, &'static str)>| -> Vec<(String, String)> {
        form.iter_mut()
            .map(|(k, v)| {
                let v = match *v {
                    "CLIENT" => c.client_id.clone(),
                    "SECRET" => c.client_secret.clone(),
                    other => other.to_owned(),
                };
                ((*k).to_owned(), v)
            })
            .collect()
    };
    let send = |form: Vec<(String, String)>, url: String| {
        let h = &h;
        async move {
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            h.token_request(&url, &pairs).await
        }
    };

    // 7000215: wrong secret (e.g. the secret's id pasted instead of its value).
    let r = send(fill(good("3f1c-not-the-value")), url.clone()).await;
    assert_aadsts(&r, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);

    // 7000218: no secret at all.
    let mut form = fill(good("SECRET"));
    form.retain(|(k, _)| k != "client_secret");
    let r = send(form, url.clone()).await;
    assert_aadsts(&r, StatusCode::UNAUTHORIZED, "invalid_client", 7000218);

    // 700016: unknown client id.
    let mut form = fill(good("SECRET"));
    form[1].1 = "11111111-2222-3333-4444-555555555555".into();
    let r = send(form, url.clone()).await;
    assert_aadsts(&r, StatusCode::BAD_REQUEST, "unauthorized_client", 700016);
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("11111111-2222-3333-4444-555555555555"))
    );

    // 70011: a scope other than Graph's .default.
    let mut form = fill(good("SECRET"));
    form[3].1 = "https://foo.microsoft.com/.default".into();
    let r = send(form, url.clone()).await;
    assert_aadsts(&r, StatusCode::BAD_REQUEST, "invalid_scope", 70011);

    // 90002: a well-formed tenant that is not ours, by GUID and by domain.
    for tenant in [
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "fabrikam.onmicrosoft.com",
    ] {
        let other = format!("{}/{tenant}/oauth2/v2.0/token", h.sim.base_url);
        let r = send(fill(good("SECRET")), other).await;
        assert_aadsts(&r, StatusCode::BAD_REQUEST, "invalid_request", 90002);
    }

    // 900023: neither a GUID nor a DNS name.
    let bad = format!("{}/not_a_tenant!/oauth2/v2.0/token", h.sim.base_url);
    let r = send(fill(good("SECRET")), bad).await;
    assert_aadsts(&r, StatusCode::BAD_REQUEST, "invalid_request", 900023);

    // 7000222: the right secret, but expired.
    h.sim.set_secret_expired(true);
    let r = send(fill(good("SECRET")), url.clone()).await;
    assert_aadsts(&r, StatusCode::UNAUTHORIZED, "invalid_client", 7000222);
    h.sim.set_secret_expired(false);
    let r = send(fill(good("SECRET")), url.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Missing grant_type and an unsupported grant.
    let mut form = fill(good("SECRET"));
    form.remove(0);
    let r = send(form, url.clone()).await;
    assert_aadsts(&r, StatusCode::BAD_REQUEST, "invalid_request", 900144);
    let mut form = fill(good("SECRET"));
    form[0].1 = "password".into();
    let r = send(form, url).await;
    assert_aadsts(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type", 70003);
}

#[tokio::test]
async fn secret_with_reserved_characters_must_be_form_encoded() {
    // A secret with characters that break a hand-built, unencoded body.
    let mut doc: serde_json::Value =
        serde_json::from_str(&graph_sim::GraphSim::new(&TenantSpec::default()).to_json())
            .expect("tenant json");
    doc["clientSecret"] = "a+b/c=d&e%f~g".into();
    let sim = graph_sim::GraphSim::from_json(&doc.to_string()).expect("loads");
    let h = common::start_sim(sim).await; // fetch_token form-encodes: must succeed
    let c = h.sim.credentials();
    let raw = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={SCOPE}",
        c.client_id, c.client_secret
    );
    let resp = h
        .http
        .post(h.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(raw)
        .send()
        .await
        .expect("sent");
    let r = common::reply(resp).await;
    assert_aadsts(&r, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
}

#[tokio::test]
async fn bearer_is_checked_on_graph_routes() {
    let h = start(&TenantSpec::default()).await;
    let url = format!("{}/v1.0/users", h.sim.base_url);

    let resp = h.http.get(&url).send().await.expect("sent");
    let r = common::reply(resp).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "InvalidAuthenticationToken");

    let resp = h
        .http
        .get(&url)
        .bearer_auth("eyJ0eXAi.forged.token")
        .header("client-request-id", "6d3f4c8e-0000-4000-8000-000000000001")
        .send()
        .await
        .expect("sent");
    let r = common::reply(resp).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "InvalidAuthenticationToken");
    let inner = &r.body["error"]["innerError"];
    assert_eq!(
        inner["client-request-id"],
        "6d3f4c8e-0000-4000-8000-000000000001"
    );
    assert_eq!(
        r.headers["client-request-id"],
        "6d3f4c8e-0000-4000-8000-000000000001"
    );
    assert_eq!(
        inner["request-id"].as_str(),
        r.headers["request-id"].to_str().ok()
    );
    assert!(inner["date"].is_string());

    // Good token works; a revoked one does not.
    assert_eq!(h.get("/v1.0/users").await.status, StatusCode::OK);
    h.sim.revoke_tokens();
    let r = h.get("/v1.0/users").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_token_and_denied_permission() {
    let mut h = start(&TenantSpec::default()).await;
    h.sim.set_token_lifetime(Duration::ZERO);
    h.token = h.fetch_token().await;
    let r = h.get("/v1.0/users").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "InvalidAuthenticationToken");
    assert_eq!(
        r.body["error"]["message"],
        "Access token has expired or is not yet valid."
    );

    h.sim.set_token_lifetime(Duration::from_secs(60));
    let c = h.sim.credentials();
    let r = h
        .token_request(
            &h.token_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(r.body["expires_in"], 60);
    h.token = r.body["access_token"].as_str().expect("token").to_owned();

    h.sim.deny_permission(true);
    let r = h.get("/v1.0/groups").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "Authorization_RequestDenied");
    h.sim.deny_permission(false);
    assert_eq!(h.get("/v1.0/groups").await.status, StatusCode::OK);
}
