/* Network specs: parsing ("paper-cnn", "mlp:H1,H2", layer lists) and the normalised text. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core_impl.h"
#include "layers/layers_impl.h"
#include "layers/net_impl.h"

typedef struct spec_op {
    int kind;             /* asymbp_layer_kind_t value (see asymbp__layer_t.kind) */
    int64_t n;            /* dense outputs, conv filters */
    int kh, kw, stride, pad, ceil_mode, bias;
    float f1, f2;         /* bn momentum / eps, dropout p */
    size_t pos, len;      /* where the token is in the spec (0-based), for messages */
} spec_op_t;

#define SPEC_MAX_OPS 4096

static asymbp_status_t syntax(asymbp_ctx_t *ctx, const char *spec, size_t tok, size_t at, const char *why)
{
    size_t tl = strcspn(spec + tok, ",");
    return asymbp__error(ctx, ASYMBP_E_FORMAT, "spec: position %zu (in token '%.*s' at %zu): %s", at + 1,
                         (int)(tl > 40 ? 40 : tl), spec + tok, tok + 1, why);
}

/* Unsigned integer in [lo, hi] at *p; advances *p.  -1 when no digits or out of range. */
static int read_int(const char **p, long lo, long hi, long *out)
{
    long v = 0;
    const char *s = *p;
    if (!isdigit((unsigned char)*s)) return -1;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > hi) return -1;
        s++;
    }
    if (v < lo) return -1;
    *p = s;
    *out = v;
    return 0;
}

static int read_float(const char **p, float *out)
{
    char *end;
    double v;
    if (!isdigit((unsigned char)**p) && **p != '.') return -1;
    errno = 0;
    v = strtod(*p, &end);
    if (end == *p || errno || !isfinite(v) || (end > *p + 1 && ((*p)[1] == 'x' || (*p)[1] == 'X'))) return -1;
    *p = end;
    *out = (float)v;
    return 0;
}

static int at_end(const char *p) { return *p == '\0' || *p == ','; }

