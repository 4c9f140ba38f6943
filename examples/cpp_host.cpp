/* cpp_host.cpp - asymbp embedded in a C++ program: every handle is a std::unique_ptr whose
 * deleter is the library's destroy function, and a failed call throws asymbp::error, which
 * carries the status code and the context's last error message.
 *
 * It trains a small MLP with sign-concordant feedback (BRSF), batch normalisation and Batch
 * Manhattan updates on the bundled wine data, collects the per-epoch test accuracy through a
 * C callback (a captureless lambda), then shows a misuse reported as an exception.  Exits
 * non-zero when the net learns less than 90 % test accuracy or the misuse is not reported.
 *
 *   c++ -std=c++11 cpp_host.cpp $(pkg-config --cflags --libs asymbp) -o cpp_host
 *   ./cpp_host [DATA_ROOT]      (DATA_ROOT: the folder holding wine/; default "data") */
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include "asymbp/asymbp.h"

namespace asymbp {

/* A failed asymbp call: the status code, and a message naming the call and the library's detail. */
class error : public std::runtime_error {
public:
    error(asymbp_status_t status, const std::string &message) : std::runtime_error(message), status_(status) {}
    asymbp_status_t status() const noexcept { return status_; }

private:
    asymbp_status_t status_;
};

/* Owning handles: the deleter is the library's destroy function (each accepts NULL). */
template <typename T, void (*Destroy)(T *)>
struct deleter {
    void operator()(T *p) const noexcept { Destroy(p); }
};
typedef std::unique_ptr<asymbp_ctx_t, deleter<asymbp_ctx_t, asymbp_ctx_destroy> > context;
typedef std::unique_ptr<asymbp_dataset_t, deleter<asymbp_dataset_t, asymbp_dataset_destroy> > dataset;
typedef std::unique_ptr<asymbp_net_t, deleter<asymbp_net_t, asymbp_net_destroy> > net;
typedef std::unique_ptr<asymbp_optimizer_t, deleter<asymbp_optimizer_t, asymbp_optimizer_destroy> > optimizer;
typedef std::unique_ptr<asymbp_trainer_t, deleter<asymbp_trainer_t, asymbp_trainer_destroy> > trainer;

/* Throws asymbp::error unless st is ASYMBP_OK.  The last error text belongs to the context and
 * is overwritten by its next call, so it is copied into the exception here. */
inline void check(asymbp_status_t st, const context &ctx, const char *call)
{
    if (st == ASYMBP_OK) return;
    const char *detail = ctx ? asymbp_ctx_last_error(ctx.get()) : "";
    throw error(st, std::string(call) + ": " + asymbp_status_name(st) + (detail && *detail ? ": " : "") +
                        (detail ? detail : ""));
}

inline context make_context(uint64_t seed)
{
    asymbp_ctx_t *raw = NULL;
    asymbp_status_t st = asymbp_ctx_create(NULL, &raw);
    context ctx(raw);
    check(st, ctx, "asymbp_ctx_create");
    check(asymbp_ctx_set_seed(ctx.get(), seed), ctx, "asymbp_ctx_set_seed");
    return ctx;
}

} // namespace asymbp

/* The C callback: user points at the host's vector; the callback must not throw into C code. */
static int record_epoch(void *user, const asymbp_epoch_metrics_t *m)
{
    static_cast<std::vector<double> *>(user)->push_back(m->test_accuracy);
    return 0;
}

static int run(const char *root)
{
    asymbp::context ctx = asymbp::make_context(2016);

    asymbp_dataset_t *train_raw = NULL, *test_raw = NULL;
    const char *roots[1] = {root};
    asymbp::check(asymbp_dataset_load_named(ctx.get(), "wine", roots, 1, &train_raw, &test_raw), ctx,
                  "asymbp_dataset_load_named(wine)");
    asymbp::dataset train(train_raw), test(test_raw);
    asymbp::check(asymbp_dataset_standardize(train.get(), test.get(), ASYMBP_SCALER_PER_CHANNEL, NULL), ctx,
                  "asymbp_dataset_standardize");
    int64_t c = 0, h = 0, w = 0;
    asymbp::check(asymbp_dataset_shape(train.get(), &c, &h, &w), ctx, "asymbp_dataset_shape");

    asymbp_net_t *net_raw = NULL;
    asymbp::check(asymbp_net_from_spec(ctx.get(), "mlp:32,32", c, h, w, (int64_t)asymbp_dataset_classes(train.get()),
                                       1, &net_raw),
                  ctx, "asymbp_net_from_spec");
    asymbp::net net(net_raw);
    asymbp::check(asymbp_net_set_feedback(net.get(), "brsf"), ctx, "asymbp_net_set_feedback(brsf)");

    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    hp.lr = 0.002f;
    asymbp_optimizer_t *opt_raw = NULL;
    asymbp::check(asymbp_optimizer_create(net.get(), "bm", &hp, &opt_raw), ctx, "asymbp_optimizer_create(bm)");
    asymbp::optimizer opt(opt_raw);

    std::vector<double> accuracy;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    tp.epochs = 30;
    tp.batch = 16;
    tp.on_epoch = record_epoch;
    tp.user = &accuracy;
    asymbp_trainer_t *tr_raw = NULL;
    asymbp::check(asymbp_trainer_create(net.get(), opt.get(), train.get(), test.get(), &tp, &tr_raw), ctx,
                  "asymbp_trainer_create");
    asymbp::trainer tr(tr_raw);
    asymbp::check(asymbp_trainer_run(tr.get()), ctx, "asymbp_trainer_run");

    std::printf("BRSF + BN + BM on wine, %s: test accuracy", asymbp_net_spec(net.get()));
    for (size_t e = 4; e < accuracy.size(); e += 5) std::printf(" %.3f", accuracy[e]);
    std::printf(" (every 5th of %u epochs)\n", (unsigned)accuracy.size());
    if (accuracy.size() != (size_t)tp.epochs || !(accuracy.back() >= 0.9)) {
        std::fprintf(stderr, "cpp_host: the net did not learn (%u epochs recorded)\n", (unsigned)accuracy.size());
        return 1;
    }

    /* A misuse becomes an exception carrying the status and the library's message. */
    try {
        asymbp::check(asymbp_net_set_feedback(net.get(), "no-such-policy"), ctx, "asymbp_net_set_feedback");
        std::fprintf(stderr, "cpp_host: an unknown feedback policy was accepted\n");
        return 1;
    } catch (const asymbp::error &e) {
        std::printf("caught asymbp::error (status %d): %s\n", (int)e.status(), e.what());
        if (e.status() == ASYMBP_OK || std::string(e.what()).find("no-such-policy") == std::string::npos) {
            std::fprintf(stderr, "cpp_host: the exception does not name the bad policy\n");
            return 1;
        }
    }
    return 0;
    /* Leaving the scope destroys the trainer, optimizer, net, data sets and context, in that
     * order (the reverse of their creation), which is the order the library requires. */
}

int main(int argc, char **argv)
{
    try {
        return run(argc > 1 ? argv[1] : "data");
    } catch (const asymbp::error &e) {
        std::fprintf(stderr, "cpp_host: %s\n", e.what());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_host: %s\n", e.what());
    }
    return 1;
}
