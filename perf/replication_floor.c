/* The kernel's CPU floor of a follower's replication against a consumer's fetch (issue 17,
 * decision 0012, session 19), per GB, on this box, with no broker in the way.
 *
 *   follower: a sender writes `chunk`-byte answers over loopback TCP; the receiver reads each
 *             whole answer and pwrite()s it at the end of a fresh file (page cache, no fsync),
 *             which is what a follower's round must do at least. With -r the receiver first
 *             sends a 64-byte request and the sender answers it (one fetch in flight, as
 *             Sluice's fetcher). The receiver's CPU is the follower's floor.
 *   consumer: a file is written first; the sender sendfile()s it to the socket in `chunk`
 *             pieces (a consumer's 1 MiB fetch answers), the receiver reads and drops the
 *             bytes. With -r one request per chunk as above. The sender's CPU is the
 *             leader's floor of serving a consumer.
 *
 * Each side's CPU is its own process's utime + stime (getrusage), so the two are not mixed.
 *   fetch:    as consumer, but the sender moves each chunk file → pipe → socket with splice()
 *             through a pipe of the chunk's size (up to 1 MiB, fs.pipe-max-size), as
 *             Sluice's fetch path does (decision 0001, session 21).
 *   replica:  a follower fed as a leader feeds it: the sender splices each chunk from a file
 *             written first (as `fetch`), the receiver reads it and pwrite()s it at the end
 *             of a second file (as `follower`).
 *   replica-splice: as replica, but the receiver moves each answer socket → pipe → file
 *             with splice(), so the bytes are copied once (into its page cache) instead of
 *             twice (socket → buffer, buffer → page cache). With -c it then checks a CRC-32C
 *             over the written bytes through a read-only mapping of its file, as a follower
 *             must check each batch's CRC without a buffer of its own.
 *
 * With -r the receiver also times each round (request written to answer read whole) and
 * prints its p50, p99, p99.9 and max: in consumer mode with 1 MiB chunks that is the floor
 * of a catch-up fetch's round trip on this box (issue 22: the catch-up p99.9 line), in the
 * same sitting as the broker's (`FLOOR=1 perf/fetch_tail.sh`).
 *
 *   cc -O2 -o /tmp/replication_floor perf/replication_floor.c
 *   /tmp/replication_floor follower DIR MIB CHUNK_BYTES [-r]
 *   /tmp/replication_floor consumer DIR MIB CHUNK_BYTES [-r]
 *   /tmp/replication_floor fetch DIR MIB CHUNK_BYTES [-r]
 * prints one line: mode, chunk, MB/s, CPU-s per GB of the receiver and of the sender.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_BYTES 64
#define CHUNK_BYTES_MAX (8 << 20)

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) die("getrusage");
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value below which `share` of the sorted `n` values lie (nearest rank). */
static double quantile(const double *sorted, long long n, double share) {
    long long rank = (long long)(share * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void read_full(int fd, char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("read");
        got += (size_t)n;
    }
}

static void write_full(int fd, const char *buf, size_t len) {
    size_t put = 0;
    while (put < len) {
        ssize_t n = write(fd, buf + put, len - put);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write");
        put += (size_t)n;
    }
}

static void pwrite_full(int fd, const char *buf, size_t len, off_t at) {
    size_t put = 0;
    while (put < len) {
        ssize_t n = pwrite(fd, buf + put, len - put, at + (off_t)put);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("pwrite");
        put += (size_t)n;
    }
}

static void sendfile_full(int sock, int file, off_t at, size_t len) {
    while (len > 0) {
        ssize_t n = sendfile(sock, file, &at, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("sendfile");
        len -= (size_t)n;
    }
}

/* Moves `len` bytes of `file` from `at` to `sock` through `pipe` (file → pipe → socket). */
static void splice_full(int sock, int file, const int pipe[2], off_t at, size_t len) {
    while (len > 0) {
        ssize_t in = splice(file, &at, pipe[1], NULL, len, SPLICE_F_MOVE);
        if (in < 0 && errno == EINTR) continue;
        if (in <= 0) die("splice in");
        len -= (size_t)in;
        while (in > 0) {
            ssize_t out = splice(pipe[0], NULL, sock, NULL, (size_t)in, SPLICE_F_MOVE);
            if (out < 0 && errno == EINTR) continue;
            if (out <= 0) die("splice out");
            in -= out;
        }
    }
}

/* Moves `len` bytes from `sock` to `file` at `at` through `pipe` (socket → pipe → file). */
static void splice_receive(int sock, int file, const int pipe[2], off_t at, size_t len) {
    while (len > 0) {
        ssize_t in = splice(sock, NULL, pipe[1], NULL, len, SPLICE_F_MOVE);
        if (in < 0 && errno == EINTR) continue;
        if (in <= 0) die("splice receive");
        len -= (size_t)in;
        while (in > 0) {
            ssize_t out = splice(pipe[0], NULL, file, &at, (size_t)in, SPLICE_F_MOVE);
            if (out < 0 && errno == EINTR) continue;
            if (out <= 0) die("splice to file");
            in -= out;
        }
    }
}

/* CRC-32C (Castagnoli) with the SSE4.2 instruction, 8 bytes a step, as crc32c crates do. */
__attribute__((target("sse4.2"))) static unsigned crc32c(const unsigned char *p, size_t len) {
    unsigned long long crc = 0xffffffffu;
    while (len >= 8) {
        unsigned long long v;
        memcpy(&v, p, 8);
        crc = __builtin_ia32_crc32di(crc, v);
        p += 8;
        len -= 8;
    }
    while (len-- > 0) crc = __builtin_ia32_crc32qi((unsigned)crc, *p++);
    return (unsigned)crc ^ 0xffffffffu;
}

/* Opens a listening socket on an ephemeral loopback port; returns it, the port in *port. */
static int listen_loopback(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
    if (listen(s, 1) != 0) die("listen");
    socklen_t len = sizeof a;
    if (getsockname(s, (struct sockaddr *)&a, &len) != 0) die("getsockname");
    *port = ntohs(a.sin_port);
    return s;
}

static int connect_loopback(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
    int one = 1;
    /* As the broker's sockets. */
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s follower|consumer|fetch|replica|replica-splice DIR MIB CHUNK_BYTES [-r] [-c]\n", argv[0]);
        return 2;
    }
    int replica_splice = strcmp(argv[1], "replica-splice") == 0;
    int replica = replica_splice || strcmp(argv[1], "replica") == 0;
    /* follower: the receiver writes; spliced: the sender splices from its file. */
    int follower = replica || strcmp(argv[1], "follower") == 0;
    int spliced = replica || strcmp(argv[1], "fetch") == 0;
    if (!follower && !spliced && strcmp(argv[1], "consumer") != 0) {
        fprintf(stderr, "mode must be follower, consumer, fetch, replica or replica-splice\n");
        return 2;
    }
    const char *dir = argv[2];
    long mib = atol(argv[3]);
    long chunk = atol(argv[4]);
    int rounds = 0, check_crc = 0, populate = 0;
    for (int a = 5; a < argc; a++) {
        if (strcmp(argv[a], "-r") == 0) rounds = 1;
        else if (strcmp(argv[a], "-c") == 0) check_crc = 1;
        else if (strcmp(argv[a], "-p") == 0) check_crc = populate = 1;
    }
    if (mib <= 0 || mib > (1 << 16) || chunk <= 0 || chunk > CHUNK_BYTES_MAX) {
        fprintf(stderr, "MIB in 1..65536, CHUNK_BYTES in 1..%d\n", CHUNK_BYTES_MAX);
        return 2;
    }
    long long total = (long long)mib << 20;
    long long count = total / chunk;
    total = count * chunk;

    char path[4096];
    snprintf(path, sizeof path, "%s/replication_floor.%d", dir, (int)getpid());
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (file < 0) die("open");
    unlink(path); /* gone when both sides close it */
    char *buf = malloc((size_t)chunk);
    if (!buf) die("malloc");
    memset(buf, 'x', (size_t)chunk);
    if (spliced) /* the sender's source: written (page cache) before the clock starts */
        for (long long i = 0; i < count; i++) pwrite_full(file, buf, (size_t)chunk, i * chunk);
    else if (!follower)
        for (long long i = 0; i < count; i++) pwrite_full(file, buf, (size_t)chunk, i * chunk);
    /* Where the receiver writes: its own file when the sender reads `file`. */
    int written = file;
    if (replica) {
        snprintf(path, sizeof path, "%s/replication_floor.%d.replica", dir, (int)getpid());
        written = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (written < 0) die("open replica");
        unlink(path);
    }
    const unsigned char *mapped = NULL;
    if (check_crc && replica_splice) {
        /* Sized first so the mapping may cover it; the pages come as the receiver writes. */
        if (ftruncate(written, total) != 0) die("ftruncate");
        mapped = mmap(NULL, (size_t)total, PROT_READ, MAP_SHARED, written, 0);
        if (mapped == MAP_FAILED) die("mmap");
    }
    int receive_pipe[2];
    if (replica_splice) {
        if (pipe(receive_pipe) != 0) die("pipe");
        fcntl(receive_pipe[1], F_SETPIPE_SZ, (int)chunk);
    }
    unsigned crc_sink = 0;

    int port;
    int listener = listen_loopback(&port);
    int pipefd[2];
    if (pipe(pipefd) != 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        /* The sender: the leader. */
        close(pipefd[0]);
        int s = accept(listener, NULL, NULL);
        if (s < 0) die("accept");
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char request[REQUEST_BYTES];
        int pipe_of_chunk[2];
        if (spliced) {
            if (pipe(pipe_of_chunk) != 0) die("pipe");
            /* Best effort: an unprivileged pipe may be refused above fs.pipe-max-size. */
            fcntl(pipe_of_chunk[1], F_SETPIPE_SZ, (int)chunk);
        }
        double cpu0 = cpu_seconds();
        for (long long i = 0; i < count; i++) {
            if (rounds) read_full(s, request, sizeof request);
            if (follower)
                write_full(s, buf, (size_t)chunk);
            else if (spliced)
                splice_full(s, file, pipe_of_chunk, i * chunk, (size_t)chunk);
            else
                sendfile_full(s, file, i * chunk, (size_t)chunk);
        }
        double cpu = cpu_seconds() - cpu0;
        write_full(pipefd[1], (const char *)&cpu, sizeof cpu);
        close(s);
        _exit(0);
    }
    close(pipefd[1]);
    int s = connect_loopback(port);
    char request[REQUEST_BYTES];
    memset(request, 'q', sizeof request);
    double *round_ms = rounds ? malloc(sizeof(double) * (size_t)count) : NULL;
    if (rounds && !round_ms) die("malloc");
    double cpu0 = cpu_seconds();
    double t0 = now_seconds();
    for (long long i = 0; i < count; i++) {
        double started = rounds ? now_seconds() : 0;
        if (rounds) write_full(s, request, sizeof request);
        if (replica_splice) {
            splice_receive(s, written, receive_pipe, i * chunk, (size_t)chunk);
        } else {
            read_full(s, buf, (size_t)chunk);
            if (follower) pwrite_full(written, buf, (size_t)chunk, i * chunk);
        }
        if (check_crc && !replica_splice) {
            /* The received buffer is still in the cache: checked there, as Sluice does. */
            crc_sink ^= crc32c((const unsigned char *)buf, (size_t)chunk);
        } else if (check_crc) {
            /* Map the chunk's pages in one call (5.14+) rather than a fault per page run. */
            if (populate) madvise((void *)(mapped + i * chunk), (size_t)chunk, 22 /* MADV_POPULATE_READ */);
            crc_sink ^= crc32c(mapped + i * chunk, (size_t)chunk);
        }
        if (rounds) round_ms[i] = (now_seconds() - started) * 1e3;
    }
    double elapsed = now_seconds() - t0;
    double cpu = cpu_seconds() - cpu0;
    double sender_cpu = 0;
    read_full(pipefd[0], (char *)&sender_cpu, sizeof sender_cpu);
    int status;
    waitpid(child, &status, 0);
    double gb = total / 1e9;
    if (check_crc) printf("crc_xor=%08x ", crc_sink);
    printf("%s chunk=%ld rounds=%s MB/s=%.1f receiver_cpu_s_per_gb=%.3f sender_cpu_s_per_gb=%.3f\n",
           replica_splice ? "replica(splice->pipe->file)"
           : replica      ? "replica(recv+pwrite)"
           : follower     ? "follower(recv+pwrite)"
           : spliced      ? "fetch(splice)"
                          : "consumer(sendfile)",
           chunk, rounds ? "yes" : "no",
           total / 1e6 / elapsed, cpu / gb, sender_cpu / gb);
    if (rounds) {
        qsort(round_ms, (size_t)count, sizeof(double), compare_doubles);
        printf("round_trips=%lld p50_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f max_ms=%.3f\n", count,
               quantile(round_ms, count, 0.5), quantile(round_ms, count, 0.99),
               quantile(round_ms, count, 0.999), round_ms[count - 1]);
    }
    return 0;
}
