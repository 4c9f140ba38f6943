/* asymbp train --dist: data-parallel training over the ranks of a communicator.
 *
 * "local" is the library's one-process communicator.  "mpi" is the module libasymbp-mpi, which
 * this tool loads with dlopen only when asked, so the tool itself never links MPI and works
 * without it (docs/distributed.md says where it looks).  Every rank runs the same command; rank 0
 * writes the run's files and prints the summary, the others are quiet and name their rank in
 * their messages.  A rank that fails ends the whole job (MPI_Abort), so no rank waits for it. */
#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "asymbp/mpi.h"

#define MPI_MODULE "libasymbp-mpi.so.0"

static struct {
    int active;                       /* --dist given */
    const char *kind;                 /* "local" or "mpi" */
    int rank, ranks;
    void *dl;                         /* the MPI module */
    asymbp_mpi_t *mpi;                /* until registered (the context then owns it) */
    const asymbp_comm_t *comm;
    asymbp_optimizer_t *opt;
    asymbp_dist_mode_t mode;
    /* the module's functions */
    asymbp_status_t (*init)(int *, char ***);
    asymbp_status_t (*finalize)(void);
    void (*abort_job)(int);
    asymbp_status_t (*create)(const void *, asymbp_mpi_t **);
    void (*free_mpi)(void *);
    const asymbp_comm_vtable_t *(*vtable)(void);
} dist = { 0, NULL, 0, 1, NULL, NULL, NULL, NULL, ASYMBP_DIST_EXACT, NULL, NULL, NULL, NULL, NULL, NULL };

static char prog_name[64];
static char term_msg[160];

int dist_rank(void) { return dist.rank; }
int dist_ranks(void) { return dist.ranks; }

/* The launcher (mpirun, srun) ends every rank with SIGTERM when one has failed: say so. */
static void on_term(int sig)
{
    ssize_t k = write(2, term_msg, strlen(term_msg));
    (void)k;
    _exit(128 + sig);
}

/* Started as one of several MPI ranks (mpirun, srun with PMI)? */
static int launched_ranks(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 0;
}

static void *open_module(char *why, size_t cap)
{
    const char *env = getenv("ASYMBP_MPI_LIB");
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n;
    void *h;
    if (env && *env) {
        h = dlopen(env, RTLD_NOW | RTLD_GLOBAL);
        if (!h) snprintf(why, cap, "%s", dlerror());
        return h;
    }
    /* next to the executable's folder (a build tree: bin/../lib; an install: BINDIR/../lib) */
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/../lib/%s", self, MPI_MODULE);
            if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) != NULL) return h;
        }
    }
    h = dlopen(MPI_MODULE, RTLD_NOW | RTLD_GLOBAL);
    if (!h) snprintf(why, cap, "%s", dlerror());
    return h;
}

static int load_symbols(void)
{
    /* a function pointer cannot be assigned from dlsym's void * in ISO C: copy its bytes */
#define SYM(field, name) \
    do { \
        void *p = dlsym(dist.dl, name); \
        if (!p) return cli_error("--dist mpi: the MPI module lacks %s (an older or foreign %s?)", name, MPI_MODULE); \
        memcpy(&dist.field, &p, sizeof p); \
    } while (0)
    SYM(init, "asymbp_mpi_init");
    SYM(finalize, "asymbp_mpi_finalize");
    SYM(abort_job, "asymbp_mpi_abort");
    SYM(create, "asymbp_mpi_create");
    SYM(free_mpi, "asymbp_mpi_free");
    SYM(vtable, "asymbp_mpi_vtable");
#undef SYM
    return 0;
}

