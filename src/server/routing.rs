//! Request routing, generated from `registry::api_table!`: decode the body, run the API's
//! handler, turn its answer into a reply. Also the socket-less decoder the fuzzers drive.
//! Must not: hold per-API logic (that is the handler's).

use super::access::cluster_refusal;
use super::context::{IntoReply, RequestContext};
use super::handlers;
use super::refusals::ClusterRefusal;
use super::registry::api_table;
use super::response::Reply;
use crate::protocol::alloc_guard::decode_guarded;
use crate::protocol::share_v2::{ShareAcknowledgeRequestV2, ShareFetchRequestV2};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

macro_rules! routes {
    ($( $api:ident $min:literal ..= $max:literal, $request:ty => $module:ident, $authorize:expr; )*) => {
        /// Decodes the body (consuming the frame, so a Produce's record bytes end up the
        /// only reference to their buffer) and runs the API's handler.
        pub(super) async fn route(ctx: &RequestContext<'_>, body: Bytes) -> Reply {
            match ctx.api {
                $( ApiKey::$api => match decode::<$request>(body, ctx.version) {
                    Ok(request) => match cluster_refusal(ctx) {
                        None => handlers::$module::handle(ctx, request).await.into_reply(ctx),
                        Some(code) => request.refuse(ctx, code).unwrap_or_else(|| {
                            Reply::Close(format!("{:?} has no refusal answer", ctx.api))
                        }),
                    },
                    Err(reply) => reply,
                }, )*
                other => Reply::Close(format!("API {other:?} has no handler")),
            }
        }

        /// Every API checked before its handler has a refusal answer (not `None`).
        #[cfg(test)]
        pub(super) fn apis_without_refusal() -> Vec<ApiKey> {
            let mut missing = Vec::new();
            $( if let Some(api) = super::registry::served(ApiKey::$api)
                && super::access::checked_before_handler(&api.authorize)
                && !<$request as ClusterRefusal>::ANSWERS {
                missing.push(ApiKey::$api);
            } )*
            missing
        }

        /// Decodes a body as `route` would, without running a handler: the bytes left
        /// over, or why it is malformed.
        pub(super) fn decode_only(api: ApiKey, body: Bytes, version: i16) -> Result<usize, String> {
            match api {
                $( ApiKey::$api => decode_rest::<$request>(body, version), )*
                other => Err(format!("API {other:?} has no handler")),
            }
        }
    };
}

api_table!(routes);

fn decode<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, Reply> {
    decode_guarded(|| T::decode(&mut body, version))
        .map_err(|e| Reply::Close(format!("malformed request body: {e}")))
}

fn decode_rest<T: Decodable>(mut body: Bytes, version: i16) -> Result<usize, String> {
    decode_guarded(|| T::decode(&mut body, version))
        .map(|_| body.len())
        .map_err(|e| format!("malformed request body: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_api_checked_before_its_handler_answers_a_refusal() {
        assert!(
            super::apis_without_refusal().is_empty(),
            "{:?}",
            super::apis_without_refusal()
        );
    }
}
