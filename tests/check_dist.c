/* Distributed training without MPI: a communicator plugin whose ranks are threads of this process
 * (each with its own context, data, net, optimizer and trainer), so the data-parallel paths run in
 * every `make check`, under the sanitizers too.  The MPI module has its own test (make check-mpi). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "test_util.h"
#include "tensor/tensor_impl.h"

#define MAXR 8

/* ---- A thread team as a communicator ----------------------------------------------------------
 * Every collective publishes the member's buffer, waits for all, computes the result from the
 * published buffers in rank order (so every member gets the same bits), waits again, and only
 * then writes its own buffer. */
typedef struct team {
    int size;
    pthread_barrier_t bar;
    void *slot[MAXR];
    int fail_at;            /* 1-based operation at which every member fails (0: never) */
} team_t;

typedef struct member {
    team_t *t;
    int rank;
    int ops;
    int *freed;             /* counts user_free calls */
} member_t;

static int m_rank(void *u) { return ((member_t *)u)->rank; }
static int m_size(void *u) { return ((member_t *)u)->t->size; }

static int m_fail(member_t *m)
{
    return ++m->ops == m->t->fail_at;
}

static asymbp_status_t m_sum_f32(void *u, float *buf, size_t n)
{
    member_t *m = u;
    float *tmp;
    if (m_fail(m)) return ASYMBP_E_IO;
    tmp = malloc((n ? n : 1) * sizeof *tmp);
    m->t->slot[m->rank] = buf;
    pthread_barrier_wait(&m->t->bar);
    for (size_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int r = 0; r < m->t->size; r++) s += ((const float *)m->t->slot[r])[i];
        tmp[i] = s;
    }
    pthread_barrier_wait(&m->t->bar);
    memcpy(buf, tmp, n * sizeof *tmp);
    free(tmp);
    return ASYMBP_OK;
}

static asymbp_status_t m_sum_int(void *u, void *buf, size_t n, asymbp_comm_int_t type)
{
    member_t *m = u;
    int64_t *tmp;
    if (m_fail(m)) return ASYMBP_E_IO;
    tmp = malloc((n ? n : 1) * sizeof *tmp);
    m->t->slot[m->rank] = buf;
    pthread_barrier_wait(&m->t->bar);
    for (size_t i = 0; i < n; i++) {
        int64_t s = 0;
        for (int r = 0; r < m->t->size; r++)
            s += type == ASYMBP_COMM_INT8 ? ((const int8_t *)m->t->slot[r])[i]
               : type == ASYMBP_COMM_INT16 ? ((const int16_t *)m->t->slot[r])[i] : ((const int32_t *)m->t->slot[r])[i];
        tmp[i] = s;
    }
    pthread_barrier_wait(&m->t->bar);
    for (size_t i = 0; i < n; i++) {
        if (type == ASYMBP_COMM_INT8) ((int8_t *)buf)[i] = (int8_t)tmp[i];
        else if (type == ASYMBP_COMM_INT16) ((int16_t *)buf)[i] = (int16_t)tmp[i];
        else ((int32_t *)buf)[i] = (int32_t)tmp[i];
    }
    free(tmp);
    return ASYMBP_OK;
}

static asymbp_status_t m_bcast(void *u, void *buf, size_t bytes, int root)
{
    member_t *m = u;
    if (m_fail(m)) return ASYMBP_E_IO;
    m->t->slot[m->rank] = buf;
    pthread_barrier_wait(&m->t->bar);
    if (m->rank != root) memcpy(buf, m->t->slot[root], bytes);
    pthread_barrier_wait(&m->t->bar);
    return ASYMBP_OK;
}

static asymbp_status_t m_barrier(void *u)
{
    member_t *m = u;
    if (m_fail(m)) return ASYMBP_E_IO;
    pthread_barrier_wait(&m->t->bar);
    return ASYMBP_OK;
}

static const char *m_last_error(void *u)
{
    (void)u;
    return "the test team was told to fail";
}

static void m_free(void *u)
{
    member_t *m = u;
    if (m->freed) (*m->freed)++;
}

static asymbp_comm_vtable_t team_vtable(void)
{
    asymbp_comm_vtable_t vt = ASYMBP_COMM_VTABLE_INIT;
    vt.name = "team";
    vt.rank = m_rank;
    vt.size = m_size;
    vt.allreduce_sum_f32 = m_sum_f32;
    vt.allreduce_sum_int = m_sum_int;
    vt.broadcast = m_bcast;
    vt.barrier = m_barrier;
    vt.last_error = m_last_error;
    return vt;
}

/* ---- One rank's run ------------------------------------------------------------------------- */

/* Three Gaussian blobs in 6 dimensions, labels 0..2, deterministic from seed; poison: the first
 * feature of every sample is 3e38, so the first layer overflows and the loss is not finite. */
static asymbp_dataset_t *blobs(asymbp_ctx_t *ctx, size_t n, uint64_t seed, int poison)
{
    asymbp_rng_t *r = NULL;
    asymbp_dataset_t *ds = NULL;
    float *x = malloc(n * 6 * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    if (asymbp_rng_create(ctx, seed, 3, &r) != ASYMBP_OK) abort();
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 3);
        for (int j = 0; j < 6; j++) x[i * 6 + j] = 0.7f * asymbp_rng_normal(r) + (j % 3 == y[i] ? 2.0f : 0.0f);
        if (poison) x[i * 6] = 3e38f;
    }
    if (asymbp_dataset_create(ctx, n, 6, 1, 1, 3, x, y, &ds) != ASYMBP_OK) ds = NULL;
    asymbp_rng_destroy(r);
    free(x);
    free(y);
    return ds;
}

