//! The REST APIs' key pairs, as the facade looks them up: a watch of the labelled Secrets in
//! the operator's namespace (see `crate::lifecycle::api_keys`), so a revoked (deleted) or
//! disabled key stops working as soon as the watch shows it, on every replica.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::lifecycle::api_keys::{API_KEY_LABEL, ApiKey, api_key};

/// Key pairs by access key id. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct ApiKeys {
    store: Store<Secret>,
}

impl ApiKeys {
    /// The key pairs of `namespace`, and the watch that keeps them current (run it on every
    /// replica).
    pub fn watch(
        client: Client,
        namespace: &str,
    ) -> (ApiKeys, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store::<Secret>();
        let selected = watcher::Config::default().labels(&format!("{API_KEY_LABEL}=true"));
        let events = watcher(Api::<Secret>::namespaced(client, namespace), selected)
            .default_backoff()
            .reflect(writer)
            .for_each(|event| {
                if let Err(error) = event {
                    tracing::warn!(%error, "watch error on REST API key Secrets");
                }
                std::future::ready(())
            });
        (ApiKeys { store }, events)
    }

    /// Key pairs from a store filled elsewhere (tests).
    #[cfg(test)]
    pub fn from_store(store: Store<Secret>) -> ApiKeys {
        ApiKeys { store }
    }

    /// The issued key pair with this access key id.
    pub fn find(&self, access_key_id: &str) -> Option<ApiKey> {
        self.store
            .state()
            .iter()
            .filter_map(|secret| api_key(secret))
            .find(|key| key.access_key_id == access_key_id)
    }

    /// Waits until the first list of key pairs is cached.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.store.wait_until_ready().await
    }
}
