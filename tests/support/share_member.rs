//! A share-group member over the raw protocol, for the cluster share tests: it joins at
//! the group's coordinator and fetches at a partition's leader over one connection, as a
//! client does (its share session lives there and ends with it).

use super::cluster::{LocalCluster, create_topic, find_coordinator, leaders};
use super::share::{Acks, acknowledge_topics, acquired, alter_group, fetch_topics, sb};
use super::wire::{MemberConn, RawConn};
use kafka_protocol::messages::{
    GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use std::time::{Duration, Instant};

/// Waits on a loaded 2-core box: not speed assertions.
const WAIT: Duration = Duration::from_secs(60);

/// A share-group member of partition 0 of one topic and its share session.
pub struct ShareMember {
    pub group: String,
    pub id: String,
    pub topic_id: uuid::Uuid,
    pub session_epoch: i32,
    /// The session's connection (the session ends with it).
    pub conn: MemberConn,
}

fn join_heartbeat(
    addr: &str,
    group: &str,
    member: &str,
    topic: &str,
) -> Result<ShareGroupHeartbeatResponse, String> {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![TopicName(sb(topic))]));
    RawConn::connect(addr)?.try_call(&request, 1)
}

impl ShareMember {
    /// Joins at `addr` (the coordinator), retrying until it is assigned partition 0.
    pub fn join(addr: &str, group: &str, id: &str, topic: &str) -> ShareMember {
        let deadline = Instant::now() + WAIT;
        loop {
            let joined = join_heartbeat(addr, group, id, topic);
            if let Ok(r) = &joined
                && r.error_code == 0
                && let Some(a) = &r.assignment
                && a.topic_partitions
                    .first()
                    .is_some_and(|t| t.partitions == [0])
            {
                return ShareMember {
                    group: group.to_string(),
                    id: id.to_string(),
                    topic_id: a.topic_partitions[0].topic_id,
                    session_epoch: 0,
                    conn: MemberConn::default(),
                };
            }
            assert!(
                Instant::now() < deadline,
                "{id} never joined at {addr}: {joined:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn fetch(&mut self, addr: &str, acks: Acks) -> Result<ShareFetchResponse, String> {
        self.fetch_at_most(addr, acks, 500)
    }

    pub fn fetch_at_most(
        &mut self,
        addr: &str,
        acks: Acks,
        max_records: i32,
    ) -> Result<ShareFetchResponse, String> {
        let request = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(max_records)
            .with_batch_size(max_records)
            .with_topics(fetch_topics(self.topic_id, acks, 1 << 20));
        let response: ShareFetchResponse = self.conn.try_call(addr, &request, 1)?;
        if response.error_code == 0 {
            self.session_epoch += 1;
        }
        Ok(response)
    }

    /// Acquired ranges of the first answer that has any, within `WAIT` (empty if none).
    pub fn fetch_until_acquired(&mut self, addr: &str) -> Vec<(i64, i64, i16)> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let got = acquired(&self.fetch(addr, &[]).unwrap_or_else(|e| panic!("{e}")));
            if !got.is_empty() {
                return got;
            }
        }
        Vec::new()
    }

    pub fn acknowledge(
        &mut self,
        addr: &str,
        acks: Acks,
    ) -> Result<ShareAcknowledgeResponse, String> {
        self.acknowledge_over(&mut RawConn::connect(addr)?, acks)
    }

    /// ShareAcknowledge over a connection already open.
    pub fn acknowledge_over(
        &mut self,
        conn: &mut RawConn,
        acks: Acks,
    ) -> Result<ShareAcknowledgeResponse, String> {
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_topics(acknowledge_topics(self.topic_id, acks));
        let response: ShareAcknowledgeResponse = conn.try_call(&request, 1)?;
        if response.error_code == 0 {
            self.session_epoch += 1;
        }
        Ok(response)
    }
}

/// A formed 3-node cluster, an RF=3 one-partition topic `topic` and a share group
/// (starting at the earliest offset) coordinated by a broker that does not lead the
/// partition, named `{topic}-{label}-N`: (cluster, leader, coordinator, group).
pub fn cluster_with_group_led_elsewhere(
    topic: &str,
    label: &str,
) -> (LocalCluster, i32, i32, String) {
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    assert_eq!(create_topic(cluster.node(1), topic, 1, 3, WAIT), 0);
    cluster.wait_until_known_everywhere(topic, 1, WAIT);
    let leader = leaders(cluster.node(1), topic)[0];
    let (group, coordinator) = (0..1000)
        .map(|i| format!("{topic}-{label}-{i}"))
        .find_map(|g| {
            let c = find_coordinator(cluster.node(leader), &g).ok()?;
            (c != leader).then_some((g, c))
        })
        .expect("a group another broker coordinates");
    let earliest = [("share.auto.offset.reset", "earliest")];
    assert_eq!(alter_group(cluster.node(leader), &group, &earliest), 0);
    (cluster, leader, coordinator, group)
}
