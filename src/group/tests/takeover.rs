//! Cluster mode's classic group takeover (decision 0024): a Stable group's membership, as
//! its coordinator stored it, loads on the broker that takes its slot over, whose members
//! then keep their generation; a broker that does not coordinate answers NOT_COORDINATOR.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::*;
use crate::group::offset_log::LogRecord;
use crate::metadata::group_membership::GroupMembership;
use crate::metadata::group_offsets::OffsetChange;

/// A replicator whose slot epoch the test sets; it keeps what it was asked to store.
#[derive(Default)]
pub(super) struct FakeSlot {
    pub(super) epoch: Cell<Option<i32>>,
    stored: RefCell<Vec<(String, i32, GroupMembership)>>,
    /// Transactional changes proposed, in order (the test applies them as the log would).
    pub(super) proposed: RefCell<Vec<(String, Vec<OffsetChange>)>>,
}

impl OffsetsReplicator for FakeSlot {
    fn coordinates(&self, _group_id: &str) -> bool {
        self.epoch.get().is_some()
    }

    fn coordinates_slot(&self, _slot: usize) -> bool {
        self.epoch.get().is_some()
    }

    fn coordinator_epoch(&self, _group_id: &str) -> Option<i32> {
        self.epoch.get()
    }

    fn store_membership(
        &self,
        group_id: String,
        epoch: i32,
        membership: GroupMembership,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        self.stored.borrow_mut().push((group_id, epoch, membership));
        Box::pin(async { Ok(()) })
    }

    fn replicate(
        &self,
        _group_id: String,
        _records: Vec<LogRecord>,
        _origin: WriteOrigin,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        Box::pin(async { Ok(()) })
    }

    fn replicate_changes(
        &self,
        group_id: String,
        changes: Vec<OffsetChange>,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        self.proposed.borrow_mut().push((group_id, changes));
        Box::pin(async { Ok(()) })
    }
}

pub(super) fn clustered(epoch: Option<i32>) -> (Harness, Rc<FakeSlot>) {
    let h = Harness::new(3_000);
    let slot = Rc::new(FakeSlot::default());
    slot.epoch.set(epoch);
    h.c.replicate_through(slot.clone());
    (h, slot)
}

#[test]
fn the_next_coordinator_loads_the_stable_group_and_its_members_keep_their_generation() {
    run(async {
        let (old, old_slot) = clustered(Some(1));
        let (ids, generation) = stable_group(&old, "g", 2);
        let stored = old_slot.stored.borrow().clone();
        assert_eq!(stored.len(), 1, "stored once, at the leader's SyncGroup");
        let (group, epoch, membership) = stored[0].clone();
        assert_eq!((group.as_str(), epoch), ("g", 1));
        assert_eq!(membership.generation, generation);
        assert_eq!(membership.members.len(), 2);
        // The next tick stores nothing new: the generation is unchanged.
        old.c.tick(old.at(6_100));
        assert_eq!(old_slot.stored.borrow().len(), 1);

        // The slot moves: the old broker answers NOT_COORDINATOR ...
        old_slot.epoch.set(None);
        let not_coordinator = ResponseError::NotCoordinator.code();
        assert_eq!(
            old.heartbeat("g", &ids[0], None, generation, 6_200),
            not_coordinator
        );
        // ... and the broker that took the slot over (which applied the record) serves the
        // members in their generation, with the assignments the leader gave them.
        let (new, _) = clustered(Some(2));
        new.c.apply_membership("g", membership.clone());
        for id in &ids {
            assert_eq!(new.heartbeat("g", id, None, generation, 50_000), 0, "{id}");
        }
        assert_eq!(
            new.c.group_state("g"),
            Some((GroupState::Stable, generation))
        );
        let synced = ready(new.sync("g", &ids[1], generation, &[], 50_000));
        assert_eq!(
            (synced.error_code, &synced.assignment[..]),
            (0, &b"part-1"[..])
        );
        // Sessions started at the takeover: a member silent past its session from then
        // is removed (the group rebalances), so none lives forever.
        new.c.tick(new.at(50_000 + SESSION_MS as u64 + 1));
        assert_ne!(
            new.c.group_state("g").map(|s| s.0),
            Some(GroupState::Stable)
        );

        // Without a stored membership the next coordinator does not know the members.
        let (bare, _) = clustered(Some(3));
        assert_eq!(
            bare.heartbeat("g", &ids[0], None, generation, 50_000),
            ResponseError::UnknownMemberId.code()
        );
    });
}
