//! Fields the API server drops from what the operator applies. A field of a feature the cluster
//! has not enabled (`lifecycle.stopSignal` without the ContainerStopSignals gate) is accepted
//! and silently removed, so the live object never holds everything rendered. Applying again
//! would change nothing and would repeat at every resync: instead the operator remembers what
//! each object's applied content lost, compares without it, and reports it.
//!
//! Memory only: a new leader applies such an object once more, finds the same fields dropped,
//! and remembers them in turn.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::apply::is_subset;

/// What the API server dropped from the applied content of each object.
#[derive(Debug, Default)]
pub struct Dropped(Mutex<HashMap<String, Lost>>);

/// The fields content `hash` lost, as JSON pointers.
#[derive(Debug)]
struct Lost {
    hash: String,
    fields: Vec<String>,
}

impl Dropped {
    /// The fields (JSON pointers) the API server dropped from content `hash` of object `id`,
    /// if it dropped any from that content.
    pub fn of(&self, id: &str, hash: &str) -> Option<Vec<String>> {
        let objects = self.0.lock().expect("dropped fields lock");
        objects
            .get(id)
            .filter(|lost| lost.hash == hash)
            .map(|lost| lost.fields.clone())
    }

    /// Records that content `hash` of `id` lost `fields` when applied (none: forgets `id`).
    pub fn record(&self, id: &str, hash: &str, fields: Vec<String>) {
        let mut objects = self.0.lock().expect("dropped fields lock");
        match fields.is_empty() {
            true => objects.remove(id),
            false => objects.insert(
                id.to_string(),
                Lost {
                    hash: hash.to_string(),
                    fields,
                },
            ),
        };
    }
}

/// The fields of `want` that `have` lacks or holds otherwise, as JSON pointers to the
/// outermost such field (compared as [`is_subset`] compares).
pub fn missing(want: &Value, have: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(want, have, String::new(), &mut out);
    out
}

fn collect(want: &Value, have: &Value, at: String, out: &mut Vec<String>) {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (key, value) in w.iter().filter(|(_, v)| !v.is_null()) {
                let path = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match h.get(key) {
                    Some(held) => collect(value, held, path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            for (i, (a, b)) in w.iter().zip(h).enumerate() {
                collect(a, b, format!("{at}/{i}"), out);
            }
        }
        _ if is_subset(want, have) => {}
        _ => out.push(at),
    }
}

/// `value` without the fields at `pointers`.
pub fn without(value: &Value, pointers: &[String]) -> Value {
    let mut value = value.clone();
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        let key = last.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(map)) = value.pointer_mut(parent) {
            map.remove(&key);
        }
    }
    value
}

/// A JSON pointer as a field path: `/spec/containers/0/name` → `spec.containers[0].name`.
pub fn field_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        match segment.parse::<usize>() {
            Ok(i) => path.push_str(&format!("[{i}]")),
            Err(_) if path.is_empty() => path.push_str(&segment),
            Err(_) => path.push_str(&format!(".{segment}")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A StatefulSet as applied with a stop signal, and as an API server without the
    /// ContainerStopSignals gate keeps it (with its defaults added).
    fn applied_and_kept() -> (Value, Value) {
        let applied = json!({"metadata": {"annotations": {"prism.io/applied-hash": "h"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "proxy", "lifecycle": {"stopSignal": "SIGINT", "preStop": {"sleep": {"seconds": 5}}}}
        ]}}}});
        let kept = json!({"metadata": {"annotations": {"prism.io/applied-hash": "h"}, "resourceVersion": "9"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "proxy", "terminationMessagePath": "/dev/termination-log",
             "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}
        ]}}}});
        (applied, kept)
    }

    #[test]
    fn the_fields_the_server_dropped_are_named_and_left_out() {
        let (applied, kept) = applied_and_kept();
        let lost = missing(&applied, &kept);
        assert_eq!(
            lost,
            ["/spec/template/spec/containers/0/lifecycle/stopSignal"]
        );
        assert_eq!(
            field_path(&lost[0]),
            "spec.template.spec.containers[0].lifecycle.stopSignal"
        );
        let rest = without(&applied, &lost);
        assert!(is_subset(&rest, &kept));
        assert!(missing(&rest, &kept).is_empty());
        // Keys with '/' and '~' survive the round trip through a pointer.
        let odd = json!({"metadata": {"annotations": {"a/b~c": "x"}}});
        let lost = missing(&odd, &json!({"metadata": {"annotations": {}}}));
        assert_eq!(lost, ["/metadata/annotations/a~1b~0c"]);
        assert_eq!(
            without(&odd, &lost),
            json!({"metadata": {"annotations": {}}})
        );
        assert_eq!(field_path(&lost[0]), "metadata.annotations.a/b~c");
    }

    #[test]
    fn what_was_dropped_is_kept_per_object_and_content() {
        let dropped = Dropped::default();
        assert_eq!(dropped.of("StatefulSet/ns/a", "h1"), None);
        dropped.record("StatefulSet/ns/a", "h1", vec!["/x".into()]);
        assert_eq!(
            dropped.of("StatefulSet/ns/a", "h1"),
            Some(vec!["/x".into()])
        );
        assert_eq!(dropped.of("StatefulSet/ns/a", "h2"), None, "other content");
        assert_eq!(dropped.of("StatefulSet/ns/b", "h1"), None, "other object");
        dropped.record("StatefulSet/ns/a", "h2", vec![]);
        assert_eq!(dropped.of("StatefulSet/ns/a", "h1"), None, "forgotten");
    }
}
