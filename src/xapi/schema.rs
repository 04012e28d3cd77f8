//! The statement JSON Schema (`schema/statement-1.0.3.schema.json`), compiled
//! once, with xAPI's value formats registered as custom formats.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::formats;

use super::XapiVersion;

const STATEMENT_1_0_3: &str = include_str!("../../schema/statement-1.0.3.schema.json");
const STATEMENT_2_0_0: &str = include_str!("../../schema/statement-2.0.0.schema.json");

static STATEMENT_1_0: LazyLock<Validator> = LazyLock::new(|| compile(STATEMENT_1_0_3));
static STATEMENT_2_0: LazyLock<Validator> = LazyLock::new(|| compile(STATEMENT_2_0_0));

fn compile(text: &str) -> Validator {
    let schema: Value = serde_json::from_str(text).expect("bundled schema is valid JSON");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format("xapi-iri", formats::is_iri)
        .with_format("xapi-timestamp", formats::is_timestamp)
        .with_format("xapi-duration", formats::is_duration)
        .with_format("language-tag", formats::is_language_tag)
        .with_format("mailto", formats::is_mailto)
        .with_format("sha1", formats::is_sha1)
        .with_format("sha2", formats::is_sha2)
        .build(&schema)
        .expect("bundled schema compiles")
}

/// Compiles the schema now rather than on the first request.
pub fn warm_up() {
    LazyLock::force(&STATEMENT_1_0);
    LazyLock::force(&STATEMENT_2_0);
}

/// Where a statement breaks the schema, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaViolation {
    /// Dotted path, e.g. `actor.mbox` or `context.contextActivities.parent[0].id`.
    pub property: String,
    /// `schema:<keyword>`, e.g. `schema:format`, `schema:required`.
    pub rule: String,
    pub message: String,
}

pub fn check_statement(statement: &Value, version: XapiVersion) -> Result<(), SchemaViolation> {
    let validator = match version {
        XapiVersion::V1_0 => &*STATEMENT_1_0,
        XapiVersion::V2_0 => &*STATEMENT_2_0,
    };
    if validator.is_valid(statement) {
        return Ok(());
    }
    let mut leaves = Vec::new();
    for error in validator.iter_errors(statement) {
        flatten(error.to_owned(), &mut leaves);
    }
    // The most specific error is the deepest one; an objectType `const`
    // mismatch is usually a branch of a `oneOf` that was not meant.
    let best = leaves.into_iter().max_by_key(|l| (l.depth, !l.is_const));
    Err(match best {
        Some(l) => {
            SchemaViolation { property: dotted(&l.pointer), rule: format!("schema:{}", l.keyword), message: l.message }
        }
        None => SchemaViolation {
            property: String::new(),
            rule: "schema".into(),
            message: "the statement does not match the xAPI statement schema".into(),
        },
    })
}

struct Leaf {
    pointer: String,
    depth: usize,
    keyword: String,
    is_const: bool,
    message: String,
}

/// Collects the leaf errors: the branches of `oneOf`/`anyOf` say more than the
/// combinator's own "not valid under any of the schemas".
fn flatten(e: ValidationError<'static>, out: &mut Vec<Leaf>) {
    let leaf = Leaf {
        pointer: e.instance_path().as_str().to_owned(),
        depth: e.instance_path().segments().count(),
        keyword: e.kind().keyword().to_owned(),
        is_const: matches!(e.kind(), ValidationErrorKind::Constant { .. }),
        message: e.to_string(),
    };
    match e.into_parts().kind {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context }
            if context.iter().any(|b| !b.is_empty()) =>
        {
            for inner in context.into_iter().flatten() {
                flatten(inner, out);
            }
        }
        _ => out.push(leaf),
    }
}

/// `/context/contextActivities/parent/0/id` → `context.contextActivities.parent[0].id`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
            "object": {"id": "http://example.com/activity"}
        })
    }

    #[test]
    fn accepts_a_minimal_statement() {
        assert_eq!(check_statement(&base(), XapiVersion::V1_0), Ok(()));
    }

    #[test]
    fn names_the_bad_property() {
        let mut s = base();
        s["actor"]["mbox"] = json!("a@example.com");
        let v = check_statement(&s, XapiVersion::V1_0).unwrap_err();
        assert_eq!(v.property, "actor.mbox");
        assert_eq!(v.rule, "schema:format");

        let mut s = base();
        s["object"] = json!({"objectType": "Agent", "mbox": "nope"});
        assert_eq!(check_statement(&s, XapiVersion::V1_0).unwrap_err().property, "object.mbox");
    }

    #[test]
    fn rejects_unknown_properties_and_wrong_case() {
        let mut s = base();
        s["Verb"] = s["verb"].clone();
        assert!(check_statement(&s, XapiVersion::V1_0).is_err());
        let mut s = base();
        s["actor"]["objectType"] = json!("agent");
        assert!(check_statement(&s, XapiVersion::V1_0).is_err());
        let mut s = base();
        s["verb"]["display"] = json!({"not a tag": "x"});
        assert!(check_statement(&s, XapiVersion::V1_0).is_err());
    }

    #[test]
    fn context_agents_and_groups_are_2_0_only() {
        let mut s = base();
        s["context"] = json!({
            "contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:a@x"},
                               "relevantTypes": ["http://example.com/type"]}],
            "contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group", "mbox": "mailto:g@x"}}]
        });
        s["version"] = json!("2.0.0");
        assert_eq!(check_statement(&s, XapiVersion::V2_0), Ok(()));
        assert!(check_statement(&s, XapiVersion::V1_0).is_err());
        for bad in [
            json!({"contextAgents": [{"objectType": "contextGroup", "agent": {"mbox": "mailto:a@x"}}]}),
            json!({"contextAgents": [{"objectType": "contextAgent", "agent": {"objectType": "Group", "mbox": "mailto:a@x"}}]}),
            json!({"contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:a@x"}, "relevantTypes": []}]}),
            json!({"contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group", "mbox": "mailto:g@x"}, "relevantTypes": ["abc"]}]}),
            json!({"contextAgents": {"objectType": "contextAgent", "agent": {"mbox": "mailto:a@x"}}}),
        ] {
            s["context"] = bad.clone();
            assert!(check_statement(&s, XapiVersion::V2_0).is_err(), "{bad}");
        }
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/context/contextActivities/parent/0/id"), "context.contextActivities.parent[0].id");
        assert_eq!(dotted(""), "");
    }
}
