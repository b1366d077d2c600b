//! ShareFetch and ShareAcknowledge version 2 (Kafka 4.2: KIP-1222's RENEW acknowledgements,
//! KIP-1206's acquire mode), which kafka-protocol 0.18 does not know: it stops at v1 and no
//! newer release exists. Each wrapper here holds the crate's v1 message plus the fields v2
//! adds, and speaks both versions.
//!
//! Why a splice and not a codec of our own: v2 adds fixed-size fields at the top level only,
//! and every nested struct is the same as in v1 (Kafka's JSON specs, validVersions "1-2"):
//!
//! | message                  | v2 adds, after                                          |
//! |--------------------------|---------------------------------------------------------|
//! | ShareFetchRequest        | ShareAcquireMode int8, IsRenewAck bool — BatchSize      |
//! | ShareFetchResponse       | nothing (AcquisitionLockTimeoutMs is there since v1)    |
//! | ShareAcknowledgeRequest  | IsRenewAck bool — ShareSessionEpoch                     |
//! | ShareAcknowledgeResponse | AcquisitionLockTimeoutMs int32 — ErrorMessage           |
//!
//! So a v2 body is the v1 body with a few bytes inserted at a place found by measuring the
//! fields before it (two compact strings and some int32s, or an int32, an int16 and a
//! compact string). Decoding measures that place, takes the new bytes out and lets the
//! crate decode the rest as v1; encoding lets the crate encode v1 and inserts the new bytes.
//! Every field the crate already handles (nullable strings, UTF-8, arrays, tagged fields)
//! stays the crate's; what is ours is one prefix measure per message. Bad input is an
//! error from the measure or from the crate, never a panic (the dispatcher also decodes
//! under `alloc_guard::decode_guarded`).
//!
//! Must not: know what the fields mean (the share handlers do).

use anyhow::{Result, bail};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
};
use kafka_protocol::protocol::buf::{ByteBuf, ByteBufMut};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, Request, VersionRange,
};

/// The versions of ShareFetch and ShareAcknowledge these codecs speak.
pub const SHARE_VERSIONS: VersionRange = VersionRange { min: 1, max: 2 };
/// The version the crate knows, which the v2 bodies are spliced from.
const V1: i16 = 1;
/// The first version with RENEW acknowledgements (KIP-1222).
pub const RENEW_VERSION: i16 = 2;

/// ShareAcquireMode (KIP-1206): acquire along producer batches (and maybe past
/// `max_records` to finish one), or strictly at most `max_records`.
pub const ACQUIRE_MODE_BATCH_OPTIMIZED: i8 = 0;
pub const ACQUIRE_MODE_RECORD_LIMIT: i8 = 1;

/// Bytes of an unsigned varint at most (a u32 in 7-bit groups).
const UVARINT_BYTES_MAX: usize = 5;

fn check_version(version: i16) -> Result<()> {
    if !(SHARE_VERSIONS.min..=SHARE_VERSIONS.max).contains(&version) {
        bail!("ShareFetch / ShareAcknowledge v{version} is not spoken (1..=2)");
    }
    Ok(())
}

/// Measures a compact (nullable) string at the front of `body`: its bytes, length included.
fn compact_string_bytes(body: &[u8]) -> Result<usize> {
    let mut length: u64 = 0;
    for (i, byte) in body.iter().take(UVARINT_BYTES_MAX).enumerate() {
        length |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // 0 is null, n is a string of n - 1 bytes.
            let total = (i + 1) as u64 + length.saturating_sub(1);
            return match usize::try_from(total) {
                Ok(total) if total <= body.len() => Ok(total),
                _ => bail!(
                    "compact string of {} bytes past the body's end",
                    length.saturating_sub(1)
                ),
            };
        }
    }
    bail!("truncated or overlong varint")
}

/// Where the fields v2 adds sit in a body: after the top-level fields of `prefix`.
#[derive(Clone, Copy)]
struct Splice {
    /// The fields before the insertion, in wire order.
    prefix: &'static [Field],
    /// Bytes v2 inserts there.
    added: usize,
}

/// A top-level field before the insertion, as far as measuring it goes.
#[derive(Clone, Copy)]
enum Field {
    /// Fixed-size fields (ints) of this many bytes.
    Fixed(usize),
    /// A compact (nullable) string: an unsigned varint length + 1 (0: null), the bytes.
    CompactString,
}

