/* Private to the library: the context's body and the helpers every layer of the code uses. */
#ifndef ASYMBP_CORE_IMPL_H
#define ASYMBP_CORE_IMPL_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "asymbp/context.h"
#include "asymbp/status.h"

#define ASYMBP_ERRMSG_MAX 512

typedef struct asymbp__pool asymbp__pool_t;

/* Plugin kinds: their slot in the context's registry (see "Plugin registry" below). */
enum {
    ASYMBP__PLUGIN_FEEDBACK = 0,
    ASYMBP__PLUGIN_UPDATE = 1,
    ASYMBP__PLUGIN_COMMUNICATOR = 2, /* reserved for the distributed-training kind */
    ASYMBP__PLUGIN_SLOTS = 4
};

struct asymbp_ctx {
    asymbp_allocator_t alloc;
    uint64_t seed;
    uint64_t seed_draws;      /* streams handed out since the seed was set */
    int threads;
    asymbp__pool_t *pool;     /* threads - 1 workers (pool.c); NULL for one thread, so
                                 asymbp_ctx_get_threads is what asymbp__parallel can use */
    asymbp_log_fn log_fn;
    void *log_user;
    asymbp_log_level_t log_level;
    asymbp_status_t last_status;
    char last_error[ASYMBP_ERRMSG_MAX];
    int log_mute;             /* > 0: recorded errors are not sent to the log (tentative calls) */
    int in_log;               /* the log callback is running: nothing is sent from inside it */
    /* User plugin registrations, one list per kind (plugin.c); the built-ins are static tables
     * of their kinds and are never stored here. */
    struct asymbp__plugin_list {
        struct asymbp__plugin *head, *tail;
        size_t count;
    } plugins[ASYMBP__PLUGIN_SLOTS];
};

/* Allocate through the context's allocator, 64-byte aligned.  NULL when size is 0 or on failure
 * (the caller reports ASYMBP_E_NOMEM).  asymbp__calloc zero-fills.  asymbp__free accepts NULL. */
void *asymbp__alloc(asymbp_ctx_t *ctx, size_t size);
void *asymbp__calloc(asymbp_ctx_t *ctx, size_t n, size_t elem);
void asymbp__free(asymbp_ctx_t *ctx, void *ptr);
/* A copy of s in context memory, NULL on failure. */
char *asymbp__strdup(asymbp_ctx_t *ctx, const char *s);

/* Record an error on ctx (ctx may be NULL) and return status, so callers can write
 * `return asymbp__error(ctx, ASYMBP_E_SHAPE, "dense: input has %d features ...", ...);` */
