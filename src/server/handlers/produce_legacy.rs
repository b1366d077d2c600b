//! Produce v0–v2: the requests of pre-0.11 clients, whose message formats (magic 0 and 1)
//! this broker does not store. They get a proper answer — every partition refused with
//! UNSUPPORTED_FOR_MESSAGE_FORMAT — instead of a dropped connection. The codec crate does
//! not cover these versions, so the few fields needed are read and written here.

use crate::server::response::Reply;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;

/// Upper bound on topics and partitions read from one legacy request.
const MAX_LEGACY_ENTRIES: i32 = 100_000;

fn read_i16(buf: &mut Bytes) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

fn read_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn read_string(buf: &mut Bytes) -> Option<Bytes> {
    let len = read_i16(buf)?;
    let len = usize::try_from(len).ok()?;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

fn skip_bytes(buf: &mut Bytes) -> Option<()> {
    let len = read_i32(buf)?;
    if len < 0 {
        return Some(());
    }
    let len = len as usize;
    (buf.remaining() >= len).then(|| buf.advance(len))
}

/// A topic named in a legacy request, with the partitions it targets.
type LegacyTopic = (Bytes, Vec<i32>);

/// The request body after the v1 header: acks, timeout, [topic [partition, message set]].
fn parse(body: &mut Bytes) -> Option<(i16, Vec<LegacyTopic>)> {
    let acks = read_i16(body)?;
    let _timeout_ms = read_i32(body)?;
    let topic_count = read_i32(body)?;
    if !(0..=MAX_LEGACY_ENTRIES).contains(&topic_count) {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..topic_count {
        let name = read_string(body)?;
        let partition_count = read_i32(body)?;
        if !(0..=MAX_LEGACY_ENTRIES).contains(&partition_count) {
            return None;
        }
        let mut partitions = Vec::new();
        for _ in 0..partition_count {
            partitions.push(read_i32(body)?);
            skip_bytes(body)?;
        }
        topics.push((name, partitions));
    }
    Some((acks, topics))
}

/// Answers a Produce v0–v2 request (`body` is what follows the request header).
pub fn handle(version: i16, correlation_id: i32, mut body: Bytes) -> Reply {
    let Some((acks, topics)) = parse(&mut body) else {
        return Reply::Close(format!("malformed Produce v{version} request"));
    };
    if acks == 0 {
        return Reply::None;
    }
    let code = ResponseError::UnsupportedForMessageFormat.code();
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0); // size, patched below
    out.put_i32(correlation_id);
    out.put_i32(topics.len() as i32);
    for (name, partitions) in &topics {
        out.put_i16(name.len() as i16);
        out.put_slice(name);
        out.put_i32(partitions.len() as i32);
        for &p in partitions {
            out.put_i32(p);
            out.put_i16(code);
            out.put_i64(-1); // base offset
            if version >= 2 {
                out.put_i64(-1); // log append time
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle time
    }
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    Reply::Frame(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_is_refused_with_unsupported_for_message_format() {
        let mut body = BytesMut::new();
        body.put_i16(1); // acks
        body.put_i32(1000);
        body.put_i32(1);
        body.put_i16(3);
        body.put_slice(b"old");
        body.put_i32(2);
        for p in [0, 4] {
            body.put_i32(p);
            body.put_i32(3);
            body.put_slice(b"xyz");
        }
        let Reply::Frame(frame) = handle(2, 77, body.freeze()) else {
            panic!("expected a response frame");
        };
        let mut f = frame;
        assert_eq!(f.get_i32() as usize, f.remaining());
        assert_eq!(f.get_i32(), 77);
        assert_eq!(f.get_i32(), 1);
        assert_eq!(f.get_i16(), 3);
        f.advance(3);
        assert_eq!(f.get_i32(), 2);
        for p in [0, 4] {
            assert_eq!(f.get_i32(), p);
            assert_eq!(f.get_i16(), 43);
            assert_eq!(f.get_i64(), -1);
            assert_eq!(f.get_i64(), -1);
        }
        assert_eq!(f.get_i32(), 0);
        assert!(!f.has_remaining());
    }

    #[test]
    fn truncated_requests_close_the_connection() {
        assert!(matches!(
            handle(0, 1, Bytes::from_static(&[0, 1, 0])),
            Reply::Close(_)
        ));
    }
}
