/* The asymbp tool's shared declarations: run settings, the option table (each option declared
 * once: name, type, range, default, help, whether a run saves it), output helpers and the
 * commands.  Private to tools/. */
#ifndef ASYMBP_CLI_H
#define ASYMBP_CLI_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "asymbp/asymbp.h"

#define CLI_PATH_MAX 4096
#define CLI_MAX_STEPS 32

/* DATADIR as seen from BINDIR (the Makefile passes it; relative, so nothing of the build folder) */
#ifndef ASYMBP_DATA_REL
#define ASYMBP_DATA_REL "../share/asymbp/data"
#endif

extern const char *cli_prog;
extern const char *cli_command;   /* the subcommand being run (usage hints), NULL before */

/* ---- settings ------------------------------------------------------------------------------- */

/* Everything a command reads from its options.  Strings point into argv or into `owned`. */
typedef struct settings {
    /* data */
    const char *data, *train_path, *test_path;
    double val_split;
    /* network and learning rule */
    const char *net, *feedback, *update, *lr_steps, *lr_schedule, *bn_stats;
    int bn;
    double lr, momentum, wd, lr_gamma, lr_min, warmup;
    uint64_t bn_recal_samples;
    /* run */
    int epochs, threads, checkpoint_every, diag, quiet;
    uint64_t batch, seed, probe_every;
    const char *out, *resume;
    /* distributed training (dist.c) */
    const char *dist, *bm_mode;
    /* gradcheck */
    const char *input;
    uint64_t classes, gc_batch;
    /* sweep */
    const char *sweep_out, *shard;
    int jobs, dry_run;
    /* which options were given on the command line (or read from settings.txt), by table index */
    unsigned char given[64];
    /* strings read from a settings file, freed by settings_free */
    char *owned[32];
    size_t n_owned;
} settings_t;

/* Commands an option belongs to (cli_opt_t.cmds). */
#define CMD_TRAIN 0x1u
#define CMD_EVAL 0x2u
#define CMD_GRADCHECK 0x4u
#define CMD_SWEEP 0x8u

typedef enum opt_type {
    OT_FLAG,     /* no value: sets an int to 1 */
    OT_INT,      /* int in [lo, hi] */
    OT_U64,      /* uint64_t in [lo, hi] */
    OT_DOUBLE,   /* double in [lo, hi] (finite) */
    OT_STR,      /* any non-empty text */
    OT_STEPS     /* a rising list of epochs "E1,E2,..." (each in [lo, hi]) */
} opt_type_t;

typedef struct cli_opt {
    const char *name;      /* "--lr" */
    const char *alias;     /* "-q", or NULL */
    const char *metavar;   /* "X" (NULL for a flag) */
    opt_type_t type;
    double lo, hi;         /* range of numbers (and of each step of OT_STEPS) */
    const char *def;       /* default as shown in help and written by settings_default */
    const char *section;   /* help heading */
    const char *help;      /* one sentence or two; wrapped by the help printer */
    unsigned cmds;         /* CMD_* it belongs to */
    const char *key;       /* key in a run's settings.txt; NULL: not saved */
    size_t offset;         /* of the value in settings_t */
} cli_opt_t;

extern const cli_opt_t cli_opts[];
extern const size_t cli_opt_count;

/* Index of an option by name (or alias) for a command; -1 when none. */
int opt_find(unsigned cmd, const char *name);
/* 1 when the option of that name was given. */
int opt_given(const settings_t *s, const char *name);
void settings_default(settings_t *s);
void settings_free(settings_t *s);
/* Parse argv for a command.  Positional arguments go to pos (up to pos_cap; their count to
 * *n_pos; pos NULL: none allowed).  Returns 0; on a usage error prints the message and returns
 * 2; "--help" prints the command's help and returns -1 (exit 0). */
int opts_parse(unsigned cmd, int argc, char **argv, settings_t *s, const char **pos, int pos_cap, int *n_pos);
/* Parse one value into the option's slot: 0, or -1 with a reason in why (cap bytes). */
int opt_set(settings_t *s, int idx, const char *value, char *why, size_t cap);
/* Parse "E1,E2,..." (rising, each in [lo, hi]) into m; the count, or -1. */
int parse_steps(const char *v, uint64_t *m, int cap);
/* Help of a command, generated from the table. */
void print_command_help(unsigned cmd, FILE *f);
void print_overview(FILE *f);
/* The man page asymbp(1) in roff, generated from the table (asymbp --man). */
void print_man(FILE *f);

