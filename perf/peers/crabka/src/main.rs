//! Starts one single-node Crabka 0.3.8 broker (combined controller + broker roles) for
//! perf/compare.py: the on-disk peer of issue 22. Crabka's own `crabka-broker` binary cannot be
//! built from a dependency, so this wrapper does what that binary does for a fresh data
//! directory: it writes `meta.properties.json` (Crabka's `format` step: a directory id), starts
//! the broker with Crabka's default `LogConfig`, and stops it on SIGTERM or SIGINT.
//!
//! Usage: crabka-peer --listen 127.0.0.1:PORT --controller 127.0.0.1:PORT --log-dir DIR

use std::net::SocketAddr;
use std::path::PathBuf;

use crabka_broker::{BootstrapMode, Broker, BrokerConfig};
use tokio::signal::unix::{signal, SignalKind};

/// How long a controlled shutdown may take before Crabka hard-stops (a peer in a benchmark
/// has no other replica to hand leadership to, so this only bounds the stop).
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

struct Args {
    listen: SocketAddr,
    controller: SocketAddr,
    log_dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut controller = None;
    let mut log_dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--controller" => {
                controller = Some(value.parse().map_err(|e| format!("--controller: {e}"))?)
            }
            "--log-dir" => log_dir = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        controller: controller.ok_or("--controller is required")?,
        log_dir: log_dir.ok_or("--log-dir is required")?,
    })
}

/// Crabka refuses to start on an unformatted directory; its `format` step writes this file.
fn format_if_needed(log_dir: &std::path::Path) -> Result<uuid::Uuid, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(log_dir)?;
    let path = log_dir.join("meta.properties.json");
    if !path.exists() {
        let meta = serde_json::json!({
            "cluster_id": uuid::Uuid::new_v4().to_string(),
            "directory_id": uuid::Uuid::new_v4().to_string(),
            "version": 1,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&meta)?)?;
    }
    Ok(crabka_broker::bootstrap::read_directory_id(log_dir)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("crabka-peer: {e}");
            std::process::exit(2);
        }
    };
    let directory_id = format_if_needed(&args.log_dir)?;
    let config = BrokerConfig {
        broker_id: 1,
        node_id: 1,
        listen_addr: args.listen,
        advertised_listener: args.listen.to_string(),
        log_dir: args.log_dir,
        log_config: crabka_log::LogConfig::default(),
        controller_listen_addr: args.controller,
        controller_quorum_voters: vec![(1, args.controller.to_string())],
        directory_id,
        bootstrap_mode: BootstrapMode::Bootstrap,
        ..BrokerConfig::default()
    };
    let handle = Broker::start(config).await?;
    eprintln!("crabka-peer: listening on {}", handle.listen_addr());
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if let Err(e) = handle.controlled_shutdown(SHUTDOWN_TIMEOUT).await {
        eprintln!("crabka-peer: controlled shutdown incomplete: {e}");
    }
    Ok(())
}
