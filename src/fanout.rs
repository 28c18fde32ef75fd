//! One watch per kind, fanned out to every controller that reacts to it.
//!
//! kube-runtime 5.0's shared streams (`store_shared`, `ReflectHandle`) hand subscribers object
//! references and look each one up in the store; when the object is already gone (deleted
//! between the event and the read) `ReflectHandle::poll_next` returns `Pending` without
//! registering a waker, so the controller behind it is never woken again — a stall seen after
//! bulk deletes. Here subscribers receive the objects themselves, through bounded channels that
//! hold the watch back when a subscriber lags (as the shared streams did).

use std::pin::pin;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use kube::runtime::watcher;

/// One controller's view of a watch: every object the watch reports, in order.
pub type Subscription<K> = mpsc::Receiver<Arc<K>>;

/// The senders of a watch's subscribers.
pub struct Fanout<K> {
    buffer: usize,
    subscribers: Vec<mpsc::Sender<Arc<K>>>,
}

impl<K> Fanout<K> {
    /// Each subscriber may lag `buffer` objects behind before the watch waits for it.
    pub fn new(buffer: usize) -> Self {
        Self {
            buffer,
            subscribers: Vec::new(),
        }
    }

    pub fn subscribe(&mut self) -> Subscription<K> {
        let (sender, receiver) = mpsc::channel(self.buffer);
        self.subscribers.push(sender);
        receiver
    }
}

impl<K: Clone> Fanout<K> {
    /// Sends the object of `event` (an added, changed, listed or deleted object) to every
    /// subscriber, waiting while one is full. A subscriber that has gone is forgotten.
    pub async fn publish(&mut self, event: &watcher::Event<K>) {
        let object = match event {
            watcher::Event::Apply(object)
            | watcher::Event::Delete(object)
            | watcher::Event::InitApply(object) => Arc::new(object.clone()),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        let mut gone = Vec::new();
        for (index, subscriber) in self.subscribers.iter_mut().enumerate() {
            if subscriber.send(object.clone()).await.is_err() {
                gone.push(index);
            }
        }
        for index in gone.into_iter().rev() {
            self.subscribers.swap_remove(index);
        }
    }

    /// Drives `events` (a watch already reflected into its store), handing each event to
    /// `observe` and then to the subscribers.
    pub async fn run<E: std::fmt::Display>(
        mut self,
        events: impl Stream<Item = Result<watcher::Event<K>, E>>,
        mut observe: impl FnMut(Result<&watcher::Event<K>, E>),
    ) {
        let mut events = pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    observe(Ok(&event));
                    self.publish(&event).await;
                }
                Err(error) => observe(Err(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::stream;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::reflector;

    use super::*;

    fn object(name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.name = Some(name.to_string());
        object.metadata.namespace = Some("default".to_string());
        object
    }

    /// An object added and deleted, then another added.
    fn events() -> Vec<watcher::Event<ConfigMap>> {
        vec![
            watcher::Event::Apply(object("first")),
            watcher::Event::Delete(object("first")),
            watcher::Event::Apply(object("second")),
        ]
    }

    fn ok(
        events: Vec<watcher::Event<ConfigMap>>,
    ) -> impl Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> {
        stream::iter(events.into_iter().map(Ok))
    }

    /// The upstream behaviour this module exists for: a shared-stream subscriber that reads
    /// the reference of an object deleted meanwhile is left waiting with no waker, even with
    /// another object queued behind it. When this fails, kube-runtime has fixed it and the
    /// shared streams could serve again.
    #[tokio::test]
    async fn kube_shared_streams_stall_after_a_deleted_object() {
        let (_store, writer) = reflector::store_shared::<ConfigMap>(16);
        let mut handle = writer.subscribe().expect("a shared store");
        // On this single-threaded runtime the watch handles all three events before the
        // subscriber first reads: the first reference it reads is of a deleted object.
        let watch = tokio::spawn(ok(events()).reflect_shared(writer).for_each(|_| async {}));
        // The subscriber reads in a task of its own, which only a waker can resume (a timeout
        // around the read itself would poll it again when it fires).
        let (delivered, next) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(async move {
            let _ = delivered.send(handle.next().await);
        });
        let next = tokio::time::timeout(Duration::from_secs(2), next).await;
        assert!(
            next.is_err(),
            "kube's ReflectHandle delivered {next:?}: the upstream stall is fixed"
        );
        watch.abort();
        subscriber.abort();
    }

    #[tokio::test]
    async fn subscribers_get_every_object_even_after_a_delete() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let mut fanout = Fanout::new(1);
        let mut first = fanout.subscribe();
        let mut second = fanout.subscribe();
        let watch = tokio::spawn(fanout.run(ok(events()).reflect(writer), |_| {}));
        // Read together: with room for one object each, the watch waits for the slower one.
        fn names(subscriber: &mut Subscription<ConfigMap>) -> impl Future<Output = Vec<String>> {
            subscriber
                .take(3)
                .map(|o| o.metadata.name.clone().unwrap())
                .collect()
        }
        let both = futures::future::join(names(&mut first), names(&mut second));
        let (first, second) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("every object arrives");
        assert_eq!(first, ["first", "first", "second"]);
        assert_eq!(second, first);
        watch.await.unwrap();
        assert_eq!(
            store.state().len(),
            1,
            "the store holds the surviving object"
        );
    }

    #[tokio::test]
    async fn a_gone_subscriber_does_not_block_the_others() {
        let mut fanout = Fanout::new(1);
        let gone = fanout.subscribe();
        let mut kept = fanout.subscribe();
        drop(gone);
        for event in events() {
            fanout.publish(&event).await;
            assert!(kept.next().await.is_some());
        }
        assert_eq!(fanout.subscribers.len(), 1);
    }
}
