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
        if config.listeners.is_some() {
            return Err(format!(
                "--listen `{listen}` names the single PLAINTEXT listener, but the config file \
                 declares `listeners`: set the address there"
            ));
        }
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
    if args.no_pin_shards {
        config.shard_affinity = crate::config::ShardAffinity::Unpinned;
    }
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    if let Some(voters) = &args.controller_quorum_voters {
        config.controller_quorum_voters = Some(voters.clone());
    }
    if let Some(listen) = &args.controller_listen {
        config.controller_listen = Some(listen.parse().map_err(|_| {
            format!(
                "invalid --controller-listen `{listen}`: expected HOST:PORT with a numeric host"
            )
        })?);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

type LogFilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Installs the log subscriber; the returned handle changes the level on SIGHUP.
fn init_logging(level: &str) -> Option<LogFilterHandle> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    // journald adds its own timestamps; keep lines short when run under systemd.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let installed = if under_systemd {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .without_time()
                    .with_ansi(false)
                    .with_target(false),
            )
            .try_init()
    } else {
        // Colours only on a terminal: log files and pipes get plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt::layer().with_target(false).with_ansi(ansi))
            .try_init()
    };
    installed.ok().map(|_| handle)
}

/// SIGHUP: re-read the config file and apply what can change live: the log level, and the
/// TLS certificates (new handshakes use them; established connections stay up).
fn reload(
    args: &ServeArgs,
    handle: Option<&LogFilterHandle>,
    tls: Option<&crate::security::tls::TlsAcceptor>,
) {
    let Some(path) = &args.config else {
        tracing::info!("SIGHUP: no --config file to reload");
        return;
    };
    match crate::config::BrokerConfig::from_file(path) {
        Ok(config) => {
            reload_tls(&config, tls);
            reload_log_level(&config, handle)
        }
        Err(e) => tracing::warn!(error = %e, "SIGHUP: config not reloaded"),
    }
}

/// New handshakes use the certificate files the config names now; an unreadable one keeps
/// the old certificates (and says why).
fn reload_tls(config: &BrokerConfig, tls: Option<&crate::security::tls::TlsAcceptor>) {
    let Some(tls) = tls else { return };
    match tls.reload(&config.tls_settings()) {
        Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded"),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP: TLS certificates not reloaded; keeping the current ones")
        }
    }
}

fn reload_log_level(config: &BrokerConfig, handle: Option<&LogFilterHandle>) {
    match (
        handle,
        tracing_subscriber::EnvFilter::try_new(&config.log_level),
    ) {
        (Some(h), Ok(filter)) => {
            if h.reload(filter).is_ok() {
                tracing::info!(log_level = %config.log_level, "SIGHUP: log level reloaded");
            }
        }
        (_, Err(e)) => {
            tracing::warn!(error = %e, "SIGHUP: invalid log_level; keeping the current one")
        }
        (None, _) => {}
    }
}

/// A panic on any shard thread would leave its partitions unreachable while the process
/// lives on. Fail fast instead: log it and abort, so the service manager restarts a whole
/// broker and recovery (which never loses an acknowledged, synced record) runs.
fn install_panic_abort() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if crate::protocol::alloc_guard::in_guarded_decode() {
            // A decoder choking on malformed input: it unwinds into a decode error.
            tracing::debug!(%info, "decoder panicked on malformed input");
            return;
        }
        tracing::error!(%info, "panic: aborting the broker so it restarts whole");
        default_hook(info);
        std::process::abort();
    }));
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and the shard threads it spawns, which
/// inherit the mask) so that only the main thread's `sigwait` receives them.
pub(super) fn block_signals() -> libc::sigset_t {
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

pub(super) fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: i32 = 0;
    // SAFETY: sigwait on a valid set; writes the received signal number.
    unsafe {
        libc::sigwait(set, &mut signal);
    }
    signal
}

