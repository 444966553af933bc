//! `idsync demo`, `idsync serve` and `idsync admin-token rotate` as a user runs them: the
//! built binary, its printed endpoints and token, the admin API called over loopback, and a
//! clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idsync-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn idsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_idsync"))
}

/// Reads the child's stdout lines on a thread, so the test can wait for one with a bound.
fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The value of the first line starting with `prefix` (waiting up to two minutes: the demo
/// syncs twice before it serves).
fn wait_for(lines: &mpsc::Receiver<String>, prefix: &str, seen: &mut Vec<String>) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                seen.push(line.clone());
                if let Some(value) = line.strip_prefix(prefix) {
                    return value.trim().to_owned();
                }
            }
            Err(e) => panic!("no {prefix:?} line ({e}); printed:\n{}", seen.join("\n")),
        }
    }
}

/// Sends SIGTERM, as `systemctl stop` does, and waits for the exit code.
fn terminate(mut child: Child) -> Option<i32> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    child.wait().expect("the process ends").code()
}

/// Calls the service as a script would: the status and the body.
fn call(method: reqwest::Method, url: &str, token: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(token)
            .send()
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    })
}

fn get(url: &str, token: &str) -> (u16, String) {
    call(reqwest::Method::GET, url, token)
}

fn post(url: &str, token: &str) -> u16 {
    call(reqwest::Method::POST, url, token).0
}

/// Starts `command` (`idsync demo` or `idsync serve`) and waits for the API address and the
/// admin token it prints.
fn serving(command: &mut Command) -> (Child, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("idsync starts");
    let lines = lines(child.stdout.take().expect("stdout"));
    let mut seen = Vec::new();
    let api = wait_for(&lines, "api: ", &mut seen);
    let token = wait_for(&lines, "admin token: ", &mut seen);
    (child, api, token)
}

#[test]
fn demo_once_syncs_and_exits() {
    let dir = folder("once");
    let output = idsync()
        .args([
            "demo",
            "--once",
            "--users",
            "30",
            "--groups",
            "4",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .expect("idsync runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("first sync"), "{stdout}");
    assert!(stdout.contains("second sync"), "{stdout}");
    assert!(!stdout.contains("api: "), "--once does not serve: {stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_serves_the_api_with_the_token_it_prints_and_stops_cleanly() {
    let dir = folder("serve");
    let (child, api, token) = serving(
        idsync()
            .args(["demo", "--users", "30", "--groups", "4", "--data-dir"])
            .arg(&dir)
            .stderr(Stdio::null()),
    );
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");

    let (status, body) = get(&format!("{api}/apps"), &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"contoso\""), "{body}");
    assert!(body.contains("\"schedule\":\"1m\""), "{body}");
    let (status, _) = get(&format!("{api}/apps"), "idsync_wrong");
    assert_eq!(status, 401);
    // The two syncs the demo made are in the history the API serves.
    let (_, runs) = get(&format!("{api}/runs"), &token);
    assert_eq!(runs.matches("\"trigger\":\"manual\"").count(), 2, "{runs}");

    assert_eq!(terminate(child), Some(0), "a stop is a clean exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rotated_admin_token_replaces_the_one_the_service_printed() {
    // A demo folder gives a config with reachable simulators only while the demo runs, so the
    // service here serves a config whose apps are never synced: the API needs only the store.
    let dir = folder("rotate");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let config = dir.join("idsync.toml");
    std::fs::write(
        &config,
        // Nothing listens on port 9 of this host: the source cannot be read, quickly.
        "data_dir = \"data\"\n\n[[apps]]\nname = \"corp\"\nkind = \"entra\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\nclient_secret = \"not-used\"\nauthority_url = \"http://127.0.0.1:9\"\ngraph_url = \"http://127.0.0.1:9\"\n",
    )
    .expect("config written");
    let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
    let (child, api, first) = serving(
        idsync()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--config",
            ])
            .arg(&config)
            .stderr(log),
    );
    assert_eq!(get(&format!("{api}/idps"), &first).0, 200);

    let rotated = idsync()
        .args(["admin-token", "rotate", "--config"])
        .arg(&config)
        .output()
        .expect("idsync runs");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let stdout = String::from_utf8_lossy(&rotated.stdout);
    let second = stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin token: "))
        .expect("the new token is printed")
        .trim()
        .to_owned();
    assert_ne!(first, second);
    // The running service takes the new token and refuses the old one at once.
    assert_eq!(get(&format!("{api}/idps"), &first).0, 401);
    assert_eq!(get(&format!("{api}/idps"), &second).0, 200);

    // A run's log lines carry its app, trigger and id (JSON lines, for log collectors).
    let started = post(&format!("{api}/apps/corp/runs"), &second);
    assert_eq!(started, 202);
    let mut ended = None;
    for _ in 0..600 {
        let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
        ended = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            // The first retry of the unreachable sign-in is logged within the run.
            .find(|l| l["spans"][0]["name"] == "run");
        if ended.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ended = ended.expect("a line of the run is logged as JSON");
    let run = &ended["spans"][0];
    assert_eq!(run["name"], "run", "{ended}");
    assert_eq!(run["app"], "corp", "{ended}");
    assert_eq!(run["trigger"], "manual", "{ended}");
    assert!(run["run_id"].as_i64().is_some(), "{ended}");
    // The store keeps a hash, never the token.
    let mut db = std::fs::read(dir.join("data").join("idsync.db")).expect("the store");
    // Recent writes may still be in the write-ahead log.
    db.extend(std::fs::read(dir.join("data").join("idsync.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(&second[7..]) && !db.contains(&first[7..]));
    assert_eq!(terminate(child), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
