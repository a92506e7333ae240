//! Serving: the TLS listener ([`listener`]), its certificates ([`tls`]) and the request pipeline
//! it runs ([`stack`]).

pub mod listener;
pub mod stack;
pub mod tls;

pub use stack::{ProxyService, proxy_stack};