/* One token of a layer list starting at spec + tok. */
static asymbp_status_t parse_token(asymbp_ctx_t *ctx, const char *spec, size_t tok, spec_op_t *op)
{
    const char *p = spec + tok, *q;
    long v;
    memset(op, 0, sizeof *op);
    op->pos = tok;
    op->len = strcspn(p, ",");
    op->bias = 1;
    op->stride = 1;
    op->ceil_mode = 1;
    if (op->len == 0) return syntax(ctx, spec, tok, tok, "empty layer token");
    if (!strncmp(p, "conv", 4)) {
        long kh, kw, oc;
        int seen_s = 0, seen_p = 0;
        op->kind = ASYMBP_LAYER_CONV2D;
        q = p + 4;
        if (read_int(&q, 1, 4096, &kh)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected the kernel height (1..4096) after 'conv', as in conv5x5x32");
        if (*q != 'x') return syntax(ctx, spec, tok, (size_t)(q - spec), "expected 'x' after the kernel height (convKHxKWxOUT)");
        q++;
        if (read_int(&q, 1, 4096, &kw)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected the kernel width (1..4096)");
        if (*q != 'x') return syntax(ctx, spec, tok, (size_t)(q - spec), "expected 'x' after the kernel width (convKHxKWxOUT)");
        q++;
        if (read_int(&q, 1, 1L << 30, &oc)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected the number of output channels (>= 1)");
        op->kh = (int)kh; op->kw = (int)kw; op->n = oc;
        while (!at_end(q)) {
            const char *here = q;
            if (*q == 's' && !seen_s) {
                q++;
                if (read_int(&q, 1, 4096, &v)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected a stride (1..4096) after 's'");
                op->stride = (int)v; seen_s = 1;
            } else if (*q == 'p' && !seen_p) {
                q++;
                if (read_int(&q, 0, 4096, &v)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected a padding (0..4096) after 'p'");
                op->pad = (int)v; seen_p = 1;
            } else if (!strncmp(q, "nb", 2) && op->bias) {
                q += 2; op->bias = 0;
            } else {
                return syntax(ctx, spec, tok, (size_t)(here - spec), "unexpected character; conv options are s<stride>, p<pad>, nb (each once)");
            }
        }
        return ASYMBP_OK;
    }
    if (!strncmp(p, "fc", 2)) {
        op->kind = ASYMBP_LAYER_DENSE;
        q = p + 2;
        if (read_int(&q, 1, 1L << 30, &v)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected the number of outputs (>= 1) after 'fc'");
        op->n = v;
        if (!strncmp(q, "nb", 2)) { q += 2; op->bias = 0; }
        if (!at_end(q)) return syntax(ctx, spec, tok, (size_t)(q - spec), "unexpected character; fc takes only the option nb");
        return ASYMBP_OK;
    }
    if (!strncmp(p, "maxpool", 7) || !strncmp(p, "avgpool", 7)) {
        int seen_s = 0, seen_p = 0, seen_f = 0;
        op->kind = p[0] == 'm' ? ASYMBP_LAYER_MAXPOOL : ASYMBP_LAYER_AVGPOOL;
        q = p + 7;
        if (read_int(&q, 1, 4096, &v)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected the window size (1..4096), as in maxpool3s2");
        op->kh = op->kw = (int)v;
        op->stride = (int)v;
        while (!at_end(q)) {
            const char *here = q;
            if (*q == 's' && !seen_s) {
                q++;
                if (read_int(&q, 1, 4096, &v)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected a stride (1..4096) after 's'");
                op->stride = (int)v; seen_s = 1;
            } else if (*q == 'p' && !seen_p) {
                q++;
                if (read_int(&q, 0, 4096, &v)) return syntax(ctx, spec, tok, (size_t)(q - spec), "expected a padding after 'p'");
                op->pad = (int)v; seen_p = 1;
            } else if (*q == 'f' && !seen_f) {
                q++; op->ceil_mode = 0; seen_f = 1;
            } else {
                return syntax(ctx, spec, tok, (size_t)(here - spec), "unexpected character; pool options are s<stride>, p<pad>, f (floor mode), each once");
            }
        }
        if (op->pad >= op->kh) return syntax(ctx, spec, tok, tok, "pool padding must be smaller than the window");
        return ASYMBP_OK;
    }
    if (!strncmp(p, "relu", 4)) {
        op->kind = ASYMBP_LAYER_RELU;
        if (!at_end(p + 4)) return syntax(ctx, spec, tok, tok + 4, "unexpected character after 'relu'");
        return ASYMBP_OK;
    }
    if (!strncmp(p, "flatten", 7)) {
        op->kind = ASYMBP_LAYER_FLATTEN;
        if (!at_end(p + 7)) return syntax(ctx, spec, tok, tok + 7, "unexpected character after 'flatten'");
        return ASYMBP_OK;
    }
    if (!strncmp(p, "dropout", 7)) {
        op->kind = ASYMBP_LAYER_DROPOUT;
        q = p + 7;
        if (read_float(&q, &op->f1) || !(op->f1 >= 0.0f && op->f1 < 1.0f))
            return syntax(ctx, spec, tok, (size_t)(q - spec), "expected a drop probability in [0, 1) after 'dropout', as in dropout0.5");
        if (!at_end(q)) return syntax(ctx, spec, tok, (size_t)(q - spec), "unexpected character after the drop probability");
        return ASYMBP_OK;
    }
    if (!strncmp(p, "bn", 2)) {
        int seen_m = 0, seen_e = 0;
        op->kind = ASYMBP_LAYER_BATCHNORM;
        op->f1 = ASYMBP__BN_MOMENTUM;
        op->f2 = ASYMBP__BN_EPS;
        q = p + 2;
        while (!at_end(q)) {
            const char *here = q;
            if (!strncmp(q, "eps", 3) && !seen_e) {
                q += 3;
                if (read_float(&q, &op->f2) || !(op->f2 > 0.0f))
                    return syntax(ctx, spec, tok, (size_t)(q - spec), "expected eps > 0 after 'eps'");
                seen_e = 1;
            } else if (*q == 'm' && !seen_m) {
                q++;
                if (read_float(&q, &op->f1) || !(op->f1 > 0.0f && op->f1 <= 1.0f))
                    return syntax(ctx, spec, tok, (size_t)(q - spec), "expected a momentum in (0, 1] after 'm'");
                seen_m = 1;
            } else {
                return syntax(ctx, spec, tok, (size_t)(here - spec), "unexpected character; bn options are m<momentum>, eps<eps>");
            }
        }
        return ASYMBP_OK;
    }
    return syntax(ctx, spec, tok, tok, "unknown layer (expected convKxKxN, fcN, relu, maxpoolK, avgpoolK, bn, flatten, dropoutP)");
}

static asymbp_status_t build(asymbp_ctx_t *ctx, const char *spec, spec_op_t *ops, size_t nops, int64_t c,
                             int64_t h, int64_t w, int64_t classes, int bn, size_t budget, asymbp_net_t **out)
{
    asymbp_net_t *net = NULL;
    asymbp_status_t st = asymbp_net_create(ctx, c, h, w, classes, &net);
    if (st != ASYMBP_OK) return st;
    net->param_budget = budget;
    for (size_t i = 0; i < nops; i++) {
        const spec_op_t *op = &ops[i];
        int last = i + 1 == nops;
        switch (op->kind) {
        case ASYMBP_LAYER_DENSE: st = asymbp_net_add_dense(net, op->n, op->bias); break;
        case ASYMBP_LAYER_CONV2D: st = asymbp_net_add_conv2d(net, op->n, op->kh, op->kw, op->stride, op->pad, op->bias); break;
        case ASYMBP_LAYER_MAXPOOL: st = asymbp_net_add_maxpool(net, op->kh, op->stride, op->pad, op->ceil_mode); break;
        case ASYMBP_LAYER_AVGPOOL: st = asymbp_net_add_avgpool(net, op->kh, op->stride, op->pad, op->ceil_mode); break;
        case ASYMBP_LAYER_RELU: st = asymbp_net_add_relu(net); break;
        case ASYMBP_LAYER_FLATTEN: st = asymbp_net_add_flatten(net); break;
        case ASYMBP_LAYER_BATCHNORM: st = asymbp_net_add_batchnorm(net, op->f1, op->f2); break;
        case ASYMBP_LAYER_DROPOUT: st = asymbp_net_add_dropout(net, op->f1); break;
        }
        if (st == ASYMBP_OK && bn && !last && (op->kind == ASYMBP_LAYER_CONV2D || op->kind == ASYMBP_LAYER_DENSE) &&
            ops[i + 1].kind != ASYMBP_LAYER_BATCHNORM)
            st = asymbp_net_add_batchnorm(net, ASYMBP__BN_MOMENTUM, ASYMBP__BN_EPS);
        if (st != ASYMBP_OK) {
            if (spec && op->len) asymbp__error_prefix(ctx, "spec: position %zu (token '%.*s')", op->pos + 1, (int)op->len, spec + op->pos);
            else asymbp__error_prefix(ctx, "spec: layer %zu", i + 1);
            asymbp_net_destroy(net);
            return st;
        }
    }
    *out = net;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_net_from_spec(asymbp_ctx_t *ctx, const char *spec, int64_t channels, int64_t height,
                                     int64_t width, int64_t classes, int bn, asymbp_net_t **out)
{
    return asymbp__net_from_spec_budget(ctx, spec, channels, height, width, classes, bn, 0, out);
}

asymbp_status_t asymbp__net_from_spec_budget(asymbp_ctx_t *ctx, const char *spec, int64_t channels, int64_t height,
                                             int64_t width, int64_t classes, int bn, size_t budget, asymbp_net_t **out)
{
    spec_op_t *ops;
    size_t nops = 0, cap, len;
    asymbp_status_t st = ASYMBP_OK;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_from_spec: out is NULL");
    *out = NULL;
    ASYMBP_CHECK_NULL(ctx, ctx, "ctx");
    ASYMBP_CHECK_NULL(ctx, spec, "spec");
    if (classes < 2 || classes > INT32_MAX)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "net_from_spec: classes is %lld, needs at least 2", (long long)classes);
    len = strlen(spec);
    if (len == 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "spec: position 1: the spec is empty");
    cap = 2;
    for (size_t i = 0; i < len; i++) cap += spec[i] == ',' ? 2 : 0;
    cap += 14;   /* presets, the appended classifier */
    if (cap > SPEC_MAX_OPS) return asymbp__error(ctx, ASYMBP_E_FORMAT, "spec: more than %d layers", SPEC_MAX_OPS / 2);
    ops = asymbp__calloc(ctx, cap, sizeof *ops);
    if (!ops) return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_from_spec: out of memory");
    if (!strcmp(spec, "paper-cnn")) {
        static const struct { asymbp_layer_kind_t k; int n; } pc[] = {
            { ASYMBP_LAYER_CONV2D, 32 }, { ASYMBP_LAYER_RELU, 0 }, { ASYMBP_LAYER_MAXPOOL, 0 },
            { ASYMBP_LAYER_CONV2D, 32 }, { ASYMBP_LAYER_RELU, 0 }, { ASYMBP_LAYER_AVGPOOL, 0 },
            { ASYMBP_LAYER_CONV2D, 64 }, { ASYMBP_LAYER_RELU, 0 }, { ASYMBP_LAYER_AVGPOOL, 0 },
            { ASYMBP_LAYER_DENSE, 64 }, { ASYMBP_LAYER_RELU, 0 } };
        for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
            spec_op_t *op = &ops[nops++];
            op->kind = pc[i].k;
            op->n = pc[i].n;
            op->bias = 1;
            op->ceil_mode = 1;
            if (op->kind == ASYMBP_LAYER_CONV2D) { op->kh = op->kw = 5; op->stride = 1; op->pad = 2; }
            else { op->kh = op->kw = 3; op->stride = 2; }
        }
    } else if (!strncmp(spec, "mlp", 3)) {
        const char *q = spec + 3;
        if (*q != ':') {
            st = asymbp__error(ctx, ASYMBP_E_FORMAT, "spec: position 4: expected ':' after 'mlp' (mlp:H1,H2,...)");
            goto done;
        }
        q++;
        for (;;) {
            long v;
            spec_op_t *op = &ops[nops];
            size_t at = (size_t)(q - spec);
            if (read_int(&q, 1, 1L << 30, &v)) {
                st = asymbp__error(ctx, ASYMBP_E_FORMAT, "spec: position %zu: expected a hidden layer size (>= 1) in mlp:H1,H2,...", at + 1);
                goto done;
            }
            op->kind = ASYMBP_LAYER_DENSE;
            op->n = v;
            op->bias = 1;
            op->pos = at;
            op->len = (size_t)(q - spec) - at;
            ops[++nops].kind = ASYMBP_LAYER_RELU;
            nops++;
            if (*q == '\0') break;
            if (*q != ',') {
                st = asymbp__error(ctx, ASYMBP_E_FORMAT, "spec: position %zu: expected ',' or the end after a hidden size", (size_t)(q - spec) + 1);
                goto done;
            }
            q++;
        }
    } else {
        size_t tok = 0;
        for (;;) {
            if ((st = parse_token(ctx, spec, tok, &ops[nops])) != ASYMBP_OK) goto done;
            nops++;
            tok += ops[nops - 1].len;
            if (spec[tok] == '\0') break;
            tok++;   /* the comma */
        }
    }
    /* the classifier */
    if (!(ops[nops - 1].kind == ASYMBP_LAYER_DENSE && ops[nops - 1].n == classes)) {
        spec_op_t *op = &ops[nops++];
        memset(op, 0, sizeof *op);
        op->kind = ASYMBP_LAYER_DENSE;
        op->n = classes;
        op->bias = 1;
    }
    st = build(ctx, spec, ops, nops, channels, height, width, classes, bn, budget, out);
done:
    asymbp__free(ctx, ops);
    return st;
}

/* Shortest of %g / %.9g that reads back as the same float. */
static void fmt_float(char *buf, size_t cap, float v)
{
    snprintf(buf, cap, "%g", (double)v);
    if ((float)strtod(buf, NULL) != v) snprintf(buf, cap, "%.9g", (double)v);
}

static size_t layer_token(const asymbp__layer_t *L, char *b, size_t cap)
{
    char f[40];
    int n = 0;
    switch (L->kind) {
    case ASYMBP_LAYER_DENSE:
        n = snprintf(b, cap, "fc%lld%s", (long long)L->out_c, L->has_bias ? "" : "nb");
        break;
    case ASYMBP_LAYER_CONV2D:
        n = snprintf(b, cap, "conv%dx%dx%lld", L->kh, L->kw, (long long)L->out_c);
        if (L->stride != 1) n += snprintf(b + n, cap - (size_t)n, "s%d", L->stride);
        if (L->pad) n += snprintf(b + n, cap - (size_t)n, "p%d", L->pad);
        if (!L->has_bias) n += snprintf(b + n, cap - (size_t)n, "nb");
        break;
    case ASYMBP_LAYER_MAXPOOL:
    case ASYMBP_LAYER_AVGPOOL:
        n = snprintf(b, cap, "%spool%ds%d", L->kind == ASYMBP_LAYER_MAXPOOL ? "max" : "avg", L->kh, L->stride);
        if (L->pad) n += snprintf(b + n, cap - (size_t)n, "p%d", L->pad);
        if (!L->ceil_mode) n += snprintf(b + n, cap - (size_t)n, "f");
        break;
    case ASYMBP_LAYER_RELU: n = snprintf(b, cap, "relu"); break;
    case ASYMBP_LAYER_FLATTEN: n = snprintf(b, cap, "flatten"); break;
    case ASYMBP_LAYER_BATCHNORM:
        n = snprintf(b, cap, "bn");
        if (L->momentum != ASYMBP__BN_MOMENTUM) { fmt_float(f, sizeof f, L->momentum); n += snprintf(b + n, cap - (size_t)n, "m%s", f); }
        if (L->eps != ASYMBP__BN_EPS) { fmt_float(f, sizeof f, L->eps); n += snprintf(b + n, cap - (size_t)n, "eps%s", f); }
        break;
    case ASYMBP_LAYER_DROPOUT:
        fmt_float(f, sizeof f, L->p);
        n = snprintf(b, cap, "dropout%s", f);
        break;
    }
    return n > 0 ? (size_t)n : 0;
}

const char *asymbp_net_spec(asymbp_net_t *net)
{
    size_t total = 1;
    char tok[160];
    if (!net) return "";
    if (net->spec) return net->spec;
    for (size_t i = 0; i < net->n_layers; i++) total += layer_token(net->layers[i], tok, sizeof tok) + 1;
    net->spec = asymbp__alloc(net->ctx, total);
    if (!net->spec) return "";
    net->spec[0] = '\0';
    for (size_t i = 0, at = 0; i < net->n_layers; i++) {
        size_t n = layer_token(net->layers[i], tok, sizeof tok);
        if (i) net->spec[at++] = ',';
        memcpy(net->spec + at, tok, n + 1);
        at += n;
    }
    return net->spec;
}
