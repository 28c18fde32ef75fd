//! The object store: one global, etcd-like resourceVersion counter, atomic read-modify-write,
//! a bounded history of changes for watches and consistent snapshots, and change notification.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::watch;

/// Where an object lives: storage resource (`group/plural`), namespace (empty when
/// cluster-scoped) and name. Ordered so that one resource's objects are contiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        Key {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed change. `object` is the new state (for a deletion, the last state stamped with
/// the deletion's resourceVersion); `prev` the state before it.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub key: Key,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
}

/// What a mutation wants done with its key.
pub enum Mutation {
    Put(Value),
    Delete,
    /// Nothing changes; the current object is the result.
    Keep,
}

pub type Objects = BTreeMap<Key, Arc<Value>>;

/// Objects of one list, in key order, with the list's resourceVersion.
pub type Listed = (Vec<(Key, Arc<Value>)>, u64);

/// A resourceVersion that the retained history no longer covers.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    /// Every change after this resourceVersion is still retained.
    pub floor: u64,
}

struct Inner {
    objects: Objects,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    floor: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    history_limit: usize,
    notify: watch::Sender<u64>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Store {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                rv: 1,
                history: VecDeque::new(),
                floor: 1,
            }),
            history_limit,
            notify: watch::channel(1).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another request panicked mid-way; the map itself is intact.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seeds objects outside the history (like data a real server restored before its watch
    /// cache started): watches from before this point get `410 Gone`.
    pub fn seed(&self, objects: Vec<(Key, Value)>) {
        let mut inner = self.lock();
        for (key, mut obj) in objects {
            inner.rv += 1;
            set_resource_version(&mut obj, inner.rv);
            inner.objects.insert(key, Arc::new(obj));
        }
        inner.floor = inner.rv;
        let rv = inner.rv;
        drop(inner);
        self.notify.send_replace(rv);
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.lock().objects.get(key).cloned()
    }

    /// Objects of one storage resource (optionally one namespace) at the current state, or at
    /// resourceVersion `at` rebuilt from history. Returns them with the list's resourceVersion.
    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        at: Option<u64>,
    ) -> Result<Listed, Compacted> {
        let inner = self.lock();
        let in_scope =
            |k: &Key| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns);
        let mut current: BTreeMap<Key, Arc<Value>> = range_of(&inner.objects, resource)
            .filter(|(k, _)| in_scope(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rv = match at {
            Some(at) if at < inner.rv => {
                if at < inner.floor {
                    return Err(Compacted { floor: inner.floor });
                }
                // Undo every later change, newest first.
                for ev in inner.history.iter().rev().take_while(|e| e.rv > at) {
                    if !in_scope(&ev.key) {
                        continue;
                    }
                    match &ev.prev {
                        Some(prev) => current.insert(ev.key.clone(), prev.clone()),
                        None => current.remove(&ev.key),
                    };
                }
                at
            }
            _ => inner.rv,
        };
        Ok((current.into_iter().collect(), rv))
    }

    /// All objects of every resource, for background controllers.
    pub fn snapshot(&self) -> (Objects, u64) {
        let inner = self.lock();
        (inner.objects.clone(), inner.rv)
    }

    /// Atomically reads `key`, lets `f` decide, and commits the outcome with a new
    /// resourceVersion. `f` also sees every other object (e.g. to check the namespace).
    /// With `dry_run`, nothing is stored and no resourceVersion is spent.
    /// Returns the resulting object (for a deletion, the deleted object).
    pub fn mutate<F>(
        &self,
        key: &Key,
        dry_run: bool,
        f: F,
    ) -> Result<Option<Arc<Value>>, crate::status::ApiError>
    where
        F: FnOnce(&Objects, Option<&Arc<Value>>) -> Result<Mutation, crate::status::ApiError>,
    {
        let mut inner = self.lock();
        let current = inner.objects.get(key).cloned();
        let mutation = f(&inner.objects, current.as_ref())?;
        let next_rv = inner.rv + 1;
        let (kind, mut object) = match mutation {
            Mutation::Keep => return Ok(current),
            Mutation::Put(new) => {
                if let Some(cur) = &current
                    && unchanged(cur, &new)
                {
                    return Ok(Some(cur.clone()));
                }
                (
                    if current.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    },
                    new,
                )
            }
            Mutation::Delete => match &current {
                None => return Ok(None),
                Some(cur) => (EventType::Deleted, (**cur).clone()),
            },
        };
        if dry_run {
            return Ok(Some(Arc::new(object)));
        }
        set_resource_version(&mut object, next_rv);
        let object = Arc::new(object);
        inner.rv = next_rv;
        if kind == EventType::Deleted {
            inner.objects.remove(key);
        } else {
            inner.objects.insert(key.clone(), object.clone());
        }
        inner.history.push_back(Arc::new(Event {
            rv: next_rv,
            key: key.clone(),
            kind,
            object: object.clone(),
            prev: current,
        }));
        while inner.history.len() > self.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.floor = old.rv;
            }
        }
        drop(inner);
        self.notify.send_replace(next_rv);
        Ok(Some(object))
    }

    /// Changes after `after` that `wanted` selects, oldest first, and the newest resourceVersion
    /// examined; `Compacted` when the history no longer reaches back to `after`.
    pub fn events_after(
        &self,
        after: u64,
        wanted: impl Fn(&Key) -> bool,
    ) -> Result<(Vec<Arc<Event>>, u64), Compacted> {
        let inner = self.lock();
        if after < inner.floor {
            return Err(Compacted { floor: inner.floor });
        }
        let start = inner.history.partition_point(|e| e.rv <= after);
        let events = inner
            .history
            .range(start..)
            .filter(|e| wanted(&e.key))
            .cloned()
            .collect();
        Ok((events, inner.rv))
    }
}

fn range_of<'a>(
    objects: &'a Objects,
    resource: &str,
) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> {
    let start = Key::new(resource, "", "");
    objects
        .range(start..)
        .take_while(move |(k, _)| k.resource == resource)
}

/// A write that changes nothing but bookkeeping is not a write (as a real server skips it).
fn unchanged(current: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(current) == strip(new)
}

pub fn set_resource_version(obj: &mut Value, rv: u64) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, name: &str, v: i64) -> u64 {
        let obj = json!({"metadata": {"name": name}, "v": v});
        let out = store
            .mutate(&Key::new("/configmaps", "ns", name), false, |_, _| {
                Ok(Mutation::Put(obj))
            })
            .unwrap()
            .unwrap();
        out["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn snapshots_and_compaction() {
        let store = Store::new(3);
        let a1 = put(&store, "a", 1);
        put(&store, "b", 1);
        put(&store, "a", 2);
        let (objs, rv) = store.list("/configmaps", Some("ns"), Some(a1)).unwrap();
        assert_eq!(rv, a1);
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].1["v"], 1);
        put(&store, "c", 1);
        put(&store, "d", 1);
        assert!(store.list("/configmaps", None, Some(a1)).is_err());
        assert!(store.events_after(a1, |_| true).is_err());
        let (events, _) = store.events_after(a1 + 2, |_| true).unwrap();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn identical_writes_are_not_writes() {
        let store = Store::new(10);
        let first = put(&store, "a", 1);
        assert_eq!(put(&store, "a", 1), first);
    }
}
