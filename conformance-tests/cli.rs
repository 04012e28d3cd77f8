//! The command-line contract: `migrate`, `credentials`, `serve` (first-run
//! hint, admin credential from the environment, SIGTERM drains in-flight
//! requests so every acknowledged statement is stored).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

pub fn xlrs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xlrs"));
    c.env_remove("DATABASE_URL")
        .env_remove("XLRS_ADMIN_KEY")
        .env_remove("XLRS_ADMIN_SECRET")
        .env_remove("XLRS_LISTEN")
        .env("RUST_LOG", "info");
    c
}

pub fn run(args: &[&str], database_url: &str) -> (bool, String, String) {
    let out = xlrs().args(args).arg("--database-url").arg(database_url).output().expect("run xlrs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let (ok, stdout, stderr) = run(&["migrate"], &format!("sqlite://{}", path.display()));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("migrations applied"));
    assert!(path.exists());
    // Applying again is a no-op.
    assert!(run(&["migrate"], &format!("sqlite://{}", path.display())).0);
}

#[test]
fn credentials_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let (ok, stdout, stderr) =
        run(&["credentials", "create", "--name", "player", "--scopes", "statements/write,statements/read/mine"], &url);
    assert!(ok, "{stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .to_owned()
    };
    let key = field("key");
    assert!(field("secret").len() >= 32);
    assert_eq!(field("scopes"), "statements/write statements/read/mine");

    let (ok, listing, _) = run(&["credentials", "list"], &url);
    assert!(ok && listing.contains(&key) && listing.contains("player"));
    assert!(!listing.contains(&field("secret")), "list never shows secrets");

    assert!(run(&["credentials", "revoke", &key], &url).0);
    assert!(!run(&["credentials", "list"], &url).1.contains(&key));
    assert!(!run(&["credentials", "revoke", &key], &url).0, "revoking twice fails");
    assert!(!run(&["credentials", "create", "--name", "x", "--scopes", "everything"], &url).0, "unknown scope");
}

/// A running `xlrs serve` child and the port it listens on.
pub struct Served {
    pub child: Child,
    pub port: u16,
    log: std::sync::mpsc::Receiver<String>,
}

fn serve(database_url: &str, admin: Option<(&str, &str)>) -> Served {
    serve_with_env(database_url, admin, &[])
}

/// `xlrs serve` on a free port, with extra environment variables.
pub fn serve_with_env(database_url: &str, admin: Option<(&str, &str)>, env: &[(&str, &str)]) -> Served {
    let mut cmd = xlrs();
    cmd.envs(env.iter().copied());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((key, secret)) = admin {
        cmd.env("XLRS_ADMIN_KEY", key).env("XLRS_ADMIN_SECRET", secret);
    }
    let mut child = cmd.spawn().expect("spawn serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut port = None;
    while port.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("serve started");
        port = line.split("port=").nth(1).and_then(|p| p.split_whitespace().next()).and_then(|p| p.parse().ok());
    }
    Served { child, port: port.unwrap(), log: rx }
}

pub fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("xlrs did not exit within 30 s of SIGTERM");
}

#[test]
fn first_run_without_credentials_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("first.db").display());
    let mut cmd = xlrs();
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let mut hint = 0;
    let mut port = None;
    for line in lines.by_ref() {
        if line.contains("xlrs credentials create") {
            hint += 1;
        }
        if let Some(p) = line.split("port=").nth(1) {
            port = p.split_whitespace().next().and_then(|p| p.parse::<u16>().ok());
            break;
        }
    }
    assert_eq!(hint, 1, "the hint is given once");
    // And the server refuses requests rather than running open.
    let res = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/xapi/statements", port.unwrap()))
        .header("X-Experience-API-Version", VERSION)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
}

