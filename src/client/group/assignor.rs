//! The consumer protocol payloads carried inside JoinGroup / SyncGroup (subscriptions and
//! assignments, version-prefixed) and the range assignor the group leader runs over them.
//!
//! Must not: talk to a broker; callers fetch partition counts and send the bytes.

use crate::client::error::{ClientError, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    consumer_protocol_assignment::TopicPartition as AssignedTopic,
    join_group_response::JoinGroupResponseMember,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;

/// Version of the consumer protocol subscription/assignment payloads we write.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// Range assignment (Java `RangeAssignor`): per topic, partitions in order split into
/// contiguous ranges over members sorted by id; the first `n % m` members get one extra.
pub fn range_assign(
    members: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut result: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        subscribers.sort();
        if subscribers.is_empty() {
            continue;
        }
        let per = count / subscribers.len() as i32;
        let extra = count % subscribers.len() as i32;
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let n = per + i32::from((i as i32) < extra);
            if n > 0
                && let Some(entry) = result.get_mut(*member)
            {
                entry.insert(topic.clone(), (next..next + n).collect());
            }
            next += n;
        }
    }
    result
}

/// This member's subscription as JoinGroup metadata: version prefix, then the payload.
pub(super) fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&CONSUMER_PROTOCOL_VERSION.to_be_bytes());
    subscription
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| ClientError::Invalid(format!("encode subscription: {e}")))?;
    Ok(buf.freeze())
}

/// (member id, subscribed topics) of one member as the leader's JoinGroup answer lists it.
pub(super) fn decode_subscription(m: &JoinGroupResponseMember) -> Result<(String, Vec<String>)> {
    if m.metadata.len() < 2 {
        return Err(ClientError::Invalid(format!(
            "member {} sent empty subscription metadata",
            m.member_id.as_str()
        )));
    }
    let version = i16::from_be_bytes([m.metadata[0], m.metadata[1]]);
    let mut buf = m.metadata.slice(2..);
    // Newer members may write a newer version; its prefix is v0-compatible.
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)).map_err(|e| {
        ClientError::Invalid(format!("member {} subscription: {e}", m.member_id.as_str()))
    })?;
    Ok((
        m.member_id.to_string(),
        sub.topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
    ))
}

/// One member's share of the plan as SyncGroup assignment bytes: version prefix, payload.
pub(super) fn encode_assignment(topics: BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        topics
            .into_iter()
            .map(|(t, parts)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t)))
                    .with_partitions(parts)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&CONSUMER_PROTOCOL_VERSION.to_be_bytes());
    assignment
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| ClientError::Invalid(format!("encode assignment: {e}")))?;
    Ok(buf.freeze())
}

pub(super) fn decode_assignment(raw: &Bytes) -> Result<BTreeMap<String, Vec<i32>>> {
    let mut out = BTreeMap::new();
    if raw.len() < 2 {
        // An empty assignment: this member got nothing (more members than partitions).
        return Ok(out);
    }
    let version = i16::from_be_bytes([raw[0], raw[1]]);
    let mut body = raw.slice(2..);
    let assignment = ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3))
        .map_err(|e| ClientError::Invalid(format!("decode group assignment: {e}")))?;
    for t in assignment.assigned_partitions {
        let mut parts = t.partitions;
        parts.sort_unstable();
        out.insert(t.topic.0.to_string(), parts);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_assignor_gives_leading_members_the_extra_partitions() {
        let counts = BTreeMap::from([("t".to_string(), 5)]);
        let plan = range_assign(&members(&[("b", &["t"]), ("a", &["t"])]), &counts);
        assert_eq!(plan["a"]["t"], vec![0, 1, 2]);
        assert_eq!(plan["b"]["t"], vec![3, 4]);
    }

    #[test]
    fn range_assignor_leaves_surplus_members_empty_and_respects_subscriptions() {
        let counts = BTreeMap::from([("t".to_string(), 1), ("u".to_string(), 2)]);
        let plan = range_assign(&members(&[("a", &["t", "u"]), ("b", &["t"])]), &counts);
        assert_eq!(plan["a"]["t"], vec![0]);
        assert!(!plan["b"].contains_key("t"));
        assert_eq!(plan["a"]["u"], vec![0, 1]);
        assert!(!plan["b"].contains_key("u"));
    }

    #[test]
    fn assignment_round_trips_through_the_consumer_protocol_encoding() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![2, 0]),
        ]);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&0i16.to_be_bytes());
        assignment.encode(&mut buf, 0).expect("encode");
        let decoded = decode_assignment(&buf.freeze()).expect("decode");
        assert_eq!(decoded["t"], vec![0, 2]);
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
    }
}
