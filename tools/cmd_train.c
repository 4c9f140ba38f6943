/* asymbp train: one run, its progress, its files (settings, curves, checkpoint, model, summary)
 * and --resume.  Files are written so that a kill at any instant loses nothing: every curves row
 * is on disk before the checkpoint that covers its epoch, the other files are replaced
 * atomically, and a resume drops what came after its checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"

#define MODEL_FILE "model.asymbp"
#define CHECKPOINT_FILE "checkpoint.asymbp"
#define MAX_DIAG 64
#define PROBE_HEADER \
    "step,layer,delta_norm,bp_delta_norm,delta_angle_bp,grad_angle_bp,sign_concordance,angle_vw,norm_ratio,recv_angle_bp\n"

typedef struct run_state {
    settings_t *s;
    asymbp_net_t *net;
    asymbp_trainer_t *tr;
    int tty;
    size_t n_train;
    double t_epoch;                 /* when the current epoch started */
    double t_run;                   /* when this invocation's training started */
    int first_epoch;                /* the first epoch this invocation trains */
    FILE *curves, *probe;
    int curves_failed;              /* a row could not be written: training stops, the run fails */
    int curves_errno;
    asymbp_feedback_diag_t diag[MAX_DIAG];
    size_t n_diag;
} run_state_t;