typedef struct job {
    /* settings (every rank the same unless said otherwise) */
    const char *spec, *fb, *rule;
    int bn, epochs, every, threads;
    float lr, momentum;
    size_t batch, n_train;
    uint64_t seed;              /* may differ per rank (a test of the start check) */
    int comm;                   /* 0: no communicator; 1: the team; 2: the built-in "local" */
    asymbp_dist_mode_t mode;
    const char *ckpt;           /* checkpoint path; resume 1: load it before running */
    int resume, poison;
    team_t *team;
    int rank;
    /* results */
    asymbp_status_t st;
    char err[600];
    float *w;                   /* every parameter, in order */
    size_t nw;
    float *v;                   /* every weighted layer's V, in order */
    size_t nv;
    double test_acc, train_loss;
    uint64_t steps, comm_payload;
    int epochs_done, freed;
} job_t;

static void job_defaults(job_t *j)
{
    memset(j, 0, sizeof *j);
    j->spec = "mlp:16";
    j->fb = "sym";
    j->rule = "sgd";
    j->lr = 0.05f;
    j->momentum = 0.9f;
    j->epochs = 2;
    j->batch = 32;
    j->n_train = 300;
    j->seed = 1;
    j->threads = 1;
}

static void snapshot(job_t *j, asymbp_net_t *net)
{
    size_t i, off = 0, nl = asymbp_net_layer_count(net);
    j->nw = asymbp_net_weight_count(net);
    j->w = malloc(j->nw * sizeof *j->w);
    for (i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *t = NULL;
        if (asymbp_net_param_at(net, i, &t, NULL) != ASYMBP_OK) continue;
        memcpy(j->w + off, asymbp_tensor_data(t), asymbp_tensor_numel(t) * sizeof(float));
        off += asymbp_tensor_numel(t);
    }
    j->nv = 0;
    for (i = 0; i < nl; i++) {
        size_t c = 0;
        if (asymbp_net_read_layer(net, i, ASYMBP_READ_FEEDBACK, NULL, 0, &c) == ASYMBP_OK) j->nv += c;
    }
    j->v = malloc((j->nv ? j->nv : 1) * sizeof *j->v);
    for (i = 0, off = 0; i < nl; i++) {
        size_t c = 0;
        if (asymbp_net_read_layer(net, i, ASYMBP_READ_FEEDBACK, NULL, 0, &c) != ASYMBP_OK) continue;
        if (asymbp_net_read_layer(net, i, ASYMBP_READ_FEEDBACK, j->v + off, c, NULL) == ASYMBP_OK) off += c;
    }
}

#define TRY(call) \
    do { \
        if ((j->st = (call)) != ASYMBP_OK) { \
            snprintf(j->err, sizeof j->err, "rank %d: %s: %s: %s", j->rank, #call, asymbp_status_name(j->st), \
                     ctx ? asymbp_ctx_last_error(ctx) : ""); \
            goto out; \
        } \
    } while (0)

static void *job_run(void *arg)
{
    job_t *j = arg;
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_comm_t *comm = NULL;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    member_t me;
    TRY(asymbp_ctx_create(NULL, &ctx));
    TRY(asymbp_ctx_set_seed(ctx, j->seed));
    TRY(asymbp_ctx_set_threads(ctx, j->threads));
    if (j->comm == 1) {
        asymbp_comm_vtable_t vt = team_vtable();
        me.t = j->team;
        me.rank = j->rank;
        me.ops = 0;
        me.freed = &j->freed;
        TRY(asymbp_comm_register(ctx, &vt, &me, m_free, &comm));
    } else if (j->comm == 2) {
        TRY(asymbp_comm_find(ctx, "local", &comm));
    }
    train = blobs(ctx, j->n_train, 11, j->poison);
    test = blobs(ctx, 90, 12, 0);
    TRY(train && test ? ASYMBP_OK : ASYMBP_E_NOMEM);
    TRY(asymbp_net_from_spec(ctx, j->spec, 6, 1, 1, 3, j->bn, &net));
    TRY(asymbp_net_set_feedback(net, j->fb));
    hp.lr = j->lr;
    hp.momentum = j->momentum;
    TRY(asymbp_optimizer_create(net, j->rule, &hp, &opt));
    tp.epochs = j->epochs;
    tp.batch = j->batch;
    tp.checkpoint_every = j->every;
    tp.checkpoint_path = j->ckpt;
    TRY(asymbp_trainer_create(net, opt, train, test, &tp, &tr));
    if (comm) TRY(asymbp_trainer_set_comm(tr, comm, j->mode));
    if (j->resume) TRY(asymbp_trainer_load_checkpoint(tr, j->ckpt));
    TRY(asymbp_trainer_run(tr));
out:
    if (net) snapshot(j, net);
    if (tr && asymbp_trainer_epochs_done(tr) > 0) {
        const asymbp_epoch_metrics_t *m = asymbp_trainer_metrics(tr, asymbp_trainer_epochs_done(tr));
        j->test_acc = m->test_accuracy;
        j->train_loss = m->train_loss;
    }
    j->epochs_done = tr ? asymbp_trainer_epochs_done(tr) : 0;
    j->steps = asymbp_optimizer_step_count(opt);
    j->comm_payload = asymbp_optimizer_comm_bytes(opt);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    return NULL;
}

