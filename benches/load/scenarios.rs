//! The standard scenarios, in the order they run: writes on an empty store,
//! the fill, then reads and documents on the filled store.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};

use crate::generator::{self, Generator};
use crate::server::{KEY, SECRET};
use crate::{Args, Done, Stats, drive};

/// The server under load, and what the harness knows of its store.
#[derive(Clone)]
pub struct Lrs {
    client: reqwest::Client,
    base: String,
    /// The server process, whose memory the export scenario watches.
    pid: u32,
    stored: Arc<AtomicU64>,
    /// `since` and `until` around statements stored in the middle of the fill.
    window: Arc<Mutex<Option<(String, String)>>>,
}

impl Lrs {
    pub fn new(port: u16, pid: u32) -> Lrs {
        Lrs {
            // A connection idle for actix's keep-alive (5 s) is closed by the
            // server; one reused at that instant fails before any answer
            // ("error sending request", CI's smoke run on PostgreSQL after
            // the fill). Dropping idle connections sooner avoids the race.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("an HTTP client with default TLS settings"),
            base: format!("http://127.0.0.1:{port}/xapi"),
            pid,
            stored: Arc::default(),
            window: Arc::default(),
        }
    }

    fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path_and_query}", self.base))
            .header("X-Experience-API-Version", "1.0.3")
            .basic_auth(KEY, Some(SECRET))
    }

    /// Statements stored through the harness.
    pub async fn count(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    async fn post(&self, body: &Value, statements: u64) -> Done {
        let res = send(self.request(Method::POST, "/statements").json(body)).await;
        self.posted(res, statements).await
    }

    /// Posts a body made before the scenario began (`Bodies`).
    async fn post_made(&self, body: bytes::Bytes, statements: u64) -> Done {
        let request = self.request(Method::POST, "/statements").header("Content-Type", "application/json");
        self.posted(send(request.body(body)).await, statements).await
    }

    async fn posted(&self, res: reqwest::Result<reqwest::Response>, statements: u64) -> Done {
        let done = answered(res, statements).await;
        if done.ok {
            self.stored.fetch_add(statements, Ordering::Relaxed);
        }
        done
    }

    /// The writer's group commits so far: (statements, commits), from
    /// `/metrics`.
    pub async fn commits(&self) -> (f64, f64) {
        let url = format!("{}/metrics", self.base.trim_end_matches("/xapi"));
        let text = match self.client.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0)
        };
        (value("xlrs_writer_group_statements_sum "), value("xlrs_writer_group_statements_count "))
    }

    /// GET `path_and_query`; counts the statements of a statement result.
    async fn get(&self, path_and_query: &str) -> (Done, Option<String>) {
        let res = send(self.request(Method::GET, path_and_query)).await;
        match res {
            Ok(r) if r.status().is_success() => {
                // Counted, not kept: the harness shares the server's cores.
                #[derive(serde::Deserialize, Default)]
                struct Page {
                    statements: Vec<serde::de::IgnoredAny>,
                    #[serde(default)]
                    more: String,
                }
                let page: Page = r.json().await.unwrap_or_default();
                let more = Some(page.more).filter(|m| !m.is_empty());
                (Done::ok(page.statements.len() as u64), more)
            }
            other => (answered(other, 0).await, None),
        }
    }
}

impl Lrs {
    /// Returns once learner progress counts every statement committed
    /// before the call: a progress read waits up to 2 s for that (asking the
    /// writer to count now) and says how far its answer goes.
    pub async fn progress_counted(&self) {
        let asked = chrono::Utc::now();
        let query = format!("/extensions/progress?learner={}", q(&json!({"mbox": "mailto:nobody@example.com"})));
        for _ in 0..30 {
            let r = self.request(Method::GET, &query).send().await.expect("progress read");
            assert!(r.status().is_success(), "progress read: {}", r.status());
            let through = r.headers().get("X-Progress-Consistent-Through").and_then(|v| v.to_str().ok());
            let through = through.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if through.is_some_and(|t| t >= asked) {
                return;
            }
        }
        panic!("learner progress did not catch up in a minute");
    }

    /// GET a progress page; counts its rows (none in a smoke run, whose
    /// fill may store nothing: the POST scenarios stored enough before it).
    async fn progress(&self, path_and_query: &str) -> Done {
        match self.request(Method::GET, path_and_query).send().await {
            Ok(r) if r.status().is_success() => {
                #[derive(serde::Deserialize, Default)]
                struct Page {
                    progress: Vec<serde::de::IgnoredAny>,
                }
                let page: Page = r.json().await.unwrap_or_default();
                Done::ok(page.progress.len() as u64)
            }
            other => answered(other, 0).await,
        }
    }
}

