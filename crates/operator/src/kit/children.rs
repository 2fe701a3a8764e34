//! Applying what an owner renders, for every owner kind: each child is applied with
//! server-side apply only when it changed or drifted, without fighting another writer over it,
//! and the owner's children that are no longer rendered are pruned by their inventory label.
//! What goes wrong comes back as one [`Degradation`] for the owner's Degraded condition.

use std::collections::BTreeSet;

use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::apply;
use super::context::{Ctx, owner_ref};
use super::dropped;
use super::error::Error;
use super::outcome::Degradation;
use prism_api::{PrismPlugin, PrismShard, reason};
use prism_render::render::Object;
use prism_render::render::contract::{PLUGIN_LABEL, SHARD_LABEL, missing_crd};

/// Annotation that allows pruning every object of an owner.
pub const ALLOW_EMPTY_PRUNE: &str = "prism.io/allow-empty-prune";

/// An owner of rendered children.
pub trait Owner: Resource<DynamicType = ()> {
    /// The label that marks its children (value: the owner's name); pruning goes by it.
    const INVENTORY_LABEL: &'static str;
}

impl Owner for PrismShard {
    const INVENTORY_LABEL: &'static str = SHARD_LABEL;
}

impl Owner for PrismPlugin {
    const INVENTORY_LABEL: &'static str = PLUGIN_LABEL;
}

/// How a rendered object is to be applied, as decided by a [`BeforeApply`] hook.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Apply it over this live object (`None`: apply regardless of the cache).
    Apply(Option<Value>),
    /// Leave it as it is (it is still kept from pruning), reporting why.
    Skip(Degradation),
}

/// A step an owner's controller runs before one of its objects is applied.
pub trait BeforeApply: Sync {
    /// Decides how `desired` (rendered from `obj`) is applied over `live`.
    fn before_apply(
        &self,
        ctx: &Ctx,
        obj: &Object,
        desired: &Value,
        live: Option<Value>,
    ) -> impl Future<Output = Prepared> + Send;
}

/// No step: every object is applied over its live state.
impl BeforeApply for () {
    async fn before_apply(&self, _: &Ctx, _: &Object, _: &Value, live: Option<Value>) -> Prepared {
        Prepared::Apply(live)
    }
}

/// Applies `objects` for `owner` where they changed, then prunes the owner's children that are
/// no longer rendered. Returns the last problem met, for the owner's Degraded condition.
pub async fn apply_and_prune<K: Owner>(
    ctx: &Ctx,
    owner: &K,
    objects: &[Object],
    hook: &impl BeforeApply,
) -> Result<Option<Degradation>, Error> {
    let ns = owner.namespace().unwrap_or_default();
    let reference = owner_ref(owner);
    let mut degraded = None;
    let mut keep = BTreeSet::new();
    for obj in objects {
        keep.insert((obj.kind.clone(), obj.name.clone()));
        let Some(ar) = apply::api_resource(&obj.api_version, &obj.kind) else {
            continue;
        };
        if !ctx.served.has(&obj.kind) {
            let why = missing_crd(&obj.kind, &obj.id()).unwrap_or_default();
            degraded = Some(Degradation::new(reason::CRD_MISSING, why));
            continue;
        }
        let desired = apply::desired(obj, &reference);
        let live = ctx
            .view
            .child(&obj.kind, &ns, &obj.name)
            .map(|o| as_json(&o));
        let live = match hook.before_apply(ctx, obj, &desired, live).await {
            Prepared::Apply(live) => live,
            Prepared::Skip(problem) => {
                degraded = Some(problem);
                continue;
            }
        };
        match apply_child(ctx, &ar, &desired, live.as_ref()).await? {
            Applied::Applied => tracing::info!(child = %obj.id(), "applied"),
            Applied::Unchanged => {}
            // Reported in the Degraded condition; the event goes out when the conflict begins
            // (status::write), not on every reconcile while it lasts.
            Applied::Contested(why) => {
                degraded = Some(Degradation::new(reason::FIELD_CONFLICT, why));
            }
            Applied::Dropped { applied, why } => {
                if applied {
                    tracing::info!(child = %obj.id(), "applied");
                }
                degraded = Some(Degradation::new(reason::FIELDS_DROPPED, why));
            }
        }
    }
    if let Err(e) = prune(ctx, owner, &keep).await {
        degraded = Some(Degradation::from(&e));
    }
    Ok(degraded)
}

