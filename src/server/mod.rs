//! Serving: the TLS listener ([`listener`]) and the sidecar's plain loopback listener
//! ([`plain`]), the TLS certificates ([`tls`]) and the request pipeline both run ([`stack`]).

pub mod listener;
pub mod plain;
pub mod stack;
pub mod tls;

pub use stack::{ProxyService, proxy_stack};
