//! The control loops a cluster runs beside the API server that API clients observe:
//! ownerReference garbage collection (background, foreground, orphan), namespace deletion and
//! CRD instance cleanup. They run when the store changes, on a full snapshot, at most once per
//! [`PASS_INTERVAL`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::app::{App, CRD_STORAGE};
use crate::crd::CLEANUP_FINALIZER;
use crate::meta;
use crate::objects::{
    self, DeleteOptions, FOREGROUND_FINALIZER, NAMESPACE_FINALIZER, ORPHAN_FINALIZER, Propagation,
};
use crate::store::{Key, Objects};

/// Shortest time between two passes. A pass reads every object, so running one per write made
/// each write cost O(objects): under a steady stream of writes the passes kept a core busy.
/// Changes made meanwhile are handled by the next pass, as a real cluster's controllers act
/// on changes some time after they are stored.
const PASS_INTERVAL: Duration = Duration::from_millis(250);

/// Runs until shutdown, reconciling after changes of the store.
pub async fn run(app: Arc<App>) {
    let mut changes = app.store.subscribe();
    let mut shutdown = app.shutdown.clone();
    loop {
        reconcile(&app);
        tokio::select! {
            _ = tokio::time::sleep(PASS_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One pass over all objects. Each action is an ordinary write, which triggers the next pass.
fn reconcile(app: &App) {
    let (objects, _) = app.store.snapshot();
    let by_uid: HashMap<&str, (&Key, &Arc<Value>)> = objects
        .iter()
        .map(|(k, v)| (meta::uid(v), (k, v)))
        .filter(|(u, _)| !u.is_empty())
        .collect();
    for (key, obj) in &objects {
        // Failures (e.g. a concurrent change) are retried on the next pass.
        let _ = reconcile_owner(app, &objects, key, obj);
        let _ = reconcile_dependent(app, &by_uid, key, obj);
        if key.resource == "/namespaces" && meta::is_deleting(obj) {
            let _ = finalize_namespace(app, &objects, key);
        }
        if key.resource == CRD_STORAGE && meta::is_deleting(obj) {
            let _ = cleanup_crd(app, &objects, key, obj);
        }
    }
}

fn dependents_of<'a>(
    objects: &'a Objects,
    owner: &Value,
) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> {
    let uid = meta::uid(owner).to_string();
    objects.iter().filter(move |(_, v)| {
        meta::owner_references(v)
            .iter()
            .any(|r| r["uid"] == uid.as_str())
    })
}

fn without_finalizer(obj: &mut Value, finalizer: &str) -> bool {
    let mut f = meta::finalizers(obj);
    let before = f.len();
    f.retain(|x| x != finalizer);
    let changed = f.len() != before;
    meta::set_finalizers(obj, f);
    changed
}

/// An owner being deleted with `orphan` or `foregroundDeletion` waits for its dependents.
fn reconcile_owner(app: &App, objects: &Objects, key: &Key, owner: &Value) -> anyhow::Result<()> {
    if !meta::is_deleting(owner) {
        return Ok(());
    }
    let finalizers = meta::finalizers(owner);
    let owner_uid = meta::uid(owner).to_string();
    if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
        for (dep_key, _) in dependents_of(objects, owner) {
            objects::controller_edit(app, dep_key, |d| {
                let refs: Vec<Value> = meta::owner_references(d)
                    .into_iter()
                    .filter(|r| r["uid"] != owner_uid.as_str())
                    .collect();
                let m = meta::metadata_mut(d);
                if refs.is_empty() {
                    m.remove("ownerReferences");
                } else {
                    m.insert("ownerReferences".into(), Value::from(refs));
                }
                true
            })?;
        }
        objects::controller_edit(app, key, |o| without_finalizer(o, ORPHAN_FINALIZER))?;
    } else if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
        let mut blocking = 0;
        for (dep_key, dep) in dependents_of(objects, owner) {
            let blocks = meta::owner_references(dep)
                .iter()
                .any(|r| r["uid"] == owner_uid.as_str() && r["blockOwnerDeletion"] == true);
            if blocks {
                blocking += 1;
            }
            if !meta::is_deleting(dep) {
                let propagation = if blocks {
                    Propagation::Foreground
                } else {
                    Propagation::Background
                };
                delete_stored(app, dep_key, propagation)?;
            }
        }
        if blocking == 0 {
            objects::controller_edit(app, key, |o| without_finalizer(o, FOREGROUND_FINALIZER))?;
        }
    }
    Ok(())
}

/// A dependent whose owners are all gone (or waiting for their dependents) is deleted; one that
/// still has a live owner only loses the references to the others.
fn reconcile_dependent(
    app: &App,
    by_uid: &HashMap<&str, (&Key, &Arc<Value>)>,
    key: &Key,
    dep: &Value,
) -> anyhow::Result<()> {
    let refs = meta::owner_references(dep);
    if refs.is_empty() || meta::is_deleting(dep) {
        return Ok(());
    }
    let owner_state = |r: &Value| -> OwnerState {
        let uid = r["uid"].as_str().unwrap_or_default();
        match by_uid.get(uid) {
            // A namespaced dependent can only be owned from its own namespace or the cluster scope.
            Some((k, o)) if k.namespace.is_empty() || k.namespace == key.namespace => {
                if meta::is_deleting(o)
                    && meta::finalizers(o)
                        .iter()
                        .any(|f| f == FOREGROUND_FINALIZER)
                {
                    OwnerState::WaitingForDependents
                } else {
                    OwnerState::Live
                }
            }
            _ => OwnerState::Absent,
        }
    };
    let states: Vec<OwnerState> = refs.iter().map(owner_state).collect();
    if states.iter().all(|s| *s == OwnerState::Live) {
        return Ok(());
    }
    if states.contains(&OwnerState::Live) {
        let keep: Vec<Value> = refs
            .iter()
            .zip(&states)
            .filter(|(_, s)| **s == OwnerState::Live)
            .map(|(r, _)| r.clone())
            .collect();
        return objects::controller_edit(app, key, |d| {
            meta::metadata_mut(d).insert("ownerReferences".into(), Value::from(keep));
            true
        })
        .map_err(|e| anyhow::anyhow!(e.message));
    }
    let blocks_waiting_owner = refs
        .iter()
        .zip(&states)
        .any(|(r, s)| *s == OwnerState::WaitingForDependents && r["blockOwnerDeletion"] == true);
    delete_stored(
        app,
        key,
        if blocks_waiting_owner {
            Propagation::Foreground
        } else {
            Propagation::Background
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    Live,
    WaitingForDependents,
    Absent,
}

fn delete_stored(app: &App, key: &Key, propagation: Propagation) -> anyhow::Result<()> {
    let info = app
        .registry
        .by_storage(&key.resource)
        .ok_or_else(|| anyhow::anyhow!("unknown resource {}", key.resource))?;
    let opts = DeleteOptions {
        propagation: Some(propagation),
        ..Default::default()
    };
    match objects::delete(app, &info, &key.namespace, &key.name, &opts) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(anyhow::anyhow!(e.message)),
    }
}

/// Deletes everything in a terminating namespace, then releases it.
fn finalize_namespace(app: &App, objects: &Objects, key: &Key) -> anyhow::Result<()> {
    let ns = &key.name;
    let mut remaining = 0;
    for (k, obj) in objects.iter().filter(|(k, _)| &k.namespace == ns) {
        remaining += 1;
        if !meta::is_deleting(obj) {
            delete_stored(app, k, Propagation::Background)?;
        }
    }
    if remaining == 0 {
        objects::controller_edit(app, key, |n| {
            let Some(list) = n
                .pointer_mut("/spec/finalizers")
                .and_then(Value::as_array_mut)
            else {
                return false;
            };
            let before = list.len();
            list.retain(|f| f != NAMESPACE_FINALIZER);
            list.len() != before
        })
        .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(())
}

/// Deletes a terminating CRD's instances, then releases it.
fn cleanup_crd(app: &App, objects: &Objects, key: &Key, crd: &Value) -> anyhow::Result<()> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let storage = format!("{group}/{plural}");
    let mut remaining = 0;
    for (k, obj) in objects.iter().filter(|(k, _)| k.resource == storage) {
        remaining += 1;
        if !meta::is_deleting(obj) {
            delete_stored(app, k, Propagation::Background)?;
        }
    }
    if remaining == 0 {
        objects::controller_edit(app, key, |c| without_finalizer(c, CLEANUP_FINALIZER))
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(())
}
