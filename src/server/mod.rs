//! Serving: the TLS listener ([`listener`]) and the sidecar's plain loopback listener
//! ([`plain`]), the TLS certificates ([`tls`]), the request pipeline both run ([`stack`]) and
//! the threads they run on ([`threads`]), and request bodies answered unread, drained
//! ([`drain_body`]).

pub mod drain_body;
pub mod listener;
pub mod plain;
pub mod stack;
pub mod threads;
pub mod tls;

pub use stack::{ProxyService, proxy_stack};
