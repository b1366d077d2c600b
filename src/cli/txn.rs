//! `sluice txn list|describe`: transactions as their coordinators see them (like
//! kafka-transactions.sh) against any Kafka-compatible broker. Read-only.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::Client;
use crate::client::transactions::{describe_transaction, list_transactions};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Broker to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    #[command(subcommand)]
    pub command: TxnCommand,
}

#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// List transactional ids with their producer id and state.
    List,
    /// Show a transactional id's state, producer, timeout and open partitions.
    Describe { transactional_id: String },
}

pub fn run(args: TxnArgs) -> Result<(), String> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
            .map_err(|e| e.to_string())?;
    match args.command {
        TxnCommand::List => {
            let listed = list_transactions(&mut client).map_err(|e| e.to_string())?;
            println!("{:<40} {:>12} STATE", "TRANSACTIONAL_ID", "PRODUCER_ID");
            for t in listed {
                println!(
                    "{:<40} {:>12} {}",
                    t.transactional_id, t.producer_id, t.state
                );
            }
        }
        TxnCommand::Describe { transactional_id } => {
            let t =
                describe_transaction(&mut client, &transactional_id).map_err(|e| e.to_string())?;
            println!("transactional id: {}", t.transactional_id);
            println!("state:            {}", t.state);
            println!(
                "producer:         {} (epoch {})",
                t.producer_id, t.producer_epoch
            );
            println!("timeout ms:       {}", t.timeout_ms);
            println!("started ms:       {}", t.start_time_ms);
            for (topic, partition) in t.partitions {
                println!("partition:        {topic}-{partition}");
            }
        }
    }
    Ok(())
}
