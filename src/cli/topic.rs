//! `sluice topic create|list|describe|delete|add-partitions|alter-config|reassign|
//! elect-leaders`: topic administration through the client, against any Kafka-compatible
//! broker.
//!
//! Must not: reach into broker internals; everything goes over the wire.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::{Client, NewTopic, OffsetSpec};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Broker to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: i16,
        /// Topic config KEY=VALUE (repeatable), e.g. retention.ms=60000.
        #[arg(long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topic names.
    List,
    /// Show partitions, leaders, offsets and configs of a topic, and (from a Sluice
    /// broker's admin listener) its records waiting for delayed delivery.
    Describe {
        name: String,
        /// The broker's admin listener, for the delayed-delivery counts.
        #[arg(long, default_value = crate::cli::top::DEFAULT_ADMIN_ADDRESS)]
        admin: String,
    },
    /// Delete a topic.
    Delete { name: String },
    /// Grow a topic to N partitions.
    AddPartitions {
        name: String,
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
    },
    /// Set topic configs, keeping every other override the topic has.
    AlterConfig {
        name: String,
        /// KEY=VALUE to set (repeatable), e.g. retention.ms=60000.
        #[arg(long = "set", value_parser = parse_key_value, required = true)]
        set: Vec<(String, String)>,
    },
    /// Move a partition to other brokers (AlterPartitionReassignments): the new replicas
    /// copy it, then the old ones are dropped. The first replica listed is preferred as
    /// leader. `--cancel` reverts the reassignment in progress.
    Reassign {
        name: String,
        #[arg(long)]
        partition: i32,
        /// Broker ids, comma-separated, e.g. 2,3,1.
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "cancel",
            conflicts_with = "cancel"
        )]
        replicas: Vec<i32>,
        #[arg(long)]
        cancel: bool,
    },
    /// Give partitions back to their preferred (first) replica as leader (ElectLeaders),
    /// e.g. after a failover: one topic (optionally one partition) or every topic.
    ElectLeaders {
        name: Option<String>,
        #[arg(long, requires = "name")]
        partition: Option<i32>,
    },
}

/// Parses `KEY=VALUE` (value may contain `=`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub fn run(args: TopicArgs) -> Result<(), String> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
            .map_err(|e| e.to_string())?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            client
                .create_topic(&NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor,
                    configs,
                })
                .map_err(|e| e.to_string())?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::List => {
            for topic in client.list_topics().map_err(|e| e.to_string())? {
                println!("{}", topic.name);
            }
        }
        TopicCommand::Describe { name, admin } => {
            describe(&mut client, &name)?;
            describe_delayed(&admin, &name);
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).map_err(|e| e.to_string())?;
            println!("deleted topic {name}");
        }
        TopicCommand::AddPartitions { name, partitions } => {
            client
                .create_partitions(&name, partitions)
                .map_err(|e| e.to_string())?;
            println!("topic {name} now has {partitions} partition(s)");
        }
        TopicCommand::AlterConfig { name, set } => alter_config(&mut client, &name, &set)?,
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            cancel,
        } => {
            let target = (!cancel).then_some(replicas.as_slice());
            client
                .reassign_partition(&name, partition, target)
                .map_err(|e| e.to_string())?;
            if cancel {
                println!("cancelled the reassignment of {name}-{partition}");
            } else {
                println!(
                    "reassigning {name}-{partition} to {} (see `sluice topic describe {name}`)",
                    join(&replicas)
                );
            }
        }
        TopicCommand::ElectLeaders { name, partition } => {
            elect_leaders(&mut client, name.as_deref(), partition)?
        }
    }
    Ok(())
}

/// Preferred leader election; prints each partition's outcome.
fn elect_leaders(
    client: &mut Client,
    name: Option<&str>,
    partition: Option<i32>,
) -> Result<(), String> {
    let partitions: Vec<i32> = match (name, partition) {
        (Some(_), Some(p)) => vec![p],
        (Some(topic), None) => client
            .describe_topic(topic)
            .map_err(|e| e.to_string())?
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect(),
        (None, _) => Vec::new(),
    };
    let wanted = name.map(|topic| (topic, partitions.as_slice()));
    let outcomes = client
        .elect_preferred_leaders(wanted)
        .map_err(|e| e.to_string())?;
    if outcomes.is_empty() {
        println!("every partition is led by its preferred replica");
    }
    for (topic, (partition, error)) in outcomes {
        match error {
            None => println!("{topic}-{partition}: preferred replica elected"),
            Some(e) => println!("{topic}-{partition}: {e}"),
        }
    }
    Ok(())
}

