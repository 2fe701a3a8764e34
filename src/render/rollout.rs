//! The order in which a plugin's new version reaches its shards, shared by both ways of rolling
//! it out: the operator's rollout (one batch at a time, gated on health, rolled back on failure)
//! and, in render mode, Argo CD sync waves on the objects of each shard, so that one sync
//! applies the shards batch by batch and waits for each batch to be healthy.
//!
//! Shards move in name order, at most `spec.rollout.maxUnavailableShards` of a plugin's shards
//! at once. Only plugins with a `spec.rollout` give waves: a fleet without one renders without
//! a single sync-wave annotation.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::Value;

use super::Object;
use crate::api::{PrismPlugin, RolloutPolicy};
use crate::source::Fleet;

/// The annotation Argo CD orders a sync by.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";

/// The order shards of one plugin move in: by name.
pub fn shard_order(a: &str, b: &str) -> Ordering {
    a.cmp(b)
}

/// How many shards of a plugin move at once (`maxUnavailableShards`, at least 1; default 1).
pub fn batch_size(policy: Option<&RolloutPolicy>) -> usize {
    policy
        .and_then(|p| p.max_unavailable_shards)
        .unwrap_or(1)
        .max(1) as usize
}

/// A shard, as waves name it: `(namespace, name)`.
pub type ShardKey = (String, String);

/// The sync wave of every shard that uses a plugin with a rollout policy (waves start at 1).
/// Everything else stays in Argo CD's default wave 0 and is applied first: the PrismPlugins
/// among it, which the shards render from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Waves(BTreeMap<ShardKey, u32>);

impl Waves {
    /// The waves of `fleet`. Shards are taken in namespace, then [`shard_order`]; each gets
    /// the first wave that keeps, for every plugin with a rollout policy it uses, both the
    /// order (never before a shard of that plugin taken earlier) and the batch size (never
    /// more of the plugin's shards in one wave than it allows). For a single plugin this is
    /// exactly the operator's batches: shards `1..=n` in wave 1, the next `n` in wave 2, …
    pub fn of(fleet: &Fleet) -> Self {
        let policies: BTreeMap<(&str, &str), usize> = fleet
            .plugins
            .iter()
            .filter_map(|p| {
                let policy = p.value.spec.rollout.as_ref()?;
                Some((plugin_key(&p.value), batch_size(Some(policy))))
            })
            .collect();
        if policies.is_empty() {
            return Self::default();
        }
        let mut shards: Vec<_> = fleet.shards.iter().map(|s| &s.value).collect();
        shards.sort_by(|a, b| {
            let (an, bn) = (
                a.metadata.namespace.as_deref(),
                b.metadata.namespace.as_deref(),
            );
            an.cmp(&bn)
                .then_with(|| shard_order(&a.name_any(), &b.name_any()))
        });
        // Per plugin: the wave its latest shard went to, and how many of its shards are there.
        let mut latest: BTreeMap<(&str, &str), (u32, usize)> = BTreeMap::new();
        let mut waves = BTreeMap::new();
        for shard in shards {
            let namespace = shard.metadata.namespace.as_deref().unwrap_or_default();
            let mut used: Vec<(&str, &str)> = shard
                .spec
                .plugins
                .iter()
                .map(|p| (namespace, p.name.as_str()))
                .filter(|k| policies.contains_key(k))
                .collect();
            used.sort_unstable();
            used.dedup();
            let Some(wave) = used
                .iter()
                .map(|k| match latest.get(k) {
                    None => 1,
                    Some(&(w, n)) if n < policies[k] => w,
                    Some(&(w, _)) => w + 1,
                })
                .max()
            else {
                continue;
            };
            for k in used {
                let entry = latest.entry(k).or_insert((wave, 0));
                if entry.0 != wave {
                    *entry = (wave, 0);
                }
                entry.1 += 1;
            }
            waves.insert((namespace.to_string(), shard.name_any()), wave);
        }
        Self(waves)
    }

    /// The wave of shard `name` in `namespace`, if it has one.
    pub fn of_shard(&self, namespace: &str, name: &str) -> Option<u32> {
        self.0
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// The shards of `plugin` by wave, for `prism-render explain --rollout`.
    pub fn of_plugin(&self, fleet: &Fleet, plugin: &PrismPlugin) -> BTreeMap<u32, Vec<String>> {
        let mut by_wave: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for shard in super::users_of(fleet, plugin) {
            let namespace = shard.metadata.namespace.as_deref().unwrap_or_default();
            if let Some(wave) = self.of_shard(namespace, &shard.name_any()) {
                by_wave.entry(wave).or_default().push(shard.name_any());
            }
        }
        for shards in by_wave.values_mut() {
            shards.sort_by(|a, b| shard_order(a, b));
        }
        by_wave
    }

    /// Whether no shard has a wave.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn plugin_key(p: &PrismPlugin) -> (&str, &str) {
    (
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Puts `object` in sync wave `wave` (replacing a wave it carried).
pub fn stamp_wave(object: &mut Object, wave: u32) {
    let metadata = object.value["metadata"]
        .as_object_mut()
        .expect("rendered objects have metadata");
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if !annotations.is_object() {
        *annotations = Value::Object(Default::default());
    }
    annotations[SYNC_WAVE_ANNOTATION] = Value::String(wave.to_string());
    object.value = super::objects::sort_keys(std::mem::take(&mut object.value));
}

/// What `prism-render explain --rollout PLUGIN` prints: the plugin's shards wave by wave.
pub fn explain(fleet: &Fleet, query: &str) -> Result<String, String> {
    let (namespace, name) = match query.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, query),
    };
    let found: Vec<&PrismPlugin> = fleet
        .plugins
        .iter()
        .map(|p| &p.value)
        .filter(|p| p.name_any() == name)
        .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
        .collect();
    let plugin = match found.as_slice() {
        [] => return Err(format!("no PrismPlugin named {query:?} in the inputs")),
        [one] => *one,
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                .collect();
            return Err(format!(
                "{query:?} is ambiguous: {}; use namespace/name",
                names.join(", ")
            ));
        }
    };
    let id = format!(
        "PrismPlugin {}/{} {}",
        plugin.namespace().unwrap_or_default(),
        plugin.name_any(),
        plugin.spec.version
    );
    let users = super::users_of(fleet, plugin);
    let Some(policy) = plugin.spec.rollout.as_ref() else {
        return Ok(format!(
            "{id}: no spec.rollout, so no sync waves: a new version reaches its {} shard(s) in one sync\n",
            users.len()
        ));
    };
    if users.is_empty() {
        return Ok(format!("{id}: no shard uses it\n"));
    }
    let waves = Waves::of(fleet).of_plugin(fleet, plugin);
    let mut out = format!(
        "{id}: {} shard(s), at most {} at a time (spec.rollout.maxUnavailableShards), in {} sync wave(s)\n",
        users.len(),
        batch_size(Some(policy)),
        waves.len()
    );
    for (wave, shards) in &waves {
        out.push_str(&format!("  wave {wave}: {}\n", shards.join(", ")));
    }
    out.push_str(&format!(
        "The PrismPlugin itself is in wave 0, before its shards. Argo CD applies wave by wave ({SYNC_WAVE_ANNOTATION}) and starts a wave only when every object of the previous one is healthy.\n"
    ));
    Ok(out)
}

#[cfg(test)]
mod tests;
