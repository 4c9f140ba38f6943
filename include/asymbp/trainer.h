/** @file
 * @brief The training loop: epochs of shuffled mini-batches, evaluation, metrics, callbacks,
 * divergence detection, atomic checkpoints with bit-identical resume, model files. */
#ifndef ASYMBP_TRAINER_H
#define ASYMBP_TRAINER_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/context.h"
#include "asymbp/net.h"
#include "asymbp/update.h"
#include "asymbp/data.h"
#include "asymbp/feedback.h"
#include "asymbp/dist.h"
#ifdef __cplusplus
extern "C" {
#endif

/** @name Trainer */
/** @{ */

/** A trainer (opaque handle): created by asymbp_trainer_create(), destroyed by
 * asymbp_trainer_destroy(). */
typedef struct asymbp_trainer asymbp_trainer_t;

/** Figures of one finished epoch, passed (borrowed) to the epoch callback and kept by the
 * trainer.  Accuracies in [0, 1]; test figures are NaN when there is no test set.
 * @since 0.1 */
typedef struct asymbp_epoch_metrics {
    size_t struct_size;        ///< sizeof as the library was compiled
    int epoch;                 ///< 1-based
    uint64_t step;             ///< optimizer steps completed after this epoch
    double lr;                 ///< learning rate used in this epoch
    double train_loss;         ///< mean training loss over the epoch's batches
    double train_accuracy;     ///< accuracy on the training batches as they were trained
    double test_loss;          ///< loss on the test set
    double test_accuracy;      ///< accuracy on the test set
    double seconds;            ///< wall time of the epoch (training + evaluation)
    /* ---- since 0.2 ---- */
    double val_loss;           /**< loss on the validation set (asymbp_trainer_set_validation());
                                    NaN without.  Since 0.2. */
    double val_accuracy;       ///< accuracy on the validation set; NaN without.  Since 0.2.
    double test_loss_ema;      /**< with ::ASYMBP_BN_STATS_RECAL on a net with batch norm: the test
                                    loss with the running averages (EMA) instead; NaN otherwise.
                                    Since 0.2. */
    double test_accuracy_ema;  /**< with ::ASYMBP_BN_STATS_RECAL on a net with batch norm: the test
                                    accuracy with the running averages (EMA) instead; NaN
                                    otherwise.  Since 0.2. */
} asymbp_epoch_metrics_t;

/** Progress of the current epoch: called after every step (keep it cheap).  Return non-zero to
 * stop training after this step (asymbp_trainer_run() then returns ::ASYMBP_OK, stopped early). */
typedef int (*asymbp_progress_fn)(void *user, int epoch, size_t batch, size_t batches, double loss);
/** Called after every epoch with its metrics, before that epoch's checkpoint (if any) is written,
 * so what the callback records is durable before a resume can start after the epoch (since 0.2;
 * 0.1 called it after the checkpoint).  Return non-zero to stop after this epoch (its checkpoint
 * is still written when one is due); a negative value stops without writing it (since 0.2: for a
 * callback that failed to record the epoch, so no checkpoint covers an epoch it lost). */
typedef int (*asymbp_epoch_fn)(void *user, const asymbp_epoch_metrics_t *m);

/** Called with the exact-backprop probe's figures (asymbp_net_feedback_probe()) of the `count`
 * weighted layers, bottom to top, every probe_every optimizer steps: after that step's backward
 * pass and before its update, so the figures compare the error the step used with the one exact
 * backprop would have sent.  step: the number of the step (1 on the first).  Return non-zero to
 * stop after this step.
 * @since 0.2 */
typedef int (*asymbp_probe_fn)(void *user, uint64_t step, const asymbp_feedback_diag_t *diag, size_t count);

/** Caller-filled settings; start from ::ASYMBP_TRAIN_PARAMS_INIT.
 * @since 0.1 */
typedef struct asymbp_train_params {
    size_t struct_size;            ///< sizeof as the caller was compiled (INIT)
    int epochs;                    ///< total epochs of the run (default 10)
    size_t batch;                  ///< mini-batch size (default 100); the net is bound to it
    int shuffle;                   ///< reshuffle the training set every epoch (default 1)
    int evaluate;                  ///< evaluate on the test set after every epoch (default 1)
    int checkpoint_every;          ///< write a checkpoint every N epochs (0: never; default 0)
    const char *checkpoint_path;   ///< where (borrowed for the trainer's lifetime)
    asymbp_progress_fn progress;   ///< optional
    asymbp_epoch_fn on_epoch;      ///< optional
    void *user;                    ///< passed to the callbacks (progress, on_epoch, on_probe)
    /* ---- since 0.2 ---- */
    int bn_stats;                  /**< ::ASYMBP_BN_STATS_EMA (default) or ::ASYMBP_BN_STATS_RECAL.
                                        Since 0.2. */
    size_t bn_recal_samples;       ///< training samples of each recalibration (0: all).  Since 0.2.
    uint64_t probe_every;          /**< run the probe every N steps (0: never; needs on_probe); it
                                        changes nothing in training (an extra backward pass).
                                        Since 0.2. */
    asymbp_probe_fn on_probe;      ///< optional: receives the probe's figures.  Since 0.2.
} asymbp_train_params_t;
/** Initializer of ::asymbp_train_params_t with the defaults above: 10 epochs, batch 100, shuffled,
 * evaluated, no checkpoints, no callbacks, EMA batch-norm statistics, no probe. */
#define ASYMBP_TRAIN_PARAMS_INIT { sizeof(asymbp_train_params_t), 10, 100, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/** asymbp_train_params_t.bn_stats: evaluation uses the running averages collected during
 * training (momentum 0.1).
 * @since 0.2 */
#define ASYMBP_BN_STATS_EMA 0
/** asymbp_train_params_t.bn_stats: population statistics re-estimated at the current weights
 * (asymbp_net_bn_recalibrate()) before every evaluation; the running averages keep being
 * collected for the next epochs (and are what checkpoints hold), the test set is also evaluated
 * with them (the *_ema metrics), and when the run ends the net keeps the re-estimated statistics,
 * so a model saved then holds them.
 * @since 0.2 */
#define ASYMBP_BN_STATS_RECAL 1

/** Create a trainer.  The training set's shape and classes must match the net (::ASYMBP_E_SHAPE
 * names both).  Binds the net to params->batch.  The shuffling stream is drawn from the context
 * seed.
 * @param net borrowed, must outlive the trainer
 * @param opt borrowed, must outlive the trainer
 * @param train borrowed, must outlive the trainer
 * @param test borrowed, must outlive the trainer; may be NULL
 * @param params the settings
 * @param out receives the trainer, owned by the caller (asymbp_trainer_destroy())
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_SHAPE, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_trainer_create(asymbp_net_t *net, asymbp_optimizer_t *opt, const asymbp_dataset_t *train,
                      const asymbp_dataset_t *test, const asymbp_train_params_t *params,
                      asymbp_trainer_t **out);
/** Destroy a trainer.
 * @param tr the trainer (NULL is accepted)
 * @since 0.1 */
ASYMBP_API void asymbp_trainer_destroy(asymbp_trainer_t *tr);
/** Evaluate a validation set after every epoch too, into the metrics' val_* members: a
 * validation split for choosing hyper-parameters and epochs without looking at the test set.
 * Call before asymbp_trainer_run().
 * @param tr the trainer
 * @param val borrowed, must outlive the trainer; NULL removes it.  Its samples must have the
 *     training set's shape.
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_SHAPE
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_trainer_set_validation(asymbp_trainer_t *tr, const asymbp_dataset_t *val);

/** Train data-parallel over the ranks of comm, the optimizer combining the ranks' gradients as
 * mode says (asymbp_optimizer_set_comm(), which this calls).  Every rank runs the same program
 * with the same seed, data and settings: it shuffles like the others, takes its share of every
 * global batch of params->batch samples (the first batch % ranks ranks take one sample more; a
 * rank may have none in the epoch's last, smaller batch), and steps with the others.  The net is
 * rebound to the largest share.  Batch norm normalises with each rank's own batch statistics; at
 * the end of every epoch the running statistics are averaged over the ranks and the trainer
 * checks that every rank holds the same parameters (::ASYMBP_E_COMM otherwise), so evaluation,
 * checkpoints and saved models see one model.  Evaluation, training figures and stops (either
 * callback) are shared: each rank evaluates a share, and a stop asked by any rank takes effect on
 * all of them at the end of the epoch.  Only rank 0 writes checkpoints (all ranks must call
 * asymbp_trainer_save_checkpoint(); they all get rank 0's status), and
 * asymbp_trainer_load_checkpoint() has rank 0 read the file for everyone.  A checkpoint can be
 * continued on any number of ranks (docs/distributed.md).  Call it before asymbp_trainer_run()
 * or asymbp_trainer_load_checkpoint(), on every rank: it is collective (it checks that the ranks
 * start from the same weights).
 * @param tr the trainer
 * @param comm borrowed, registered in the trainer's context; it cannot be unregistered while
 *     set; NULL returns to one process
 * @param mode how the gradients are combined
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID (NULL tr, more ranks than the batch has samples,
 *     unknown mode), ::ASYMBP_E_UNSUPPORTED (vote with a rule that does not accept one),
 *     ::ASYMBP_E_COMM (the ranks' weights differ, or the communicator failed), ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_trainer_set_comm(asymbp_trainer_t *tr, const asymbp_comm_t *comm, asymbp_dist_mode_t mode);

/** Run the remaining epochs (all of them on a new trainer, the rest after a resume).
 * @param tr the trainer
 * @return ::ASYMBP_OK; ::ASYMBP_E_DIVERGED when the loss or a weight became NaN or Inf (the last
 *     error names the epoch and step; the weights are restored to their state before that step);
 *     ::ASYMBP_E_IO when a checkpoint could not be written; errors of the layers below
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_trainer_run(asymbp_trainer_t *tr);

/** Give the trainer the standardisation its data was prepared with: its checkpoints then carry
 * it like asymbp_model_save_with_scaler(), so asymbp_model_load_with_scaler() on a checkpoint
 * gives it back.
 * @param tr the trainer
 * @param scaler borrowed: must outlive the trainer; NULL removes it
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_SHAPE (it does not fit the net's input)
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_trainer_set_scaler(asymbp_trainer_t *tr, const asymbp_scaler_t *scaler);

/** Epochs finished so far.
 * @param tr the trainer
 * @return the count
 * @since 0.1 */
ASYMBP_API int asymbp_trainer_epochs_done(const asymbp_trainer_t *tr);
/** The metrics of one finished epoch.
 * @param tr the trainer
 * @param epoch 1-based
 * @return borrowed, kept by the trainer; NULL when out of range
 * @since 0.1 */
ASYMBP_API const asymbp_epoch_metrics_t *asymbp_trainer_metrics(const asymbp_trainer_t *tr, int epoch);

/** Write a checkpoint (net, feedback state, optimizer state, trainer position and RNG, metrics
 * so far) to path atomically.  With a communicator (asymbp_trainer_set_comm()) every rank calls
 * it, rank 0 alone writes, and every rank returns rank 0's status; the BN running statistics
 * saved are rank 0's, which equal every rank's at the end of an epoch (when the trainer writes).
 * @param tr the trainer
 * @param path the file
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_IO (the file could not be written),
 *     ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_trainer_save_checkpoint(asymbp_trainer_t *tr, const char *path);
/** Restore a checkpoint written by a trainer over the same net architecture, data and settings:
 * weights, feedback and optimizer state, epoch, RNG positions and metrics.  The next
 * asymbp_trainer_run() continues bit-identically (same BLAS and thread count).  With a
 * communicator every rank calls it and rank 0 reads the file for all (the other ranks need not
 * see it); the run continues on any number of ranks (bit-identically on the same number).
 * @param tr the trainer
 * @param path the file
 * @return ::ASYMBP_OK, ::ASYMBP_E_FORMAT when the file does not match this trainer's net, and the
 *     codes of asymbp_model_load() (::ASYMBP_E_IO, ::ASYMBP_E_FORMAT, ::ASYMBP_E_NOMEM)
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_trainer_load_checkpoint(asymbp_trainer_t *tr, const char *path);

/** @} */

/** @name Batch-norm statistics */
/** @{ */

/** Parameters of asymbp_net_bn_recalibrate(); start from ::ASYMBP_BN_RECAL_PARAMS_INIT.
 * @since 0.2 */
typedef struct asymbp_bn_recal_params {
    size_t struct_size;   ///< sizeof as the caller was compiled (INIT)
    size_t max_samples;   ///< samples used (0: every sample of the data set)
    uint64_t seed;        ///< the order of the samples (and which ones, when max_samples < count)
} asymbp_bn_recal_params_t;
/** Initializer of ::asymbp_bn_recal_params_t: every sample, seed 0. */
#define ASYMBP_BN_RECAL_PARAMS_INIT { sizeof(asymbp_bn_recal_params_t), 0, 0 }

/** Re-estimate the mean and variance of every batch-norm layer at the current weights (the
 * batch-norm paper's population statistics): the samples are taken in an order drawn from
 * p->seed, in batches of the net's bound batch size, and run forward with batch statistics (and
 * dropout off); each layer's running mean becomes the mean of its batch means and its running
 * variance the mean of its unbiased batch variances (weighted by batch size).  Weights and every
 * random stream of the net are untouched, so training goes on exactly as before.  Deterministic
 * for a given thread count; allocates two buffers for the call, nothing per batch.  A net without
 * batch norm is left as it is.
 * @param net the bound net
 * @param data borrowed, samples of the net's input size (typically the training set)
 * @param p (may be NULL) the parameters
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_STATE (not bound), ::ASYMBP_E_SHAPE,
 *     ::ASYMBP_E_UNSUPPORTED (struct_size), ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_net_bn_recalibrate(asymbp_net_t *net, const asymbp_dataset_t *data, const asymbp_bn_recal_params_t *p);

/** @} */

/** @name Model files */
/** @{ */

/** Save a model (architecture, weights, BN statistics, feedback settings and state) atomically.
 * @param net the net
 * @param path the file
 * @return as asymbp_model_save_with_scaler() with no scaler: ::ASYMBP_OK, ::ASYMBP_E_INVALID,
 *     ::ASYMBP_E_IO, ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_model_save(asymbp_net_t *net, const char *path);
/** The same as asymbp_model_save() with the standardisation the model's inputs need (the scaler
 * fitted on the training set: mode, means, divisors), so that a host can predict from the model
 * file alone.  Older libraries read such a file as a plain model (they skip the chunk).
 * @param net the net
 * @param scaler borrowed (NULL: as asymbp_model_save()); its statistics must fit the net's input
 *     shape (::ASYMBP_E_SHAPE)
 * @param path the file
 * @return ::ASYMBP_OK, ::ASYMBP_E_INVALID, ::ASYMBP_E_SHAPE, ::ASYMBP_E_IO, ::ASYMBP_E_NOMEM
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_model_save_with_scaler(asymbp_net_t *net, const asymbp_scaler_t *scaler, const char *path);
/** Load a model saved by asymbp_model_save() (or the model inside a checkpoint).
 * @param ctx the context the net is made in
 * @param path the file
 * @param out receives the net, owned by the caller
 * @return ::ASYMBP_OK, ::ASYMBP_E_IO, ::ASYMBP_E_FORMAT (not a model, damaged), ::ASYMBP_E_NOMEM
 * @since 0.1 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_model_load(asymbp_ctx_t *ctx, const char *path, asymbp_net_t **out);
/** Load a model and the standardisation saved with it (asymbp_model_save_with_scaler(), or a
 * checkpoint of a trainer given one with asymbp_trainer_set_scaler()).  To predict:
 * asymbp_scaler_apply_array(sc, x, n, C, H, W) on the raw inputs, then asymbp_net_bind() and
 * asymbp_net_predict().
 * @param ctx the context the net and the scaler are made in
 * @param path the file
 * @param out receives the net, owned by the caller
 * @param scaler (may be NULL: = asymbp_model_load()) *scaler receives a scaler owned by the caller
 *     (asymbp_scaler_destroy()), or NULL when the file holds none
 * @return as asymbp_model_load(), plus ::ASYMBP_E_FORMAT for a damaged standardisation or one
 *     that does not fit the net's input
 * @since 0.2 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t
asymbp_model_load_with_scaler(asymbp_ctx_t *ctx, const char *path, asymbp_net_t **out, asymbp_scaler_t **scaler);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_TRAINER_H */
