//! Hand-written FetchResponse framing (v4–v16) around record data that is NOT in memory.
//!
//! The `kafka-protocol` crate would need the record bytes in a buffer; for zero-copy fetch
//! the response is a sequence of inline framing pieces and file regions, so the framing is
//! written here. A unit test checks the bytes against the crate's encoder for every version.

use bytes::{BufMut, BytesMut};

pub struct FetchFraming {
    version: i16,
    flexible: bool,
}

/// One partition's fixed fields, written before its records.
pub struct PartitionHeader<'a> {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (producer id, first offset) of each aborted transaction the records overlap; None
    /// answers read_uncommitted fetches (a null array, as Kafka sends).
    pub aborted_transactions: Option<&'a [(i64, i64)]>,
}

impl FetchFraming {
    pub fn new(version: i16) -> FetchFraming {
        FetchFraming {
            version,
            flexible: version >= 12,
        }
    }

    fn put_array_len(&self, buf: &mut BytesMut, len: usize) {
        if self.flexible {
            put_unsigned_varint(buf, len as u32 + 1);
        } else {
            buf.put_i32(len as i32);
        }
    }

    /// Response header and the top-level fields up to the topics array length.
    pub fn begin(
        &self,
        buf: &mut BytesMut,
        correlation_id: i32,
        error_code: i16,
        session_id: i32,
        topic_count: usize,
    ) {
        self.begin_throttled(buf, correlation_id, 0, error_code, session_id, topic_count);
    }

    /// `begin` for an answer that carries a quota throttle time (an empty throttled fetch).
    pub fn begin_throttled(
        &self,
        buf: &mut BytesMut,
        correlation_id: i32,
        throttle_time_ms: i32,
        error_code: i16,
        session_id: i32,
        topic_count: usize,
    ) {
        buf.put_i32(correlation_id);
        if self.flexible {
            buf.put_u8(0); // response header tagged fields
        }
        buf.put_i32(throttle_time_ms);
        if self.version >= 7 {
            buf.put_i16(error_code);
            buf.put_i32(session_id);
        }
        self.put_array_len(buf, topic_count);
    }

    pub fn begin_topic(
        &self,
        buf: &mut BytesMut,
        name: &str,
        topic_id: &uuid::Uuid,
        partition_count: usize,
    ) {
        if self.version >= 13 {
            buf.put_slice(topic_id.as_bytes());
        } else if self.flexible {
            put_unsigned_varint(buf, name.len() as u32 + 1);
            buf.put_slice(name.as_bytes());
        } else {
            buf.put_i16(name.len() as i16);
            buf.put_slice(name.as_bytes());
        }
        self.put_array_len(buf, partition_count);
    }

    /// Partition fields up to and including the records length prefix; `records_len`
    /// bytes of record data must follow, then `end_partition`.
    pub fn begin_partition(&self, buf: &mut BytesMut, p: &PartitionHeader, records_len: usize) {
        buf.put_i32(p.partition_index);
        buf.put_i16(p.error_code);
        buf.put_i64(p.high_watermark);
        buf.put_i64(p.last_stable_offset);
        if self.version >= 5 {
            buf.put_i64(p.log_start_offset);
        }
        match p.aborted_transactions {
            None if self.flexible => put_unsigned_varint(buf, 0),
            None => buf.put_i32(-1),
            Some(aborted) => {
                self.put_array_len(buf, aborted.len());
                for (producer_id, first_offset) in aborted {
                    buf.put_i64(*producer_id);
                    buf.put_i64(*first_offset);
                    if self.flexible {
                        buf.put_u8(0);
                    }
                }
            }
        }
        if self.version >= 11 {
            buf.put_i32(-1); // preferred_read_replica
        }
        if self.flexible {
            put_unsigned_varint(buf, records_len as u32 + 1);
        } else {
            buf.put_i32(records_len as i32);
        }
    }

    pub fn end_partition(&self, buf: &mut BytesMut) {
        if self.flexible {
            buf.put_u8(0);
        }
    }

    pub fn end_topic(&self, buf: &mut BytesMut) {
        if self.flexible {
            buf.put_u8(0);
        }
    }

    pub fn end(&self, buf: &mut BytesMut) {
        if self.flexible {
            buf.put_u8(0);
        }
    }
}

pub fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{
        FetchResponse, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn reference(
        version: i16,
        records: &Bytes,
        topic_id: uuid::Uuid,
        aborted: Option<&[(i64, i64)]>,
    ) -> Vec<u8> {
        use kafka_protocol::messages::ProducerId;
        use kafka_protocol::messages::fetch_response::AbortedTransaction;
        let aborted = aborted.map(|list| {
            list.iter()
                .map(|(pid, first)| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(*pid))
                        .with_first_offset(*first)
                })
                .collect()
        });
        let partition = PartitionData::default()
            .with_partition_index(2)
            .with_error_code(0)
            .with_high_watermark(100)
            .with_last_stable_offset(100)
            .with_log_start_offset(7)
            .with_aborted_transactions(aborted)
            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
            .with_records(Some(records.clone()));
        // Names up to v12, ids from v13: the generated encoder refuses the other one.
        let topic = if version >= 13 {
            FetchableTopicResponse::default().with_topic_id(topic_id)
        } else {
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
        }
        .with_partitions(vec![partition]);
        let response = FetchResponse::default()
            .with_throttle_time_ms(0)
            .with_error_code(0)
            .with_session_id(if version >= 7 { 42 } else { 0 })
            .with_responses(vec![topic]);
        let mut buf = BytesMut::new();
        let header_version = if version >= 12 { 1 } else { 0 };
        ResponseHeader::default()
            .with_correlation_id(9)
            .encode(&mut buf, header_version)
            .unwrap();
        response.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    #[test]
    fn framing_matches_the_generated_encoder_for_every_version() {
        let records = Bytes::from_static(b"0123456789abcdef-record-bytes");
        let topic_id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        let aborted: &[(i64, i64)] = &[(5, 10), (6, 20)];
        for (version, aborted) in (4..=16).flat_map(|v| [(v, None), (v, Some(aborted))]) {
            let f = FetchFraming::new(version);
            let mut buf = BytesMut::new();
            f.begin(&mut buf, 9, 0, if version >= 7 { 42 } else { 0 }, 1);
            f.begin_topic(&mut buf, "orders", &topic_id, 1);
            f.begin_partition(
                &mut buf,
                &PartitionHeader {
                    partition_index: 2,
                    error_code: 0,
                    high_watermark: 100,
                    last_stable_offset: 100,
                    log_start_offset: 7,
                    aborted_transactions: aborted,
                },
                records.len(),
            );
            buf.put_slice(&records);
            f.end_partition(&mut buf);
            f.end_topic(&mut buf);
            f.end(&mut buf);
            assert_eq!(
                buf.to_vec(),
                reference(version, &records, topic_id, aborted),
                "version {version}"
            );
        }
    }
}
