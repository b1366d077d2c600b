//! The server-side assignor of a KIP-848 group (sticky, uniform shares per topic) and
//! reconciliation: moving one member toward its target without ever giving a partition
//! two owners.
//!
//! Owns: the target assignment and the partition-set arithmetic. Must not: build wire
//! answers or read the clock (`now` is an argument).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{ConsumerGroup, Partitions, TopicsView};

/// The partitions of `a` that are not in `b`.
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

/// Adds every partition of `b` to `a`.
fn union_into(a: &mut Partitions, b: &Partitions) {
    for (t, ps) in b {
        a.entry(t.clone()).or_default().extend(ps.iter().copied());
    }
}

impl ConsumerGroup {
    /// Moves one member toward its target: first give up what it must (keeping its epoch),
    /// then take what is free (advancing to the assignment epoch).
    pub(super) fn reconcile(&mut self, member_id: &str, now: Instant) {
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

    pub(super) fn topics_changed(&self, topics: &TopicsView) -> bool {
        self.subscribed_topics()
            .iter()
            .any(|t| topics.get(t).map(|(_, n)| *n) != self.topics_seen.get(t).copied())
    }

    /// New group epoch and a new target assignment, sticky: members keep what they have up
    /// to their fair share; the rest goes to members below it.
    pub(super) fn bump_and_assign(&mut self, topics: &TopicsView) {
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
}
