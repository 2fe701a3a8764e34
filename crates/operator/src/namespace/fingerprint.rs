//! What the last upsert of each namespace sent, so that a reconcile that changes nothing
//! admin would see makes no call until the resync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use prism_api::{PrismNamespace, PrismShard};

/// A fingerprint of everything an upsert sends or depends on, but the Secret's value (read at
/// each upsert; a changed Secret reaches admin with the next resync): the namespace's spec
/// generation, its shard and the shard's spec generation, the admin endpoints, the proxies that
/// admin knows (`admin_epoch`, which moves with every proxy it accepts, of any shard) and the
/// ready proxy pods.
pub fn push_inputs(
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: Option<&str>,
    admin_epoch: u64,
    pods: &[Arc<Pod>],
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (ns.uid(), ns.metadata.generation).hash(&mut hasher);
    (
        shard.uid(),
        shard.metadata.generation,
        endpoints,
        admin_epoch,
    )
        .hash(&mut hasher);
    for pod in pods {
        (pod.name_any(), pod.uid()).hash(&mut hasher);
    }
    hasher.finish()
}

/// The fingerprint of the last upsert of each namespace (`Kind/namespace/name`), and when.
#[derive(Default)]
pub struct Pushes(Mutex<HashMap<String, (u64, Instant)>>);

impl Pushes {
    /// Records that the namespace `key` was upserted into admin with `inputs`.
    pub fn record(&self, key: &str, inputs: u64) {
        self.0
            .lock()
            .expect("not poisoned")
            .insert(key.to_string(), (inputs, Instant::now()));
    }

    /// Forgets the last upsert of the namespace `key` (it is being deleted).
    pub fn forget(&self, key: &str) {
        self.0.lock().expect("not poisoned").remove(key);
    }

    /// Whether the namespace `key` was upserted with the same `inputs` less than `within` ago.
    pub fn recent(&self, key: &str, inputs: u64, within: Duration) -> bool {
        self.0
            .lock()
            .expect("not poisoned")
            .get(key)
            .is_some_and(|(last, at)| *last == inputs && at.elapsed() < within)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upsert_is_recent_only_with_the_same_inputs_and_within_the_period() {
        let pushes = Pushes::default();
        assert!(!pushes.recent("n/a", 1, Duration::from_secs(60)));
        pushes.record("n/a", 1);
        assert!(pushes.recent("n/a", 1, Duration::from_secs(60)));
        assert!(!pushes.recent("n/a", 2, Duration::from_secs(60)));
        assert!(!pushes.recent("n/a", 1, Duration::ZERO));
        pushes.forget("n/a");
        assert!(!pushes.recent("n/a", 1, Duration::from_secs(60)));
    }
}
