//! Sending an answer's pieces to the socket, file regions without a copy: when every page is
//! cached (`cachestat`), the whole answer from the shard thread (`cached`: send, and splice
//! through the connection's pipe); else inline bytes with the ring's send and regions
//! spliced file → pipe → socket on an io-wq worker, so a read from disk never stalls the
//! shard (decision 0001). Must not: decide what is sent (the connection's writer does) or
//! read record bytes into user space.

mod cached;

use super::response::Chunk;
use crate::shard::Shard;
use compio::BufResult;
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;

/// Bytes the kernel pipe between a segment file and the socket may hold (F_SETPIPE_SZ).
pub const SPLICE_PIPE_BYTES: i32 = 1024 * 1024;

pub(super) async fn write_all(stream: &mut TcpStream, bytes: bytes::Bytes) -> std::io::Result<()> {
    let BufResult(result, _) = stream.write_all(bytes).await;
    result
}

pub(super) async fn write_chunks(
    shard: &Shard,
    stream: &mut TcpStream,
    pipe: &mut Option<SplicePipe>,
    socket_flags: Option<libc::c_int>,
    chunks: Vec<Chunk>,
) -> std::io::Result<()> {
    // An answer in several pieces (a fetch: its head, the record regions, its tail) leaves
    // as one push. Sent piece by piece, each piece was a segment of its own that woke the
    // peer: a replica fetcher waiting for its answer woke for the head, then the records,
    // then the tail (decision 0012, session 17). Corking only holds back a partial segment
    // until the last piece is queued (uncorking pushes it); full segments go out as they
    // fill. Without the option (it cannot fail on a TCP socket) the pieces go as before.
    let _corked = if chunks.len() > 1 {
        Corked::set(std::os::fd::AsRawFd::as_raw_fd(stream)).ok()
    } else {
        None
    };
    read_ahead_of(&chunks);
    send_pieces(stream, pipe, socket_flags, &chunks, |cached| {
        shard.metrics.fetch_file_sent(cached)
    })
    .await
}

/// A region at least this long is a reader catching up (a consumer's default
/// `max.partition.fetch.bytes` is 1 MiB): what follows it is read ahead when not cached.
pub const READ_AHEAD_MIN_REGION_BYTES: u32 = 256 * 1024;
/// How many lengths of such a region after it are read ahead.
pub const READ_AHEAD_REGIONS: u64 = 2;

/// Starts reading into the page cache what a catching-up reader's next fetches will want
/// (the bytes after each long region, within its file) when any of it is missing. Pages of
/// old data get evicted (reclaim; on this project's VMs the kernel's DAMON proactive
/// reclaim takes ~1 % of a log a second after it was written, decision 0001 session 26),
/// and an answer with a missing page goes to an io-wq worker and waits for the disk: the
/// catch-up row's tail (issue 22). Asked on a blocking-pool thread, only when a page is
/// missing: the usual cached case costs an `fstat` and a `cachestat`.
fn read_ahead_of(chunks: &[Chunk]) {
    for chunk in chunks {
        let Chunk::File(region) = chunk else {
            continue;
        };
        if region.len < READ_AHEAD_MIN_REGION_BYTES {
            continue;
        }
        let next = region.position + u64::from(region.len);
        let want = u64::from(region.len) * READ_AHEAD_REGIONS;
        let Some((from, len)) =
            crate::storage::page_cache::missing_within_file(region.raw_fd(), next, want)
        else {
            continue;
        };
        let fd = Arc::clone(&region.fd);
        // Detached: nothing waits for it; the fetch that wants the bytes finds them cached
        // or reads them itself, as before.
        compio::runtime::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            crate::storage::page_cache::will_need(fd.as_raw_fd(), from, len);
        })
        .detach();
    }
}