/* Run jobs[0..R) as the R ranks of one team (or one job alone with R 1 and no team). */
static void run_team(job_t *jobs, int R, int fail_at)
{
    team_t t;
    pthread_t th[MAXR];
    int r;
    memset(&t, 0, sizeof t);
    t.size = R;
    t.fail_at = fail_at;
    ck_assert_int_eq(pthread_barrier_init(&t.bar, NULL, (unsigned)R), 0);
    for (r = 0; r < R; r++) {
        jobs[r].team = &t;
        jobs[r].rank = r;
        if (!jobs[r].comm) jobs[r].comm = 1;
        ck_assert_int_eq(pthread_create(&th[r], NULL, job_run, &jobs[r]), 0);
    }
    for (r = 0; r < R; r++) ck_assert_int_eq(pthread_join(th[r], NULL), 0);
    pthread_barrier_destroy(&t.bar);
}

static void jobs_free(job_t *jobs, int R)
{
    for (int r = 0; r < R; r++) {
        free(jobs[r].w);
        free(jobs[r].v);
    }
}

static void assert_ok(const job_t *jobs, int R)
{
    for (int r = 0; r < R; r++)
        if (jobs[r].st != ASYMBP_OK) ck_abort_msg("%s", jobs[r].err);
}

/* Every rank holds the same parameters and the same V, bit for bit. */
static void assert_ranks_agree(const job_t *jobs, int R)
{
    for (int r = 1; r < R; r++) {
        ck_assert_uint_eq(jobs[r].nw, jobs[0].nw);
        ck_assert_uint_eq(jobs[r].nv, jobs[0].nv);
        ck_assert_msg(memcmp(jobs[r].w, jobs[0].w, jobs[0].nw * sizeof(float)) == 0, "rank %d's weights differ from rank 0's", r);
        ck_assert_msg(memcmp(jobs[r].v, jobs[0].v, jobs[0].nv * sizeof(float)) == 0, "rank %d's V differs from rank 0's", r);
        ck_assert_uint_eq(jobs[r].steps, jobs[0].steps);
        ck_assert_double_eq(jobs[r].test_acc, jobs[0].test_acc);
        ck_assert_double_eq(jobs[r].train_loss, jobs[0].train_loss);
    }
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e;
    }
    return d;
}

/* ---- Tests ------------------------------------------------------------------------------------ */

START_TEST(test_rng_advance)
{
    asymbp_rng_t a, b;
    uint64_t k;
    asymbp__rng_seed(&a, 42, 7);
    b = a;
    for (k = 0; k < 1000; k++) (void)asymbp__rng_u32(&a);
    asymbp__rng_advance(&b, 1000);
    ck_assert_uint_eq(a.state, b.state);
    ck_assert_uint_eq(asymbp__rng_u32(&a), asymbp__rng_u32(&b));
    asymbp__rng_advance(&b, 0);
    ck_assert_uint_eq(asymbp__rng_u32(&a), asymbp__rng_u32(&b));
}
END_TEST

static int user_frees;
static void count_free(void *u) { (void)u; user_frees++; }

