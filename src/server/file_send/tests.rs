//! Tests of sending answers: both file paths on both drivers, corking, gathering in the
//! pipe, and answers with evicted regions.
use super::*;
use std::os::fd::AsRawFd;

fn status_flags(fd: std::os::fd::RawFd) -> libc::c_int {
    // SAFETY: fcntl on a descriptor the test owns.
    unsafe { libc::fcntl(fd, libc::F_GETFL) }
}

/// A synced segment file of `len` patterned bytes in `dir`, opened for reading: its
/// descriptor and content.
fn patterned_segment(dir: &std::path::Path, len: u32) -> (Arc<std::os::fd::OwnedFd>, Vec<u8>) {
    use std::io::Write;
    let path = dir.join("segment.log");
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&content).unwrap();
    file.sync_all().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    (Arc::new(std::os::fd::OwnedFd::from(file)), content)
}

/// `len` bytes at `position` of the segment file `fd`.
fn region_of(
    fd: &Arc<std::os::fd::OwnedFd>,
    position: u64,
    len: u32,
) -> crate::storage::FileRegion {
    crate::storage::FileRegion {
        fd: fd.clone(),
        path: std::sync::Arc::from(std::path::Path::new("segment.log")),
        position,
        len,
    }
}

/// A runtime on io_uring, or on the polling driver where io_uring is refused.
fn any_runtime() -> compio::runtime::Runtime {
    use crate::shard::io_driver::{IoDriver, build_runtime};
    build_runtime(IoDriver::IoUring, 64, &Default::default())
        .or_else(|_| build_runtime(IoDriver::Polling, 64, &Default::default()))
        .expect("a runtime")
}

/// A loopback connection: this side's accepted stream, and a thread on the other side that
/// waits `delay`, then reads everything until the stream closes.
async fn loopback_reader(
    delay: std::time::Duration,
) -> (compio::net::TcpStream, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::Read;
    let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(delay);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });
    let (stream, _) = listener.accept().await.unwrap();
    (stream, reader)
}

/// Sends `regions` of the segment file `fd` over a loopback connection (alternately spliced on a worker
/// and from this thread, `cached`) on a runtime with `driver`; returns what the peer
/// received.
fn send_regions_on(
    driver: crate::shard::io_driver::IoDriver,
    fd: &Arc<std::os::fd::OwnedFd>,
    regions: &[(u64, u32)],
) -> Option<Vec<u8>> {
    let runtime = crate::shard::io_driver::build_runtime(driver, 64, &Default::default()).ok()?;
    let regions: Vec<crate::storage::FileRegion> = regions
        .iter()
        .map(|&(position, len)| region_of(fd, position, len))
        .collect();
    runtime.block_on(async {
        let (stream, reader) = loopback_reader(std::time::Duration::ZERO).await;
        // One pipe for both paths, as on a connection: each leaves it empty.
        let mut pipe = Some(SplicePipe::new().unwrap());
        let flags = socket_status_flags(&stream).unwrap();
        for (i, region) in regions.iter().enumerate() {
            if i % 2 == 0 {
                let p = pipe.as_ref().unwrap();
                p.splice_region(&stream, region).await.unwrap();
            } else {
                let chunk = [Chunk::File(region.clone())];
                cached::send_cached(&stream, flags, &chunk, &mut pipe)
                    .await
                    .unwrap();
            }
        }
        drop(stream);
        Some(reader.join().unwrap())
    })
}

/// Both file paths move the exact bytes on either driver; on polling the file -> pipe
/// splice runs on the blocking pool (epoll cannot wait on a regular file).
#[test]
fn file_regions_arrive_intact_on_both_drivers() {
    use crate::shard::io_driver::IoDriver;
    let dir = tempfile::tempdir().unwrap();
    let (fd, content) = patterned_segment(dir.path(), 3 * 1024 * 1024);
    // The first two regions are larger than the pipe, so each path takes several rounds.
    let regions = [
        (4113u64, 1_600_000u32),
        (1_650_000, 1_200_000),
        (2_900_000, 200_001),
    ];
    let want: Vec<u8> = regions
        .iter()
        .flat_map(|&(p, l)| content[p as usize..p as usize + l as usize].to_vec())
        .collect();
    let polled = send_regions_on(IoDriver::Polling, &fd, &regions).expect("polling runtime");
    assert_eq!(polled.len(), want.len());
    assert!(polled == want, "polling driver bytes differ");
    if let Some(uring) = send_regions_on(IoDriver::IoUring, &fd, &regions) {
        assert!(uring == want, "io_uring driver bytes differ");
    }
}

