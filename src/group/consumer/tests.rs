//! Scenarios for one KIP-848 group, driven by simulated clients that obey the coordinator.

use super::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

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
