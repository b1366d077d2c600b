//! Which share sessions a connection opened (KIP-932): each is bound to the connection's
//! number, and ends when the connection closes (`share_close`). Moves with the connection
//! (part of `ConnectionState`). A leaf: imports nothing of the server.

use std::sync::atomic::{AtomicU64, Ordering};

/// Share sessions one connection may have opened and still close when it drops (Kafka
/// keeps one per connection; a client uses one member id per broker). Past it the oldest
/// is forgotten here: that session ends only by its final epoch or when idle.
pub const MAX_SHARE_SESSIONS_PER_CONNECTION: usize = 64;

/// Numbers connections for their share sessions, unique in this process (a connection
/// keeps its number when it moves to another shard).
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The (group, member) share sessions a connection opened, at most
/// `MAX_SHARE_SESSIONS_PER_CONNECTION`.
pub struct ShareSessionsOpened {
    connection: u64,
    opened: Vec<(String, String)>,
}

impl Default for ShareSessionsOpened {
    fn default() -> Self {
        ShareSessionsOpened {
            connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            opened: Vec::new(),
        }
    }
}

impl ShareSessionsOpened {
    /// This connection's number, which a session it opens is bound to.
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// A ShareFetch on this connection opened the member's session (epoch 0).
    pub fn opened(&mut self, group_id: &str, member_id: &str) {
        if self
            .opened
            .iter()
            .any(|(g, m)| g == group_id && m == member_id)
        {
            return;
        }
        if self.opened.len() >= MAX_SHARE_SESSIONS_PER_CONNECTION {
            self.opened.remove(0);
        }
        self.opened
            .push((group_id.to_string(), member_id.to_string()));
    }

    /// (this connection's number, the (group, member) sessions it opened).
    pub fn into_parts(self) -> (u64, Vec<(String, String)>) {
        (self.connection, self.opened)
    }
}