START_TEST(test_comm_registry)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_comm_t *c = NULL, *mine = NULL;
    asymbp_comm_vtable_t vt = team_vtable();
    asymbp_comm_stats_t stats = ASYMBP_COMM_STATS_INIT;
    team_t t;
    member_t me;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_dist_mode_t mode;
    float f[3] = { 1, 2, 3 };
    int32_t iv[2] = { 4, 5 };
    memset(&t, 0, sizeof t);
    t.size = 1;
    ck_assert_int_eq(pthread_barrier_init(&t.bar, NULL, 1), 0);
    me.t = &t;
    me.rank = 0;
    me.ops = 0;
    me.freed = NULL;
    /* the built-in */
    ck_assert_uint_eq(asymbp_comm_count(ctx), 1);
    ck_assert_uint_eq(asymbp_comm_count(NULL), 0);
    ck_assert_int_eq(asymbp_comm_find(ctx, "LOCAL", &c), ASYMBP_OK);
    ck_assert_ptr_eq(c, asymbp_comm_at(ctx, 0));
    ck_assert_ptr_null(asymbp_comm_at(ctx, 1));
    ck_assert_str_eq(asymbp_comm_name(c), "local");
    ck_assert_int_eq(asymbp_comm_rank(c), 0);
    ck_assert_int_eq(asymbp_comm_size(c), 1);
    ck_assert_int_eq(asymbp_comm_allreduce_sum_f32(ctx, c, f, 3), ASYMBP_OK);
    ck_assert(f[0] == 1.0f && f[2] == 3.0f);
    ck_assert_int_eq(asymbp_comm_barrier(ctx, c), ASYMBP_OK);
    ck_assert_int_eq(asymbp_comm_get_stats(c, &stats), ASYMBP_OK);
    ck_assert_uint_eq(stats.operations, 0);   /* the built-in counts nothing */
    ck_assert_int_eq(asymbp_comm_unregister(ctx, "local"), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_comm_find(ctx, "nope", &c), ASYMBP_E_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "local"));
    /* modes */
    ck_assert_int_eq(asymbp_dist_mode_parse("Vote", &mode), ASYMBP_OK);
    ck_assert_int_eq(mode, ASYMBP_DIST_VOTE);
    ck_assert_int_eq(asymbp_dist_mode_parse("exact", &mode), ASYMBP_OK);
    ck_assert_int_eq(mode, ASYMBP_DIST_EXACT);
    ck_assert_int_eq(asymbp_dist_mode_parse("majority", &mode), ASYMBP_E_NOTFOUND);
    ck_assert_str_eq(asymbp_dist_mode_name(ASYMBP_DIST_VOTE), "vote");
    ck_assert_str_eq(asymbp_dist_mode_name((asymbp_dist_mode_t)7), "unknown");
    /* registration rules */
    vt.name = "local";
    ck_assert_int_eq(asymbp_comm_register(ctx, &vt, &me, NULL, NULL), ASYMBP_E_INVALID);
    vt.name = "team";
    vt.barrier = NULL;
    ck_assert_int_eq(asymbp_comm_register(ctx, &vt, &me, NULL, NULL), ASYMBP_E_INVALID);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "barrier"));
    vt = team_vtable();
    vt.abi_version = 99;
    ck_assert_int_eq(asymbp_comm_register(ctx, &vt, &me, NULL, NULL), ASYMBP_E_UNSUPPORTED);
    vt = team_vtable();
    vt.struct_size = 8;
    ck_assert_int_eq(asymbp_comm_register(ctx, &vt, &me, NULL, NULL), ASYMBP_E_UNSUPPORTED);
    me.rank = 3;   /* rank 3 of 1 */
    vt = team_vtable();
    ck_assert_int_eq(asymbp_comm_register(ctx, &vt, &me, count_free, NULL), ASYMBP_E_INVALID);
    me.rank = 0;
    /* a plugin compiled without last_error (the version-1 minimum) is accepted */
    vt.struct_size = (uint32_t)ASYMBP_COMM_VTABLE_MIN_SIZE;
    user_frees = 0;
    ck_assert_int_eq(asymbp_comm_register(ctx, &vt, &me, count_free, &mine), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_comm_count(ctx), 2);
    ck_assert_int_eq(asymbp_comm_allreduce_sum_f32(ctx, mine, f, 3), ASYMBP_OK);
    ck_assert_int_eq(asymbp_comm_allreduce_sum_int(ctx, mine, iv, 2, ASYMBP_COMM_INT32), ASYMBP_OK);
    ck_assert_int_eq(asymbp_comm_allreduce_sum_int(ctx, mine, iv, 2, (asymbp_comm_int_t)3), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_comm_broadcast(ctx, mine, iv, sizeof iv, 1), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_comm_broadcast(ctx, mine, iv, sizeof iv, 0), ASYMBP_OK);
    ck_assert_int_eq(asymbp_comm_allreduce_sum_f32(ctx, NULL, f, 3), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_comm_allreduce_sum_f32(ctx, mine, NULL, 3), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_comm_get_stats(mine, &stats), ASYMBP_OK);
    ck_assert_uint_eq(stats.operations, 3);
    ck_assert_uint_eq(stats.allreduce_bytes, 3 * 4 + 2 * 4);
    ck_assert_uint_eq(stats.broadcast_bytes, sizeof iv);
    asymbp_comm_reset_stats(mine);
    ck_assert_int_eq(asymbp_comm_get_stats(mine, &stats), ASYMBP_OK);
    ck_assert_uint_eq(stats.operations, 0);
    stats.struct_size = 4;
    ck_assert_int_eq(asymbp_comm_get_stats(mine, &stats), ASYMBP_E_INVALID);
    /* a failure names the communicator and carries the plugin's text (none here: version 1 min) */
    t.fail_at = me.ops + 1;
    ck_assert_int_eq(asymbp_comm_barrier(ctx, mine), ASYMBP_E_COMM);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "communicator 'team' (rank 0 of 1)"));
    t.fail_at = 0;
    /* in use by an optimizer: cannot be unregistered */
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:4", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_create(net, "bm", NULL, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_comm(opt, mine, ASYMBP_DIST_VOTE), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_optimizer_comm_bytes(opt), asymbp_net_weight_count(net) + 1);
    ck_assert_int_eq(asymbp_optimizer_set_comm(opt, mine, (asymbp_dist_mode_t)5), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_comm_unregister(ctx, "team"), ASYMBP_E_STATE);
    ck_assert_int_eq(asymbp_optimizer_set_comm(opt, mine, ASYMBP_DIST_EXACT), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_optimizer_comm_bytes(opt), 4 * (asymbp_net_weight_count(net) + 1));
    ck_assert_int_eq(asymbp_optimizer_set_comm(opt, NULL, ASYMBP_DIST_EXACT), ASYMBP_OK);
    ck_assert_uint_eq(asymbp_optimizer_comm_bytes(opt), 0);
    ck_assert_int_eq(asymbp_comm_unregister(ctx, "team"), ASYMBP_OK);
    ck_assert_int_eq(user_frees, 1);
    ck_assert_int_eq(asymbp_comm_unregister(ctx, "team"), ASYMBP_E_NOTFOUND);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    ck_assert_int_eq(user_frees, 1);
    pthread_barrier_destroy(&t.bar);
}
END_TEST

