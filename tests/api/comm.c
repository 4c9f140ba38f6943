/* A user communicator from outside the library (one rank): the library calls one allreduce per
 * optimizer step with the documented payload, a run with it equals a run without it bit for bit,
 * and a user update rule is handed a vote only when it declares ASYMBP_UPDATE_ACCEPTS_VOTE. */
#include "api_test.h"

typedef struct counter {
    long f32_calls, int_calls, elems;
} counter_t;

static int one_rank(void *u) { (void)u; return 0; }
static int one_size(void *u) { (void)u; return 1; }
static asymbp_status_t sum_f32(void *u, float *buf, size_t n)
{
    counter_t *c = u;
    (void)buf;
    c->f32_calls++;
    c->elems += (long)n;
    return ASYMBP_OK;
}
static asymbp_status_t sum_int(void *u, void *buf, size_t n, asymbp_comm_int_t type)
{
    counter_t *c = u;
    (void)buf;
    (void)type;
    c->int_calls++;
    c->elems += (long)n;
    return ASYMBP_OK;
}
static asymbp_status_t bcast(void *u, void *buf, size_t bytes, int root) { (void)u; (void)buf; (void)bytes; (void)root; return ASYMBP_OK; }
static asymbp_status_t barrier(void *u) { (void)u; return ASYMBP_OK; }

static int votes_seen, ranks_seen;
static asymbp_status_t sign_step(void *user, void *state, const asymbp_update_args_t *a)
{
    size_t i;
    (void)user;
    (void)state;
    if (a->grad_is_vote) votes_seen++;
    ranks_seen = a->ranks;
    for (i = 0; i < a->n; i++) a->w[i] -= a->lr * (float)((a->g[i] > 0) - (a->g[i] < 0));
    return ASYMBP_OK;
}

/* Train 2 epochs of the synthetic set; comm may be NULL.  Writes every weight into w. */
static void run(asymbp_ctx_t *ctx, const asymbp_comm_t *comm, asymbp_dist_mode_t mode, const char *rule, float *w, size_t cap,
                asymbp_status_t want_comm)
{
    asymbp_dataset_t *ds = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    size_t i, off = 0;
    float x[120 * 4];
    int32_t y[120];
    OK(asymbp_ctx_set_seed(ctx, 9));
    api_blobs(x, y, 120, 4, 3, 5);
    OK(asymbp_dataset_create(ctx, 120, 4, 1, 1, 3, x, y, &ds));
    OK(asymbp_net_from_spec(ctx, "fc8,relu,fc3", 4, 1, 1, 3, 1, &net));
    hp.lr = 0.01f;
    OK(asymbp_optimizer_create(net, rule, &hp, &opt));
    tp.epochs = 2;
    tp.batch = 30;
    OK(asymbp_trainer_create(net, opt, ds, ds, &tp, &tr));
    if (comm) EXPECT(asymbp_trainer_set_comm(tr, comm, mode), want_comm);
    if (want_comm == ASYMBP_OK) OK(asymbp_trainer_run(tr));
    for (i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *t = NULL;
        OK(asymbp_net_param_at(net, i, &t, NULL));
        if (off + asymbp_tensor_numel(t) <= cap) memcpy(w + off, asymbp_tensor_data(t), asymbp_tensor_numel(t) * sizeof(float));
        off += asymbp_tensor_numel(t);
    }
    CHECK(off <= cap);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(ds);
}

int main(void)
{
    asymbp_ctx_t *ctx = NULL;
    asymbp_comm_t *comm = NULL;
    asymbp_comm_vtable_t vt = ASYMBP_COMM_VTABLE_INIT;
    asymbp_update_rule_vtable_t rv = ASYMBP_UPDATE_RULE_VTABLE_INIT;
    counter_t c = { 0, 0, 0 };
    float plain[256], with[256];
    memset(plain, 0, sizeof plain);
    memset(with, 0, sizeof with);
    OK(asymbp_ctx_create(NULL, &ctx));
    api_ctx = ctx;
    /* a plugin compiled without the optional member */
    vt.struct_size = (uint32_t)ASYMBP_COMM_VTABLE_MIN_SIZE;
    vt.name = "counter";
    vt.rank = one_rank;
    vt.size = one_size;
    vt.allreduce_sum_f32 = sum_f32;
    vt.allreduce_sum_int = sum_int;
    vt.broadcast = bcast;
    vt.barrier = barrier;
    OK(asymbp_comm_register(ctx, &vt, &c, NULL, &comm));
    CHECK(asymbp_comm_size(comm) == 1 && !strcmp(asymbp_comm_name(comm), "counter"));

    /* exact: the same bits as no communicator, one float allreduce per step of P + 1 elements */
    run(ctx, NULL, ASYMBP_DIST_EXACT, "bm", plain, 256, ASYMBP_OK);
    run(ctx, comm, ASYMBP_DIST_EXACT, "bm", with, 256, ASYMBP_OK);
    CHECK(memcmp(plain, with, sizeof plain) == 0);
    CHECK(c.f32_calls == 2 * 4 && c.int_calls == 0);   /* 120 samples in batches of 30, 2 epochs */

    /* a user rule without the flag is refused a vote; with it, it is handed one */
    rv.name = "sign";
    rv.step = sign_step;
    OK(asymbp_update_rule_register(ctx, &rv, NULL, NULL, NULL));
    run(ctx, comm, ASYMBP_DIST_VOTE, "sign", with, 256, ASYMBP_E_UNSUPPORTED);
    rv.name = "sign-vote";
    rv.flags = ASYMBP_UPDATE_ACCEPTS_VOTE;
    OK(asymbp_update_rule_register(ctx, &rv, NULL, NULL, NULL));
    c.f32_calls = c.int_calls = 0;
    run(ctx, comm, ASYMBP_DIST_VOTE, "sign-vote", with, 256, ASYMBP_OK);
    CHECK(votes_seen > 0 && ranks_seen == 1);
    CHECK(c.int_calls == 8 && c.f32_calls == 0);
    rv.name = "odd-flags";
    rv.flags = 0x80u;
    EXPECT(asymbp_update_rule_register(ctx, &rv, NULL, NULL, NULL), ASYMBP_E_UNSUPPORTED);
    asymbp_ctx_destroy(ctx);
    return api_done("comm");
}
