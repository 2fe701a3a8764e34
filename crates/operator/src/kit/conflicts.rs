//! Telling a rival writer from ordinary drift. An object whose live state keeps moving away from
//! the same rendered content, again and again within a minute, has another writer forcing
//! fields we set. Fighting back would be a write loop, so the operator stops applying, reports
//! the conflict, and tries once more when a minute has passed; a rival still there takes the
//! object back at once and the next try is a minute later again.
//!
//! Pure bookkeeping: the caller passes the clock, so the rules are unit-tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Applies of unchanged content within [`WINDOW`] after which a rival is assumed.
pub const LIMIT: usize = 3;
/// The sliding window in which applies count, and the pause between tries once contested.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What to do about one object that needs an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it.
    Apply,
    /// Another writer keeps undoing our applies: report, do not apply.
    Contested,
}

/// The applies of one object's current content.
#[derive(Debug)]
struct History {
    /// Hash of the content applied.
    hash: String,
    /// When it was applied, oldest first, at most [`LIMIT`] within [`WINDOW`].
    applied: VecDeque<Instant>,
    /// Since when the object is held as contested (no applies until [`WINDOW`] has passed).
    contested_since: Option<Instant>,
}

/// Apply histories of every object, by object key.
#[derive(Debug, Default)]
pub struct Tracker {
    objects: HashMap<String, History>,
}

impl Tracker {
    /// Decides about applying content `hash` to object `key` at `now`, and records an apply
    /// when the answer is [`Verdict::Apply`].
    pub fn decide(&mut self, key: &str, hash: &str, now: Instant) -> Verdict {
        let history = self
            .objects
            .entry(key.to_string())
            .or_insert_with(|| History {
                hash: hash.to_string(),
                applied: VecDeque::new(),
                contested_since: None,
            });
        if history.hash != hash {
            // New content is not a fight: it is ours to apply.
            *history = History {
                hash: hash.to_string(),
                applied: VecDeque::new(),
                contested_since: None,
            };
        }
        if let Some(since) = history.contested_since {
            if now.duration_since(since) < WINDOW {
                return Verdict::Contested;
            }
            // One more try; if the rival undoes it, the hold starts again right away.
            history.applied.clear();
            history.applied.extend(std::iter::repeat_n(now, LIMIT));
            history.contested_since = Some(now);
            return Verdict::Apply;
        }
        while history
            .applied
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            history.applied.pop_front();
        }
        if history.applied.len() >= LIMIT {
            history.contested_since = Some(now);
            return Verdict::Contested;
        }
        history.applied.push_back(now);
        Verdict::Apply
    }
}

/// The apply history of every child, to tell a rival writer from drift.
#[derive(Default)]
pub struct Contests(Mutex<Tracker>);

impl Contests {
    /// Whether `id` must not be applied with content `hash` now: another writer keeps undoing
    /// our applies. Otherwise the apply is recorded.
    pub fn reapplied(&self, id: &str, hash: String) -> bool {
        let mut tracker = self.0.lock().expect("not poisoned");
        tracker.decide(id, &hash, Instant::now()) == Verdict::Contested
    }

    /// Forgets the applies of `id`: they were not undone by anyone (the cache was behind).
    pub fn forget(&self, id: &str) {
        self.0.lock().expect("not poisoned").objects.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn repeated_applies_of_the_same_content_become_a_contest() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        for s in [0.0, 0.3, 0.6] {
            assert_eq!(t.decide("sts", "h1", at(t0, s)), Verdict::Apply);
        }
        assert_eq!(t.decide("sts", "h1", at(t0, 0.9)), Verdict::Contested);
        assert_eq!(t.decide("sts", "h1", at(t0, 30.0)), Verdict::Contested);
    }

    #[test]
    fn a_contest_allows_one_try_a_minute() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        for s in [0.0, 0.3, 0.6] {
            t.decide("sts", "h1", at(t0, s));
        }
        assert_eq!(t.decide("sts", "h1", at(t0, 1.0)), Verdict::Contested);
        // A minute after the contest began: exactly one try, then held again.
        assert_eq!(t.decide("sts", "h1", at(t0, 61.0)), Verdict::Apply);
        assert_eq!(t.decide("sts", "h1", at(t0, 61.3)), Verdict::Contested);
        assert_eq!(t.decide("sts", "h1", at(t0, 120.0)), Verdict::Contested);
        assert_eq!(t.decide("sts", "h1", at(t0, 121.5)), Verdict::Apply);
    }

    #[test]
    fn the_window_slides_from_the_latest_applies_not_the_first() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        // Created at 0 s; a rival appears 55 s later. The contest must hold past the 60 s mark
        // of the first apply instead of starting over there.
        assert_eq!(t.decide("sts", "h1", at(t0, 0.0)), Verdict::Apply);
        assert_eq!(t.decide("sts", "h1", at(t0, 55.0)), Verdict::Apply);
        assert_eq!(t.decide("sts", "h1", at(t0, 55.3)), Verdict::Apply);
        assert_eq!(t.decide("sts", "h1", at(t0, 55.6)), Verdict::Contested);
        for s in [60.5, 61.0, 70.0, 115.0] {
            assert_eq!(t.decide("sts", "h1", at(t0, s)), Verdict::Contested, "{s}");
        }
    }

    #[test]
    fn occasional_drift_is_healed_every_time() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        for s in [0.0, 40.0, 80.0, 120.0, 160.0] {
            assert_eq!(t.decide("sts", "h1", at(t0, s)), Verdict::Apply, "{s}");
        }
    }

    #[test]
    fn new_content_ends_a_contest_and_objects_are_independent() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        for s in [0.0, 0.3, 0.6, 0.9] {
            t.decide("sts", "h1", at(t0, s));
        }
        assert_eq!(t.decide("svc", "h1", at(t0, 1.0)), Verdict::Apply);
        assert_eq!(t.decide("sts", "h2", at(t0, 1.0)), Verdict::Apply);
    }
}
