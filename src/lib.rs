//! Canopy: a virtual-cluster API proxy for Kubernetes. It sits in front of a real
//! kube-apiserver, authenticates each caller, and forwards their requests as themselves.
//!
//! Modules follow the request pipeline: [`server`] accepts, [`auth`] identifies, [`request`]
//! classifies and cleans, [`tenancy`] applies the tenancy [`tree`] in phases with [`policy`]'s
//! decisions and gates, [`rewrite`] and
//! [`transform`] translate names, [`mask`] hides fields, [`fanout`] answers `-A`, [`upstream`]
//! forwards; [`status`] renders every error, [`audit`], [`metrics`] and [`admin`] report,
//! [`config`] is validated once at load; [`access`] answers who may do what where, for the
//! platform team.
//! With the `fuzzing` feature (and in tests), `fuzz` holds the body of the `cargo fuzz` target.
//!
//! **One reading** (design invariant 10) is the rule every layer keeps: Canopy never forwards
//! bytes it has not read into the meaning it judged, and never returns bytes it has not
//! filtered. The query is read once, as the apiserver reads it, and travels in Canopy's
//! canonical encoding ([`request::query`]); a body in a view is read once ([`decode`],
//! [`transform::reading`]) and travels as Canopy's JSON of what it read; an answer in a view is
//! asked of upstream in JSON and leaves as JSON or YAML Canopy rendered
//! ([`transform::negotiate`], [`transform::render`]). What Canopy cannot read is refused (400,
//! 406, 415, 502), never passed on; only raw streams (logs, proxied targets, upgraded
//! connections) carry the caller's own bytes.
//!
//! **One commit** (design invariant 11): a write any check judges goes through one write driver
//! (`policy::write`), which dry-runs it once as the caller, lets every gate judge that one
//! would-be object, and commits it with a precondition on the resourceVersion it was judged at
//! (`policy::precondition`), so a concurrent change makes it a `409`, never an unjudged result.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod decode;
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
pub mod tenancy;
pub mod transform;
pub mod tree;
pub mod upstream;
