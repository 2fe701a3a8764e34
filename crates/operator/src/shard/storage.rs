//! Per-replica volume size changes. `volumeClaimTemplates` of a StatefulSet are immutable, so a
//! larger size is carried out by expanding the existing claims, deleting the StatefulSet while
//! orphaning its pods, and applying it again; a smaller size is refused.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::kit::children::{BeforeApply, Prepared};
use crate::kit::context::Ctx;
use crate::kit::error::Error;
use crate::kit::outcome::Degradation;
use crate::kit::quantity::quantity;
use prism_api::{PrismShard, reason};
use prism_render::render::Object;
use prism_render::render::contract::{PROXY_NAME, selector};

/// The per-replica size a StatefulSet (as JSON) asks for.
pub fn template_size(sts: &Value) -> Option<&str> {
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"].as_str()
}

/// What to do about the volumes when applying `desired` over `live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resize {
    /// Sizes match (or there is nothing live yet).
    None,
    /// Grow every claim to this size, then re-create the StatefulSet.
    Grow(String),
    /// The new size is smaller than the live one: refuse, with a message.
    Refuse(String),
}

/// Compares the volume size of the rendered StatefulSet with the live one.
pub fn plan(desired: &Value, live: Option<&Value>) -> Resize {
    let (Some(want), Some(have)) = (template_size(desired), live.and_then(template_size)) else {
        return Resize::None;
    };
    match (quantity(want), quantity(have)) {
        (Some(w), Some(h)) if w > h => Resize::Grow(want.to_string()),
        (Some(w), Some(h)) if w < h => Resize::Refuse(format!(
            "spec.storage.size {want} is smaller than the {have} the volumes already have; volumes cannot shrink"
        )),
        _ => Resize::None,
    }
}

/// Expands the claims of `sts` (named `<template>-<sts>-<ordinal>`) to `size`, then deletes the
/// StatefulSet orphaning its pods so it can be applied again with the new template.
pub async fn grow(
    client: &Client,
    namespace: &str,
    sts: &str,
    selector: &str,
    size: &str,
) -> Result<usize, Error> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let list = pvcs
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|source| Error::Resize {
            step: "listing volume claims".into(),
            source,
        })?;
    let prefix = prism_render::render::contract::claim_prefix(sts);
    let mut grown = 0;
    for pvc in list.items {
        let name = pvc.metadata.name.clone().unwrap_or_default();
        if !name.starts_with(&prefix) {
            continue;
        }
        let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
        pvcs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Resize {
                step: format!("expanding {name} to {size}"),
                source,
            })?;
        grown += 1;
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    match sets.delete(sts, &orphan).await {
        Ok(_) => Ok(grown),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(grown),
        Err(source) => Err(Error::Resize {
            step: format!("re-creating StatefulSet {sts}"),
            source,
        }),
    }
}

/// The shard controller's step before its StatefulSet is applied: grows the volumes when the
/// rendered size is larger (the StatefulSet is then applied afresh), refuses to shrink them.
pub struct VolumeGrowth<'a>(pub &'a PrismShard);

impl BeforeApply for VolumeGrowth<'_> {
    async fn before_apply(
        &self,
        ctx: &Ctx,
        obj: &Object,
        desired: &Value,
        live: Option<Value>,
    ) -> Prepared {
        if obj.kind != "StatefulSet" {
            return Prepared::Apply(live);
        }
        match plan(desired, live.as_ref()) {
            Resize::None => Prepared::Apply(live),
            Resize::Refuse(why) => {
                let refused = reason::STORAGE_SHRINK_REFUSED;
                ctx.report.event(self.0, true, refused, why.clone()).await;
                Prepared::Skip(Degradation::new(refused, why))
            }
            Resize::Grow(size) => self.grow(ctx, &obj.name, &size).await,
        }
    }
}

impl VolumeGrowth<'_> {
    async fn grow(&self, ctx: &Ctx, sts: &str, size: &str) -> Prepared {
        let shard = self.0;
        let ns = shard.namespace().unwrap_or_default();
        let sel = selector(PROXY_NAME, &shard.name_any())
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        match grow(&ctx.client, &ns, sts, &sel, size).await {
            Ok(n) => {
                ctx.report.metrics.write("PersistentVolumeClaim", "patch");
                let note = format!(
                    "expanded {n} volume claims to {size}; re-creating the StatefulSet with orphaned pods"
                );
                ctx.report
                    .event(shard, false, reason::VOLUMES_EXPANDED, note)
                    .await;
                Prepared::Apply(None)
            }
            Err(e) => {
                ctx.report
                    .event(shard, true, e.reason(), e.to_string())
                    .await;
                Prepared::Skip(Degradation::from(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(size: &str) -> Value {
        json!({"spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": size}}}}]}})
    }

    #[test]
    fn plans_growth_and_refuses_shrinking() {
        assert_eq!(
            plan(&sts("20Gi"), Some(&sts("10Gi"))),
            Resize::Grow("20Gi".into())
        );
        assert_eq!(plan(&sts("10Gi"), Some(&sts("10240Mi"))), Resize::None);
        assert!(
            matches!(plan(&sts("5Gi"), Some(&sts("10Gi"))), Resize::Refuse(m) if m.contains("cannot shrink"))
        );
        assert_eq!(plan(&sts("5Gi"), None), Resize::None);
    }
}