/// Sends the request, again once if the answer is 408: actix answers so on
/// a kept-alive connection whose time ran out as the request came (seen
/// once in CI's smoke run); the request itself was never read.
async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let again = request.try_clone();
    match (request.send().await, again) {
        (Ok(r), Some(again)) if r.status() == reqwest::StatusCode::REQUEST_TIMEOUT => again.send().await,
        (res, _) => res,
    }
}

async fn answered(res: reqwest::Result<reqwest::Response>, statements: u64) -> Done {
    match res {
        Ok(r) if r.status().is_success() => {
            let _ = r.bytes().await;
            Done::ok(statements)
        }
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            Done::refused(format!("{status}: {}", text.chars().take(300).collect::<String>()))
        }
        Err(e) => Done::refused(e.to_string()),
    }
}

pub struct Scenario {
    pub name: String,
    pub concurrency: usize,
    kind: Kind,
}

enum Kind {
    PostSingle,
    PostBatch(usize),
    Fill,
    /// A statement query; its query string is made when it runs (the
    /// since/until window is known after the fill).
    Get(fn(&Lrs) -> String),
    /// Page 1 of all statements, or the page `depth` reached through `more`.
    Page {
        deep: bool,
    },
    StatePut,
    StateGet,
    /// A progress query (`/extensions/progress`), counting its rows.
    Progress(fn() -> String),
    /// One export of the whole store as NDJSON, read as it arrives.
    Export,
}

pub fn all(a: &Args) -> Vec<Scenario> {
    let s = |name: &str, concurrency, kind| Scenario { name: name.to_owned(), concurrency, kind };
    vec![
        s("POST single", 1, Kind::PostSingle),
        s("POST single", 8, Kind::PostSingle),
        s("POST single", 32, Kind::PostSingle),
        s("POST batch of 100", 4, Kind::PostBatch(100)),
        s("fill, batches of 500", 4, Kind::Fill),
        s("GET agent", 8, Kind::Get(|_| format!("agent={}", q(&generator::actor(0))))),
        s("GET verb", 8, Kind::Get(|_| format!("verb={}", q(&generator::verb_iri("completed"))))),
        s("GET activity", 8, Kind::Get(|_| format!("activity={}", q(&generator::object_activity_iri(0, 0))))),
        s(
            "GET registration",
            8,
            Kind::Get(|_| format!("registration={}", q(&stored_sample()["context"]["registration"]))),
        ),
        s(
            "GET agent+verb+activity",
            8,
            Kind::Get(|_| {
                let s = stored_sample();
                format!("agent={}&verb={}&activity={}", q(&s["actor"]), q(&s["verb"]["id"]), q(&s["object"]["id"]))
            }),
        ),
        s(
            "GET related_activities",
            8,
            Kind::Get(|_| format!("activity={}&related_activities=true", q(&generator::course_iri(0)))),
        ),
        s("GET related_agents", 8, Kind::Get(|_| format!("agent={}&related_agents=true", q(&generator::actor(1))))),
        s(
            "GET since/until",
            8,
            Kind::Get(|lrs| {
                let window = lrs.window.lock().unwrap().clone().unwrap_or_default();
                format!("since={}&until={}", q(&window.0), q(&window.1))
            }),
        ),
        s("GET page 1", 8, Kind::Page { deep: false }),
        s(&format!("GET page {} via more", a.depth), 8, Kind::Page { deep: true }),
        s("GET progress of a learner", 1, Kind::Progress(|| format!("learner={}", q(&stored_sample()["actor"])))),
        s("GET progress of a learner", 8, Kind::Progress(|| format!("learner={}", q(&stored_sample()["actor"])))),
        s(
            "GET progress of a course (first 100 learners)",
            1,
            Kind::Progress(|| format!("activity={}", q(&generator::course_iri(0)))),
        ),
        s(
            "GET progress of a course (first 100 learners)",
            8,
            Kind::Progress(|| format!("activity={}", q(&generator::course_iri(0)))),
        ),
        s(
            "GET progress of a learner on a course",
            8,
            Kind::Progress(|| {
                let s = stored_sample();
                // The course: the last parent (a module comes before it).
                let parents = s["context"]["contextActivities"]["parent"].as_array().cloned().unwrap_or_default();
                let course = parents.last().map(|p| p["id"].clone()).unwrap_or_default();
                format!("learner={}&activity={}", q(&s["actor"]), q(&course))
            }),
        ),
        s("export all, NDJSON", 1, Kind::Export),
        s("PUT state", 8, Kind::StatePut),
        s("GET state", 8, Kind::StateGet),
    ]
}

