//! What a handler hands back to the connection: nothing (acks=0), an encoded frame, or a
//! frame made of inline bytes and file regions that go from the page cache to the socket
//! with splice (Fetch).

use crate::storage::FileRegion;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;

pub enum Reply {
    /// The request expects no response (Produce with acks=0).
    None,
    /// A complete frame, size prefix included.
    Frame(Bytes),
    /// A frame assembled from pieces; the size prefix is part of the first piece.
    Chunks(Vec<Chunk>),
    /// The request was malformed in a way that leaves the stream unusable: close it.
    Close(String),
    /// The request is dispatched; its answer comes when this completes (Produce waiting
    /// for durability). The connection serves the next request meanwhile and still
    /// writes answers in request order.
    Deferred(futures_util::future::LocalBoxFuture<'static, Reply>),
}

pub enum Chunk {
    Inline(Bytes),
    /// Record bytes that go from the page cache to the socket without a copy.
    File(FileRegion),
}

/// Encodes `header` + `body` as one frame: 4-byte size, header, body.
pub fn encode_frame<B: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &B,
    body_version: i16,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| format!("encode response header: {e}"))?;
    body.encode(&mut buf, body_version)
        .map_err(|e| format!("encode response: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}
