//! Per-connection state handlers may keep between requests: who the connection speaks for and
//! from where, the listener it came in on and its SASL state, fetch sessions (KIP-227) and where the connection's partitions live. Moves with the connection to another shard
//! (`affinity`). A leaf: imports only the pieces it holds.

use super::affinity::ShardAffinity;
use super::fetch_sessions::FetchSessions;
use super::sasl::SaslSession;
use super::share_opened::ShareSessionsOpened;
use crate::config::listeners::ListenerSpec;
use crate::security::Principal;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Default)]
pub struct ConnectionState {
    /// `User:ANONYMOUS` until authentication says otherwise; what the authorizer checks.
    pub principal: Principal,
    /// The client's address (ACL host, per-IP limits); `None` if the socket could not say.
    pub peer_ip: Option<IpAddr>,
    /// The listener the connection came in on (its protocol and advertised address);
    /// `None` only for connections made without one (unit tests).
    pub listener: Option<Arc<ListenerSpec>>,
    /// Where the connection stands in SASL authentication (`NotRequired` on PLAINTEXT).
    pub sasl: SaslSession,
    pub fetch_sessions: FetchSessions,
    /// Share sessions this connection opened: they end when it closes (`share_close`).
    pub share_sessions: ShareSessionsOpened,
    pub affinity: ShardAffinity,
    /// Over a client quota: read no further request before this (KIP-219), set by
    /// `quota` when a request earns a throttle and taken by the connection loop.
    pub throttled_until: Option<std::time::Instant>,
}