impl Splice {
    /// The offset of the inserted fields in `body` (v1 or v2: the prefix is the same).
    fn offset(&self, body: &[u8]) -> Result<usize> {
        let mut at = 0usize;
        for field in self.prefix {
            let rest = body.get(at..).unwrap_or_default();
            at += match field {
                Field::Fixed(n) if *n <= rest.len() => *n,
                Field::Fixed(_) => bail!("body ends inside its fixed fields"),
                Field::CompactString => compact_string_bytes(rest)?,
            };
        }
        Ok(at)
    }

    /// Decodes a v2 body: takes out the added bytes, decodes the rest as v1 with the crate,
    /// and consumes from `buf` exactly what that decode read plus the added bytes.
    fn decode<T: Decodable, B: ByteBuf>(&self, buf: &mut B) -> Result<(T, Bytes)> {
        let body = buf.peek_bytes(0..buf.remaining());
        let at = self.offset(&body)?;
        let Some(added) = body.get(at..at + self.added) else {
            bail!("body ends inside the fields v2 adds");
        };
        let added = Bytes::copy_from_slice(added);
        let mut v1 = BytesMut::with_capacity(body.len() - self.added);
        v1.extend_from_slice(&body[..at]);
        v1.extend_from_slice(&body[at + self.added..]);
        let mut v1 = v1.freeze();
        let length = v1.len();
        let message = T::decode(&mut v1, V1)?;
        buf.advance(length - v1.len() + self.added);
        Ok((message, added))
    }

    /// Encodes `message` as v1 with the crate and writes it with `added` inserted.
    fn encode<T: Encodable, B: ByteBufMut>(
        &self,
        buf: &mut B,
        message: &T,
        added: &[u8],
    ) -> Result<()> {
        debug_assert_eq!(added.len(), self.added);
        let mut v1 = BytesMut::with_capacity(message.compute_size(V1)?);
        message.encode(&mut v1, V1)?;
        let at = self.offset(&v1)?;
        buf.put_slice(&v1[..at]);
        buf.put_slice(added);
        buf.put_slice(&v1[at..]);
        Ok(())
    }
}

/// ShareFetchRequest: GroupId, MemberId, then six int32s (epoch, MaxWaitMs, MinBytes,
/// MaxBytes, MaxRecords, BatchSize); v2 adds ShareAcquireMode and IsRenewAck.
const FETCH_REQUEST: Splice = Splice {
    prefix: &[Field::CompactString, Field::CompactString, Field::Fixed(24)],
    added: 2,
};
/// ShareAcknowledgeRequest: GroupId, MemberId, ShareSessionEpoch; v2 adds IsRenewAck.
const ACKNOWLEDGE_REQUEST: Splice = Splice {
    prefix: &[Field::CompactString, Field::CompactString, Field::Fixed(4)],
    added: 1,
};
/// ShareAcknowledgeResponse: ThrottleTimeMs, ErrorCode, ErrorMessage; v2 adds
/// AcquisitionLockTimeoutMs.
const ACKNOWLEDGE_RESPONSE: Splice = Splice {
    prefix: &[Field::Fixed(6), Field::CompactString],
    added: 4,
};

/// Kafka's bool: any byte but 0 is true.
fn bool_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(|b| *b != 0)
}

/// A ShareFetch request, v1 or v2.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareFetchRequestV2 {
    pub base: ShareFetchRequest,
    /// v2: `ACQUIRE_MODE_*` (0 in v1).
    pub share_acquire_mode: i8,
    /// v2: the acknowledgements include RENEW; the fetch acquires nothing (false in v1).
    pub is_renew_ack: bool,
}

impl Decodable for ShareFetchRequestV2 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        if version == V1 {
            return Ok(Self {
                base: ShareFetchRequest::decode(buf, V1)?,
                ..Self::default()
            });
        }
        let (base, added) = FETCH_REQUEST.decode(buf)?;
        Ok(Self {
            base,
            share_acquire_mode: added[0] as i8,
            is_renew_ack: bool_at(&added, 1),
        })
    }
}