/// Data segments a TCP socket has sent (TCP_INFO).
fn data_segments_sent(fd: std::os::fd::RawFd) -> u32 {
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt on a socket the test owns, into `info` of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_data_segs_out
}

/// A fetch answer's head, record region and tail, sent as `write_chunks` sends a cached
/// answer on a TCP_NODELAY socket: one data segment, corked or not, since the pieces
/// are gathered in the pipe and leave in one splice (each piece was a segment, a
/// wake-up of the peer, of its own before session 26); uncorked, the answer's end is
/// pushed at once, not held back as if more followed.
#[test]
fn a_corked_answer_in_pieces_leaves_as_one_segment() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("segment.log")).unwrap();
    file.write_all(&[7u8; 8192]).unwrap();
    let file = std::fs::File::open(dir.path().join("segment.log")).unwrap();
    let region = region_of(&Arc::new(std::os::fd::OwnedFd::from(file)), 100, 4000);
    let runtime = any_runtime();
    let mut segments = Vec::new();
    for corked in [false, true] {
        let region = region.clone();
        let (sent, received) = runtime.block_on(async move {
            let (stream, reader) = loopback_reader(std::time::Duration::ZERO).await;
            stream.set_nodelay(true).unwrap();
            let flags = socket_status_flags(&stream).unwrap();
            let fd = stream.as_raw_fd();
            let before = data_segments_sent(fd);
            {
                let _corked = corked.then(|| Corked::set(fd).unwrap());
                let chunks = [
                    Chunk::Inline(bytes::Bytes::from_static(&[1u8; 90])),
                    Chunk::File(region),
                    Chunk::Inline(bytes::Bytes::from_static(&[2u8; 12])),
                ];
                let mut pipe = None;
                cached::send_cached(&stream, flags, &chunks, &mut pipe)
                    .await
                    .unwrap();
            }
            let sent = data_segments_sent(fd) - before;
            drop(stream);
            (sent, reader.join().unwrap().len())
        });
        assert_eq!(received, 90 + 4000 + 12);
        segments.push(sent);
    }
    assert_eq!(segments, [1, 1], "one segment, uncorked and corked");
}

/// An answer of more pieces than the pipe holds (framing before each of 600 regions,
/// about 1,200 pipe buffers against 256): the pipe is drained whenever it fills, and the
/// peer gets every byte in order.
#[test]
fn an_answer_larger_than_the_pipe_arrives_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (fd, content) = patterned_segment(dir.path(), 3 * 1024 * 1024);
    let mut chunks = Vec::new();
    let mut want = Vec::new();
    for i in 0..600u32 {
        let head: Vec<u8> = (0..(i % 97) + 1).map(|b| (b as u8) ^ (i as u8)).collect();
        want.extend_from_slice(&head);
        chunks.push(Chunk::Inline(bytes::Bytes::from(head)));
        // Unaligned regions of 3-9 pages: several pipe buffers each.
        let (position, len) = (u64::from(i) * 5003 + 17, 12_000 + (i % 7) * 4096);
        want.extend_from_slice(&content[position as usize..][..len as usize]);
        chunks.push(Chunk::File(region_of(&fd, position, len)));
    }
    chunks.push(Chunk::Inline(bytes::Bytes::from_static(b"tail")));
    want.extend_from_slice(b"tail");
    let runtime = any_runtime();
    let got = runtime.block_on(async move {
        // A slow reader, so the socket fills too and the drains wait for it.
        let (stream, reader) = loopback_reader(std::time::Duration::from_millis(50)).await;
        let flags = socket_status_flags(&stream).unwrap();
        let mut pipe = None;
        cached::send_cached(&stream, flags, &chunks, &mut pipe)
            .await
            .unwrap();
        assert_eq!(
            status_flags(stream.as_raw_fd()),
            flags,
            "socket flags restored"
        );
        drop(stream);
        reader.join().unwrap()
    });
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes differ");
}

