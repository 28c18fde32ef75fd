//! The `Ready` condition, set as Kubernetes API conventions ask: `lastTransitionTime` moves only
//! when the status flips.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::resources::CONDITION_READY;

/// Sets the `Ready` condition in `conditions`, keeping its transition time if its status is
/// unchanged.
pub fn set_ready(
    conditions: &mut Vec<Condition>,
    ready: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(
        conditions,
        CONDITION_READY,
        ready,
        reason,
        message,
        generation,
        now,
    );
}

/// Sets condition `type_` in `conditions`, keeping its transition time if its status is
/// unchanged.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ready: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if ready { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: transition,
    });
}

/// The `Ready` condition's reason, if present.
pub fn ready_reason(conditions: &[Condition]) -> Option<&str> {
    conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::fixtures::ts;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut conditions = Vec::new();
        set_ready(&mut conditions, false, "Validating", "", Some(1), ts(10));
        set_ready(
            &mut conditions,
            false,
            "Resetting",
            "job x",
            Some(1),
            ts(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "Resetting");
        assert_eq!(conditions[0].last_transition_time, Time(ts(10)));
        set_ready(&mut conditions, true, "Available", "", Some(2), ts(30));
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, Time(ts(30)));
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(ready_reason(&conditions), Some("Available"));
    }

    #[test]
    fn other_conditions_are_kept() {
        let mut conditions = vec![Condition {
            type_: "Other".into(),
            status: "True".into(),
            reason: "X".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(ts(1)),
        }];
        set_ready(&mut conditions, true, "Available", "", None, ts(5));
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0].type_, "Other");
    }
}
