//! The Agents resource (Communication 2.4): a Person object for an agent.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::activities::DEFINITION_READERS;
use super::params::{Params, agent_param};
use crate::auth::Authenticated;
use crate::error::{LrsError, LrsResult};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/agents")
            .route(web::get().to(get_person))
            .route(web::head().to(get_person))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn get_person(req: HttpRequest, auth: Authenticated) -> LrsResult<HttpResponse> {
    auth.require_any(DEFINITION_READERS)?;
    let params = Params::parse(req.query_string(), &["agent"])?;
    let text = params
        .get("agent")
        .ok_or_else(|| LrsError::invalid("agent", "query:required", "the agent parameter is required"))?;
    agent_param("agent", text)?;
    let agent: Value = serde_json::from_str(text).map_err(LrsError::internal)?;
    Ok(HttpResponse::Ok().json(person(&agent)))
}

/// The Person for an Agent: every property an array (the spec's form for
/// merging several identities of one person); what this agent says of itself.
fn person(agent: &Value) -> Value {
    let mut person = Map::from_iter([("objectType".to_owned(), json!("Person"))]);
    for key in ["name", "mbox", "mbox_sha1sum", "openid", "account"] {
        if let Some(v) = agent.get(key) {
            person.insert(key.to_owned(), json!([v]));
        }
    }
    Value::Object(person)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_has_array_properties() {
        let agent = json!({"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.com"});
        assert_eq!(
            person(&agent),
            json!({"objectType": "Person", "name": ["Ann"], "mbox": ["mailto:ann@example.com"]})
        );
    }
}
