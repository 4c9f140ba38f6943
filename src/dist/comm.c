/* The communicator kind of the plugin registry (core/plugin.c holds the rules every kind shares):
 * the built-in one-process communicator "local", registration, the collective wrappers with their
 * error messages and traffic counters, and the agreement checks the trainer uses. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "dist/dist_impl.h"

/* ---- The built-in "local": one process, rank 0 of 1; every collective leaves its buffer alone ---- */
static int local_rank(void *user) { (void)user; return 0; }
static int local_size(void *user) { (void)user; return 1; }
static asymbp_status_t local_sum_f32(void *user, float *buf, size_t n) { (void)user; (void)buf; (void)n; return ASYMBP_OK; }
static asymbp_status_t local_sum_int(void *user, void *buf, size_t n, asymbp_comm_int_t t)
{
    (void)user; (void)buf; (void)n; (void)t;
    return ASYMBP_OK;
}
static asymbp_status_t local_bcast(void *user, void *buf, size_t bytes, int root)
{
    (void)user; (void)buf; (void)bytes; (void)root;
    return ASYMBP_OK;
}
static asymbp_status_t local_barrier(void *user) { (void)user; return ASYMBP_OK; }

static const struct asymbp_comm builtin_local = {
    { NULL, "local", NULL, NULL, 1, 0, { 0 } },
    { (uint32_t)sizeof(asymbp_comm_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, "local", local_rank, local_size, local_sum_f32,
      local_sum_int, local_bcast, local_barrier, NULL },
    0, 1, ASYMBP_COMM_STATS_INIT
};
static const asymbp__plugin_t *const comm_builtins[1] = { &builtin_local.base };

const asymbp__plugin_kind_t asymbp__comm_kind = {
    ASYMBP__PLUGIN_COMMUNICATOR, "communicator", sizeof(struct asymbp_comm), comm_builtins, 1, NULL, 0, NULL
};

/* ---- modes ------------------------------------------------------------------------------------ */

const char *asymbp_dist_mode_name(asymbp_dist_mode_t mode)
{
    return mode == ASYMBP_DIST_EXACT ? "exact" : mode == ASYMBP_DIST_VOTE ? "vote" : "unknown";
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

static int same_text(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (lower((unsigned char)*a) != lower((unsigned char)*b)) return 0;
    return *a == *b;
}

asymbp_status_t asymbp_dist_mode_parse(const char *name, asymbp_dist_mode_t *out)
{
    if (!name || !out) return ASYMBP_E_INVALID;
    if (same_text(name, "exact")) *out = ASYMBP_DIST_EXACT;
    else if (same_text(name, "vote")) *out = ASYMBP_DIST_VOTE;
    else return ASYMBP_E_NOTFOUND;
    return ASYMBP_OK;
}

/* ---- registry -------------------------------------------------------------------------------- */

asymbp_status_t asymbp_comm_register(asymbp_ctx_t *ctx, const asymbp_comm_vtable_t *vt, void *user,
                                     void (*user_free)(void *user), asymbp_comm_t **out)
{
    struct asymbp_comm proto;
    asymbp__plugin_t *added;
    asymbp_status_t st;
    const char *missing = NULL;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, vt, "vtable");
    memset(&proto, 0, sizeof proto);
    st = asymbp__plugin_copy(ctx, "comm_register", vt, ASYMBP_COMM_VTABLE_MIN_SIZE, &proto.vt, sizeof proto.vt);
    if (st != ASYMBP_OK) return st;
    if (!proto.vt.rank) missing = "rank";
    else if (!proto.vt.size) missing = "size";
    else if (!proto.vt.allreduce_sum_f32) missing = "allreduce_sum_f32";
    else if (!proto.vt.allreduce_sum_int) missing = "allreduce_sum_int";
    else if (!proto.vt.broadcast) missing = "broadcast";
    else if (!proto.vt.barrier) missing = "barrier";
    if (missing)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_register: communicator '%.64s' has no %s function",
                             proto.vt.name ? proto.vt.name : "", missing);
    proto.rank = proto.vt.rank(user);
    proto.size = proto.vt.size(user);
    if (proto.size < 1 || proto.rank < 0 || proto.rank >= proto.size)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_register: communicator '%.64s' reports rank %d of %d ranks",
                             proto.vt.name ? proto.vt.name : "", proto.rank, proto.size);
    proto.stats.struct_size = sizeof proto.stats;
    st = asymbp__plugin_add(ctx, &asymbp__comm_kind, "comm_register", &proto.base, proto.vt.name, user, user_free, &added);
    if (st != ASYMBP_OK) return st;
    ((struct asymbp_comm *)added)->vt.name = added->name;
    asymbp__log(ctx, ASYMBP_LOG_INFO, "communicator '%s': rank %d of %d", added->name, proto.rank, proto.size);
    if (out) *out = (asymbp_comm_t *)added;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_comm_unregister(asymbp_ctx_t *ctx, const char *name)
{
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "communicator name");
    return asymbp__plugin_remove(ctx, &asymbp__comm_kind, "comm_unregister", name);
}

