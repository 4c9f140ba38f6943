/* Private: loading saved parameters into an existing net (for checkpoint resume). */
#ifndef ASYMBP_NET_INTO_H
#define ASYMBP_NET_INTO_H
#include "layers/net_hooks.h"
#include "core/core_impl.h"
asymbp_status_t asymbp__net_read_into(asymbp_net_t *net, const asymbp__rbuf_t *r);
/* The error the i-th weighted layer sent to the layer below in the last backward pass (n_fwd
 * samples x its input size; *len floats), or NULL for the lowest weighted layer, which sends none,
 * and before any backward.  Valid until the next backward. */
const float *asymbp__net_wlayer_delta_in(asymbp_net_t *net, size_t i, size_t *len);
/* The error the i-th weighted layer received at its output in the last backward pass (n_fwd
 * samples x its output size; *len floats), or NULL before any backward. */
const float *asymbp__net_wlayer_delta_out(asymbp_net_t *net, size_t i, size_t *len);
#endif
