//! `sluice group list|describe|delete`: consumer-group administration (like
//! kafka-consumer-groups) against any Kafka-compatible broker.
//!
//! Must not: join groups or commit offsets; it only inspects and deletes.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::group::{describe_group, fetch_committed, find_coordinator, list_groups};
use crate::client::{Client, ClientError, OffsetSpec};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Broker to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List group ids.
    List,
    /// Show state, members, committed offsets and lag of a group.
    Describe { group: String },
    /// Delete a group that has no members.
    Delete { group: String },
}

pub fn run(args: GroupArgs) -> Result<(), String> {
    let mut client = Client::connect(&args.bootstrap_server).map_err(|e| e.to_string())?;
    match args.command {
        GroupCommand::List => {
            for g in list_groups(&mut client).map_err(|e| e.to_string())? {
                println!("{}", g.group_id);
            }
        }
        GroupCommand::Describe { group } => describe(&mut client, &group)?,
        GroupCommand::Delete { group } => {
            crate::client::group::delete_group(&mut client, &group).map_err(|e| e.to_string())?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

fn describe(client: &mut Client, group: &str) -> Result<(), String> {
    let described = describe_group(client, group).map_err(|e| e.to_string())?;
    let coordinator = find_coordinator(client, group).map_err(|e| e.to_string())?;
    // "All committed partitions" (null topics) is the natural ask, but some brokers answer
    // it with a malformed response; then ask for every partition of every topic.
    let committed = match fetch_committed(client, coordinator, group, None) {
        Ok(c) => c,
        Err(ClientError::Protocol { .. }) => {
            let all: Vec<(String, Vec<i32>)> = client
                .list_topics()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|t| (t.name, t.partitions.iter().map(|p| p.partition).collect()))
                .collect();
            fetch_committed(client, coordinator, group, Some(&all))
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|(_, _, o)| o.is_some())
                .collect()
        }
        Err(e) => return Err(e.to_string()),
    };
    println!(
        "Group: {}\tState: {}\tProtocol: {}\tMembers: {}",
        described.group_id,
        described.state,
        described.protocol,
        described.members.len()
    );
    // Who owns each partition right now.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &described.members {
        for (topic, partitions) in &m.assignment {
            for p in partitions {
                owner.insert((topic.clone(), *p), m.member_id.clone());
            }
        }
    }
    let mut rows: BTreeMap<(String, i32), Option<i64>> =
        committed.into_iter().map(|(t, p, o)| ((t, p), o)).collect();
    for key in owner.keys() {
        rows.entry(key.clone()).or_insert(None);
    }
    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID");
    for ((topic, partition), offset) in rows {
        let end = client
            .list_offsets(&topic, &[partition], OffsetSpec::Latest)
            .ok()
            .and_then(|v| v.first().map(|(_, o)| *o));
        let lag = match (offset, end) {
            (Some(o), Some(e)) => (e - o).max(0).to_string(),
            _ => "-".to_string(),
        };
        println!(
            "{topic}\t{partition}\t{}\t{}\t{lag}\t{}",
            offset.map_or("-".to_string(), |o| o.to_string()),
            end.map_or("-".to_string(), |o| o.to_string()),
            owner
                .get(&(topic.clone(), partition))
                .map_or("-", String::as_str)
        );
    }
    Ok(())
}
