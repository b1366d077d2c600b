//! The next-generation consumer group protocol (KIP-848) for one group: members heartbeat
//! (ConsumerGroupHeartbeat) with their subscription and owned partitions, and the
//! coordinator computes the assignment itself (a sticky uniform assignor) and hands it out
//! incrementally — a partition moves only after its previous owner has acknowledged the
//! revocation, so no partition ever has two owners.
//!
//! Simplifications against Kafka: one server assignor (`uniform`, also answering to
//! `range`), no regex subscriptions, no rack awareness; a member that does not revoke within
//! its rebalance timeout is fenced (removed).
//!
//! Owns: membership, epochs and reconciliation of one consumer group. Must not: do I/O, read
//! the clock (`now` is an argument) or look up topics — the caller passes the topics it
//! knows as `TopicsView`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::ConsumerGroupHeartbeatResponse;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// How often members heartbeat (Kafka's `group.consumer.heartbeat.interval.ms` is 5 s; a
/// shorter interval makes reconciliation, which takes a few heartbeats, quicker).
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: i32 = 1_000;
/// A member silent this long is removed (Kafka's `group.consumer.session.timeout.ms`).
pub const CONSUMER_SESSION_TIMEOUT_MS: u64 = 45_000;
/// The assignor used whatever the client asks for (Kafka's default server assignor).
pub const UNIFORM_ASSIGNOR: &str = "uniform";
/// Member epochs a heartbeat uses to leave (dynamic and static member).
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;
/// Subscribed topics one member may list.
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;

/// Topics known to the cluster: name -> (topic id, partition count).
pub type TopicsView = HashMap<String, (Uuid, i32)>;

/// topic -> partitions.
type Partitions = BTreeMap<String, BTreeSet<i32>>;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

fn minus(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(other) => ps.difference(other).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(t.clone(), rest);
        }
    }
    out
}

fn union_into(a: &mut Partitions, b: &Partitions) {
    for (t, ps) in b {
        a.entry(t.clone()).or_default().extend(ps.iter().copied());
    }
}

pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    pub subscribed: BTreeSet<String>,
    rebalance_timeout: Duration,
    /// What the member has been told to own.
    pub assigned: Partitions,
    /// Told to give these up; still theirs until a heartbeat no longer lists them.
    pending_revocation: Partitions,
    revocation_deadline: Option<Instant>,
    session_deadline: Instant,
    /// The assignment last sent, so an unchanged one is not repeated.
    sent: Option<Partitions>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// member id -> partitions the assignor wants it to own.
    target: BTreeMap<String, Partitions>,
    /// Partition counts of subscribed topics the target was computed with.
    topics_seen: BTreeMap<String, i32>,
    /// Completed target computations (rebalances), for metrics.
    pub rebalances_total: u64,
}

/// Who is asking, for ConsumerGroupDescribe.
pub struct ClientIdentity<'a> {
    pub client_id: &'a str,
    pub client_host: &'a str,
}

fn error(code: ResponseError, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(message)))
        .with_member_epoch(-1)
        .with_heartbeat_interval_ms(CONSUMER_HEARTBEAT_INTERVAL_MS)
}

