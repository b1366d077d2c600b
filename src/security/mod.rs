//! Who a connection speaks for, and (as the security work lands) how that is proven and
//! what it may do: principals, authentication mechanisms, the authorizer and quotas. A lower
//! layer: it knows nothing of requests, handlers or shards; the server layer asks it.

pub mod acl;
pub mod authorizer;
pub mod plain;
mod principal;
pub mod scram;
pub mod ssl_principal;
pub mod tls;

pub use principal::{Principal, PrincipalError};
