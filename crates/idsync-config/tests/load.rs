//! The loader: defaults, file, environment, and one test per class of problem, each asserting
//! the field and the line it is reported at.

use std::path::Path;

use idsync_config::{
    ConfigError, Env, LeaveAction, Problem, Scope, locate_with_env, parse_with_env,
};

const GOOD: &str = r#"
data_dir = "state"

[[apps]]
name = "main"
kind = "entra"
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s3cret"
targets = ["jira"]

[apps.scope]
kind = "groups"
groups = ["Jira Users"]

[[targets]]
name = "jira"
kind = "jira-dc"
base_url = "https://jira.example.com"
token = "pat"
"#;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(text: &str) -> Result<idsync_config::Config, ConfigError> {
    parse_with_env(text, Path::new("/etc/idsync/idsync.toml"), &Env::new())
}

/// The single problem of a config, as (field, line, message).
fn problem(text: &str) -> (String, Option<usize>, String) {
    let error = parse(text).expect_err("config should be refused");
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "expected one problem: {error}");
    let p = &problems[0];
    (p.field.clone(), p.line, p.message.clone())
}

/// GOOD with `old` replaced by `new` (which must be there).
fn edit(old: &str, new: &str) -> String {
    assert!(GOOD.contains(old), "{old}");
    GOOD.replacen(old, new, 1)
}

#[test]
fn a_good_file_gets_its_defaults() {
    let config = parse(GOOD).expect("valid");
    assert_eq!(config.data_dir, Path::new("/etc/idsync/state"));
    let app = &config.apps[0];
    assert_eq!(
        app.authority_url.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert_eq!(app.graph_url.as_str(), "https://graph.microsoft.com/");
    assert!(app.nested_groups);
    assert_eq!(app.login_sync_wait_seconds, 5);
    assert_eq!(app.login_sync_cache_seconds, 60);
    assert_eq!(
        app.scope,
        Scope::Groups {
            groups: vec!["Jira Users".into()]
        }
    );
    assert_eq!(app.users.on_leave, LeaveAction::Deactivate);
    assert_eq!(app.client_secret.expose(), "s3cret");
    assert_eq!(config.store_url(), "sqlite:///etc/idsync/state/idsync.db");
    let attrs = app.source_attributes();
    assert!(attrs.contains("userPrincipalName") && attrs.contains("mail"));
}

#[test]
fn the_error_names_the_file_and_line() {
    let text = edit("kind = \"jira-dc\"", "kind = \"jira-server\"");
    let error = parse(&text).expect_err("bad kind");
    let shown = error.to_string();
    assert!(
        shown.starts_with(
            "/etc/idsync/idsync.toml:18: targets[0].kind: unknown variant `jira-server`"
        ),
        "{shown}"
    );
    assert!(shown.contains("jira-dc"), "lists what is valid: {shown}");
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let (field, line, message) = problem("data_dir = \"x\"\n[[apps]\n");
    assert_eq!(field, "");
    assert_eq!(line, Some(2));
    assert!(message.starts_with("not valid TOML"), "{message}");
}

#[test]
fn unknown_fields_are_refused() {
    let text = edit(
        "targets = [\"jira\"]",
        "targets = [\"jira\"]\nnested_group = false",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].nested_group");
    assert_eq!(line, Some(11));
    assert!(message.contains("nested_groups"), "{message}");
}

#[test]
fn missing_fields_point_at_their_table() {
    let text = edit("client_id = \"11111111-2222-3333-4444-555555555555\"\n", "");
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0]");
    assert_eq!(line, Some(4));
    assert!(message.contains("missing field `client_id`"), "{message}");
}

