//! Valid statements from a seed, in one of two mixes (`--mix`):
//!
//! - `real-world` (the default): statements as cmi5 course players send
//!   them, about 1.5 KB each. Learners by `mbox` with a name (some by an SSO
//!   account), verbs with `display`, the object an AU, a question or a course
//!   with its definition; context with a registration, the module as
//!   `parent`, the course as `grouping`, the cmi5 category, each with its
//!   definition, `platform`, `language` and the session extension; results
//!   with completion, success, score and duration; interactions with their
//!   components; some sub-statements and attachments by `fileUrl`; no `id`
//!   (the LRS assigns one).
//! - `lean`: the lighter statements earlier figures were measured on
//!   (context activities without definitions, an `id` on each).
//!
//! The same seed gives the same statements, and the pools (learners,
//! courses, registrations) are known, so queries can ask for what is there.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

pub const LEARNERS: u64 = 20_000;
/// The real-world mix's learners: 1,000, as in a department's rollout.
pub const REAL_WORLD_LEARNERS: u64 = 1_000;
pub const COURSES: u64 = 50;
/// The real-world mix's courses (each of `MODULES_PER_COURSE` modules).
pub const REAL_WORLD_COURSES: u64 = 40;
pub const MODULES_PER_COURSE: u64 = 8;
pub const QUESTIONS_PER_MODULE: u64 = 5;

const ADL: &str = "http://adlnet.gov/expapi/verbs/";
const CMI5_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
const HOME_PAGE: &str = "https://sso.example.com";

static LEAN: AtomicBool = AtomicBool::new(false);

/// Chooses the mix every generator of this process makes (`--mix`).
pub fn use_lean_mix(lean: bool) {
    LEAN.store(lean, Ordering::Relaxed);
}

pub fn lean_mix() -> bool {
    LEAN.load(Ordering::Relaxed)
}

/// The learners the mix draws from.
pub fn learners() -> u64 {
    if lean_mix() { LEARNERS } else { REAL_WORLD_LEARNERS }
}

/// The courses the mix draws from.
pub fn courses() -> u64 {
    if lean_mix() { COURSES } else { REAL_WORLD_COURSES }
}

