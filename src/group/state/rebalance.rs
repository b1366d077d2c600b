//! Generations of one classic group: starting a rebalance, ending the join phase (the
//! generation moves on, the leader gets everyone's metadata), removing members, and the
//! timers (initial delay, rebalance timeout, session expiry) that drive it.
//!
//! Owns: the state transitions Empty -> PreparingRebalance -> CompletingRebalance. Must not:
//! read the clock (`now` is an argument) or answer requests directly.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::{Group, GroupState, GroupTimings, InitialDelay, Member, join_error, sync_error};

impl Group {
    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Takes a member out and answers anything it was waiting for with `code`.
    pub(super) fn remove_member(&mut self, member_id: &str, code: ResponseError) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if let Some(w) = member.join_waiter.take() {
            let _ = w.tx.send(join_error(code, member_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.tx.send(sync_error(code));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self
                .members_in_join_order()
                .first()
                .map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// After a member left or expired: rebalance (or finish the one in progress).
    pub(super) fn after_member_removed(
        &mut self,
        now: Instant,
        timings: &GroupTimings,
        wall_ms: i64,
    ) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, timings)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, wall_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
        // The last member leaving completes the (now empty) join at once.
        self.try_complete_join(now, wall_ms);
    }

    pub(super) fn prepare_rebalance(&mut self, now: Instant, timings: &GroupTimings) {
        // A generation whose record is still proposed is abandoned too: its commit,
        // when it comes, releases nothing (`release_sync_answers`).
        self.sync_held = false;
        if self.state == GroupState::CompletingRebalance {
            // The leader's assignment for the aborted generation is void (or, in cluster
            // mode, was not stored yet): tell the members waiting in SyncGroup to rejoin.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.tx.send(sync_error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let rebalance_timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty && !timings.initial_rebalance_delay.is_zero() {
            let delay = timings.initial_rebalance_delay;
            self.initial_delay = Some(InitialDelay {
                deadline: now + delay,
                remaining: rebalance_timeout.saturating_sub(delay),
            });
            self.new_member_added = false;
            self.rebalance_deadline = None;
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now + rebalance_timeout);
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every known member has rejoined (and no member id
    /// handed out with MEMBER_ID_REQUIRED is still expected).
    pub(super) fn try_complete_join(&mut self, now: Instant, wall_ms: i64) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay.is_some() {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if all_joined && self.pending_members.is_empty() {
            self.complete_join(now, wall_ms);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation moves on
    /// and every joined member gets its answer (the leader with everyone's metadata).
    fn complete_join(&mut self, now: Instant, wall_ms: i64) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            self.remove_member(&id, ResponseError::UnknownMemberId);
        }
        self.initial_delay = None;
        self.rebalance_deadline = None;
        self.new_member_added = false;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            // Kafka's classic group keeps its protocol type once it is Empty: ListGroups and
            // DescribeGroups still say "consumer", and the next member must match it.
            self.leader = None;
            self.empty_since_ms = Some(wall_ms);
            return;
        }
        self.rebalances_total += 1;
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members_in_join_order()
                .first()
                .map(|m| m.member_id.clone());
        }
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.join_waiter.take()) else {
                continue;
            };
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let response = self.join_response(&id, waiter.version, is_leader, false);
            let _ = waiter.tx.send(response);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now + m.session_timeout;
            }
        }
    }

    /// Timers: expired MEMBER_ID_REQUIRED ids, initial delay, rebalance timeout, sessions.
    pub fn tick(&mut self, now: Instant, timings: &GroupTimings, wall_ms: i64) {
        if self.consumer.tick(&self.id, now) && !self.consumer.has_members() {
            self.empty_since_ms = Some(wall_ms);
        }
        let before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| *deadline > now);
        let pending_expired = self.pending_members.len() != before;

        if self.state == GroupState::PreparingRebalance {
            if let Some(delay) = &self.initial_delay {
                if delay.deadline <= now {
                    // Kafka extends the initial delay while new members keep arriving, up to
                    // the rebalance timeout.
                    if self.new_member_added && !delay.remaining.is_zero() {
                        let step = timings.initial_rebalance_delay.min(delay.remaining);
                        let remaining = delay.remaining - step;
                        self.initial_delay = Some(InitialDelay {
                            deadline: now + step,
                            remaining,
                        });
                        self.new_member_added = false;
                    } else {
                        self.initial_delay = None;
                        self.complete_join(now, wall_ms);
                    }
                }
            } else if self.rebalance_deadline.is_some_and(|d| d <= now) {
                self.complete_join(now, wall_ms);
            } else if pending_expired {
                self.try_complete_join(now, wall_ms);
            }
        }

        // Members parked in JoinGroup (during a rebalance) or SyncGroup are alive by definition.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now)
            .filter(|m| {
                let parked_in_join =
                    m.join_waiter.is_some() && self.state == GroupState::PreparingRebalance;
                !parked_in_join && m.sync_waiter.is_none()
            })
            .map(|m| m.member_id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "member session expired");
                self.remove_member(id, ResponseError::UnknownMemberId);
            }
            self.after_member_removed(now, timings, wall_ms);
        }
    }
}
