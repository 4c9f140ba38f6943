/* Private: saving and loading nets inside asymbp's chunked files (models, checkpoints). */
#ifndef ASYMBP_NET_IMPL_H
#define ASYMBP_NET_IMPL_H
#include "layers/net_hooks.h"
#include "asymbp/net.h"
#include "core/core_impl.h"

/* Append the net's chunks to w: "NETS" (format version, normalised spec, input shape, classes,
 * bn flag of the original spec), "NETP" (every parameter: name, size, values), "NETB" (BN
 * running means and variances), "NETR" (dropout RNG states).  w->failed on allocation failure:
 * returns ASYMBP_E_NOMEM then.  Returns ASYMBP_E_INVALID for NULL arguments. */
asymbp_status_t asymbp__net_write(asymbp_net_t *net, asymbp__wbuf_t *w);
/* Rebuild a net from the chunk area r (as written by asymbp__net_write).  out: owned by the
 * caller, unbound (call asymbp_net_bind).  Returns ASYMBP_OK, ASYMBP_E_FORMAT (a chunk is
 * missing, truncated or inconsistent: the message says which), ASYMBP_E_NOMEM,
 * ASYMBP_E_INVALID. */
asymbp_status_t asymbp__net_read(asymbp_ctx_t *ctx, const asymbp__rbuf_t *r, asymbp_net_t **out);

/* asymbp_net_from_spec for a loader: budget > 0 makes the builders refuse (ASYMBP_E_FORMAT,
 * before allocating) a layer that would bring the net's parameter floats (weights, biases, BN
 * scales and shifts) above budget. */
asymbp_status_t asymbp__net_from_spec_budget(asymbp_ctx_t *ctx, const char *spec, int64_t channels, int64_t height,
                                             int64_t width, int64_t classes, int bn, size_t budget, asymbp_net_t **out);

#endif
