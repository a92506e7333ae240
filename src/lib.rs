//! Canopy: a virtual-cluster API proxy for Kubernetes. It sits in front of a real
//! kube-apiserver, authenticates each caller, and forwards their requests as themselves.
//!
//! Modules follow the request pipeline: [`server`] accepts, [`auth`] identifies, [`request`]
//! classifies and cleans, [`policy`] confines to the tenancy [`tree`], [`rewrite`] and
//! [`transform`] translate names, [`mask`] hides fields, [`fanout`] answers `-A`, [`upstream`]
//! forwards; [`status`] renders every error, [`audit`], [`metrics`] and [`admin`] report,
//! [`config`] is validated once at load; [`access`] answers who may do what where, for the
//! platform team.
//! With the `fuzzing` feature (and in tests), `fuzz` holds the body of the `cargo fuzz` target.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod discovery;
pub mod fanout;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod kubeconfig;
pub mod mask;
pub mod metrics;
pub mod policy;
pub mod reconcile;
pub mod request;
pub mod rewrite;
pub mod server;
pub mod status;
pub mod transform;
pub mod tree;
pub mod upstream;
