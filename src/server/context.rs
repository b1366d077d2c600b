//! What every handler knows about the request it serves: the shard it runs on, the API and
//! version, the correlation and client ids, and the connection's own state. A leaf of the
//! server layer: handlers import it, it imports no handler.

use super::connection_state::ConnectionState;
use super::response::{Reply, encode_frame};
use crate::group::ClientInfo;
use crate::shard::Shard;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use std::cell::RefCell;
use std::rc::Rc;

pub struct RequestContext<'a> {
    pub shard: &'a Rc<Shard>,
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// State kept between this connection's requests (fetch sessions, shard affinity). A
    /// connection serves one request at a time, so the borrow is never contended; handlers
    /// must not hold it across an `.await`.
    pub connection: &'a RefCell<ConnectionState>,
}

impl RequestContext<'_> {
    /// The `host:port` clients of this connection's listener are told to use (Kafka answers
    /// Metadata and FindCoordinator with the listener the request came in on).
    pub fn advertised_address(&self) -> (String, i32) {
        match &self.connection.borrow().listener {
            Some(listener) => (listener.advertised_host.clone(), listener.advertised_port),
            None => self.shard.config.advertised_address(),
        }
    }

    /// Who sent the request, as group descriptions show a member: its client id and, as
    /// Kafka writes it, `/` and the peer's address (empty if the socket could not say).
    pub fn client_info(&self) -> ClientInfo {
        ClientInfo {
            client_id: self.client_id.clone().unwrap_or_default(),
            client_host: self
                .connection
                .borrow()
                .peer_ip
                .map_or_else(String::new, |ip| format!("/{ip}")),
        }
    }

    /// Encodes a response body in this request's version, with the matching header.
    pub fn reply<B: Encodable>(&self, body: &B) -> Reply {
        match encode_frame(
            self.correlation_id,
            self.api.response_header_version(self.version),
            body,
            self.version,
        ) {
            Ok(frame) => Reply::Frame(frame),
            Err(e) => Reply::Close(format!("{:?} v{}: {e}", self.api, self.version)),
        }
    }
}

/// What a handler's answer becomes on the wire: a response body is encoded in the
/// request's version; a `Reply` (Produce's deferred answer, Fetch's file regions) passes
/// through. Lets every handler share one signature, `handle(ctx, request) -> impl IntoReply`.
pub trait IntoReply {
    fn into_reply(self, ctx: &RequestContext<'_>) -> Reply;
}

impl IntoReply for Reply {
    fn into_reply(self, _ctx: &RequestContext<'_>) -> Reply {
        self
    }
}

impl<B: Encodable> IntoReply for B {
    fn into_reply(self, ctx: &RequestContext<'_>) -> Reply {
        ctx.reply(&self)
    }
}