#[test]
fn wrong_types_are_refused() {
    let text = edit(
        "base_url = \"https://jira.example.com\"",
        "base_url = \"https://jira.example.com\"\nconcurrency = \"four\"",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "targets[0].concurrency");
    assert_eq!(line, Some(20));
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn names_must_be_unique() {
    let text = format!(
        "{GOOD}\n[[targets]]\nname = \"jira\"\nkind = \"confluence-dc\"\nbase_url = \"https://c.example.com\"\ntoken = \"t\"\n"
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "targets[1].name");
    assert_eq!(line, Some(23));
    assert!(message.contains("unique"), "{message}");
}

#[test]
fn app_targets_must_be_defined() {
    let text = edit(
        "targets = [\"jira\"]",
        "targets = [\"jira\", \"bitbucket\"]",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].targets[1]");
    assert_eq!(line, Some(10));
    assert!(message.contains("defined targets: jira"), "{message}");
}

#[test]
fn override_keys_must_name_targets() {
    let text = format!("{GOOD}\n[apps.overrides.confluence.users]\nlowercase = true\n");
    // appended after [[targets]]: this table belongs to the last [[apps]] only if it comes
    // before; put it in the app instead
    let text = text.replace(
        "\n[apps.overrides.confluence.users]\nlowercase = true\n",
        "",
    );
    let text = text.replace(
        "[[targets]]",
        "[apps.overrides.confluence.users]\ncreate = false\n\n[[targets]]",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].overrides.confluence");
    assert_eq!(line, Some(16));
    assert!(message.contains("not defined"), "{message}");
}

#[test]
fn regexes_must_compile() {
    let text = edit(
        "[[targets]]",
        "[[apps.users.username.replace]]\npattern = \"(unclosed\"\nwith = \"x\"\n\n[[targets]]",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].users.username.replace[0].pattern");
    assert_eq!(line, Some(17));
    assert!(
        message.contains("not a valid regular expression"),
        "{message}"
    );

    let text = edit(
        "[[targets]]",
        "[apps.groups.on_the_fly]\ninclude = [\"^ok$\", \"[z-a]\"]\n\n[[targets]]",
    );
    let (field, line, _) = problem(&text);
    assert_eq!(field, "apps[0].groups.on_the_fly.include[1]");
    assert_eq!(line, Some(17));
}

#[test]
fn tenant_id_must_be_a_guid_or_a_domain() {
    let text = edit(
        "tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"",
        "tenant_id = \"contoso\"",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].tenant_id");
    assert_eq!(line, Some(7));
    assert!(
        message.contains("GUID") && message.contains("onmicrosoft.com"),
        "{message}"
    );
    let domain = edit(
        "tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"",
        "tenant_id = \"contoso.onmicrosoft.com\"",
    );
    parse(&domain).expect("a domain is fine");
}

#[test]
fn scope_groups_must_not_be_empty() {
    let text = edit("groups = [\"Jira Users\"]", "groups = []");
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].scope.groups");
    assert_eq!(line, Some(14));
    assert!(message.contains("directory"), "{message}");
}

/// Problems found after loading (reading the source) are placed as the loader's own are: each
/// entry of `scope.groups` at its own line, in the same `FILE:LINE: field: message` form.
#[test]
fn problems_found_later_are_placed_at_their_line() {
    let text = edit(
        "groups = [\"Jira Users\"]",
        "groups = [\n  \"Jira Users\",\n  \"Jira Admins\",\n]",
    );
    parse(&text).expect("valid");
    let file = Path::new("/etc/idsync/idsync.toml");
    let error = locate_with_env(
        &text,
        file,
        &Env::new(),
        vec![
            Problem::new(
                "apps[0].scope.groups[1]",
                "no group is named \"Jira Admins\"",
            ),
            Problem::new(
                "apps[0].scope.groups[0]",
                "2 groups are named \"Jira Users\"",
            ),
            Problem::new("apps[0].scope.app_id", "missing: points at its table"),
        ],
    );
    let placed: Vec<(&str, Option<usize>)> = error
        .problems()
        .iter()
        .map(|p| (p.field.as_str(), p.line))
        .collect();
    assert_eq!(
        placed,
        vec![
            ("apps[0].scope.groups[1]", Some(16)),
            ("apps[0].scope.groups[0]", Some(15)),
            ("apps[0].scope.app_id", Some(12)),
        ]
    );
    let shown = error.to_string();
    assert!(
        shown.starts_with("3 problems in config /etc/idsync/idsync.toml:\n"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "\n/etc/idsync/idsync.toml:16: apps[0].scope.groups[1]: no group is named \"Jira Admins\""
        ),
        "{shown}"
    );

    // A value the environment set is named by its variable, not a line.
    let error = locate_with_env(
        GOOD,
        Path::new("idsync.toml"),
        &env(&[("IDSYNC_APP_MAIN_TENANT_ID", "contoso.onmicrosoft.com")]),
        vec![Problem::new("apps[0].tenant_id", "no such tenant")],
    );
    let p = &error.problems()[0];
    assert_eq!(p.line, None);
    assert_eq!(p.env_var.as_deref(), Some("IDSYNC_APP_MAIN_TENANT_ID"));
    assert_eq!(
        error.to_string(),
        "idsync.toml: apps[0].tenant_id: no such tenant (value from environment variable \
         IDSYNC_APP_MAIN_TENANT_ID)"
    );
}

