//! Who a caller is, once authenticated, and what the listener knows of the connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// An authenticated caller, as Canopy will impersonate them upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// User name (`alice`, `system:serviceaccount:ns:name`).
    pub user: String,
    /// Stable user id, when the authenticator gives one.
    pub uid: Option<String>,
    /// Groups, in the order the authenticator gave them.
    pub groups: Vec<String>,
    /// Extra attributes (e.g. `authentication.kubernetes.io/credential-id`).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The identity a connection's verified client certificate carries, set on every request of
/// that connection by the listener. `None` when the client sent no certificate.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<Identity>);

/// The address of the client a request came from, set on every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Identity {
    /// An identity with just a user name and groups.
    pub fn new(user: impl Into<String>, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { user: user.into(), groups: groups.into_iter().map(Into::into).collect(), ..Self::default() }
    }
}
