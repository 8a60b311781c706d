/* file-copy - copy a regular file with overlapped reads and writes.
 *
 *   file-copy [--depth N] [--block BYTES] SRC DST
 *
 * N blocks (default 8) of BYTES each (default 128 KiB; K and M suffixes are
 * KiB and MiB) are in flight at once, on one port, driven by one thread.
 * Each block is read at its offset, then written at the same offset, then
 * moves on to the next offset nobody has taken yet. When every block is
 * written, DST is flushed with tacio_fsync and the program prints what it
 * did.
 *
 * The value a start call returns decides everything (docs/contract.md):
 * TACIO_PENDING means "exactly one entry for this record will be dequeued";
 * anything else (success, end of file, an error, a rejection) means "it is
 * over now, no entry will ever come, the record and buffer are mine again".
 * Both paths feed the same function, block_run(), so a result is handled the
 * same way whichever path brought it, and no path frees or restarts a record
 * that still has an entry coming.
 *
 * End of file: blocks are planned from SRC's size when it was opened, but
 * the end is whatever the reads find. A read that returns less than asked is
 * continued at the byte where it stopped, until the block is full or a read
 * returns TACIO_END_OF_FILE; the smallest offset at which a read found the
 * end is where DST ends. At most one block past the planned size is in
 * flight at a time, so a file that is as long as fstat said costs one extra
 * read, and a file that grew (or that fstat sizes as 0) is still copied.
 *
 * Errors: the first one is reported with its status name and message and
 * the path it concerns; the operations still pending are cancelled and
 * drained (each still delivers its one entry) before anything is freed, and
 * the exit status is 1. DST is left as far as it got.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tacio/tacio.h>

#define DEFAULT_DEPTH 8u
#define DEFAULT_BLOCK (128u * 1024u)
#define MAX_DEPTH 4096u
#define MAX_BLOCK (1024u * 1024u * 1024u) /* one read stays below Linux's 2 GiB cap */
#define KEY_SRC 1
#define KEY_DST 2
#define NO_EOF UINT64_MAX

enum step {
    IDLE,    /* no operation; the block may take the next offset */
    READING, /* op is a read of [off + len, off + block) */
    WRITING, /* op is a write of [off + done, off + len) */
};

struct block {
    tacio_op_t op;   /* the block's one operation; tacio's while PENDING */
    enum step step;  /* which call op is in: set before the call, read at the result */
    bool probe;      /* starts at or past the size SRC had when opened */
    uint64_t off;    /* where the block lies, in SRC and in DST alike */
    uint32_t len;    /* bytes read into buf so far */
    uint32_t done;   /* bytes of buf written so far */
    unsigned char *buf;
};