#[test]
fn sigterm_drains_in_flight_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drain.db").display());
    let mut served = serve(&url, Some(("drainer", "drain-secret")));
    let endpoint = format!("http://127.0.0.1:{}/xapi", served.port);

    // Writers post until the server goes away; each remembers what was acknowledged.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let endpoint = endpoint.clone();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for _ in 0..400 {
                    let batch: Vec<Value> = (0..5).map(|_| statement()).collect();
                    let res = client
                        .post(format!("{endpoint}/statements"))
                        .header("X-Experience-API-Version", VERSION)
                        .basic_auth("drainer", Some("drain-secret"))
                        .json(&batch)
                        .send();
                    match res {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let ids: Vec<String> = r.json().unwrap();
                            acknowledged.lock().unwrap().extend(ids);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    sigterm(&served.child);
    let status = wait_exit(&mut served.child);
    for w in writers {
        w.join().unwrap();
    }
    assert!(status.success(), "exit status {status}");
    let log: Vec<String> = served.log.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("xlrs stopped")), "{log:?}");

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty(), "some writes were acknowledged before SIGTERM");
    let again = serve(&url, Some(("drainer", "drain-secret")));
    let client = reqwest::blocking::Client::new();
    let mut count = 0;
    let mut next = Some("/xapi/statements?limit=500".to_owned());
    let mut stored = std::collections::HashSet::new();
    while let Some(path) = next.take() {
        let page: Value = client
            .get(format!("http://127.0.0.1:{}{path}", again.port))
            .header("X-Experience-API-Version", VERSION)
            .basic_auth("drainer", Some("drain-secret"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        for s in page["statements"].as_array().unwrap() {
            stored.insert(s["id"].as_str().unwrap().to_owned());
            count += 1;
        }
        let more = page["more"].as_str().unwrap();
        if !more.is_empty() {
            next = Some(more.to_owned());
        }
    }
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged statement {id} was lost");
    }
    assert_eq!(count, stored.len(), "no statement is served twice");
    let mut again = again;
    sigterm(&again.child);
    wait_exit(&mut again.child);
}

#[test]
fn forward_identity_set_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ids.db").display());
    let (ok, stdout, stderr) = run(&["forward", "identity", "set", "bob", "Ann@Example.com", "u-1"], &url);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("mbox:mailto:ann@example.com is u-1 on bob"), "{stdout}");
    let account = "account:https://sso.example.com|ann";
    assert!(run(&["forward", "identity", "set", "bob", account, "u-2"], &url).0);
    let (ok, listing, _) = run(&["forward", "identity", "list", "bob"], &url);
    assert!(ok);
    assert!(listing.lines().any(|l| l == "mbox:mailto:ann@example.com\tu-1\toperator\t-"), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with(&format!("{account}\tu-2\toperator"))), "{listing}");
    assert!(run(&["forward", "identity", "list", "other"], &url).1.lines().count() == 1, "another target's are apart");

    assert!(run(&["forward", "identity", "remove", "bob", "mbox:mailto:ann@example.com"], &url).0);
    let listing = run(&["forward", "identity", "list", "bob"], &url).1;
    assert!(!listing.contains("ann@example.com") && listing.contains(account), "{listing}");
    let (ok, _, stderr) = run(&["forward", "identity", "remove", "bob", "ann@example.com"], &url);
    assert!(!ok && stderr.contains("no identity for mbox:mailto:ann@example.com"), "{stderr}");
    let (ok, _, stderr) = run(&["forward", "identity", "set", "bob", "ann", "u-3"], &url);
    assert!(!ok && stderr.contains("not an actor key"), "{stderr}");

    // With the configuration at hand, a target it does not name is refused.
    let config = dir.path().join("forwarders.toml");
    std::fs::write(&config, "[[forwarder]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n")
        .unwrap();
    let args = ["forward", "identity", "list", "bob", "--forwarders", config.to_str().unwrap()];
    let (ok, _, stderr) = run(&args, &url);
    assert!(!ok && stderr.contains("no forwarder named 'bob'"), "{stderr}");
}