#[test]
fn delete_actions_need_delete_true() {
    let text = edit(
        "[[targets]]",
        "[apps.users]\non_leave = \"delete\"\n\n[[targets]]",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].users.on_leave");
    assert_eq!(line, Some(17));
    assert!(message.contains("delete = true"), "{message}");
    let ok = edit(
        "[[targets]]",
        "[apps.users]\non_leave = \"delete\"\ndelete = true\n\n[[targets]]",
    );
    parse(&ok).expect("allowed with delete = true");
}

#[test]
fn guard_values_must_be_sane() {
    let text = edit(
        "[[targets]]",
        "[apps.guard]\nmax_deprovision_percent = 250.0\n\n[[targets]]",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].guard.max_deprovision_percent");
    assert_eq!(line, Some(17));
    assert!(message.contains("0 to 100"), "{message}");
}

#[test]
fn a_sign_in_waits_a_minute_at_most() {
    let text = edit(
        "[apps.scope]",
        "login_sync_wait_seconds = 600\n\n[apps.scope]",
    );
    let (field, _, message) = problem(&text);
    assert_eq!(field, "apps[0].login_sync_wait_seconds");
    assert!(message.contains("at most 60"), "{message}");
    let ok = edit(
        "[apps.scope]",
        "login_sync_wait_seconds = 0\nlogin_sync_cache_seconds = 0\n\n[apps.scope]",
    );
    let config = parse(&ok).expect("allowed");
    assert_eq!(config.apps[0].login_sync_wait_seconds, 0);
    assert_eq!(config.apps[0].login_sync_cache_seconds, 0);
}

#[test]
fn targets_need_credentials() {
    let text = edit("token = \"pat\"\n", "");
    let (field, line, message) = problem(&text);
    assert_eq!(field, "targets[0].token");
    assert_eq!(line, Some(16), "points at the target's table");
    assert!(message.contains("IDSYNC_TARGET_JIRA_TOKEN"), "{message}");

    let half = edit("token = \"pat\"", "username = \"svc\"");
    let (field, _, message) = problem(&half);
    assert_eq!(field, "targets[0].password");
    assert!(message.contains("both"), "{message}");

    let cloud = edit("kind = \"jira-dc\"", "kind = \"atlassian-cloud\"")
        .replace("token = \"pat\"", "username = \"a\"\npassword = \"b\"");
    let (field, line, message) = problem(&cloud);
    assert_eq!(field, "targets[0].username");
    assert_eq!(line, Some(20));
    assert!(message.contains("SCIM"), "{message}");
}