/// Deletes the children of `owner` not in `keep`, with an event for each.
async fn prune<K: Owner>(
    ctx: &Ctx,
    owner: &K,
    keep: &BTreeSet<(String, String)>,
) -> Result<(), Error> {
    let candidates = ctx.view.owned(
        &owner.namespace().unwrap_or_default(),
        K::INVENTORY_LABEL,
        &owner.name_any(),
        &owner.uid().unwrap_or_default(),
    );
    let allow_empty = owner
        .annotations()
        .get(ALLOW_EMPTY_PRUNE)
        .map(String::as_str)
        == Some("true");
    for deleted in apply::prune(&ctx.client, &candidates, keep, allow_empty).await? {
        ctx.report.metrics.write("Object", "delete");
        let note = format!("deleted {deleted}: no longer rendered");
        ctx.report.event(owner, false, reason::PRUNED, note).await;
    }
    Ok(())
}

/// A cached object as JSON, the form it is compared with what is rendered in.
pub fn as_json(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).expect("objects serialize")
}

/// What applying a child came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The live object already matched.
    Unchanged,
    /// It was applied.
    Applied,
    /// Something else keeps changing fields we set; the message names it and the fields.
    Contested(String),
    /// The API server drops fields we set (a feature it has not enabled): the message names
    /// them. `applied`: it was applied now, and that is how the fields were found dropped.
    Dropped { applied: bool, why: String },
}