impl Encodable for ShareFetchRequestV2 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        if version == V1 {
            return self.base.encode(buf, V1);
        }
        let added = [self.share_acquire_mode as u8, u8::from(self.is_renew_ack)];
        FETCH_REQUEST.encode(buf, &self.base, &added)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        check_version(version)?;
        let added = if version == V1 {
            0
        } else {
            FETCH_REQUEST.added
        };
        Ok(self.base.compute_size(V1)? + added)
    }
}

/// A ShareFetch response: the same fields in v1 and v2.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareFetchResponseV2 {
    pub base: ShareFetchResponse,
}

impl Decodable for ShareFetchResponseV2 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        Ok(Self {
            base: ShareFetchResponse::decode(buf, V1)?,
        })
    }
}

impl Encodable for ShareFetchResponseV2 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        self.base.encode(buf, V1)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        check_version(version)?;
        self.base.compute_size(V1)
    }
}

/// A ShareAcknowledge request, v1 or v2.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareAcknowledgeRequestV2 {
    pub base: ShareAcknowledgeRequest,
    /// v2: the acknowledgements include RENEW (false in v1).
    pub is_renew_ack: bool,
}

impl Decodable for ShareAcknowledgeRequestV2 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        if version == V1 {
            return Ok(Self {
                base: ShareAcknowledgeRequest::decode(buf, V1)?,
                ..Self::default()
            });
        }
        let (base, added) = ACKNOWLEDGE_REQUEST.decode(buf)?;
        Ok(Self {
            base,
            is_renew_ack: bool_at(&added, 0),
        })
    }
}

impl Encodable for ShareAcknowledgeRequestV2 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        if version == V1 {
            return self.base.encode(buf, V1);
        }
        ACKNOWLEDGE_REQUEST.encode(buf, &self.base, &[u8::from(self.is_renew_ack)])
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        check_version(version)?;
        let added = if version == V1 {
            0
        } else {
            ACKNOWLEDGE_REQUEST.added
        };
        Ok(self.base.compute_size(V1)? + added)
    }
}

/// A ShareAcknowledge response, v1 or v2.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareAcknowledgeResponseV2 {
    pub base: ShareAcknowledgeResponse,
    /// v2: the group's acquisition lock duration, what a RENEW extended the locks by (not
    /// written in v1).
    pub acquisition_lock_timeout_ms: i32,
}

impl Decodable for ShareAcknowledgeResponseV2 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        if version == V1 {
            return Ok(Self {
                base: ShareAcknowledgeResponse::decode(buf, V1)?,
                ..Self::default()
            });
        }
        let (base, added) = ACKNOWLEDGE_RESPONSE.decode(buf)?;
        let mut added = added;
        Ok(Self {
            base,
            acquisition_lock_timeout_ms: added.get_i32(),
        })
    }
}

impl Encodable for ShareAcknowledgeResponseV2 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        if version == V1 {
            return self.base.encode(buf, V1);
        }
        let added = self.acquisition_lock_timeout_ms.to_be_bytes();
        ACKNOWLEDGE_RESPONSE.encode(buf, &self.base, &added)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        check_version(version)?;
        let added = if version == V1 {
            0
        } else {
            ACKNOWLEDGE_RESPONSE.added
        };
        Ok(self.base.compute_size(V1)? + added)
    }
}

impl ShareFetchResponseV2 {
    /// Sets the throttle (the first field of every version), as the crate's builders do.
    pub fn with_throttle_time_ms(mut self, value: i32) -> Self {
        self.base.throttle_time_ms = value;
        self
    }
}

impl ShareAcknowledgeResponseV2 {
    /// Sets the throttle (the first field of every version), as the crate's builders do.
    pub fn with_throttle_time_ms(mut self, value: i32) -> Self {
        self.base.throttle_time_ms = value;
        self
    }
}

macro_rules! share_message {
    ($($message:ty => $base:ty),* $(,)?) => {
        $(
            impl Message for $message {
                const VERSIONS: VersionRange = SHARE_VERSIONS;
                const DEPRECATED_VERSIONS: Option<VersionRange> = None;
            }
            impl HeaderVersion for $message {
                fn header_version(version: i16) -> i16 {
                    <$base as HeaderVersion>::header_version(version)
                }
            }
        )*
    };
}

share_message!(
    ShareFetchRequestV2 => ShareFetchRequest,
    ShareFetchResponseV2 => ShareFetchResponse,
    ShareAcknowledgeRequestV2 => ShareAcknowledgeRequest,
    ShareAcknowledgeResponseV2 => ShareAcknowledgeResponse,
);

