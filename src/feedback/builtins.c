/* The built-in feedback policies (METHOD.md section 2), registered through the public vtable:
 * sym, usf, brsf, frsf, partial, rndf, signed-init; and the parser of their options. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "feedback/feedback_impl.h"

enum { P_SYM, P_USF, P_BRSF, P_FRSF, P_PARTIAL, P_RNDF, P_SIGNED_INIT, P_COUNT };
enum { MAG_NORMAL = 0, MAG_UNIFORM = 1, MAG_ONE = 2 };
enum { SCALE_NONE = 0, SCALE_XAVIER = 1, SCALE_HE = 2, SCALE_VALUE = 3 };

/* Which options each policy accepts. */
#define OPT_MAG 0x1u
#define OPT_SCALE 0x2u
#define OPT_P 0x4u
#define OPT_MASK 0x8u
#define OPT_M 0x10u
#define OPT_DIST 0x20u

typedef struct policy_desc {
    int id;
    const char *name;
    unsigned opts;
} policy_desc_t;

static policy_desc_t descs[P_COUNT] = {
    {P_SYM, "sym", 0},
    {P_USF, "usf", OPT_SCALE},
    {P_BRSF, "brsf", OPT_MAG | OPT_SCALE},
    {P_FRSF, "frsf", OPT_MAG | OPT_SCALE},
    {P_PARTIAL, "partial", OPT_MAG | OPT_SCALE | OPT_P | OPT_MASK | OPT_M},
    {P_RNDF, "rndf", OPT_SCALE | OPT_DIST},
    {P_SIGNED_INIT, "signed-init", OPT_MAG | OPT_SCALE},
};

/* Parsed options.  Plain data: it is also the instance's state block (saved byte for byte). */
typedef struct bi_state {
    uint32_t mag;          /* MAG_* */
    uint32_t scale_mode;   /* SCALE_* */
    float scale_value;     /* for SCALE_VALUE */
    float scale;           /* the resolved s */
    float p;               /* partial: probability of a concordant sign */
    uint32_t mask_redraw;  /* partial: S redrawn every step */
    uint32_t m_redraw;     /* partial: M redrawn every step */
    uint32_t dist_normal;  /* rndf: R normal instead of uniform */
} bi_state_t;

static asymbp_status_t bad(asymbp_ctx_t *ctx, const policy_desc_t *d, const char *options, const char *what,
                           const char *tok, size_t len)
{
    return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback '%s%s%s': %s '%.*s'", d->name, options[0] ? ":" : "",
                         options, what, (int)(len > 40 ? 40 : len), tok);
}

static int tok_is(const char *tok, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(tok, word, len) == 0;
}

/* Parse a number that fills the whole token; 0 on success. */
static int tok_number(const char *tok, size_t len, double *out)
{
    char tmp[48];
    char *end;
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, tok, len);
    tmp[len] = '\0';
    *out = strtod(tmp, &end);
    if (*end || end == tmp || !isfinite(*out)) return -1;
    return 0;
}

