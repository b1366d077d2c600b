//! The `sluice` command line: one binary for the daemon and the everyday Kafka tools.
//!
//! Owns: argument parsing and the mapping of every failure to one clear line on stderr and a
//! non-zero exit. Must not: panic on user input or print stack traces.

mod acl;
mod bench;
mod cluster;
mod cluster_features;
mod consume;
mod group;
mod produce;
mod security;
mod serve;
pub mod top;
mod topic;
mod txn;
mod user;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Where client-side subcommands connect unless told otherwise.
pub const DEFAULT_BOOTSTRAP_SERVER: &str = "127.0.0.1:9092";

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Kafka-compatible storage node (thread-per-core, io_uring, zero-copy fetch)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Create, list, describe and delete topics on any Kafka-compatible broker.
    Topic(topic::TopicArgs),
    /// Start a local cluster, or show a cluster's brokers, controller and quorum.
    Cluster(cluster::ClusterArgs),
    /// Produce lines from stdin, one record per line.
    Produce(produce::ProduceArgs),
    /// Print records of a topic to stdout.
    Consume(consume::ConsumeArgs),
    /// List, describe and delete consumer groups.
    Group(group::GroupArgs),
    /// List and describe transactions.
    Txn(txn::TxnArgs),
    /// Create, delete and list SCRAM users (SASL credentials).
    User(user::UserArgs),
    /// Add, list and remove ACLs (brokers with an authorizer).
    Acl(acl::AclArgs),
    /// Live view of a broker's shards, topics and latency (from its admin /metrics).
    Top(top::TopArgs),
    /// Load-test any Kafka-compatible broker: produce, consume, end-to-end.
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file; every key has an embedded default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener, HOST:PORT.
    #[arg(long)]
    pub listen: Option<String>,
    /// Address given to clients in Metadata, HOST:PORT.
    #[arg(long)]
    pub advertised_listener: Option<String>,
    /// Admin HTTP listener (metrics, health), HOST:PORT.
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Cores to run shards on: "all", a count, or a list like "0,2-3".
    #[arg(long)]
    pub cores: Option<String>,
    /// Leave the shard threads to the kernel (`shard_affinity = "unpinned"`): several brokers on one host.
    #[arg(long)]
    pub no_pin_shards: bool,
    /// This node's id (Kafka's `node.id`); in cluster mode one of the quorum voters.
    #[arg(long)]
    pub node_id: Option<i32>,
    /// Cluster mode: the metadata quorum, `1@host:port,2@host:port,3@host:port`.
    #[arg(long)]
    pub controller_quorum_voters: Option<String>,
    /// Cluster mode: this node's controller listener, HOST:PORT.
    #[arg(long)]
    pub controller_listen: Option<String>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Parses arguments, runs the subcommand, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic(args) => topic::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Txn(args) => txn::run(args),
        Command::User(args) => user::run(args),
        Command::Acl(args) => acl::run(args),
        Command::Top(args) => top::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("sluice: {message}");
            1
        }
    }
}

/// Help and version go to stdout as clap prints them; a usage error becomes one line.
fn usage_error(error: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.use_stderr() { 2 } else { 0 }
        }
        _ => {
            // clap writes a paragraph; keep its first sentence, joined with the line it
            // introduces (e.g. the missing argument names).
            let text = error.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let line = match lines.next() {
                Some(next) if first.ends_with(':') && !next.starts_with("Usage") => {
                    format!("{first} {next}")
                }
                _ => first.to_string(),
            };
            eprintln!("sluice: {line} (see --help)");
            2
        }
    }
}
