//! Sustained-append driver (not criterion): appends `SLUICE_BENCH_BYTES` of 1 KiB records in
//! `SLUICE_BENCH_BATCH_BYTES` batches with `SLUICE_BENCH_INFLIGHT` concurrent appenders into
//! `SLUICE_BENCH_DIR`, then fsyncs (like fio's end_fsync), and prints MB/s and CPU-seconds per
//! GB from getrusage. `SLUICE_BENCH_DURABLE=1` acknowledges each append after fdatasync
//! (group commit). The buffer fill (one memcpy per batch, standing in for the socket read) is
//! measured separately and reported both ways. Used by `perf/append_vs_fio.sh`.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use sluice::config::LogConfig;
use sluice::storage::PartitionLog;
use sluice::storage::batch::build_test_batch;

const RECORD_VALUE_BYTES: usize = 1024 - 10;
const GIB: u64 = 1024 * 1024 * 1024;
/// Batches copied to measure the buffer-fill cost alone.
const FILL_CALIBRATION_BATCHES: u64 = 512;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (user, system) CPU seconds of this process so far.
fn cpu_seconds() -> (f64, f64) {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own; RUSAGE_SELF is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// Keeps glibc from returning freed 1 MiB request buffers to the kernel after every append
/// (mmap/munmap or heap trimming), which would charge page faults and page zeroing to the
/// append path. A server's buffer pool avoids the same cost.
fn keep_freed_buffers() {
    // SAFETY: mallopt only tunes allocator thresholds; called before any threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * 1024 * 1024);
    }
}

fn main() {
    keep_freed_buffers();
    let total_bytes = env_u64("SLUICE_BENCH_BYTES", 2 * GIB);
    let batch_bytes = env_u64("SLUICE_BENCH_BATCH_BYTES", 1024 * 1024) as usize;
    let inflight = env_u64("SLUICE_BENCH_INFLIGHT", 4).max(1) as usize;
    let durable = env_u64("SLUICE_BENCH_DURABLE", 0) == 1;
    let dir: PathBuf = std::env::var("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let template = build_test_batch(
        (batch_bytes / 1024).max(1) as i32,
        RECORD_VALUE_BYTES,
        0,
        None,
    );
    let batches = total_bytes.div_ceil(template.len() as u64);

    let rt = compio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let config = LogConfig {
            flush_ms: -1,
            max_message_bytes: 8 * 1024 * 1024,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, "sustained", 0, config)
            .await
            .expect("open");

        // Calibrate the buffer fill alone (it is not part of the storage path).
        let (u0, s0) = cpu_seconds();
        for _ in 0..FILL_CALIBRATION_BATCHES {
            std::hint::black_box(BytesMut::from(&template[..]));
        }
        let (u1, s1) = cpu_seconds();
        let fill_cpu_per_batch = ((u1 - u0) + (s1 - s0)) / FILL_CALIBRATION_BATCHES as f64;

        let remaining = Rc::new(Cell::new(batches));
        let template = Rc::new(template);
        let (u0, s0) = cpu_seconds();
        let start = Instant::now();
        let tasks: Vec<_> = (0..inflight)
            .map(|_| {
                let log = Rc::clone(&log);
                let remaining = Rc::clone(&remaining);
                let template = Rc::clone(&template);
                compio::runtime::spawn(async move {
                    while remaining.get() > 0 {
                        remaining.set(remaining.get() - 1);
                        log.append(BytesMut::from(&template[..]), durable, 0)
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("appender");
        }
        log.flush().await.expect("final flush");
        let seconds = start.elapsed().as_secs_f64();
        let (u1, s1) = cpu_seconds();
        let written = batches * template.len() as u64;
        let gb = written as f64 / GIB as f64;
        let cpu = (u1 - u0) + (s1 - s0);
        let fill_cpu = fill_cpu_per_batch * batches as f64;
        let mbps = written as f64 / seconds / (1024.0 * 1024.0);
        println!(
            "append_sustained: bytes={written} batch_bytes={} inflight={inflight} durable={durable} seconds={seconds:.2} fdatasyncs={}",
            template.len(),
            log.fdatasync_count()
        );
        println!(
            "append_sustained: user_s={:.2} sys_s={:.2} cpu_s_per_gib={:.3} cpu_s_per_gib_excluding_buffer_fill={:.3}",
            u1 - u0,
            s1 - s0,
            cpu / gb,
            (cpu - fill_cpu).max(0.0) / gb
        );
        println!("RESULT mib_per_s={mbps:.1} cpu_s_per_gib={:.3}", cpu / gb);
        log.delete().await.expect("delete bench log");
    });
}