START_TEST(test_vote_needs_a_sign_rule)
{
    asymbp_ctx_t *ctx = test_ctx();
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_comm_t *local = NULL;
    ck_assert_int_eq(asymbp_comm_find(ctx, "local", &local), ASYMBP_OK);
    ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:4", 6, 1, 1, 3, 0, &net), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_create(net, "sgd", NULL, &opt), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_set_comm(opt, local, ASYMBP_DIST_VOTE), ASYMBP_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(asymbp_ctx_last_error(ctx), "'sgd' needs the gradient"));
    ck_assert_int_eq(asymbp_optimizer_set_comm(opt, local, ASYMBP_DIST_EXACT), ASYMBP_OK);
    ck_assert_int_eq(asymbp_optimizer_step_samples(opt, 3, 2), ASYMBP_E_INVALID);
    ck_assert_int_eq(asymbp_optimizer_step_samples(opt, 0, 0), ASYMBP_E_INVALID);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
}
END_TEST

/* The built-in "local" communicator goes through every distributed path with one rank and must
 * change nothing: the same bits as no communicator (BN, dropout and momentum included). */
START_TEST(test_local_is_bit_identical)
{
    job_t a, b;
    job_defaults(&a);
    a.spec = "fc16,relu,dropout0.3,fc3";
    a.bn = 1;
    a.fb = "brsf";
    a.rule = "bm";
    a.lr = 0.01f;
    a.epochs = 3;
    b = a;
    b.comm = 2;
    job_run(&a);
    job_run(&b);
    ck_assert_msg(a.st == ASYMBP_OK, "%s", a.err);
    ck_assert_msg(b.st == ASYMBP_OK, "%s", b.err);
    ck_assert_uint_eq(a.nw, b.nw);
    ck_assert_msg(memcmp(a.w, b.w, a.nw * sizeof(float)) == 0, "the local communicator changed the weights");
    ck_assert_msg(memcmp(a.v, b.v, a.nv * sizeof(float)) == 0, "the local communicator changed V");
    ck_assert_double_eq(a.test_acc, b.test_acc);
    ck_assert_double_eq(a.train_loss, b.train_loss);
    ck_assert_uint_eq(b.comm_payload, 4 * (b.nw + 1));
    jobs_free(&a, 1);
    jobs_free(&b, 1);
}
END_TEST

/* Exact mode on 2 and 3 ranks (3: batches of 32 and the last one of 12 split unevenly) against
 * one process on the same global batch: the same updates up to the order of the float sums, with
 * dropout drawing the same masks for every sample.  Every rank ends with the same bits. */
START_TEST(test_exact_matches_one_process)
{
    for (int R = 2; R <= 3; R++) {
        job_t one, jobs[MAXR];
        double d;
        job_defaults(&one);
        one.spec = "fc16,relu,dropout0.25,fc3";
        one.epochs = 3;
        for (int r = 0; r < R; r++) jobs[r] = one;
        job_run(&one);
        ck_assert_msg(one.st == ASYMBP_OK, "%s", one.err);
        run_team(jobs, R, 0);
        assert_ok(jobs, R);
        assert_ranks_agree(jobs, R);
        ck_assert_uint_eq(jobs[0].steps, one.steps);
        d = max_abs_diff(one.w, jobs[0].w, one.nw);
        ck_assert_msg(d < 1e-4, "%d ranks: weights differ from one process by %g", R, d);
        ck_assert_double_le(fabs(one.test_acc - jobs[0].test_acc), 0.02);
        ck_assert_double_le(fabs(one.train_loss - jobs[0].train_loss), 1e-4);
        ck_assert_uint_eq(jobs[0].comm_payload, 4 * (jobs[0].nw + 1));
        jobs_free(jobs, R);
        jobs_free(&one, 1);
    }
}
END_TEST

/* A last batch smaller than the number of ranks: 290 samples in batches of 32 leave 2 for 4 ranks,
 * so two ranks step without a sample.  Still one process's update. */
START_TEST(test_idle_ranks)
{
    job_t one, jobs[4];
    job_defaults(&one);
    one.n_train = 290;
    one.epochs = 2;
    for (int r = 0; r < 4; r++) jobs[r] = one;
    job_run(&one);
    ck_assert_msg(one.st == ASYMBP_OK, "%s", one.err);
    run_team(jobs, 4, 0);
    assert_ok(jobs, 4);
    assert_ranks_agree(jobs, 4);
    ck_assert_uint_eq(jobs[0].steps, 2 * 10);
    ck_assert_double_lt(max_abs_diff(one.w, jobs[0].w, one.nw), 1e-4);
    jobs_free(jobs, 4);
    jobs_free(&one, 1);
}
END_TEST

/* Vote mode with uSF + BN and Batch Manhattan on 2 and 4 ranks learns the task, and every rank
 * holds the same weights, V and running statistics; 1 byte per parameter per step. */
START_TEST(test_vote_learns)
{
    for (int R = 2; R <= 4; R += 2) {
        job_t jobs[4];
        job_defaults(&jobs[0]);
        jobs[0].fb = "usf";
        jobs[0].bn = 1;
        jobs[0].rule = "bm";
        jobs[0].lr = 0.005f;
        jobs[0].epochs = 5;
        jobs[0].mode = ASYMBP_DIST_VOTE;
        for (int r = 1; r < R; r++) jobs[r] = jobs[0];
        run_team(jobs, R, 0);
        assert_ok(jobs, R);
        assert_ranks_agree(jobs, R);
        ck_assert_msg(jobs[0].test_acc > 0.9, "%d ranks: vote mode reached only %g", R, jobs[0].test_acc);
        ck_assert_uint_eq(jobs[0].comm_payload, jobs[0].nw + 1);
        jobs_free(jobs, R);
    }
}
END_TEST

