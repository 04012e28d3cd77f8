//! Starting a server per test and talking to it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use xlrs::config::{DatabaseArgs, ServeArgs};
use xlrs::startup::Application;

pub const ADMIN_KEY: &str = "test-admin";
pub const ADMIN_SECRET: &str = "test-admin-secret";
pub const VERSION: &str = "1.0.3";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    /// The xAPI endpoint, e.g. `http://127.0.0.1:41234/xapi`.
    pub endpoint: String,
    pub database_url: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Runs `$test` (an `async fn(TestApp)`) once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($test:ident) => {
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await.expect("sqlite app");
                super::$test(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                    super::$test(app).await;
                }
            }
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn postgres_base() -> String {
    std::env::var("XLRS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh PostgreSQL database for one test, or `None` when PostgreSQL is
/// unreachable (a failure instead when `XLRS_TEST_REQUIRE_POSTGRES=1`).
async fn postgres_database() -> Option<String> {
    static CLEANED: OnceLock<()> = OnceLock::new();
    let admin_url = format!("{}/postgres", postgres_base());
    let connect = tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(&admin_url)).await;
    let mut conn = match connect {
        Ok(Ok(c)) => c,
        other => {
            if std::env::var("XLRS_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PostgreSQL is required but unreachable at {admin_url}: {other:?}");
            }
            eprintln!("PostgreSQL unreachable at {admin_url}: skipping the PostgreSQL variant");
            return None;
        }
    };
    let pid = std::process::id();
    if CLEANED.set(()).is_ok() {
        // Databases of earlier runs are left over only if a run was killed:
        // drop those whose process is gone, never those of a run going on
        // beside this one. Not WITH (FORCE): a run on another machine
        // sharing this server has a pid this machine may not know, but it
        // is connected to its databases, and a plain DROP refuses those.
        let rows: Vec<(String,)> = sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'xlrs_t_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
        for (name,) in rows {
            let owner = name.trim_start_matches("xlrs_t_").split('_').next().unwrap_or_default();
            if !std::path::Path::new("/proc").join(owner).exists() {
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\"");
                let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut conn).await;
            }
        }
    }
    let name = format!("xlrs_t_{pid}_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    Some(format!("{}/{name}", postgres_base()))
}

pub fn serve_args(database_url: &str) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".into(),
        node_id: None,
        database: DatabaseArgs { url: database_url.into(), pool_size: 4 },
        admin_key: Some(ADMIN_KEY.into()),
        admin_secret: Some(ADMIN_SECRET.into()),
        max_body_bytes: 1024 * 1024,
        max_attachment_bytes: 64 * 1024 * 1024,
        attachment_buffer_bytes: 64 * 1024,
        spool_dir: None,
        page_limit: 100,
        authority_home_page: "https://lrs.example.com/credentials".into(),
        auth_cache_secs: 30,
        forwarders: None,
        max_stream_consumers: 16,
        stream_stall_secs: 10,
        progress: true,
        workers: Some(1),
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like `spawn_app`, with settings changed by `adjust`.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut ServeArgs)) -> Option<TestApp> {
    xlrs::telemetry::init();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("xlrs.db").display()),
        Backend::Postgres => postgres_database().await?,
    };
    Some(spawn_app_on(database_url, dir, adjust).await)
}

/// A server on an existing database (another node, or the same one started
/// again), with settings changed by `adjust`.
pub async fn spawn_app_on(
    database_url: String,
    dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    let mut args = serve_args(&database_url);
    adjust(&mut args);
    let app = Application::build(args).await.expect("build app");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        endpoint: format!("http://127.0.0.1:{port}/xapi"),
        database_url,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestApp {
    /// A request with the version header and the admin credential.
    pub fn request(&self, method: Method, path_and_query: &str) -> RequestBuilder {
        self.request_with_version(method, path_and_query, VERSION)
    }

    /// A request in another xAPI version (a second `.header()` on `request`
    /// would add a second version header, not replace the first).
    pub fn request_with_version(&self, method: Method, path_and_query: &str, version: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path_and_query}", self.endpoint))
            .header("X-Experience-API-Version", version)
            .basic_auth(ADMIN_KEY, Some(ADMIN_SECRET))
    }

    /// Sends a request with a body of this content type.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.request(method, path_and_query).header("Content-Type", content_type).body(body).send().await.unwrap()
    }

    pub async fn post_statements(&self, body: &Value) -> Response {
        self.request(Method::POST, "/statements").json(body).send().await.expect("POST")
    }

    pub async fn put_statement(&self, id: &str, body: &Value) -> Response {
        self.request(Method::PUT, &format!("/statements?statementId={id}")).json(body).send().await.expect("PUT")
    }

    /// POSTs and expects 200; returns the ids.
    pub async fn store(&self, body: &Value) -> Vec<String> {
        let res = self.post_statements(body).await;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "POST failed: {text}");
        serde_json::from_str(&text).expect("ids")
    }

    /// Stores each statement in its own request, so each gets its own `stored`.
    pub async fn store_each(&self, statements: &[Value]) -> Vec<String> {
        let mut ids = Vec::new();
        for s in statements {
            ids.push(self.store(s).await.remove(0));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        ids
    }

    /// GET /statements with a raw query string; returns status and JSON body.
    pub async fn get_statements(&self, query: &str) -> (StatusCode, Value) {
        let res = self.request(Method::GET, &format!("/statements?{query}")).send().await.expect("GET");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The stored statement with this id (expects 200).
    pub async fn statement(&self, id: &str) -> Value {
        let (status, body) = self.get_statements(&format!("statementId={id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Ids of a StatementResult page for this query.
    pub async fn ids(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get_statements(query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids_of(&body)
    }
}

pub fn ids_of(result: &Value) -> Vec<String> {
    result["statements"]
        .as_array()
        .expect("statements array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// URL-encodes a query value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An Agent identified by `mailto:<n>@example.com`.
pub fn agent(n: &str) -> Value {
    json!({"objectType": "Agent", "mbox": format!("mailto:{n}@example.com")})
}

/// The `agent=` query parameter for this Agent or Group.
pub fn agent_q(a: &Value) -> String {
    format!("agent={}", enc(&a.to_string()))
}

/// A valid statement with a unique actor, verb and activity.
pub fn statement() -> Value {
    let n = uuid();
    json!({
        "actor": {"objectType": "Agent", "name": "Learner", "mbox": format!("mailto:learner-{n}@example.com")},
        "verb": {"id": format!("http://example.com/verbs/{n}"), "display": {"en-US": "did"}},
        "object": {"objectType": "Activity", "id": format!("http://example.com/activities/{n}"),
                   "definition": {"name": {"en-US": "An activity"}}}
    })
}

/// The `Last-Modified` header, parsed (it must be there, an HTTP date).
pub fn last_modified(headers: &reqwest::header::HeaderMap) -> chrono::DateTime<chrono::FixedOffset> {
    let value = headers.get("last-modified").expect("Last-Modified").to_str().unwrap();
    chrono::DateTime::parse_from_rfc2822(&value.replace("GMT", "+0000"))
        .unwrap_or_else(|e| panic!("Last-Modified '{value}' is not an HTTP date: {e}"))
}
