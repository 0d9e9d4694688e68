//! The command deck in a real browser: `autolake demo` builds the factory,
//! `autolake serve` serves it, and `tests/deck/deck.mjs` drives Debian's
//! headless Chromium through playwright-core as each demo user (the test
//! command installs both). Afterwards the lake itself is asked what the
//! pages did: the job run, the stage change and the refusals, each in the
//! audit log with interface `web`. Screenshots of every view are left in
//! `artifacts/deck/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::flight::{PASSWORD, Server};
use super::{count, demo, ok, services, sql};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
        .to_path_buf()
}

/// One HTTP/1.1 request to the server; the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the HTTP port answers");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    s.write_all(request.as_bytes())
        .expect("the request is sent");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("a reply");
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// Waits until `query` (one number) reaches `at_least`: the server writes
/// its audit entries to the lake within a second.
fn eventually(lake: &Path, query: &str, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(lake, query);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deck_shows_each_role_its_part_and_audits_every_action() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    assert!(
        Path::new(&chromium).exists(),
        "the deck tests need Debian's chromium at {chromium}: scripts/test.sh installs it \
         (apt-get install chromium), or set CHROMIUM"
    );
    let driver = root().join("tests/deck");
    assert!(
        driver.join("node_modules/playwright-core").exists(),
        "the deck tests need playwright-core: scripts/test.sh installs it \
         (npm ci --prefix tests/deck)"
    );

    let lake = tempfile::tempdir().unwrap();
    let shown = ok(demo(lake.path(), &services::Service::Postgres.url()));
    // The demo ends with the deck's address and its users' passwords.
    assert!(shown.contains("open http://127.0.0.1:8080/"), "{shown}");
    let mut users = serde_json::Map::new();
    for line in shown.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [user, "password", password, ..] = words.as_slice()
            && user.starts_with("demo_")
        {
            users.insert(user.to_string(), (*password).into());
        }
    }
    assert_eq!(users.len(), 3, "three demo users in:\n{shown}");
    users.insert("admin".into(), PASSWORD.into());

    let server = Server::start(lake.path(), 3600);

    // Scripts use the Flight SQL bearer token, with no CSRF token.
    let mut client = server.client().await;
    let token = client.handshake("admin", PASSWORD).await.expect("login");
    let token = String::from_utf8(token.to_vec()).expect("a text token");
    let bearer = format!("Bearer {token}");
    let (status, body) = http(
        server.http,
        "GET",
        "/api/v1/overview",
        &[("authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let overview: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(overview["counts"]["tables"].as_i64() >= Some(7), "{body}");
    assert_eq!(overview["health"]["audit"]["intact"], true, "{body}");
    let (status, body) = http(
        server.http,
        "POST",
        "/api/v1/sql",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        r#"{"sql": "SELECT count(*) AS n FROM demo.orders"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("[[120]]"), "{body}");
    let (status, _) = http(
        server.http,
        "GET",
        "/api/v1/overview",
        &[("authorization", "Bearer not-a-token")],
        "",
    );
    assert_eq!(status, 401);
    // The pages themselves, with their security headers.
    let (status, page) = http(server.http, "GET", "/", &[], "");
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/deck.js\" defer>"), "{page}");

    let shots = root().join("artifacts/deck");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(driver.join("deck.mjs"))
        .current_dir(&driver)
        .env("DECK_URL", format!("http://127.0.0.1:{}", server.http))
        .env("DECK_USERS", serde_json::Value::Object(users).to_string())
        .env("DECK_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DECK OK"),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let facts: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("DECK OK "))
            .expect("the facts line"),
    )
    .expect("JSON facts");
    for view in [
        "overview", "tables", "sources", "jobs", "models", "drift", "devices", "lineage", "audit",
        "console",
    ] {
        assert!(shots.join(format!("admin-{view}.png")).exists(), "{view}");
    }

    let lake = lake.path();
    let web = |user: &str, kind: &str, outcome: &str| {
        format!(
            "SELECT count(*) FROM system.audit_log WHERE interface = 'web' AND \"user\" = '{user}' \
             AND kind = '{kind}' AND outcome = '{outcome}'"
        )
    };
    // The run started from the page: in the job's runs, audited as web.
    let run = facts["engineer_run"].as_i64().expect("the run's number");
    assert_eq!(
        count(
            lake,
            &format!(
                "SELECT count(*) FROM system.job_runs WHERE job = 'demo_price_drift' AND run = {run} \
                 AND status = 'succeeded' AND \"trigger\" = 'manual'"
            )
        ),
        1
    );
    assert!(eventually(lake, &web("demo_engineer", "RUN JOB", "success"), 1) >= 1);
    assert!(
        eventually(lake, &web("demo_engineer", "ALTER JOB", "success"), 2) >= 2,
        "pause and resume"
    );
    assert_eq!(
        ok(sql(
            lake,
            "SELECT paused FROM system.jobs WHERE name = 'demo_price_drift'"
        )),
        "paused\nfalse\n"
    );
    // The stage change.
    assert!(eventually(lake, &web("admin", "ALTER MODEL", "success"), 1) >= 1);
    assert_eq!(
        ok(sql(
            lake,
            "SELECT stage FROM system.models WHERE name = 'demo_large_orders'"
        )),
        "stage\nstaging\n"
    );
    // What the pages did not offer, refused by the server and audited.
    assert!(eventually(lake, &web("demo_scientist", "RUN JOB", "denied"), 1) >= 1);
    assert!(eventually(lake, &web("demo_scientist", "ALTER MODEL", "denied"), 1) >= 1);
    assert!(eventually(lake, &web("demo_auditor", "DELETE", "denied"), 1) >= 1);
    // Sign-ins: refused, throttled, and the views' reads.
    assert!(eventually(lake, &web("demo_engineer", "LOGIN", "denied"), 1) >= 1);
    assert!(
        eventually(
            lake,
            "SELECT count(*) FROM system.audit_log WHERE interface = 'web' AND \"user\" = 'mallory' \
             AND error LIKE 'too many failed sign-ins%'",
            1
        ) >= 1
    );
    assert!(eventually(lake, &web("demo_engineer", "LOGOUT", "success"), 1) >= 1);
    assert!(eventually(lake, &web("demo_auditor", "SELECT", "success"), 5) >= 5);
    let verify = ok(sql(lake, "VERIFY AUDIT LOG"));
    assert!(
        verify
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("true,")),
        "{verify}"
    );
    drop(server);
}