/// AlterConfigs replaces a topic's whole override set, so the current overrides are read
/// first and the new values merged in (a concurrent change between the two calls is lost,
/// as with any read-modify-write; IncrementalAlterConfigs would avoid it but the client
/// does not speak it yet).
fn alter_config(client: &mut Client, name: &str, set: &[(String, String)]) -> Result<(), String> {
    let current = client
        .describe_topic_configs(name)
        .map_err(|e| e.to_string())?;
    let mut merged: std::collections::BTreeMap<String, String> = current
        .into_iter()
        .filter(|c| !c.is_default && !c.read_only && !c.is_sensitive)
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect();
    for (k, v) in set {
        merged.insert(k.clone(), v.clone());
    }
    let configs: Vec<(String, String)> = merged.into_iter().collect();
    client
        .alter_topic_configs(name, &configs)
        .map_err(|e| e.to_string())?;
    for (k, v) in set {
        println!("set {k}={v} on topic {name}");
    }
    Ok(())
}

fn describe(client: &mut Client, name: &str) -> Result<(), String> {
    let meta = client.describe_topic(name).map_err(|e| e.to_string())?;
    // Offline partitions (no leader) have no offsets to list: they are shown as such.
    let ids: Vec<i32> = meta
        .partitions
        .iter()
        .filter(|p| p.leader >= 0)
        .map(|p| p.partition)
        .collect();
    let earliest = client
        .list_offsets(name, &ids, OffsetSpec::Earliest)
        .map_err(|e| e.to_string())?;
    let latest = client
        .list_offsets(name, &ids, OffsetSpec::Latest)
        .map_err(|e| e.to_string())?;
    // Reassignments in progress (a broker without the API simply shows none).
    let all: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
    let moving = client
        .list_reassignments(Some((name, &all)))
        .unwrap_or_default();
    let moving_of = |partition: i32| {
        moving
            .iter()
            .find(|r| r.partition == partition)
            .map_or(String::new(), |r| {
                format!(
                    "\tAdding: {}\tRemoving: {}",
                    join(&r.adding),
                    join(&r.removing)
                )
            })
    };
    let offset_of = |offsets: &[(i32, i64)], partition: i32| {
        offsets
            .iter()
            .find(|(p, _)| *p == partition)
            .map_or(-1, |(_, o)| *o)
    };
    println!(
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}",
        meta.name,
        meta.partitions.len(),
        meta.partitions.first().map_or(0, |p| p.replicas.len())
    );
    for p in &meta.partitions {
        if p.leader < 0 {
            println!(
                "\tPartition: {}\tLeader: none\tReplicas: {}\tIsr: {}\tOffline: yes (error {}){}",
                p.partition,
                join(&p.replicas),
                join(&p.isr),
                p.error_code,
                moving_of(p.partition),
            );
            continue;
        }
        println!(
            "\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tEarliest: {}\tLatest: {}{}",
            p.partition,
            p.leader,
            join(&p.replicas),
            join(&p.isr),
            offset_of(&earliest, p.partition),
            offset_of(&latest, p.partition),
            moving_of(p.partition),
        );
    }
    // Configs are optional for a broker; show what it reports, note if it cannot.
    match client.describe_topic_configs(name) {
        Ok(configs) => {
            let set: Vec<String> = configs
                .iter()
                .filter(|c| !c.is_default)
                .map(|c| {
                    let value = if c.is_sensitive {
                        "<sensitive>"
                    } else {
                        c.value.as_deref().unwrap_or("null")
                    };
                    format!("{}={}", c.name, value)
                })
                .collect();
            println!("Configs: {}", set.join(","));
        }
        Err(e) => println!("Configs: unavailable ({e})"),
    }
    Ok(())
}

/// Records waiting for delayed delivery, per partition, from a Sluice admin listener's
/// `/v1/topics/<name>` (another broker has none: a note says so, the describe stands).
fn describe_delayed(admin: &str, name: &str) {
    let path = format!("/v1/topics/{}", percent_encode(name));
    let body = match crate::cli::top::fetch_admin(admin, &path) {
        Ok(body) => body,
        Err(e) => {
            println!("DelayedPending: unavailable ({e})");
            return;
        }
    };
    let Ok(topic) = serde_json::from_str::<serde_json::Value>(&body) else {
        println!("DelayedPending: unavailable (not JSON from {admin})");
        return;
    };
    let total = topic["delayed_pending_total"].as_u64().unwrap_or(0);
    let per_partition: Vec<String> = topic["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["partition"].as_i64()?, p["delayed_pending"].as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .map(|(p, n)| format!("{p}:{n}"))
        .collect();
    println!(
        "DelayedPending: {total}\tByPartition: {}",
        if per_partition.is_empty() {
            "-".to_string()
        } else {
            per_partition.join(",")
        }
    );
}

/// Topic names are [a-zA-Z0-9._-]; anything else is escaped for the URL path.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_splits_at_first_equals() {
        assert_eq!(
            parse_key_value("cleanup.policy=compact"),
            Ok(("cleanup.policy".to_string(), "compact".to_string()))
        );
        assert_eq!(
            parse_key_value("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
