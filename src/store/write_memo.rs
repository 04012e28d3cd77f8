//! What the only writer of a SQLite file knows the file holds of the rows
//! every statement merges into: activities' canonical definitions and the
//! names agents were given.
//!
//! Why: content sends the same definitions and names in every statement, so
//! nearly every merge changes nothing, yet each group read both tables
//! back (21 µs of the writer's time per statement for activities, 5 for
//! names, on the real-world mix). Only one process writes a SQLite file
//! (the filter index's postings rely on that too), so what it committed is
//! what the file holds; on PostgreSQL other nodes write these rows and the
//! writer reads them in each transaction.
//!
//! What a transaction read or wrote is learned only once it committed: a
//! failed transaction leaves the memo as the file is.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

/// Entries kept of each kind; beyond them the memo starts again (a store
/// with this many activities in use reads some of them back, as before).
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub(super) struct WriteMemo {
    definitions: HashMap<String, Map<String, Json>>,
    names: HashMap<String, Vec<String>>,
}

/// Rows as a transaction left them (read, or written), to learn on commit.
#[derive(Default)]
pub(super) struct Learned {
    pub definitions: Vec<(String, Map<String, Json>)>,
    pub names: Vec<(String, Vec<String>)>,
}

impl WriteMemo {
    /// The canonical definition of `iri` as stored; `None` when not known
    /// (which is not "has none").
    pub fn definition(&self, iri: &str) -> Option<&Map<String, Json>> {
        self.definitions.get(iri)
    }

    /// The names stored for the agent with this IFI; `None` when not known.
    pub fn names(&self, ifi: &str) -> Option<&[String]> {
        self.names.get(ifi).map(Vec::as_slice)
    }

    /// After a commit: the rows its transaction read or wrote.
    pub fn learn(&mut self, learned: Learned) {
        learn_into(&mut self.definitions, learned.definitions);
        learn_into(&mut self.names, learned.names);
    }
}

fn learn_into<V>(memo: &mut HashMap<String, V>, rows: Vec<(String, V)>) {
    if memo.len() + rows.len() > MAX_ENTRIES {
        memo.clear();
    }
    memo.extend(rows);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_memo_knows_what_was_learned_and_starts_again_when_full() {
        let mut memo = WriteMemo::default();
        let definition = json!({"type": "http://t"}).as_object().unwrap().clone();
        memo.learn(Learned {
            definitions: vec![("http://a".into(), definition.clone())],
            names: vec![("mbox:mailto:a@example.com".into(), vec!["A".into()])],
        });
        assert_eq!(memo.definition("http://a"), Some(&definition));
        assert_eq!(memo.definition("http://b"), None);
        assert_eq!(memo.names("mbox:mailto:a@example.com"), Some(&["A".to_owned()][..]));
        let many = (0..MAX_ENTRIES).map(|n| (format!("http://{n}"), definition.clone())).collect();
        memo.learn(Learned { definitions: many, names: vec![] });
        assert_eq!(memo.definition("http://a"), None);
        assert_eq!(memo.definition("http://0"), Some(&definition));
        assert_eq!(memo.names.len(), 1);
    }
}
