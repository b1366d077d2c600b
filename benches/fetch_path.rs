//! Fetch-path micro-benchmark behind docs/decisions/0001-runtime.md: moving a file region
//! that is in the page cache to a loopback TCP socket, (a) with io_uring SPLICE through a
//! pipe (what Sluice's fetch path does) and (b) by reading into a user buffer and writing
//! it (a classic copy). Reports GB/s and sender CPU-seconds per GB for each.
//!
//! Run: `cargo bench --bench fetch_path -- [MiB]` (default 1024 MiB).

use compio::BufResult;
use compio::io::{AsyncReadAtExt, AsyncWriteExt};
use std::io::Read;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Instant;

/// CPU seconds of the whole process (`RUSAGE_SELF`, which includes io_uring's io-wq
/// worker threads) or of the calling thread (`RUSAGE_THREAD`).
fn cpu_seconds_of(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

const CHUNK: usize = 1024 * 1024;

fn main() {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("segment.log");
    let file_bytes = 256 * 1024 * 1024u64;
    std::fs::write(&path, vec![7u8; file_bytes as usize]).expect("write file");
    let total = mib * 1024 * 1024;
    for mode in ["splice", "sendfile", "copy"] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let drain = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0u64;
            let cpu0 = cpu_seconds_of(libc::RUSAGE_THREAD);
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            (got, cpu_seconds_of(libc::RUSAGE_THREAD) - cpu0)
        });
        let process_cpu0 = cpu_seconds_of(libc::RUSAGE_SELF);
        let path = path.clone();
        let elapsed = std::thread::spawn(move || {
            let rt = compio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let file = compio::fs::File::open(&path).await.expect("open");
                let mut stream = compio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect");
                let start = Instant::now();

                let mut sent = 0u64;
                if mode == "splice" {
                    let pipe = sluice_pipe();
                    let (r, w) = (Rc::new(pipe.0), Rc::new(pipe.1));
                    use compio::driver::ToSharedFd;
                    use compio::driver::op::{Splice, SpliceFlags};
                    let sock = stream.to_shared_fd();
                    let file_fd = Rc::new(std::fs::File::open(&path).expect("reopen"));
                    while sent < total {
                        let off = (sent % file_bytes) as i64;
                        let op = Splice::new(
                            file_fd.clone(),
                            off,
                            w.clone(),
                            -1,
                            CHUNK,
                            SpliceFlags::MOVE,
                        );
                        let BufResult(n, _) = compio::runtime::submit(op).await;
                        let mut n = n.expect("splice in");
                        sent += n as u64;
                        while n > 0 {
                            let op =
                                Splice::new(r.clone(), -1, sock.clone(), -1, n, SpliceFlags::MOVE);
                            let BufResult(m, _) = compio::runtime::submit(op).await;
                            n -= m.expect("splice out");
                        }
                    }
                } else if mode == "sendfile" {
                    use compio::driver::ToSharedFd;
                    use std::os::fd::AsRawFd;
                    let sock = stream.to_shared_fd();
                    let sock_fd = sock.as_raw_fd();
                    // SAFETY: fcntl on our own socket.
                    unsafe {
                        let flags = libc::fcntl(sock_fd, libc::F_GETFL);
                        libc::fcntl(sock_fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                    }
                    let std_file = std::fs::File::open(&path).expect("reopen");
                    while sent < total {
                        let mut off = (sent % file_bytes) as libc::off_t;
                        // SAFETY: sendfile between two descriptors we own.
                        let n = unsafe {
                            libc::sendfile(sock_fd, std_file.as_raw_fd(), &mut off, CHUNK)
                        };
                        if n > 0 {
                            sent += n as u64;
                        } else {
                            let err = std::io::Error::last_os_error();
                            assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
                            let op = compio::driver::op::PollOnce::new(
                                sock.clone(),
                                compio::driver::op::Interest::Writable,
                            );
                            let BufResult(r, _) = compio::runtime::submit(op).await;
                            r.expect("poll");
                        }
                    }
                } else {
                    let mut buf = Vec::with_capacity(CHUNK);
                    while sent < total {
                        let off = sent % file_bytes;
                        let BufResult(r, b) = file.read_exact_at(buf, off).await;
                        r.expect("read");
                        let BufResult(w, mut b) = stream.write_all(b).await;
                        w.expect("write");
                        sent += CHUNK as u64;
                        b.clear();
                        buf = b;
                    }
                }
                let elapsed = start.elapsed().as_secs_f64();
                drop(stream);
                elapsed
            })
        })
        .join()
        .expect("sender thread");
        let (received, drain_cpu) = drain.join().expect("drain");
        // Everything the process spent except the receiving side: the sender thread and
        // any kernel worker threads io_uring used on its behalf.
        let cpu = cpu_seconds_of(libc::RUSAGE_SELF) - process_cpu0 - drain_cpu;
        let gb = received as f64 / 1e9;
        println!(
            "fetch_path mode={mode} bytes={received} throughput={:.2} GB/s sender_cpu={:.3} CPU-s/GB",
            gb / elapsed,
            cpu / gb
        );
    }
}

fn sluice_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 returns two new descriptors we own.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::fcntl(fds[1], libc::F_SETPIPE_SZ, CHUNK as i32);
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}
