//! Answer pieces whose record regions are all in the page cache, sent from the shard thread
//! with plain system calls inside one non-blocking window on the socket: the framing with
//! `send(2)`, each region with `splice(2)` file → the connection's 1 MiB pipe → socket.
//! Must not: run for a region that may need the disk (the caller asks `cachestat` first), or
//! leave the socket non-blocking, or the pipe holding bytes, when it returns `Ok`.
//!
//! Why splice and not `sendfile(2)` (decision 0001, session-21 addendum): sendfile moves a
//! region through the kernel's per-task pipe of 16 pages, so a 1 MiB answer is 16 rounds of
//! page-cache lookups and TCP pushes; the connection's pipe takes 1 MiB in one round. On the
//! catch-up fetch (1 MiB answers) that halved the broker's CPU per GB and cut the round
//! trip's median by a third. Why not the ring's send for the framing: each ring send is a
//! submission and a completion, an `io_uring_enter` and a task wake-up, twice per answer.

use super::{NonBlockingWhileSending, SPLICE_PIPE_BYTES, SplicePipe, wait_writable};
use crate::server::response::Chunk;
use crate::storage::FileRegion;
use compio::net::TcpStream;
use std::os::fd::AsRawFd;

/// Sends `chunks` in order with the socket non-blocking throughout (`socket_flags`: its
/// flags as the ring uses them, restored on return); a full socket is waited for through
/// the ring. Every `Chunk::File` must be wholly cached.
pub(super) async fn send_cached(
    stream: &TcpStream,
    socket_flags: libc::c_int,
    chunks: &[Chunk],
    pipe: &mut Option<SplicePipe>,
) -> std::io::Result<()> {
    let socket = stream.as_raw_fd();
    let _nonblocking = NonBlockingWhileSending::set(socket, socket_flags)?;
    for chunk in chunks {
        match chunk {
            Chunk::Inline(bytes) => send_bytes(stream, bytes).await?,
            Chunk::File(region) => {
                if pipe.is_none() {
                    *pipe = Some(SplicePipe::new()?);
                }
                if let Some(p) = pipe.as_ref() {
                    splice_cached_region(stream, p, region).await?;
                }
            }
        }
    }
    Ok(())
}

/// What one non-blocking call returned: bytes moved (0 after EINTR), or `None` when the
/// socket is full.
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

async fn send_bytes(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let socket = stream.as_raw_fd();
    let mut sent = 0usize;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: send from a live slice of `rest.len()` bytes on a socket this task owns.
        let r = unsafe { libc::send(socket, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        match outcome(r)? {
            Some(n) => sent += n,
            None => wait_writable(stream).await?,
        }
    }
    Ok(())
}

fn ended_early() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "segment file ended before the fetched region",
    )
}

/// Moves a cached region file → pipe → socket, at most the pipe's size per round. The pipe
/// is empty when this starts and, on `Ok`, when it ends; an error leaves bytes in it, and
/// the connection closes on any write error, so no later answer can carry them.
async fn splice_cached_region(
    stream: &TcpStream,
    pipe: &SplicePipe,
    region: &FileRegion,
) -> std::io::Result<()> {
    let socket = stream.as_raw_fd();
    let mut offset = region.position as libc::loff_t;
    let mut remaining = region.len as usize;
    while remaining > 0 {
        let want = remaining.min(SPLICE_PIPE_BYTES as usize);
        // SAFETY: splice between descriptors this task keeps open; the kernel advances
        // `offset`, which lives on this stack frame. The pipe is empty, so this cannot wait
        // for room; the pages are cached, so it does not wait for the disk.
        let moved = unsafe {
            libc::splice(
                region.raw_fd(),
                &mut offset,
                pipe.write_end.as_raw_fd(),
                std::ptr::null_mut(),
                want,
                libc::SPLICE_F_MOVE,
            )
        };
        let mut in_pipe = match outcome(moved)? {
            Some(0) if moved == 0 => return Err(ended_early()),
            Some(n) => n,
            None => {
                return Err(std::io::Error::other(
                    "splice into an empty pipe would block",
                ));
            }
        };
        remaining -= in_pipe;
        while in_pipe > 0 {
            // SAFETY: as above; the socket is non-blocking for this call (SPLICE_F_NONBLOCK
            // too, so a full socket answers EAGAIN whatever the kernel takes from O_NONBLOCK).
            let r = unsafe {
                libc::splice(
                    pipe.read_end.as_raw_fd(),
                    std::ptr::null_mut(),
                    socket,
                    std::ptr::null_mut(),
                    in_pipe,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE | libc::SPLICE_F_NONBLOCK,
                )
            };
            match outcome(r)? {
                Some(0) if r == 0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "socket closed during splice",
                    ));
                }
                Some(n) => in_pipe -= n,
                None => wait_writable(stream).await?,
            }
        }
    }
    Ok(())
}