/* Feedback state needs no communication: BRSF redraws, a redrawn partial mask and random feedback
 * come out the same on every rank (V compared bit for bit, after training). */
START_TEST(test_feedback_agrees_across_ranks)
{
    static const char *const fbs[] = { "brsf", "partial:0.5:redraw", "rndf", "frsf:mag=uniform" };
    for (size_t k = 0; k < sizeof fbs / sizeof fbs[0]; k++) {
        job_t jobs[3];
        job_defaults(&jobs[0]);
        jobs[0].spec = "mlp:16,8";
        jobs[0].fb = fbs[k];
        jobs[0].bn = 1;
        jobs[0].rule = "bm";
        jobs[0].lr = 0.005f;
        jobs[0].mode = ASYMBP_DIST_VOTE;
        jobs[1] = jobs[2] = jobs[0];
        run_team(jobs, 3, 0);
        assert_ok(jobs, 3);
        ck_assert_uint_gt(jobs[0].nv, 0);
        assert_ranks_agree(jobs, 3);
        jobs_free(jobs, 3);
    }
}
END_TEST

/* Ranks that do not start from the same weights are refused before training. */
START_TEST(test_different_seeds_refused)
{
    job_t jobs[2];
    job_defaults(&jobs[0]);
    jobs[1] = jobs[0];
    jobs[1].seed = 2;
    run_team(jobs, 2, 0);
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(jobs[r].st, ASYMBP_E_COMM);
        ck_assert_ptr_nonnull(strstr(jobs[r].err, "is the seed the same on every rank"));
    }
    jobs_free(jobs, 2);
}
END_TEST

/* One rank's loss overflows: every rank stops at the same step with ASYMBP_E_DIVERGED, nothing is
 * updated, and the ranks still agree. */
START_TEST(test_divergence_is_collective)
{
    job_t jobs[3];
    job_defaults(&jobs[0]);
    jobs[0].bn = 1;
    jobs[1] = jobs[2] = jobs[0];
    jobs[1].poison = 1;
    run_team(jobs, 3, 0);
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(jobs[r].st, ASYMBP_E_DIVERGED);
        ck_assert_ptr_nonnull(strstr(jobs[r].err, "on 1 of 3 ranks"));
    }
    ck_assert_ptr_nonnull(strstr(jobs[1].err, "this one among them"));
    assert_ranks_agree(jobs, 3);
    jobs_free(jobs, 3);
}
END_TEST

/* A communicator that fails (on every rank at once) stops every rank with ASYMBP_E_COMM and the
 * plugin's own text. */
START_TEST(test_comm_failure)
{
    job_t jobs[2];
    job_defaults(&jobs[0]);
    jobs[1] = jobs[0];
    run_team(jobs, 2, 7);
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(jobs[r].st, ASYMBP_E_COMM);
        ck_assert_ptr_nonnull(strstr(jobs[r].err, "the test team was told to fail"));
        ck_assert_int_eq(jobs[r].freed, 1);
    }
    jobs_free(jobs, 2);
}
END_TEST

/* Checkpoints: rank 0 writes them (the other ranks are given a path they could not write);
 * resuming on the same number of ranks continues bit for bit; resuming on 1 and on 3 ranks
 * continues correctly (every rank agrees, the task is learnt). */
START_TEST(test_checkpoint_resume)
{
    char dir[4096], ckpt[4200], bad[4200];
    job_t full[2], part[2], same[2], more[3], one;
    test_tmpdir_make(dir, sizeof dir, "dist");
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.asymbp", dir);
    snprintf(bad, sizeof bad, "%s/no-such-folder/ckpt.asymbp", dir);
    job_defaults(&full[0]);
    full[0].bn = 1;
    full[0].fb = "brsf";
    full[0].rule = "bm";
    full[0].lr = 0.005f;
    full[0].epochs = 4;
    full[0].mode = ASYMBP_DIST_VOTE;
    full[1] = full[0];
    run_team(full, 2, 0);
    assert_ok(full, 2);
    /* two epochs with checkpoints, then a new team resumes them to four */
    part[0] = full[0];
    part[0].epochs = 2;
    part[0].every = 1;
    part[0].ckpt = ckpt;
    part[1] = part[0];
    part[1].ckpt = bad;
    run_team(part, 2, 0);
    assert_ok(part, 2);
    ck_assert_int_eq(access(ckpt, R_OK), 0);
    ck_assert_int_ne(access(bad, F_OK), 0);
    same[0] = full[0];
    same[0].ckpt = ckpt;
    same[0].resume = 1;
    same[1] = same[0];
    same[1].ckpt = bad;   /* rank 0 reads the file for everyone */
    run_team(same, 2, 0);
    assert_ok(same, 2);
    assert_ranks_agree(same, 2);
    ck_assert_int_eq(same[0].epochs_done, 4);
    ck_assert_msg(memcmp(same[0].w, full[0].w, full[0].nw * sizeof(float)) == 0,
                  "resuming on the same ranks did not continue bit for bit");
    ck_assert_double_eq(same[0].test_acc, full[0].test_acc);
    /* on three ranks and in one process: it continues, the ranks agree, the task is learnt */
    more[0] = same[0];
    more[0].ckpt = ckpt;
    more[1] = more[2] = more[0];
    run_team(more, 3, 0);
    assert_ok(more, 3);
    assert_ranks_agree(more, 3);
    ck_assert_int_eq(more[0].epochs_done, 4);
    ck_assert_double_gt(more[0].test_acc, 0.9);
    job_defaults(&one);
    one = more[0];
    one.comm = 0;
    one.w = one.v = NULL;
    job_run(&one);
    ck_assert_msg(one.st == ASYMBP_OK, "%s", one.err);
    ck_assert_int_eq(one.epochs_done, 4);
    ck_assert_double_gt(one.test_acc, 0.9);
    jobs_free(full, 2);
    jobs_free(part, 2);
    jobs_free(same, 2);
    jobs_free(more, 3);
    jobs_free(&one, 1);
    test_tmpdir_remove(dir);
}
END_TEST

