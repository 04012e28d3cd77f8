//! `GET /xapi/extensions/stream`: the live stream of stored statements as
//! Server-Sent Events (docs/stream.md); `live_stream.rs` runs it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::params::Params;
use super::statement_query::{FILTER_PARAMS, reader_keys};
use crate::auth::Authenticated;
use crate::error::{LrsError, LrsResult};
use crate::live_stream::Start;
use crate::startup::AppState;

/// The query parameter for clients that cannot set `Last-Event-ID`.
const LAST_EVENT_ID_PARAM: &str = "lastEventId";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/stream").route(web::get().to(stream)).default_service(web::to(super::method_not_allowed)),
    );
}

async fn stream(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> LrsResult<HttpResponse> {
    let access = auth.statement_read()?;
    let allowed: Vec<&str> = FILTER_PARAMS.iter().copied().chain([LAST_EVENT_ID_PARAM]).collect();
    let params = Params::parse(req.query_string(), &allowed)?;
    let keys = reader_keys(&params, access, &auth.key)?;
    let events = state.streams.open(keys, start(&req, &params)?).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx would otherwise hold events back to fill its buffers.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

/// The header wins over the parameter: a reconnecting EventSource sends the
/// header with the URL it first used, parameter and all.
fn start(req: &HttpRequest, params: &Params) -> Result<Start, LrsError> {
    const HEADER: &str = "Last-Event-ID";
    let mut given = req.headers().get_all(HEADER);
    if let Some(value) = given.next() {
        if given.next().is_some() {
            return Err(LrsError::invalid(HEADER, "stream:last-event-id", "Last-Event-ID is given more than once"));
        }
        return Start::after_event(HEADER, value.to_str().unwrap_or(""));
    }
    match params.get(LAST_EVENT_ID_PARAM) {
        Some(text) => Start::after_event(LAST_EVENT_ID_PARAM, text),
        None => Ok(Start::Now),
    }
}