static void fmt_eta(char *buf, size_t cap, double s)
{
    long t = (long)(s + 0.5);
    if (!(s >= 0.0) || s > 359999.0) snprintf(buf, cap, "--:--");
    else if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static int on_progress(void *user, int epoch, size_t batch, size_t batches, double loss)
{
    run_state_t *r = user;
    if (r->s->quiet || !r->tty) return 0;
    if (batch == batches || batch % 4 == 0) {
        int width = 30, fill = (int)((double)width * (double)batch / (double)batches), i;
        double el = now_seconds() - r->t_epoch, done = (double)batch * (double)r->s->batch, rate, left;
        char eta[32];
        if (done > (double)r->n_train) done = (double)r->n_train;
        rate = el > 0.0 ? done / el : 0.0;
        left = (double)(batches - batch) * (double)r->s->batch + (double)(r->s->epochs - epoch) * (double)r->n_train;
        fmt_eta(eta, sizeof eta, rate > 0.0 ? left / rate : -1.0);
        fprintf(stderr, "\repoch %3d/%d [", epoch, r->s->epochs);
        for (i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %5.1f%% loss %.4f  %.0f img/s  ETA %s ", 100.0 * (double)batch / (double)batches, loss, rate, eta);
        fflush(stderr);
    }
    return 0;
}

/* One curves row, flushed to the disk: the trainer writes the epoch's checkpoint only after this
 * returns, so a kill never leaves a checkpoint whose row is missing. */
static void write_row(run_state_t *r, const asymbp_epoch_metrics_t *m, int with_diag)
{
    FILE *f = r->curves;
    size_t i;
    if (!f || r->curves_failed) return;
    fprintf(f, "%d,%llu,%.8g,%.8g,%.8g,%.8g,%.8g,%.4f,%.8g,%.8g,%.8g,%.8g", m->epoch, (unsigned long long)m->step, m->lr,
            m->train_loss, m->train_accuracy, m->test_loss, m->test_accuracy, m->seconds, m->val_loss, m->val_accuracy,
            m->test_loss_ema, m->test_accuracy_ema);
    if (r->s->diag)
        for (i = 0; i < r->n_diag; i++) {
            if (with_diag)
                fprintf(f, ",%.6g,%.6g,%.6g", r->diag[i].delta_norm, r->diag[i].grad_norm, r->diag[i].sign_concordance);
            else
                fputs(",,,", f);
        }
    fputc('\n', f);
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        r->curves_failed = 1;
        r->curves_errno = errno ? errno : EIO;
    }
}

/* probe.csv rows: flushed here, on disk before the checkpoint of their epoch (on_epoch). */
static int on_probe(void *user, uint64_t step, const asymbp_feedback_diag_t *d, size_t count)
{
    run_state_t *r = user;
    if (!r->probe || r->curves_failed) return r->curves_failed;
    for (size_t i = 0; i < count; i++)
        fprintf(r->probe, "%llu,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", (unsigned long long)step, d[i].layer_index,
                d[i].delta_norm, d[i].bp_delta_norm, d[i].delta_angle_bp, d[i].grad_angle_bp, d[i].sign_concordance,
                d[i].angle_vw, d[i].norm_ratio, d[i].recv_angle_bp);
    if (fflush(r->probe) != 0 || ferror(r->probe)) {
        r->curves_failed = 1;
        r->curves_errno = errno ? errno : EIO;
    }
    return r->curves_failed;
}

static int on_epoch(void *user, const asymbp_epoch_metrics_t *m)
{
    run_state_t *r = user;
    size_t i;
    double now = now_seconds(), rate = m->seconds > 0.0 ? (double)r->n_train / m->seconds : 0.0;
    if (r->s->diag) {
        for (i = 0; i < r->n_diag; i++) {
            size_t layer = 0;
            r->diag[i].struct_size = sizeof r->diag[i];
            if (asymbp_net_weighted_layer(r->net, (int)i, &layer) != ASYMBP_OK ||
                asymbp_net_layer_feedback_diag(r->net, layer, &r->diag[i]) != ASYMBP_OK)
                r->diag[i].delta_norm = NAN;
        }
    }
    if (!r->s->quiet) {
        if (r->tty) fputc('\r', stderr);
        char valtxt[32] = "";
        if (!isnan(m->val_accuracy)) snprintf(valtxt, sizeof valtxt, "  val acc %.4f", m->val_accuracy);
        fprintf(stderr, "epoch %3d/%d  loss %.4g  train acc %.4f%s  test acc %.4f  lr %.3g  %.1fs  %.0f img/s%s\n", m->epoch,
                r->s->epochs, m->train_loss, m->train_accuracy, valtxt, m->test_accuracy, m->lr, m->seconds, rate,
                r->tty ? "          " : "");
        if (r->s->diag)
            for (i = 0; i < r->n_diag; i++)
                fprintf(stderr, "    layer %2d  |delta| %.3e  |dW| %.3e  sign concordance %.3f  angle(V,W) %.1f deg\n",
                        r->diag[i].layer_index, r->diag[i].delta_norm, r->diag[i].grad_norm, r->diag[i].sign_concordance,
                        r->diag[i].angle_vw);
    }
    if (r->probe && !r->curves_failed && (fflush(r->probe) != 0 || fsync(fileno(r->probe)) != 0)) {
        r->curves_failed = 1;
        r->curves_errno = errno ? errno : EIO;
    }
    write_row(r, m, 1);
    r->t_epoch = now;
    return r->curves_failed ? -1 : 0;   /* a lost row: stop before the checkpoint of this epoch */
}

static void curves_header(FILE *f, const settings_t *s, size_t n_diag)
{
    fputs("epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,val_loss,val_accuracy,test_loss_ema,"
          "test_accuracy_ema", f);
    if (s->diag)
        for (size_t i = 0; i < n_diag; i++) fprintf(f, ",delta_norm_%zu,grad_norm_%zu,sign_concordance_%zu", i, i, i);
    fputc('\n', f);
}

/* Keep the header and the first `rows` complete rows of curves.csv (atomically); returns the
 * number of rows kept (fewer when the file has fewer), or -1.  No file: 0 rows. */
static int trim_curves(const char *dir, int rows)
{
    char path[CLI_PATH_MAX + 32], line[65536];
    FILE *in;
    sbuf_t b = { 0 };
    int kept = -1, rc;
    snprintf(path, sizeof path, "%s/curves.csv", dir);
    in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : -1;
    while (kept < rows && fgets(line, sizeof line, in)) {
        if (!strchr(line, '\n')) break;   /* a row cut short by a kill */
        sb_puts(&b, line);
        kept++;
    }
    fclose(in);
    if (b.failed) {
        errno = ENOMEM;
        return -1;
    }
    rc = write_file_atomic(dir, "curves.csv", b.p ? b.p : "", b.len);
    sb_free(&b);
    if (rc != 0) return -1;
    return kept < 0 ? 0 : kept;
}

/* Keep the header and the rows of steps up to max_step of probe.csv (atomically). */
static int trim_probe(const char *dir, uint64_t max_step)
{
    char path[CLI_PATH_MAX + 32], line[4096];
    FILE *in;
    sbuf_t b = { 0 };
    int first = 1, rc;
    snprintf(path, sizeof path, "%s/probe.csv", dir);
    in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof line, in)) {
        if (!strchr(line, '\n')) break;
        if (first || strtoull(line, NULL, 10) <= max_step) sb_puts(&b, line);
        first = 0;
    }
    fclose(in);
    if (b.failed) {
        errno = ENOMEM;
        return -1;
    }
    rc = write_file_atomic(dir, "probe.csv", b.p ? b.p : "", b.len);
    sb_free(&b);
    return rc;
}