forwarding_test!(forward_rows_lists_rows_with_their_last_error);
async fn forward_rows_lists_rows_with_their_last_error(backend: Backend) {
    use crate::forwarding::{Forwarding, LRS_SECRETS, WAIT, lrs_target, with_verb};
    use crate::simulators::{Simulator, lrs::Lrs};
    let refused = "http://example.com/verbs/refused";
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.behaviour.refused_verbs.lock().unwrap().push(refused.into());
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else { return };
    let dead = f.app.store(&with_verb(refused)).await.remove(0);
    f.app.store(&json!([with_verb(refused), statement(), statement()])).await;
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 2).await);
    f.settled().await;
    let url = f.app.database_url.clone();
    let cli = move |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || run(&args, &url))
    };

    let (ok, stdout, stderr) = cli(vec!["forward", "rows", "backup", "--status", "dead"]).await.unwrap();
    assert!(ok, "{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    let fields: Vec<&str> = rows[0].split('\t').collect();
    assert_eq!(&fields[2..5], [dead.as_str(), "dead", "1"], "{stdout}");
    assert_eq!(fields[6], "400");
    assert!(fields[7].contains("refused"), "{stdout}");

    // Only the refused statements are rows (the others went through the
    // target's cursor): pages of one.
    let (ok, stdout, _) = cli(vec!["forward", "rows", "backup", "--limit", "1"]).await.unwrap();
    assert!(ok);
    assert_eq!(stdout.lines().count(), 3, "header, one row, where to go on: {stdout}");
    let next = stdout.lines().last().unwrap().strip_prefix("more: --after ").expect("more").to_owned();
    let rest = tokio::task::spawn_blocking({
        let url = f.app.database_url.clone();
        move || run(&["forward", "rows", "backup", "--limit", "1", "--after", &next], &url)
    })
    .await
    .unwrap();
    assert!(rest.1.lines().nth(1).is_some_and(|row| !row.starts_with("more")), "the second row: {}", rest.1);
    assert_eq!(rest.1.lines().filter(|l| !l.starts_with("more")).count(), 2, "and no third: {}", rest.1);
    let (ok, _, stderr) = cli(vec!["forward", "rows", "backup", "--status", "lost"]).await.unwrap();
    assert!(!ok && stderr.contains("unknown outbox status 'lost'"), "{stderr}");
}

forwarding_test!(forward_retry_of_delivered_rows_needs_force);
async fn forward_retry_of_delivered_rows_needs_force(backend: Backend) {
    use crate::forwarding::{Forwarding, LRS_SECRETS, WAIT, lrs_target, with_verb};
    use crate::simulators::{Simulator, lrs::Lrs};
    use xlrs::store::outbox::Status;
    let refused = "http://example.com/verbs/refused";
    let sim = Simulator::start(Lrs::new("fwd-key", "fwd-secret"));
    sim.behaviour.refused_verbs.lock().unwrap().push(refused.into());
    let Some(f) = Forwarding::start(backend, &lrs_target("backup", &sim.url, ""), LRS_SECRETS).await else { return };
    f.app.store(&with_verb(refused)).await;
    f.settled().await;
    sim.behaviour.refused_verbs.lock().unwrap().clear();
    let url = f.app.database_url.clone();
    let cli = move |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || run(&args, &url))
    };
    let (ok, _, stderr) = cli(vec!["forward", "retry", "--target", "backup"]).await.unwrap();
    assert!(ok, "{stderr}");
    assert!(sim.wait_until(WAIT, |lrs| lrs.count() == 1).await);
    let delivered = vec![("backup".to_owned(), Status::Succeeded, 1)];
    assert_eq!(f.settled().await, delivered);

    let again = vec!["forward", "retry", "--target", "backup", "--status", "succeeded"];
    let (ok, _, stderr) = cli(again.clone()).await.unwrap();
    assert!(!ok, "refused without --force");
    assert!(stderr.contains("succeeded rows were delivered already") && stderr.contains("--force"), "{stderr}");
    assert_eq!(f.statuses().await, delivered, "nothing made due");

    let sent = sim.requests().len();
    let (ok, stdout, stderr) = cli([again, vec!["--force"]].concat()).await.unwrap();
    assert!(ok && stdout.contains("1 rows are due again"), "{stdout}{stderr}");
    assert!(sim.wait_until(WAIT, |_| sim.requests().len() > sent).await, "sent again");
    assert_eq!(f.settled().await, delivered);
}