/// `write_chunks` without the shard: `file_sent` is told, per region, whether it went from
/// the page cache on this thread (`true`) or to a worker.
///
/// Every region cached (the usual case: consumers near the tail, replicas, a catch-up read
/// of recent data): the whole answer from this thread, no ring round trip. Otherwise the
/// cached pieces still go from this thread, gathered run by run, and only the regions that
/// may need the disk take an io-wq worker: a Fetch over 1,000 partitions with a few pages
/// evicted here and there (reclaim) paid a ring send per piece and a worker per region for
/// all of them (issue 19, session 26).
async fn send_pieces(
    stream: &mut TcpStream,
    pipe: &mut Option<SplicePipe>,
    socket_flags: Option<libc::c_int>,
    chunks: &[Chunk],
    file_sent: impl Fn(bool),
) -> std::io::Result<()> {
    let Some(flags) = socket_flags else {
        return write_chunks_through_ring(stream, pipe, chunks, file_sent).await;
    };
    let mut run_start = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let Chunk::File(region) = chunk else {
            continue;
        };
        let cached = region.is_readable_without_io();
        file_sent(cached);
        if cached {
            continue;
        }
        if run_start < i {
            cached::send_cached(stream, flags, &chunks[run_start..i], pipe).await?;
        }
        // `send_cached` left the pipe empty, as the worker's splice needs it.
        splice_on_worker(stream, pipe, region).await?;
        run_start = i + 1;
    }
    if run_start < chunks.len() {
        cached::send_cached(stream, flags, &chunks[run_start..], pipe).await?;
    }
    Ok(())
}

/// Without the socket's flags (the direct sends need them) every piece goes through the
/// ring: inline bytes with its send, regions spliced on a worker.
async fn write_chunks_through_ring(
    stream: &mut TcpStream,
    pipe: &mut Option<SplicePipe>,
    chunks: &[Chunk],
    file_sent: impl Fn(bool),
) -> std::io::Result<()> {
    for chunk in chunks {
        match chunk {
            Chunk::Inline(bytes) => write_all(stream, bytes.clone()).await?,
            Chunk::File(region) => {
                file_sent(false);
                splice_on_worker(stream, pipe, region).await?;
            }
        }
    }
    Ok(())
}

/// One region file → pipe → socket through the ring's splice (an io-wq worker), for a
/// region that may need the disk. The pipe must be empty.
async fn splice_on_worker(
    stream: &TcpStream,
    pipe: &mut Option<SplicePipe>,
    region: &crate::storage::FileRegion,
) -> std::io::Result<()> {
    if pipe.is_none() {
        *pipe = Some(SplicePipe::new()?);
    }
    match pipe.as_ref() {
        Some(p) => p.splice_region(stream, region).await,
        None => Err(std::io::Error::other("no splice pipe")),
    }
}

/// TCP_CORK on a socket for as long as this lives; dropping it uncorks, which pushes what
/// is queued, on every path out of the answer (an error closes the connection anyway).
struct Corked {
    fd: std::os::fd::RawFd,
}

impl Corked {
    fn set(fd: std::os::fd::RawFd) -> std::io::Result<Self> {
        set_cork(fd, 1)?;
        Ok(Corked { fd })
    }
}

impl Drop for Corked {
    fn drop(&mut self) {
        // A failure leaves the tail to the kernel's cork timeout (200 ms): slower, never
        // lost or reordered.
        let _ = set_cork(self.fd, 0);
    }
}

fn set_cork(fd: std::os::fd::RawFd, on: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setsockopt on a descriptor the caller owns, reading one c_int from this frame.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The socket's file status flags (F_GETFL), as they are while the ring uses it.
pub(super) fn socket_status_flags(stream: &TcpStream) -> std::io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor this connection owns; no memory is passed.
    let flags = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(flags)
}

/// O_NONBLOCK on a socket for as long as this lives; dropping it restores `flags`.
///
/// Only for the length of one direct send. The flag belongs to the open socket, not to one
/// call, and the ring's `SENDMSG` honours it: a send the ring hands to an io-wq worker on a
/// non-blocking socket would fail with EAGAIN instead of waiting. No ring send runs on the
/// socket meanwhile (one task writes each connection's answers, one at a time), and the
/// ring's `RECV` ignores the flag.
struct NonBlockingWhileSending {
    fd: std::os::fd::RawFd,
    flags: libc::c_int,
}

impl NonBlockingWhileSending {
    fn set(fd: std::os::fd::RawFd, flags: libc::c_int) -> std::io::Result<Self> {
        // SAFETY: fcntl on a descriptor the caller owns; no memory is passed.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(NonBlockingWhileSending { fd, flags })
    }
}

impl Drop for NonBlockingWhileSending {
    fn drop(&mut self) {
        // SAFETY: as in `set`. Failing to clear the flag cannot corrupt data: a later ring
        // send that meets EAGAIN fails, and the connection closes.
        unsafe { libc::fcntl(self.fd, libc::F_SETFL, self.flags) };
    }
}

