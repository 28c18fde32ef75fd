//! Watch semantics: ordering, kube-rs watcher, selectors, bookmarks and 410 Gone.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::common::*;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } })).unwrap()
}

#[tokio::test]
async fn kube_runtime_watcher_sees_changes() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    api.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.metadata.name.as_deref(), Some("after"));
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "x": "1" } })),
    )
    .await
    .unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(changed.data.unwrap()["x"], "1");

    // Deletions reach a raw watcher stream.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    while !matches!(
        events.try_next().await.unwrap(),
        Some(watcher::Event::InitDone)
    ) {}
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.try_next().await.unwrap() {
            if let watcher::Event::Delete(o) = ev {
                return o;
            }
        }
        panic!("stream ended")
    })
    .await
    .unwrap();
    assert_eq!(deleted.metadata.name.as_deref(), Some("before"));
    cp.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_works() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("one", json!({})))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("one"));
    cp.shutdown().await;
}

#[tokio::test]
async fn events_are_ordered_and_resume_from_resource_version() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = vec![];
    let mut last_rv = 0u64;
    while let Some(ev) = stream.try_next().await.unwrap() {
        let (kind, obj) = match ev {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            other => panic!("unexpected {other:?}"),
        };
        let this_rv: u64 = obj.metadata.resource_version.unwrap().parse().unwrap();
        assert!(this_rv > last_rv);
        last_rv = this_rv;
        seen.push((kind, obj.metadata.name.unwrap()));
    }
    assert_eq!(
        seen,
        [("ADDED", "b".to_string()), ("DELETED", "a".to_string())]
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn too_old_resource_version_is_gone() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), "1")
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    cp.shutdown().await;
}

#[tokio::test]
async fn selectors_turn_leaving_objects_into_deletions() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = api.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("team=a").timeout(3), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("x", json!({ "team": "a" })))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("y", json!({ "team": "b" })))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "b" } } })),
    )
    .await
    .unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    assert!(
        matches!(first, WatchEvent::Added(ref o) if o.metadata.name.as_deref() == Some("x")),
        "{first:?}"
    );
    let second = stream.try_next().await.unwrap().unwrap();
    assert!(
        matches!(second, WatchEvent::Deleted(ref o) if o.metadata.name.as_deref() == Some("x")),
        "{second:?}"
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn initial_events_end_with_a_bookmark() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let wp = WatchParams::streaming_lists().timeout(2);
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    let first = stream.try_next().await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Added(_)), "{first:?}");
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
            assert!(!b.metadata.resource_version.is_empty());
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
    cp.shutdown().await;
}
