//! `GET /metrics` (Prometheus text exposition, unauthenticated: it holds
//! counts, target names and route patterns, nothing secret) and the
//! middleware counting requests by route pattern and status.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
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

/// Counts each request under its route's pattern (`/xapi/statements`,
/// `/admin/forwarders/{target}/outbox`), never its raw path, so the label
/// set stays as small as the route table.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    if let Some(state) = state {
        state.metrics.http_requests.with_label_values(&[route.as_str(), status.as_str()]).inc();
    }
    result
}