/* The step by hand: a one-layer net per rank, gradients written directly, one step.
 * hand_grad(r, i): rank r's gradient element i; a rank with no sample gets NaN (must not be read). */
typedef struct hand {
    team_t *team;
    int rank;
    const char *rule;
    asymbp_dist_mode_t mode;
    size_t local, global;
    float w0[21], w1[21];   /* 6 x 3 weights + 3 biases, before and after */
    asymbp_status_t st;
} hand_t;

static float hand_grad(int r, size_t i)
{
    static const float g[3][7] = { { 1, -2, 0.5f, 0, 3, -1, 2 }, { -1, -2, 0.25f, 1, -3, 1, 2 },
                                   { -4, 1, 1, 0, 0, -1, -2 } };
    return g[r][i % 7];
}

static void *hand_run(void *arg)
{
    hand_t *h = arg;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_comm_t *comm = NULL;
    asymbp_comm_vtable_t vt = team_vtable();
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    member_t me = { h->team, h->rank, 0, NULL };
    size_t off = 0;
    hp.lr = 1.0f;
    hp.momentum = 0.0f;
    h->st = asymbp_ctx_create(NULL, &ctx);
    if (h->st == ASYMBP_OK) h->st = asymbp_ctx_set_seed(ctx, 5);
    if (h->st == ASYMBP_OK) h->st = asymbp_comm_register(ctx, &vt, &me, NULL, &comm);
    if (h->st == ASYMBP_OK) h->st = asymbp_net_from_spec(ctx, "fc3", 6, 1, 1, 3, 0, &net);
    if (h->st == ASYMBP_OK) h->st = asymbp_net_bind(net, 1);
    if (h->st == ASYMBP_OK) h->st = asymbp_optimizer_create(net, h->rule, &hp, &opt);
    if (h->st == ASYMBP_OK) h->st = asymbp_optimizer_set_comm(opt, comm, h->mode);
    for (size_t p = 0; h->st == ASYMBP_OK && p < asymbp_net_param_count(net); p++) {
        asymbp_tensor_t *v = NULL, *g = NULL;
        h->st = asymbp_net_param_at(net, p, &v, &g);
        for (size_t i = 0; h->st == ASYMBP_OK && i < asymbp_tensor_numel(v); i++) {
            h->w0[off + i] = asymbp_tensor_data(v)[i];
            asymbp_tensor_data(g)[i] = h->local ? hand_grad(h->rank, off + i) : NAN;
        }
        off += asymbp_tensor_numel(v);
    }
    if (h->st == ASYMBP_OK) h->st = asymbp_optimizer_step_samples(opt, h->local, h->global);
    for (size_t p = 0, o = 0; h->st == ASYMBP_OK && p < asymbp_net_param_count(net); p++) {
        asymbp_tensor_t *v = NULL;
        h->st = asymbp_net_param_at(net, p, &v, NULL);
        memcpy(h->w1 + o, asymbp_tensor_data(v), asymbp_tensor_numel(v) * sizeof(float));
        o += asymbp_tensor_numel(v);
    }
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return NULL;
}

static void hand_team(hand_t *h, int R)
{
    team_t t;
    pthread_t th[3];
    memset(&t, 0, sizeof t);
    t.size = R;
    ck_assert_int_eq(pthread_barrier_init(&t.bar, NULL, (unsigned)R), 0);
    for (int r = 0; r < R; r++) {
        h[r].team = &t;
        h[r].rank = r;
        ck_assert_int_eq(pthread_create(&th[r], NULL, hand_run, &h[r]), 0);
    }
    for (int r = 0; r < R; r++) ck_assert_int_eq(pthread_join(th[r], NULL), 0);
    pthread_barrier_destroy(&t.bar);
    for (int r = 0; r < R; r++) ck_assert_int_eq(h[r].st, ASYMBP_OK);
}

/* Vote: the step is sign(sum of the ranks' signs), a tie gives 0, a rank without a sample
 * abstains.  Exact: the sample-weighted mean of the gradients (BM: its sign). */
