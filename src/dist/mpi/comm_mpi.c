/* The MPI communicator (libasymbp-mpi): asymbp's collectives as MPI calls on a duplicate of the
 * host's communicator.  Built only with `make MPI=1`; uses asymbp's public headers for its types
 * and nothing of the library itself, so it can be loaded next to any copy of libasymbp (the tool
 * links the library statically and loads this module with dlopen). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>
#include "asymbp/mpi.h"

struct asymbp_mpi {
    MPI_Comm comm;
    int rank, size;
    char err[MPI_MAX_ERROR_STRING + 96];
};

static int we_started;   /* asymbp_mpi_init started MPI: asymbp_mpi_finalize ends it */

/* MPI counts are ints: large buffers go in pieces of at most this many elements. */
#define PIECE (1 << 28)

static asymbp_status_t fail(asymbp_mpi_t *m, int rc, const char *op, size_t n)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", rc);
    else text[len < (int)sizeof text ? len : (int)sizeof text - 1] = '\0';
    snprintf(m->err, sizeof m->err, "%s of %zu elements: %s", op, n, text);
    return ASYMBP_E_COMM;
}

static int m_rank(void *u) { return ((asymbp_mpi_t *)u)->rank; }
static int m_size(void *u) { return ((asymbp_mpi_t *)u)->size; }

static asymbp_status_t sum(asymbp_mpi_t *m, void *buf, size_t n, MPI_Datatype type, size_t width, const char *op)
{
    char *p = buf;
    while (n > 0) {
        int k = n > PIECE ? PIECE : (int)n;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, k, type, MPI_SUM, m->comm);
        if (rc != MPI_SUCCESS) return fail(m, rc, op, n);
        p += (size_t)k * width;
        n -= (size_t)k;
    }
    return ASYMBP_OK;
}

static asymbp_status_t m_sum_f32(void *u, float *buf, size_t n)
{
    return sum(u, buf, n, MPI_FLOAT, sizeof(float), "MPI_Allreduce (float)");
}

static asymbp_status_t m_sum_int(void *u, void *buf, size_t n, asymbp_comm_int_t type)
{
    switch (type) {
    case ASYMBP_COMM_INT8: return sum(u, buf, n, MPI_INT8_T, 1, "MPI_Allreduce (int8)");
    case ASYMBP_COMM_INT16: return sum(u, buf, n, MPI_INT16_T, 2, "MPI_Allreduce (int16)");
    case ASYMBP_COMM_INT32: return sum(u, buf, n, MPI_INT32_T, 4, "MPI_Allreduce (int32)");
    }
    snprintf(((asymbp_mpi_t *)u)->err, sizeof ((asymbp_mpi_t *)u)->err, "unknown integer type %d", (int)type);
    return ASYMBP_E_INVALID;
}

static asymbp_status_t m_bcast(void *u, void *buf, size_t bytes, int root)
{
    asymbp_mpi_t *m = u;
    char *p = buf;
    size_t n = bytes;
    while (n > 0) {
        int k = n > PIECE ? PIECE : (int)n;
        int rc = MPI_Bcast(p, k, MPI_BYTE, root, m->comm);
        if (rc != MPI_SUCCESS) return fail(m, rc, "MPI_Bcast", bytes);
        p += k;
        n -= (size_t)k;
    }
    return ASYMBP_OK;
}

static asymbp_status_t m_barrier(void *u)
{
    asymbp_mpi_t *m = u;
    int rc = MPI_Barrier(m->comm);
    return rc == MPI_SUCCESS ? ASYMBP_OK : fail(m, rc, "MPI_Barrier", 0);
}

static const char *m_last_error(void *u)
{
    return ((asymbp_mpi_t *)u)->err;
}

static const asymbp_comm_vtable_t vtable = {
    (uint32_t)sizeof(asymbp_comm_vtable_t), ASYMBP_PLUGIN_ABI_VERSION, "mpi", m_rank, m_size, m_sum_f32, m_sum_int,
    m_bcast, m_barrier, m_last_error
};

const asymbp_comm_vtable_t *asymbp_mpi_vtable(void) { return &vtable; }

asymbp_status_t asymbp_mpi_init(int *argc, char ***argv)
{
    int inited = 0, finalized = 0, provided = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return ASYMBP_E_COMM;
    if (inited) return ASYMBP_OK;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return ASYMBP_E_COMM;
    we_started = 1;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_mpi_finalize(void)
{
    int finalized = 0;
    if (!we_started) return ASYMBP_OK;
    MPI_Finalized(&finalized);
    we_started = 0;
    if (finalized) return ASYMBP_OK;
    return MPI_Finalize() == MPI_SUCCESS ? ASYMBP_OK : ASYMBP_E_COMM;
}

void asymbp_mpi_abort(int code)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

asymbp_status_t asymbp_mpi_create(const void *mpi_comm, asymbp_mpi_t **out)
{
    asymbp_mpi_t *m;
    int inited = 0, finalized = 0;
    MPI_Comm base = mpi_comm ? *(const MPI_Comm *)mpi_comm : MPI_COMM_WORLD;
    if (!out) return ASYMBP_E_INVALID;
    *out = NULL;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized) return ASYMBP_E_COMM;
    m = calloc(1, sizeof *m);
    if (!m) return ASYMBP_E_NOMEM;
    if (MPI_Comm_dup(base, &m->comm) != MPI_SUCCESS) {
        free(m);
        return ASYMBP_E_COMM;
    }
    if (MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN) != MPI_SUCCESS || MPI_Comm_rank(m->comm, &m->rank) != MPI_SUCCESS ||
        MPI_Comm_size(m->comm, &m->size) != MPI_SUCCESS) {
        MPI_Comm_free(&m->comm);
        free(m);
        return ASYMBP_E_COMM;
    }
    *out = m;
    return ASYMBP_OK;
}

void asymbp_mpi_free(void *mpi)
{
    asymbp_mpi_t *m = mpi;
    int finalized = 0;
    if (!m) return;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&m->comm);
    free(m);
}

const char *asymbp_mpi_library(void)
{
    static char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!text[0] && MPI_Get_library_version(text, &len) == MPI_SUCCESS) {
        char *nl = strchr(text, '\n');
        if (nl) *nl = '\0';   /* the first line: name and version */
    }
    return text;
}
