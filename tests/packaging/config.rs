//! `config/`: the kustomize base.
