//! A local cluster of `sluice serve` processes for the cluster-mode tests: N nodes on
//! 127.0.0.1 with run-time Kafka, admin and controller ports, one core each, every node a
//! voter of the metadata quorum and a broker (combined mode). Plus the raw-protocol waits
//! the tests share: for a leader, for every broker to be registered, for a topic everywhere.

use super::netns::Namespaces;
use super::wire::RawConn;
use super::{Broker, LOOPBACK, free_port};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DescribeClusterRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse,
};
use std::time::{Duration, Instant};

/// How long a fresh cluster may take to elect a leader and register every broker.
pub const CLUSTER_FORM_TIMEOUT: Duration = Duration::from_secs(30);

pub struct LocalCluster {
    /// `nodes[i]` has node id `i + 1`.
    pub nodes: Vec<Broker>,
    pub voters: String,
}

impl LocalCluster {
    /// Starts `count` nodes; returns once each listens for Kafka clients (the quorum may
    /// still be electing: see `wait_until_formed`).
    pub fn start(count: usize) -> LocalCluster {
        Self::start_with_config(count, "")
    }

    /// Starts `count` nodes, each with a config file holding `toml` (e.g. shorter broker
    /// session timeouts).
    pub fn start_with_config(count: usize, toml: &str) -> LocalCluster {
        let mut cluster = Self::unstarted(count, toml);
        cluster.start_nodes(&(1..=count as i32).collect::<Vec<_>>());
        cluster
    }

    /// Starts the processes of `start_with_config` and returns at once, for a cluster whose
    /// nodes may never form a quorum, so never listen (a node listens once it caught up).
    pub fn start_unwaited_with_config(count: usize, toml: &str) -> LocalCluster {
        let mut cluster = Self::unstarted(count, toml);
        for node in &mut cluster.nodes {
            node.spawn_unwaited();
        }
        cluster
    }

    fn unstarted(count: usize, toml: &str) -> LocalCluster {
        let places = (0..count)
            .map(|_| {
                (
                    LOOPBACK.to_string(),
                    None,
                    free_port(),
                    free_port(),
                    free_port(),
                )
            })
            .collect();
        Self::at(places, &|_| toml.to_string(), false)
    }

    /// Starts `count` nodes that declare named listeners: `NAME://127.0.0.1:<free port>`
    /// for each of `names(node id)`, in a config file that also holds `toml(node id)`. The
    /// first must be PLAINTEXT: `bootstrap()` and the raw-protocol waits use it. Returns the
    /// cluster and, per node, the port of each of its listeners in `names` order.
    pub fn start_with_listeners(
        count: usize,
        names: &dyn Fn(i32) -> Vec<&'static str>,
        toml: &dyn Fn(i32) -> String,
    ) -> (LocalCluster, Vec<Vec<u16>>) {
        let ports: Vec<Vec<u16>> = (1..=count as i32)
            .map(|id| names(id).iter().map(|_| free_port()).collect())
            .collect();
        let places = ports
            .iter()
            .map(|p| (LOOPBACK.to_string(), None, p[0], free_port(), free_port()))
            .collect();
        let config = |node: usize| {
            let id = node as i32 + 1;
            let listeners: Vec<String> = names(id)
                .iter()
                .zip(&ports[node])
                .map(|(name, port)| format!("{name}://{LOOPBACK}:{port}"))
                .collect();
            format!("listeners = \"{}\"\n{}\n", listeners.join(","), toml(id))
        };
        (Self::start_at(places, &config, true), ports)
    }

    /// Starts one node in each namespace of `net` (node `i + 1` in namespace `i`), on its
    /// own address there with fixed ports, so cutting a namespace's link cuts that node off.
    pub fn start_in_namespaces(net: &Namespaces, toml: &str) -> LocalCluster {
        let places = (0..net.count())
            .map(|i| (net.address(i), Some(net.namespace(i)), 9092, 9644, 9093))
            .collect();
        Self::start_at(places, &|_| toml.to_string(), false)
    }

    /// `at`'s nodes, started; returns once each listens.
    fn start_at(
        places: Vec<(String, Option<String>, u16, u16, u16)>,
        toml: &dyn Fn(usize) -> String,
        declares_listeners: bool,
    ) -> LocalCluster {
        let mut cluster = Self::at(places, toml, declares_listeners);
        cluster.start_nodes(&(1..=cluster.nodes.len() as i32).collect::<Vec<_>>());
        cluster
    }

