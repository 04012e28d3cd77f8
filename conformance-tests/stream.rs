//! The live stream (`GET /xapi/extensions/stream`, docs/stream.md): stored
//! statements as Server-Sent Events, filtered like GET /statements, resumed
//! with Last-Event-ID; a consumer that stops reading is dropped while ingest
//! goes on.

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::auth::credential;
use crate::cli::{serve_with_env, sigterm};
use crate::helpers::*;
use crate::metrics::{scrape, value};
use crate::on_both_backends;
use crate::voiding::voiding;

/// How long a test waits for something that should happen soon.
pub const WAIT: Duration = Duration::from_secs(20);

/// One `statement` event.
#[derive(Debug)]
pub struct Event {
    pub id: i64,
    pub statement: Value,
}

/// The events of a stream response, parsed as they arrive.
pub struct Events {
    response: Response,
    buffer: Vec<u8>,
}

impl Events {
    /// The next event; `None` once the response ended cleanly. Comments
    /// (keep-alives) are skipped; a stream that sends nothing for `WAIT`
    /// fails the test.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(std::str::from_utf8(&block).expect("UTF-8 events")) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk()).await.expect("an event within the wait");
            match chunk.expect("the stream ends cleanly") {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => {
                    assert!(self.buffer.is_empty(), "the stream ended inside an event: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            events.push(self.next().await.expect("the stream goes on"));
        }
        events
    }
}

/// An event block's fields; `None` for a comment-only block.
fn parse_event(block: &str) -> Option<Event> {
    let (mut id, mut kind, mut data) = (None, None, Vec::new());
    for line in block.lines().filter(|l| !l.is_empty() && !l.starts_with(':')) {
        let (field, value) = line.split_once(": ").unwrap_or_else(|| panic!("a field line: {line:?}"));
        match field {
            "id" => id = Some(value.parse::<i64>().expect("a numeric id")),
            "event" => kind = Some(value.to_owned()),
            "data" => data.push(value),
            other => panic!("unexpected field {other}"),
        }
    }
    let id = id?;
    assert_eq!(kind.as_deref(), Some("statement"), "event type");
    assert_eq!(data.len(), 1, "a statement is one data line");
    Some(Event { id, statement: serde_json::from_str(data[0]).expect("data is a statement") })
}

/// `GET /xapi/extensions/stream?<query>` with the admin credential and no
/// version header (the extensions need none).
pub fn stream_request(app: &TestApp, query: &str) -> RequestBuilder {
    app.client.get(format!("{}/extensions/stream?{query}", app.endpoint)).basic_auth(ADMIN_KEY, Some(ADMIN_SECRET))
}

/// Opens a stream (expects 200) once its start is fixed: what is stored
/// after this returns is streamed.
pub async fn open(request: RequestBuilder) -> Events {
    let response = request.send().await.expect("stream request");
    let status = response.status();
    assert_eq!(status, StatusCode::OK, "{:?}", response.text().await);
    Events { response, buffer: Vec::new() }
}

fn ids_of_events(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.statement["id"].as_str().expect("an id").to_owned()).collect()
}

fn with_verb(verb: &str) -> Value {
    let mut s = statement();
    s["verb"]["id"] = json!(verb);
    s
}

on_both_backends!(a_consumer_receives_what_is_stored_after_it_connected);
async fn a_consumer_receives_what_is_stored_after_it_connected(app: TestApp) {
    let before = app.store(&statement()).await;
    let response = stream_request(&app, "").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    let mut events = Events { response, buffer: Vec::new() };

    let mut stored = app.store(&json!([statement(), statement()])).await;
    stored.extend(app.store(&statement()).await);
    let received = events.take(3).await;
    assert_eq!(ids_of_events(&received), stored, "only what was stored after connecting, in order");
    assert!(!ids_of_events(&received).contains(&before[0]));
    assert!(received.windows(2).all(|w| w[0].id < w[1].id), "ids increase: {received:?}");
    for event in &received {
        let id = event.statement["id"].as_str().unwrap();
        assert_eq!(event.statement, app.statement(id).await, "the stored statement, as GET serves it");
    }
}