static asymbp_status_t parse_options(asymbp_ctx_t *ctx, const policy_desc_t *d, const char *options, bi_state_t *st)
{
    const char *p = options;
    unsigned seen = 0;
    memset(st, 0, sizeof *st);
    st->scale_mode = d->id == P_RNDF ? SCALE_XAVIER : SCALE_NONE;
    st->p = -1.0f;
    if (!*p) goto done;
    for (;;) {
        size_t len = strcspn(p, ":");
        const char *eq = memchr(p, '=', len);
        const char *key = p, *val = p;
        size_t klen = 0, vlen = len;
        unsigned opt = 0;
        if (len == 0) return bad(ctx, d, options, "empty option", p, 0);
        if (!d->opts) return bad(ctx, d, options, "takes no options, got", p, len);
        if (eq) {
            klen = (size_t)(eq - p);
            val = eq + 1;
            vlen = len - klen - 1;
            if (tok_is(key, klen, "mag")) opt = OPT_MAG;
            else if (tok_is(key, klen, "scale")) opt = OPT_SCALE;
            else if (tok_is(key, klen, "p")) opt = OPT_P;
            else if (tok_is(key, klen, "mask")) opt = OPT_MASK;
            else if (tok_is(key, klen, "m")) opt = OPT_M;
            else if (tok_is(key, klen, "dist")) opt = OPT_DIST;
            else return bad(ctx, d, options, "unknown option", key, klen);
        } else {
            double x;
            if (tok_is(p, len, "redraw") || tok_is(p, len, "fixed")) opt = OPT_MASK;
            else if (tok_number(p, len, &x) == 0) opt = OPT_P;
            else return bad(ctx, d, options, "unknown option", p, len);
        }
        if (!(d->opts & opt))
            return bad(ctx, d, options, "option not accepted by this policy:", p, len);
        if (seen & opt) return bad(ctx, d, options, "option given twice:", p, len);
        seen |= opt;
        switch (opt) {
        case OPT_MAG:
            if (tok_is(val, vlen, "normal")) st->mag = MAG_NORMAL;
            else if (tok_is(val, vlen, "uniform")) st->mag = MAG_UNIFORM;
            else if (tok_is(val, vlen, "one")) st->mag = MAG_ONE;
            else return bad(ctx, d, options, "mag must be normal, uniform or one, got", val, vlen);
            break;
        case OPT_SCALE: {
            double x;
            if (tok_is(val, vlen, "none")) st->scale_mode = SCALE_NONE;
            else if (tok_is(val, vlen, "xavier")) st->scale_mode = SCALE_XAVIER;
            else if (tok_is(val, vlen, "he")) st->scale_mode = SCALE_HE;
            else if (tok_number(val, vlen, &x) == 0 && x > 0 && x < 1e30) {
                st->scale_mode = SCALE_VALUE;
                st->scale_value = (float)x;
            } else {
                return bad(ctx, d, options, "scale must be none, xavier, he or a positive number, got", val, vlen);
            }
            break;
        }
        case OPT_P: {
            double x;
            if (tok_number(val, vlen, &x) != 0 || !(x >= 0.0 && x <= 1.0))
                return bad(ctx, d, options, "p must be a number in [0, 1], got", val, vlen);
            st->p = (float)x;
            break;
        }
        case OPT_MASK:
            if (tok_is(val, vlen, "fixed")) st->mask_redraw = 0;
            else if (tok_is(val, vlen, "redraw")) st->mask_redraw = 1;
            else return bad(ctx, d, options, "mask must be fixed or redraw, got", val, vlen);
            break;
        case OPT_M:
            if (tok_is(val, vlen, "fixed")) st->m_redraw = 0;
            else if (tok_is(val, vlen, "step")) st->m_redraw = 1;
            else return bad(ctx, d, options, "m must be fixed or step, got", val, vlen);
            break;
        case OPT_DIST:
            if (tok_is(val, vlen, "uniform")) st->dist_normal = 0;
            else if (tok_is(val, vlen, "normal")) st->dist_normal = 1;
            else return bad(ctx, d, options, "dist must be uniform or normal, got", val, vlen);
            break;
        default:
            break;
        }
        p += len;
        if (!*p) break;
        p++;
        if (!*p) return bad(ctx, d, options, "empty option at the end", p, 0);
    }
done:
    if (d->id == P_PARTIAL && st->p < 0.0f)
        return asymbp__error(ctx, ASYMBP_E_FORMAT,
                             "feedback 'partial%s%s': the probability p is missing (e.g. partial:0.5)",
                             options[0] ? ":" : "", options);
    return ASYMBP_OK;
}

asymbp_status_t asymbp__fb_builtin_check(asymbp_ctx_t *ctx, const asymbp__fb_entry_t *e, const char *options)
{
    bi_state_t st;
    return parse_options(ctx, (const policy_desc_t *)e->user, options, &st);
}

/* ---- Drawing ------------------------------------------------------------------------------ */

static float sgn(float w) { return (float)((w > 0.0f) - (w < 0.0f)); }

/* Uniform in (0, 1), never 0 or 1: magnitudes stay strictly positive so sign(V) = sign(W). */
static double open_uniform(asymbp_rng_t *rng)
{
    return ((double)(asymbp__rng_u32(rng) >> 8) + 0.5) * (1.0 / 16777216.0);
}

/* n magnitudes: |N(0,1)| (Box-Muller, both outputs used), U(0,1) or 1; all > 0. */
static void fill_mag(asymbp_rng_t *rng, uint32_t mag, float *restrict dst, size_t n)
{
    size_t i;
    if (mag == MAG_ONE) {
        for (i = 0; i < n; i++) dst[i] = 1.0f;
    } else if (mag == MAG_UNIFORM) {
        for (i = 0; i < n; i++) dst[i] = (float)open_uniform(rng);
    } else {
        for (i = 0; i < n; i += 2) {
            double r = sqrt(-2.0 * log(open_uniform(rng)));
            double t = 6.283185307179586 * open_uniform(rng);
            dst[i] = (float)fabs(r * cos(t));
            if (i + 1 < n) dst[i + 1] = (float)fabs(r * sin(t));
        }
    }
}

/* n values of S: +1 with probability p, else -1. */
static void fill_mask(asymbp_rng_t *rng, float p, float *restrict dst, size_t n)
{
    uint64_t thr = (uint64_t)((double)p * 4294967296.0);
    size_t i;
    for (i = 0; i < n; i++) dst[i] = (uint64_t)asymbp__rng_u32(rng) < thr ? 1.0f : -1.0f;
}

static float resolve_scale(const bi_state_t *st, const asymbp_feedback_args_t *a)
{
    switch (st->scale_mode) {
    case SCALE_XAVIER: return (float)sqrt(2.0 / (double)(a->fan_in + a->fan_out));
    case SCALE_HE: return (float)sqrt(2.0 / (double)a->fan_in);
    case SCALE_VALUE: return st->scale_value;
    default: return 1.0f;
    }
}

