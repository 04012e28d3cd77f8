//! The Agents resource (Communication 2.4): a Person object for an agent,
//! with every name statements have given it.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::activities::DEFINITION_READERS;
use super::params::{Params, agent_param};
use crate::auth::Authenticated;
use crate::error::{LrsError, LrsResult};
use crate::startup::AppState;
use crate::store::agent_names;
use crate::xapi::agent::ifi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/agents")
            .route(web::get().to(get_person))
            .route(web::head().to(get_person))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn get_person(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> LrsResult<HttpResponse> {
    auth.require_any(DEFINITION_READERS)?;
    let params = Params::parse(req.query_string(), &["agent"])?;
    let text = params
        .get("agent")
        .ok_or_else(|| LrsError::invalid("agent", "query:required", "the agent parameter is required"))?;
    agent_param("agent", text)?;
    let agent: Value = serde_json::from_str(text).map_err(LrsError::internal)?;
    let known = match ifi(&agent) {
        Some(ifi) => agent_names::names(&state.db, &ifi).await?,
        None => Vec::new(),
    };
    Ok(HttpResponse::Ok().json(person(&agent, known)))
}

/// The Person for an Agent: every property an array (the spec's form for
/// merging several identities of one person). Its names are those the
/// statements gave it, then the query's own; its identifier is the query's
/// (identities are not linked to one another).
fn person(agent: &Value, mut names: Vec<String>) -> Value {
    if let Some(name) = agent.get("name").and_then(Value::as_str)
        && !names.iter().any(|n| n == name)
    {
        names.push(name.to_owned());
    }
    let mut person = Map::from_iter([("objectType".to_owned(), json!("Person"))]);
    if !names.is_empty() {
        person.insert("name".to_owned(), json!(names));
    }
    for key in ["mbox", "mbox_sha1sum", "openid", "account"] {
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
            person(&agent, vec!["Ann B.".into()]),
            json!({"objectType": "Person", "name": ["Ann B.", "Ann"], "mbox": ["mailto:ann@example.com"]})
        );
    }
}