asymbp_status_t asymbp__error(asymbp_ctx_t *ctx, asymbp_status_t status, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefix the context's current error text with "prefix: " (for adding where an error happened). */
void asymbp__error_prefix(asymbp_ctx_t *ctx, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Send a message to the log callback, if one is set and level is within its max level.
 * asymbp__error sends every error it records at ASYMBP_LOG_ERROR, with the text it records
 * (unless log_mute > 0: around a tentative call whose failure the caller handles; the caller
 * then calls asymbp__error_relog if the failure stands).  Never from inside the callback. */
void asymbp__log(asymbp_ctx_t *ctx, asymbp_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Send the error currently recorded on ctx to the log at ASYMBP_LOG_ERROR. */
void asymbp__error_relog(asymbp_ctx_t *ctx);
/* Next 64-bit seed for an object's own RNG stream: derived from the context seed and a counter,
 * so objects created in the same order get the same streams. */
uint64_t asymbp__ctx_next_seed(asymbp_ctx_t *ctx);

/* ---- Worker threads (pool.c) -----------------------------------------------------------------
 * fn(arg, begin, end, t) processes [begin, end) of a range; t (0 = the calling thread) indexes
 * per-thread scratch. */
typedef void (*asymbp__range_fn)(void *arg, size_t begin, size_t end, int t);
/* Split [0, n) into min(max_threads, the context's threads, n) contiguous pieces, piece t being
 * [n t / P, n (t + 1) / P), run them at once (piece 0 on the calling thread) and return P when
 * all are done.  Runs fn(arg, 0, n, 0) directly and returns 1 with one thread, n < 2, or when
 * called from inside another asymbp__parallel job.  Never allocates. */
int asymbp__parallel(asymbp_ctx_t *ctx, size_t n, int max_threads, asymbp__range_fn fn, void *arg);
asymbp_status_t asymbp__pool_create(asymbp_ctx_t *ctx, int threads, asymbp__pool_t **out);
void asymbp__pool_destroy(asymbp__pool_t *pool);

/* a * b without overflow: 0 on success, -1 on overflow. */
int asymbp__mul_size(size_t a, size_t b, size_t *out);

#define ASYMBP_CHECK_NULL(ctx, p, what) \
    do { if (!(p)) return asymbp__error((ctx), ASYMBP_E_INVALID, "%s: %s is NULL", __func__, (what)); } while (0)


/* ---- Saved files (models, checkpoints) ------------------------------------------------------
 * Layout: magic "ASYMBPF\n" (8 bytes), u32 format version (1), u32 kind (1 model, 2 checkpoint),
 * then chunks (4-byte tag, u64 payload length, payload), then a u32 CRC-32 (zlib polynomial) of
 * every byte before it.  Integers little-endian; floats as IEEE-754 binary32 little-endian.
 * Unknown chunks are skipped by readers, so later versions can add chunks. */
#define ASYMBP__FILE_MODEL 1u
#define ASYMBP__FILE_CHECKPOINT 2u
#define ASYMBP__FILE_VERSION 1u

typedef struct asymbp__wbuf {
    asymbp_ctx_t *ctx;
    unsigned char *p;
    size_t len, cap;
    int failed;               /* an allocation failed: the writer reports ASYMBP_E_NOMEM */
} asymbp__wbuf_t;

void asymbp__wbuf_init(asymbp__wbuf_t *w, asymbp_ctx_t *ctx);
void asymbp__wbuf_free(asymbp__wbuf_t *w);
void asymbp__wbuf_put(asymbp__wbuf_t *w, const void *data, size_t n);
void asymbp__wbuf_u32(asymbp__wbuf_t *w, uint32_t v);
void asymbp__wbuf_u64(asymbp__wbuf_t *w, uint64_t v);
void asymbp__wbuf_f32s(asymbp__wbuf_t *w, const float *v, size_t n);
void asymbp__wbuf_f64(asymbp__wbuf_t *w, double v);
void asymbp__wbuf_str(asymbp__wbuf_t *w, const char *s);   /* u32 length + bytes */
/* Begin a chunk with a 4-character tag; returns the position to pass to chunk_end. */
size_t asymbp__wbuf_chunk_begin(asymbp__wbuf_t *w, const char tag[4]);
void asymbp__wbuf_chunk_end(asymbp__wbuf_t *w, size_t pos);
/* Write header + w's chunks + CRC to path atomically: a temporary file in the same folder,
 * fsync, rename over path, fsync of the folder.  An existing file at path is replaced only
 * when everything succeeded.  ASYMBP_E_IO / ASYMBP_E_NOMEM with the reason in the context. */
asymbp_status_t asymbp__file_write_atomic(asymbp_ctx_t *ctx, const char *path, uint32_t kind, const asymbp__wbuf_t *w);

typedef struct asymbp__rbuf {
    const unsigned char *p;
    size_t len, pos;
    int failed;               /* a read ran past the end */
} asymbp__rbuf_t;

/* Read and verify a whole file (magic, version, kind, CRC).  *data receives the buffer (free
 * with asymbp__free) and r the chunk area.  ASYMBP_E_IO (cannot open/read), ASYMBP_E_FORMAT
 * (bad magic, version, kind, checksum or truncation), ASYMBP_E_NOMEM. */
asymbp_status_t asymbp__file_read(asymbp_ctx_t *ctx, const char *path, uint32_t kind,
                                  unsigned char **data, asymbp__rbuf_t *r);
/* The checks of asymbp__file_read on a file already in memory (size bytes at buf, which stays the
 * caller's and must outlive r); path only names it in messages.  r->len + 20 is the file size. */
asymbp_status_t asymbp__file_parse(asymbp_ctx_t *ctx, const char *path, uint32_t kind, const unsigned char *buf, size_t size,
                                   asymbp__rbuf_t *r);
/* Find the first chunk with this tag in the chunk area; 0 and *chunk set when found, -1 if not. */
int asymbp__rbuf_chunk(const asymbp__rbuf_t *r, const char tag[4], asymbp__rbuf_t *chunk);
uint32_t asymbp__rbuf_u32(asymbp__rbuf_t *r);
uint64_t asymbp__rbuf_u64(asymbp__rbuf_t *r);
double asymbp__rbuf_f64(asymbp__rbuf_t *r);
void asymbp__rbuf_f32s(asymbp__rbuf_t *r, float *v, size_t n);
void asymbp__rbuf_get(asymbp__rbuf_t *r, void *dst, size_t n);
/* Copy a string into dst (cap bytes, NUL-terminated); marks failure when it does not fit. */
void asymbp__rbuf_str(asymbp__rbuf_t *r, char *dst, size_t cap);

/* ---- Plugin registry (feedback policies, update rules, and any later kind) -------------------
 * One registry with one set of rules for every plugin kind (docs/plugins.md):
 *  - a kind is described by a static asymbp__plugin_kind_t owned by the layer that defines the
 *    kind (feedback/, update/, later dist/): its slot in the context, its entry size, its
 *    built-ins (a static table: never copied, never allocated, never unregistered), its fixed
 *    aliases and an optional canonicaliser for parametrised spellings ("bm+nsc+b");
 *  - the context keeps only user registrations, per kind, in registration order after the
 *    built-ins; count, at and find never allocate and take a const context;
 *  - names are unique per kind case-insensitively, and an alias or any spelling the
 *    canonicaliser maps to a registered name is reserved like the name itself;
 *  - user names: letters, digits, '-', '_', '.', at most 63 bytes;
 *  - an entry counts the objects that use it (refs); unregistering one in use is refused
 *    (ASYMBP_E_STATE), a built-in cannot be unregistered (ASYMBP_E_INVALID), an unknown name
 *    is ASYMBP_E_NOTFOUND; user_free runs exactly once, at unregister or context destroy. */
#define ASYMBP__PLUGIN_NAME_MAX 64

/* The head every kind's entry struct starts with. */
typedef struct asymbp__plugin {
    struct asymbp__plugin *next;           /* next user registration of the same kind */
    const char *name;                      /* built-ins: static text; users: name_buf */
    void *user;
    void (*user_free)(void *user);
    int builtin;
    size_t refs;                           /* objects using it (user entries only) */
    char name_buf[ASYMBP__PLUGIN_NAME_MAX];
} asymbp__plugin_t;

typedef struct asymbp__plugin_alias {
    const char *alias, *name;              /* "bp" -> "sym" */
} asymbp__plugin_alias_t;

typedef struct asymbp__plugin_kind {
    int slot;                              /* ASYMBP__PLUGIN_* */
    const char *what;                      /* "feedback policy", for messages */
    size_t entry_size;                     /* bytes of the kind's entry (starts with asymbp__plugin_t) */
    const asymbp__plugin_t *const *builtins;
    size_t builtin_count;
    const asymbp__plugin_alias_t *aliases;
    size_t alias_count;
    /* (optional) Write the canonical name of the spelling s[0..len) into out and return 0, or
     * return -1 when s is not such a spelling.  Used by find, so registration reserves it too. */
    int (*canonical)(const char *s, size_t len, char *out, size_t cap);
} asymbp__plugin_kind_t;

/* The entry whose name is s[0..len) (case-insensitive), directly, through an alias or through
 * the canonicaliser; NULL when none.  ctx may be NULL (built-ins only).  Never allocates. */
const asymbp__plugin_t *asymbp__plugin_find(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *s,
                                            size_t len);
/* Built-ins plus user registrations; the i-th in that order (NULL out of range). */
size_t asymbp__plugin_count(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind);
const asymbp__plugin_t *asymbp__plugin_at(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, size_t i);
/* Register a user entry: proto is a complete entry of kind->entry_size bytes whose kind part
 * the caller has filled (vtable copied and checked); its head is ignored.  Checks the name
 * (rules above), allocates and links the entry; *out (may be NULL) receives it.  The caller
 * repoints any member of its part that must point into the entry (the vtable's name). */
asymbp_status_t asymbp__plugin_add(asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *who,
                                   const asymbp__plugin_t *proto, const char *name, void *user,
                                   void (*user_free)(void *user), asymbp__plugin_t **out);
/* Unregister the user entry called name (rules above). */
asymbp_status_t asymbp__plugin_remove(asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *who,
                                      const char *name);
/* An object starts / stops using an entry (no-ops for built-ins and NULL). */
void asymbp__plugin_ref(const asymbp__plugin_t *p);
void asymbp__plugin_unref(const asymbp__plugin_t *p);
/* asymbp__plugin_find on a whole NUL-terminated name, with ASYMBP_E_NOTFOUND and "<what> 'name'
 * is unknown (known: ...)" in the context when there is none (*out NULL). */
asymbp_status_t asymbp__plugin_lookup(asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *name,
                                      const asymbp__plugin_t **out);
/* "a, b, c": the names of every entry, cut to fit cap bytes (NUL included). */
void asymbp__plugin_known(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, char *buf, size_t cap);
/* End every user registration of every kind (asymbp_ctx_destroy). */
void asymbp__plugin_free_all(asymbp_ctx_t *ctx);

/* Check a vtable's struct_size (>= min_size, the version-1 size) and abi_version, then copy
 * min(struct_size, dst_size) bytes into dst, zero-fill the rest and set dst's struct_size to
 * dst_size.  ASYMBP_E_UNSUPPORTED with "who: ..." in the context otherwise. */
asymbp_status_t asymbp__plugin_copy(asymbp_ctx_t *ctx, const char *who, const void *vt, size_t min_size, void *dst,
                                    size_t dst_size);
/* A plugin name: non-empty, shorter than max bytes, and (strict) only letters, digits, '-', '_'
 * and '.'.  ASYMBP_E_INVALID with the reason otherwise. */
asymbp_status_t asymbp__plugin_name_check(asymbp_ctx_t *ctx, const char *who, const char *name, size_t max, int strict);

#endif