impl Request for ShareFetchRequestV2 {
    const KEY: i16 = ShareFetchRequest::KEY;
    type Response = ShareFetchResponseV2;
}

impl Request for ShareAcknowledgeRequestV2 {
    const KEY: i16 = ShareAcknowledgeRequest::KEY;
    type Response = ShareAcknowledgeResponseV2;
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::messages::share_acknowledge_request::{
        AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
    };
    use kafka_protocol::messages::share_acknowledge_response::{
        PartitionData as AckPartitionData, ShareAcknowledgeTopicResponse,
    };
    use kafka_protocol::messages::share_fetch_request::{
        AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
    };
    use kafka_protocol::messages::share_fetch_response::{
        AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn sb(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    fn encoded<T: Encodable>(message: &T, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, version).expect("encodes");
        assert_eq!(buf.len(), message.compute_size(version).expect("sizes"));
        buf.freeze()
    }

    fn fetch_request() -> ShareFetchRequestV2 {
        let topic = uuid::Uuid::from_u128(0x1234);
        ShareFetchRequestV2 {
            base: ShareFetchRequest::default()
                .with_group_id(Some(GroupId(sb("workers"))))
                .with_member_id(Some(sb("member-ü")))
                .with_share_session_epoch(7)
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_max_records(100)
                .with_batch_size(50)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition_index(3)
                                .with_acknowledgement_batches(vec![
                                    AcknowledgementBatch::default()
                                        .with_first_offset(10)
                                        .with_last_offset(12)
                                        .with_acknowledge_types(vec![4, 1, 4]),
                                ]),
                        ]),
                ])
                .with_forgotten_topics_data(vec![
                    ForgottenTopic::default()
                        .with_topic_id(topic)
                        .with_partitions(vec![1]),
                ]),
            share_acquire_mode: ACQUIRE_MODE_RECORD_LIMIT,
            is_renew_ack: true,
        }
    }

    fn acknowledge_request() -> ShareAcknowledgeRequestV2 {
        ShareAcknowledgeRequestV2 {
            base: ShareAcknowledgeRequest::default()
                .with_group_id(None)
                .with_member_id(Some(sb("m")))
                .with_share_session_epoch(3)
                .with_topics(vec![
                    AcknowledgeTopic::default()
                        .with_topic_id(uuid::Uuid::from_u128(9))
                        .with_partitions(vec![
                            AcknowledgePartition::default()
                                .with_partition_index(0)
                                .with_acknowledgement_batches(vec![
                                    AckBatch::default()
                                        .with_first_offset(0)
                                        .with_last_offset(4)
                                        .with_acknowledge_types(vec![4]),
                                ]),
                        ]),
                ]),
            is_renew_ack: true,
        }
    }

    fn acknowledge_response() -> ShareAcknowledgeResponseV2 {
        ShareAcknowledgeResponseV2 {
            base: ShareAcknowledgeResponse::default()
                .with_error_message(Some(sb("almost")))
                .with_responses(vec![
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(uuid::Uuid::from_u128(9))
                        .with_partitions(vec![AckPartitionData::default().with_error_code(121)]),
                ]),
            acquisition_lock_timeout_ms: 15_000,
        }
    }

    fn fetch_response() -> ShareFetchResponseV2 {
        ShareFetchResponseV2 {
            base: ShareFetchResponse::default()
                .with_acquisition_lock_timeout_ms(1_000)
                .with_responses(vec![
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(uuid::Uuid::from_u128(9))
                        .with_partitions(vec![
                            PartitionData::default()
                                .with_records(Some(Bytes::from_static(b"batch")))
                                .with_acquired_records(vec![
                                    AcquiredRecords::default()
                                        .with_first_offset(1)
                                        .with_last_offset(2)
                                        .with_delivery_count(1),
                                ]),
                        ]),
                ]),
        }
    }

    fn roundtrip<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(
        message: &T,
        version: i16,
    ) {
        let mut bytes = encoded(message, version);
        let decoded = T::decode(&mut bytes, version).expect("decodes");
        assert!(bytes.is_empty(), "{} bytes left over", bytes.len());
        assert_eq!(&decoded, message);
    }

    #[test]
    fn every_message_round_trips_in_v2() {
        roundtrip(&fetch_request(), 2);
        roundtrip(&fetch_response(), 2);
        roundtrip(&acknowledge_request(), 2);
        roundtrip(&acknowledge_response(), 2);
    }

    #[test]
    fn v1_is_the_crates_encoding_without_the_v2_fields() {
        let request = fetch_request();
        assert_eq!(encoded(&request, 1), encoded(&request.base, 1));
        let v1 = ShareFetchRequestV2 {
            share_acquire_mode: 0,
            is_renew_ack: false,
            ..request
        };
        roundtrip(&v1, 1);
        let ack = acknowledge_request();
        assert_eq!(encoded(&ack, 1), encoded(&ack.base, 1));
        let response = acknowledge_response();
        assert_eq!(encoded(&response, 1), encoded(&response.base, 1));
        let fetched = fetch_response();
        assert_eq!(encoded(&fetched, 2), encoded(&fetched.base, 1));
    }

    /// The v2 bytes are the v1 bytes with the new fields where Kafka's schema puts them.
    #[test]
    fn the_v2_fields_sit_where_kafkas_schema_puts_them() {
        let request = fetch_request();
        let (v1, v2) = (encoded(&request.base, 1), encoded(&request, 2));
        // GroupId "workers" (1 + 7), MemberId "member-ü" (1 + 9), six int32s.
        let at = 8 + 10 + 24;
        assert_eq!(&v2[..at], &v1[..at]);
        assert_eq!(&v2[at..at + 2], &[ACQUIRE_MODE_RECORD_LIMIT as u8, 1]);
        assert_eq!(&v2[at + 2..], &v1[at..]);

        let ack = acknowledge_request();
        let (v1, v2) = (encoded(&ack.base, 1), encoded(&ack, 2));
        // GroupId null (1), MemberId "m" (2), the epoch.
        let at = 1 + 2 + 4;
        assert_eq!(
            (&v2[..at], v2[at], &v2[at + 1..]),
            (&v1[..at], 1, &v1[at..])
        );

        let response = acknowledge_response();
        let (v1, v2) = (encoded(&response.base, 1), encoded(&response, 2));
        // Throttle, error code, ErrorMessage "almost" (1 + 6).
        let at = 4 + 2 + 7;
        assert_eq!(&v2[at..at + 4], &15_000i32.to_be_bytes());
        assert_eq!((&v2[..at], &v2[at + 4..]), (&v1[..at], &v1[at..]));
    }

    #[test]
    fn versions_outside_1_to_2_are_refused() {
        let mut empty = Bytes::new();
        assert!(ShareFetchRequestV2::decode(&mut empty, 3).is_err());
        assert!(ShareAcknowledgeRequestV2::decode(&mut empty, 0).is_err());
        let mut buf = BytesMut::new();
        assert!(fetch_response().encode(&mut buf, 3).is_err());
    }

    /// A lying string length, a cut anywhere, random mutations: an error or a message,
    /// never a panic.
    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let mut seeds = vec![
            encoded(&fetch_request(), 2),
            encoded(&acknowledge_request(), 2),
        ];
        seeds.push(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]));
        let mut rng = StdRng::seed_from_u64(0x5eed_0222);
        for seed in &seeds {
            for cut in 0..seed.len() {
                let _ = ShareFetchRequestV2::decode(&mut seed.slice(..cut), 2);
                let _ = ShareAcknowledgeRequestV2::decode(&mut seed.slice(..cut), 2);
                let _ = ShareAcknowledgeResponseV2::decode(&mut seed.slice(..cut), 2);
            }
            for _ in 0..2_000 {
                let mut bytes = seed.to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
                let _ = ShareFetchRequestV2::decode(&mut Bytes::from(bytes.clone()), 2);
                let _ = ShareAcknowledgeRequestV2::decode(&mut Bytes::from(bytes.clone()), 2);
                let _ = ShareAcknowledgeResponseV2::decode(&mut Bytes::from(bytes), 2);
            }
        }
        // A truncated body is refused outright.
        let whole = encoded(&fetch_request(), 2);
        assert!(ShareFetchRequestV2::decode(&mut whole.slice(..whole.len() - 1), 2).is_err());
        assert!(ShareFetchRequestV2::decode(&mut whole.slice(..20), 2).is_err());
    }
}
