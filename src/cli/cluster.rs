//! `sluice cluster local|status|features`: start a local cluster of `sluice serve` processes for
//! trying cluster mode, and show a cluster's brokers, controller and metadata quorum
//! (DescribeCluster and DescribeQuorum, over the wire, against any broker of it);
//! `features` is in `cluster_features`.
//!
//! Must not: reach into broker internals; `local` only runs this same binary N times.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::Client;
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::path::PathBuf;

/// Most nodes `cluster local` starts (a metadata quorum larger than this only slows down).
pub const MAX_LOCAL_NODES: u16 = crate::config::quorum::MAX_QUORUM_VOTERS as u16;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start N local nodes (each a quorum voter and a broker) and wait for Ctrl-C.
    Local {
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_LOCAL_NODES as i64))]
        nodes: u16,
        /// Parent of the nodes' data directories (node-1, node-2, ...).
        #[arg(long)]
        dir: PathBuf,
        /// Node i listens for Kafka on BASE+i-1, its controller on BASE+100+i-1 and its admin
        /// HTTP on BASE+200+i-1.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// Cores per node.
        #[arg(long, default_value = "1")]
        cores: String,
    },
    /// Show the brokers, the controller and the metadata quorum.
    Status {
        #[arg(long, default_value = DEFAULT_BOOTSTRAP_SERVER)]
        bootstrap_server: String,
    },
    /// Show the feature levels (what the answering broker supports, what the cluster
    /// finalized) or, after rolling every node to a newer binary, raise one.
    Features {
        #[arg(long, default_value = DEFAULT_BOOTSTRAP_SERVER)]
        bootstrap_server: String,
        /// NAME=LEVEL to finalize, e.g. `sluice.metadata.version=2` (repeatable).
        #[arg(long, value_name = "NAME=LEVEL")]
        upgrade: Vec<String>,
        /// Check the upgrade against every registered broker without making it.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    match args.command {
        ClusterCommand::Local {
            nodes,
            dir,
            base_port,
            cores,
        } => local(nodes, &dir, base_port, &cores),
        ClusterCommand::Status { bootstrap_server } => status(&bootstrap_server),
        ClusterCommand::Features {
            bootstrap_server,
            upgrade,
            dry_run,
        } => super::cluster_features::run(&bootstrap_server, &upgrade, dry_run),
    }
}

fn port(base: u16, offset: u16) -> Result<u16, String> {
    base.checked_add(offset)
        .ok_or_else(|| format!("--base-port {base} leaves no room for the nodes' ports"))
}