/// Waits, through the ring, until the socket has room to send.
async fn wait_writable(stream: &TcpStream) -> std::io::Result<()> {
    use compio::driver::ToSharedFd;
    use compio::driver::op::{Interest, PollOnce};
    let op = PollOnce::new(stream.to_shared_fd(), Interest::Writable);
    let BufResult(result, _) = compio::runtime::submit(op).await;
    result.map(|_| ())
}

/// A pipe reused for every splice on one connection. The write end is shared with a
/// blocking-pool thread on the polling driver (see [`fill_pipe_on_thread_pool`]).
pub struct SplicePipe {
    read_end: Rc<std::os::fd::OwnedFd>,
    write_end: Arc<std::os::fd::OwnedFd>,
}

impl SplicePipe {
    pub fn new() -> std::io::Result<SplicePipe> {
        use std::os::fd::FromRawFd;
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors we then own.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read_end, write_end) = unsafe {
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        // A larger pipe means fewer splice round trips; failure only costs speed.
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            libc::fcntl(fds[1], libc::F_SETPIPE_SZ, SPLICE_PIPE_BYTES);
        }
        // The write end never waits: the shard thread gathers an answer's framing into the
        // pipe with write(2) and must get EAGAIN from a full pipe (`cached.rs`). The other
        // paths only ever fill an empty pipe, which does not block either way.
        // SAFETY: fcntl on a descriptor we own; no memory is passed.
        if unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SplicePipe {
            read_end: Rc::new(read_end),
            write_end: Arc::new(write_end),
        })
    }

    /// Moves `region` from its file to the socket through the pipe: io_uring SPLICE on an
    /// io-wq worker, or on the polling driver (which can only wait for pollable descriptors,
    /// and a regular file is not one) file → pipe on the blocking pool and pipe → socket
    /// when the socket is writable.
    async fn splice_region(
        &self,
        stream: &TcpStream,
        region: &crate::storage::FileRegion,
    ) -> std::io::Result<()> {
        use compio::driver::ToSharedFd;
        use compio::driver::op::{Splice, SpliceFlags};
        let mut offset = region.position;
        let mut remaining = region.len as usize;
        let socket = stream.to_shared_fd();
        let polling = crate::shard::io_driver::current_is_polling();
        while remaining > 0 {
            let want = remaining.min(SPLICE_PIPE_BYTES as usize);
            let mut in_pipe = if polling {
                fill_pipe_on_thread_pool(region.fd.clone(), offset, self.write_end.clone(), want)
                    .await?
            } else {
                let op = Splice::new(
                    region.fd.clone(),
                    offset as i64,
                    self.write_end.clone(),
                    -1,
                    want,
                    SpliceFlags::MOVE,
                );
                compio::runtime::submit(op).await.0?
            };
            if in_pipe == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended before the fetched region",
                ));
            }
            offset += in_pipe as u64;
            remaining -= in_pipe;
            while in_pipe > 0 {
                let read_end = self.read_end.clone();
                let op = Splice::new(read_end, -1, socket.clone(), -1, in_pipe, SpliceFlags::MOVE);
                let BufResult(result, _) = compio::runtime::submit(op).await;
                let sent = result?;
                if sent == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "socket closed during splice",
                    ));
                }
                in_pipe -= sent;
            }
        }
        Ok(())
    }
}

/// Splices up to `len` bytes of `file` at `offset` into the (empty) pipe on one of the
/// runtime's blocking-pool threads, so a read from disk never stalls the shard. The thread
/// holds its own references to both descriptors: a connection dropped meanwhile cannot make
/// it splice into a reused descriptor number.
async fn fill_pipe_on_thread_pool(
    file: Arc<std::os::fd::OwnedFd>,
    offset: u64,
    write_end: Arc<std::os::fd::OwnedFd>,
    len: usize,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let splice = move || {
        let mut file_offset = offset as libc::loff_t;
        loop {
            // SAFETY: splice between descriptors this closure keeps open; the kernel advances
            // `file_offset`, which lives on this stack frame.
            let moved = unsafe {
                libc::splice(
                    file.as_raw_fd(),
                    &mut file_offset,
                    write_end.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    libc::SPLICE_F_MOVE,
                )
            };
            if moved >= 0 {
                return Ok(moved as usize);
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    };
    compio::runtime::spawn_blocking(splice)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("splice thread panicked")))
}

#[cfg(test)]
mod tests;