impl ConsumerGroup {
    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// "Empty", "Assigning", "Reconciling" or "Stable", as Kafka names them.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch != self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// OffsetCommit's check for a member of this group (Kafka: STALE_MEMBER_EPOCH when the
    /// epoch is not the member's current one).
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        let Some(m) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if epoch != m.member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// One ConsumerGroupHeartbeat. From v1 the client makes its member id; when it sends
    /// none (v0) the coordinator makes one.
    pub fn heartbeat(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
        client: ClientIdentity<'_>,
        topics: &TopicsView,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let mut member_id = request.member_id.to_string();
        let epoch = request.member_epoch;
        if request
            .subscribed_topic_regex
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            return error(
                ResponseError::InvalidRequest,
                "regex subscriptions are not supported; subscribe to topic names",
            );
        }
        if request
            .subscribed_topic_names
            .as_ref()
            .is_some_and(|t| t.len() > MAX_SUBSCRIBED_TOPICS)
        {
            return error(ResponseError::InvalidRequest, "too many subscribed topics");
        }
        if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
            if self.members.remove(&member_id).is_some() {
                self.target.remove(&member_id);
                self.bump_and_assign(topics);
            }
            return ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(sb(&member_id)))
                .with_member_epoch(epoch)
                .with_heartbeat_interval_ms(0);
        }
        if epoch == 0 {
            let Some(subscribed) = &request.subscribed_topic_names else {
                return error(
                    ResponseError::InvalidRequest,
                    "a joining member must send its subscription",
                );
            };
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
                session_deadline: now + Duration::from_millis(CONSUMER_SESSION_TIMEOUT_MS),
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
        } else {
            let Some(m) = self.members.get_mut(&member_id) else {
                return error(ResponseError::UnknownMemberId, "unknown member id");
            };
            if epoch != m.member_epoch && epoch != m.previous_epoch {
                return error(
                    ResponseError::FencedMemberEpoch,
                    "the member epoch is fenced",
                );
            }
            m.session_deadline = now + Duration::from_millis(CONSUMER_SESSION_TIMEOUT_MS);
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
        }
        // Partition counts of subscribed topics changed (topic created, grown, deleted).
        if self.topics_changed(topics) {
            self.bump_and_assign(topics);
        }
        let Some(m) = self.members.get_mut(&member_id) else {
            return error(ResponseError::UnknownMemberId, "unknown member id");
        };
        if let Some(owned) = &request.topic_partitions {
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
        self.reconcile(&member_id, now);
        let Some(m) = self.members.get_mut(&member_id) else {
            return error(ResponseError::UnknownMemberId, "unknown member id");
        };
        let assignment = if m.sent.as_ref() != Some(&m.assigned) {
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
        } else {
            None
        };
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(&member_id)))
            .with_member_epoch(m.member_epoch)
            .with_heartbeat_interval_ms(CONSUMER_HEARTBEAT_INTERVAL_MS)
            .with_assignment(assignment)
    }

    /// Moves one member toward its target: first give up what it must (keeping its epoch),
    /// then take what is free (advancing to the assignment epoch).
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let mut held_by_others = Partitions::new();
        for (id, other) in &self.members {
            if id != member_id {
                union_into(&mut held_by_others, &other.assigned);
                union_into(&mut held_by_others, &other.pending_revocation);
            }
        }
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if !m.pending_revocation.is_empty() {
            return;
        }
        let revoke = minus(&m.assigned, &target);
        if !revoke.is_empty() {
            m.assigned = minus(&m.assigned, &revoke);
            m.pending_revocation = revoke;
            m.revocation_deadline = Some(now + m.rebalance_timeout);
            return;
        }
        let free = minus(&minus(&target, &m.assigned), &held_by_others);
        union_into(&mut m.assigned, &free);
        if m.member_epoch != assignment_epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = assignment_epoch;
        }
    }

    fn topics_changed(&self, topics: &TopicsView) -> bool {
        self.subscribed_topics()
            .iter()
            .any(|t| topics.get(t).map(|(_, n)| *n) != self.topics_seen.get(t).copied())
    }

    /// New group epoch and a new target assignment, sticky: members keep what they have up
    /// to their fair share; the rest goes to members below it.
    fn bump_and_assign(&mut self, topics: &TopicsView) {
        self.group_epoch += 1;
        let mut target: BTreeMap<String, Partitions> = self
            .members
            .keys()
            .map(|id| (id.clone(), Partitions::new()))
            .collect();
        let mut seen = BTreeMap::new();
        for topic in self.subscribed_topics() {
            let Some((_, n)) = topics.get(&topic) else {
                continue;
            };
            seen.insert(topic.clone(), *n);
            let mut subscribers: Vec<&String> = self
                .members
                .values()
                .filter(|m| m.subscribed.contains(&topic))
                .map(|m| &m.member_id)
                .collect();
            let previous = |id: &String| -> BTreeSet<i32> {
                self.target
                    .get(id)
                    .and_then(|t| t.get(&topic))
                    .cloned()
                    .unwrap_or_default()
            };
            // Members already holding more get the +1 shares first (fewer moves).
            subscribers.sort_by_key(|id| (std::cmp::Reverse(previous(id).len()), (*id).clone()));
            let k = subscribers.len();
            let n_usize = usize::try_from(*n).unwrap_or(0);
            let (base, extra) = (n_usize / k.max(1), n_usize % k.max(1));
            let mut taken = BTreeSet::new();
            let mut quota: Vec<(String, usize, BTreeSet<i32>)> = Vec::new();
            for (i, id) in subscribers.iter().enumerate() {
                let share = base + usize::from(i < extra);
                let kept: BTreeSet<i32> = previous(id)
                    .into_iter()
                    .filter(|p| *p < *n && !taken.contains(p))
                    .take(share)
                    .collect();
                taken.extend(kept.iter().copied());
                quota.push(((*id).clone(), share, kept));
            }
            let mut free = (0..*n).filter(|p| !taken.contains(p));
            for (id, share, mut kept) in quota {
                while kept.len() < share {
                    match free.next() {
                        Some(p) => {
                            kept.insert(p);
                        }
                        None => break,
                    }
                }
                if !kept.is_empty()
                    && let Some(t) = target.get_mut(&id)
                {
                    t.insert(topic.clone(), kept);
                }
            }
        }
        self.target = target;
        self.topics_seen = seen;
        self.assignment_epoch = self.group_epoch;
        self.rebalances_total += 1;
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

    /// ConsumerGroupDescribe's view of this group.
    pub fn describe(&self, group_id: &str, topics: &TopicsView) -> DescribedGroup {
        let tps = |p: &Partitions| -> DescribedAssignment {
            DescribedAssignment::default().with_topic_partitions(
                p.iter()
                    .map(|(t, ps)| {
                        DescribedTopicPartitions::default()
                            .with_topic_id(topics.get(t).map(|(id, _)| *id).unwrap_or_default())
                            .with_topic_name(TopicName(sb(t)))
                            .with_partitions(ps.iter().copied().collect())
                    })
                    .collect(),
            )
        };
        let members = self
            .members
            .values()
            .map(|m| {
                DescribedMember::default()
                    .with_member_id(sb(&m.member_id))
                    .with_instance_id(m.instance_id.as_deref().map(sb))
                    .with_rack_id(m.rack_id.as_deref().map(sb))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(sb(&m.client_id))
                    .with_client_host(sb(&m.client_host))
                    .with_subscribed_topic_names(
                        m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                    )
                    .with_assignment(tps(&m.assigned))
                    .with_target_assignment(tps(&self
                        .target
                        .get(&m.member_id)
                        .cloned()
                        .unwrap_or_default()))
            })
            .collect();
        DescribedGroup::default()
            .with_error_code(0)
            .with_group_id(GroupId(sb(group_id)))
            .with_group_state(sb(self.state_name()))
            .with_group_epoch(self.group_epoch)
            .with_assignment_epoch(self.assignment_epoch)
            .with_assignor_name(sb(UNIFORM_ASSIGNOR))
            .with_members(members)
            .with_authorized_operations(i32::MIN)
    }

    /// Partitions assigned right now, for tests: member id -> count.
    pub fn assigned_counts(&self) -> BTreeMap<String, usize> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), count(&m.assigned)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;

    const TOPIC: &str = "t";

    fn topics(partitions: i32) -> TopicsView {
        HashMap::from([(TOPIC.to_string(), (Uuid::from_u128(7), partitions))])
    }

    fn beat(
        g: &mut ConsumerGroup,
        member: &str,
        epoch: i32,
        owned: Option<Vec<i32>>,
        view: &TopicsView,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_member_id(sb(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names((epoch == 0).then(|| vec![TopicName(sb(TOPIC))]))
            .with_topic_partitions(owned.map(|p| {
                vec![
                    Owned::default()
                        .with_topic_id(Uuid::from_u128(7))
                        .with_partitions(p),
                ]
            }));
        let client = ClientIdentity {
            client_id: "c",
            client_host: "",
        };
        g.heartbeat(&request, client, view, now)
    }

    /// Every partition is held (assigned or still being revoked) by at most one member.
    fn assert_single_owner(g: &ConsumerGroup) {
        let mut seen = BTreeSet::new();
        for m in g.members.values() {
            for ps in m.assigned.values().chain(m.pending_revocation.values()) {
                for p in ps {
                    assert!(seen.insert(*p), "partition {p} has two owners");
                }
            }
        }
    }

    /// A client that obeys: owns exactly what it was last told, heartbeats with its epoch.
    struct Sim {
        id: String,
        epoch: i32,
        owned: Vec<i32>,
    }

    fn step(g: &mut ConsumerGroup, s: &mut Sim, view: &TopicsView, now: Instant) {
        let r = beat(g, &s.id, s.epoch, Some(s.owned.clone()), view, now);
        assert_eq!(r.error_code, 0, "{}: {:?}", s.id, r.error_message);
        s.epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            s.owned = a
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect();
        }
        assert_single_owner(g);
    }

    #[test]
    fn members_converge_with_single_ownership_and_sticky_moves() {
        let view = topics(12);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut sims: Vec<Sim> = Vec::new();
        for i in 0..4 {
            let id = format!("m{i}");
            let r = beat(&mut g, &id, 0, None, &view, now);
            assert_eq!(r.error_code, 0);
            sims.push(Sim {
                id,
                epoch: r.member_epoch,
                owned: r
                    .assignment
                    .map(|a| {
                        a.topic_partitions
                            .iter()
                            .flat_map(|t| t.partitions.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
            });
            assert_single_owner(&g);
            // A few rounds in a member order that changes each time.
            for round in 0..4 {
                for k in 0..sims.len() {
                    let j = (k + round + i) % sims.len();
                    step(&mut g, &mut sims[j], &view, now);
                }
            }
        }
        assert_eq!(g.state_name(), "Stable");
        let counts: Vec<usize> = sims.iter().map(|s| s.owned.len()).collect();
        assert_eq!(counts, vec![3, 3, 3, 3], "uniform shares");
        assert!(sims.iter().all(|s| s.epoch == g.group_epoch));

        // One member leaves: only its partitions move.
        let before: Vec<Vec<i32>> = sims.iter().map(|s| s.owned.clone()).collect();
        let r = beat(&mut g, "m3", LEAVE_EPOCH, None, &view, now);
        assert_eq!(r.member_epoch, LEAVE_EPOCH);
        sims.pop();
        for _ in 0..3 {
            for s in sims.iter_mut() {
                step(&mut g, s, &view, now);
            }
        }
        for (s, old) in sims.iter().zip(&before) {
            assert!(
                old.iter().all(|p| s.owned.contains(p)),
                "{} kept {old:?} (now {:?})",
                s.id,
                s.owned
            );
            assert_eq!(s.owned.len(), 4);
        }
        assert_eq!(g.state_name(), "Stable");
    }

    #[test]
    fn silent_members_expire_and_their_partitions_are_reassigned() {
        let view = topics(4);
        let t0 = Instant::now();
        let mut g = ConsumerGroup::default();
        beat(&mut g, "a", 0, None, &view, t0);
        let later = t0 + Duration::from_millis(CONSUMER_SESSION_TIMEOUT_MS / 2);
        beat(&mut g, "b", 0, None, &view, later);
        let epoch = g.group_epoch;
        // a never heartbeats again (b's session runs longer): a alone expires.
        let expiry = t0 + Duration::from_millis(CONSUMER_SESSION_TIMEOUT_MS);
        assert!(!g.tick("g", expiry - Duration::from_millis(1)));
        assert!(g.tick("g", expiry));
        assert!(!g.members.contains_key("a"));
        assert!(g.group_epoch > epoch);
        let b_epoch = g.members["b"].member_epoch;
        let r = beat(&mut g, "b", b_epoch, Some(vec![]), &view, expiry);
        let mut got: Vec<i32> = r
            .assignment
            .expect("b gets a's partitions")
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3]);
    }

    #[test]
    fn commits_need_the_current_member_epoch() {
        let view = topics(2);
        let mut g = ConsumerGroup::default();
        let r = beat(&mut g, "a", 0, None, &view, Instant::now());
        assert_eq!(g.check_commit("a", r.member_epoch), Ok(()));
        assert_eq!(
            g.check_commit("a", r.member_epoch + 1),
            Err(ResponseError::StaleMemberEpoch)
        );
        assert_eq!(
            g.check_commit("nobody", r.member_epoch),
            Err(ResponseError::UnknownMemberId)
        );
    }
}
