//! A render's objects as the text that is written: a YAML stream (`---` before every
//! document) or a `v1` `List` in JSON, and a render held as a YAML stream until it is known to
//! be good.

use std::sync::Mutex;

use serde_json::Value;

use super::{Spool, yaml};
use crate::error::{Diagnostic, Diagnostics};
use crate::render::{Object, ObjectId, OrderKey, Renderer};
use crate::source::Fleet;

/// A render as a YAML stream waiting to be written, and the ids of its objects in output order.
#[derive(Default)]
pub struct YamlStream {
    /// The documents.
    pub spool: Spool,
    /// What they are.
    pub ids: Vec<ObjectId>,
}

impl YamlStream {
    /// Renders `fleet` into a stream; nothing of it is written until the caller writes it.
    pub fn render(renderer: &Renderer, fleet: &Fleet) -> Result<Self, Diagnostics> {
        let spool = Mutex::new(Ok(Spool::default()));
        let ids = renderer.render_fleet_to(fleet, |o| {
            // Written outside the lock, so that threads write YAML side by side.
            let mut doc = Vec::new();
            write_yaml_document(&mut doc, &o);
            let key = OrderKey::new(&o.kind, &o.namespace, &o.name);
            let mut spool = spool.lock().expect("not poisoned");
            if let Ok(s) = spool.as_mut()
                && let Err(e) = s.push(key, &doc)
            {
                *spool = Err(e);
            }
        })?;
        let spool = spool.into_inner().expect("not poisoned").map_err(|e| {
            Diagnostics::from(Diagnostic::new(
                "prism-render",
                0,
                "",
                format!("holding the output in a temporary file: {e}"),
            ))
        })?;
        Ok(Self { spool, ids })
    }
}

/// The whole fleet as one YAML stream (`---` before every document).
pub fn to_yaml_stream(objects: &[Object]) -> String {
    let mut out = Vec::new();
    for o in objects {
        write_yaml_document(&mut out, o);
    }
    String::from_utf8(out).expect("YAML is UTF-8")
}

/// One object as a document of a YAML stream: `---` and its YAML.
pub fn write_yaml_document(out: &mut Vec<u8>, o: &Object) {
    out.extend_from_slice(b"---\n");
    yaml::write_document(out, &o.value);
}

/// The whole fleet as a `v1` `List` in JSON.
pub fn to_json_list(objects: &[Object]) -> String {
    let items: Vec<&Value> = objects.iter().map(|o| &o.value).collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut s = serde_json::to_string_pretty(&list).expect("objects serialize");
    s.push('\n');
    s
}