int dist_start(settings_t *s)
{
    int launched = launched_ranks();
    if (asymbp_dist_mode_parse(s->bm_mode, &dist.mode) != ASYMBP_OK)
        return cli_usage("--bm-mode: '%s' is neither exact nor vote", s->bm_mode);
    if (!s->dist) {
        if (launched)
            return cli_usage("started as one of %d MPI ranks without --dist: every rank would train the whole run on its "
                             "own (and write the same files); add --dist mpi", launched);
        return 0;
    }
    if (strcmp(s->dist, "local") != 0 && strcmp(s->dist, "mpi") != 0)
        return cli_usage("--dist: '%s' is neither local nor mpi", s->dist);
    dist.active = 1;
    dist.kind = s->dist;
    if (!strcmp(s->dist, "local")) {
        if (launched)
            return cli_usage("--dist local runs one process, but this is one of %d MPI ranks: use --dist mpi", launched);
        return 0;
    }
    {
        char why[512] = "";
        asymbp_status_t st;
        const asymbp_comm_vtable_t *vt;
        dist.dl = open_module(why, sizeof why);
        if (!dist.dl)
            return cli_error("--dist mpi: cannot load the MPI module %s (%s); build it with 'make MPI=1' (Open MPI: "
                             "'sh scripts/install-deps.sh mpi'), or give its path in ASYMBP_MPI_LIB", MPI_MODULE, why);
        if (load_symbols() != 0) return 1;
        if (dist.init(NULL, NULL) != ASYMBP_OK) return cli_error("--dist mpi: MPI could not start");
        st = dist.create(NULL, &dist.mpi);
        if (st != ASYMBP_OK) return cli_error("--dist mpi: no communicator over MPI_COMM_WORLD: %s", asymbp_strerror(st));
        vt = dist.vtable();
        dist.rank = vt->rank(dist.mpi);
        dist.ranks = vt->size(dist.mpi);
    }
    if (dist.ranks > 1) {
        snprintf(prog_name, sizeof prog_name, "asymbp[rank %d of %d]", dist.rank, dist.ranks);
        if (dist.rank != 0) {
            cli_prog = prog_name;
            s->quiet = 1;
        }
        snprintf(term_msg, sizeof term_msg, "%s: stopped by a signal: the launcher ends every rank when one has failed "
                 "(its message names it)\n", prog_name);
        signal(SIGTERM, on_term);
    }
    return 0;
}

int dist_attach(asymbp_ctx_t *ctx, asymbp_trainer_t *tr, asymbp_optimizer_t *opt, const settings_t *s)
{
    asymbp_comm_t *comm = NULL;
    asymbp_status_t st;
    if (!dist.active) return 0;
    if (asymbp_dist_mode_parse(s->bm_mode, &dist.mode) != ASYMBP_OK)
        return cli_usage("--bm-mode: '%s' is neither exact nor vote", s->bm_mode);
    if (dist.mpi) {
        st = asymbp_comm_register(ctx, dist.vtable(), dist.mpi, dist.free_mpi, &comm);
        if (st != ASYMBP_OK) return cli_fail(ctx, st, "--dist mpi");
        dist.mpi = NULL;   /* the context frees it */
    } else {
        st = asymbp_comm_find(ctx, "local", &comm);
        if (st != ASYMBP_OK) return cli_fail(ctx, st, "--dist local");
    }
    st = asymbp_trainer_set_comm(tr, comm, dist.mode);
    if (st == ASYMBP_E_UNSUPPORTED) {
        cli_error("--bm-mode %s: %s", s->bm_mode, asymbp_ctx_last_error(ctx));
        return 2;
    }
    if (st != ASYMBP_OK) return cli_fail(ctx, st, "--dist");
    dist.comm = comm;
    dist.opt = opt;
    return 0;
}

/* FNV-1a over the parameters' 32-bit words. */
static uint64_t weights_fnv(asymbp_net_t *net)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < asymbp_net_param_count(net); i++) {
        asymbp_tensor_t *t = NULL;
        const float *v;
        if (asymbp_net_param_at(net, i, &t, NULL) != ASYMBP_OK) continue;
        v = asymbp_tensor_data(t);
        for (size_t k = 0; k < asymbp_tensor_numel(t); k++) {
            uint32_t w;
            memcpy(&w, &v[k], sizeof w);
            h = (h ^ w) * 0x100000001b3ULL;
        }
    }
    return h;
}