/* V = s sign(W) o X (X may be NULL: ones). */
static void write_signed(float *restrict V, const float *restrict W, const float *restrict X, float s, size_t n)
{
    size_t i;
    if (X) for (i = 0; i < n; i++) V[i] = s * X[i] * sgn(W[i]);
    else for (i = 0; i < n; i++) V[i] = s * sgn(W[i]);
}

/* V = s V o sign(W), in place (V holds freshly drawn magnitudes). */
static void sign_in_place(float *restrict V, const float *restrict W, float s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) V[i] = s * V[i] * sgn(W[i]);
}

/* V = s M o S o sign(W). */
static void write_partial(float *restrict V, const float *restrict W, const float *restrict M, const float *restrict S,
                          float s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) V[i] = s * M[i] * S[i] * sgn(W[i]);
}

/* ---- The policies ---------------------------------------------------------------------------- */

static asymbp_status_t bi_init(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const policy_desc_t *d = user;
    bi_state_t *st = state;
    asymbp_status_t rc = parse_options(a->ctx, d, a->options, st);
    size_t n = a->numel, i;
    if (rc != ASYMBP_OK) return rc;
    if (a->fan_in == 0 || a->fan_out == 0) return asymbp__error(a->ctx, ASYMBP_E_INVALID, "feedback '%s': layer has fan_in %zu, fan_out %zu", d->name, a->fan_in, a->fan_out);
    st->scale = resolve_scale(st, a);
    switch (d->id) {
    case P_USF:
        write_signed(a->V, a->W, NULL, st->scale, n);
        break;
    case P_BRSF:
        fill_mag(a->rng, st->mag, a->V, n);
        sign_in_place(a->V, a->W, st->scale, n);
        break;
    case P_FRSF:
        fill_mag(a->rng, st->mag, a->buf, n);
        write_signed(a->V, a->W, a->buf, st->scale, n);
        break;
    case P_PARTIAL:
        fill_mag(a->rng, st->mag, a->buf, n);
        fill_mask(a->rng, st->p, a->buf + n, n);
        write_partial(a->V, a->W, a->buf, a->buf + n, st->scale, n);
        break;
    case P_RNDF:
        if (st->dist_normal) {
            for (i = 0; i < n; i++) a->V[i] = st->scale * (float)asymbp__rng_normal(a->rng);
        } else {
            const double half = 1.7320508075688772; /* U(-sqrt 3, sqrt 3) has unit variance */
            for (i = 0; i < n; i++)
                a->V[i] = st->scale * (float)(half * (2.0 * open_uniform(a->rng) - 1.0));
        }
        break;
    case P_SIGNED_INIT:
        fill_mag(a->rng, st->mag, a->V, n);
        sign_in_place(a->V, a->W, st->scale, n);
        break;
    default:
        break;
    }
    return ASYMBP_OK;
}

static asymbp_status_t bi_refresh(void *user, void *state, const asymbp_feedback_args_t *a)
{
    const policy_desc_t *d = user;
    const bi_state_t *st = state;
    size_t n = a->numel;
    switch (d->id) {
    case P_USF:
        write_signed(a->V, a->W, NULL, st->scale, n);
        break;
    case P_BRSF:
        fill_mag(a->rng, st->mag, a->V, n);
        sign_in_place(a->V, a->W, st->scale, n);
        break;
    case P_FRSF:
        write_signed(a->V, a->W, a->buf, st->scale, n);
        break;
    case P_PARTIAL:
        if (st->m_redraw) fill_mag(a->rng, st->mag, a->buf, n);
        if (st->mask_redraw) fill_mask(a->rng, st->p, a->buf + n, n);
        write_partial(a->V, a->W, a->buf, a->buf + n, st->scale, n);
        break;
    default:
        break;
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp__fb_register_builtins(asymbp_ctx_t *ctx)
{
    int k;
    for (k = 0; k < P_COUNT; k++) {
        asymbp_feedback_vtable_t vt = ASYMBP_FEEDBACK_VTABLE_INIT;
        asymbp_status_t rc;
        vt.name = descs[k].name;
        vt.state_size = sizeof(bi_state_t);
        vt.init = bi_init;
        switch (k) {
        case P_SYM:
            vt.flags = ASYMBP_FEEDBACK_SYMMETRIC;
            vt.state_size = 0;
            vt.init = NULL;
            break;
        case P_FRSF: vt.buffer_count = 1; vt.refresh = bi_refresh; break;
        case P_PARTIAL: vt.buffer_count = 2; vt.refresh = bi_refresh; break;
        case P_USF: case P_BRSF: vt.refresh = bi_refresh; break;
        default: break; /* rndf, signed-init: V is fixed at init */
        }
        rc = asymbp_feedback_register(ctx, &vt, &descs[k], NULL);
        if (rc != ASYMBP_OK) return rc;
    }
    return ASYMBP_OK;
}
