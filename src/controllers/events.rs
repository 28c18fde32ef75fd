//! Kubernetes Events for state transitions and errors.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;

/// Publishes an Event about `object` in the background, so a reconcile never waits for it.
/// Failing to publish is logged, never fatal.
pub async fn publish<K>(
    ctx: &Context,
    object: &K,
    kind: &'static str,
    warning: bool,
    reason: &str,
    note: String,
) where
    K: Resource<DynamicType = ()>,
{
    ctx.metrics
        .transitions
        .get_or_create(&crate::metrics::EventLabels {
            kind,
            reason: reason.to_string(),
        })
        .inc();
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let recorder = ctx.recorder.clone();
    let reference = object.object_ref(&());
    tokio::spawn(async move {
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = event.reason, "could not publish event");
        }
    });
}
