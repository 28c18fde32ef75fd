//! Events a decision asks the controller to publish.

/// An Event on the object reconciled.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// A Warning rather than a Normal Event.
    pub warning: bool,
    pub reason: String,
    pub note: String,
}
