//! systemd integration: `sd_notify` messages and a watchdog that pings only while every shard
//! makes progress.
//!
//! Owns: the notify socket protocol (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=...`),
//! per-shard heartbeats, and the watchdog thread. Must not: panic or fail the broker when
//! systemd is absent (everything is a no-op without `NOTIFY_SOCKET` / `WATCHDOG_USEC`).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Pings are sent this many times per watchdog interval (systemd's advice: at least twice).
pub const WATCHDOG_PINGS_PER_INTERVAL: u32 = 2;
/// Longest time a shard may go between heartbeat ticks when no watchdog is configured.
pub const HEARTBEAT_TICK_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// Shortest heartbeat timer period we recommend, to keep idle shards cheap.
pub const HEARTBEAT_TICK_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// Sends one notification to `$NOTIFY_SOCKET`. Returns whether it was sent: `false` when the
/// variable is unset (not under systemd) or sending failed (logged). Never panics.
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match notify_to(&socket, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("sd_notify {state:?} to {socket:?} failed: {e}");
            false
        }
    }
}

/// Asks systemd for more start-up (or stop) time: call during long recovery, before the
/// current `TimeoutStartSec` runs out, with the time still needed from now.
pub fn extend_timeout(more: Duration) -> bool {
    notify(&format!("EXTEND_TIMEOUT_USEC={}", more.as_micros()))
}

/// A one-line human status shown by `systemctl status` (e.g. "recovering 12/40 partitions").
pub fn notify_status(text: &str) -> bool {
    // A newline would end the assignment and start another: keep the first line only.
    let line = text.lines().next().unwrap_or_default();
    notify(&format!("STATUS={line}"))
}

/// Sends `state` to the notify socket at `socket` (a path, or `@name` for an abstract socket).
pub fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let sock = UnixDatagram::unbound()?;
    let sent = match bytes.first() {
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            sock.send_to_addr(state.as_bytes(), &addr)?
        }
        Some(b'/') => sock.send_to(state.as_bytes(), socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an abstract (@) name",
            ));
        }
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short datagram write",
        ));
    }
    Ok(())
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if it is meant for this process
/// (`WATCHDOG_PID` unset or equal to our pid).
pub fn watchdog_interval_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog_env(&usec, pid.as_deref(), std::process::id())
}

fn parse_watchdog_env(usec: &str, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(our_pid)
    {
        return None;
    }
    let usec: u64 = usec.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// How often each shard should tick its heartbeat on an idle loop (a timer): at least four
/// ticks per watchdog interval so one check window always sees one.
pub fn recommended_tick_interval(watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(w) => (w / 4).clamp(HEARTBEAT_TICK_INTERVAL_MIN, HEARTBEAT_TICK_INTERVAL_MAX),
        None => HEARTBEAT_TICK_INTERVAL_MAX,
    }
}

/// One counter on its own cache line, so shards ticking never share a line.
#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicU64);

/// Every shard's heartbeat counter. Clone freely; each shard takes its own with [`for_shard`].
///
/// [`for_shard`]: Heartbeats::for_shard
#[derive(Clone)]
pub struct Heartbeats(Arc<[PaddedCounter]>);