#[derive(Clone, Copy)]
enum Interaction {
    Choice,
    TrueFalse,
    Numeric,
    Matching,
    Likert,
    FillIn,
}

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

    /// A statement of the process's mix.
    pub fn statement(&mut self) -> Value {
        self.made += 1;
        let learner = self.skewed(learners());
        let course = self.below(courses());
        let module = self.below(MODULES_PER_COURSE);
        let mut s =
            if lean_mix() { self.lean(learner, course, module) } else { self.real_world(learner, course, module) };
        s["timestamp"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        s
    }

    /// A statement of the lean mix, with an id of its own.
    fn lean(&mut self, learner: u64, course: u64, module: u64) -> Value {
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
        let kind =
            [Interaction::Choice, Interaction::TrueFalse, Interaction::Numeric, Interaction::FillIn][(q % 4) as usize];
        let (object, response, success) = self.answer(kind, course, module, q);
        json!({
            "actor": actor(learner),
            "verb": verb("answered"),
            "object": object,
            "result": {"response": response, "success": success, "duration": self.duration(5, 120)},
            "context": context(learner, course, Some(module)),
        })
    }

    /// Question `q` of a module as an activity of `kind`, a learner's
    /// response to it, and whether that was right.
    fn answer(&mut self, kind: Interaction, course: u64, module: u64, q: u64) -> (Value, String, bool) {
        match kind {
            Interaction::Choice => {
                let pick = self.below(4);
                (choice_question(course, module, q), format!("choice-{pick}"), pick == 2)
            }
            Interaction::TrueFalse => {
                let yes = self.below(2) == 0;
                (true_false_question(course, module, q), yes.to_string(), yes)
            }
            Interaction::Numeric => {
                let n = self.below(10);
                (numeric_question(course, module, q), n.to_string(), (4..=6).contains(&n))
            }
            Interaction::Matching => {
                (matching_question(course, module, q), "ben[.]3[,]chris[.]2[,]troy[.]4".to_owned(), true)
            }
            Interaction::Likert => {
                let n = 1 + self.below(5);
                (likert_question(course, module, q), format!("likert_{n}"), true)
            }
            Interaction::FillIn => {
                let word = ["xAPI", "SCORM", "cmi5", "LRS"][self.below(4) as usize];
                (fill_in_question(course, module, q), word.to_owned(), word == "cmi5")
            }
        }
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
                "actor": if lean_mix() { actor(learner) } else { rw_actor(learner) },
                "verb": verb("completed"),
                "object": course_activity(course),
            },
            "context": {"contextActivities": {"grouping": [{"id": programme(course)}]}},
        })
    }

    /// A certificate, attached by reference.
    fn with_attachment(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let mut s = self.outcome(learner, course, Some(module));
        s["attachments"] = self.certificate(learner, course);
        s
    }

    fn certificate(&mut self, learner: u64, course: u64) -> Value {
        json!([{
            "usageType": "http://id.tincanapi.com/attachment/certificate-of-completion",
            "display": {"en-US": "Certificate"},
            "contentType": "application/pdf",
            "length": 48213,
            "sha2": format!("{:064x}", self.next()),
            "fileUrl": format!("https://certificates.example.com/{learner}/{course}.pdf"),
        }])
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

/// An activity many statements of the mix have as their object.
pub fn object_activity_iri(course: u64, module: u64) -> String {
    let module = format!("{}/modules/{module}", course_iri(course));
    if lean_mix() { module } else { format!("{module}/au") }
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

/// The real-world mix (see the module's comment).
impl Generator {
    fn real_world(&mut self, learner: u64, course: u64, module: u64) -> Value {
        match self.below(100) {
            0..=49 => self.au_statement(learner, course, module),
            50..=79 => self.interaction(learner, course, module),
            80..=91 => self.course_outcome(learner, course),
            92..=95 => self.sub_statement(learner, course),
            _ => {
                let mut s = self.course_outcome(learner, course);
                s["attachments"] = self.certificate(learner, course);
                s
            }
        }
    }

    /// A cmi5 AU's statement: a session's verbs, with the result each carries.
    fn au_statement(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let word = ["launched", "initialized", "progressed", "completed", "passed", "failed", "terminated"]
            [self.below(7) as usize];
        let mut s = json!({
            "actor": rw_actor(learner),
            "verb": verb(word),
            "object": au_activity(course, module),
            "context": self.rw_context(learner, course, module),
        });
        let duration = self.duration(60, 3600);
        match word {
            "completed" => s["result"] = json!({"completion": true, "duration": duration}),
            "passed" | "failed" => s["result"] = self.scored(word == "passed", duration),
            "progressed" => {
                s["result"] = json!({"duration": duration, "extensions":
                    {"https://w3id.org/xapi/cmi5/result/extensions/progress": self.below(100)}})
            }
            "terminated" => s["result"] = json!({"duration": duration}),
            _ => {}
        }
        s
    }

    fn scored(&mut self, passed: bool, duration: String) -> Value {
        let max = 20;
        let raw = if passed { 12 + self.below(max - 11) } else { self.below(12) };
        json!({"completion": true, "success": passed, "duration": duration,
               "score": {"scaled": raw as f64 / max as f64, "raw": raw, "min": 0, "max": max}})
    }

    /// An answered question, its definition with the interaction's components.
    fn interaction(&mut self, learner: u64, course: u64, module: u64) -> Value {
        let q = self.below(QUESTIONS_PER_MODULE);
        let kind = [
            Interaction::Choice,
            Interaction::TrueFalse,
            Interaction::Matching,
            Interaction::Likert,
            Interaction::FillIn,
        ][q as usize];
        let (object, response, success) = self.answer(kind, course, module, q);
        let duration = self.duration(5, 120);
        let mut result = self.scored(success, duration);
        result["response"] = json!(response);
        json!({
            "actor": rw_actor(learner),
            "verb": verb("answered"),
            "object": object,
            "result": result,
            "context": self.rw_context(learner, course, module),
        })
    }

    /// The LMS's course-level verdict (cmi5's moveOn satisfied).
    fn course_outcome(&mut self, learner: u64, course: u64) -> Value {
        let passed = self.below(4) != 0;
        let duration = self.duration(600, 7200);
        let mut context = self.rw_context(learner, course, 0);
        let activities = &mut context["contextActivities"];
        activities.as_object_mut().map(|a| a.remove("parent"));
        activities["grouping"] = json!([programme_activity(course)]);
        json!({
            "actor": rw_actor(learner),
            "verb": verb(if passed { "passed" } else { "failed" }),
            "object": rw_course_activity(course),
            "result": self.scored(passed, duration),
            "context": context,
        })
    }

    /// Registration, module and course, the cmi5 category, platform,
    /// language and the session: what a cmi5 AU puts in every statement.
    fn rw_context(&mut self, learner: u64, course: u64, module: u64) -> Value {
        json!({
            "registration": registration(learner, course),
            "contextActivities": {
                "parent": [rw_module_activity(course, module)],
                "grouping": [rw_course_activity(course)],
                "category": [{"objectType": "Activity", "id": "https://w3id.org/xapi/cmi5/context/categories/moveon",
                              "definition": {"type": "http://adlnet.gov/expapi/activities/profile",
                                             "name": {"en-US": "cmi5 moveOn"}}}],
            },
            "platform": "Example LMS",
            "language": "en-US",
            "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/sessionid":
                           uuid_of(learner, self.below(1 << 20) | 1 << 48)},
        })
    }
}

/// Learner `n` of the real-world mix: four in five by e-mail, the others by
/// an SSO account; always with a name.
pub fn rw_actor(n: u64) -> Value {
    if n % 5 == 4 {
        json!({"objectType": "Agent", "name": format!("Learner {n}"),
               "account": {"homePage": HOME_PAGE, "name": format!("u{n:06}")}})
    } else {
        json!({"objectType": "Agent", "name": format!("Learner {n}"), "mbox": format!("mailto:learner{n}@example.com")})
    }
}

fn rw_course_activity(course: u64) -> Value {
    json!({"objectType": "Activity", "id": course_iri(course), "definition": {
        "type": "http://adlnet.gov/expapi/activities/course",
        "name": {"en-US": format!("Course {course}: Safety at work")},
        "description": {"en-US": format!("Everything a new colleague needs to know about topic {course}")}}})
}

fn rw_module_activity(course: u64, module: u64) -> Value {
    json!({"objectType": "Activity", "id": format!("{}/modules/{module}", course_iri(course)), "definition": {
        "type": "http://adlnet.gov/expapi/activities/module",
        "name": {"en-US": format!("Module {module} of course {course}")},
        "description": {"en-US": format!("Part {module} of the course")}}})
}

fn au_activity(course: u64, module: u64) -> Value {
    json!({"objectType": "Activity", "id": format!("{}/modules/{module}/au", course_iri(course)), "definition": {
        "type": "http://adlnet.gov/expapi/activities/lesson",
        "name": {"en-US": format!("Lesson of module {module}")},
        "description": {"en-US": format!("The assignable unit of module {module} of course {course}")}}})
}

fn programme_activity(course: u64) -> Value {
    json!({"objectType": "Activity", "id": programme(course), "definition": {
        "type": "http://id.tincanapi.com/activitytype/curriculum", "name": {"en-US": "Onboarding"}}})
}

fn matching_question(course: u64, module: u64, q: u64) -> Value {
    let item = |id: &str, text: &str| json!({"id": id, "description": {"en-US": text}});
    question(
        course,
        module,
        q,
        json!({"interactionType": "matching", "correctResponsesPattern": ["ben[.]3[,]chris[.]2[,]troy[.]4"],
               "source": [item("ben", "Ben"), item("chris", "Chris"), item("troy", "Troy")],
               "target": [item("2", "Swim"), item("3", "Bike"), item("4", "Run")]}),
    )
}

fn likert_question(course: u64, module: u64, q: u64) -> Value {
    let scale: Vec<Value> =
        (1..=5).map(|n| json!({"id": format!("likert_{n}"), "description": {"en-US": format!("{n} of 5")}})).collect();
    question(
        course,
        module,
        q,
        json!({"interactionType": "likert", "correctResponsesPattern": ["likert_5"], "scale": scale}),
    )
}