fn local(nodes: u16, dir: &std::path::Path, base: u16, cores: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    // Blocked before the nodes start (they inherit the mask; `serve` blocks the same set),
    // so a signal to this process is forwarded below rather than killing it alone.
    let signals = super::serve::block_signals();
    let mut voters = Vec::new();
    for i in 0..nodes {
        voters.push(format!("{}@127.0.0.1:{}", i + 1, port(base, 100 + i)?));
    }
    let voters = voters.join(",");
    let mut children = Vec::new();
    let mut bootstrap = Vec::new();
    for i in 0..nodes {
        let node_dir = dir.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| format!("cannot create {}: {e}", node_dir.display()))?;
        let log = std::fs::File::create(node_dir.join("sluice.log"))
            .map_err(|e| format!("cannot create the log of node {}: {e}", i + 1))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot open the log of node {}: {e}", i + 1))?;
        let kafka = format!("127.0.0.1:{}", port(base, i)?);
        let child = std::process::Command::new(&exe)
            .arg("serve")
            .args(["--data-dir", &node_dir.join("data").display().to_string()])
            .args(["--listen", &kafka])
            .args([
                "--admin-listen",
                &format!("127.0.0.1:{}", port(base, 200 + i)?),
            ])
            .args(["--cores", cores])
            // Every node of a local cluster shares this host: pinned, each node's first
            // shard would sit on core 0 behind the others (decision 0012, session 22).
            .arg("--no-pin-shards")
            .args(["--node-id", &(i + 1).to_string()])
            .args(["--controller-quorum-voters", &voters])
            .args([
                "--controller-listen",
                &format!("127.0.0.1:{}", port(base, 100 + i)?),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start node {}: {e}", i + 1))?;
        println!(
            "node {} (pid {}): kafka {kafka}, log {}",
            i + 1,
            child.id(),
            node_dir.join("sluice.log").display()
        );
        children.push(child);
        bootstrap.push(kafka);
    }
    println!("bootstrap servers: {}", bootstrap.join(","));
    println!(
        "status: sluice cluster status --bootstrap-server {}",
        bootstrap[0]
    );
    println!("Ctrl-C stops every node.");
    let running = std::sync::Arc::new(std::sync::Mutex::new(
        children.iter().map(|c| c.id()).collect::<Vec<u32>>(),
    ));
    forward_signals(signals, running.clone());
    let mut failed = Vec::new();
    for (i, mut child) in children.into_iter().enumerate() {
        let waited = child.wait();
        // Reaped: its pid may be reused from now on, so no signal goes to it any more.
        running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|pid| *pid != child.id());
        match waited {
            Ok(status) if status.success() => {}
            Ok(status) => failed.push(format!("node {} exited with {status}", i + 1)),
            Err(e) => failed.push(format!("node {}: {e}", i + 1)),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// Passes what this process receives on to the nodes: SIGHUP as itself (each reloads its
/// certificates), SIGTERM or SIGINT as SIGTERM, once (each shuts down cleanly; the caller
/// then sees them exit). Ctrl-C at a terminal reaches the nodes directly as well; a second
/// signal to a node already stopping changes nothing. Without this, `kill` of this process
/// (a script, a service manager) left the nodes running with no parent.
fn forward_signals(signals: libc::sigset_t, running: std::sync::Arc<std::sync::Mutex<Vec<u32>>>) {
    let forward = move || {
        loop {
            let signal = super::serve::wait_for_signal(&signals);
            let sent = if signal == libc::SIGHUP {
                libc::SIGHUP
            } else {
                libc::SIGTERM
            };
            // A node leaves the list right after the main thread reaped it: only that
            // instant separates a reaped pid (free to be reused) from its removal.
            let pids = running.lock().unwrap_or_else(|e| e.into_inner());
            for pid in pids.iter() {
                if let Ok(pid) = i32::try_from(*pid) {
                    // SAFETY: kill(2) with the pid of a child not yet marked reaped, and a
                    // valid signal number.
                    unsafe {
                        libc::kill(pid, sent);
                    }
                }
            }
            drop(pids);
            if sent == libc::SIGTERM {
                return;
            }
        }
    };
    if std::thread::Builder::new()
        .name("sluice-local-signals".into())
        .spawn(forward)
        .is_err()
    {
        eprintln!("cannot watch for signals: stop the nodes by their pids");
    }
}

fn status(bootstrap: &str) -> Result<(), String> {
    let mut client = Client::connect(bootstrap).map_err(|e| e.to_string())?;
    let conn = client.any_connection().map_err(|e| e.to_string())?;
    let cluster = conn
        .call(&DescribeClusterRequest::default())
        .map_err(|e| e.to_string())?;
    println!("cluster id: {}", cluster.cluster_id.as_str());
    println!("controller: {}", cluster.controller_id.0);
    println!("brokers:");
    for b in &cluster.brokers {
        let fenced = if b.is_fenced { "  FENCED" } else { "" };
        println!(
            "  {:>4}  {}:{}{fenced}",
            b.broker_id.0,
            b.host.as_str(),
            b.port
        );
    }
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let quorum = conn.call(&request).map_err(|e| e.to_string())?;
    let Some(partition) = quorum.topics.first().and_then(|t| t.partitions.first()) else {
        return Err("DescribeQuorum returned no partition".into());
    };
    if partition.error_code != 0 || quorum.error_code != 0 {
        println!(
            "quorum: no leader known (error {})",
            partition.error_code.max(quorum.error_code)
        );
        return Ok(());
    }
    println!(
        "quorum: leader {} epoch {} committed index {}",
        partition.leader_id.0, partition.leader_epoch, partition.high_watermark
    );
    for voter in &partition.current_voters {
        let end = if voter.log_end_offset < 0 {
            "unknown".to_string()
        } else {
            voter.log_end_offset.to_string()
        };
        println!("  voter {:>4}  replicated to {end}", voter.replica_id.0);
    }
    Ok(())
}
