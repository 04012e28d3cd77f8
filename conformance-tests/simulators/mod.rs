//! In-process simulators of the systems forwarders call: each records every
//! request it gets and answers as the real system documents, and can be told
//! to fail for a while (a status, with or without `Retry-After`).

pub mod bob;
pub mod docebo;
pub mod learning360;
pub mod learnworlds;
pub mod lrs;
pub mod mobieus;
pub mod webhook;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status the simulator answered.
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// Answers every request with `status` (and `Retry-After`) until `until`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub retry_after_secs: Option<u64>,
    pub until: Instant,
}

/// What a simulated system does with a request that no fault intercepted.
pub trait Behaviour: Send + Sync + 'static {
    fn answer(&self, request: &Recorded) -> HttpResponse;
}

pub struct Simulator<B: Behaviour> {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub behaviour: Arc<B>,
    log: Arc<Mutex<Vec<Recorded>>>,
    fault: Arc<Mutex<Option<Fault>>>,
    delay: Arc<Mutex<Duration>>,
    server: actix_web::dev::ServerHandle,
}

impl<B: Behaviour> Simulator<B> {
    pub fn start(behaviour: B) -> Simulator<B> {
        let behaviour = Arc::new(behaviour);
        let log = Arc::new(Mutex::new(Vec::new()));
        let fault: Arc<Mutex<Option<Fault>>> = Arc::new(Mutex::new(None));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind simulator");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (b, l, f, d) = (behaviour.clone(), log.clone(), fault.clone(), delay.clone());
        let server = HttpServer::new(move || {
            let (b, l, f, d) = (b.clone(), l.clone(), f.clone(), d.clone());
            App::new().app_data(web::PayloadConfig::new(64 * 1024 * 1024)).default_service(web::to(
                move |req: HttpRequest, body: web::Bytes| {
                    let (b, l, f, d) = (b.clone(), l.clone(), f.clone(), d.clone());
                    async move {
                        let delay = *d.lock().unwrap();
                        tokio::time::sleep(delay).await;
                        handle(&*b, &l, &f, req, body)
                    }
                },
            ))
        })
        .workers(2)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Simulator { url, behaviour, log, fault, delay, server: handle }
    }

    /// Answers every request only after `delay` (a slow target).
    pub fn slow(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Fails every request with `status` for `for_how_long`.
    pub fn fail(&self, status: u16, retry_after_secs: Option<u64>, for_how_long: Duration) {
        *self.fault.lock().unwrap() = Some(Fault { status, retry_after_secs, until: Instant::now() + for_how_long });
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to `timeout`) until `done` holds for the behaviour.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&B) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.behaviour) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done(&self.behaviour)
    }
}

impl<B: Behaviour> Drop for Simulator<B> {
    fn drop(&mut self) {
        let server = self.server.clone();
        tokio::spawn(async move { server.stop(false).await });
    }
}

fn handle(
    behaviour: &dyn Behaviour,
    log: &Mutex<Vec<Recorded>>,
    fault: &Mutex<Option<Fault>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let mut recorded = Recorded {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
        status: 0,
    };
    let active = fault.lock().unwrap().clone().filter(|f| Instant::now() < f.until);
    let response = match active {
        Some(f) => {
            let mut r = HttpResponse::build(actix_web::http::StatusCode::from_u16(f.status).unwrap());
            if let Some(secs) = f.retry_after_secs {
                r.insert_header(("Retry-After", secs.to_string()));
            }
            r.json(serde_json::json!({"error": "simulated failure"}))
        }
        None => behaviour.answer(&recorded),
    };
    recorded.status = response.status().as_u16();
    log.lock().unwrap().push(recorded);
    response
}

/// `Basic <base64(user:password)>`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}
