//! The caches in list order. Each kind's objects are kept sorted by their list key, with an
//! index per field that lists filter on, so a page costs a lookup and the items it walks, not a
//! scan and sort of the whole cache. The order is updated from the watch events that fill the
//! reflector store, right after the store applies them, and holds the store's own objects.

use std::collections::BTreeSet;
use std::collections::btree_map::BTreeMap;
use std::collections::hash_map::{Entry, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::watch;

/// How a kind is listed.
pub trait Listed: Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    /// The list order. It must not change over the object's life (status updates especially),
    /// so that a cursor keeps its place while objects change. Ties are broken by uid.
    fn sort_key(&self) -> Vec<String>;

    /// `(field, value)` pairs a list may require by equality; each field gets an index.
    fn indexed_fields(&self) -> Vec<(&'static str, String)>;

    /// The sort key followed by the uid: unique, and where a page after this object starts.
    fn cursor(&self) -> Vec<String> {
        let mut key = self.sort_key();
        key.push(self.meta().uid.clone().unwrap_or_default());
        key
    }
}

/// A sort key followed by the uid.
type Key = Arc<[String]>;

struct Order<K> {
    by_key: BTreeMap<Key, Arc<K>>,
    key_of_uid: HashMap<String, Key>,
    by_field: HashMap<(&'static str, String), BTreeSet<Key>>,
}

impl<K> Default for Order<K> {
    fn default() -> Self {
        Self {
            by_key: BTreeMap::new(),
            key_of_uid: HashMap::new(),
            by_field: HashMap::new(),
        }
    }
}

impl<K: Listed> Order<K> {
    fn insert(&mut self, object: Arc<K>) {
        let Some(uid) = object.meta().uid.clone() else {
            return;
        };
        self.remove(&uid);
        let key: Key = object.cursor().into();
        for field in object.indexed_fields() {
            self.by_field.entry(field).or_default().insert(key.clone());
        }
        self.by_key.insert(key.clone(), object);
        self.key_of_uid.insert(uid, key);
    }

    fn remove(&mut self, uid: &str) {
        let Some(key) = self.key_of_uid.remove(uid) else {
            return;
        };
        let Some(object) = self.by_key.remove(&key) else {
            return;
        };
        for field in object.indexed_fields() {
            if let Entry::Occupied(mut keys) = self.by_field.entry(field) {
                keys.get_mut().remove(&key);
                if keys.get().is_empty() {
                    keys.remove();
                }
            }
        }
    }

    /// See [`SortedCache::page`].
    fn page(
        &self,
        cursor: Option<&[String]>,
        fields: &[(&'static str, &str)],
        wanted: impl Fn(&K) -> bool,
        limit: usize,
    ) -> (Vec<Arc<K>>, bool) {
        let mut sets = Vec::with_capacity(fields.len());
        for (field, value) in fields {
            match self.by_field.get(&(*field, value.to_string())) {
                Some(keys) => sets.push(keys),
                None => return (Vec::new(), false),
            }
        }
        // Walk the smallest index and check membership in the others.
        sets.sort_by_key(|keys| keys.len());
        let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let range = (start, Bound::Unbounded);
        let candidates: Box<dyn Iterator<Item = &Key>> = match sets.first() {
            Some(narrowest) => Box::new(narrowest.range::<[String], _>(range)),
            None => Box::new(self.by_key.range::<[String], _>(range).map(|(key, _)| key)),
        };
        let others = sets.get(1..).unwrap_or_default();
        let mut page = Vec::with_capacity(limit.saturating_add(1).min(self.by_key.len()));
        let matching = candidates
            .skip_while(|key| cursor.is_some_and(|cursor| key.starts_with(cursor)))
            .filter(|key| others.iter().all(|keys| keys.contains(*key)))
            .filter_map(|key| self.by_key.get(key))
            .filter(|object| wanted(object));
        for object in matching {
            page.push(object.clone());
            if page.len() > limit {
                break;
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}

/// A reflector store and its objects in list order. Cheap to clone.
#[derive(Clone)]
pub struct SortedCache<K: Listed> {
    store: Store<K>,
    order: Arc<RwLock<Order<K>>>,
    ready: watch::Receiver<bool>,
}

/// Keeps a [`SortedCache`] current; fed every event of the watch that fills its store.
pub struct SortedCacheWriter<K: Listed> {
    store: Store<K>,
    order: Arc<RwLock<Order<K>>>,
    ready: watch::Sender<bool>,
}

impl<K: Listed> SortedCache<K> {
    /// A sorted view of `store`, empty until its writer sees the first full list.
    pub fn new(store: Store<K>) -> (Self, SortedCacheWriter<K>) {
        let order = Arc::new(RwLock::new(Order::default()));
        let (ready_tx, ready) = watch::channel(false);
        let cache = Self {
            store: store.clone(),
            order: order.clone(),
            ready,
        };
        let writer = SortedCacheWriter {
            store,
            order,
            ready: ready_tx,
        };
        (cache, writer)
    }

    /// The reflector store, for lookups by name and whole-cache reads.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Waits until the order holds the first full list.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.ready.clone().wait_for(|ready| *ready).await?;
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, Order<K>> {
        // Only the writer can poison the lock, and it runs no code that can panic midway.
        self.order.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The object with this uid.
    pub fn get_by_uid(&self, uid: &str) -> Option<Arc<K>> {
        let order = self.read();
        order
            .key_of_uid
            .get(uid)
            .and_then(|key| order.by_key.get(key))
            .cloned()
    }

    /// The first `limit` objects in list order after `cursor` that have every `(field, value)`
    /// of `fields` and pass `wanted`, and whether more remain. A cursor is a sort key, with or
    /// without the uid: the page starts after every object whose key begins with it.
    pub fn page(
        &self,
        cursor: Option<&[String]>,
        fields: &[(&'static str, &str)],
        wanted: impl Fn(&K) -> bool,
        limit: usize,
    ) -> (Vec<Arc<K>>, bool) {
        self.read().page(cursor, fields, wanted, limit)
    }

    /// As [`SortedCache::page`], for a `wanted` that compares an object with others: it is also
    /// given the whole cache as it is while the page is read.
    pub fn page_among(
        &self,
        cursor: Option<&[String]>,
        fields: &[(&'static str, &str)],
        wanted: impl Fn(&K, &Snapshot<'_, K>) -> bool,
        limit: usize,
    ) -> (Vec<Arc<K>>, bool) {
        let order = self.read();
        let snapshot = Snapshot(&order);
        order.page(cursor, fields, |object| wanted(object, &snapshot), limit)
    }

    /// The first object in list order with every `(field, value)` of `fields` that passes
    /// `wanted`.
    pub fn find(
        &self,
        fields: &[(&'static str, &str)],
        wanted: impl Fn(&K) -> bool,
    ) -> Option<Arc<K>> {
        self.page(None, fields, wanted, 1).0.pop()
    }
}

/// The cache at one moment, as [`SortedCache::page_among`] shows it to its filter.
pub struct Snapshot<'a, K>(&'a Order<K>);

impl<K: Listed> Snapshot<'_, K> {
    /// As [`SortedCache::find`], in this snapshot.
    pub fn find(
        &self,
        fields: &[(&'static str, &str)],
        wanted: impl Fn(&K) -> bool,
    ) -> Option<Arc<K>> {
        self.0.page(None, fields, wanted, 1).0.pop()
    }
}

impl<K: Listed> SortedCacheWriter<K> {
    /// Applies a watch event that the store has applied already.
    pub fn apply(&self, event: &watcher::Event<K>) {
        let write = || self.order.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(object) => {
                // The store's copy, so both share one allocation per object.
                if let Some(stored) = self.store.get(&ObjectRef::from_obj(object)) {
                    write().insert(stored);
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.meta().uid.as_deref() {
                    write().remove(uid);
                }
            }
            watcher::Event::InitDone => {
                let mut fresh = Order::default();
                for object in self.store.state() {
                    fresh.insert(object);
                }
                *write() = fresh;
                self.ready.send_replace(true);
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;

    /// Sorted by name, indexed by the `colour` label.
    impl Listed for ConfigMap {
        fn sort_key(&self) -> Vec<String> {
            vec![self.metadata.name.clone().unwrap_or_default()]
        }

        fn indexed_fields(&self) -> Vec<(&'static str, String)> {
            vec![(
                "colour",
                self.labels().get("colour").cloned().unwrap_or_default(),
            )]
        }
    }

    fn object(name: &str, colour: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("colour".to_string(), colour.to_string())].into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    /// A cache fed as the watch feeds it: the store first, then the order.
    struct Fed {
        cache: SortedCache<ConfigMap>,
        store_writer: reflector::store::Writer<ConfigMap>,
        writer: SortedCacheWriter<ConfigMap>,
    }

    impl Fed {
        fn new(initial: &[ConfigMap]) -> Self {
            let (store, store_writer) = reflector::store();
            let (cache, writer) = SortedCache::new(store);
            let mut fed = Self {
                cache,
                store_writer,
                writer,
            };
            fed.event(watcher::Event::Init);
            for object in initial {
                fed.event(watcher::Event::InitApply(object.clone()));
            }
            fed.event(watcher::Event::InitDone);
            fed
        }

        fn event(&mut self, event: watcher::Event<ConfigMap>) {
            self.store_writer.apply_watcher_event(&event);
            self.writer.apply(&event);
        }

        fn names(
            &self,
            cursor: Option<&[&str]>,
            colour: Option<&str>,
            limit: usize,
        ) -> (Vec<String>, bool) {
            let cursor: Option<Vec<String>> =
                cursor.map(|c| c.iter().map(|s| s.to_string()).collect());
            let fields: Vec<(&'static str, &str)> =
                colour.map(|c| ("colour", c)).into_iter().collect();
            let (page, more) = self.cache.page(cursor.as_deref(), &fields, |_| true, limit);
            (page.iter().map(|o| o.name_any()).collect(), more)
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn pages_start_after_the_cursor() {
        // Listed out of order, as a watch hands them out.
        let fed = Fed::new(&[
            object("c", "red"),
            object("a", "red"),
            object("d", "blue"),
            object("b2", "red"),
            object("b1", "blue"),
        ]);
        fed.cache.wait_until_ready().await.unwrap();
        assert_eq!(fed.names(None, None, 2), (names(&["a", "b1"]), true));
        assert_eq!(
            fed.names(Some(&["b1"]), None, 2),
            (names(&["b2", "c"]), true)
        );
        assert_eq!(fed.names(Some(&["c"]), None, 2), (names(&["d"]), false));
        assert_eq!(fed.names(Some(&["d"]), None, 2), (names(&[]), false));
        // A cursor whose object was deleted still continues after where it was.
        assert_eq!(
            fed.names(Some(&["b15"]), None, 5),
            (names(&["b2", "c", "d"]), false)
        );
        // A cursor with the uid continues after exactly that object.
        assert_eq!(
            fed.names(Some(&["b1", "uid-b1"]), None, 1),
            (names(&["b2"]), true)
        );
        // Filtered by an indexed field.
        assert_eq!(fed.names(None, Some("red"), 2), (names(&["a", "b2"]), true));
        assert_eq!(
            fed.names(Some(&["b2"]), Some("red"), 2),
            (names(&["c"]), false)
        );
        assert_eq!(fed.names(None, Some("green"), 2), (names(&[]), false));
        assert_eq!(
            fed.cache.get_by_uid("uid-c").map(|o| o.name_any()),
            Some("c".into())
        );
    }

    #[test]
    fn changes_move_objects_between_indexes() {
        let mut fed = Fed::new(&[object("a", "red"), object("b", "red")]);
        fed.event(watcher::Event::Apply(object("a", "blue")));
        assert_eq!(fed.names(None, Some("red"), 5), (names(&["b"]), false));
        assert_eq!(fed.names(None, Some("blue"), 5), (names(&["a"]), false));
        fed.event(watcher::Event::Delete(object("b", "red")));
        assert_eq!(fed.names(None, Some("red"), 5), (names(&[]), false));
        assert_eq!(fed.names(None, None, 5), (names(&["a"]), false));
        assert!(fed.cache.get_by_uid("uid-b").is_none());
        // Two required fields: only objects in both indexes.
        let (page, _) = fed
            .cache
            .page(None, &[("colour", "blue"), ("colour", "red")], |_| true, 5);
        assert!(page.is_empty());
        // A relist replaces everything.
        fed.event(watcher::Event::Init);
        fed.event(watcher::Event::InitApply(object("z", "red")));
        assert_eq!(
            fed.names(None, None, 5),
            (names(&["a"]), false),
            "not before InitDone"
        );
        fed.event(watcher::Event::InitDone);
        assert_eq!(fed.names(None, None, 5), (names(&["z"]), false));
        assert_eq!(fed.names(None, Some("blue"), 5), (names(&[]), false));
    }

    #[test]
    fn a_filter_can_compare_with_the_rest_of_the_cache() {
        let fed = Fed::new(&[
            object("a1", "red"),
            object("a2", "red"),
            object("b1", "blue"),
            object("c1", "red"),
        ]);
        // Only the last of each colour: paged one at a time, each colour once.
        let last_of_colour = |object: &ConfigMap, cache: &Snapshot<'_, ConfigMap>| {
            let colour = object.labels()["colour"].as_str();
            cache
                .find(&[("colour", colour)], |other| {
                    other.name_any() > object.name_any()
                })
                .is_none()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<Vec<String>> = None;
        loop {
            let (page, more) = fed
                .cache
                .page_among(cursor.as_deref(), &[], last_of_colour, 1);
            seen.extend(page.iter().map(|o| o.name_any()));
            cursor = page.last().map(|o| o.cursor());
            if !more {
                break;
            }
        }
        assert_eq!(seen, names(&["b1", "c1"]));
    }
}