/// An answer whose regions are cached but one (its pages dropped from the page cache):
/// the cached pieces go from this thread and only that region takes the worker's
/// splice, and the peer gets every byte in order.
#[test]
fn an_answer_with_one_evicted_region_sends_only_that_region_through_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (fd, content) = patterned_segment(dir.path(), 1024 * 1024);
    let region = |position, len| region_of(&fd, position, len);
    // Everything dropped from the page cache (clean after the sync), then only the two
    // cached regions read back in, without readahead: the middle one stays on disk.
    let (evicted_at, evicted_len) = (512 * 1024u64, 64 * 1024u32);
    // SAFETY: posix_fadvise on a descriptor the test owns; no memory is passed.
    unsafe {
        libc::posix_fadvise(fd.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        libc::posix_fadvise(fd.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
    }
    for (position, len) in [(1000u64, 20_000usize), (700_000, 30_000)] {
        let mut buf = vec![0u8; len];
        // SAFETY: pread into a live buffer of `len` bytes on a descriptor the test owns.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                len,
                position as libc::off_t,
            )
        };
        assert_eq!(n, len as isize);
    }
    let (cached_one, evicted, cached_two) = (
        region(1000, 20_000),
        region(evicted_at, evicted_len),
        region(700_000, 30_000),
    );
    if !cached_one.is_readable_without_io() || evicted.is_readable_without_io() {
        return; // no cachestat here, or the kernel kept the pages: nothing to show
    }
    let chunks = vec![
        Chunk::Inline(bytes::Bytes::from_static(b"head")),
        Chunk::File(cached_one),
        Chunk::Inline(bytes::Bytes::from_static(b"between")),
        Chunk::File(evicted),
        Chunk::Inline(bytes::Bytes::from_static(b"and")),
        Chunk::File(cached_two),
        Chunk::Inline(bytes::Bytes::from_static(b"tail")),
    ];
    let mut want = b"head".to_vec();
    want.extend_from_slice(&content[1000..21_000]);
    want.extend_from_slice(b"between");
    want.extend_from_slice(&content[evicted_at as usize..][..evicted_len as usize]);
    want.extend_from_slice(b"and");
    want.extend_from_slice(&content[700_000..730_000]);
    want.extend_from_slice(b"tail");
    let runtime = any_runtime();
    let sent = std::cell::RefCell::new(Vec::new());
    let got = runtime.block_on(async {
        let (mut stream, reader) = loopback_reader(std::time::Duration::ZERO).await;
        let flags = socket_status_flags(&stream).unwrap();
        let mut pipe = None;
        send_pieces(&mut stream, &mut pipe, Some(flags), &chunks, |cached| {
            sent.borrow_mut().push(cached)
        })
        .await
        .unwrap();
        drop(stream);
        reader.join().unwrap()
    });
    assert_eq!(
        *sent.borrow(),
        [true, false, true],
        "only the evicted region on a worker"
    );
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes differ");
}

#[test]
fn the_socket_is_non_blocking_only_while_the_guard_lives() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let before = status_flags(fd);
    assert_eq!(before & libc::O_NONBLOCK, 0, "sockets start blocking");
    {
        let _guard = NonBlockingWhileSending::set(fd, before).unwrap();
        assert_ne!(status_flags(fd) & libc::O_NONBLOCK, 0);
    }
    assert_eq!(status_flags(fd), before, "flags restored");
}

/// A long region (a reader catching up) whose following bytes were evicted: they are read
/// back into the page cache before the next fetch asks; a short region reads nothing ahead.
#[test]
fn the_bytes_after_a_long_region_are_read_ahead_when_evicted() {
    use crate::storage::page_cache::missing_within_file;
    let dir = tempfile::tempdir().unwrap();
    let (fd, _) = patterned_segment(dir.path(), 3 * 1024 * 1024);
    // SAFETY: posix_fadvise on a descriptor the test owns; no memory is passed.
    unsafe { libc::posix_fadvise(fd.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let long = READ_AHEAD_MIN_REGION_BYTES;
    let ahead = u64::from(long) * READ_AHEAD_REGIONS;
    if missing_within_file(fd.as_raw_fd(), u64::from(long), ahead).is_none() {
        return; // no cachestat here, or the kernel kept the pages: nothing to show
    }
    let region = |position, len| Chunk::File(region_of(&fd, position, len));
    let runtime = any_runtime();
    let short_end = 2 * 1024 * 1024u64;
    runtime.block_on(async {
        read_ahead_of(&[region(short_end - 4096, 4096), region(0, long)]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while missing_within_file(fd.as_raw_fd(), u64::from(long), ahead).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "read ahead within 5 s"
            );
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
    assert!(
        missing_within_file(fd.as_raw_fd(), short_end, 64 * 1024).is_some(),
        "nothing read ahead after a short region"
    );
}
