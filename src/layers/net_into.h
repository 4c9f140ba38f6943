/* Private: loading saved parameters into an existing net (for checkpoint resume). */
#ifndef ASYMBP_NET_INTO_H
#define ASYMBP_NET_INTO_H
#include "layers/net_hooks.h"
#include "core/core_impl.h"
asymbp_status_t asymbp__net_read_into(asymbp_net_t *net, const asymbp__rbuf_t *r);
#endif
