//! Per-connection state handlers may keep between requests: who the connection speaks for and
//! from where, fetch sessions (KIP-227) and where the connection's partitions live. Moves with the connection to another shard
//! (`affinity`). A leaf: imports only the pieces it holds.

use super::affinity::ShardAffinity;
use super::fetch_sessions::FetchSessions;
use crate::security::Principal;
use std::net::IpAddr;

#[derive(Default)]
pub struct ConnectionState {
    /// `User:ANONYMOUS` until authentication says otherwise; what the authorizer checks.
    pub principal: Principal,
    /// The client's address (ACL host, per-IP limits); `None` if the socket could not say.
    pub peer_ip: Option<IpAddr>,
    pub fetch_sessions: FetchSessions,
    pub affinity: ShardAffinity,
}
