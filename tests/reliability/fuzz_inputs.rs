//! Inputs for the hostile-input tests: valid request frames of every served API and
//! version, valid record batches, and a seeded mutator (bit flips, interesting integers over
//! length and count fields, truncation, extension, splices). Must not: depend on a broker.

use crate::support::wire::encode_request;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use rand::Rng;
use rand::rngs::StdRng;
use sluice::server::registry::supported_range;

/// Integers that tend to break length and count fields.
pub const INTERESTING_I32: &[i32] = &[
    0,
    1,
    -1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    i32::MIN,
    -2,
];

/// Client id in the seed frames (part of the bytes the seeded mutations start from).
const SEED_CLIENT_ID: &str = "reliability";

/// A frame body (no size prefix) for `request` at every served version.
pub fn frames_of<R: Request + Clone>(request: R, out: &mut Vec<Vec<u8>>) {
    let Some((min, max)) = ApiKey::try_from(R::KEY).ok().and_then(supported_range) else {
        return;
    };
    for v in min..=max {
        if let Ok(framed) = encode_request(&request, v, 7, SEED_CLIENT_ID) {
            out.push(framed[4..].to_vec());
        }
    }
}

pub fn name(s: &str) -> TopicName {
    super::topic_name(s)
}

pub fn seed_requests() -> Vec<Vec<u8>> {
    let batch = super::batch(&[b"v1".to_vec(), b"value-two".to_vec()], Some((5, 0, 0)), 1);
    let mut out = Vec::new();
    frames_of(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(name("t"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.clone())),
                    ]),
            ]),
        &mut out,
    );
    frames_of(
        FetchRequest::default()
            .with_max_bytes(1024)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![fetch_request::FetchPartition::default()]),
            ]),
        &mut out,
    );
    frames_of(
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("t"))),
        ])),
        &mut out,
    );
    frames_of(
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("x"))
            .with_client_software_version(StrBytes::from_static_str("1")),
        &mut out,
    );
    frames_of(
        ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()]),
        ]),
        &mut out,
    );
    frames_of(
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(3)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("segment.bytes"))
                        .with_value(Some(StrBytes::from_static_str("1024"))),
                ]),
        ]),
        &mut out,
    );
    frames_of(
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\0\0\0\0")),
            ]),
        &mut out,
    );
    frames_of(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default(),
                    ]),
            ]),
        &mut out,
    );
    frames_of(SyncGroupRequest::default(), &mut out);
    frames_of(HeartbeatRequest::default(), &mut out);
    frames_of(OffsetFetchRequest::default(), &mut out);
    frames_of(FindCoordinatorRequest::default(), &mut out);
    frames_of(
        InitProducerIdRequest::default().with_transactional_id(None),
        &mut out,
    );
    frames_of(DescribeConfigsRequest::default(), &mut out);
    frames_of(DeleteTopicsRequest::default(), &mut out);
    frames_of(DeleteRecordsRequest::default(), &mut out);
    frames_of(LeaveGroupRequest::default(), &mut out);
    frames_of(DescribeGroupsRequest::default(), &mut out);
    frames_of(ListGroupsRequest::default(), &mut out);
    share_seeds(&mut out);
    assert!(out.len() > 100, "only {} seed frames", out.len());
    out
}

/// ShareFetch / ShareAcknowledge with acknowledgements, v1 and v2 (KIP-1222's RENEW:
/// `sluice::protocol::share_v2`'s codecs, which splice the v2 fields into the crate's v1).
fn share_seeds(out: &mut Vec<Vec<u8>>) {
    use sluice::protocol::share_v2::{ShareAcknowledgeRequestV2, ShareFetchRequestV2};
    let before = out.len();
    let topic_id = uuid::Uuid::from_u128(0x5eed);
    let group = Some(GroupId(StrBytes::from_static_str("g")));
    let member = Some(StrBytes::from_static_str("member"));
    let fetch_batch = share_fetch_request::AcknowledgementBatch::default()
        .with_first_offset(3)
        .with_last_offset(5)
        .with_acknowledge_types(vec![4, 1, 4]);
    frames_of(
        ShareFetchRequestV2 {
            base: ShareFetchRequest::default()
                .with_group_id(group.clone())
                .with_member_id(member.clone())
                .with_share_session_epoch(1)
                .with_topics(vec![
                    share_fetch_request::FetchTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(vec![
                            share_fetch_request::FetchPartition::default()
                                .with_acknowledgement_batches(vec![fetch_batch]),
                        ]),
                ]),
            share_acquire_mode: 1,
            is_renew_ack: true,
        },
        out,
    );
    let ack_batch = share_acknowledge_request::AcknowledgementBatch::default()
        .with_first_offset(0)
        .with_last_offset(9)
        .with_acknowledge_types(vec![4]);
    frames_of(
        ShareAcknowledgeRequestV2 {
            base: ShareAcknowledgeRequest::default()
                .with_group_id(group)
                .with_member_id(member)
                .with_share_session_epoch(2)
                .with_topics(vec![
                    share_acknowledge_request::AcknowledgeTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(vec![
                            share_acknowledge_request::AcknowledgePartition::default()
                                .with_acknowledgement_batches(vec![ack_batch]),
                        ]),
                ]),
            is_renew_ack: true,
        },
        out,
    );
    // Both versions of both APIs, or a codec refused its own message.
    assert_eq!(out.len(), before + 4, "share seed frames missing");
}

pub fn seed_batches() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in [1usize, 2, 5] {
        let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'a' + i as u8; i * 7]).collect();
        out.push(super::batch(&values, None, 1_700_000_000_000).to_vec());
        out.push(super::batch(&values, Some((9, 1, 100)), 1).to_vec());
    }
    let two = [out[0].clone(), out[3].clone()].concat();
    out.push(two);
    out
}

/// One mutation of a seed (or, 1 time in 16, pure random bytes).
pub fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_range(0..16) == 0 {
        let len = rng.random_range(0..256);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        if data.is_empty() {
            data.push(rng.random());
            continue;
        }
        match rng.random_range(0..7) {
            0 => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..data.len());
                data[i] = rng.random();
            }
            2 if data.len() >= 4 => {
                let i = rng.random_range(0..=data.len() - 4);
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())];
                data[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 if data.len() >= 2 => {
                let i = rng.random_range(0..=data.len() - 2);
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())] as i16;
                data[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            4 => {
                let keep = rng.random_range(0..data.len());
                data.truncate(keep);
            }
            5 => {
                let extra = rng.random_range(1..64);
                data.extend((0..extra).map(|_| rng.random::<u8>()));
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let at = rng.random_range(0..=data.len());
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
