/* Private to layers/: the bodies of layers and nets and the per-layer kernels. */
#ifndef ASYMBP_LAYERS_IMPL_H
#define ASYMBP_LAYERS_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include "layers/net_hooks.h"   /* before asymbp/net.h: both name asymbp_net_t */
#include "asymbp/net.h"
#include "asymbp/rng.h"
#include "tensor/tensor_impl.h"

#define ASYMBP__BN_MOMENTUM 0.1f
#define ASYMBP__BN_EPS 1e-5f

typedef struct asymbp__layer {
    int kind;                       /* an asymbp_layer_kind_t value, never ASYMBP_LAYER_NONE (an int so
                                       that the switches over it need no case for "no layer") */
    int index;
    char name[24];
    int64_t in_c, in_h, in_w, out_c, out_h, out_w;
    size_t in_size, out_size;       /* floats per sample */
    /* bound buffers: batch * out_size (flatten: aliases of the buffers below it) */
    float *out, *dout;
    /* dense / conv2d */
    asymbp__wlayer_t wl;
    int wl_below;                   /* index of the next weighted layer below, -1 if none */
    float *W, *dW, *b, *db;
    int has_bias;
    int kh, kw, stride, pad, ceil_mode;   /* conv and pools (pools: kh = kw = k) */
    size_t col_size;                      /* conv: im2col floats per image */
    float *col;                           /* conv, bound: im2col of one image per thread (net->nthr
                                             rows of col_size; padding entries stay 0) */
    int64_t *colgeo;                      /* conv, bound: per (ki, kj) the valid output range oh_lo, oh_hi, ow_lo, ow_hi */
    int32_t *argmax;                      /* maxpool, bound */
    /* batch norm */
    float momentum, eps;
    float *gamma, *beta, *dgamma, *dbeta, *run_mean, *run_var, *bmean, *binvstd;
    double *acc_mean, *acc_var;           /* BN recalibration (net->bn_recal): sums of count x batch
                                             mean and count x unbiased batch variance per channel */
    double acc_count;                     /* values per channel accumulated so far */
    int bn_train;                         /* statistics of the last forward: 1 batch, 0 running */
    /* BN followed directly by a ReLU (set by net_bind): the BN kernels do the ReLU's work too.
     * The forward writes max(0, y) straight into the ReLU's output (the BN's own output buffer is
     * then never written: nothing reads it); the backward takes the error from the ReLU's dout,
     * masks it with y > 0 recomputed from x exactly as the forward computed y, and writes the
     * masked error into the BN's dout (the delta read-outs stay what they were).  The same bits
     * as the two layers run one after the other, two fewer passes over the activations each way. */
    struct asymbp__layer *relu;           /* BN: the ReLU it runs, or NULL */
    int fused;                            /* ReLU: the BN below runs it (its kernels are skipped) */
    /* A convolutional BN's last pass each way runs in the layer that reads what it writes, a
     * plane or a sample at a time, just before reading it, so that it reads from cache what would
     * have come back from memory (set by net_bind; the same operations, so the same bits):
     * - forward: BN + ReLU under a pooling layer: the pool writes the ReLU's output plane (the
     *   normalisation and max(0, .)) before it pools that plane;
     * - backward: BN over a conv: the conv writes the error the BN sends down for a sample (into
     *   its own dout, where the BN would have written it) before it reads that sample's error. */
    struct asymbp__layer *bn_fwd;         /* pooling layer: the BN whose output planes it writes */
    struct asymbp__layer *bn_bwd;         /* conv: the BN whose error sent down it writes */
    int fwd_deferred, bwd_deferred;       /* BN: its last forward / backward pass runs there */
    const float *bn_in;                   /* BN, bound: its input */
    float *bn_coef;                       /* convolutional BN, bound: per channel gamma * invstd, the
                                             means of dy, dy * xhat and xhat of the last backward */
    /* dropout */
    float p;
    asymbp_rng_t rng;
    float *mask;                          /* dropout, bound */
    int drop_train;                       /* the last forward applied the mask */
} asymbp__layer_t;

