//! Which course (and unit) of a platform an activity is: exact IRIs from a
//! table, then regular expressions whose captures build the course id. An
//! activity neither names is parked with the reason, to be mapped and retried.

use std::collections::HashMap;

use regex::Regex;

use super::config::CourseRule;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub id: String,
    pub unit: Option<String>,
}

#[derive(Default)]
pub struct Courses {
    exact: HashMap<String, Course>,
    patterns: Vec<(Regex, String, Option<String>)>,
}

impl Courses {
    /// The rules, checked already by `ForwardingConfig::parse`.
    pub fn new(rules: &[CourseRule]) -> anyhow::Result<Courses> {
        let mut courses = Courses::default();
        for rule in rules {
            match (&rule.activity, &rule.pattern) {
                (Some(iri), _) => {
                    let unit = rule.unit.clone().and_then(some_unit);
                    courses.exact.insert(iri.clone(), Course { id: rule.course.clone(), unit });
                }
                (None, Some(p)) => courses.patterns.push((Regex::new(p)?, rule.course.clone(), rule.unit.clone())),
                (None, None) => anyhow::bail!("a course rule has neither `activity` nor `pattern`"),
            }
        }
        Ok(courses)
    }

    pub fn resolve(&self, iri: &str) -> Option<Course> {
        if let Some(course) = self.exact.get(iri) {
            return Some(course.clone());
        }
        self.patterns.iter().find_map(|(re, course, unit)| {
            let caps = re.captures(iri)?;
            let expand = |template: &str| {
                let mut out = String::new();
                caps.expand(template, &mut out);
                out
            };
            let unit = unit.as_deref().map(expand).and_then(some_unit);
            Some(Course { id: expand(course), unit }).filter(|c| !c.id.is_empty())
        })
    }

    /// `resolve`, or the reason a row is parked.
    pub fn require(&self, iri: &str) -> Result<Course, String> {
        self.resolve(iri).ok_or_else(|| {
            format!("no course is mapped for the activity {iri}: add a [[forwarder.course]] rule, then retry")
        })
    }
}

/// A unit that is there: an empty one (an optional capture that took no part,
/// as in `(/units/(?P<unit>[^/]+))?`) is no unit, i.e. the whole course.
/// Platforms refuse an empty unit id (LearnWorlds: 422).
fn some_unit(unit: String) -> Option<String> {
    (!unit.is_empty()).then_some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_iris_then_patterns_with_captures() {
        let rule = |activity: Option<&str>, pattern: Option<&str>, course: &str, unit: Option<&str>| CourseRule {
            activity: activity.map(Into::into),
            pattern: pattern.map(Into::into),
            course: course.into(),
            unit: unit.map(Into::into),
        };
        let courses = Courses::new(&[
            rule(Some("https://lms/c/special"), None, "fire-safety", None),
            rule(None, Some(r"^https://lms/c/(?P<code>[^/]+)/u/(?P<unit>[^/]+)$"), "$code", Some("${unit}")),
            rule(None, Some(r"^https://lms/c/(?P<code>[^/]+)$"), "course-$code", None),
        ])
        .unwrap();
        assert_eq!(courses.resolve("https://lms/c/special"), Some(Course { id: "fire-safety".into(), unit: None }));
        assert_eq!(
            courses.resolve("https://lms/c/sleep/u/7"),
            Some(Course { id: "sleep".into(), unit: Some("7".into()) })
        );
        assert_eq!(courses.resolve("https://lms/c/sleep").unwrap().id, "course-sleep");
        assert!(courses.require("https://other/x").unwrap_err().contains("https://other/x"));
    }

    #[test]
    fn the_documented_optional_unit_means_the_whole_course_when_absent() {
        // docs/forwarding.md, "Learners and courses", word for word.
        let config = crate::forward::config::ForwardingConfig::parse(
            r#"
            [[forwarder]]
            name = "academy"
            kind = "webhook"
            url = "http://x"
            [[forwarder.course]]
            pattern = '^https://lms\.example\.com/courses/(?P<code>[^/]+)(/units/(?P<unit>[^/]+))?$'
            course = "$code"
            unit = "$unit"                       # optional (LearnWorlds units)
            "#,
        )
        .unwrap();
        let courses = Courses::new(&config.targets[0].courses).unwrap();
        assert_eq!(
            courses.resolve("https://lms.example.com/courses/fire"),
            Some(Course { id: "fire".into(), unit: None })
        );
        assert_eq!(
            courses.resolve("https://lms.example.com/courses/fire/units/u1"),
            Some(Course { id: "fire".into(), unit: Some("u1".into()) })
        );
    }
}