/// Bitbucket DC refuses HTTP access tokens on the admin endpoints idsync calls (KB "How to
/// use OAuth2 tokens for administrative endpoints of Bitbucket Data Center", BSERV-10482): a
/// token there is a config error that says what to use instead.
#[test]
fn bitbucket_needs_basic_auth_not_a_token() {
    let bitbucket = edit("kind = \"jira-dc\"", "kind = \"bitbucket-dc\"");
    let (field, line, message) = problem(&bitbucket);
    assert_eq!(field, "targets[0].token");
    assert_eq!(line, Some(20), "points at the token");
    assert!(message.contains("HTTP access tokens"), "{message}");
    assert!(message.contains("`username` + `password`"), "{message}");
    assert!(message.contains("admin"), "{message}");
    assert!(message.contains("IDSYNC_TARGET_JIRA_USERNAME"), "{message}");

    // The same from the environment names the variable.
    let error = parse_with_env(
        &bitbucket.replace("token = \"pat\"", "username = \"idsync\""),
        Path::new("/etc/idsync/idsync.toml"),
        &env(&[("IDSYNC_TARGET_JIRA_TOKEN", "pat")]),
    )
    .expect_err("token from the environment");
    let p = &error.problems()[0];
    assert_eq!(p.field, "targets[0].token", "{error}");
    assert_eq!(p.env_var.as_deref(), Some("IDSYNC_TARGET_JIRA_TOKEN"));

    // No credentials at all: the hint is username + password, not a token.
    let (field, _, message) = problem(&bitbucket.replace("token = \"pat\"\n", ""));
    assert_eq!(field, "targets[0].username");
    assert!(message.contains("IDSYNC_TARGET_JIRA_PASSWORD"), "{message}");
    assert!(!message.contains("set `token`"), "{message}");

    let basic = bitbucket.replace(
        "token = \"pat\"",
        "username = \"idsync\"\npassword = \"pw\"",
    );
    let config = parse(&basic).expect("Basic auth is what Bitbucket takes");
    assert_eq!(config.targets[0].username.as_deref(), Some("idsync"));
}

