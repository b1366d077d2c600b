/* The kernel's floor of issue 19 point 3 on this box, with no broker and no network in the
 * way: the same bytes written as 16 KiB appends to 1 file against round-robin over many
 * files, then read back (session 22).
 *
 *   write: FILES files are created in DIR and each gets two 16 KiB chunks first (the
 *          "warmed-up partitions" of perf/scale_spread.py), then MIB MiB go out as 16 KiB
 *          pwrite()s, chunk i to file i % FILES at that file's end (buffered, page cache),
 *          as a broker's appends of one producer's full batches. With SYNC_MS > 0 a second
 *          thread makes what was written durable every SYNC_MS, as the background flush
 *          does: fdatasync of each file written since its last pass, or, with -S, one
 *          syncfs(2) of DIR's filesystem (Sluice's choice when >= 32 partitions are due,
 *          decision 0020).
 *   read:  everything is read back from the page cache, READ_KIB at a time per file,
 *          round-robin over the files (a consumer's fetch with a per-partition byte limit);
 *          one file is read READ_KIB at a time from start to end.
 *
 * CPU is this process's utime + stime (getrusage, all threads), not the kernel's
 * background writeback threads (the broker's CPU figures do not count them either).
 *
 *   cc -O2 -pthread -o /tmp/spread_floor perf/spread_floor.c
 *   /tmp/spread_floor DIR FILES MIB [SYNC_MS [READ_KIB [-S]]]
 * prints one line: files, write MB/s and CPU-s/GB, read MB/s and CPU-s/GB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES 16384
#define WARMUP_CHUNKS 2
#define FILES_MAX 100000

static int *fds;
static off_t *ends;
static atomic_char *dirty;
static int files;
static int sync_ms;
static int use_syncfs;
static int dir_fd;
static atomic_int done;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* The background flush: every sync_ms, make the files written since the last pass durable. */
static void *flusher(void *arg) {
    (void)arg;
    struct timespec tick = {sync_ms / 1000, (long)(sync_ms % 1000) * 1000000L};
    while (!atomic_load(&done)) {
        nanosleep(&tick, NULL);
        if (use_syncfs) {
            if (syncfs(dir_fd) != 0) die("syncfs");
            continue;
        }
        for (int f = 0; f < files; f++) {
            if (atomic_exchange(&dirty[f], 0) && fdatasync(fds[f]) != 0) die("fdatasync");
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s DIR FILES MIB [SYNC_MS [READ_KIB [-S]]]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    files = atoi(argv[2]);
    long mib = atol(argv[3]);
    sync_ms = argc > 4 ? atoi(argv[4]) : 0;
    long read_bytes = (argc > 5 ? atol(argv[5]) : 48) * 1024;
    use_syncfs = argc > 6 && strcmp(argv[6], "-S") == 0;
    if (files < 1 || files > FILES_MAX || mib < 1 || read_bytes < CHUNK_BYTES) {
        fprintf(stderr, "FILES in 1..%d, MIB >= 1, READ_KIB >= 16\n", FILES_MAX);
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die("mkdir");
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) die("open dir");
    fds = calloc(files, sizeof *fds);
    ends = calloc(files, sizeof *ends);
    dirty = calloc(files, sizeof *dirty);
    char *buf = malloc(read_bytes);
    if (!fds || !ends || !dirty || !buf) die("calloc");
    memset(buf, 'x', read_bytes);
    char path[4096];
    for (int f = 0; f < files; f++) {
        snprintf(path, sizeof path, "%s/%06d.log", dir, f);
        fds[f] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fds[f] < 0) die("open");
        for (int c = 0; c < WARMUP_CHUNKS; c++) {
            if (pwrite(fds[f], buf, CHUNK_BYTES, ends[f]) != CHUNK_BYTES) die("pwrite warm-up");
            ends[f] += CHUNK_BYTES;
        }
    }
    if (syncfs(dir_fd) != 0) die("syncfs warm-up");

    pthread_t flush_thread;
    if (sync_ms > 0 && pthread_create(&flush_thread, NULL, flusher, NULL) != 0) die("thread");
    long chunks = mib * 1024 * 1024 / CHUNK_BYTES;
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < chunks; i++) {
        int f = (int)(i % files);
        if (pwrite(fds[f], buf, CHUNK_BYTES, ends[f]) != CHUNK_BYTES) die("pwrite");
        ends[f] += CHUNK_BYTES;
        atomic_store(&dirty[f], 1);
    }
    double write_s = now_s() - t0, write_cpu = cpu_s() - c0;
    atomic_store(&done, 1);
    if (sync_ms > 0) pthread_join(flush_thread, NULL);

    /* Read back from each file's first measured byte, round-robin, read_bytes per file a turn. */
    off_t *pos = calloc(files, sizeof *pos);
    if (!pos) die("calloc");
    for (int f = 0; f < files; f++) pos[f] = WARMUP_CHUNKS * CHUNK_BYTES;
    long read_total = 0, want = chunks * (long)CHUNK_BYTES;
    t0 = now_s();
    c0 = cpu_s();
    while (read_total < want) {
        long before = read_total;
        for (int f = 0; f < files; f++) {
            if (pos[f] >= ends[f]) continue;
            long n = ends[f] - pos[f] < read_bytes ? ends[f] - pos[f] : read_bytes;
            ssize_t got = pread(fds[f], buf, n, pos[f]);
            if (got <= 0) die("pread");
            pos[f] += got;
            read_total += got;
        }
        if (read_total == before) break;
    }
    double read_s = now_s() - t0, read_cpu = cpu_s() - c0;
    double gb = want / 1e9;
    printf("files %d: write %.1f MB/s %.3f CPU-s/GB, read %.1f MB/s %.3f CPU-s/GB "
           "(sync %d ms%s, read %ld KiB)\n",
           files, want / 1e6 / write_s, write_cpu / gb, read_total / 1e6 / read_s, read_cpu / gb,
           sync_ms, use_syncfs ? " syncfs" : "", read_bytes / 1024);
    for (int f = 0; f < files; f++) {
        snprintf(path, sizeof path, "%s/%06d.log", dir, f);
        unlink(path);
        close(fds[f]);
    }
    return 0;
}
