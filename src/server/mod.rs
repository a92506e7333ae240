//! Serving: the TLS listener ([`listener`]) and the sidecar's plain loopback listener
//! ([`plain`]), what a client connection may hold ([`limits`]), the TLS certificates ([`tls`]),
//! the request pipeline both run ([`stack`]) and the threads they run on ([`threads`]), request
//! bodies bounded in size and in total ([`body_limit`]) and in time ([`body_deadline`]), and
//! request bodies answered unread, drained ([`drain_body`]).

pub mod body_deadline;
pub mod body_limit;
pub mod drain_body;
pub mod limits;
pub mod listener;
pub mod plain;
pub mod stack;
pub mod threads;
pub mod tls;

pub use stack::{ProxyService, proxy_stack};
