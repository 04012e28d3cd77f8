//! `GET /metrics` (Prometheus text exposition, unauthenticated: it holds
//! counts, target names and route patterns, nothing secret) and the
//! middleware counting and timing requests by route pattern.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

use crate::error::LrsError;
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, LrsError> {
    let targets: Vec<&str> = state.forwarding.targets.iter().map(|t| t.name.as_str()).collect();
    let text = state.metrics.render(&state.db, &targets).await.map_err(LrsError::Internal)?;
    Ok(HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(text))
}

/// Counts and times each request under its route's pattern
/// (`/xapi/statements`, `/admin/forwarders/{target}/outbox`), never its raw
/// path, so the label set stays as small as the route table. The time ends
/// with the response head: a streamed body goes out after it.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let began = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    if let Some(state) = state {
        state.metrics.http_requests.with_label_values(&[route.as_str(), status.as_str()]).inc();
        let duration = state.metrics.http_duration.with_label_values(&[route.as_str(), method]);
        duration.observe(began.elapsed().as_secs_f64());
    }
    result
}

/// The standard methods by name; any other a client makes up is `other`, so
/// it cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
    KNOWN.into_iter().find(|m| *m == method.as_str()).unwrap_or("other")
}