int dist_json(sbuf_t *b, asymbp_ctx_t *ctx, asymbp_net_t *net)
{
    asymbp_comm_stats_t stats = ASYMBP_COMM_STATS_INIT;
    int32_t *all;
    uint64_t h;
    int r;
    if (!dist.active || !dist.comm) return 0;
    /* the members go inside the object b ends with */
    if (b->len < 2 || strcmp(b->p + b->len - 2, "}\n") != 0) return 0;
    b->len -= 2;
    b->p[b->len] = '\0';
    /* every rank's fingerprint of its weights, gathered by a sum in which each rank fills its own
     * two slots (so one can see that every rank ends with the same model) */
    all = calloc(2 * (size_t)dist.ranks, sizeof *all);
    if (!all) return cli_error("out of memory");
    h = weights_fnv(net);
    all[2 * dist.rank] = (int32_t)(uint32_t)(h >> 32);
    all[2 * dist.rank + 1] = (int32_t)(uint32_t)h;
    if (asymbp_comm_allreduce_sum_int(ctx, dist.comm, all, 2 * (size_t)dist.ranks, ASYMBP_COMM_INT32) != ASYMBP_OK) {
        free(all);
        return cli_fail(ctx, asymbp_ctx_last_status(ctx), "--dist: gathering the ranks' weights");
    }
    if (asymbp_comm_get_stats(dist.comm, &stats) != ASYMBP_OK) stats.allreduce_bytes = stats.broadcast_bytes = 0;
    sb_puts(b, ",\"dist\":");
    sb_json_str(b, dist.kind);
    sb_printf(b, ",\"ranks\":%d,\"bm_mode\":\"%s\",\"traffic_bytes_per_step\":%zu,\"traffic_bytes\":%llu,\"rank_weights\":[",
              dist.ranks, asymbp_dist_mode_name(dist.mode), asymbp_optimizer_comm_bytes(dist.opt),
              (unsigned long long)(stats.allreduce_bytes + stats.broadcast_bytes));
    for (r = 0; r < dist.ranks; r++)
        sb_printf(b, "%s\"%08x%08x\"", r ? "," : "", (unsigned)(uint32_t)all[2 * r], (unsigned)(uint32_t)all[2 * r + 1]);
    sb_puts(b, "]}\n");
    free(all);
    return 0;
}

int dist_end(int rc)
{
    if (dist.mpi && dist.free_mpi) dist.free_mpi(dist.mpi);   /* never registered */
    dist.mpi = NULL;
    if (dist.dl && dist.ranks > 1 && rc != 0) {
        /* the other ranks may be waiting for this one in a collective: end them all now */
        fflush(stdout);
        fflush(stderr);
        dist.abort_job(rc);
    }
    if (dist.dl && dist.finalize() != ASYMBP_OK && rc == 0) rc = cli_error("--dist mpi: MPI did not end cleanly");
    /* the module stays loaded: Open MPI keeps handlers and threads of its own until exit */
    return rc;
}

/* For asymbp sweep --dist mpi: wait until every rank is here (MPI_Barrier through the module).
 * 0, or 1 after a message. */
int dist_barrier(void)
{
    if (!dist.active || dist.ranks < 2 || !dist.mpi) return 0;
    if (dist.vtable()->barrier(dist.mpi) != ASYMBP_OK) return cli_error("--dist mpi: the ranks could not meet (barrier)");
    return 0;
}

/* For asymbp sweep --dist mpi: a sum of 32-bit integers over the ranks, and a broadcast of bytes
 * from rank `root` (the module's collectives).  0, or 1 after a message. */
int dist_sum_int32(int32_t *buf, size_t n)
{
    if (!dist.active || dist.ranks < 2 || !dist.mpi) return 0;
    if (dist.vtable()->allreduce_sum_int(dist.mpi, buf, n, ASYMBP_COMM_INT32) != ASYMBP_OK)
        return cli_error("--dist mpi: the ranks could not exchange their state (allreduce)");
    return 0;
}

int dist_broadcast(void *buf, size_t bytes, int root)
{
    if (!dist.active || dist.ranks < 2 || !dist.mpi || bytes == 0) return 0;
    if (dist.vtable()->broadcast(dist.mpi, buf, bytes, root) != ASYMBP_OK)
        return cli_error("--dist mpi: the ranks could not exchange rows (broadcast from rank %d)", root);
    return 0;
}