START_TEST(test_step_by_hand)
{
    hand_t h[3];
    /* vote over 2 ranks: ties where the signs differ */
    memset(h, 0, sizeof h);
    h[0].rule = h[1].rule = "bm";
    h[0].mode = h[1].mode = ASYMBP_DIST_VOTE;
    h[0].local = h[1].local = 1;
    h[0].global = h[1].global = 2;
    hand_team(h, 2);
    for (size_t i = 0; i < 21; i++) {
        int v = (hand_grad(0, i) > 0) - (hand_grad(0, i) < 0) + (hand_grad(1, i) > 0) - (hand_grad(1, i) < 0);
        float expect = h[0].w0[i] - (float)((v > 0) - (v < 0));
        ck_assert_float_eq(h[0].w1[i], expect);
        ck_assert_float_eq(h[1].w1[i], expect);
    }
    /* vote over 3 ranks, the third without a sample (its NaN gradient is not read) */
    memset(h, 0, sizeof h);
    for (int r = 0; r < 3; r++) {
        h[r].rule = "bm";
        h[r].mode = ASYMBP_DIST_VOTE;
        h[r].local = r < 2;
        h[r].global = 2;
    }
    hand_team(h, 3);
    for (size_t i = 0; i < 21; i++) {
        int v = (hand_grad(0, i) > 0) - (hand_grad(0, i) < 0) + (hand_grad(1, i) > 0) - (hand_grad(1, i) < 0);
        ck_assert_float_eq(h[2].w1[i], h[2].w0[i] - (float)((v > 0) - (v < 0)));
    }
    /* exact with sgd over 3 ranks holding 2, 1 and 0 of 3 samples */
    memset(h, 0, sizeof h);
    for (int r = 0; r < 3; r++) {
        h[r].rule = "sgd";
        h[r].mode = ASYMBP_DIST_EXACT;
        h[r].local = (size_t)(2 - r);
        h[r].global = 3;
    }
    hand_team(h, 3);
    for (size_t i = 0; i < 21; i++) {
        double g = (2.0 * hand_grad(0, i) + hand_grad(1, i)) / 3.0;
        ck_assert_double_le(fabs((double)h[1].w1[i] - ((double)h[1].w0[i] - g)), 1e-5);
        ck_assert_float_eq(h[0].w1[i], h[1].w1[i]);
    }
}
END_TEST

/* Every allocation of registering a communicator and making an optimizer and a trainer use it,
 * failed in turn: ASYMBP_E_NOMEM, nothing leaked, and the next attempt (same objects) works. */
START_TEST(test_dist_oom)
{
    long k;
    for (k = 1;; k++) {
        test_alloc_t ta = { 0, 0, 0 };
        asymbp_allocator_t a = test_allocator(&ta);
        asymbp_ctx_t *ctx = NULL;
        asymbp_dataset_t *ds = NULL;
        asymbp_net_t *net = NULL;
        asymbp_optimizer_t *opt = NULL;
        asymbp_trainer_t *tr = NULL;
        asymbp_comm_t *comm = NULL;
        asymbp_comm_vtable_t vt = team_vtable();
        asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
        team_t t;
        member_t me;
        asymbp_status_t st;
        long before;
        memset(&t, 0, sizeof t);
        t.size = 1;
        ck_assert_int_eq(pthread_barrier_init(&t.bar, NULL, 1), 0);
        me.t = &t;
        me.rank = 0;
        me.ops = 0;
        me.freed = NULL;
        ck_assert_int_eq(asymbp_ctx_create(&a, &ctx), ASYMBP_OK);
        ds = blobs(ctx, 60, 3, 0);
        ck_assert_ptr_nonnull(ds);
        ck_assert_int_eq(asymbp_net_from_spec(ctx, "mlp:8", 6, 1, 1, 3, 1, &net), ASYMBP_OK);
        ck_assert_int_eq(asymbp_optimizer_create(net, "bm", NULL, &opt), ASYMBP_OK);
        tp.batch = 20;
        tp.epochs = 1;
        ck_assert_int_eq(asymbp_trainer_create(net, opt, ds, ds, &tp, &tr), ASYMBP_OK);
        before = ta.calls;
        ta.fail_at = before + k;
        st = asymbp_comm_register(ctx, &vt, &me, NULL, &comm);
        if (st == ASYMBP_OK) st = asymbp_trainer_set_comm(tr, comm, ASYMBP_DIST_VOTE);
        ta.fail_at = 0;
        if (st == ASYMBP_OK) ck_assert_int_eq(asymbp_trainer_run(tr), ASYMBP_OK);
        else ck_assert_int_eq(st, ASYMBP_E_NOMEM);
        asymbp_trainer_destroy(tr);
        asymbp_optimizer_destroy(opt);
        asymbp_net_destroy(net);
        asymbp_dataset_destroy(ds);
        asymbp_ctx_destroy(ctx);
        pthread_barrier_destroy(&t.bar);
        ck_assert_int_eq(ta.live, 0);
        if (st == ASYMBP_OK) break;
        ck_assert_int_lt(k, 100);
    }
    ck_assert_int_gt(k, 1);   /* some allocation was failed on the way */
}
END_TEST

Suite *asymbp_test_dist_suite(void);
Suite *asymbp_test_dist_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rng_advance);
    tcase_add_test(tc, test_comm_registry);
    tcase_add_test(tc, test_vote_needs_a_sign_rule);
    tcase_add_test(tc, test_step_by_hand);
    tcase_add_test(tc, test_local_is_bit_identical);
    tcase_add_test(tc, test_exact_matches_one_process);
    tcase_add_test(tc, test_idle_ranks);
    tcase_add_test(tc, test_vote_learns);
    tcase_add_test(tc, test_feedback_agrees_across_ranks);
    tcase_add_test(tc, test_different_seeds_refused);
    tcase_add_test(tc, test_divergence_is_collective);
    tcase_add_test(tc, test_comm_failure);
    tcase_add_test(tc, test_checkpoint_resume);
    tcase_add_test(tc, test_dist_oom);
    suite_add_tcase(s, tc);
    return s;
}
