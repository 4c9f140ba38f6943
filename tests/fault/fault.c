/* Fault injection for whole programs (LD_PRELOAD=libasymbp-fault.so), for make check-oom and
 * make check-crash.  Controlled by environment variables:
 *   FAULT_ALLOC_FAIL=N  the N-th counted allocation (malloc, calloc, realloc, posix_memalign,
 *                       aligned_alloc, memalign) returns NULL with errno ENOMEM;
 *   FAULT_OP_KILL=N     the process sends itself SIGKILL just before its N-th file operation;
 *   FAULT_OP_FAIL=N     the N-th file operation fails (EIO; ENOSPC for a write);
 *   FAULT_REPORT=PATH   at exit, write "allocs A\nleaks L\nops O\n" to PATH: allocations counted,
 *                       blocks allocated by the program itself (its executable or libasymbp)
 *                       and never freed, file operations seen.
 * Counted allocations are those not made by the BLAS and its runtime (OpenBLAS, gfortran, gomp)
 * or by the dynamic loader, whose failures are not the program's to handle.  File operations are
 * the program's own calls (or the library's) of open/creat for writing, write, fsync,
 * fdatasync and rename; stdio's internal writes are not seen (fflush then fsync is). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_long n_alloc, n_ops;
static long fail_alloc = -1, kill_op = -1, fail_op = -1;
static const char *report;
static int ready;
static __thread int busy;

/* Live blocks of the program's own allocations: an open-addressing set of pointers. */
#define SET_BITS 20
static uintptr_t live_set[1u << SET_BITS];
static atomic_long n_live;
static atomic_flag set_lock = ATOMIC_FLAG_INIT;

static void lock(void) { while (atomic_flag_test_and_set(&set_lock)) {} }
static void unlock(void) { atomic_flag_clear(&set_lock); }

static size_t slot_of(uintptr_t p) { return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ULL >> (64 - SET_BITS)); }

static void set_add(void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    size_t i;
    if (!p) return;
    lock();
    for (i = slot_of(p);; i = (i + 1) & ((1u << SET_BITS) - 1))
        if (live_set[i] == 0 || live_set[i] == 1) {
            live_set[i] = p;
            n_live++;
            break;
        }
    unlock();
}

static void set_del(void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    size_t i;
    if (!p) return;
    lock();
    for (i = slot_of(p); live_set[i] != 0; i = (i + 1) & ((1u << SET_BITS) - 1))
        if (live_set[i] == p) {
            live_set[i] = 1;   /* a tombstone */
            n_live--;
            break;
        }
    unlock();
}

/* Where a caller lives: 0 not counted (BLAS, loader), 1 counted, 2 counted and the program's own. */
static int classify(const void *caller)
{
    Dl_info info;
    const char *f, *base;
    if (!ready || busy) return 0;
    busy = 1;
    if (!dladdr(caller, &info) || !info.dli_fname) {
        busy = 0;
        return 1;
    }
    busy = 0;
    f = info.dli_fname;
    base = strrchr(f, '/');
    base = base ? base + 1 : f;
    if (strstr(base, "openblas") || strstr(base, "gfortran") || strstr(base, "gomp") || strstr(base, "ld-linux") ||
        strstr(base, "libblas") || strstr(base, "quadmath"))
        return 0;
    if (!strncmp(base, "libc.so", 7) || !strncmp(base, "libz.so", 7) || !strncmp(base, "libm.so", 7)) return 1;
    return 2;   /* the executable or libasymbp */
}

/* 1 when this allocation must fail. */
static int count_alloc(int cls)
{
    long k;
    if (cls == 0) return 0;
    k = ++n_alloc;
    return k == fail_alloc;
}

__attribute__((constructor)) static void fault_init(void)
{
    const char *v;
    if ((v = getenv("FAULT_ALLOC_FAIL")) != NULL) fail_alloc = atol(v);
    if ((v = getenv("FAULT_OP_KILL")) != NULL) kill_op = atol(v);
    if ((v = getenv("FAULT_OP_FAIL")) != NULL) fail_op = atol(v);
    report = getenv("FAULT_REPORT");
    ready = 1;
}

__attribute__((destructor)) static void fault_fini(void)
{
    FILE *f;
    if (!report) return;
    busy = 1;
    f = fopen(report, "w");
    if (f) {
        fprintf(f, "allocs %ld\nleaks %ld\nops %ld\n", (long)n_alloc, (long)n_live, (long)n_ops);
        fclose(f);
    }
}

void *malloc(size_t n)
{
    int cls = classify(__builtin_return_address(0));
    void *p;
    if (count_alloc(cls)) {
        errno = ENOMEM;
        return NULL;
    }
    p = __libc_malloc(n);
    if (cls == 2) set_add(p);
    return p;
}

void *calloc(size_t a, size_t b)
{
    int cls = classify(__builtin_return_address(0));
    void *p;
    if (count_alloc(cls)) {
        errno = ENOMEM;
        return NULL;
    }
    p = __libc_calloc(a, b);
    if (cls == 2) set_add(p);
    return p;
}

void *realloc(void *old, size_t n)
{
    int cls = classify(__builtin_return_address(0));
    void *p;
    if (count_alloc(cls)) {
        errno = ENOMEM;
        return NULL;
    }
    p = __libc_realloc(old, n);
    if (p || n == 0) set_del(old);
    if (cls == 2 && p) set_add(p);
    return p;
}

void free(void *p)
{
    set_del(p);
    __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    int cls = classify(__builtin_return_address(0));
    void *p;
    if (count_alloc(cls)) return ENOMEM;
    p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    if (cls == 2) set_add(p);
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    int cls = classify(__builtin_return_address(0));
    void *p;
    if (count_alloc(cls)) {
        errno = ENOMEM;
        return NULL;
    }
    p = __libc_memalign(align, n);
    if (cls == 2) set_add(p);
    return p;
}

void *memalign(size_t align, size_t n)
{
    int cls = classify(__builtin_return_address(0));
    void *p;
    if (count_alloc(cls)) {
        errno = ENOMEM;
        return NULL;
    }
    p = __libc_memalign(align, n);
    if (cls == 2) set_add(p);
    return p;
}

/* ---- file operations ---------------------------------------------------------------------- */

/* Before a file operation: 0 go on, -1 fail it (errno set). */
static int op(int err)
{
    long k;
    if (!ready) return 0;
    k = ++n_ops;
    if (k == kill_op) {
        kill(getpid(), SIGKILL);
        for (;;) pause();
    }
    if (k == fail_op) {
        errno = err;
        return -1;
    }
    return 0;
}

#define REAL(ret, name, args) \
    static ret(*real_##name) args; \
    if (!real_##name) *(void **)&real_##name = dlsym(RTLD_NEXT, #name)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    REAL(int, open, (const char *, int, ...));
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT)) && op(EIO) != 0) return -1;
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    REAL(int, open64, (const char *, int, ...));
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT)) && op(EIO) != 0) return -1;
    return real_open64(path, flags, mode);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(ssize_t, write, (int, const void *, size_t));
    if (fd > 2 && op(ENOSPC) != 0) return -1;
    return real_write(fd, buf, n);
}

int fsync(int fd)
{
    REAL(int, fsync, (int));
    if (op(EIO) != 0) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(int, fdatasync, (int));
    if (op(EIO) != 0) return -1;
    return real_fdatasync(fd);
}

int rename(const char *from, const char *to)
{
    REAL(int, rename, (const char *, const char *));
    if (op(EIO) != 0) return -1;
    return real_rename(from, to);
}