/// Applies a child when it differs from `live`, without fighting: when the same content had
/// to be applied again and again within a minute (another writer keeps changing fields we
/// set), the conflict is reported instead of applied, with one more try a minute later.
/// Fields the API server dropped from this content when it was applied are left out of the
/// comparison, and reported.
pub async fn apply_child(
    ctx: &Ctx,
    ar: &ApiResource,
    desired: &Value,
    live: Option<&Value>,
) -> kube::Result<Applied> {
    let id = format!(
        "{}/{}/{}",
        ar.kind,
        desired["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default(),
        desired["metadata"]["name"].as_str().unwrap_or_default()
    );
    let hash = apply::applied_hash(desired);
    let lost = ctx.dropped.of(&id, &hash);
    let kept = lost
        .as_ref()
        .map(|fields| dropped::without(desired, fields));
    let compared = kept.as_ref().unwrap_or(desired);
    let unchanged = |lost: Option<Vec<String>>| match lost {
        Some(fields) => Applied::Dropped {
            applied: false,
            why: dropped_fields(&id, &fields),
        },
        None => Applied::Unchanged,
    };
    if !apply::needs_apply(compared, live) {
        return Ok(unchanged(lost));
    }
    let cached = live.and_then(|l| l["metadata"]["resourceVersion"].as_str());
    if ctx.unseen.applied(&id, &hash, cached) {
        tracing::debug!(child = %id, "applied already; the cache has not caught up");
        return Ok(unchanged(lost));
    }
    if ctx.contests.reapplied(&id, hash.clone()) {
        // A cache catching up (after a creation, or while its watch reconnects) looks the
        // same from here: the API server's own copy decides whether another writer is there.
        let current = apply::get(&ctx.client, ar, desired).await?;
        if current.is_some_and(|c| !apply::needs_apply(compared, Some(&as_json(&c)))) {
            ctx.contests.forget(&id);
            return Ok(unchanged(lost));
        }
        let why = match apply::apply(&ctx.client, ar, desired, false, true).await {
            Err(kube::Error::Api(e)) if e.code == 409 => e.message,
            _ => "the object keeps changing after every apply".to_string(),
        };
        return Ok(Applied::Contested(format!("{id}: {why}")));
    }
    let applied = apply::apply(&ctx.client, ar, desired, true, false).await?;
    ctx.report.metrics.write(&ar.kind, "apply");
    let now = applied.metadata.resource_version.as_deref();
    ctx.unseen.record(&id, &hash, cached, now);
    let lost = dropped::missing(&apply::body(desired), &as_json(&applied));
    ctx.dropped.record(&id, &hash, lost.clone());
    Ok(match lost.is_empty() {
        true => Applied::Applied,
        false => Applied::Dropped {
            applied: true,
            why: dropped_fields(&id, &lost),
        },
    })
}

/// Why object `id` is degraded when the API server drops `fields` (JSON pointers) of it.
fn dropped_fields(id: &str, fields: &[String]) -> String {
    let paths: Vec<String> = fields.iter().map(|f| dropped::field_path(f)).collect();
    format!(
        "{id}: the API server does not keep {} as applied (a feature it has not enabled, or \
         a mutating admission webhook)",
        paths.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::context::for_tests;
    use crate::kit::mock_api::{self, Call, lines};
    use crate::view::fixture::{Objects, child, shard};
    use serde_json::json;

    /// The API answers applies with the object sent, deletes and events with success.
    fn answer(call: &Call) -> (u16, Value) {
        match call.method.as_str() {
            "PATCH" => (200, call.body.clone()),
            "POST" => (201, call.body.clone()),
            _ => mock_api::status(200, "", ""),
        }
    }

    fn owner() -> PrismShard {
        serde_json::from_value(shard("team", "s", 0, None)).unwrap()
    }

    fn rendered(name: &str) -> Object {
        Object::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "team", "labels": {SHARD_LABEL: "s"}},
            "data": {"k": "v"},
        }))
    }

    /// What is rendered is applied with server-side apply as the operator's field manager;
    /// what the owner has but no longer renders is deleted, and only that: another owner's
    /// object with the same label stays.
    #[tokio::test]
    async fn rendered_children_are_applied_and_the_rest_of_the_owners_pruned() {
        let view = Objects(vec![
            shard("team", "s", 0, None),
            child("ConfigMap", "team", "gone", (SHARD_LABEL, "s"), "team-s"),
            child(
                "ConfigMap",
                "team",
                "others",
                (SHARD_LABEL, "s"),
                "someone-else",
            ),
        ])
        .view(None);
        let (client, calls) = mock_api::serve(answer);
        let ctx = for_tests(client, view);
        let degraded = apply_and_prune(&ctx, &owner(), &[rendered("kept")], &())
            .await
            .unwrap();
        assert_eq!(degraded, None);
        let seen = lines(&calls);
        assert!(
            seen.contains(&"PATCH /api/v1/namespaces/team/configmaps/kept".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"DELETE /api/v1/namespaces/team/configmaps/gone".to_string()),
            "{seen:?}"
        );
        assert!(!seen.iter().any(|l| l.ends_with("/others")), "{seen:?}");
        let calls = calls.lock().unwrap();
        let apply = calls.iter().find(|c| c.method == "PATCH").unwrap();
        assert!(
            apply.uri.contains("fieldManager=prism-operator"),
            "{}",
            apply.uri
        );
        assert!(apply.uri.contains("force=true"), "{}", apply.uri);
        let refs = &apply.body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (refs["uid"].as_str(), refs["controller"].as_bool()),
            (Some("team-s"), Some(true))
        );
        let event = calls
            .iter()
            .find(|c| c.method == "POST")
            .expect("a Pruned event");
        assert_eq!(event.body["reason"], "Pruned");
    }

    /// An owner that renders nothing while it has children is refused the prune: nothing is
    /// deleted, and the owner is degraded with the reason.
    #[tokio::test]
    async fn pruning_everything_is_refused() {
        let view = Objects(vec![
            shard("team", "s", 0, None),
            child("ConfigMap", "team", "only", (SHARD_LABEL, "s"), "team-s"),
        ])
        .view(None);
        let (client, calls) = mock_api::serve(answer);
        let ctx = for_tests(client, view);
        let degraded = apply_and_prune(&ctx, &owner(), &[], &()).await.unwrap();
        let degraded = degraded.expect("degraded");
        assert_eq!(degraded.reason, reason::PRUNE_REFUSED);
        assert!(degraded.message.contains("refusing to prune all 1 objects"));
        assert!(lines(&calls).iter().all(|l| !l.starts_with("DELETE")));
    }

    /// Fields the API server drops (here `data.gated`) make the child degraded, naming them;
    /// the child is applied once, not at every reconcile.
    #[tokio::test]
    async fn fields_the_server_drops_are_reported_and_not_applied_again() {
        let mut obj = rendered("gated");
        obj.value["data"]["gated"] = json!("on");
        let desired = apply::desired(&obj, &owner_ref(&owner()));
        let mut kept = desired.clone();
        kept["data"].as_object_mut().unwrap().remove("gated");
        let view = Objects(vec![shard("team", "s", 0, None), kept]).view(None);
        let (client, calls) = mock_api::serve(|call: &Call| match call.method.as_str() {
            "PATCH" => {
                let mut body = call.body.clone();
                body["data"].as_object_mut().unwrap().remove("gated");
                (200, body)
            }
            _ => answer(call),
        });
        let ctx = for_tests(client, view);
        for _ in 0..3 {
            let degraded = apply_and_prune(&ctx, &owner(), &[obj.clone()], &())
                .await
                .unwrap()
                .expect("degraded");
            assert_eq!(degraded.reason, reason::FIELDS_DROPPED);
            assert!(
                degraded
                    .message
                    .contains("ConfigMap/team/gated: the API server does not keep data.gated"),
                "{}",
                degraded.message
            );
        }
        let patches = lines(&calls)
            .into_iter()
            .filter(|l| l.starts_with("PATCH"))
            .count();
        assert_eq!(patches, 1, "{:?}", lines(&calls));
    }

    /// An API whose applies and reads go to one stored object per path, each write a new
    /// `resourceVersion`: the API server, while the operator's cache still lags behind it.
    fn storing() -> impl Fn(&Call) -> (u16, Value) + Send + 'static {
        let stored = std::sync::Mutex::new(std::collections::HashMap::<String, Value>::new());
        move |call: &Call| {
            let path = call.uri.split('?').next().unwrap_or_default().to_string();
            let mut stored = stored.lock().unwrap();
            match call.method.as_str() {
                "PATCH" if !call.uri.contains("dryRun") => {
                    let mut body = call.body.clone();
                    body["metadata"]["resourceVersion"] = json!(format!("{}", 11 + stored.len()));
                    stored.insert(path, body.clone());
                    (200, body)
                }
                "GET" => match stored.get(&path) {
                    Some(object) => (200, object.clone()),
                    None => mock_api::status(404, "NotFound", "not found"),
                },
                _ => answer(call),
            }
        }
    }

    /// Reconciles that run before the watch brings the operator's own apply back (another
    /// object's event, a watch reconnecting) neither apply the same content again over the
    /// object the cache still holds, nor take the lag for another writer: no FieldConflict.
    #[tokio::test]
    async fn a_cache_behind_the_operators_own_applies_is_not_a_rival() {
        let mut old = rendered("lagging");
        old.value["data"]["k"] = json!("old");
        let mut cached = apply::desired(&old, &owner_ref(&owner()));
        cached["metadata"]["resourceVersion"] = json!("10");
        let view = Objects(vec![shard("team", "s", 0, None), cached]).view(None);
        let (client, calls) = mock_api::serve(storing());
        let ctx = for_tests(client, view);
        let objects = [rendered("lagging"), rendered("created")];
        for round in 0..6 {
            let degraded = apply_and_prune(&ctx, &owner(), &objects, &())
                .await
                .unwrap();
            assert_eq!(degraded, None, "round {round}: {:?}", lines(&calls));
        }
        let applies = |name: &str| {
            let path = format!("PATCH /api/v1/namespaces/team/configmaps/{name}");
            lines(&calls).iter().filter(|l| **l == path).count()
        };
        assert_eq!(applies("lagging"), 1, "{:?}", lines(&calls));
        // A creation leaves no older version to recognise in the cache: it is applied again
        // until the contest check asks the API server, which holds it as rendered.
        assert!(
            lines(&calls).contains(&"GET /api/v1/namespaces/team/configmaps/created".to_string()),
            "{:?}",
            lines(&calls)
        );
    }

    /// A child that is cached as rendered is not applied again.
    #[tokio::test]
    async fn an_unchanged_child_is_not_applied() {
        // What the API server keeps of an earlier apply: the object as sent.
        let cached = apply::desired(&rendered("same"), &owner_ref(&owner()));
        let view = Objects(vec![shard("team", "s", 0, None), cached]).view(None);
        let (client, calls) = mock_api::serve(answer);
        let ctx = for_tests(client, view);
        let desired = apply::desired(&rendered("same"), &owner_ref(&owner()));
        let live = ctx
            .view
            .child("ConfigMap", "team", "same")
            .map(|o| as_json(&o));
        assert!(
            !apply::needs_apply(&desired, live.as_ref()),
            "fixture drifted"
        );
        apply_and_prune(&ctx, &owner(), &[rendered("same")], &())
            .await
            .unwrap();
        assert!(
            lines(&calls).iter().all(|l| !l.starts_with("PATCH")),
            "{:?}",
            lines(&calls)
        );
    }
}