/* A fresh run failed part-way: remove what it wrote (the docs promise no file from a failed run),
 * unless a checkpoint exists, in which case everything stays so --resume can continue. */
static void undo_fresh_run(const char *dir, int created_dir)
{
    static const char *const files[] = { "settings.txt", "curves.csv", "probe.csv", "summary.json", MODEL_FILE };
    char path[CLI_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_FILE);
    if (path_exists(path)) {
        cli_error("the run in %s can be continued with: %s train --resume %s", dir, cli_prog, dir);
        return;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    clean_stale_tmp(dir);
    if (created_dir) rmdir(dir);
}

static void summary_json(sbuf_t *b, const settings_t *s, const char *net_spec, asymbp_trainer_t *tr, asymbp_status_t run_st,
                         const char *diverged_at, double tl, double ta)
{
    int done = asymbp_trainer_epochs_done(tr), i;
    const asymbp_epoch_metrics_t *m = done > 0 ? asymbp_trainer_metrics(tr, done) : NULL;
    double secs = 0.0;
    int div = run_st == ASYMBP_E_DIVERGED;
    for (i = 1; i <= done; i++) secs += asymbp_trainer_metrics(tr, i)->seconds;
    sb_puts(b, "{\"data\":");
    sb_json_str(b, s->data);
    sb_puts(b, ",\"net\":");
    sb_json_str(b, net_spec);
    sb_puts(b, ",\"feedback\":");
    sb_json_str(b, s->feedback);
    sb_puts(b, ",\"update\":");
    sb_json_str(b, s->update);
    sb_printf(b, ",\"bn\":%s,\"epochs\":%d,\"epochs_done\":%d,\"batch\":%llu,\"lr\":", s->bn ? "true" : "false", s->epochs, done,
              (unsigned long long)s->batch);
    sb_json_num(b, s->lr);
    sb_puts(b, ",\"momentum\":");
    sb_json_num(b, s->momentum);
    sb_puts(b, ",\"lr_steps\":");
    sb_json_str(b, s->lr_steps);
    sb_printf(b, ",\"seed\":%llu,\"threads\":%d,\"blas\":\"%s\",\"train_accuracy\":", (unsigned long long)s->seed, s->threads,
              asymbp_blas_name());
    sb_json_num(b, m ? m->train_accuracy : NAN);
    sb_puts(b, ",\"train_loss\":");
    sb_json_num(b, m ? m->train_loss : NAN);
    sb_puts(b, ",\"test_accuracy\":");
    sb_json_num(b, div ? ta : m ? m->test_accuracy : NAN);
    sb_puts(b, ",\"test_error\":");
    sb_json_num(b, div ? 1.0 - ta : m ? 1.0 - m->test_accuracy : NAN);
    sb_puts(b, ",\"test_loss\":");
    sb_json_num(b, div ? tl : m ? m->test_loss : NAN);
    {
        /* the epoch chosen on validation accuracy (the first of equals), and the test figures there */
        int best = 0;
        for (i = 1; i <= done; i++) {
            const asymbp_epoch_metrics_t *e = asymbp_trainer_metrics(tr, i);
            if (!isnan(e->val_accuracy) && (best == 0 || e->val_accuracy > asymbp_trainer_metrics(tr, best)->val_accuracy))
                best = i;
        }
        sb_puts(b, ",\"val_split\":");
        sb_json_num(b, s->val_split);
        sb_puts(b, ",\"val_accuracy\":");
        sb_json_num(b, m ? m->val_accuracy : NAN);
        sb_puts(b, ",\"best_epoch\":");
        if (best) sb_printf(b, "%d", best);
        else sb_puts(b, "null");
        sb_puts(b, ",\"val_accuracy_best\":");
        sb_json_num(b, best ? asymbp_trainer_metrics(tr, best)->val_accuracy : NAN);
        sb_puts(b, ",\"test_accuracy_at_best\":");
        sb_json_num(b, best ? asymbp_trainer_metrics(tr, best)->test_accuracy : NAN);
        sb_puts(b, ",\"test_error_at_best\":");
        sb_json_num(b, best ? 1.0 - asymbp_trainer_metrics(tr, best)->test_accuracy : NAN);
        sb_puts(b, ",\"test_accuracy_ema\":");
        sb_json_num(b, m && !div ? m->test_accuracy_ema : NAN);
        sb_puts(b, ",\"bn_stats\":");
        sb_json_str(b, s->bn ? s->bn_stats : "none");
        sb_puts(b, ",\"lr_schedule\":");
        sb_json_str(b, s->lr_schedule);
        sb_puts(b, ",\"lr_min\":");
        sb_json_num(b, s->lr_min);
        sb_puts(b, ",\"warmup\":");
        sb_json_num(b, s->warmup);
    }
    sb_printf(b, ",\"seconds\":%.3f,\"diverged\":%s", secs, div ? "true" : "false");
    if (div) {
        sb_puts(b, ",\"diverged_at\":");
        sb_json_str(b, diverged_at);
    }
    sb_puts(b, ",\"version\":");
    sb_json_str(b, asymbp_version_string());
    sb_puts(b, "}\n");
}

int cmd_train(int argc, char **argv)
{
    settings_t s;
    asymbp_ctx_t *ctx = NULL;
    asymbp_dataset_t *train = NULL, *test = NULL, *val = NULL;
    asymbp_scaler_t *scaler = NULL;
    asymbp_net_t *net = NULL;
    asymbp_optimizer_t *opt = NULL;
    asymbp_trainer_t *tr = NULL;
    asymbp_update_rule_t *rule = NULL;
    asymbp_status_t st, run_st = ASYMBP_OK;
    asymbp_hyper_params_t hp = ASYMBP_HYPER_PARAMS_INIT;
    size_t batches;
    asymbp_train_params_t tp = ASYMBP_TRAIN_PARAMS_INIT;
    run_state_t rs;
    char ckpt[CLI_PATH_MAX + 32] = "", model[CLI_PATH_MAX + 32] = "", curves[CLI_PATH_MAX + 32] = "";
    char *diverged_at = NULL;
    const char *net_spec;
    int64_t c, h, w;
    int rc = 1, resuming = 0, saved_epochs = 0, fresh_out = 0, created_dir = 0, writer = 1, kept;
    sbuf_t json = { 0 };

    memset(&rs, 0, sizeof rs);
    settings_default(&s);
    rc = opts_parse(CMD_TRAIN, argc, argv, &s, NULL, 0, NULL);
    if (rc != 0) return rc < 0 ? 0 : rc;
    /* --dist (issue 15, tools/dist.c): MPI starts before anything is read; only rank 0 writes */
    if ((rc = dist_start(&s)) != 0) goto out;
    writer = dist_rank() == 0;
    rc = 1;
    if (s.resume) {
        int epochs_arg = s.epochs, quiet = s.quiet, diag = s.diag, epochs_given = opt_given(&s, "--epochs");
        const char *dir = s.resume;
        settings_default(&s);
        if (settings_load(dir, &s) != 0) goto out;
        saved_epochs = s.epochs;
        s.resume = dir;
        s.out = dir;
        s.quiet = quiet;
        /* --diag is part of the run (its curves columns, and the reads of the lowest layer's
         * feedback it makes): a resume keeps the saved choice and cannot add it */
        if (diag && !s.diag) {
            rc = cli_usage("--resume %s: the run was started without --diag; its curves.csv has no diagnostic columns", dir);
            goto out;
        }
        if (epochs_given) s.epochs = epochs_arg;
        /* the checkpoint holds the cosine schedule over the saved epochs: more epochs would run at
         * its final rate, and the run would be neither the one asked for nor a longer cosine run */
        if (s.epochs != saved_epochs && !strcmp(s.lr_schedule, "cosine")) {
            rc = cli_usage("--resume %s --epochs %d: the run's cosine schedule spans its %d epochs and cannot be "
                           "changed; start a new run with --epochs %d", dir, s.epochs, saved_epochs, s.epochs);
            goto out;
        }
        snprintf(ckpt, sizeof ckpt, "%s/%s", dir, CHECKPOINT_FILE);
        if (!path_exists(ckpt)) {
            cli_error("--resume %s: no checkpoint (%s); was the run started with --checkpoint-every?", dir, ckpt);
            goto out;
        }
        resuming = 1;
    }
    if (s.checkpoint_every > 0 && !s.out) {
        rc = cli_usage("--checkpoint-every needs --out DIR");
        goto out;
    }
    if (s.out) {
        if (strlen(s.out) > CLI_PATH_MAX - 64) {
            rc = cli_usage("--out: the path is too long");
            goto out;
        }
        snprintf(model, sizeof model, "%s/%s", s.out, MODEL_FILE);
        snprintf(ckpt, sizeof ckpt, "%s/%s", s.out, CHECKPOINT_FILE);
        snprintf(curves, sizeof curves, "%s/curves.csv", s.out);
        if (!resuming) {
            if (path_exists(model) || path_exists(ckpt)) {
                cli_error("--out %s already holds a model (%s); choose another folder or remove it (nothing was overwritten)",
                          s.out, path_exists(model) ? model : ckpt);
                goto out;
            }
            if (path_exists(s.out) && !path_is_dir(s.out)) {
                cli_error("--out %s exists and is not a folder", s.out);
                goto out;
            }
            fresh_out = writer;
        }
    }
    if (strcmp(s.bn_stats, "ema") != 0 && strcmp(s.bn_stats, "recal") != 0) {
        rc = cli_usage("--bn-stats: '%s' is neither ema nor recal", s.bn_stats);
        goto out;
    }
    if (strcmp(s.lr_schedule, "step") != 0 && strcmp(s.lr_schedule, "cosine") != 0) {
        rc = cli_usage("--lr-schedule: '%s' is neither step nor cosine", s.lr_schedule);
        goto out;
    }
    if (!strcmp(s.lr_schedule, "cosine") && *s.lr_steps) {
        rc = cli_usage("--lr-steps goes with --lr-schedule step, not cosine");
        goto out;
    }

    if (!(ctx = cli_ctx())) goto out;
    if (asymbp_ctx_set_seed(ctx, s.seed) != ASYMBP_OK || asymbp_ctx_set_threads(ctx, s.threads) != ASYMBP_OK) {
        cli_fail(ctx, asymbp_ctx_last_status(ctx), "context settings");
        goto out;
    }
    /* Setting names are checked before any data is read, so a typo fails fast. */
    st = asymbp_feedback_check_setting(ctx, s.feedback);
    if (st == ASYMBP_E_NOMEM) {
        cli_fail(ctx, st, "--feedback");
        goto out;
    }
    if (st != ASYMBP_OK) {
        cli_error("--feedback %s: %s", s.feedback, asymbp_ctx_last_error(ctx));
        rc = 2;
        goto out;
    }
    /* the rule's own defaults (bm: a smaller step), unless given */
    st = asymbp_update_rule_find(ctx, s.update, &rule);
    if (st == ASYMBP_E_NOTFOUND || st == ASYMBP_E_INVALID) {
        cli_error("--update %s: %s", s.update, asymbp_ctx_last_error(ctx));
        rc = 2;
        goto out;
    }
    if (st == ASYMBP_OK) st = asymbp_update_rule_default_hyper(rule, &hp);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "--update");
        goto out;
    }
    if (!opt_given(&s, "--lr")) s.lr = hp.lr;
    if (!opt_given(&s, "--momentum")) s.momentum = hp.momentum;
    if ((kept = load_data(ctx, &s, &train, &test, &val, &scaler)) != 0) {
        rc = kept;   /* 2 for a usage error */
        goto out;
    }
    if (asymbp_dataset_shape(train, &c, &h, &w) != ASYMBP_OK) goto out;
    net_spec = s.net ? s.net : default_net(h, w);
    st = asymbp_net_from_spec(ctx, net_spec, c, h, w, (int64_t)asymbp_dataset_classes(train), s.bn, &net);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "--net");
        goto out;
    }
    st = asymbp_net_set_feedback(net, s.feedback);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "--feedback");
        goto out;
    }
    hp.lr = (float)s.lr;
    hp.momentum = (float)s.momentum;
    hp.weight_decay = (float)s.wd;
    st = asymbp_optimizer_create(net, s.update, &hp, &opt);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "--update");
        goto out;
    }
    batches = (asymbp_dataset_count(train) + (size_t)s.batch - 1) / (size_t)s.batch;
    if (!strcmp(s.lr_schedule, "cosine")) {
        st = asymbp_optimizer_set_schedule_cosine(opt, (uint64_t)s.epochs * batches, (float)s.lr_min);
        if (st != ASYMBP_OK) {
            cli_fail(ctx, st, "--lr-schedule");
            goto out;
        }
    }
    if (s.warmup > 0.0) {
        st = asymbp_optimizer_set_warmup(opt, (uint64_t)(s.warmup * (double)batches + 0.5));
        if (st != ASYMBP_OK) {
            cli_fail(ctx, st, "--warmup");
            goto out;
        }
    }
    if (*s.lr_steps) {
        uint64_t m[CLI_MAX_STEPS];
        int nm = parse_steps(s.lr_steps, m, CLI_MAX_STEPS);
        st = nm < 0 ? ASYMBP_E_INVALID : asymbp_optimizer_set_schedule_step(opt, m, (size_t)nm, (float)s.lr_gamma);
        if (st != ASYMBP_OK) {
            cli_fail(ctx, st, "--lr-steps");
            goto out;
        }
    }
    rs.s = &s;
    rs.net = net;
    rs.tty = isatty(2);
    rs.n_train = asymbp_dataset_count(train);
    rs.n_diag = asymbp_net_feedback_layer_count(net);
    if (rs.n_diag > MAX_DIAG) rs.n_diag = MAX_DIAG;
    tp.epochs = s.epochs;
    tp.batch = (size_t)s.batch;
    tp.checkpoint_every = s.checkpoint_every;
    tp.checkpoint_path = s.checkpoint_every > 0 ? ckpt : NULL;
    tp.progress = on_progress;
    tp.on_epoch = on_epoch;
    tp.user = &rs;
    tp.bn_stats = !strcmp(s.bn_stats, "recal") ? ASYMBP_BN_STATS_RECAL : ASYMBP_BN_STATS_EMA;
    tp.bn_recal_samples = (size_t)s.bn_recal_samples;
    if (s.probe_every > 0) {
        if (!s.out) {
            rc = cli_usage("--probe-every needs --out DIR (its figures go to DIR/probe.csv)");
            goto out;
        }
        tp.probe_every = s.probe_every;
        tp.on_probe = on_probe;
    }
    st = asymbp_trainer_create(net, opt, train, test, &tp, &tr);
    if (st == ASYMBP_OK) st = asymbp_trainer_set_validation(tr, val);
    if (st == ASYMBP_OK) st = asymbp_trainer_set_scaler(tr, scaler);
    if (st != ASYMBP_OK) {
        cli_fail(ctx, st, "setting up training");
        goto out;
    }
    rs.tr = tr;
    if ((rc = dist_attach(ctx, tr, opt, &s)) != 0) goto out;   /* --dist: collective */
    rc = 1;

    /* The output folder is touched only once everything could be set up, so a run that fails on
     * bad input leaves nothing behind. */
    if (resuming) {
        if (writer) clean_stale_tmp(s.out);
        st = asymbp_trainer_load_checkpoint(tr, ckpt);
        if (st != ASYMBP_OK) {
            cli_fail(ctx, st, "--resume");
            goto out;
        }
        if (!s.quiet) fprintf(stderr, "resuming %s after epoch %d of %d\n", s.resume, asymbp_trainer_epochs_done(tr), s.epochs);
    }
    if (resuming && writer) {
        /* an extended run (--epochs) is resumed next time without repeating --epochs */
        if (s.epochs != saved_epochs && settings_save(s.out, &s) != 0) {
            cli_error("cannot write %s/settings.txt: %s", s.out, strerror(errno));
            goto out;
        }
        /* rows written after the checkpoint (a run that died before its next one) are dropped */
        kept = trim_curves(s.out, asymbp_trainer_epochs_done(tr));
        if (kept < 0) {
            cli_error("cannot rewrite %s: %s", curves, strerror(errno));
            goto out;
        }
        rs.curves = fopen(curves, "a");
        if (!rs.curves) {
            cli_error("cannot write %s: %s", curves, strerror(errno));
            goto out;
        }
        if (kept == 0 && ftell(rs.curves) == 0) curves_header(rs.curves, &s, rs.n_diag);
        /* rows the file lacks (it was lost or cut) are rebuilt from the checkpoint's metrics */
        for (int e = kept + 1; e <= asymbp_trainer_epochs_done(tr); e++) write_row(&rs, asymbp_trainer_metrics(tr, e), 0);
        if (s.probe_every > 0) {
            char pp[CLI_PATH_MAX + 32];
            if (trim_probe(s.out, asymbp_optimizer_step_count(opt)) != 0) {
                cli_error("cannot rewrite %s/probe.csv: %s", s.out, strerror(errno));
                goto out;
            }
            snprintf(pp, sizeof pp, "%s/probe.csv", s.out);
            rs.probe = fopen(pp, "a");
            if (!rs.probe) {
                cli_error("cannot write %s: %s", pp, strerror(errno));
                goto out;
            }
            if (ftell(rs.probe) == 0) fputs(PROBE_HEADER, rs.probe);
        }
    } else if (s.out && writer && !resuming) {
        if (!path_is_dir(s.out)) {
            if (mkdir(s.out, 0755) != 0) {
                cli_error("cannot create --out %s: %s", s.out, strerror(errno));
                goto out;
            }
            created_dir = 1;
        }
        clean_stale_tmp(s.out);
        if (settings_save(s.out, &s) != 0) {
            cli_error("cannot write %s/settings.txt: %s", s.out, strerror(errno));
            goto fail_fresh;
        }
        rs.curves = fopen(curves, "w");
        if (!rs.curves) {
            cli_error("cannot write %s: %s", curves, strerror(errno));
            goto fail_fresh;
        }
        curves_header(rs.curves, &s, rs.n_diag);
        if (fflush(rs.curves) != 0 || fsync(fileno(rs.curves)) != 0) {
            cli_error("cannot write %s: %s", curves, strerror(errno));
            goto fail_fresh;
        }
        if (s.probe_every > 0) {
            char pp[CLI_PATH_MAX + 32];
            snprintf(pp, sizeof pp, "%s/probe.csv", s.out);
            rs.probe = fopen(pp, "w");
            if (!rs.probe || fputs(PROBE_HEADER, rs.probe) == EOF || fflush(rs.probe) != 0) {
                cli_error("cannot write %s: %s", pp, strerror(errno));
                goto fail_fresh;
            }
        }
    }
    if (rs.curves_failed) {
        cli_error("cannot write %s: %s", curves, strerror(rs.curves_errno));
        goto fail_fresh;
    }
    if (!s.quiet)
        fprintf(stderr, "%s train: %s (%zu train / %zu test, %lldx%lldx%lld, %zu classes), net %s%s, feedback %s, update %s "
                "(lr %g, momentum %g), %d epochs, batch %llu, seed %llu\n", cli_prog,
                  s.data, asymbp_dataset_count(train), asymbp_dataset_count(test), (long long)c, (long long)h, (long long)w,
                  asymbp_dataset_classes(train), net_spec, s.bn ? " + BN" : "", s.feedback, s.update, s.lr, s.momentum,
                  s.epochs, (unsigned long long)s.batch, (unsigned long long)s.seed);
    rs.t_run = rs.t_epoch = now_seconds();
    rs.first_epoch = asymbp_trainer_epochs_done(tr) + 1;
    run_st = asymbp_trainer_run(tr);
    if (run_st != ASYMBP_OK && run_st != ASYMBP_E_DIVERGED) {
        if (rs.tty && !s.quiet) fputc('\n', stderr);
        cli_fail(ctx, run_st, "training");
        goto fail_fresh;
    }
    if (rs.curves_failed) {
        cli_error("cannot write %s: %s", curves, strerror(rs.curves_errno));
        goto fail_fresh;
    }
    if (run_st == ASYMBP_E_DIVERGED) {
        const char *msg = asymbp_ctx_last_error(ctx);
        diverged_at = malloc(strlen(msg) + 1);
        if (!diverged_at) {
            cli_error("out of memory");
            goto fail_fresh;
        }
        strcpy(diverged_at, msg);
        if (!s.quiet) {
            if (rs.tty) fputc('\n', stderr);
            cli_error("%s", diverged_at);
        }
    }
    if (s.out && writer) {
        st = asymbp_model_save_with_scaler(net, scaler, model);
        if (st != ASYMBP_OK) {
            cli_fail(ctx, st, "saving the model");
            goto fail_fresh;
        }
    }
    {
        float tl = NAN, ta = NAN;
        if (run_st == ASYMBP_E_DIVERGED) {
            /* evaluate what is left: the last good weights */
            if (asymbp_net_evaluate(net, asymbp_dataset_features(test), asymbp_dataset_labels(test), asymbp_dataset_count(test),
                                    &tl, &ta) != ASYMBP_OK)
                ta = NAN;
        }
        summary_json(&json, &s, net_spec, tr, run_st, diverged_at, tl, ta);
        if (dist_json(&json, ctx, net) != 0) goto out;   /* --dist: ranks, traffic (collective) */
    }
    if (json.failed) {
        cli_error("out of memory writing the summary");
        goto fail_fresh;
    }
    if (s.out && writer && write_file_atomic(s.out, "summary.json", json.p, json.len) != 0) {
        cli_error("cannot write %s/summary.json: %s", s.out, strerror(errno));
        goto fail_fresh;
    }
    if (writer && (fputs(json.p, stdout) == EOF || fflush(stdout) != 0)) {
        cli_error("cannot write the summary to standard output: %s", strerror(errno));
        goto out;
    }
    if (s.out && writer) clean_stale_tmp(s.out);
    rc = 0;
    goto out;
fail_fresh:
    if (rs.curves) {
        fclose(rs.curves);
        rs.curves = NULL;
    }
    if (rs.probe) {
        fclose(rs.probe);
        rs.probe = NULL;
    }
    if (fresh_out) undo_fresh_run(s.out, created_dir);
out:
    sb_free(&json);
    free(diverged_at);
    if (rs.curves) fclose(rs.curves);
    if (rs.probe) fclose(rs.probe);
    asymbp_trainer_destroy(tr);
    asymbp_optimizer_destroy(opt);
    asymbp_net_destroy(net);
    asymbp_dataset_destroy(train);
    asymbp_dataset_destroy(test);
    asymbp_dataset_destroy(val);
    asymbp_scaler_destroy(scaler);
    asymbp_ctx_destroy(ctx);
    settings_free(&s);
    return dist_end(rc);
}
