//! Per-connection state handlers may keep between requests: fetch sessions (KIP-227) and
//! where the connection's partitions live. Moves with the connection to another shard
//! (`affinity`). A leaf: imports only the pieces it holds.

use super::affinity::ShardAffinity;
use super::fetch_sessions::FetchSessions;

#[derive(Default)]
pub struct ConnectionState {
    pub fetch_sessions: FetchSessions,
    pub affinity: ShardAffinity,
}
