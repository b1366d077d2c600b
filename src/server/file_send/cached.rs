//! Answer pieces whose record regions are all in the page cache, sent from the shard thread
//! with plain system calls inside one non-blocking window on the socket: the framing
//! written into the connection's 1 MiB pipe, each region spliced file → pipe, and the pipe
//! spliced to the socket when it is full and at the end.
//! Must not: run for a region that may need the disk (the caller asks `cachestat` first), or
//! leave the socket non-blocking, or the pipe holding bytes, when it returns `Ok`.
//!
//! Why splice and not `sendfile(2)` (decision 0001, session-21 addendum): sendfile moves a
//! region through the kernel's per-task pipe of 16 pages, so a 1 MiB answer is 16 rounds of
//! page-cache lookups and TCP pushes; the connection's pipe takes 1 MiB in one round. On the
//! catch-up fetch (1 MiB answers) that halved the broker's CPU per GB and cut the round
//! trip's median by a third. Why not the ring's send for the framing: each ring send is a
//! submission and a completion, an `io_uring_enter` and a task wake-up, twice per answer.

use super::{NonBlockingWhileSending, SplicePipe, wait_writable};
use crate::server::response::Chunk;
use crate::storage::FileRegion;
use compio::net::TcpStream;
use std::os::fd::AsRawFd;

/// Sends `chunks` in order with the socket non-blocking throughout (`socket_flags`: its
/// flags as the ring uses them, restored on return); a full socket is waited for through
/// the ring. Every `Chunk::File` must be wholly cached.
///
/// The pieces are gathered in the connection's pipe (framing written into it, regions
/// spliced into it) and the pipe goes to the socket only when it is full and at the end.
/// A Fetch over many partitions is a small piece of framing and a region of a few pages per
/// partition: sent one by one, each was its own `tcp_sendmsg` and TCP push (with the
/// receiver's softirq run in this thread on loopback), two per partition; gathered, a 1 MiB
/// pipe leaves in one splice whatever the partition count (issue 19, session 26).
pub(super) async fn send_cached(
    stream: &TcpStream,
    socket_flags: libc::c_int,
    chunks: &[Chunk],
    pipe: &mut Option<SplicePipe>,
) -> std::io::Result<()> {
    let socket = stream.as_raw_fd();
    let _nonblocking = NonBlockingWhileSending::set(socket, socket_flags)?;
    if pipe.is_none() {
        *pipe = Some(SplicePipe::new()?);
    }
    let Some(pipe) = pipe.as_ref() else {
        return Err(std::io::Error::other("no splice pipe"));
    };
    let mut gathered = Gathered { pipe, bytes: 0 };
    for chunk in chunks {
        match chunk {
            Chunk::Inline(bytes) => gathered.push_bytes(stream, bytes).await?,
            Chunk::File(region) => gathered.push_region(stream, region).await?,
        }
    }
    gathered.drain(stream, Push::Now).await
}

/// Whether a drain of the pipe ends the answer: its last segment then leaves at once on an
/// uncorked socket; a drain because the pipe is full says more follows (SPLICE_F_MORE).
#[derive(Clone, Copy, PartialEq)]
enum Push {
    MoreFollows,
    Now,
}

/// What one non-blocking call returned: bytes moved (0 after EINTR), or `None` when the
/// socket (or the pipe) is full.
fn outcome(result: isize) -> std::io::Result<Option<usize>> {
    if result >= 0 {
        return Ok(Some(result as usize));
    }
    let error = std::io::Error::last_os_error();
    match error.kind() {
        std::io::ErrorKind::Interrupted => Ok(Some(0)),
        std::io::ErrorKind::WouldBlock => Ok(None),
        _ => Err(error),
    }
}

fn ended_early() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "segment file ended before the fetched region",
    )
}

/// A pipe full with nothing gathered: the pipe is not the empty one this answer started with.
fn full_when_empty() -> std::io::Error {
    std::io::Error::other("splice pipe full with nothing gathered in it")
}

/// The answer's bytes queued in the connection's pipe and not yet sent. The pipe is empty
/// when gathering starts and, once `drain` returned `Ok`, when it ends; an error leaves
/// bytes in it, and the connection closes on any write error, so no later answer can carry
/// them.
struct Gathered<'a> {
    pipe: &'a SplicePipe,
    bytes: usize,
}

impl Gathered<'_> {
    /// Copies `bytes` (framing) into the pipe, draining it to the socket whenever it is full.
    async fn push_bytes(&mut self, stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        let mut written = 0usize;
        while written < bytes.len() {
            let rest = &bytes[written..];
            // SAFETY: write from a live slice of `rest.len()` bytes to the pipe this task
            // owns; its write end is non-blocking (`SplicePipe::new`), so a full pipe answers
            // EAGAIN (or takes part of a write longer than PIPE_BUF).
            let r = unsafe {
                libc::write(
                    self.pipe.write_end.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                )
            };
            match outcome(r)? {
                Some(n) => {
                    written += n;
                    self.bytes += n;
                }
                None if self.bytes == 0 => return Err(full_when_empty()),
                None => self.drain(stream, Push::MoreFollows).await?,
            }
        }
        Ok(())
    }

    /// Splices a cached region into the pipe, draining it to the socket whenever it is full.
    async fn push_region(
        &mut self,
        stream: &TcpStream,
        region: &FileRegion,
    ) -> std::io::Result<()> {
        let mut offset = region.position as libc::loff_t;
        let mut remaining = region.len as usize;
        while remaining > 0 {
            // SAFETY: splice between descriptors this task keeps open; the kernel advances
            // `offset`, which lives on this stack frame. SPLICE_F_NONBLOCK: a full pipe
            // answers EAGAIN; the pages are cached, so the file side does not wait for the
            // disk.
            let moved = unsafe {
                libc::splice(
                    region.raw_fd(),
                    &mut offset,
                    self.pipe.write_end.as_raw_fd(),
                    std::ptr::null_mut(),
                    remaining,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            match outcome(moved)? {
                Some(0) if moved == 0 => return Err(ended_early()),
                Some(n) => {
                    remaining -= n;
                    self.bytes += n;
                }
                None if self.bytes == 0 => return Err(full_when_empty()),
                None => self.drain(stream, Push::MoreFollows).await?,
            }
        }
        Ok(())
    }

    /// Moves everything gathered from the pipe to the socket, waiting through the ring
    /// while the socket is full.
    async fn drain(&mut self, stream: &TcpStream, push: Push) -> std::io::Result<()> {
        let socket = stream.as_raw_fd();
        let more = if push == Push::MoreFollows {
            libc::SPLICE_F_MORE
        } else {
            0
        };
        while self.bytes > 0 {
            // SAFETY: splice between descriptors this task keeps open; the socket is
            // non-blocking for this call (SPLICE_F_NONBLOCK too, so a full socket answers
            // EAGAIN whatever the kernel takes from O_NONBLOCK).
            let r = unsafe {
                libc::splice(
                    self.pipe.read_end.as_raw_fd(),
                    std::ptr::null_mut(),
                    socket,
                    std::ptr::null_mut(),
                    self.bytes,
                    libc::SPLICE_F_MOVE | more | libc::SPLICE_F_NONBLOCK,
                )
            };
            match outcome(r)? {
                Some(0) if r == 0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "socket closed during splice",
                    ));
                }
                Some(n) => self.bytes -= n,
                None => wait_writable(stream).await?,
            }
        }
        Ok(())
    }
}