struct asymbp_net {
    asymbp_ctx_t *ctx;
    int64_t in_c, in_h, in_w, classes;
    size_t in_size;
    asymbp__layer_t **layers;
    size_t n_layers, cap_layers;
    asymbp__param_t *params;
    asymbp_tensor_t **pvalue, **pgrad;
    size_t n_params, cap_params;
    char *spec;                           /* normalised spec, rebuilt on demand */
    /* bound state */
    size_t batch;
    float *input, *dinput, *probs, *col;  /* col: conv input-gradient columns (largest col_size), per thread */
    int32_t *labels;                      /* the labels of the last loss (direct feedback policies) */
    size_t col_cap;
    int nthr;                             /* threads the bound scratch is sized for (>= 1) */
    float *wpart;                         /* nthr - 1 rows of wpart_stride floats: conv dW, db partials */
    size_t wpart_stride;
    double *tsum;                         /* nthr partial sums (norms on the threads) */
    /* own GEMM kernels (tensor/gemm.c; isa 0: none, every product goes to CBLAS) */
    int isa;
    float *gpack;                         /* what every thread reads: conv W or V^T packed, the dense
                                             input transposed */
    float *gwork;                         /* nthr blocks of gwork_stride floats: packed A of the thread
                                             (conv: its im2col columns), conv dy^T and dW^T */
    size_t gwork_stride;
    float *wt;                            /* dense forward: out^T (features x batch), each thread
                                             its own rows */
    float *dxpart;                        /* nthr - 1 blocks of batch x (largest dense input):
                                             partial dense deltas */
    size_t n_fwd;
    int have_fwd, have_delta;
    /* what the last backward pass wrote (the delta read-outs): valid while have_bwd, which the
     * next loss, a bind or a new layer clears */
    int have_bwd;
    size_t bwd_n;                         /* samples */
    size_t bwd_lowest;                    /* lowest layer whose backward ran */
    int bwd_input;                        /* layer bwd_lowest also sent its delta down */
    /* modes */
    int need_input_grad;                  /* backward also fills dinput (gradcheck) */
    int want_input_grad;                  /* the caller asked for it (asymbp_net_set_input_grad) */
    int freeze_stats;                     /* BN running statistics are not updated (gradcheck) */
    int bn_recal;                         /* recalibration pass: BN normalises with batch statistics
                                             and accumulates them, running values untouched;
                                             dropout is the identity */
    double *recal_block;                  /* the accumulators of every BN layer (one allocation) */
    int force_sym;
    /* Data-parallel training (asymbp__net_set_sample_window): the next training forward's n
     * samples are samples [win_offset, win_offset + n) of a global batch of win_global (0: off),
     * so dropout draws its stream as one process would over the whole global batch. */
    size_t win_offset, win_global;
    /* Parameter floats the builders may still allocate (0: no limit): a model file being loaded
     * sets it to the number of values the file holds, so a hostile architecture is refused
     * before its weights are allocated (asymbp__net_from_spec_budget). */
    size_t param_budget, param_floats;
    /* feedback hooks and optimizer steps */
    asymbp__net_fb_hooks_t hooks;
    uint64_t step, last_refresh_step;
    int refreshed;
};

/* Output size of a pooling window sweep (Caffe ceil mode or floor); 0 when it does not fit. */
int64_t asymbp__pool_out(int64_t in, int k, int stride, int pad, int ceil_mode);

/* Fill geo (4 * kh * kw values) with the conv layer's valid output ranges per kernel tap. */
void asymbp__conv_geometry(const asymbp__layer_t *L, int64_t *geo);

/* Kernels (layers.c).  x: the layer's input (n samples), dx: where the delta for the layer
 * below goes (NULL: not needed). */
void asymbp__layer_forward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, size_t n, int train);
void asymbp__layer_backward(asymbp_net_t *net, asymbp__layer_t *L, const float *x, float *dx, size_t n);
/* Sum of squares of v (n floats in `rows` rows) in double, on the net's threads. */
double asymbp__net_sumsq(const asymbp_net_t *net, const float *v, size_t n, size_t rows);
/* Input of layer i (the net input for layer 0). */
const float *asymbp__layer_input(const asymbp_net_t *net, size_t i);

/* Forward over the bound buffers without argument checks (gradcheck); returns the logits. */
const float *asymbp__net_forward_raw(asymbp_net_t *net, const float *x, size_t n, int train);
asymbp_status_t asymbp__check_labels(asymbp_net_t *net, const int32_t *labels, size_t n);

#endif