struct copy {
    const char *src_path, *dst_path;
    tacio_port_t *port;
    tacio_handle_t *src, *dst;
    struct block *blocks;
    tacio_op_t fsync_op; /* the final flush; tacio's while PENDING */
    unsigned depth;
    uint32_t block_size;
    uint64_t planned;   /* SRC's size at open: a plan, not a promise */
    uint64_t next_off;  /* first offset no block has taken */
    uint64_t eof;       /* smallest offset a read found the end at; NO_EOF until then */
    unsigned probes;    /* blocks in flight with probe set */
    unsigned pending;   /* operations that returned PENDING and whose entry is still to come */
    uint64_t high;      /* end of the furthest byte written */
    uint64_t bytes, blocks_written, ops, sync_ends;
    tacio_status_t failed; /* first failure; TACIO_SUCCESS while all is well */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The one format for every error: what failed, on which path (and where in
 * it), the status by name and in words, and tacio's extra sentence when the
 * call has one. */
static void report_at(const char *what, const char *path, const char *where, tacio_status_t st,
                      const char *more)
{
    fprintf(stderr, "file-copy: %s '%s'%s: %s (0x%08" PRIX32 "): %s%s%s\n", what, path,
            where ? where : "", tacio_status_name(st), st, tacio_status_message(st),
            more && *more ? " " : "", more && *more ? more : "");
}

static void report(const char *what, const char *path, tacio_status_t st, const char *more)
{
    report_at(what, path, NULL, st, more);
}

/* Record the first failure and stop taking new offsets. The operations still
 * pending are asked to end early; each still delivers its one entry, which
 * main() drains before freeing the buffers they may be writing into. */
static void fail(struct copy *c, const char *what, const char *path, uint64_t off,
                 tacio_status_t st)
{
    if (c->failed != TACIO_SUCCESS)
        return;
    c->failed = st;
    char where[48];
    snprintf(where, sizeof where, " at offset %" PRIu64, off);
    report_at(what, path, where, st, NULL);
    /* NOT_FOUND only means nothing is pending on that handle. */
    tacio_cancel_handle(c->src);
    tacio_cancel_handle(c->dst);
}

static void note_eof(struct copy *c, uint64_t at)
{
    if (at < c->eof)
        c->eof = at;
}

/* The block is done with its offset (written, or found nothing to copy). */
static void block_retire(struct copy *c, struct block *b)
{
    if (b->probe)
        c->probes--;
    b->probe = false;
    b->step = IDLE;
}

/* Take the next offset, if there is one to take now. */
static bool block_claim(struct copy *c, struct block *b)
{
    uint64_t off = c->next_off;
    if (c->failed != TACIO_SUCCESS || off >= c->eof)
        return false;
    /* Past the planned size, one probe at a time: it finds the end, or
     * finds the file grew and hands the next offset on when it is written. */
    if (off >= c->planned && c->probes > 0)
        return false;
    if (c->block_size > UINT64_MAX - off)
        return false;
    c->next_off = off + c->block_size;
    b->off = off;
    b->len = 0;
    b->done = 0;
    b->probe = off >= c->planned;
    if (b->probe)
        c->probes++;
    return true;
}

static tacio_status_t start_read(struct copy *c, struct block *b)
{
    b->step = READING;
    c->ops++;
    return tacio_read(c->src, &b->op, b->buf + b->len, c->block_size - b->len, b->off + b->len);
}

static tacio_status_t start_write(struct copy *c, struct block *b)
{
    b->step = WRITING;
    c->ops++;
    return tacio_write(c->dst, &b->op, b->buf + b->done, b->len - b->done, b->off + b->done);
}

/* The block's last operation ended with st and bytes (or the block is idle).
 * Start its next operation and return true with that start's status in *next,
 * or return false when the block has nothing to do now. */
static bool block_next(struct copy *c, struct block *b, tacio_status_t st, uint64_t bytes,
                       tacio_status_t *next)
{
    if (c->failed != TACIO_SUCCESS) {
        /* An entry drained after a failure: cancelled or not, it ends here. */
        if (b->step != IDLE)
            block_retire(c, b);
        return false;
    }
    switch (b->step) {
    case READING:
        if (st == TACIO_SUCCESS && bytes > 0) {
            b->len += (uint32_t)bytes;
            /* Short, but not at a known end: read on from where it stopped. */
            if (b->len < c->block_size && b->off + b->len < c->eof) {
                *next = start_read(c, b);
                return true;
            }
        } else if (st == TACIO_SUCCESS || st == TACIO_END_OF_FILE) {
            note_eof(c, b->off + b->len);
        } else {
            fail(c, "read", c->src_path, b->off + b->len, st);
            block_retire(c, b);
            return false;
        }
        /* Another block found the end before this one's bytes: the file
         * changed under us; DST ends where the first end was found. */
        if (b->off + b->len > c->eof)
            b->len = b->off >= c->eof ? 0 : (uint32_t)(c->eof - b->off);
        if (b->len > 0) {
            *next = start_write(c, b);
            return true;
        }
        block_retire(c, b);
        break;
    case WRITING:
        if (st != TACIO_SUCCESS || bytes == 0) {
            /* A write that makes no progress would loop forever. */
            fail(c, "write", c->dst_path, b->off + b->done,
                 st != TACIO_SUCCESS ? st : TACIO_UNSUCCESSFUL);
            block_retire(c, b);
            return false;
        }
        b->done += (uint32_t)bytes;
        if (b->done < b->len) {
            *next = start_write(c, b); /* a short write: the rest, at its offset */
            return true;
        }
        c->bytes += b->len;
        c->blocks_written++;
        if (b->off + b->len > c->high)
            c->high = b->off + b->len;
        block_retire(c, b);
        break;
    case IDLE:
        break;
    }
    if (!block_claim(c, b))
        return false;
    *next = start_read(c, b);
    return true;
}

/* Feed one result into the block, from an entry or from a start call, and
 * keep going while starts end synchronously. */
static void block_run(struct copy *c, struct block *b, tacio_status_t st, uint64_t bytes)
{
    tacio_status_t next;
    while (block_next(c, b, st, bytes, &next)) {
        if (next == TACIO_PENDING) {
            c->pending++; /* exactly one entry will come for b->op */
            return;
        }
        /* Over in its start call: no entry will ever come for it, and its
         * outcome is in the return value and b->op.bytes now. */
        c->sync_ends++;
        st = next;
        bytes = b->op.bytes;
    }
}

/* Give every idle block an offset, if there is one to take. */
static void fill(struct copy *c)
{
    for (unsigned i = 0; i < c->depth; i++)
        if (c->blocks[i].step == IDLE)
            block_run(c, &c->blocks[i], TACIO_SUCCESS, 0);
}

/* Wait for entries and feed each to its block until nothing is pending. */
static tacio_status_t run_port(struct copy *c, tacio_entry_t *ev, unsigned max)
{
    while (c->pending > 0) {
        unsigned n;
        tacio_status_t st = tacio_port_dequeue(c->port, ev, max, &n, TACIO_INFINITE);
        if (st != TACIO_SUCCESS)
            return st;
        for (unsigned i = 0; i < n; i++) {
            if (ev[i].kind != TACIO_ENTRY_OP || !ev[i].op)
                continue; /* nobody posts to this port */
            c->pending--;
            struct block *b = tacio_container_of(ev[i].op, struct block, op);
            block_run(c, b, ev[i].status, ev[i].bytes);
        }
        fill(c);
    }
    return TACIO_SUCCESS;
}

/* The final flush: one operation, so both outcomes are handled in line.
 * Reports its own failure. */
static tacio_status_t flush_dst(struct copy *c, tacio_entry_t *ev)
{
    tacio_op_init(&c->fsync_op);
    c->ops++;
    tacio_status_t st = tacio_fsync(c->dst, &c->fsync_op, 0);
    if (st != TACIO_PENDING) {
        c->sync_ends++;
        if (st != TACIO_SUCCESS)
            report("fsync", c->dst_path, st, NULL);
        return st;
    }
    for (;;) {
        unsigned n;
        tacio_status_t ds = tacio_port_dequeue(c->port, ev, 1, &n, TACIO_INFINITE);
        if (ds != TACIO_SUCCESS) {
            /* fsync_op is still tacio's; it lives in c, past the port close. */
            report("wait for the fsync of", c->dst_path, ds, NULL);
            return ds;
        }
        if (n == 1 && ev[0].kind == TACIO_ENTRY_OP && ev[0].op == &c->fsync_op) {
            if (ev[0].status != TACIO_SUCCESS)
                report("fsync", c->dst_path, ev[0].status, NULL);
            return ev[0].status;
        }
    }
}

static bool parse_count(const char *s, uint64_t max, uint64_t *out, bool suffixes)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    uint64_t mul = 1;
    if (suffixes && (*end == 'k' || *end == 'K'))
        mul = 1024, end++;
    else if (suffixes && (*end == 'm' || *end == 'M'))
        mul = 1024 * 1024, end++;
    else if (suffixes && (*end == 'g' || *end == 'G'))
        mul = 1024 * 1024 * 1024, end++;
    if (*end || v == 0 || v > max / mul)
        return false;
    *out = v * mul;
    return true;
}

