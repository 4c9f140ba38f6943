/* Saving and loading a net's architecture, parameters and BN/dropout state. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "layers/net_impl.h"
#include "layers/layers_impl.h"

#define NET_IO_VERSION 1u
#define SPEC_CAP 65536

asymbp_status_t asymbp__net_write(asymbp_net_t *net, asymbp__wbuf_t *w)
{
    size_t pos;
    const char *spec;
    if (!net || !w) return asymbp__error(net ? net->ctx : NULL, ASYMBP_E_INVALID, "net_write: NULL argument");
    spec = asymbp_net_spec(net);
    if (net->n_layers && !spec[0]) return asymbp__error(net->ctx, ASYMBP_E_NOMEM, "net_write: out of memory");
    if (strlen(spec) + 1 > SPEC_CAP) return asymbp__error(net->ctx, ASYMBP_E_INVALID, "net_write: spec too long");
    pos = asymbp__wbuf_chunk_begin(w, "NETS");
    asymbp__wbuf_u32(w, NET_IO_VERSION);
    asymbp__wbuf_str(w, spec);
    asymbp__wbuf_u64(w, (uint64_t)net->in_c);
    asymbp__wbuf_u64(w, (uint64_t)net->in_h);
    asymbp__wbuf_u64(w, (uint64_t)net->in_w);
    asymbp__wbuf_u64(w, (uint64_t)net->classes);
    asymbp__wbuf_u32(w, 0);   /* bn: already expanded into the spec */
    asymbp__wbuf_chunk_end(w, pos);

    pos = asymbp__wbuf_chunk_begin(w, "NETP");
    asymbp__wbuf_u64(w, net->n_params);
    for (size_t i = 0; i < net->n_params; i++) {
        asymbp__wbuf_str(w, net->params[i].name);
        asymbp__wbuf_u64(w, net->params[i].numel);
        asymbp__wbuf_f32s(w, net->params[i].value, net->params[i].numel);
    }
    asymbp__wbuf_chunk_end(w, pos);

    pos = asymbp__wbuf_chunk_begin(w, "NETB");
    for (size_t i = 0; i < net->n_layers; i++) {
        const asymbp__layer_t *L = net->layers[i];
        if (L->kind != ASYMBP_LAYER_BATCHNORM) continue;
        asymbp__wbuf_u64(w, (uint64_t)L->in_c);
        asymbp__wbuf_f32s(w, L->run_mean, (size_t)L->in_c);
        asymbp__wbuf_f32s(w, L->run_var, (size_t)L->in_c);
    }
    asymbp__wbuf_chunk_end(w, pos);

    pos = asymbp__wbuf_chunk_begin(w, "NETR");
    for (size_t i = 0; i < net->n_layers; i++) {
        const asymbp__layer_t *L = net->layers[i];
        if (L->kind != ASYMBP_LAYER_DROPOUT) continue;
        asymbp__wbuf_u64(w, L->rng.state);
        asymbp__wbuf_u64(w, L->rng.inc);
    }
    asymbp__wbuf_chunk_end(w, pos);
    if (w->failed) return asymbp__error(net->ctx, ASYMBP_E_NOMEM, "net_write: out of memory");
    return ASYMBP_OK;
}

/* Walk the NETP chunk without allocating: every entry (name, count, values) must lie inside it.
 * *floats receives the number of parameter values the file holds (>= 1). */
