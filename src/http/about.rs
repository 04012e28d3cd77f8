//! The About resource: versions served; no authentication, no version header.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::xapi::version::SUPPORTED;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/about")
            .route(web::get().to(about))
            .route(web::head().to(about))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn about() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": SUPPORTED, "extensions": {}}))
}
