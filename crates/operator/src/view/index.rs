//! A secondary index over one kind's cache, kept by applying the same watch events the cache
//! applies: objects by a key they derive (namespaces by name, shards by admin endpoint), so a
//! lookup costs the matches, not a scan of the kind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

/// `namespace/name` of an indexed object.
pub type Key = String;

/// Derives the keys an object is found by.
pub type KeysOf<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// Objects by derived key; cheap to clone (one shared state).
pub struct Index<K> {
    keys_of: KeysOf<K>,
    state: Arc<RwLock<State>>,
}

impl<K> Clone for Index<K> {
    fn clone(&self) -> Self {
        Self {
            keys_of: self.keys_of.clone(),
            state: self.state.clone(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Objects (`namespace/name`) by derived key.
    by_key: HashMap<String, BTreeSet<Key>>,
    /// Derived keys by object, to drop the old ones when an object changes.
    keys: HashMap<Key, Vec<String>>,
    /// Objects of a relist in progress, swapped in when it is done.
    relist: Option<BTreeMap<Key, Vec<String>>>,
}

impl State {
    fn remove(&mut self, object: &str) {
        for key in self.keys.remove(object).unwrap_or_default() {
            if let Some(objects) = self.by_key.get_mut(&key) {
                objects.remove(object);
                if objects.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, object: Key, keys: Vec<String>) {
        self.remove(&object);
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(object.clone());
        }
        self.keys.insert(object, keys);
    }
}

impl<K: ResourceExt> Index<K> {
    /// An empty index of the keys `keys_of` derives.
    pub fn new(keys_of: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) -> Self {
        Self {
            keys_of: Arc::new(keys_of),
            state: Arc::default(),
        }
    }

    /// Applies one watch event, as the cache does.
    pub fn apply(&self, event: &Event<K>) {
        let mut state = self.state.write().expect("not poisoned");
        match event {
            Event::Apply(obj) => state.insert(key(obj), (self.keys_of)(obj)),
            Event::Delete(obj) => state.remove(&key(obj)),
            Event::Init => state.relist = Some(BTreeMap::new()),
            Event::InitApply(obj) => {
                let keys = (self.keys_of)(obj);
                state.relist.get_or_insert_default().insert(key(obj), keys);
            }
            Event::InitDone => {
                let listed = state.relist.take().unwrap_or_default();
                state.by_key.clear();
                state.keys.clear();
                for (object, keys) in listed {
                    state.insert(object, keys);
                }
            }
        }
    }

    /// The objects (`namespace/name`) found by `key`, sorted.
    pub fn get(&self, key: &str) -> Vec<Key> {
        let state = self.state.read().expect("not poisoned");
        state
            .by_key
            .get(key)
            .map(|objects| objects.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// `namespace/name` of an object.
pub fn key<K: ResourceExt>(obj: &K) -> Key {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(ns: &str, name: &str, tag: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm.metadata.labels = Some([("tag".to_string(), tag.to_string())].into());
        cm
    }

    fn by_tag() -> Index<ConfigMap> {
        Index::new(|c: &ConfigMap| {
            c.labels()
                .get("tag")
                .map(|t| t.split(',').map(String::from).collect())
                .unwrap_or_default()
        })
    }

    #[test]
    fn changes_move_an_object_between_keys_and_deletes_drop_it() {
        let index = by_tag();
        index.apply(&Event::Apply(cm("a", "x", "red")));
        index.apply(&Event::Apply(cm("b", "y", "red,blue")));
        assert_eq!(index.get("red"), ["a/x", "b/y"]);
        assert_eq!(index.get("blue"), ["b/y"]);
        index.apply(&Event::Apply(cm("a", "x", "blue")));
        assert_eq!(index.get("red"), ["b/y"]);
        assert_eq!(index.get("blue"), ["a/x", "b/y"]);
        index.apply(&Event::Delete(cm("b", "y", "red,blue")));
        assert_eq!(index.get("blue"), ["a/x"]);
        assert!(index.get("red").is_empty());
    }

    #[test]
    fn a_relist_replaces_everything_once_it_is_done() {
        let index = by_tag();
        index.apply(&Event::Apply(cm("a", "gone", "red")));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(cm("a", "new", "red")));
        // Until the relist is done, lookups see the old state, as the cache does.
        assert_eq!(index.get("red"), ["a/gone"]);
        index.apply(&Event::InitDone);
        assert_eq!(index.get("red"), ["a/new"]);
    }
}
