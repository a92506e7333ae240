//! Canopy's end-to-end suite against the real apiserver harness, one module per concern, linked
//! into one test binary. Tests run in parallel in this one process: those that change the example
//! tree's namespaces or members take [`common::tree::changing`], those that rely on them take
//! [`common::tree::reading`]. Run one module with `cargo test --release --test e2e -- tenancy::`.

mod common;

mod across;
mod bounds;
mod config_cli;
mod controllers;
mod deny;
mod helm;
mod hidden;
mod kubectl_plugin;
mod limits;
mod links;
mod masks;
mod namespaces;
mod one_commit;
mod one_reading;
mod operations;
mod protobuf;
mod proxy_auth;
mod proxy_kubectl;
mod proxy_lifecycle;
mod proxy_streaming;
mod reconcile;
mod references;
mod reload;
mod review_apis;
mod scope;
mod secrets;
mod sidecar;
mod tenancy;
mod upstream_faults;
mod upstream_h2;
