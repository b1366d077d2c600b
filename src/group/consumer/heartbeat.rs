//! ConsumerGroupHeartbeat for one KIP-848 group: joining (epoch 0), leaving (epoch -1/-2),
//! heartbeating with the owned partitions, and the answer carrying the member's assignment
//! when it changed; and `tick`, which removes members whose heartbeats stopped.
//!
//! Owns: the request's validation and the member's lifecycle through heartbeats. Must not:
//! compute assignments (that is `assignor`) or read the clock (`now` is an argument).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use uuid::Uuid;

use super::super::wire::sb;
use super::{
    CONSUMER_HEARTBEAT_INTERVAL_MS, ClientIdentity, ConsumerGroup, ConsumerMember, LEAVE_EPOCH,
    MAX_SUBSCRIBED_TOPICS, Partitions, STATIC_LEAVE_EPOCH, TopicsView,
};

/// Why a heartbeat is refused: the error code and the message sent with it.
type Refusal = (ResponseError, &'static str);

fn error(code: ResponseError, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(message)))
        .with_member_epoch(-1)
        .with_heartbeat_interval_ms(CONSUMER_HEARTBEAT_INTERVAL_MS)
}

impl ConsumerGroup {
    /// One ConsumerGroupHeartbeat. From v1 the client makes its member id; when it sends
    /// none (v0) the coordinator makes one.
    pub fn heartbeat(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
        client: ClientIdentity<'_>,
        topics: &TopicsView,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        if let Err((code, message)) = check_subscription(request) {
            return error(code, message);
        }
        let epoch = request.member_epoch;
        if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&request.member_id, epoch, topics);
        }
        let member_id = if epoch == 0 {
            match self.join(request, client, topics, now) {
                Ok(member_id) => member_id,
                Err((code, message)) => return error(code, message),
            }
        } else {
            let member_id = request.member_id.to_string();
            if let Err((code, message)) = self.refresh(&member_id, request, topics, now) {
                return error(code, message);
            }
            member_id
        };
        // Partition counts of subscribed topics changed (topic created, grown, deleted).
        if self.topics_changed(topics) {
            self.bump_and_assign(topics);
        }
        let Some(m) = self.members.get_mut(&member_id) else {
            return error(ResponseError::UnknownMemberId, "unknown member id");
        };
        if let Some(owned) = &request.topic_partitions {
            record_owned(m, owned, topics);
        }
        self.reconcile(&member_id, now);
        let heartbeat_interval_ms = self.heartbeat_interval_ms();
        let Some(m) = self.members.get_mut(&member_id) else {
            return error(ResponseError::UnknownMemberId, "unknown member id");
        };
        let assignment = assignment_to_send(m, topics);
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(&member_id)))
            .with_member_epoch(m.member_epoch)
            .with_heartbeat_interval_ms(heartbeat_interval_ms)
            .with_assignment(assignment)
    }

    /// A member leaves (dynamic or static leave epoch): its partitions go back to the assignor.
    fn leave(
        &mut self,
        member_id: &str,
        epoch: i32,
        topics: &TopicsView,
    ) -> ConsumerGroupHeartbeatResponse {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.bump_and_assign(topics);
        }
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(member_id)))
            .with_member_epoch(epoch)
            .with_heartbeat_interval_ms(0)
    }

    /// A member joins (epoch 0), or a static member comes back in its predecessor's place.
    /// Returns the member id it is known by from now on.
    fn join(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
        client: ClientIdentity<'_>,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<String, Refusal> {
        let Some(subscribed) = &request.subscribed_topic_names else {
            return Err((
                ResponseError::InvalidRequest,
                "a joining member must send its subscription",
            ));
        };
        let mut member_id = request.member_id.to_string();
        // v1 clients make their own member id; one that does not still gets one.
        if member_id.is_empty() {
            member_id = Uuid::new_v4().simple().to_string();
        }
        let instance_id = request.instance_id.as_ref().map(|s| s.to_string());
        // A static member coming back takes over its predecessor's place and partitions.
        let predecessor = instance_id.as_ref().and_then(|inst| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(inst) && m.member_id != member_id)
                .map(|m| m.member_id.clone())
        });
        let mut member = ConsumerMember {
            member_id: member_id.clone(),
            instance_id,
            rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
            client_id: client.client_id.to_string(),
            client_host: client.client_host.to_string(),
            member_epoch: 0,
            previous_epoch: 0,
            subscribed: subscribed.iter().map(|t| t.0.to_string()).collect(),
            rebalance_timeout: Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64),
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            revocation_deadline: None,
            session_deadline: now + self.session_timeout(),
            sent: None,
        };
        let unchanged_static = match predecessor.and_then(|p| self.members.remove(&p)) {
            Some(old) => {
                let target = self.target.remove(&old.member_id);
                let same = old.subscribed == member.subscribed;
                member.assigned = old.assigned;
                member.pending_revocation = old.pending_revocation;
                member.member_epoch = old.member_epoch;
                member.previous_epoch = old.previous_epoch;
                if let Some(t) = target {
                    self.target.insert(member_id.clone(), t);
                }
                same
            }
            None => false,
        };
        let rejoin = self.members.remove(&member_id).is_some();
        self.members.insert(member_id.clone(), member);
        if !unchanged_static || rejoin {
            self.bump_and_assign(topics);
        }
        Ok(member_id)
    }

    /// A known member's heartbeat: fences stale epochs, extends the session and takes a
    /// changed subscription or rebalance timeout.
    fn refresh(
        &mut self,
        member_id: &str,
        request: &ConsumerGroupHeartbeatRequest,
        topics: &TopicsView,
        now: Instant,
    ) -> Result<(), Refusal> {
        let epoch = request.member_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err((ResponseError::UnknownMemberId, "unknown member id"));
        };
        if epoch != m.member_epoch && epoch != m.previous_epoch {
            return Err((
                ResponseError::FencedMemberEpoch,
                "the member epoch is fenced",
            ));
        }
        let session_timeout = self.session_timeout();
        let Some(m) = self.members.get_mut(member_id) else {
            return Err((ResponseError::UnknownMemberId, "unknown member id"));
        };
        m.session_deadline = now + session_timeout;
        if request.rebalance_timeout_ms > 0 {
            m.rebalance_timeout = Duration::from_millis(request.rebalance_timeout_ms as u64);
        }
        let mut changed = false;
        if let Some(names) = &request.subscribed_topic_names {
            let new: BTreeSet<String> = names.iter().map(|t| t.0.to_string()).collect();
            if new != m.subscribed {
                m.subscribed = new;
                changed = true;
            }
        }
        if changed {
            self.bump_and_assign(topics);
        }
        Ok(())
    }

    /// Removes members whose session ended or who did not revoke in time; true if any.
    pub fn tick(&mut self, group_id: &str, now: Instant) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %group_id, member = %id, "consumer-protocol member removed (session or revocation timeout)");
            self.members.remove(id);
            self.target.remove(id);
        }
        if expired.is_empty() {
            return false;
        }
        // The assignor needs names and partition counts only; the ones the last target was
        // computed with serve (the next heartbeat notices any change).
        let view: TopicsView = self
            .topics_seen
            .iter()
            .map(|(t, n)| (t.clone(), (Uuid::nil(), *n)))
            .collect();
        self.bump_and_assign(&view);
        true
    }
}

