//! `sluice serve`: load configuration (embedded defaults ← file ← flags) and run the broker.

use super::ServeArgs;
use crate::config::BrokerConfig;

pub fn load_config(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path).map_err(|e| e.to_string())?,
        None => BrokerConfig::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.listen = listen.parse().map_err(|_| {
            format!("invalid --listen `{listen}`: expected HOST:PORT with a numeric host")
        })?;
    }
    if let Some(adv) = &args.advertised_listener {
        config.advertised_listener = Some(adv.clone());
    }
    if let Some(admin) = &args.admin_listen {
        config.admin_listen = admin
            .parse()
            .map_err(|_| format!("invalid --admin-listen `{admin}`: expected HOST:PORT"))?;
    }
    if let Some(cores) = &args.cores {
        config.cores = cores.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // journald adds its own timestamps; keep lines short when run under systemd.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if under_systemd {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and the shard threads it spawns, which
/// inherit the mask) so that only the main thread's `sigwait` receives them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a zeroed, then initialised, sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: i32 = 0;
    // SAFETY: sigwait on a valid set; writes the received signal number.
    unsafe {
        libc::sigwait(set, &mut signal);
    }
    signal
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    let config = load_config(&args)?;
    if args.check_config {
        println!("configuration OK");
        return Ok(());
    }
    init_logging(&config.log_level);
    let signals = block_signals();
    let listen = config.listen;
    let data_dir = config.data_dir.clone();
    let broker = crate::shard::start_broker(config).map_err(|e| e.to_string())?;
    tracing::info!(
        %listen,
        data_dir = %data_dir.display(),
        shards = broker.shard_count(),
        cores = ?broker.cores,
        "sluice ready"
    );
    loop {
        match wait_for_signal(&signals) {
            libc::SIGHUP => {
                tracing::info!("SIGHUP: nothing to reload yet beyond RUST_LOG at start")
            }
            signal => {
                tracing::info!(signal, "shutting down");
                break;
            }
        }
    }
    broker.shutdown();
    tracing::info!("stopped cleanly");
    Ok(())
}