impl Heartbeats {
    pub fn new(shards: usize) -> Heartbeats {
        Heartbeats((0..shards).map(|_| PaddedCounter::default()).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The writer for shard `shard`; `None` when out of range.
    pub fn for_shard(&self, shard: usize) -> Option<ShardHeartbeat> {
        (shard < self.0.len()).then(|| ShardHeartbeat {
            beats: Arc::clone(&self.0),
            shard,
        })
    }

    fn read(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).collect()
    }
}

/// One shard's heartbeat. Only that shard ticks it (a plain load + store: no locked RMW).
pub struct ShardHeartbeat {
    beats: Arc<[PaddedCounter]>,
    shard: usize,
}

impl ShardHeartbeat {
    /// Call once per event-loop iteration and from a periodic timer
    /// ([`recommended_tick_interval`]) so an idle shard still shows it is alive.
    #[inline]
    pub fn tick(&self) {
        let counter = &self.beats[self.shard].0;
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// Compares heartbeats between looks. Separate from the thread so it is testable without time.
pub struct ProgressCheck {
    heartbeats: Heartbeats,
    last: Vec<u64>,
}

impl ProgressCheck {
    pub fn new(heartbeats: Heartbeats) -> ProgressCheck {
        let last = heartbeats.read();
        ProgressCheck { heartbeats, last }
    }

    /// The shards whose heartbeat did not move since the previous call (empty: all healthy).
    pub fn stuck_shards(&mut self) -> Vec<usize> {
        let now = self.heartbeats.read();
        let stuck = now
            .iter()
            .zip(&self.last)
            .enumerate()
            .filter(|(_, (now, last))| now == last)
            .map(|(shard, _)| shard)
            .collect();
        self.last = now;
        stuck
    }
}

/// The running watchdog thread. Dropping the handle leaves it running (like a `JoinHandle`);
/// call [`stop`](Self::stop) at shutdown, after `STOPPING=1`.
#[must_use = "dropping the handle detaches the watchdog; keep it to stop it"]
pub struct WatchdogHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WatchdogHandle {
    /// Stops pinging (call after `STOPPING=1`, before shards stop ticking) and joins.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Starts the watchdog when systemd configured one (`WATCHDOG_USEC`); `Ok(None)` otherwise.
/// Pings `WATCHDOG=1` every half interval while every shard's heartbeat advanced.
pub fn spawn_watchdog(heartbeats: Heartbeats) -> io::Result<Option<WatchdogHandle>> {
    let Some(interval) = watchdog_interval_from_env() else {
        return Ok(None);
    };
    tracing::info!(?interval, "systemd watchdog enabled");
    spawn_watchdog_with(heartbeats, interval, |msg| {
        notify(msg);
    })
    .map(Some)
}

/// The watchdog loop with an explicit interval and ping sink (tests pass a channel).
pub fn spawn_watchdog_with(
    heartbeats: Heartbeats,
    interval: Duration,
    mut ping: impl FnMut(&str) + Send + 'static,
) -> io::Result<WatchdogHandle> {
    let period = interval / WATCHDOG_PINGS_PER_INTERVAL;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("sluice-watchdog".into())
        .spawn(move || {
            let mut check = ProgressCheck::new(heartbeats);
            loop {
                let deadline = std::time::Instant::now() + period;
                // park_timeout may wake early (unpark or spuriously): sleep out the period.
                while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                    if thread_stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::park_timeout(left);
                }
                if thread_stop.load(Ordering::SeqCst) {
                    return;
                }
                let stuck = check.stuck_shards();
                if stuck.is_empty() {
                    ping("WATCHDOG=1");
                } else {
                    tracing::error!(
                        "shard(s) {stuck:?} made no progress for {period:?}; withholding the \
                         systemd watchdog ping so the service is restarted if it stays stuck"
                    );
                }
            }
        })?;
    Ok(WatchdogHandle {
        stop,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notify_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
        notify_to(path.as_os_str(), "STATUS=recovering 3 partitions").unwrap();
        assert_eq!(recv(&sock), "STATUS=recovering 3 partitions");
    }

    #[test]
    fn notify_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "sluice-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(
            OsStr::from_bytes(format!("@{name}").as_bytes()),
            "STOPPING=1",
        )
        .unwrap();
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn notify_errors_instead_of_panicking() {
        assert!(notify_to(OsStr::new("relative/path"), "READY=1").is_err());
        assert!(notify_to(OsStr::new(""), "READY=1").is_err());
        assert!(notify_to(OsStr::new("/nonexistent/dir/sock"), "READY=1").is_err());
    }

    #[test]
    fn watchdog_env_is_honoured_only_for_our_pid() {
        assert_eq!(
            parse_watchdog_env("1000000", None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_watchdog_env("1000000", Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(parse_watchdog_env("1000000", Some("8"), 7), None);
        assert_eq!(parse_watchdog_env("0", None, 7), None);
        assert_eq!(parse_watchdog_env("soon", None, 7), None);
        assert_eq!(
            recommended_tick_interval(Some(Duration::from_secs(10))),
            HEARTBEAT_TICK_INTERVAL_MAX
        );
        assert_eq!(
            recommended_tick_interval(Some(Duration::from_secs(1))),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn progress_check_names_the_stuck_shard() {
        let beats = Heartbeats::new(3);
        let s0 = beats.for_shard(0).unwrap();
        let s2 = beats.for_shard(2).unwrap();
        assert!(beats.for_shard(3).is_none());
        let mut check = ProgressCheck::new(beats.clone());
        s0.tick();
        s2.tick();
        assert_eq!(check.stuck_shards(), vec![1]);
        s0.tick();
        beats.for_shard(1).unwrap().tick();
        assert_eq!(check.stuck_shards(), vec![2]);
        s0.tick();
        s2.tick();
        beats.for_shard(1).unwrap().tick();
        assert!(check.stuck_shards().is_empty());
    }

    #[test]
    fn watchdog_pings_only_while_shards_tick() {
        let beats = Heartbeats::new(1);
        let ticker = beats.for_shard(0).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let handle = spawn_watchdog_with(beats, Duration::from_millis(100), move |m| {
            let _ = tx.send(m.to_string());
        })
        .unwrap();
        // Ticking shard: pings arrive.
        let ticking = Arc::new(AtomicBool::new(true));
        let t = Arc::clone(&ticking);
        let ticker_thread = std::thread::spawn(move || {
            while t.load(Ordering::SeqCst) {
                ticker.tick();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first, "WATCHDOG=1");
        // Stuck shard: a ping may still be due for ticks made before the stop, but then the
        // pings must cease (a quiet gap of several periods), within a generous bound.
        ticking.store(false, Ordering::SeqCst);
        ticker_thread.join().unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(Duration::from_millis(400)) {
                Err(_) => break,
                Ok(m) => assert_eq!(m, "WATCHDOG=1"),
            }
            assert!(
                std::time::Instant::now() < give_up,
                "watchdog kept pinging for a stuck shard"
            );
        }
        handle.stop();
    }
}
