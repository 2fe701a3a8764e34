//! Applies the caches have not shown yet. A child's watch event arrives a while after the apply
//! that changed it; a reconcile in between (triggered by another object) still sees the object
//! as it was before, finds it out of date and would apply the same content again: a write per
//! event while the watch lags, and, three times within a minute, a conflict with nobody.
//!
//! So every apply that changed an object is remembered with the `resourceVersion` it was
//! applied over, until the cache holds anything else. Memory only, one entry per child.

use std::collections::HashMap;
use std::sync::Mutex;

/// The applies of each child (by id) that its cache has not shown yet.
#[derive(Debug, Default)]
pub struct Unseen(Mutex<HashMap<String, Write>>);

/// One apply: the content's hash and the `resourceVersion` of the object it changed.
#[derive(Debug)]
struct Write {
    hash: String,
    over: String,
}

impl Unseen {
    /// Whether content `hash` of `id` was already applied over the object the cache holds
    /// (`cached`: its `resourceVersion`), so the cache is behind, not the object. An entry the
    /// cache has moved past is forgotten.
    pub fn applied(&self, id: &str, hash: &str, cached: Option<&str>) -> bool {
        let mut writes = self.0.lock().expect("unseen applies lock");
        match (writes.get(id), cached) {
            (Some(w), Some(rv)) if w.over == rv => w.hash == hash,
            (Some(_), _) => {
                writes.remove(id);
                false
            }
            (None, _) => false,
        }
    }

    /// Records that content `hash` of `id` was applied over `resourceVersion` `over` (`None`:
    /// it created the object) and the API server answered with `now`. Only a change is
    /// remembered: a creation has nothing older for a cache to hold, and an apply that
    /// changed nothing leaves no newer version for the cache to wait for.
    pub fn record(&self, id: &str, hash: &str, over: Option<&str>, now: Option<&str>) {
        let mut writes = self.0.lock().expect("unseen applies lock");
        match over {
            Some(over) if now != Some(over) => writes.insert(
                id.to_string(),
                Write {
                    hash: hash.to_string(),
                    over: over.to_string(),
                },
            ),
            _ => writes.remove(id),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_is_not_repeated_while_the_cache_holds_the_object_it_changed() {
        let unseen = Unseen::default();
        unseen.record("sts", "h1", Some("10"), Some("11"));
        assert!(unseen.applied("sts", "h1", Some("10")));
        assert!(
            unseen.applied("sts", "h1", Some("10")),
            "until the cache moves"
        );
        // New content is applied even over the stale cache.
        assert!(!unseen.applied("sts", "h2", Some("10")));
    }

    #[test]
    fn the_entry_goes_once_the_cache_shows_anything_else() {
        for later in [Some("11"), Some("12"), None] {
            let unseen = Unseen::default();
            unseen.record("sts", "h1", Some("10"), Some("11"));
            assert!(!unseen.applied("sts", "h1", later), "{later:?}");
            // Forgotten: even the old version no longer counts as applied.
            assert!(!unseen.applied("sts", "h1", Some("10")), "{later:?}");
        }
    }

    #[test]
    fn creations_and_applies_that_changed_nothing_are_not_remembered() {
        let unseen = Unseen::default();
        unseen.record("cm", "h1", None, Some("5"));
        assert!(!unseen.applied("cm", "h1", None));
        unseen.record("sts", "h1", Some("10"), Some("10"));
        assert!(!unseen.applied("sts", "h1", Some("10")));
    }
}
