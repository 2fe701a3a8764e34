//! Kubernetes Events (`events.k8s.io/v1`) about the operator's objects: one Event per object,
//! type, reason and note, a repeat within six minutes counted in that Event's series.
//!
//! kube's `Recorder` counts a repeat by object, type, reason and action only: a second event
//! with the same reason and another note ("shard s2 moves …" after "shard s1 moves …", an
//! admin failover back after one forth) would be counted into the first Event and its note
//! never shown. Here the note is part of what makes an Event the same.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use serde_json::json;
use tokio::sync::Mutex;

/// How long a published Event takes repeats into its series.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two events the same Event: the object, type, reason and note.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    object: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    warning: bool,
    reason: String,
    note: String,
}

/// An Event written, and its series so far.
#[derive(Debug, Clone)]
struct Written {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// Publishes Events as the operator (its `reporter`).
pub struct Events {
    client: Client,
    reporter: Reporter,
    written: Mutex<HashMap<Key, Written>>,
}

impl Events {
    /// Events written through `client` as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            written: Mutex::default(),
        }
    }

    /// Publishes an event about `regarding`: a new Event, or the next count of the same one
    /// (same object, type, reason and note) written in the last six minutes.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            object: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            warning,
            reason: reason.to_string(),
            note: note.to_string(),
        };
        let mut written = self.written.lock().await;
        written.retain(|_, w| now.duration_since(w.last).unsigned_abs() < SERIES_WINDOW);
        if let Some(w) = written.get_mut(&key) {
            let count = w.count + 1;
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            let api: Api<Event> = Api::namespaced(self.client.clone(), &w.namespace);
            let patch = json!({"series": series});
            api.patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            w.count = count;
            w.last = now;
            return Ok(());
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event = self.event(regarding, &key, &namespace, now);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = api.create(&PostParams::default(), &event).await?;
        written.insert(
            key,
            Written {
                name: created.metadata.name.unwrap_or_default(),
                namespace,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    fn event(
        &self,
        regarding: &ObjectReference,
        key: &Key,
        namespace: &str,
        now: Timestamp,
    ) -> Event {
        let instance = self.reporter.instance.clone();
        Event {
            metadata: ObjectMeta {
                // Unique per object and moment, as Kubernetes names its own Events.
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or("object"),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            action: Some("Reconcile".into()),
            event_time: Some(MicroTime(now)),
            note: Some(key.note.clone()),
            reason: Some(key.reason.clone()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(instance.unwrap_or_else(|| self.reporter.controller.clone())),
            type_: Some(if key.warning { "Warning" } else { "Normal" }.into()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::mock_api;

    fn shard() -> ObjectReference {
        ObjectReference {
            api_version: Some("prism.io/v1beta1".into()),
            kind: Some("PrismPlugin".into()),
            name: Some("pg".into()),
            namespace: Some("team".into()),
            uid: Some("u1".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn another_note_is_another_event_and_a_repeat_counts_in_its_series() {
        let (client, calls) = mock_api::serve(|call| match call.method.as_str() {
            // The API server answers a create with the object, named as sent.
            "POST" => (201, call.body.clone()),
            _ => (200, json!({})),
        });
        let events = Events::new(
            client,
            Reporter {
                controller: "prism-operator".into(),
                instance: Some("pod-a".into()),
            },
        );
        let r = shard();
        events
            .publish(&r, false, "ShardUpdating", "shard s1 moves")
            .await
            .unwrap();
        events
            .publish(&r, false, "ShardUpdating", "shard s2 moves")
            .await
            .unwrap();
        events
            .publish(&r, false, "ShardUpdating", "shard s1 moves")
            .await
            .unwrap();
        events
            .publish(&r, true, "ShardUpdating", "shard s1 moves")
            .await
            .unwrap();
        let seen = calls.lock().unwrap();
        let methods: Vec<&str> = seen.iter().map(|c| c.method.as_str()).collect();
        assert_eq!(methods, ["POST", "POST", "PATCH", "POST"]);
        assert_eq!(seen[0].body["note"], "shard s1 moves");
        assert_eq!(seen[1].body["note"], "shard s2 moves");
        assert_eq!(seen[0].body["reportingInstance"], "pod-a");
        assert_eq!(seen[3].body["type"], "Warning");
        // The repeat names the first Event and counts two.
        let first = seen[0].body["metadata"]["name"].as_str().unwrap();
        assert!(
            seen[2]
                .uri
                .contains(&format!("/namespaces/team/events/{first}")),
            "{}",
            seen[2].uri
        );
        assert_eq!(seen[2].body["series"]["count"], 2);
    }
}