fn q(v: &impl serde::Serialize) -> String {
    let text = match serde_json::to_value(v).unwrap() {
        Value::String(s) => s,
        other => other.to_string(),
    };
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A statement of the fill's first batch (made from the seed that batch is
/// made from) with a registration and an activity: queries for its values
/// find at least it.
fn stored_sample() -> Value {
    let mut g = Generator::new(FILL_SEED << 32);
    (0..FILL_BATCH)
        .map(|_| g.statement())
        .find(|s| s["context"]["registration"].is_string() && s["object"]["objectType"] == "Activity")
        .expect("the generator makes statements with registrations")
}

const FILL_SEED: u64 = 3000;
const FILL_BATCH: usize = 500;

fn module(course: u64, module: u64) -> String {
    format!("{}/modules/{module}", generator::course_iri(course))
}

impl Scenario {
    /// Whether the scenario stores statements (and so has a cost per statement).
    pub fn writes(&self) -> bool {
        matches!(self.kind, Kind::PostSingle | Kind::PostBatch(_) | Kind::Fill)
    }

    pub async fn run(&self, lrs: &Lrs, a: &Args) -> Stats {
        let (c, secs) = (self.concurrency, a.seconds);
        match &self.kind {
            Kind::PostSingle => {
                let bodies = Bodies::make(secs, SINGLE_RATE, 1, 1000 + c as u64);
                let lrs = lrs.clone();
                drive(c, secs, move |w, n| {
                    let (lrs, body) = (lrs.clone(), bodies.pick(c, w, n));
                    async move { lrs.post_made(body, 1).await }
                })
                .await
            }
            Kind::PostBatch(size) => {
                let (size, bodies) = (*size, Bodies::make(secs, BATCH_RATE, *size, 2000));
                let lrs = lrs.clone();
                drive(c, secs, move |w, n| {
                    let (lrs, body) = (lrs.clone(), bodies.pick(c, w, n));
                    async move { lrs.post_made(body, size as u64).await }
                })
                .await
            }
            Kind::Fill => fill(lrs, a).await,
            Kind::Get(query) => {
                let path = format!("/statements?limit=50&{}", query(lrs));
                let lrs = lrs.clone();
                drive(c, secs, move |_, _| {
                    let (lrs, path) = (lrs.clone(), path.clone());
                    async move { lrs.get(&path).await.0 }
                })
                .await
            }
            Kind::Page { deep } => {
                let mut path = "/statements?limit=50".to_owned();
                if *deep {
                    for _ in 1..a.depth {
                        match lrs.get(&path).await.1 {
                            // `more` is a path from the server's root.
                            Some(more) => path = more.trim_start_matches("/xapi").to_owned(),
                            None => break,
                        }
                    }
                }
                let lrs = lrs.clone();
                drive(c, secs, move |_, _| {
                    let (lrs, path) = (lrs.clone(), path.clone());
                    async move { lrs.get(&path).await.0 }
                })
                .await
            }
            Kind::Progress(query) => {
                let path = format!("/extensions/progress?{}", query());
                let lrs = lrs.clone();
                drive(c, secs, move |_, _| {
                    let (lrs, path) = (lrs.clone(), path.clone());
                    async move { lrs.progress(&path).await }
                })
                .await
            }
            Kind::Export => export_all(lrs).await,
            Kind::StatePut | Kind::StateGet => {
                let (lrs, put) = (lrs.clone(), matches!(self.kind, Kind::StatePut));
                drive(c, secs, move |w, n| {
                    let lrs = lrs.clone();
                    async move { state(&lrs, put, w as u64 * 1000 + n % 1000).await }
                })
                .await
            }
        }
    }
}

/// Statements a second the request bodies of a write scenario are made for
/// (the targets of issue 18, with room): a faster run posts them again.
const BATCH_RATE: f64 = 40_000.0;
const SINGLE_RATE: f64 = 12_000.0;

/// A write scenario's request bodies, made (on every core) and serialised
/// before it begins: making them while it runs took the harness about
/// 36 µs of CPU a statement, on the cores the server is measured on.
/// Worker `w`'s `n`th request posts body `n * c + w`, so the workers go
/// through the bodies in order; statements carry no id, so a body posted
/// again is stored again (as new statements by the same learners).
#[derive(Clone)]
struct Bodies(Arc<Vec<bytes::Bytes>>);

impl Bodies {
    fn make(secs: f64, rate: f64, size: usize, seed: u64) -> Bodies {
        let count = ((secs * rate) as usize).div_ceil(size).max(1);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each thread makes a run of consecutive bodies: joined in order,
        // body i is the one made from seed i.
        let share = count.div_ceil(threads);
        let bodies: Vec<bytes::Bytes> = std::thread::scope(|scope| {
            let parts: Vec<_> = (0..count)
                .step_by(share)
                .map(|first| {
                    scope.spawn(move || {
                        (first..count.min(first + share))
                            .map(|i| {
                                let mut g = Generator::new(seed << 32 | i as u64);
                                let body = if size == 1 {
                                    g.statement()
                                } else {
                                    Value::Array((0..size).map(|_| g.statement()).collect())
                                };
                                bytes::Bytes::from(serde_json::to_vec(&body).expect("JSON"))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts.into_iter().flat_map(|p| p.join().expect("maker")).collect()
        });
        Bodies(Arc::new(bodies))
    }

    fn pick(&self, c: usize, w: usize, n: u64) -> bytes::Bytes {
        self.0[(n as usize * c + w) % self.0.len()].clone()
    }
}

/// Batches of `size` from `c` workers for `secs`, or until `until` statements
/// are stored (the fill: made as it goes, a million would not fit).
async fn post_batches(lrs: &Lrs, c: usize, secs: f64, size: usize, seed: u64, until: Option<u64>) -> Stats {
    let lrs = lrs.clone();
    drive(c, secs, move |w, n| {
        let lrs = lrs.clone();
        async move {
            if let Some(u) = until
                && lrs.count().await >= u
            {
                return Done::stop();
            }
            let mut g = Generator::new(seed << 32 | (w as u64) << 24 | n);
            let batch: Vec<Value> = (0..size).map(|_| g.statement()).collect();
            lrs.post(&json!(batch), size as u64).await
        }
    })
    .await
}

/// Longer than any fill takes: the fill's workers stop when it is done.
const FOREVER: f64 = 1e6;

/// Stores statements until the store holds `a.fill`; notes the since/until
/// window around the middle.
async fn fill(lrs: &Lrs, a: &Args) -> Stats {
    let target = a.fill;
    let started = Instant::now();
    let half = target / 2;
    let first = post_batches(lrs, 4, FOREVER, FILL_BATCH, FILL_SEED, Some(half)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = post_batches(lrs, 4, FOREVER, FILL_BATCH, FILL_SEED + 1000, Some(target)).await;
    let until = since + chrono::Duration::seconds(2);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    *lrs.window.lock().unwrap() = Some((fmt(since), fmt(until)));
    let mut stats = first;
    stats.requests += second.requests;
    stats.errors += second.errors;
    stats.statements += second.statements;
    stats.latencies.extend(second.latencies);
    stats.latencies.sort_unstable();
    stats.first_error = stats.first_error.or(second.first_error);
    stats.secs = started.elapsed().as_secs_f64();
    stats
}

/// Exports every statement once, counting lines as they arrive, while a
/// task samples the server's RSS for its peak.
async fn export_all(lrs: &Lrs) -> Stats {
    let pid = lrs.pid;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0.0_f64;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(crate::server::rss_mib(pid));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let mut stats = Stats { requests: 1, ..Stats::default() };
    match lrs.client.get(format!("{}/extensions/export", lrs.base)).basic_auth(KEY, Some(SECRET)).send().await {
        Ok(mut r) if r.status().is_success() => loop {
            match r.chunk().await {
                Ok(Some(chunk)) => stats.statements += memchr::memchr_iter(b'\n', &chunk).count() as u64,
                Ok(None) => break,
                Err(e) => {
                    (stats.errors, stats.first_error) = (1, Some(e.to_string()));
                    break;
                }
            }
        },
        other => (stats.errors, stats.first_error) = (1, answered(other, 0).await.error),
    }
    stats.secs = started.elapsed().as_secs_f64();
    stats.latencies.push(started.elapsed().as_micros() as u64);
    sampling.store(false, Ordering::Relaxed);
    stats.peak_rss_mib = sampler.await.ok();
    stats
}

/// PUT or GET the state document `n` of a learner on an activity.
async fn state(lrs: &Lrs, put: bool, n: u64) -> Done {
    let learner = n % generator::learners();
    let path = format!(
        "/activities/state?activityId={}&agent={}&stateId=bookmark-{}",
        q(&module(n % generator::courses(), 0)),
        q(&generator::actor(learner)),
        n % 7
    );
    let request = if put {
        lrs.request(Method::PUT, &path).json(&json!({"location": n, "suspend_data": "x".repeat(200)}))
    } else {
        lrs.request(Method::GET, &path)
    };
    let done = answered(request.send().await, 0).await;
    // A GET of a document not PUT yet is a 404: the store answered.
    if !put && done.error.as_deref().is_some_and(|e| e.starts_with("404")) {
        return Done::ok(0);
    }
    done
}