static asymbp_status_t params_in_file(asymbp_ctx_t *ctx, const asymbp__rbuf_t *r, size_t *floats)
{
    asymbp__rbuf_t c;
    uint64_t np, total = 0;
    if (asymbp__rbuf_chunk(r, "NETP", &c) != 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: no NETP chunk (parameters)");
    np = asymbp__rbuf_u64(&c);
    /* an entry takes at least 4 (name length) + 8 (count) + 4 (one value) bytes */
    if (c.failed || np == 0 || np > (c.len - c.pos) / 16)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: NETP chunk truncated or its parameter count (%llu) impossible",
                             (unsigned long long)np);
    for (uint64_t i = 0; i < np; i++) {
        uint32_t nlen = asymbp__rbuf_u32(&c);
        uint64_t numel;
        asymbp__rbuf_get(&c, NULL, nlen);
        numel = asymbp__rbuf_u64(&c);
        if (c.failed || numel == 0 || numel > (c.len - c.pos) / 4)
            return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: NETP chunk truncated (parameter %llu)", (unsigned long long)i);
        asymbp__rbuf_get(&c, NULL, (size_t)numel * 4);
        total += numel;
    }
    *floats = (size_t)total;
    return ASYMBP_OK;
}

static asymbp_status_t bad(asymbp_ctx_t *ctx, asymbp_net_t *net, const char *what)
{
    asymbp_net_destroy(net);
    return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: %s", what);
}

