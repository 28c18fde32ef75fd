//! The end-to-end suite: the operator driven only through a kubeconfig (kubectl) and its public
//! surfaces. By default each test gets a test control plane, moto and the operator binary; with
//! `DCE_E2E_KUBECONFIG` set the same tests run against that cluster (see docs/kind.md).

mod common;
mod concurrency;
mod lifecycle;
mod reset;
mod restart;
mod validation;