/* settings.txt of a run: every option with a key, absolute paths.  Written atomically.
 * 0, or -1 with errno set. */
int settings_save(const char *dir, const settings_t *s);
/* Read DIR/settings.txt into s (defaults first): every value is checked like the command line;
 * an unknown key, a malformed line, a value out of range or a file without settings is refused
 * with a message naming the file and line.  0, or 1 after the message. */
int settings_load(const char *dir, settings_t *s);

/* ---- output ---------------------------------------------------------------------------------- */

/* A growable text buffer; `failed` once an allocation failed (then it stays empty). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf_t;
void sb_free(sbuf_t *b);
void sb_puts(sbuf_t *b, const char *s);
void sb_printf(sbuf_t *b, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sb_json_str(sbuf_t *b, const char *s);
void sb_json_num(sbuf_t *b, double v);

/* "asymbp: " + message on stderr; returns 1. */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* A library failure: "asymbp: WHAT: <status text>: <context detail>"; returns 1. */
int cli_fail(asymbp_ctx_t *ctx, asymbp_status_t st, const char *what);
/* A usage error: message plus the help hint; returns 2. */
int cli_usage(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* A context with the C allocator, or NULL after a message. */
asymbp_ctx_t *cli_ctx(void);

/* Write text to DIR/NAME atomically (temporary file, fsync, rename).  0 or -1 (errno). */
int write_file_atomic(const char *dir, const char *name, const char *text, size_t len);
/* Remove temporary files a killed run left in dir (NAME.tmp and NAME.tmp.PID of the run's own
 * files, PID not alive).  Returns how many were removed. */
int clean_stale_tmp(const char *dir);
int path_is_dir(const char *p);
int path_exists(const char *p);
double now_seconds(void);

/* ---- data ------------------------------------------------------------------------------------ */

/* The folders a data set name is looked up in: $ASYMBP_DATA_DIR, then, next to the executable,
 * ../data (a build tree) and ../share/asymbp/data (an installation).  Fills roots (up to 4);
 * returns the count.  Strings are static. */
size_t data_roots(const char **roots);
/* Load the data the settings name (--data or --train/--test) and, when val is not NULL, split
 * --val-split off the training set into *val (NULL when the split is 0).  Then, when scaler is
 * not NULL: *scaler NULL on entry fits a per-channel standardisation on the (remaining) training
 * set and applies it to every set, returning it in *scaler (the caller frees it); a scaler given
 * in *scaler (a model's own) is applied to the test set only.  0, or 1 after a message. */
int load_data(asymbp_ctx_t *ctx, settings_t *s, asymbp_dataset_t **train, asymbp_dataset_t **test, asymbp_dataset_t **val,
              asymbp_scaler_t **scaler);
/* The default net for a sample shape. */
const char *default_net(int64_t h, int64_t w);

/* ---- distributed training (dist.c; docs/distributed.md) ------------------------------------- */

/* Start what --dist asks for, right after the options are parsed: nothing (but refuse to run as
 * one of several MPI ranks without --dist), "local", or "mpi" (load libasymbp-mpi, start MPI;
 * ranks other than 0 become quiet and name their rank in messages).  0, or an exit status after
 * a message. */
int dist_start(settings_t *s);
/* This process's rank and the number of ranks (0 and 1 without --dist mpi). */
int dist_rank(void);
int dist_ranks(void);
/* Register the communicator in ctx and make tr data-parallel in the --bm-mode (collective).
 * 0, or an exit status after a message. */
int dist_attach(asymbp_ctx_t *ctx, asymbp_trainer_t *tr, asymbp_optimizer_t *opt, const settings_t *s);
/* Append the run's distributed figures to the summary JSON (nothing without --dist): ranks, mode,
 * traffic, every rank's weight fingerprint.  Collective.  0, or 1 after a message. */
int dist_json(sbuf_t *b, asymbp_ctx_t *ctx, asymbp_net_t *net);
/* After the context is destroyed: end MPI; a failure (rc != 0) on one of several ranks ends the
 * whole job so that no rank waits for this one.  Returns rc (1 when MPI did not end cleanly). */
int dist_end(int rc);
/* asymbp sweep --dist mpi: every rank waits for the others.  0, or 1 after a message. */
int dist_barrier(void);
/* asymbp sweep --dist mpi: a sum of int32 over the ranks; bytes broadcast from rank root */
int dist_sum_int32(int32_t *buf, size_t n);
int dist_broadcast(void *buf, size_t bytes, int root);

/* ---- commands -------------------------------------------------------------------------------- */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);
int cmd_sweep(int argc, char **argv);

#endif
