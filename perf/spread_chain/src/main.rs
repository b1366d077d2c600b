//! `spread_chain DIR FILES MIB PER_TURN MODE`: writes MIB MiB in 16 KiB writes round-robin
//! over FILES warmed-up files in DIR, PER_TURN writes per submission, and prints MB/s and
//! the process's CPU-s/GB (io-wq workers included). Run it under `perf stat -e
//! context-switches` for the hand-offs. MODE:
//! - `plain`: PER_TURN independent write SQEs per `io_uring_enter` (what a shard's loop turn
//!   submits today: one SQE per partition's run; ext4 punts each buffered write to io-wq);
//! - `link`: the same SQEs as one IOSQE_IO_HARDLINK chain (issue 19's idea: one io-wq hop per
//!   turn instead of one per write);
//! - `linkasync`: the chain with IOSQE_ASYNC on its head (punted at once, no inline try);
//! - `pwrite`: blocking `pwrite`s on the calling thread (the broker's inline write).
//!
//! The question it answers (perf/RESULTS.md, session 24): does a linked chain cost fewer
//! context switches than independent writes? Each regular-file write is hashed io-wq work
//! (per inode), and a worker re-queues a hashed linked request rather than running it
//! itself, so a chain is not one hop.
use io_uring::{opcode, squeue::Flags, types, IoUring};
use std::io::{Error, ErrorKind, Result};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// The size of one write: one full producer batch of scale_spread.py's workload.
const WRITE_BYTES: usize = 16 * 1024;
/// Submission queue entries (more than any PER_TURN used).
const RING_ENTRIES: u32 = 4096;

fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage writes only the struct passed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF covers every thread of the process (io-wq workers too).
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> Result<T> {
    args.get(i)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("bad or missing {name}")))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir: String = arg(&args, 1, "DIR")?;
    let files: usize = arg(&args, 2, "FILES")?;
    let mib: usize = arg(&args, 3, "MIB")?;
    let per_turn: usize = arg(&args, 4, "PER_TURN")?;
    let mode: String = arg(&args, 5, "MODE")?;
    if files == 0
        || per_turn == 0
        || !["plain", "link", "linkasync", "pwrite"].contains(&mode.as_str())
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "FILES, PER_TURN > 0; MODE plain|link|linkasync|pwrite",
        ));
    }
    let fds = (0..files)
        .map(|i| {
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(format!("{dir}/f{i}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let buf = vec![7u8; WRITE_BYTES];
    // Warm-up: every file gets its first block before the measured writes.
    for f in &fds {
        std::os::unix::fs::FileExt::write_all_at(f, &buf, 0)?;
    }
    let mut pos = vec![WRITE_BYTES as u64; files];
    let mut ring = IoUring::new(RING_ENTRIES)?;
    let total = mib * 1024 * 1024 / WRITE_BYTES;
    let (started, cpu0) = (Instant::now(), cpu_seconds());
    let mut next = 0usize;
    let mut done = 0usize;
    while done < total {
        let n = per_turn.min(total - done);
        for k in 0..n {
            let f = next % files;
            next += 1;
            if mode == "pwrite" {
                std::os::unix::fs::FileExt::write_all_at(&fds[f], &buf, pos[f])?;
            } else {
                let mut flags = Flags::empty();
                if mode.starts_with("link") && k + 1 < n {
                    // HARDLINK: a failed write does not cancel the rest of the chain.
                    flags |= Flags::IO_HARDLINK;
                }
                if mode == "linkasync" && k == 0 {
                    flags |= Flags::ASYNC;
                }
                let entry = opcode::Write::new(
                    types::Fd(fds[f].as_raw_fd()),
                    buf.as_ptr(),
                    WRITE_BYTES as u32,
                )
                .offset(pos[f])
                .build()
                .flags(flags)
                .user_data(k as u64);
                // SAFETY: `buf` outlives the write: every completion is reaped below.
                unsafe { ring.submission().push(&entry) }
                    .map_err(|_| Error::other("submission queue full"))?;
            }
            pos[f] += WRITE_BYTES as u64;
        }
        if mode != "pwrite" {
            ring.submit_and_wait(n)?;
            let mut reaped = 0;
            while reaped < n {
                for c in ring.completion() {
                    if c.result() != WRITE_BYTES as i32 {
                        return Err(Error::other(format!("write returned {}", c.result())));
                    }
                    reaped += 1;
                }
                if reaped < n {
                    ring.submit_and_wait(1)?;
                }
            }
        }
        done += n;
    }
    let gb = (total * WRITE_BYTES) as f64 / 1e9;
    println!(
        "{mode} files={files} per_turn={per_turn}: {:.0} MB/s, {:.3} CPU-s/GB",
        gb * 1e3 / started.elapsed().as_secs_f64(),
        (cpu_seconds() - cpu0) / gb
    );
    Ok(())
}
