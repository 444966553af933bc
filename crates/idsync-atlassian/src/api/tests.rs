//! Unit tests of the shared HTTP plumbing: link following, config bounds, redaction and
//! the wording of refusals.

use super::errors::unquoted;
use super::*;
use idsync_config::Secret;

fn config(base_url: &str) -> TargetConfig {
    let url = base_url.parse().expect("url");
    TargetConfig {
        token: Some(Secret::new("pat")),
        timeout_seconds: 10,
        full_read_every_minutes: 0,
        ..TargetConfig::new("wiki", TargetKind::ConfluenceDc, url)
    }
}

fn refusal(config: &TargetConfig) -> String {
    match Api::new(config) {
        Ok(_) => panic!("{config:?} was accepted"),
        Err(e) => e.message,
    }
}

#[test]
fn next_links_are_followed_only_on_the_base_urls_origin() {
    let api = Api::new(&config("https://example.com/wiki")).expect("api");
    let relative = api
        .follow("rest/api/group", "/rest/api/group?start=200&limit=200")
        .expect("relative link");
    assert_eq!(
        relative.url.as_str(),
        "https://example.com/wiki/rest/api/group?start=200&limit=200"
    );
    api.follow(
        "rest/api/group",
        "https://example.com/wiki/rest/api/group?start=400",
    )
    .expect("absolute link on the same origin");
    for foreign in [
        "https://example.com.evil.net/wiki/rest/api/group?start=200",
        "https://example.com@evil.net/wiki/rest/api/group",
        "https://example.com:8443/wiki/rest/api/group",
        "http://example.com/wiki/rest/api/group",
    ] {
        let error = api
            .follow("rest/api/group", foreign)
            .err()
            .unwrap_or_else(|| panic!("{foreign} was followed"));
        assert_eq!(error.kind, TargetErrorKind::MalformedResponse);
        // Names the link (redacted) and the configured base URL.
        assert!(
            error.message.contains(&idsync_http::redact_url(foreign)),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("https://example.com/wiki/"),
            "{}",
            error.message
        );
    }
}

#[test]
fn out_of_range_concurrency_and_rates_are_refused_not_panicked_on() {
    for concurrency in [0, idsync_config::MAX_CONCURRENCY + 1, (1usize << 63) - 1] {
        let mut c = config("https://example.com/wiki");
        c.concurrency = concurrency;
        let message = refusal(&c);
        assert!(message.contains("concurrency"), "{message}");
        assert!(message.contains("1 to 256"), "{message}");
    }
    for rps in [1e-30, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
        let mut c = config("https://example.com/wiki");
        c.max_requests_per_second = Some(rps);
        let message = refusal(&c);
        assert!(message.contains("max_requests_per_second"), "{message}");
    }
    for rps in [
        idsync_config::MIN_REQUESTS_PER_SECOND,
        2.5,
        idsync_config::MAX_REQUESTS_PER_SECOND,
    ] {
        let mut c = config("https://example.com/wiki");
        c.max_requests_per_second = Some(rps);
        let api = Api::new(&c).expect("a rate within the bounds");
        assert!(api.limiter.is_some());
    }
}

#[test]
fn messages_show_the_base_url_without_user_info() {
    let api = Api::new(&config("https://idsync:hunter2@example.com/wiki")).expect("api");
    let error = api.unauthorized(&Reply {
        status: StatusCode::UNAUTHORIZED,
        body: Vec::new(),
    });
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    assert!(
        error.message.contains("https://example.com/wiki/"),
        "{}",
        error.message
    );
}

#[test]
fn a_name_already_taken_is_a_conflict_whatever_the_status() {
    let api = Api::new(&config("https://example.com/wiki")).expect("api");
    for (status, body) in [
        (
            400,
            r#"{"errors":{"username":"A user with that username already exists."}}"#,
        ),
        (
            400,
            r#"{"errors":[{"message":"A user with the name ada already exists."}]}"#,
        ),
        (
            409,
            r#"{"detail":"A user with userName 'ada' already exists"}"#,
        ),
    ] {
        let reply = Reply {
            status: StatusCode::from_u16(status).expect("status"),
            body: body.as_bytes().to_vec(),
        };
        let error = api.error(&reply, "rename user 'x' to 'ada'");
        assert_eq!(error.kind, TargetErrorKind::Conflict, "{body}: {error}");
    }
    let reply = Reply {
        status: StatusCode::BAD_REQUEST,
        body: br#"{"errorMessages":["You must specify a username."]}"#.to_vec(),
    };
    let error = api.error(&reply, "rename user 'x' to ''");
    assert_eq!(error.kind, TargetErrorKind::Rejected, "{error}");
}

fn bitbucket(auth: Option<(&str, &str)>) -> TargetConfig {
    let mut c = config("https://bitbucket.example.com");
    c.name = "code".into();
    c.kind = TargetKind::BitbucketDc;
    if let Some((username, password)) = auth {
        c.token = None;
        c.username = Some(username.into());
        c.password = Some(Secret::new(password));
    }
    c
}

/// Bitbucket DC refuses HTTP access tokens on the admin endpoints idsync calls (KB "How
/// to use OAuth2 tokens for administrative endpoints of Bitbucket Data Center").
#[test]
fn a_bitbucket_token_is_refused_before_any_request() {
    let message = refusal(&bitbucket(None));
    assert!(message.contains("'code'"), "{message}");
    assert!(message.contains("HTTP access tokens"), "{message}");
    assert!(message.contains("`username` and `password`"), "{message}");
}

#[test]
fn bitbucket_401_and_403_name_both_causes() {
    let api = Api::new(&bitbucket(Some(("idsync", "pw")))).expect("api");
    let error = api.unauthorized(&Reply {
        status: StatusCode::UNAUTHORIZED,
        body: br#"{"errors":[{"context":null,"message":"You are not permitted to access this resource","exceptionName":"com.atlassian.bitbucket.AuthorisationException"}]}"#.to_vec(),
    });
    assert_eq!(error.kind, TargetErrorKind::Unauthorized);
    let m = &error.message;
    assert!(m.contains("'idsync'") && m.contains("'code'"), "{m}");
    assert!(m.contains("credentials are wrong"), "{m}");
    assert!(m.contains("Admin or System admin"), "{m}");
    assert!(
        m.contains("You are not permitted"),
        "the product's words: {m}"
    );
    assert!(!m.contains("expired") && !m.contains("revoked"), "{m}");
    assert!(!m.contains("pw"), "{m}");

    let reply = Reply {
        status: StatusCode::FORBIDDEN,
        body: br#"{"errors":[{"context":null,"message":"You cannot delete a user with a higher permission level.","exceptionName":"com.atlassian.bitbucket.AuthorisationException"}]}"#.to_vec(),
    };
    let error = api.error(&reply, "delete user 'root'");
    assert_eq!(error.kind, TargetErrorKind::Forbidden);
    assert!(
        error.message.contains("`username` and `password`"),
        "{error}"
    );
    assert!(error.message.contains("System admin"), "{error}");
}

#[test]
fn keywords_inside_quotes_do_not_count() {
    assert_eq!(unquoted("user 'licence-bot' exists"), "user  exists");
    assert_eq!(unquoted("a \"read-only\" b"), "a  b");
    assert_eq!(unquoted("the server's license"), "the server's license");
    assert_eq!(unquoted("no quotes"), "no quotes");
}