/// The store opens SQLite only; a PostgreSQL URL is refused by the check, not at the first run.
#[test]
fn store_url_must_be_sqlite_for_now() {
    for url in [
        "postgres://idsync@db/idsync",
        "postgresql://idsync:hunter2@db:5432/idsync",
        "POSTGRES://db/idsync",
    ] {
        let text = format!("{GOOD}\n[store]\nurl = \"{url}\"\n");
        let (field, line, message) = problem(&text);
        assert_eq!(field, "store.url");
        assert_eq!(line, Some(GOOD.lines().count() + 3));
        assert!(message.contains("PostgreSQL"), "{message}");
        assert!(message.contains("only SQLite"), "{message}");
        assert!(message.contains("sqlite://"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "never shows a password: {message}"
        );
    }
    let error = parse_with_env(
        GOOD,
        Path::new("idsync.toml"),
        &env(&[("IDSYNC_STORE_URL", "postgres://db/idsync")]),
    )
    .expect_err("from the environment too");
    assert_eq!(
        error.problems()[0].env_var.as_deref(),
        Some("IDSYNC_STORE_URL")
    );
    let (_, _, message) = problem(&format!("{GOOD}\n[store]\nurl = \"mysql://db/x\"\n"));
    assert!(message.contains("not a store URL"), "{message}");
    for ok in ["sqlite:///var/lib/idsync/idsync.db", "sqlite:idsync.db"] {
        parse(&format!("{GOOD}\n[store]\nurl = \"{ok}\"\n")).expect(ok);
    }
}

#[test]
fn several_problems_are_reported_together() {
    let text = edit("groups = [\"Jira Users\"]", "groups = []").replace(
        "client_id = \"11111111-2222-3333-4444-555555555555\"",
        "client_id = \"secret-id\"",
    );
    let error = parse(&text).expect_err("two problems");
    assert_eq!(error.problems().len(), 2, "{error}");
    let shown = error.to_string();
    assert!(shown.contains(":8: apps[0].client_id"), "{shown}");
    assert!(shown.contains(":14: apps[0].scope.groups"), "{shown}");
}

#[test]
fn environment_overrides_the_file() {
    let text = edit("client_secret = \"s3cret\"\n", "");
    let config = parse_with_env(
        &text,
        Path::new("/etc/idsync/idsync.toml"),
        &env(&[
            ("IDSYNC_APP_MAIN_CLIENT_SECRET", "from-env"),
            ("IDSYNC_TARGET_JIRA_TOKEN", "env:JIRA_PAT"),
            ("JIRA_PAT", "pat-from-indirection"),
            ("IDSYNC_DATA_DIR", "/var/lib/idsync"),
            ("IDSYNC_STORE_URL", "sqlite:///srv/idsync/state.db"),
            ("IDSYNC_LOG", "ignored: not a config variable"),
        ]),
    )
    .expect("the environment supplies the secret");
    assert_eq!(config.apps[0].client_secret.expose(), "from-env");
    let token = config.targets[0].token.as_ref().expect("token");
    assert_eq!(token.expose(), "pat-from-indirection");
    assert_eq!(token.source, "env:JIRA_PAT");
    assert_eq!(config.data_dir, Path::new("/var/lib/idsync"));
    assert_eq!(config.store_url(), "sqlite:///srv/idsync/state.db");
}

#[test]
fn environment_problems_name_the_variable() {
    let error = parse_with_env(
        GOOD,
        Path::new("idsync.toml"),
        &env(&[("IDSYNC_APP_MIAN_CLIENT_SECRET", "x")]),
    )
    .expect_err("typo in the app name");
    let p = &error.problems()[0];
    assert_eq!(p.env_var.as_deref(), Some("IDSYNC_APP_MIAN_CLIENT_SECRET"));
    assert!(p.message.contains("'main' (MAIN)"), "{}", p.message);

    let error = parse_with_env(
        GOOD,
        Path::new("idsync.toml"),
        &env(&[("IDSYNC_APP_MAIN_TENANT_ID", "not a tenant")]),
    )
    .expect_err("bad value from the environment");
    let p = &error.problems()[0];
    assert_eq!(p.field, "apps[0].tenant_id");
    assert_eq!(p.line, None);
    assert_eq!(p.env_var.as_deref(), Some("IDSYNC_APP_MAIN_TENANT_ID"));
    assert!(error.to_string().contains("IDSYNC_APP_MAIN_TENANT_ID"));
}

#[test]
fn secret_references_resolve_and_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret.txt"), "from-file\n").expect("write");
    let text = edit(
        "client_secret = \"s3cret\"",
        "client_secret = \"file:secret.txt\"",
    );
    let file = dir.path().join("idsync.toml");
    std::fs::write(&file, &text).expect("write");
    let config = idsync_config::load_with_env(&file, &Env::new()).expect("relative file: secret");
    assert_eq!(config.apps[0].client_secret.expose(), "from-file");
    assert_eq!(
        format!("{:?}", config.apps[0].client_secret),
        "Secret(file:secret.txt, [redacted])"
    );

    let text = edit(
        "client_secret = \"s3cret\"",
        "client_secret = \"env:ENTRA_SECRET\"",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].client_secret");
    assert_eq!(line, Some(9));
    assert!(message.contains("ENTRA_SECRET is not set"), "{message}");
}

#[test]
fn an_unreadable_file_is_a_read_error() {
    let error = idsync_config::load(Path::new("/nonexistent/idsync.toml")).expect_err("missing");
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/idsync.toml"));
}

#[test]
fn the_example_in_docs_config_md_loads() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md"))
        .expect("docs/config.md");
    let start = doc.find("```toml\n").expect("an example") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("end of the example");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bitbucket-password.txt"), "pw\n").expect("write");
    let file = dir.path().join("idsync.toml");
    std::fs::write(&file, &doc[start..end]).expect("write");
    let config = idsync_config::load_with_env(
        &file,
        &env(&[("ENTRA_CLIENT_SECRET", "s"), ("JIRA_PAT", "p")]),
    )
    .unwrap_or_else(|e| panic!("the documented example is valid: {e}"));
    assert_eq!(config.apps.len(), 1);
    assert_eq!(config.targets.len(), 2);
    let password = config.targets[1].password.as_ref().expect("password");
    assert_eq!(password.expose(), "pw");
}

