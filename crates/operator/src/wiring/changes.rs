//! One watch per kind. It feeds the cache every reconciler reads, and the same events, once
//! the cache holds them, are what every controller triggers on. A controller with a watch of
//! its own would keep a second cache of its kind (with every object's `managedFields`) and
//! decode a second copy of every event; with three controllers and a dozen child kinds that
//! was three dozen watches for a dozen kinds.

use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{Lookup, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};

/// A change of a watched object, published once the cache holds it.
pub enum Change<K> {
    /// Created, updated, or (re)listed: the object as cached.
    Applied(Arc<K>),
    /// Deleted: the object as last seen.
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Applied(o) => Self::Applied(o.clone()),
            Self::Deleted(o) => Self::Deleted(o.clone()),
        }
    }
}

impl<K> Change<K> {
    /// The object that changed.
    pub fn object(&self) -> &K {
        match self {
            Self::Applied(o) | Self::Deleted(o) => o,
        }
    }
}

/// The subscribers to one kind's changes.
pub struct Changes<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>>,
}

impl<K> Clone for Changes<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K> Changes<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn new(store: Store<K>) -> Self {
        Self {
            store,
            subscribers: Arc::default(),
        }
    }

    /// Every change from now on, after one `Applied` for each object already cached (as a
    /// controller's own watch would list them when it starts). The queue is unbounded; it
    /// holds the cache's own objects, not copies.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (tx, rx) = mpsc::unbounded();
        let mut subscribers = self.subscribers.lock().expect("not poisoned");
        for obj in self.store.state() {
            let _ = tx.unbounded_send(Change::Applied(obj));
        }
        subscribers.push(tx);
        rx
    }

    fn publish(&self, change: Change<K>) {
        self.subscribers
            .lock()
            .expect("not poisoned")
            .retain(|tx| tx.unbounded_send(change.clone()).is_ok());
    }
}

/// The cache of `events` (each object passed through `strip` first), its changes, and the
/// future that keeps both fed (not started).
pub fn reflect<K>(
    writer: Writer<K>,
    dyntype: <K as Resource>::DynamicType,
    events: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    strip: impl FnMut(&mut K) + Send + 'static,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (Store<K>, Changes<K>, BoxFuture<'static, ()>)
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let store = writer.as_reader();
    let changes = Changes::new(store.clone());
    let publish = changes.clone();
    let cached = store.clone();
    let task = events.modify(strip).reflect(writer).for_each(move |event| {
        if let Ok(event) = &event {
            observe(event);
        }
        match event {
            Ok(watcher::Event::Apply(obj)) => {
                let key = obj.to_object_ref(dyntype.clone());
                let obj = cached.get(&key).unwrap_or_else(|| Arc::new(obj));
                publish.publish(Change::Applied(obj));
            }
            Ok(watcher::Event::Delete(obj)) => publish.publish(Change::Deleted(Arc::new(obj))),
            // A (re)list: the cache now holds exactly what was listed.
            Ok(watcher::Event::InitDone) => {
                for obj in cached.state() {
                    publish.publish(Change::Applied(obj));
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            // Retried with backoff; said, so that a cache that cannot fill is not silent.
            Err(e) => {
                tracing::warn!(kind = %K::kind(&dyntype), error = %e, "watch failed; retrying")
            }
        }
        futures::future::ready(())
    });
    (store, changes, Box::pin(task))
}

/// Objects created, updated or listed, as a controller's own kind is triggered.
pub fn applied<K: Clone + Send + Sync + 'static>(
    changes: mpsc::UnboundedReceiver<Change<K>>,
) -> impl Stream<Item = watcher::Result<K>> + Send + 'static {
    changes.filter_map(|change| {
        futures::future::ready(match change {
            Change::Applied(obj) => Some(Ok((*obj).clone())),
            Change::Deleted(_) => None,
        })
    })
}

/// Every object that changed or went, as `view` of it (what a mapper to another kind reads).
pub fn touched<K: Send + Sync + 'static, T>(
    changes: mpsc::UnboundedReceiver<Change<K>>,
    view: impl Fn(&K) -> T + Send + 'static,
) -> impl Stream<Item = watcher::Result<T>> + Send + 'static {
    changes.map(move |change| Ok(view(change.object())))
}
