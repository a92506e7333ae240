//! What a request is and what it may carry: classification ([`info`], [`query`], [`classify`]) and the
//! header hygiene that keeps a client from smuggling identity past Canopy ([`headers`],
//! [`guard`]).

pub mod classify;
pub mod guard;
pub mod headers;
pub mod info;
pub mod query;
pub mod scope;
pub mod view;

pub use classify::ClassifyLayer;
pub use guard::IdentityGuardLayer;
pub use info::RequestInfo;
pub use view::ViewPath;