/// Refuses what this coordinator does not serve: regex subscriptions and subscriptions
/// longer than `MAX_SUBSCRIBED_TOPICS`.
fn check_subscription(request: &ConsumerGroupHeartbeatRequest) -> Result<(), Refusal> {
    if request
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return Err((
            ResponseError::InvalidRequest,
            "regex subscriptions are not supported; subscribe to topic names",
        ));
    }
    if request
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|t| t.len() > MAX_SUBSCRIBED_TOPICS)
    {
        return Err((ResponseError::InvalidRequest, "too many subscribed topics"));
    }
    Ok(())
}

/// Takes in what the member reports owning: revocations it no longer reports are done, and
/// a member that lost track of what it owns gets its assignment again.
fn record_owned(m: &mut ConsumerMember, owned: &[OwnedPartitions], topics: &TopicsView) {
    let by_id: HashMap<Uuid, &str> = topics
        .iter()
        .map(|(n, (id, _))| (*id, n.as_str()))
        .collect();
    let mut reported = Partitions::new();
    for tp in owned {
        if let Some(name) = by_id.get(&tp.topic_id) {
            reported
                .entry(name.to_string())
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
    }
    reported.retain(|_, ps| !ps.is_empty());
    // Revocations the member no longer reports are done.
    let still: Partitions = m
        .pending_revocation
        .iter()
        .map(|(t, ps)| {
            let kept = reported
                .get(t)
                .map(|r| ps.intersection(r).copied().collect())
                .unwrap_or_default();
            (t.clone(), kept)
        })
        .filter(|(_, ps): &(String, BTreeSet<i32>)| !ps.is_empty())
        .collect();
    m.pending_revocation = still;
    if m.pending_revocation.is_empty() {
        m.revocation_deadline = None;
    }
    // A member that lost track of what it owns gets its assignment again.
    if reported != m.assigned {
        m.sent = None;
    }
}

/// The member's assignment when it differs from the one last sent (then remembered as
/// sent); None when unchanged, so a steady member's heartbeats stay small.
fn assignment_to_send(m: &mut ConsumerMember, topics: &TopicsView) -> Option<Assignment> {
    if m.sent.as_ref() == Some(&m.assigned) {
        return None;
    }
    m.sent = Some(m.assigned.clone());
    Some(
        Assignment::default().with_topic_partitions(
            m.assigned
                .iter()
                .filter_map(|(t, ps)| {
                    let (id, _) = topics.get(t)?;
                    Some(
                        TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_partitions(ps.iter().copied().collect()),
                    )
                })
                .collect(),
        ),
    )
}
