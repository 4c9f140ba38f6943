/* asymbp eval, info and gradcheck. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static int print_json(sbuf_t *b)
{
    if (b->failed) return cli_error("out of memory writing the result");
    if (fputs(b->p, stdout) == EOF || fflush(stdout) != 0) return cli_error("cannot write to standard output");
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    settings_t s;
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL;
    asymbp_scaler_t *scaler = NULL;
    asymbp_net_t *net = NULL;
    asymbp_status_t st;
    const char *model = NULL;
    float loss = 0.0f, acc = 0.0f;
    int rc, st2, n_pos = 0;
    sbuf_t b = { 0 };
    settings_default(&s);
    rc = opts_parse(CMD_EVAL, argc, argv, &s, &model, 1, &n_pos);
    if (rc != 0) return rc < 0 ? 0 : rc;
    if (!model) return cli_usage("eval: no MODEL given");
    rc = 1;
    if (!(ctx = cli_ctx())) goto out;
    /* a model saved with its standardisation is evaluated with it; an older one with the
     * statistics of the data set's training part, as train computed them */
    st = asymbp_model_load_with_scaler(ctx, model, &net, &scaler);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, model);
        goto out;
    }
    if ((st2 = load_data(ctx, &s, &train, &test, NULL, NULL)) != 0) {
        rc = st2;   /* 2 for a usage error */
        goto out;
    }
    {
        /* asymbp_net_evaluate trusts the caller on sizes: a mismatch would read past the data */
        int64_t in[3] = { 0, 0, 0 }, c = 0, h = 0, w = 0;
        size_t k = (size_t)asymbp_net_classes(net);
        if (asymbp_net_input_shape(net, in) != ASYMBP_OK || asymbp_dataset_shape(test, &c, &h, &w) != ASYMBP_OK ||
            in[0] != c || in[1] != h || in[2] != w) {
            cli_error("eval: %s expects samples of %lldx%lldx%lld, the data set %s has %lldx%lldx%lld", model, (long long)in[0],
                      (long long)in[1], (long long)in[2], s.data, (long long)c, (long long)h, (long long)w);
            goto out;
        }
        if (asymbp_dataset_classes(test) > k) {
            cli_error("eval: %s has %zu classes, the data set %s has %zu", model, k, s.data, asymbp_dataset_classes(test));
            goto out;
        }
    }
    st = scaler ? asymbp_scaler_apply(scaler, test) : asymbp_dataset_standardize(train, test, ASYMBP_SCALER_PER_CHANNEL, NULL);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, scaler ? "standardising the test set with the model's statistics" : "standardising the data");
        goto out;
    }
    st = asymbp_net_bind(net, (size_t)s.batch);
    if (st == ASYMBP_OK)
        st = asymbp_net_evaluate(net, asymbp_dataset_features(test), asymbp_dataset_labels(test), asymbp_dataset_count(test),
                                 &loss, &acc);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "evaluating");
        goto out;
    }
    sb_puts(&b, "{\"model\":");
    sb_json_str(&b, model);
    sb_puts(&b, ",\"data\":");
    sb_json_str(&b, s.data);
    sb_printf(&b, ",\"samples\":%zu,\"test_loss\":", asymbp_dataset_count(test));
    sb_json_num(&b, loss);
    sb_puts(&b, ",\"test_accuracy\":");
    sb_json_num(&b, acc);
    sb_puts(&b, ",\"test_error\":");
    sb_json_num(&b, 1.0 - acc);
    sb_puts(&b, "}\n");
    rc = print_json(&b);
out:
    sb_free(&b);
    asymbp_net_destroy(net);
    asymbp_scaler_destroy(scaler);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_ctx_destroy(ctx);
    settings_free(&s);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    asymbp_ctx_t *ctx;
    asymbp_net_t *net = NULL;
    asymbp_status_t st;
    int64_t in[3];
    size_t i;
    sbuf_t b = { 0 };
    int rc;
    if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: asymbp info MODEL\nDescribes a model or checkpoint file: input shape, layers, parameters, feedback.\n");
        return 0;
    }
    if (argc != 1 || argv[0][0] == '-') return cli_usage("info: give exactly one MODEL file");
    if (!(ctx = cli_ctx())) return 1;
    st = asymbp_model_load(ctx, argv[0], &net);
    if (st != ASYMBP_OK) {
        rc = cli_fail(ctx, st, argv[0]);
        asymbp_ctx_destroy(ctx);
        return rc;
    }
    if (asymbp_net_input_shape(net, in) != ASYMBP_OK) in[0] = in[1] = in[2] = 0;
    sb_printf(&b, "model      %s\nnet        %s\ninput      %lldx%lldx%lld\nclasses    %lld\nparameters %zu floats\nlayers:\n",
              argv[0], asymbp_net_spec(net), (long long)in[0], (long long)in[1], (long long)in[2],
              (long long)asymbp_net_classes(net), asymbp_net_weight_count(net));
    for (i = 0; i < asymbp_net_layer_count(net); i++) {
        int64_t o[3] = { 0, 0, 0 };
        const char *fb = asymbp_net_get_layer_feedback(net, (int)i);
        if (asymbp_net_layer_output_shape(net, i, o) != ASYMBP_OK) o[0] = o[1] = o[2] = 0;
        sb_printf(&b, "  %2zu %-14s -> %lldx%lldx%lld%s%s\n", i, asymbp_net_layer_name(net, i), (long long)o[0], (long long)o[1],
                  (long long)o[2], fb ? "   feedback " : "", fb ? fb : "");
    }
    sb_puts(&b, "{\"model\":");
    sb_json_str(&b, argv[0]);
    sb_puts(&b, ",\"net\":");
    sb_json_str(&b, asymbp_net_spec(net));
    sb_printf(&b, ",\"classes\":%lld,\"parameters\":%zu,\"layers\":%zu}\n", (long long)asymbp_net_classes(net),
              asymbp_net_weight_count(net), asymbp_net_layer_count(net));
    rc = print_json(&b);
    sb_free(&b);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return rc;
}