    /// One node per `(host, namespace, kafka port, admin port, controller port)`, node `i`'s
    /// config file holding `toml(i)`, none started; `declares_listeners`: it names its
    /// listeners itself (no `--listen`).
    fn at(
        places: Vec<(String, Option<String>, u16, u16, u16)>,
        toml: &dyn Fn(usize) -> String,
        declares_listeners: bool,
    ) -> LocalCluster {
        let count = places.len();
        let voters = places
            .iter()
            .enumerate()
            .map(|(i, (host, _, _, _, port))| format!("{}@{host}:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(count);
        for (i, (host, netns, kafka_port, admin_port, port)) in places.into_iter().enumerate() {
            let temp = tempfile::tempdir().expect("temp dir");
            let config = temp.path().join("sluice.toml");
            std::fs::write(&config, toml(i)).expect("write the node's config file");
            let broker = Broker {
                child: None,
                port: kafka_port,
                admin_port,
                data_dir: temp.path().join("data"),
                log_path: Some(temp.path().join("broker.log")),
                _temp: super::keep_for_diagnosis(temp, &format!("node {}", i + 1)),
                extra_args: vec![
                    "--config".into(),
                    config.display().to_string(),
                    "--cores".into(),
                    "1".into(),
                    "--node-id".into(),
                    (i + 1).to_string(),
                    "--controller-quorum-voters".into(),
                    voters.clone(),
                    "--controller-listen".into(),
                    format!("{host}:{port}"),
                ],
                extra_env: Vec::new(),
                open_file_limit: None,
                // Set, `spawn` passes no `--listen` (the config declares the listeners).
                sasl_port: declares_listeners.then_some(kafka_port),
                host: host.clone(),
                netns: netns.clone(),
            };
            nodes.push(broker);
        }
        LocalCluster { nodes, voters }
    }

    /// Starts the nodes `ids` (stopped ones, on their data directories) together and waits
    /// until each listens: a node listens only once it has caught up with its metadata
    /// quorum, which may need the others.
    pub fn start_nodes(&mut self, ids: &[i32]) {
        let log_starts: Vec<usize> = ids
            .iter()
            .map(|id| self.node_mut(*id).spawn_unwaited())
            .collect();
        for (id, log_start) in ids.iter().zip(log_starts) {
            self.node_mut(*id).wait_until_serving(log_start);
        }
    }

    pub fn node(&self, id: i32) -> &Broker {
        &self.nodes[(id - 1) as usize]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut Broker {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn running_ids(&self) -> Vec<i32> {
        (1..=self.nodes.len() as i32)
            .filter(|id| self.node(*id).child.is_some())
            .collect()
    }

    /// What every node's output said, for a failure message.
    pub fn diagnostics(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {}: {}", i + 1, n.diagnostics()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every running node names the same controller and lists `brokers` live
    /// brokers; returns the controller id.
    pub fn wait_until_formed(&self, brokers: usize) -> i32 {
        let deadline = Instant::now() + CLUSTER_FORM_TIMEOUT;
        loop {
            let views: Vec<Option<(i32, usize)>> = self
                .running_ids()
                .into_iter()
                .map(|id| {
                    let metadata = metadata(self.node(id), None).ok()?;
                    Some((metadata.controller_id.0, metadata.brokers.len()))
                })
                .collect();
            let first = views.first().cloned().flatten();
            if let Some((controller, count)) = first
                && controller >= 0
                && count == brokers
                && views.iter().all(|v| *v == first)
            {
                return controller;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not form within {CLUSTER_FORM_TIMEOUT:?}: {views:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// (leader, leader epoch, ISR sorted) of `topic`'s partition 0: the newest view (highest
    /// leader epoch, then the smallest ISR among those) over the running nodes. A node that
    /// just restarted replays the metadata log and answers from an older state for a
    /// moment, and one that has not applied the latest ISR change yet must not make a
    /// shrunk ISR look full.
    pub fn partition_state(&self, topic: &str) -> Option<(i32, i32, Vec<i32>)> {
        let views = self.running_ids().into_iter().filter_map(|id| {
            let response = metadata(self.node(id), Some(&[topic])).ok()?;
            let t = response.topics.first().filter(|t| t.error_code == 0)?;
            let p = t.partitions.iter().find(|p| p.partition_index == 0)?;
            let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            isr.sort();
            Some((p.leader_id.0, p.leader_epoch, isr))
        });
        let views: Vec<(i32, i32, Vec<i32>)> = views.collect();
        let newest = views.iter().map(|v| v.1).max()?;
        views
            .into_iter()
            .filter(|v| v.1 == newest)
            .min_by_key(|v| v.2.len())
    }

    /// Waits until `partition_state` satisfies `ok(leader, epoch, isr)`, asserting it does
    /// within `within` (`what` names it in the failure).
    pub fn wait_for_partition(
        &self,
        topic: &str,
        within: Duration,
        what: &str,
        ok: impl Fn(i32, i32, &[i32]) -> bool,
    ) -> (i32, i32, Vec<i32>) {
        let deadline = Instant::now() + within;
        loop {
            if let Some((leader, epoch, isr)) = self.partition_state(topic)
                && ok(leader, epoch, &isr)
            {
                return (leader, epoch, isr);
            }
            assert!(
                Instant::now() < deadline,
                "{what} not seen within {within:?}: {:?}\n{}",
                self.partition_state(topic),
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates `topic` through node 1 with `partitions` partitions, RF 3 and
    /// min.insync.replicas 2 (the issue-17 set-up: acks=all goes on with one replica down),
    /// asserts CreateTopics succeeded and waits until every running node knows it.
    pub fn create_replicated_topic(&self, topic: &str, partitions: i32, within: Duration) {
        let configs = [("min.insync.replicas", "2")];
        let code = create_topic_with_configs(self.node(1), topic, partitions, 3, &configs, within);
        assert_eq!(
            code,
            0,
            "CreateTopics answered {code}\n{}",
            self.diagnostics()
        );
        let count = usize::try_from(partitions).unwrap_or(0);
        self.wait_until_known_everywhere(topic, count, within);
    }

    /// Waits until every running node's Metadata shows `topic` with `partitions` partitions,
    /// each with a leader. CreateTopics answers once the node it was sent to applied the
    /// topic; the others apply it a moment later and answer UNKNOWN_TOPIC_OR_PARTITION (a
    /// retriable error a client retries) until then, so a test that goes on at another node
    /// waits here first.
    pub fn wait_until_known_everywhere(&self, topic: &str, partitions: usize, within: Duration) {
        super::wait_until(within, Duration::from_millis(50), || {
            let views: Vec<(i32, Vec<i32>)> = self
                .running_ids()
                .into_iter()
                .map(|id| (id, leaders(self.node(id), topic)))
                .collect();
            let known = |seen: &Vec<i32>| seen.len() == partitions && seen.iter().all(|l| *l >= 0);
            if views.iter().all(|(_, seen)| known(seen)) {
                Ok(())
            } else {
                Err(format!(
                    "{topic} ({partitions} partitions, all led) not on every node: {views:?}\n{}",
                    self.diagnostics()
                ))
            }
        });
    }
}

/// Metadata (v12) from one node: all topics (`None`) or the named ones, no auto-creation.
pub fn metadata(node: &Broker, topics: Option<&[&str]>) -> Result<MetadataResponse, String> {
    let mut conn = RawConn::connect(&node.bootstrap())?;
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|n| {
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(super::wire::topic_name(n)))
            })
            .collect()
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false);
    conn.try_call(&request, 12)
}

/// The controller id DescribeCluster reports on `node`.
pub fn controller_of(node: &Broker) -> Result<i32, String> {
    let mut conn = RawConn::connect(&node.bootstrap())?;
    let response = conn.try_call(&DescribeClusterRequest::default(), 0)?;
    Ok(response.controller_id.0)
}

/// CreateTopics through `node`, retrying NOT_CONTROLLER and REQUEST_TIMED_OUT (a quorum
/// between leaders) for up to `within`; returns the topic's final error code.
pub fn create_topic(
    node: &Broker,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    within: Duration,
) -> i16 {
    create_topic_with_configs(node, name, partitions, replication_factor, &[], within)
}

/// `create_topic` with topic configs (`(key, value)` pairs), e.g. `min.insync.replicas`.
pub fn create_topic_with_configs(
    node: &Broker,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
    within: Duration,
) -> i16 {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    use kafka_protocol::protocol::StrBytes;
    let deadline = Instant::now() + within;
    loop {
        let configs = configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_value(Some(StrBytes::from_string(value.to_string())))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(super::wire::topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(configs);
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(15_000);
        let code = RawConn::connect(&node.bootstrap())
            .and_then(|mut c| c.try_call(&request, 7))
            .map(|r| r.topics[0].error_code)
            .unwrap_or(-1);
        // NOT_CONTROLLER (41), REQUEST_TIMED_OUT (7) and a dropped connection are retried.
        if ![41, 7, -1].contains(&code) || Instant::now() >= deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each partition's leader in `node`'s Metadata for `topic` (empty when unknown there).
pub fn leaders(node: &Broker, topic: &str) -> Vec<i32> {
    let Ok(response) = metadata(node, Some(&[topic])) else {
        return Vec::new();
    };
    let Some(t) = response.topics.first().filter(|t| t.error_code == 0) else {
        return Vec::new();
    };
    let mut parts: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, leader)| leader).collect()
}

/// The broker `node` names as `group`'s coordinator (FindCoordinator v3).
pub fn find_coordinator(node: &Broker, group: &str) -> Result<i32, String> {
    use kafka_protocol::messages::FindCoordinatorRequest;
    use kafka_protocol::protocol::StrBytes;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response = RawConn::connect(&node.bootstrap())?.try_call(&request, 3)?;
    if response.error_code != 0 {
        return Err(format!("FindCoordinator error {}", response.error_code));
    }
    Ok(response.node_id.0)
}

/// `group`'s committed offset of `topic` partition 0 as `node` answers OffsetFetch (v6):
/// Ok(offset) (-1: none), or Err(the top-level or partition error code; -1: no answer).
pub fn fetch_offset(node: &Broker, group: &str, topic: &str) -> Result<i64, i16> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest};
    use kafka_protocol::protocol::StrBytes;
    let wanted = OffsetFetchRequestTopic::default()
        .with_name(super::wire::topic_name(topic))
        .with_partition_indexes(vec![0]);
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![wanted]));
    let response = RawConn::connect(&node.bootstrap())
        .and_then(|mut c| c.try_call(&request, 6))
        .map_err(|_| -1i16)?;
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(-1i16)?;
    if p.error_code != 0 {
        return Err(p.error_code);
    }
    Ok(p.committed_offset)
}

impl LocalCluster {
    /// The latest offset of `partition` at `isolation` (0 read uncommitted: the high
    /// watermark; 1 read committed: the last stable offset) as `node` answers ListOffsets v5.
    pub fn latest_offset(
        &self,
        node: i32,
        (topic, partition): (&str, i32),
        isolation: i8,
    ) -> Result<i64, String> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(super::wire::topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-1),
                    ]),
            ]);
        let response = RawConn::connect(&self.node(node).bootstrap())?.try_call(&request, 5)?;
        let answer = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("ListOffsets answered no partition")?;
        match answer.error_code {
            0 => Ok(answer.offset),
            code => Err(format!("ListOffsets error {code}")),
        }
    }

    /// Waits until every running node names the same running coordinator for `group`
    /// (other than `not`) and it answers OffsetFetch for `topic`; returns (coordinator,
    /// committed offset of partition 0).
    pub fn settled_coordinator(
        &self,
        group: &str,
        topic: &str,
        not: Option<i32>,
        within: Duration,
    ) -> (i32, i64) {
        let deadline = Instant::now() + within;
        loop {
            let running = self.running_ids();
            let views: Vec<Option<i32>> = running
                .iter()
                .map(|id| find_coordinator(self.node(*id), group).ok())
                .collect();
            if let Some(Some(id)) = views.first().copied()
                && views.iter().all(|v| *v == Some(id))
                && Some(id) != not
                && running.contains(&id)
                && let Ok(offset) = fetch_offset(self.node(id), group, topic)
            {
                return (id, offset);
            }
            assert!(
                Instant::now() < deadline,
                "no settled coordinator for {group} within {within:?}: {views:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every `.log` segment of `topic`-`partition` in a node's `data_dir`, in offset order,
/// concatenated: two copies of a partition are the same log when these bytes are equal.
pub fn log_bytes(data_dir: &std::path::Path, topic: &str, partition: i32) -> Vec<u8> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(format!("{topic}-{partition}"))) else {
        return Vec::new();
    };
    let mut segments: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}