#[test]
fn approvals_expire_within_bounds() {
    let config = parse(GOOD).expect("valid");
    assert_eq!(config.apps[0].guard.approval_expires_minutes, 1440);
    for minutes in ["0", "50000"] {
        let text = edit(
            "targets = [\"jira\"]\n",
            &format!(
                "targets = [\"jira\"]\n\n[apps.guard]\napproval_expires_minutes = {minutes}\n"
            ),
        );
        let (field, line, message) = problem(&text);
        assert_eq!(field, "apps[0].guard.approval_expires_minutes", "{message}");
        assert!(line.is_some(), "{message}");
        assert!(message.contains("from 1 to 43200"), "{message}");
    }
}

#[test]
fn concurrency_and_rate_are_bounded() {
    for (value, ok) in [
        ("0", false),
        ("1", true),
        ("256", true),
        ("257", false),
        ("9223372036854775807", false),
    ] {
        let text = edit(
            "token = \"pat\"",
            &format!("token = \"pat\"\nconcurrency = {value}"),
        );
        if ok {
            parse(&text).unwrap_or_else(|e| panic!("concurrency {value}: {e}"));
            continue;
        }
        let error = parse(&text).expect_err(value);
        let shown = error.to_string();
        assert!(
            shown.starts_with("/etc/idsync/idsync.toml:21: targets[0].concurrency:"),
            "{shown}"
        );
        assert!(shown.contains("1 to 256"), "{shown}");
    }
    for (value, ok) in [
        ("1e-30", false),
        ("0.0", false),
        ("-1.0", false),
        ("nan", false),
        ("inf", false),
        ("-inf", false),
        ("1e300", false),
        ("0.0009", false),
        ("0.001", true),
        ("2.5", true),
        ("10000.0", true),
        ("10000.5", false),
    ] {
        let text = edit(
            "token = \"pat\"",
            &format!("token = \"pat\"\nmax_requests_per_second = {value}"),
        );
        if ok {
            parse(&text).unwrap_or_else(|e| panic!("max_requests_per_second {value}: {e}"));
            continue;
        }
        let error = parse(&text).expect_err(value);
        let shown = error.to_string();
        assert!(
            shown.starts_with("/etc/idsync/idsync.toml:21: targets[0].max_requests_per_second:"),
            "{shown}"
        );
        assert!(shown.contains("0.001 to 10000"), "{shown}");
    }
}

#[test]
fn credentials_in_urls_are_refused_without_showing_them() {
    let text = edit(
        "base_url = \"https://jira.example.com\"",
        "base_url = \"https://idsync:hunter2@jira.example.com/jira?x=1\"",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "targets[0].base_url");
    assert_eq!(line, Some(19));
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        message.contains("https://jira.example.com/jira"),
        "{message}"
    );
    assert!(message.contains("`token`"), "says where they go: {message}");

    for field in ["authority_url", "graph_url"] {
        let text = edit(
            "client_secret = \"s3cret\"",
            &format!(
                "client_secret = \"s3cret\"\n{field} = \"https://app:hunter2@login.example.com\""
            ),
        );
        let (found, line, message) = problem(&text);
        assert_eq!(found, format!("apps[0].{field}"));
        assert_eq!(line, Some(10));
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("client_secret"),
            "says where they go: {message}"
        );
    }

    // From the environment: the variable is named, the password is not shown.
    let error = parse_with_env(
        GOOD,
        Path::new("/etc/idsync/idsync.toml"),
        &env(&[(
            "IDSYNC_TARGET_JIRA_BASE_URL",
            "https://idsync:hunter2@jira.example.com",
        )]),
    )
    .expect_err("refused");
    let shown = error.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("IDSYNC_TARGET_JIRA_BASE_URL"), "{shown}");
}

#[test]
fn plain_http_to_another_host_is_a_warning() {
    let config = parse(GOOD).expect("valid");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let text = edit(
        "base_url = \"https://jira.example.com\"",
        "base_url = \"http://jira.example.com\"",
    );
    let config = parse(&text).expect("allowed, with a warning");
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    let warning = &config.warnings[0];
    assert!(
        warning.starts_with("/etc/idsync/idsync.toml:19: targets[0].base_url:"),
        "{warning}"
    );
    assert!(warning.contains("plain http"), "{warning}");

    let text = edit(
        "client_secret = \"s3cret\"",
        "client_secret = \"s3cret\"\ngraph_url = \"http://graph.example.com\"",
    );
    let config = parse(&text).expect("allowed, with a warning");
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0].contains("apps[0].graph_url"),
        "{:?}",
        config.warnings
    );

    // This machine: no network crossed, no warning.
    for local in [
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
    ] {
        let text = edit(
            "base_url = \"https://jira.example.com\"",
            &format!("base_url = \"{local}\""),
        );
        let config = parse(&text).expect("valid");
        assert!(config.warnings.is_empty(), "{local}: {:?}", config.warnings);
    }
}

