//! `security.istio.io`: authentication and authorization resources.

mod authorization_policy;
mod common;
mod peer_authentication;
mod request_authentication;

pub use authorization_policy::*;
pub use common::*;
pub use peer_authentication::*;
pub use request_authentication::*;
