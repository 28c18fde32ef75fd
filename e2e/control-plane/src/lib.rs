//! An in-memory Kubernetes API server on loopback: the project's local control plane.
//!
//! Tests start it in-process with [`ControlPlane::start`]; `make dev` starts the
//! `local-control-plane` binary. It implements the API machinery the operator, kubectl and Helm
//! use, and answers like a real kube-apiserver wherever it does not (404 for unknown resources,
//! 405 for unsupported verbs), never with a silent success.

/// A bearer token the server accepts, with the identity it authenticates as.
#[derive(Debug, Clone)]
pub struct StaticToken {
    pub token: String,
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ControlPlaneConfig {
    /// 0 picks a free port.
    pub port: u16,
    /// Tokens besides the generated admin token (`system:masters`).
    pub tokens: Vec<StaticToken>,
}
