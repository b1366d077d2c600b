//! The partitions one shard owns: each an online `Partition`, or the reason it is offline.
//! Lookups are synchronous and borrow nothing across `.await` (the `Rc` is cloned out).

use crate::partition::Partition;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub enum PartitionSlot {
    /// Served: the partition holds its log and the metrics handle its traffic is recorded
    /// through (no map lookup per request).
    Online(Rc<Partition>),
    /// Refused at open (corruption before the recovery point, I/O error): never served.
    Offline(String),
}

#[derive(Default)]
pub struct PartitionTable {
    topics: RefCell<HashMap<String, HashMap<i32, PartitionSlot>>>,
}

pub enum Lookup {
    Online(Rc<Partition>),
    Offline(String),
    Missing,
}

impl PartitionTable {
    pub fn get(&self, topic: &str, partition: i32) -> Lookup {
        let topics = self.topics.borrow();
        match topics.get(topic).and_then(|p| p.get(&partition)) {
            Some(PartitionSlot::Online(online)) => Lookup::Online(Rc::clone(online)),
            Some(PartitionSlot::Offline(why)) => Lookup::Offline(why.clone()),
            None => Lookup::Missing,
        }
    }

    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.topics
            .borrow()
            .get(topic)
            .is_some_and(|p| p.contains_key(&partition))
    }

    pub fn insert(&self, topic: &str, partition: i32, slot: PartitionSlot) {
        self.topics
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, slot);
    }

    /// Removes one partition's slot (it changed tables: leader <-> follower).
    pub fn remove(&self, topic: &str, partition: i32) -> Option<PartitionSlot> {
        self.topics.borrow_mut().get_mut(topic)?.remove(&partition)
    }

    /// Removes a whole topic and returns its online partitions (to close or delete them).
    pub fn remove_topic(&self, topic: &str) -> Vec<(i32, Rc<Partition>)> {
        let removed = self.topics.borrow_mut().remove(topic);
        removed
            .into_iter()
            .flatten()
            .filter_map(|(p, slot)| match slot {
                PartitionSlot::Online(partition) => Some((p, partition)),
                PartitionSlot::Offline(_) => None,
            })
            .collect()
    }

    /// Every online partition, cloned out so callers may await on them.
    pub fn all_online(&self) -> Vec<(String, i32, Rc<Partition>)> {
        let mut out = Vec::new();
        self.for_each_online(|topic, p, partition| {
            out.push((topic.to_string(), p, Rc::clone(partition)))
        });
        out
    }

    /// Calls `visit` with every online partition and its name, in place: nothing is cloned
    /// for the partitions it passes over (`visit` must not reach the table).
    pub fn for_each_online(&self, mut visit: impl FnMut(&str, i32, &Rc<Partition>)) {
        for (topic, parts) in self.topics.borrow().iter() {
            for (p, slot) in parts {
                if let PartitionSlot::Online(partition) = slot {
                    visit(topic, *p, partition);
                }
            }
        }
    }

    /// Offline partitions as (topic, partition, reason), sorted: for `/metrics`, `/v1/status`.
    pub fn offline(&self) -> Vec<(String, i32, String)> {
        let topics = self.topics.borrow();
        let mut out: Vec<_> = topics
            .iter()
            .flat_map(|(t, parts)| {
                parts.iter().filter_map(move |(p, s)| match s {
                    PartitionSlot::Offline(why) => Some((t.clone(), *p, why.clone())),
                    PartitionSlot::Online(_) => None,
                })
            })
            .collect();
        out.sort();
        out
    }

    /// (topic, partition, online?) for status reporting.
    pub fn describe(&self) -> Vec<(String, i32, bool)> {
        let topics = self.topics.borrow();
        let mut out: Vec<_> = topics
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .iter()
                    .map(move |(p, s)| (t.clone(), *p, matches!(s, PartitionSlot::Online(..))))
            })
            .collect();
        out.sort();
        out
    }
}