asymbp_status_t asymbp__net_read(asymbp_ctx_t *ctx, const asymbp__rbuf_t *r, asymbp_net_t **out)
{
    asymbp__rbuf_t c;
    asymbp_net_t *net = NULL;
    char *spec;
    uint64_t dims[4], np;
    uint32_t version;
    size_t budget = 0;
    asymbp_status_t st;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "net_read: out is NULL");
    *out = NULL;
    ASYMBP_CHECK_NULL(ctx, ctx, "ctx");
    ASYMBP_CHECK_NULL(ctx, r, "r");
    if (asymbp__rbuf_chunk(r, "NETS", &c) != 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: no NETS chunk (network)");
    version = asymbp__rbuf_u32(&c);
    if (!c.failed && version != NET_IO_VERSION)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: network chunk version %u, this library reads %u", version, NET_IO_VERSION);
    /* The spec is allocated at its stored length, once the chunk is known to hold it. */
    {
        asymbp__rbuf_t peek = c;
        uint32_t slen = asymbp__rbuf_u32(&peek);
        if (peek.failed || slen >= SPEC_CAP || slen > peek.len - peek.pos)
            return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: NETS chunk truncated or its network spec too long");
        spec = asymbp__alloc(ctx, (size_t)slen + 1);
        if (!spec) return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_read: out of memory");
        asymbp__rbuf_str(&c, spec, (size_t)slen + 1);
    }
    for (int i = 0; i < 4; i++) dims[i] = asymbp__rbuf_u64(&c);
    (void)asymbp__rbuf_u32(&c);
    if (c.failed) {
        asymbp__free(ctx, spec);
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: NETS chunk truncated");
    }
    for (int i = 0; i < 4; i++)
        if (dims[i] < 1 || dims[i] > ((uint64_t)1 << 31)) {
            asymbp__free(ctx, spec);
            return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: bad input shape or class count (%llu)", (unsigned long long)dims[i]);
        }
    /* Nothing is allocated for the net before the file is known to hold every parameter value
     * the stored architecture needs: the builders get the NETP chunk's value count as budget. */
    st = params_in_file(ctx, r, &budget);
    if (st != ASYMBP_OK) {
        asymbp__free(ctx, spec);
        return st;
    }
    st = asymbp__net_from_spec_budget(ctx, spec, (int64_t)dims[0], (int64_t)dims[1], (int64_t)dims[2], (int64_t)dims[3], 0,
                                      budget, &net);
    if (st != ASYMBP_OK) {
        asymbp__free(ctx, spec);
        if (st == ASYMBP_E_NOMEM) return st;
        asymbp__error_prefix(ctx, "model: stored network does not build");
        return ASYMBP_E_FORMAT;
    }
    /* the stored text is normalised: rebuilding it must give the same text back */
    {
        const char *normal = asymbp_net_spec(net);   /* built on demand: "" when memory ran out */
        st = !normal[0] ? ASYMBP_E_NOMEM : strcmp(normal, spec) != 0 ? ASYMBP_E_FORMAT : ASYMBP_OK;
    }
    asymbp__free(ctx, spec);
    if (st == ASYMBP_E_NOMEM) {
        asymbp_net_destroy(net);
        return asymbp__error(ctx, ASYMBP_E_NOMEM, "net_read: out of memory");
    }
    if (st != ASYMBP_OK) return bad(ctx, net, "stored network spec is not in normal form");
    /* parameters */
    if (asymbp__rbuf_chunk(r, "NETP", &c) != 0) return bad(ctx, net, "no NETP chunk (parameters)");
    np = asymbp__rbuf_u64(&c);
    if (c.failed || np != net->n_params) return bad(ctx, net, "parameter count does not match the network");
    for (size_t i = 0; i < net->n_params; i++) {
        char name[64];
        uint64_t numel;
        asymbp__rbuf_str(&c, name, sizeof name);
        numel = asymbp__rbuf_u64(&c);
        if (c.failed || strcmp(name, net->params[i].name) != 0 || numel != net->params[i].numel) {
            char net_pname[64];
            size_t net_pnumel = net->params[i].numel;
            snprintf(net_pname, sizeof net_pname, "%s", net->params[i].name);
            asymbp_net_destroy(net);
            return asymbp__error(ctx, ASYMBP_E_FORMAT, "model: parameter %zu is not the expected %s with %zu values", i,
                                 net_pname, net_pnumel);
        }
        asymbp__rbuf_f32s(&c, net->params[i].value, net->params[i].numel);
        if (c.failed) return bad(ctx, net, "NETP chunk truncated");
        for (size_t j = 0; j < net->params[i].numel; j++)
            if (!isfinite(net->params[i].value[j])) return bad(ctx, net, "a parameter value is not finite");
    }
    if (c.pos != c.len) return bad(ctx, net, "NETP chunk has trailing bytes");
    /* BN running statistics */
    if (asymbp__rbuf_chunk(r, "NETB", &c) != 0) return bad(ctx, net, "no NETB chunk (batch-norm statistics)");
    for (size_t i = 0; i < net->n_layers; i++) {
        asymbp__layer_t *L = net->layers[i];
        if (L->kind != ASYMBP_LAYER_BATCHNORM) continue;
        if (asymbp__rbuf_u64(&c) != (uint64_t)L->in_c || c.failed) return bad(ctx, net, "batch-norm statistics do not match");
        asymbp__rbuf_f32s(&c, L->run_mean, (size_t)L->in_c);
        asymbp__rbuf_f32s(&c, L->run_var, (size_t)L->in_c);
        if (c.failed) return bad(ctx, net, "NETB chunk truncated");
        for (int64_t k = 0; k < L->in_c; k++)
            if (!isfinite(L->run_mean[k]) || !(L->run_var[k] >= 0.0f) || !isfinite(L->run_var[k]))
                return bad(ctx, net, "batch-norm running statistics are not finite/non-negative");
    }
    if (c.pos != c.len) return bad(ctx, net, "NETB chunk has trailing bytes");
    /* dropout RNG states */
    if (asymbp__rbuf_chunk(r, "NETR", &c) != 0) return bad(ctx, net, "no NETR chunk (dropout state)");
    {
        for (size_t i = 0; i < net->n_layers; i++) {
            asymbp__layer_t *L = net->layers[i];
            if (L->kind != ASYMBP_LAYER_DROPOUT) continue;
            L->rng.state = asymbp__rbuf_u64(&c);
            L->rng.inc = asymbp__rbuf_u64(&c);
            if (c.failed || !(L->rng.inc & 1u)) return bad(ctx, net, "dropout RNG state is malformed");
        }
        if (c.pos != c.len) return bad(ctx, net, "NETR chunk has trailing bytes");
    }
    *out = net;
    return ASYMBP_OK;
}
