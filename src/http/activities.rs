//! The Activities resource (Communication 2.5): an activity's canonical
//! definition, merged from every statement that described it.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::params::Params;
use crate::auth::Authenticated;
use crate::error::{LrsError, LrsResult};
use crate::startup::AppState;
use crate::store::activities;
use crate::xapi::formats::is_iri;

/// Scopes that may read activity and agent definitions.
pub const DEFINITION_READERS: &[&str] = &["all/read", "statements/read", "define"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/activities")
            .route(web::get().to(get_activity))
            .route(web::head().to(get_activity))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn get_activity(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> LrsResult<HttpResponse> {
    auth.require_any(DEFINITION_READERS)?;
    let params = Params::parse(req.query_string(), &["activityId"])?;
    let iri = params
        .get("activityId")
        .ok_or_else(|| LrsError::invalid("activityId", "query:required", "the activityId parameter is required"))?;
    if !is_iri(iri) {
        return Err(LrsError::invalid("activityId", "query:iri", "activityId must be an IRI"));
    }
    // An activity no statement described is still an activity.
    let mut activity = Map::from_iter([("objectType".to_owned(), json!("Activity")), ("id".to_owned(), json!(iri))]);
    if let Some(definition) = activities::definition(&state.db, iri).await? {
        activity.insert("definition".into(), Value::Object(definition));
    }
    Ok(HttpResponse::Ok().json(Value::Object(activity)))
}