static int usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [--depth N] [--block BYTES] SRC DST\n"
            "  --depth N      operations in flight (1..%u, default %u)\n"
            "  --block BYTES  block size, K/M/G suffixes for KiB/MiB/GiB (1..1G, default 128K)\n",
            argv0, MAX_DEPTH, DEFAULT_DEPTH);
    return f == stderr ? 2 : 0;
}

/* O_NONBLOCK while opening, so a FIFO named as SRC or DST is refused instead
 * of hanging in open(); cleared for the copy, since io_uring would make a
 * non-blocking regular file's reads and writes return EAGAIN. */
static bool clear_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0;
}

/* Open both files and check they are two different regular files, before
 * DST is truncated (so `file-copy a a` cannot destroy a). */
static bool open_files(struct copy *c, int *sfd, int *dfd, struct stat *ss)
{
    *sfd = open(c->src_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*sfd < 0) {
        report("cannot open source", c->src_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    if (fstat(*sfd, ss) < 0) {
        report("cannot stat source", c->src_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    if (!S_ISREG(ss->st_mode)) {
        report("source is not a regular file:", c->src_path,
               S_ISDIR(ss->st_mode) ? TACIO_FILE_IS_A_DIRECTORY : TACIO_NOT_SUPPORTED, NULL);
        return false;
    }
    if (!clear_nonblock(*sfd)) {
        report("cannot set up source", c->src_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    /* Only for a clearer message than open()'s ENXIO on a FIFO; the fstat
     * of the opened file below is the check that counts. */
    struct stat ds;
    if (stat(c->dst_path, &ds) == 0 && !S_ISREG(ds.st_mode) && !S_ISDIR(ds.st_mode)) {
        report("destination is not a regular file:", c->dst_path, TACIO_NOT_SUPPORTED, NULL);
        return false;
    }
    *dfd = open(c->dst_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, ss->st_mode & 07777);
    if (*dfd < 0) {
        report("cannot open destination", c->dst_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    if (fstat(*dfd, &ds) < 0) {
        report("cannot stat destination", c->dst_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    if (!S_ISREG(ds.st_mode)) {
        report("destination is not a regular file:", c->dst_path, TACIO_NOT_SUPPORTED, NULL);
        return false;
    }
    if (ds.st_dev == ss->st_dev && ds.st_ino == ss->st_ino) {
        report("source and destination are the same file:", c->dst_path,
               TACIO_OBJECT_NAME_COLLISION, NULL);
        return false;
    }
    if (!clear_nonblock(*dfd)) {
        report("cannot set up destination", c->dst_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    if (ftruncate(*dfd, 0) < 0) {
        report("cannot truncate destination", c->dst_path, tacio_status_from_errno(errno), NULL);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    uint64_t depth = DEFAULT_DEPTH, block = DEFAULT_BLOCK;
    const char *paths[2];
    int npaths = 0;
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && (!strcmp(a, "-h") || !strcmp(a, "--help")))
            return usage(stdout, argv[0]);
        if (!opts_done && !strcmp(a, "--")) {
            opts_done = true;
        } else if (!opts_done && !strcmp(a, "--depth") && i + 1 < argc) {
            if (!parse_count(argv[++i], MAX_DEPTH, &depth, false)) {
                fprintf(stderr, "file-copy: --depth '%s': want 1..%u\n", argv[i], MAX_DEPTH);
                return 2;
            }
        } else if (!opts_done && !strcmp(a, "--block") && i + 1 < argc) {
            if (!parse_count(argv[++i], MAX_BLOCK, &block, true)) {
                fprintf(stderr, "file-copy: --block '%s': want 1..1G bytes\n", argv[i]);
                return 2;
            }
        } else if (!opts_done && a[0] == '-' && a[1]) {
            fprintf(stderr, "file-copy: unknown or incomplete option '%s'\n", a);
            return usage(stderr, argv[0]);
        } else if (npaths < 2) {
            paths[npaths++] = a;
        } else {
            return usage(stderr, argv[0]);
        }
    }
    if (npaths != 2)
        return usage(stderr, argv[0]);
    /* A file size limit must fail the write that crosses it, not kill us. */
    signal(SIGXFSZ, SIG_IGN);

    struct copy c = {.src_path = paths[0], .dst_path = paths[1], .depth = (unsigned)depth,
                     .block_size = (uint32_t)block, .eof = NO_EOF,
                     .failed = TACIO_SUCCESS};
    int sfd = -1, dfd = -1, dst_fd = -1, rc = 1;
    bool dst_opened = false;
    double t0;
    struct stat ss;
    tacio_entry_t *ev = NULL;
    unsigned char *bufs = NULL;
    tacio_status_t st;

    bool opened = open_files(&c, &sfd, &dfd, &ss);
    dst_opened = opened; /* DST is truncated from here on */
    if (!opened)
        goto out_fds;
    c.planned = (uint64_t)ss.st_size;

    c.blocks = calloc(c.depth, sizeof *c.blocks);
    ev = calloc(c.depth, sizeof *ev);
    if (!c.blocks || !ev || (size_t)block > SIZE_MAX / c.depth ||
        posix_memalign((void **)&bufs, 4096, (size_t)block * c.depth) != 0) {
        report("cannot allocate buffers for", c.src_path, TACIO_NO_MEMORY, NULL);
        bufs = NULL;
        goto out_fds;
    }
    for (unsigned i = 0; i < c.depth; i++) {
        tacio_op_init(&c.blocks[i].op);
        c.blocks[i].buf = bufs + (size_t)i * block;
    }

    /* One thread: concurrency 1. A ring as deep as the copy keeps every
     * block's operation in one submission batch. */
    tacio_port_options_t po = {.concurrency = 1, .queue_depth = c.depth > 256 ? c.depth : 0};
    if ((st = tacio_port_create_ex(&c.port, &po)) != TACIO_SUCCESS) {
        report("cannot create a completion port for", c.src_path, st, tacio_last_error());
        goto out_fds;
    }
    /* On success the handle owns the fd; on failure it is still ours. */
    if ((st = tacio_handle_open(c.port, sfd, KEY_SRC, 0, &c.src)) != TACIO_SUCCESS) {
        report("cannot open a handle on source", c.src_path, st, tacio_last_error());
        goto out_port;
    }
    sfd = -1;
    if ((st = tacio_handle_open(c.port, dfd, KEY_DST, 0, &c.dst)) != TACIO_SUCCESS) {
        report("cannot open a handle on destination", c.dst_path, st, tacio_last_error());
        goto out_port;
    }
    dst_fd = dfd;
    dfd = -1;

    t0 = now_s();
    fill(&c);
    st = run_port(&c, ev, c.depth);
    if (st != TACIO_SUCCESS) {
        /* Cannot drain: the port close below waits for the kernel instead,
         * after which no buffer can still be written into. */
        report("wait for completions while copying", c.src_path, st, NULL);
        goto out_port;
    }
    if (c.failed != TACIO_SUCCESS)
        goto out_port;

    /* The reads found the end; anything written past it (SRC shrank while
     * we copied) is cut off before the flush makes DST durable. */
    if (c.high > c.eof && ftruncate(dst_fd, (off_t)c.eof) < 0) {
        report("cannot truncate destination", c.dst_path, tacio_status_from_errno(errno), NULL);
        goto out_port;
    }
    /* Only now: an fsync does not wait for writes still in flight. */
    if (flush_dst(&c, ev) != TACIO_SUCCESS)
        goto out_port;
    double secs = now_s() - t0;

    tacio_stats_t s;
    tacio_port_stats(c.port, &s);
    printf("file-copy: %s -> %s: %" PRIu64 " bytes, %" PRIu64 " blocks of %" PRIu32
           " bytes, depth %u, %.3f s, %.1f MB/s\n",
           c.src_path, c.dst_path, c.bytes, c.blocks_written, c.block_size, c.depth, secs,
           secs > 0 ? (double)c.bytes / 1e6 / secs : 0.0);
    printf("file-copy: %" PRIu64 " operations (reads, writes, fsync): %" PRIu64
           " completed through the port, %" PRIu64 " over in their start call\n",
           c.ops, s.completions, c.sync_ends);
    rc = 0;

out_port:
    if (c.failed != TACIO_SUCCESS && c.pending > 0) {
        /* Every pending operation still delivers one entry: take them all
         * before the buffers go. If even that fails, the port close below
         * waits for the kernel. */
        st = run_port(&c, ev, c.depth);
        if (st != TACIO_SUCCESS)
            report("wait for cancelled operations on", c.src_path, st, NULL);
    }
    if (c.src && (st = tacio_handle_close(c.src)) != TACIO_SUCCESS) {
        report("cannot close source", c.src_path, st, NULL);
        rc = 1;
    }
    if (c.dst && (st = tacio_handle_close(c.dst)) != TACIO_SUCCESS) {
        report("cannot close destination", c.dst_path, st, NULL);
        rc = 1;
    }
    /* Waits until the kernel can touch no buffer, so freeing them after is
     * safe whatever state the copy ended in. */
    if (c.port && (st = tacio_port_close(c.port, NULL, NULL)) != TACIO_SUCCESS) {
        report("cannot close the port for", c.src_path, st, NULL);
        rc = 1;
    }
out_fds:
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    if (rc != 0 && dst_opened)
        fprintf(stderr, "file-copy: '%s' is incomplete\n", c.dst_path);
    free(bufs);
    free(ev);
    free(c.blocks);
    return rc;
}