on_both_backends!(filters_and_read_mine_select_what_is_streamed);
async fn filters_and_read_mine_select_what_is_streamed(app: TestApp) {
    let verb = format!("http://example.com/verbs/{}", uuid());
    let mut by_verb = open(stream_request(&app, &format!("verb={}", enc(&verb)))).await;
    let learner = agent(&uuid());
    let mut by_agent = open(stream_request(&app, &agent_q(&learner))).await;
    let (key, secret) = credential(&app, "statements/write,statements/read/mine").await;
    let mine_request = |query: &str| {
        app.client.get(format!("{}/extensions/stream?{query}", app.endpoint)).basic_auth(&key, Some(&secret))
    };
    let mut mine = open(mine_request("")).await;

    let matching = app.store(&json!([statement(), with_verb(&verb), statement(), with_verb(&verb)])).await;
    let mut by_learner = statement();
    by_learner["actor"] = learner.clone();
    let learners = app.store(&by_learner).await;
    let own = statement();
    let res = app
        .client
        .post(format!("{}/statements", app.endpoint))
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(&key, Some(&secret))
        .json(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let own_id: Vec<String> = res.json().await.unwrap();
    // A last one for every stream, so that each shows it skipped the others.
    let mut last = with_verb(&verb);
    last["actor"] = learner.clone();
    let last_id = app.store(&last).await;

    assert_eq!(
        ids_of_events(&by_verb.take(3).await),
        vec![matching[1].clone(), matching[3].clone(), last_id[0].clone()]
    );
    assert_eq!(ids_of_events(&by_agent.take(2).await), vec![learners[0].clone(), last_id[0].clone()]);
    assert_eq!(ids_of_events(&mine.take(1).await), own_id, "read/mine streams only the credential's own");
    // The restriction holds whatever the filters ask.
    let mut mine_by_verb = open(mine_request(&format!("verb={}&lastEventId=0", enc(&verb)))).await;
    let mut own_with_verb = with_verb(&verb);
    own_with_verb["id"] = json!(uuid());
    let put = app
        .client
        .put(format!("{}/statements?statementId={}", app.endpoint, own_with_verb["id"].as_str().unwrap()))
        .header("X-Experience-API-Version", VERSION)
        .basic_auth(&key, Some(&secret))
        .json(&own_with_verb)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let first = mine_by_verb.next().await.unwrap();
    assert_eq!(first.statement["id"], own_with_verb["id"], "not the admin's statements with that verb");
}

on_both_backends!(last_event_id_resumes_exactly_after_the_given_event);
async fn last_event_id_resumes_exactly_after_the_given_event(app: TestApp) {
    let mut events = open(stream_request(&app, "")).await;
    let first = app.store(&json!([statement(), statement(), statement()])).await;
    let received = events.take(3).await;
    assert_eq!(ids_of_events(&received), first);
    drop(events);
    let while_away = app.store(&json!([statement(), statement()])).await;

    let mut resumed = open(stream_request(&app, "").header("Last-Event-ID", received[1].id.to_string())).await;
    let again = resumed.take(3).await;
    assert_eq!(ids_of_events(&again), vec![first[2].clone(), while_away[0].clone(), while_away[1].clone()]);
    assert_eq!(again[0].id, received[2].id, "the same event id for the same statement");
    let live = app.store(&statement()).await;
    assert_eq!(ids_of_events(&resumed.take(1).await), live, "then live");

    // For clients that cannot set headers; a header sent on reconnect wins.
    let query = format!("lastEventId={}", received[2].id);
    let mut by_param = open(stream_request(&app, &query)).await;
    assert_eq!(ids_of_events(&by_param.take(1).await), vec![while_away[0].clone()]);
    let both = stream_request(&app, &query).header("Last-Event-ID", again[1].id.to_string());
    assert_eq!(ids_of_events(&open(both).await.take(1).await), vec![while_away[1].clone()]);
}

on_both_backends!(the_stream_includes_voided_statements_and_their_voiding);
async fn the_stream_includes_voided_statements_and_their_voiding(app: TestApp) {
    let verb = format!("http://example.com/verbs/{}", uuid());
    let mut events = open(stream_request(&app, "")).await;
    let target = app.store(&with_verb(&verb)).await.remove(0);
    let start = events.take(1).await.remove(0).id - 1;
    let voider = app.store(&voiding(&target)).await.remove(0);
    assert_eq!(ids_of_events(&events.take(1).await), vec![voider.clone()]);
    // Resumed from before it, the voided statement is still in the log,
    // and the verb filter finds the voiding statement by its target's verb.
    let resumed = stream_request(&app, &format!("verb={}", enc(&verb))).header("Last-Event-ID", start.to_string());
    assert_eq!(ids_of_events(&open(resumed).await.take(2).await), vec![target, voider]);
}

on_both_backends!(bad_requests_get_json_errors);
async fn bad_requests_get_json_errors(app: TestApp) {
    let url = format!("{}/extensions/stream", app.endpoint);
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (key, secret) = credential(&app, "statements/write").await;
    let res = app.client.get(&url).basic_auth(&key, Some(&secret)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "writing is not reading");
    let bad = [
        ("since=2020-01-01T00:00:00Z", None, "since"),
        ("Verb=http://example.com/v", None, "Verb"),
        ("verb=http://example.com/a&verb=http://example.com/b", None, "verb"),
        ("verb=not%20an%20iri", None, "verb"),
        ("agent=%7B%7D", None, "agent"),
        ("registration=nope", None, "registration"),
        ("related_agents=yes", None, "related_agents"),
        ("lastEventId=abc", None, "lastEventId"),
        ("", Some("-3"), "Last-Event-ID"),
        ("lastEventId=5", Some("five"), "Last-Event-ID"),
    ];
    for (query, header, property) in bad {
        let mut request = stream_request(&app, query);
        if let Some(h) = header {
            request = request.header("Last-Event-ID", h);
        }
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query} {header:?}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: Value = res.json().await.unwrap();
        let named = body["property"].as_str().unwrap_or_default();
        assert!(named.starts_with(property), "{query} {header:?}: {body}");
    }
    let res = app.client.post(&url).basic_auth(ADMIN_KEY, Some(ADMIN_SECRET)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

forwarding_test!(consumers_beyond_the_cap_get_503);
async fn consumers_beyond_the_cap_get_503(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |a| a.max_stream_consumers = 1).await else { return };
    let first = open(stream_request(&app, "")).await;
    let res = stream_request(&app, "").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("consumers"), "{body}");
    drop(first);
    // The gone client is noticed when an event to it fails to go out.
    let deadline = Instant::now() + WAIT;
    loop {
        app.store(&statement()).await;
        let res = stream_request(&app, "").send().await.unwrap();
        if res.status() == StatusCode::OK {
            break;
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A statement of about 16 KB, so that a few hundred fill the sockets'
/// buffers of a consumer that stopped reading.
fn large_statement() -> Value {
    let mut s = statement();
    s["result"] = json!({"response": "x".repeat(16 * 1024)});
    s
}

forwarding_test!(a_consumer_that_stops_reading_is_dropped_while_ingest_goes_on);
async fn a_consumer_that_stops_reading_is_dropped_while_ingest_goes_on(backend: Backend) {
    const STALL_SECS: u64 = 5;
    let Some(app) = spawn_app_with(backend, |a| a.stream_stall_secs = STALL_SECS).await else { return };
    let mut stalled = open(stream_request(&app, "")).await;
    let dropped = |m: &[crate::metrics::Sample]| value(m, "xlrs_stream_dropped_total", &[]).unwrap_or(0.0);
    let mut stored: Vec<String> = Vec::new();
    let mut slowest = Duration::ZERO;
    let began = Instant::now();
    loop {
        let batch: Vec<Value> = (0..40).map(|_| large_statement()).collect();
        let posted = Instant::now();
        stored.extend(app.store(&json!(batch)).await);
        slowest = slowest.max(posted.elapsed());
        let (_, m) = scrape(&app).await;
        if dropped(&m) == 1.0 {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(120), "never dropped; {} stored", stored.len());
    }
    // Were the writer to wait for the consumer, a POST would have waited
    // for the stall limit.
    assert!(slowest < Duration::from_secs(STALL_SECS), "ingest was held back: a POST took {slowest:?}");
    let (text, m) = scrape(&app).await;
    assert_eq!(value(&m, "xlrs_stream_consumers", &[]), Some(0.0), "{text}");

    // What was queued still arrives, in whole events, then the end.
    let mut received = Vec::new();
    while let Some(event) = stalled.next().await {
        received.push(event);
    }
    assert!(!received.is_empty() && received.len() < stored.len(), "{} of {}", received.len(), stored.len());
    let last = received.last().unwrap().id;
    let resumed = stream_request(&app, "").header("Last-Event-ID", last.to_string());
    let rest = open(resumed).await.take(stored.len() - received.len()).await;
    let mut all = ids_of_events(&received);
    all.extend(ids_of_events(&rest));
    assert_eq!(all, stored, "resumed exactly where the dropped stream ended");
}

/// Open streams would hold actix's graceful shutdown for its whole timeout
/// (30 s): SIGTERM ends them, so the server stops as soon as the rest is done.
#[test]
fn sigterm_ends_open_streams_so_the_server_stops_promptly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stream.db").display());
    let mut served = serve_with_env(&url, Some((ADMIN_KEY, ADMIN_SECRET)), &[]);
    let client = reqwest::blocking::Client::new();
    let stream_url = format!("http://127.0.0.1:{}/xapi/extensions/stream", served.port);
    let mut stream = client.get(stream_url).basic_auth(ADMIN_KEY, Some(ADMIN_SECRET)).send().unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let began = Instant::now();
    sigterm(&served.child);
    let mut rest = String::new();
    stream.read_to_string(&mut rest).expect("the stream ends cleanly");
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > Duration::from_secs(10) {
            let _ = served.child.kill();
            panic!("xlrs still ran 10 s after SIGTERM with a stream open");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
