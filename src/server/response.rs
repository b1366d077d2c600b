//! What a handler hands back to the connection: nothing (acks=0), an encoded frame, or a
//! frame made of inline bytes and file regions that go from the page cache to the socket
//! with splice (Fetch).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;
use std::os::fd::OwnedFd;
use std::sync::Arc;

pub enum Reply {
    /// The request expects no response (Produce with acks=0).
    None,
    /// A complete frame, size prefix included.
    Frame(Bytes),
    /// A frame assembled from pieces; the size prefix is part of the first piece.
    Chunks(Vec<Chunk>),
    /// The request was malformed in a way that leaves the stream unusable: close it.
    Close(String),
}

pub enum Chunk {
    Inline(Bytes),
    File(FileChunk),
}

/// A region of a segment file, with a descriptor of its own so it can cross from the
/// owning shard to the connection's shard, and stays readable even if retention unlinks
/// the segment meanwhile.
pub struct FileChunk {
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: u32,
}

impl FileChunk {
    /// Duplicates the region's descriptor (one dup per region per fetch, not per record).
    pub fn from_region(region: &crate::storage::FileRegion) -> std::io::Result<FileChunk> {
        use std::os::fd::AsFd;
        let fd = region.file.as_fd().try_clone_to_owned()?;
        Ok(FileChunk {
            fd: Arc::new(fd),
            position: region.position,
            len: region.len,
        })
    }
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