asymbp_status_t asymbp_comm_find(asymbp_ctx_t *ctx, const char *name, asymbp_comm_t **out)
{
    const asymbp__plugin_t *c;
    asymbp_status_t st;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "communicator name");
    ASYMBP_CHECK_NULL(ctx, out, "out");
    st = asymbp__plugin_lookup(ctx, &asymbp__comm_kind, name, &c);
    *out = (asymbp_comm_t *)c;   /* opaque; every function taking it takes it const */
    return st;
}

size_t asymbp_comm_count(const asymbp_ctx_t *ctx)
{
    return ctx ? asymbp__plugin_count(ctx, &asymbp__comm_kind) : 0;
}

asymbp_comm_t *asymbp_comm_at(const asymbp_ctx_t *ctx, size_t i)
{
    return ctx ? (asymbp_comm_t *)asymbp__plugin_at(ctx, &asymbp__comm_kind, i) : NULL;
}

const char *asymbp_comm_name(const asymbp_comm_t *comm) { return comm ? comm->base.name : ""; }
int asymbp_comm_rank(const asymbp_comm_t *comm) { return comm ? comm->rank : 0; }
int asymbp_comm_size(const asymbp_comm_t *comm) { return comm ? comm->size : 1; }

#define STATS_V1_SIZE (offsetof(asymbp_comm_stats_t, broadcast_bytes) + sizeof(uint64_t))

asymbp_status_t asymbp_comm_get_stats(const asymbp_comm_t *comm, asymbp_comm_stats_t *stats)
{
    asymbp_comm_stats_t s;
    size_t size;
    if (!comm || !stats || stats->struct_size < STATS_V1_SIZE) return ASYMBP_E_INVALID;
    size = stats->struct_size;
    s = comm->stats;
    s.struct_size = size;
    memcpy(stats, &s, size < sizeof s ? size : sizeof s);
    return ASYMBP_OK;
}

void asymbp_comm_reset_stats(const asymbp_comm_t *comm)
{
    /* user entries live in context memory; the built-in is a read-only table that counts nothing */
    if (comm && !comm->base.builtin) {
        asymbp_comm_stats_t *s = &((struct asymbp_comm *)comm)->stats;
        s->operations = s->allreduce_bytes = s->broadcast_bytes = 0;
    }
}

/* ---- collectives ------------------------------------------------------------------------------ */

static void count(const asymbp_comm_t *c, uint64_t reduce_bytes, uint64_t bcast_bytes)
{
    if (c->base.builtin) return;
    {
        asymbp_comm_stats_t *s = &((struct asymbp_comm *)c)->stats;
        s->operations++;
        s->allreduce_bytes += reduce_bytes;
        s->broadcast_bytes += bcast_bytes;
    }
}

static asymbp_status_t failed(asymbp_ctx_t *ctx, const asymbp_comm_t *c, asymbp_status_t st, const char *what,
                              const char *op)
{
    const char *detail = c->vt.last_error ? c->vt.last_error(c->base.user) : NULL;
    return asymbp__error(ctx, ASYMBP_E_COMM, "%s: communicator '%s' (rank %d of %d): %s failed (%s)%s%s", what, c->base.name,
                         c->rank, c->size, op, asymbp_status_name(st), detail && *detail ? ": " : "",
                         detail ? detail : "");
}

asymbp_status_t asymbp__comm_sum_f32(asymbp_ctx_t *ctx, const asymbp_comm_t *c, float *buf, size_t n, const char *what)
{
    asymbp_status_t st;
    char op[64];
    count(c, (uint64_t)n * sizeof(float), 0);
    st = c->vt.allreduce_sum_f32(c->base.user, buf, n);
    if (st == ASYMBP_OK) return ASYMBP_OK;
    snprintf(op, sizeof op, "allreduce of %zu floats", n);
    return failed(ctx, c, st, what, op);
}

asymbp_status_t asymbp__comm_sum_int(asymbp_ctx_t *ctx, const asymbp_comm_t *c, void *buf, size_t n,
                                     asymbp_comm_int_t type, const char *what)
{
    asymbp_status_t st;
    char op[64];
    count(c, (uint64_t)n * (uint64_t)type, 0);
    st = c->vt.allreduce_sum_int(c->base.user, buf, n, type);
    if (st == ASYMBP_OK) return ASYMBP_OK;
    snprintf(op, sizeof op, "allreduce of %zu %d-bit integers", n, 8 * (int)type);
    return failed(ctx, c, st, what, op);
}