int cmd_gradcheck(int argc, char **argv)
{
    settings_t s;
    long long c = 0, h = 1, w = 1;
    int rc, i;
    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    asymbp_rng_t *rng = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    asymbp_status_t st;
    asymbp_gradcheck_params_t gp = ASYMBP_GRADCHECK_PARAMS_INIT;
    asymbp_gradcheck_result_t res = ASYMBP_GRADCHECK_RESULT_INIT;
    char *buf = NULL, tail;
    size_t len;
    size_t n, numel;
    settings_default(&s);
    rc = opts_parse(CMD_GRADCHECK, argc, argv, &s, NULL, 0, NULL);
    if (rc != 0) return rc < 0 ? 0 : rc;
    if (!s.net || !s.input || !s.classes) return cli_usage("gradcheck needs --net, --input and --classes");
    if (sscanf(s.input, "%lldx%lldx%lld%c", &c, &h, &w, &tail) == 3) {
    } else if (sscanf(s.input, "%lld%c", &c, &tail) == 1) {
        h = w = 1;
    } else {
        return cli_usage("gradcheck: --input '%s' is neither CxHxW nor N", s.input);
    }
    if (c < 1 || h < 1 || w < 1 || c > 1 << 24 || h > 1 << 24 || w > 1 << 24 || c * h * w > 1 << 24)
        return cli_usage("gradcheck: --input sizes must be >= 1 and hold at most 2^24 values");
    n = (size_t)s.gc_batch;
    numel = n * (size_t)(c * h * w);
    rc = 1;
    if (!(ctx = cli_ctx())) goto out;
    if (asymbp_ctx_set_seed(ctx, s.seed) != ASYMBP_OK) {
        cli_fail(ctx, asymbp_ctx_last_status(ctx), "--seed");
        goto out;
    }
    st = asymbp_net_from_spec(ctx, s.net, c, h, w, (int64_t)s.classes, s.bn, &net);
    if (st == ASYMBP_OK) st = asymbp_net_bind(net, n);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "--net");
        goto out;
    }
    x = malloc(sizeof *x * numel);
    y = malloc(sizeof *y * n);
    if (!x || !y) {
        cli_error("gradcheck: out of memory for the random batch");
        goto out;
    }
    st = asymbp_rng_create(ctx, s.seed, 99, &rng);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "gradcheck");
        goto out;
    }
    for (size_t k = 0; k < numel; k++) x[k] = asymbp_rng_normal(rng);
    for (i = 0; i < (int)n; i++) y[i] = (int32_t)asymbp_rng_below(rng, (uint32_t)s.classes);
    gp.seed = s.seed;
    res.capacity = asymbp_net_layer_count(net);
    res.layers = calloc(res.capacity ? res.capacity : 1, sizeof *res.layers);
    if (!res.layers) {
        cli_error("gradcheck: out of memory for the report");
        goto out;
    }
    st = asymbp_net_gradcheck_v2(net, x, y, n, &gp, &res);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "gradcheck");
        goto out;
    }
    len = asymbp_gradcheck_result_json(&res, NULL, 0);
    buf = malloc(len + 1);
    if (!buf) {
        cli_error("gradcheck: out of memory for the report");
        goto out;
    }
    asymbp_gradcheck_result_json(&res, buf, len + 1);
    if (printf("%s\n", buf) < 0 || fflush(stdout) != 0) {
        cli_error("cannot write to standard output");
        goto out;
    }
    rc = res.max_rel_error <= 1e-2 ? 0 : 3;
out:
    free(buf);
    free(res.layers);
    free(x);
    free(y);
    asymbp_rng_destroy(rng);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    settings_free(&s);
    return rc;
}
