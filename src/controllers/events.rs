//! Kubernetes Events for state transitions and errors.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;

/// Publishes an Event about `object`. Failing to publish is logged, never fatal.
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
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, reason, "could not publish event");
    }
}
