//! Realistic, valid statements from a seed: learners by mbox and by
//! account, ADL and cmi5 verbs, courses of modules of questions with
//! definitions and interaction types, results with scores and durations,
//! registrations, context activities, some sub-statements and some
//! attachments (by `fileUrl`). The same seed gives the same statements, and
//! the pools (learners, courses, registrations) are known, so queries can
//! ask for what is there.

use serde_json::{Value, json};

pub const LEARNERS: u64 = 20_000;
pub const COURSES: u64 = 50;
pub const MODULES_PER_COURSE: u64 = 8;
pub const QUESTIONS_PER_MODULE: u64 = 5;

const ADL: &str = "http://adlnet.gov/expapi/verbs/";
const CMI5_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
const HOME_PAGE: &str = "https://sso.example.com";

pub struct Generator {
    state: u64,
    /// Statements made so far (their ids are derived from it).
    made: u64,
    seed: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, made: 0, seed }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: fast, and good enough to spread picks.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A statement with an id of its own.
    pub fn statement(&mut self) -> Value {
        self.made += 1;
        let learner = self.skewed(LEARNERS);
        let course = self.below(COURSES);
        let module = self.below(MODULES_PER_COURSE);
        let mut s = match self.below(100) {
            0..=24 => self.experienced(learner, course, module),
            25..=44 => self.answered(learner, course, module),
            45..=59 => self.progressed(learner, course, module),
            60..=71 => self.cmi5(learner, course, module),
            72..=86 => self.outcome(learner, course, Some(module)),
            87..=94 => self.outcome(learner, course, None),
            95..=97 => self.sub_statement(learner, course),
            _ => self.with_attachment(learner, course, module),
        };
        s["id"] = json!(uuid_of(self.seed, self.made));
        s["timestamp"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        s
    }

    /// Learner numbers skewed towards the low ones: a few are very active.
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }

    fn experienced(&mut self, learner: u64, course: u64, module: u64) -> Value {
        json!({
            "actor": actor(learner),
            "verb": verb("experienced"),
            "object": module_activity(course, module),
            "context": context(learner, course, None),
        })
    }

    fn answered(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let q = self.below(QUESTIONS_PER_MODULE);
        let (object, response, success) = match q % 4 {
            0 => {
                let pick = self.below(4);
                (choice_question(course, module, q), format!("choice-{pick}"), pick == 2)
            }
            1 => {
                let yes = self.below(2) == 0;
                (true_false_question(course, module, q), yes.to_string(), yes)
            }
            2 => {
                let n = self.below(10);
                (numeric_question(course, module, q), n.to_string(), (4..=6).contains(&n))
            }
            _ => {
                let word = ["xAPI", "SCORM", "cmi5", "LRS"][self.below(4) as usize];
                (fill_in_question(course, module, q), word.to_owned(), word == "cmi5")
            }
        };
        json!({
            "actor": actor(learner),
            "verb": verb("answered"),
            "object": object,
            "result": {"response": response, "success": success, "duration": self.duration(5, 120)},
            "context": context(learner, course, Some(module)),
        })
    }

    fn progressed(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let progress = self.below(100);
        json!({
            "actor": actor(learner),
            "verb": verb("progressed"),
            "object": module_activity(course, module),
            "result": {"extensions": {"https://w3id.org/xapi/cmi5/result/extensions/progress": progress},
                       "duration": self.duration(60, 1800)},
            "context": context(learner, course, None),
        })
    }

    /// A cmi5 session statement: launched, initialized or terminated, in
    /// the cmi5 category with a session id.
    fn cmi5(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let word = ["launched", "initialized", "terminated"][self.below(3) as usize];
        let mut context = context(learner, course, None);
        context["contextActivities"]["category"] = json!([{"id": CMI5_CATEGORY}]);
        context["extensions"] = json!({"https://w3id.org/xapi/cmi5/context/extensions/sessionid":
                                        format!("session-{learner}-{}", self.below(1000))});
        let mut s = json!({"actor": actor(learner), "verb": verb(word), "object": module_activity(course, module),
                           "context": context});
        if word == "terminated" {
            s["result"] = json!({"duration": self.duration(60, 3600)});
        }
        s
    }

    /// Completed, passed or failed, on a module or on the course.
    fn outcome(&mut self, learner: u64, course: u64, module: Option<u64>) -> Value {
        let word = ["completed", "completed", "passed", "failed"][self.below(4) as usize];
        let max = 20;
        let raw = if word == "failed" { self.below(12) } else { 12 + self.below(max - 11) };
        let (object, context) = match module {
            Some(m) => (module_activity(course, m), context(learner, course, None)),
            None => (
                course_activity(course),
                json!({"registration": registration(learner, course),
                                                     "contextActivities": {"grouping": [{"id": programme(course)}]}}),
            ),
        };
        let mut result = json!({"completion": true, "duration": self.duration(300, 7200),
                                "score": {"raw": raw, "min": 0, "max": max, "scaled": raw as f64 / max as f64}});
        if word != "completed" {
            result["success"] = json!(word == "passed");
        }
        json!({
            "actor": actor(learner),
            "verb": verb(word),
            "object": object,
            "result": result,
            "context": context,
        })
    }

    /// An instructor's plan for the learner: a statement about a statement.
    fn sub_statement(&mut self, learner: u64, course: u64) -> Value {
        let instructor = self.below(100);
        json!({
            "actor": {"objectType": "Agent", "name": format!("Instructor {instructor}"),
                      "mbox": format!("mailto:instructor{instructor}@example.com")},
            "verb": {"id": "http://id.tincanapi.com/verb/assigned", "display": {"en-US": "assigned"}},
            "object": {
                "objectType": "SubStatement",
                "actor": actor(learner),
                "verb": verb("completed"),
                "object": course_activity(course),
            },
            "context": {"contextActivities": {"grouping": [{"id": programme(course)}]}},
        })
    }

    /// A certificate, attached by reference.
    fn with_attachment(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let mut s = self.outcome(learner, course, Some(module));
        s["attachments"] = json!([{
            "usageType": "http://id.tincanapi.com/attachment/certificate-of-completion",
            "display": {"en-US": "Certificate"},
            "contentType": "application/pdf",
            "length": 48213,
            "sha2": format!("{:064x}", self.next()),
            "fileUrl": format!("https://certificates.example.com/{learner}/{course}.pdf"),
        }]);
        s
    }

    fn duration(&mut self, min_secs: u64, max_secs: u64) -> String {
        let secs = min_secs + self.below(max_secs - min_secs + 1);
        format!("PT{}M{}S", secs / 60, secs % 60)
    }
}