/// Whether a SIGTERM or SIGINT arrived within `timeout` (taken: the process then stops).
/// For start-up waits that may last (a cluster node waiting for its quorum); a SIGHUP
/// stays pending for the main loop.
fn stop_signal_within(timeout: std::time::Duration) -> bool {
    // SAFETY: plain libc signal-set calls on a zeroed, then initialised, sigset; the
    // signals are blocked on every thread (`block_signals`), so sigtimedwait takes them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let wait = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        libc::sigtimedwait(&set, std::ptr::null_mut(), &wait) > 0
    }
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    let began = std::time::Instant::now();
    // First of all: a SIGTERM that arrives while the config loads must wait for the shutdown
    // path (drain, sync, mark clean), not kill the process with the default action.
    let signals = block_signals();
    let config = load_config(&args)?;
    if args.check_config {
        println!("configuration OK");
        return Ok(());
    }
    let log_handle = init_logging(&config.log_level);
    install_panic_abort();
    keep_request_buffers_mapped();
    let listen = config
        .listener_specs()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|l| format!("{}://{}", l.name, l.bind))
        .collect::<Vec<_>>()
        .join(",");
    let data_dir = config.data_dir.clone();
    // The admin listener starts first so /v1/health answers during recovery.
    let observer = std::sync::Arc::new(
        crate::shard::observe::BrokerObserver::new(config.node_id)
            .with_console_read_only(config.console_read_only),
    );
    let admin = crate::admin::spawn_admin_server(config.admin_listen, observer.clone())
        .map_err(|e| e.to_string())?;
    crate::admin::systemd::notify_status("recovering partitions");
    let broker = match crate::shard::start_broker(config, &stop_signal_within) {
        Ok(broker) => broker,
        Err(crate::shard::StartError::StoppedBeforeServing) => {
            admin.shutdown();
            tracing::info!("stopped cleanly before serving (no metadata quorum reached)");
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    observer.attach(
        broker.shard_senders(),
        broker.cores.clone(),
        broker.io_driver.name(),
    );
    crate::admin::systemd::notify("READY=1\nSTATUS=serving");
    let watchdog = crate::admin::systemd::spawn_watchdog(broker.heartbeats.clone())
        .map_err(|e| format!("cannot start the systemd watchdog: {e}"))?;
    let (data_fs, append_path) = crate::storage::filesystem::describe(&data_dir)
        .map_or(("unknown".to_string(), None), |(name, path)| {
            (name, Some(path))
        });
    tracing::info!(
        %listen,
        data_dir = %data_dir.display(),
        %data_fs,
        admin = %admin.local_addr(),
        shards = broker.shard_count(),
        cores = ?broker.cores,
        io_driver = broker.io_driver.name(),
        startup_ms = began.elapsed().as_millis() as u64,
        "sluice ready"
    );
    if append_path == Some(crate::storage::filesystem::AppendPath::WorkerThread)
        && broker.io_driver == crate::shard::io_driver::IoDriver::IoUring
    {
        tracing::info!(
            %data_fs,
            "appends on this filesystem beyond [log] write_inline_max_bytes (coalesced runs) \
             run on io_uring worker threads (iou-wrk); on XFS they complete inline: see \
             docs/decisions/0005-filesystem.md for the trade-off"
        );
    }
    loop {
        match wait_for_signal(&signals) {
            libc::SIGHUP => reload(&args, log_handle.as_ref(), broker.tls.as_deref()),
            signal => {
                tracing::info!(signal, "shutting down");
                break;
            }
        }
    }
    crate::admin::systemd::notify("STOPPING=1");
    observer.set_not_ready();
    if let Some(w) = watchdog {
        w.stop();
    }
    broker.shutdown();
    admin.shutdown();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Request buffers above glibc's mmap threshold (128 KiB at start) were mapped and unmapped
/// per request, and freed heap tops were trimmed back to the kernel: every large produce
/// request then paid page faults on memory the kernel had to zero again (one fault per
/// 25 KB produced with 256 KiB batches). The request-memory budget already bounds what is
/// live, so keep freed buffers in the allocator instead.
const MALLOC_MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
const MALLOC_TRIM_THRESHOLD_BYTES: i32 = 128 << 20;

fn keep_request_buffers_mapped() {
    // SAFETY: mallopt only changes allocator tuning; called before any shard thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES);
    }
}
