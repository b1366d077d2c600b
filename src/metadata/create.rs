//! Topic creation on the metadata writer. Every topic of one CreateTopics request is
//! validated against the same snapshot and the result published (and persisted) once, so
//! a request of 100 topics costs one metadata write instead of 100: the write rewrites the
//! whole file, and one per topic made creating 10,000 topics quadratic (issue 19).
//! Must not: open partition logs (the owning shards do, when `shard::topics` tells them).

use super::{
    MAX_PARTITIONS_PER_TOPIC, MAX_TOPICS, MetadataError, MetadataSnapshot, MetadataWriter,
    TopicMeta, effective_config, validate_topic_name,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One topic a CreateTopics request asks for.
#[derive(Debug, Clone)]
pub struct NewTopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Only the keys set for this topic.
    pub overrides: BTreeMap<String, String>,
}

impl MetadataWriter {
    /// Creates (or, `validate_only`, checks) `specs` in order; a topic named twice fails the
    /// second time (TOPIC_ALREADY_EXISTS). Returns one result per spec. When persisting fails,
    /// no topic of the request is created and each one answers the cause.
    pub fn create_topics(
        &self,
        specs: Vec<NewTopicSpec>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicMeta>, MetadataError>> {
        let current = self.snapshot();
        let mut next = (*current).clone();
        let mut created = 0usize;
        let mut results = Vec::with_capacity(specs.len());
        for spec in specs {
            let result = self.new_topic(&next, spec);
            if let (Ok(topic), false) = (&result, validate_only) {
                next.topic_names_by_id.insert(topic.id, topic.name.clone());
                next.topics.insert(topic.name.clone(), topic.clone());
                created += 1;
            }
            results.push(result);
        }
        if created == 0 {
            return results;
        }
        match self.publish(next) {
            Ok(()) => results,
            Err(e) => {
                let cause = e.to_string();
                results
                    .into_iter()
                    .map(|r| {
                        r.and_then(|_| {
                            Err(MetadataError::Io {
                                path: self.path.clone(),
                                source: std::io::Error::other(cause.clone()),
                            })
                        })
                    })
                    .collect()
            }
        }
    }

    /// Validates one new topic against `snapshot` and builds it (not yet published).
    fn new_topic(
        &self,
        snapshot: &MetadataSnapshot,
        spec: NewTopicSpec,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        validate_topic_name(&spec.name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&spec.partitions) {
            return Err(MetadataError::InvalidPartitions(
                spec.partitions,
                "must be between 1 and 10000",
            ));
        }
        if spec.replication_factor != 1 && spec.replication_factor != -1 {
            return Err(MetadataError::InvalidReplicationFactor(
                spec.replication_factor,
            ));
        }
        if snapshot.topics.contains_key(&spec.name) {
            return Err(MetadataError::TopicExists(spec.name));
        }
        if snapshot.topics.len() >= MAX_TOPICS {
            return Err(MetadataError::TooManyTopics);
        }
        let config = effective_config(&self.topic_defaults(snapshot)?, &spec.overrides)?;
        Ok(Arc::new(TopicMeta {
            name: spec.name,
            id: uuid::Uuid::new_v4(),
            partitions: spec.partitions,
            overrides: spec.overrides,
            config,
        }))
    }
}