/// Learner `n`: two in three by e-mail, the others by an SSO account.
pub fn actor(n: u64) -> Value {
    if n % 3 == 2 {
        json!({"objectType": "Agent", "name": format!("Learner {n}"),
               "account": {"homePage": HOME_PAGE, "name": format!("u{n:06}")}})
    } else {
        json!({"objectType": "Agent", "name": format!("Learner {n}"), "mbox": format!("mailto:learner{n}@example.com")})
    }
}

pub fn verb(word: &str) -> Value {
    json!({"id": format!("{ADL}{word}"), "display": {"en-US": word}})
}

pub fn verb_iri(word: &str) -> String {
    format!("{ADL}{word}")
}

pub fn course_iri(course: u64) -> String {
    format!("https://lms.example.com/courses/{course}")
}

fn programme(course: u64) -> String {
    format!("https://lms.example.com/programmes/{}", course % 5)
}

/// The registration of a learner on a course: one attempt each.
pub fn registration(learner: u64, course: u64) -> String {
    uuid_of(learner, course | 1 << 40)
}

/// A version 4 UUID made of two numbers (the same numbers, the same UUID).
fn uuid_of(a: u64, b: u64) -> String {
    // The version (byte 6) and variant (byte 8) bits are set over whatever
    // is there: keep 56 bits of each number clear of them, so that no two
    // (a, b) below 2^56 share an id.
    let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&a[2..]);
    bytes[7] = a[1];
    bytes[9..].copy_from_slice(&b[1..]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn course_activity(course: u64) -> Value {
    json!({"objectType": "Activity", "id": course_iri(course), "definition": {
        "name": {"en-US": format!("Course {course}")},
        "description": {"en-US": format!("Everything about topic {course}")},
        "type": "http://adlnet.gov/expapi/activities/course"}})
}

fn module_activity(course: u64, module: u64) -> Value {
    json!({"objectType": "Activity", "id": format!("{}/modules/{module}", course_iri(course)), "definition": {
        "name": {"en-US": format!("Module {module} of course {course}")},
        "type": "http://adlnet.gov/expapi/activities/module"}})
}

fn question_id(course: u64, module: u64, q: u64) -> String {
    format!("{}/modules/{module}/questions/{q}", course_iri(course))
}

fn question(course: u64, module: u64, q: u64, interaction: Value) -> Value {
    let mut definition = json!({"name": {"en-US": format!("Question {q}")},
                                "description": {"en-US": "Answer the question"},
                                "type": "http://adlnet.gov/expapi/activities/cmi.interaction"});
    if let (Some(d), Value::Object(extra)) = (definition.as_object_mut(), interaction) {
        d.extend(extra);
    }
    json!({"objectType": "Activity", "id": question_id(course, module, q), "definition": definition})
}

fn choice_question(course: u64, module: u64, q: u64) -> Value {
    let choices: Vec<Value> =
        (0..4).map(|c| json!({"id": format!("choice-{c}"), "description": {"en-US": format!("Option {c}")}})).collect();
    question(
        course,
        module,
        q,
        json!({"interactionType": "choice", "correctResponsesPattern": ["choice-2"], "choices": choices}),
    )
}

fn true_false_question(course: u64, module: u64, q: u64) -> Value {
    question(course, module, q, json!({"interactionType": "true-false", "correctResponsesPattern": ["true"]}))
}

fn numeric_question(course: u64, module: u64, q: u64) -> Value {
    question(course, module, q, json!({"interactionType": "numeric", "correctResponsesPattern": ["4[:]6"]}))
}

fn fill_in_question(course: u64, module: u64, q: u64) -> Value {
    question(course, module, q, json!({"interactionType": "fill-in", "correctResponsesPattern": ["cmi5"]}))
}

/// The learner's registration on the course, the course (and module) as
/// parents, the programme as grouping.
fn context(learner: u64, course: u64, module: Option<u64>) -> Value {
    let mut parents = vec![json!({"id": course_iri(course)})];
    if let Some(m) = module {
        parents.insert(0, json!({"id": format!("{}/modules/{m}", course_iri(course))}));
    }
    json!({
        "registration": registration(learner, course),
        "platform": "Example LMS",
        "language": "en-US",
        "contextActivities": {"parent": parents, "grouping": [{"id": programme(course)}]},
    })
}