asymbp_status_t asymbp__comm_bcast(asymbp_ctx_t *ctx, const asymbp_comm_t *c, void *buf, size_t bytes, int root,
                                   const char *what)
{
    asymbp_status_t st;
    char op[64];
    count(c, 0, bytes);
    st = c->vt.broadcast(c->base.user, buf, bytes, root);
    if (st == ASYMBP_OK) return ASYMBP_OK;
    snprintf(op, sizeof op, "broadcast of %zu bytes from rank %d", bytes, root);
    return failed(ctx, c, st, what, op);
}

asymbp_comm_int_t asymbp__comm_vote_type(int size)
{
    return size <= 127 ? ASYMBP_COMM_INT8 : size <= 32767 ? ASYMBP_COMM_INT16 : ASYMBP_COMM_INT32;
}

asymbp_status_t asymbp__comm_check_same(asymbp_ctx_t *ctx, const asymbp_comm_t *c, uint64_t value, const char *what,
                                        int *differ)
{
    uint64_t root = value;
    int32_t diff;
    asymbp_status_t st;
    if (differ) *differ = 0;
    st = asymbp__comm_bcast(ctx, c, &root, sizeof root, 0, what);
    if (st != ASYMBP_OK) return st;
    diff = root != value;
    st = asymbp__comm_sum_int(ctx, c, &diff, 1, ASYMBP_COMM_INT32, what);
    if (st != ASYMBP_OK) return st;
    if (differ) *differ = (int)diff;
    if (diff)
        return asymbp__error(ctx, ASYMBP_E_COMM, "%s: the ranks disagree: %d of %d ranks differ from rank 0%s", what, (int)diff,
                             c->size, value != root ? " (this one among them)" : "");
    return ASYMBP_OK;
}

asymbp_status_t asymbp__comm_all_ok(asymbp_ctx_t *ctx, const asymbp_comm_t *c, asymbp_status_t mine, const char *what)
{
    int32_t bad = mine != ASYMBP_OK;
    asymbp_status_t st = asymbp__comm_sum_int(ctx, c, &bad, 1, ASYMBP_COMM_INT32, what);
    if (mine != ASYMBP_OK) return mine;
    if (st != ASYMBP_OK) return st;
    if (bad)
        return asymbp__error(ctx, ASYMBP_E_COMM, "%s: failed on %d of %d ranks (their own messages say why)", what, (int)bad,
                             c->size);
    return ASYMBP_OK;
}

/* ---- public wrappers ---------------------------------------------------------------------------- */

asymbp_status_t asymbp_comm_allreduce_sum_f32(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, float *buf, size_t count_)
{
    if (!comm) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_allreduce_sum_f32: comm is NULL");
    if (!buf && count_) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_allreduce_sum_f32: buf is NULL");
    return asymbp__comm_sum_f32(ctx, comm, buf, count_, "comm_allreduce_sum_f32");
}

asymbp_status_t asymbp_comm_allreduce_sum_int(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, void *buf, size_t count_,
                                              asymbp_comm_int_t type)
{
    if (!comm) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_allreduce_sum_int: comm is NULL");
    if (!buf && count_) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_allreduce_sum_int: buf is NULL");
    if (type != ASYMBP_COMM_INT8 && type != ASYMBP_COMM_INT16 && type != ASYMBP_COMM_INT32)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_allreduce_sum_int: unknown integer type %d", (int)type);
    return asymbp__comm_sum_int(ctx, comm, buf, count_, type, "comm_allreduce_sum_int");
}

asymbp_status_t asymbp_comm_broadcast(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, void *buf, size_t bytes, int root)
{
    if (!comm) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_broadcast: comm is NULL");
    if (!buf && bytes) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_broadcast: buf is NULL");
    if (root < 0 || root >= comm->size)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_broadcast: root %d is not a rank of %d", root, comm->size);
    return asymbp__comm_bcast(ctx, comm, buf, bytes, root, "comm_broadcast");
}

asymbp_status_t asymbp_comm_barrier(asymbp_ctx_t *ctx, const asymbp_comm_t *comm)
{
    asymbp_status_t st;
    if (!comm) return asymbp__error(ctx, ASYMBP_E_INVALID, "comm_barrier: comm is NULL");
    count(comm, 0, 0);
    st = comm->vt.barrier(comm->base.user);
    return st == ASYMBP_OK ? ASYMBP_OK : failed(ctx, comm, st, "comm_barrier", "barrier");
}
