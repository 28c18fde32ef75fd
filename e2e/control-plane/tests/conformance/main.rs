//! Conformance tests of the local control plane, written from the Kubernetes API
//! documentation so that they hold against a real kube-apiserver too.

mod common;
mod crd;
mod crud;
mod gc;
mod kubectl;
mod protobuf;
mod rbac;
mod secrets;
mod ssa;
mod watch;
