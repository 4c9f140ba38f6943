/* roofline - where a training step of a net goes, layer by layer (docs/performance.md, "Roofline").
 *
 *   roofline [--model paper-cnn|mlp|SPEC] [--bn] [--batch B] [--steps S]
 *
 * Binds the net on one thread, runs S training steps (forward, loss, backward with the net's own
 * buffers) and times every layer's forward and backward kernel on its own (median over the steps).
 * For each layer and pass it prints the counted FLOPs (2 M N K per product; conv and dense only),
 * the bytes a pass must move at least (every array it reads or writes once: input, output,
 * deltas, weights and their gradient), the achieved GFLOP/s, the arithmetic intensity and the
 * share of the step.  A benchmark program built against the library's internals (src/), not a
 * test: it prints and exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "layers/layers_impl.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *model = "paper-cnn", *spec;
    int bn = 0, steps = 20;
    size_t B = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bn")) bn = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: roofline [--model paper-cnn|mlp|SPEC] [--bn] [--batch B] [--steps S]\n");
            return 2;
        }
    }
    if (B < 1 || steps < 1) return 2;
    int is_mlp = !strcmp(model, "mlp");
    spec = is_mlp ? "mlp:512,512" : model;
    int64_t C = is_mlp ? 784 : 1, H = is_mlp ? 1 : 28, W = is_mlp ? 1 : 28;

    asymbp_ctx_t *ctx = NULL;
    asymbp_net_t *net = NULL;
    if (asymbp_ctx_create(NULL, &ctx) != ASYMBP_OK || asymbp_net_from_spec(ctx, spec, C, H, W, 10, bn, &net) != ASYMBP_OK ||
        asymbp_net_bind(net, B) != ASYMBP_OK) {
        fprintf(stderr, "roofline: %s\n", asymbp_ctx_last_error(ctx));
        return 1;
    }
    size_t in_size = (size_t)(C * H * W), nl = net->n_layers;
    float *x = malloc(B * in_size * sizeof(float));
    int32_t *y = malloc(B * sizeof(int32_t));
    double *tf = calloc(nl * (size_t)steps, sizeof(double)), *tb = calloc(nl * (size_t)steps, sizeof(double));
    if (!x || !y || !tf || !tb) return 1;
    uint64_t r = 88172645463325252ULL;
    for (size_t i = 0; i < B * in_size; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        x[i] = (float)(r >> 40) / 8388608.0f - 1.0f;
    }
    for (size_t i = 0; i < B; i++) y[i] = (int32_t)(i % 10);

    /* the lowest layer with parameters sends no delta down (as asymbp_net_backward does) */
    size_t lowest = nl;
    for (size_t i = 0; i < nl && lowest == nl; i++)
        if (net->layers[i]->kind == ASYMBP_LAYER_DENSE || net->layers[i]->kind == ASYMBP_LAYER_CONV2D ||
            net->layers[i]->kind == ASYMBP_LAYER_BATCHNORM) lowest = i;

    for (int s = -2; s < steps; s++) {   /* two warm-up steps */
        float loss;
        memcpy(net->input, x, B * in_size * sizeof(float));
        for (size_t i = 0; i < nl; i++) {
            double t0 = now_s();
            asymbp__layer_forward(net, net->layers[i], asymbp__layer_input(net, i), B, 1);
            if (s >= 0) tf[i * (size_t)steps + (size_t)s] = now_s() - t0;
        }
        net->have_fwd = 1;
        net->have_delta = 0;
        net->n_fwd = B;
        if (asymbp_net_loss(net, y, B, &loss) != ASYMBP_OK) {
            fprintf(stderr, "roofline: %s\n", asymbp_ctx_last_error(ctx));
            return 1;
        }
        for (size_t i = nl; i-- > 0;) {
            asymbp__layer_t *L = net->layers[i];
            float *dx = i == 0 ? NULL : net->layers[i - 1]->dout;
            double t0 = now_s();
            if (i <= lowest) dx = NULL;
            if (i >= lowest) asymbp__layer_backward(net, L, asymbp__layer_input(net, i), dx, B);
            if (s >= 0) tb[i * (size_t)steps + (size_t)s] = now_s() - t0;
        }
    }

    double total = 0.0, *mf = calloc(nl, sizeof(double)), *mb = calloc(nl, sizeof(double));
    for (size_t i = 0; i < nl; i++) {
        mf[i] = median(tf + i * (size_t)steps, steps);
        mb[i] = median(tb + i * (size_t)steps, steps);
        total += mf[i] + mb[i];
    }
    printf("# %s%s, batch %zu, 1 thread, GEMM kernels: %s; medians of %d steps; step %.2f ms of layer kernels "
           "(%.0f images/s without loss and update)\n\n", model, bn ? " + BN" : "", B, asymbp__gemm_isa_name(net->isa),
           steps, 1e3 * total, (double)B / total);
    printf("| layer | pass | MFLOP | MB moved (at least) | FLOP/byte | time ms | GFLOP/s | GB/s | share of step |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    double sum_flop = 0.0;
    for (size_t i = 0; i < nl; i++) {
        const asymbp__layer_t *L = net->layers[i];
        double in = (double)B * (double)L->in_size * 4, out = (double)B * (double)L->out_size * 4;
        double fwd_flop = 0, bwd_flop = 0, wbytes = 0;
        if (L->kind == ASYMBP_LAYER_CONV2D || L->kind == ASYMBP_LAYER_DENSE) {
            double prod = 2.0 * (double)B * (double)L->wl.numel *
                          (L->kind == ASYMBP_LAYER_CONV2D ? (double)(L->out_h * L->out_w) : 1.0);
            fwd_flop = prod;
            bwd_flop = prod * (i > lowest ? 2.0 : 1.0);   /* weight gradient (+ input gradient) */
            wbytes = (double)L->wl.numel * 4;
        }
        if (L->kind == ASYMBP_LAYER_FLATTEN) continue;
        /* forward: read input and weights, write output; backward: read dout, input (and output
         * for ReLU/pool indices), weights, write dW and dx */
        double fb = in + out + wbytes, bb = out + in + 2 * wbytes + (i > lowest ? in : 0.0);
        const char *pass[2] = { "forward", "backward" };
        double fl[2] = { fwd_flop, bwd_flop }, by[2] = { fb, bb }, tm[2] = { mf[i], mb[i] };
        for (int p = 0; p < 2; p++) {
            if (p == 1 && i < lowest) continue;
            sum_flop += fl[p];
            printf("| %s | %s | %.1f | %.2f | %.1f | %.3f | %.1f | %.1f | %.1f %% |\n", L->name, pass[p], fl[p] / 1e6,
                   by[p] / 1e6, fl[p] / by[p], 1e3 * tm[p], tm[p] > 0 ? fl[p] / tm[p] / 1e9 : 0.0,
                   tm[p] > 0 ? by[p] / tm[p] / 1e9 : 0.0, 100.0 * tm[p] / total);
        }
    }
    printf("| all | | %.1f | | | %.3f | %.1f | | 100 %% |\n", sum_flop / 1e6, 1e3 * total, sum_flop / total / 1e9);
    free(mf); free(mb); free(tf); free(tb); free(x); free(y);
    asymbp_net_destroy(net);
    asymbp_ctx_destroy(ctx);
    return 0;
}