#[test]
fn a_secret_of_the_wrong_type_is_not_shown() {
    for (value, line) in [("12345", 9), ("12345.5", 9), ("true", 9)] {
        let text = edit(
            "client_secret = \"s3cret\"",
            &format!("client_secret = {value}"),
        );
        let (field, at, message) = problem(&text);
        assert_eq!(field, "apps[0].client_secret");
        assert_eq!(at, Some(line));
        assert!(!message.contains(value), "{message}");
        assert!(message.contains("must be a string"), "{message}");
    }
    let text = edit("token = \"pat\"", "token = 987654321");
    let error = parse(&text).expect_err("refused");
    assert!(!error.to_string().contains("987654321"), "{error}");
}

#[test]
fn secret_files_are_bounded_and_must_be_regular_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = |path: &str| {
        let text = edit(
            "client_secret = \"s3cret\"",
            &format!("client_secret = \"file:{path}\""),
        );
        let file = dir.path().join("idsync.toml");
        std::fs::write(&file, &text).expect("write");
        idsync_config::load_with_env(&file, &Env::new())
    };

    std::fs::write(dir.path().join("big"), vec![b'x'; 64 * 1024 + 1]).expect("write");
    let message = load("big").expect_err("too big").to_string();
    assert!(message.contains("big"), "{message}");
    assert!(message.contains("larger than 64 KiB"), "{message}");

    std::fs::write(dir.path().join("limit"), vec![b'x'; 64 * 1024]).expect("write");
    let config = load("limit").expect("64 KiB is allowed");
    assert_eq!(config.apps[0].client_secret.expose().len(), 64 * 1024);

    let message = load(".").expect_err("a directory").to_string();
    assert!(message.contains("is a directory"), "{message}");

    // A device that never ends: refused before reading (this would not return otherwise).
    #[cfg(unix)]
    {
        let message = load("/dev/zero").expect_err("a device").to_string();
        assert!(message.contains("/dev/zero"), "{message}");
        assert!(message.contains("not a regular file"), "{message}");
        assert!(
            message.contains("regular file that holds only the secret"),
            "{message}"
        );

        // A FIFO: opening it would block until someone writes to it.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let message = load("fifo").expect_err("a FIFO").to_string();
            assert!(message.contains("not a regular file"), "{message}");
        }
    }
}

#[test]
fn custom_attributes_must_be_ones_each_target_keeps() {
    let cloud = "\n[[targets]]\nname = \"cloud\"\nkind = \"atlassian-cloud\"\nbase_url = \"https://api.atlassian.com/scim/directory/d1\"\ntoken = \"key\"\n";
    let feeds_both = edit(
        "targets = [\"jira\"]\n",
        "targets = [\"jira\", \"cloud\"]\n",
    );
    let with = |attributes: &str| {
        format!("{feeds_both}{cloud}").replacen(
            "[[targets]]",
            &format!("[apps.users.custom_attributes]\n{attributes}\n\n[[targets]]"),
            1,
        )
    };
    // The docs' own example names: fine for Jira, not for Atlassian Cloud.
    let (field, line, message) = problem(&with("cost_center = \"department\""));
    assert_eq!(
        field, "apps[0].users.custom_attributes.cost_center",
        "{message}"
    );
    assert!(line.is_some());
    assert!(
        message.contains("'cloud' (atlassian-cloud)") && message.contains("organization"),
        "{message}"
    );
    // Enterprise attributes Atlassian does not document for its directory are refused too.
    for name in ["costCenter", "employeeNumber", "division", "manager"] {
        let (field, _, message) = problem(&with(&format!("{name} = \"department\"")));
        assert_eq!(
            field,
            format!("apps[0].users.custom_attributes.{name}"),
            "{message}"
        );
        assert!(!message.contains("costCenter,"), "{message}");
    }
    // A name Cloud keeps: fine for both.
    parse(&with("organization = \"department\"")).expect("valid");
    // Jira-only names, with Cloud given its own rules.
    let text = with("cost_center = \"department\"").replacen(
        "[[targets]]",
        "[apps.overrides.cloud.users.custom_attributes]\norganization = \"department\"\n\n[[targets]]",
        1,
    );
    parse(&text).expect("valid with an override");
}

#[test]
fn bitbucket_delete_needs_users_delete_true() {
    // A Bitbucket target that deletes to deprovision, fed by an app that may not delete.
    let bitbucket = "\n[[targets]]\nname = \"bitbucket\"\nkind = \"bitbucket-dc\"\n\
                     base_url = \"https://bitbucket.example.com\"\nusername = \"idsync\"\n\
                     password = \"pw\"\ndeprovision = \"delete\"\n";
    let text = format!(
        "{}{bitbucket}",
        edit(
            "targets = [\"jira\"]",
            "targets = [\"jira\", \"bitbucket\"]"
        )
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "targets[1].deprovision", "{message}");
    assert_eq!(line, Some(28), "{message}");
    assert!(message.contains("apps[0]"), "{message}");
    assert!(message.contains("delete = true"), "{message}");
    assert!(message.contains("remove_licensed_groups"), "{message}");

    // Allowed by the app's users.delete = true...
    let ok = format!(
        "{}{bitbucket}",
        edit(
            "targets = [\"jira\"]\n",
            "targets = [\"jira\", \"bitbucket\"]\n\n[apps.users]\ndelete = true\n"
        )
    );
    parse(&ok).expect("allowed with delete = true");
    // ...unless an override for the target says otherwise (a complete users table, so its
    // `delete` is false again)...
    let over = format!(
        "{}{bitbucket}",
        edit(
            "targets = [\"jira\"]\n",
            "targets = [\"jira\", \"bitbucket\"]\n\n[apps.users]\ndelete = true\n\n\
             [apps.overrides.bitbucket.users]\ncreate = true\n"
        )
    );
    let (field, _, message) = problem(&over);
    assert_eq!(field, "targets[1].deprovision", "{message}");
    assert!(message.contains("overrides.bitbucket.users"), "{message}");
    // ...and an override alone may allow it.
    let over_ok = format!(
        "{}{bitbucket}",
        edit(
            "targets = [\"jira\"]\n",
            "targets = [\"jira\", \"bitbucket\"]\n\n[apps.overrides.bitbucket.users]\ndelete = true\n"
        )
    );
    parse(&over_ok).expect("allowed by the target's override");
    // An app that does not feed the target is no matter.
    let unfed = format!("{GOOD}{bitbucket}");
    parse(&unfed).expect("the app feeds jira only");
}

#[test]
fn membership_removal_limits_have_defaults_and_bounds() {
    let config = parse(GOOD).expect("valid");
    let guard = &config.apps[0].guard;
    assert_eq!(guard.max_membership_removal_percent, 10.0);
    assert_eq!(guard.max_membership_removal_count, 500);
    let text = edit(
        "[[targets]]",
        "[apps.guard]\nmax_membership_removal_percent = 101.0\n\n[[targets]]",
    );
    let (field, line, message) = problem(&text);
    assert_eq!(field, "apps[0].guard.max_membership_removal_percent");
    assert_eq!(line, Some(17));
    assert!(message.contains("0 to 100"), "{message}");
    let ok = edit(
        "[[targets]]",
        "[apps.guard]\nmax_membership_removal_percent = 2.5\nmax_membership_removal_count = 20\n\n[[targets]]",
    );
    let guard = parse(&ok).expect("valid").apps[0].guard;
    assert_eq!(guard.max_membership_removal_percent, 2.5);
    assert_eq!(guard.max_membership_removal_count, 20);
}
