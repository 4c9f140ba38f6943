/**
 * @file asymbp/mpi.h
 * @brief The MPI communicator: libasymbp-mpi, an optional module built with `make MPI=1`
 * (pkg-config: asymbp-mpi).
 *
 * It depends on MPI, the core library libasymbp does not; this header does not include
 * `<mpi.h>` either.  See docs/distributed.md.
 *
 * In a host program (every rank runs it, for example `mpirun -np 4 ./host`):
 *
 * @code
 *     asymbp_mpi_t *m = NULL;
 *     asymbp_comm_t *comm = NULL;
 *     asymbp_mpi_init(&argc, &argv);                 // or the host's own MPI_Init
 *     asymbp_mpi_create(NULL, &m);                   // a duplicate of MPI_COMM_WORLD
 *     asymbp_comm_register(ctx, asymbp_mpi_vtable(), m, asymbp_mpi_free, &comm);
 *     asymbp_trainer_set_comm(trainer, comm, ASYMBP_DIST_EXACT);
 *     ... asymbp_trainer_run(trainer) on every rank ...
 *     asymbp_ctx_destroy(ctx);                       // frees m (before MPI ends)
 *     asymbp_mpi_finalize();
 * @endcode
 *
 * The module calls MPI from the thread that calls the library (MPI_THREAD_FUNNELED is enough:
 * asymbp's worker threads never call it).
 */
#ifndef ASYMBP_MPI_H
#define ASYMBP_MPI_H
#include "asymbp/export.h"
#include "asymbp/status.h"
#include "asymbp/dist.h"
#ifdef __cplusplus
extern "C" {
#endif

/** One MPI communicator as asymbp uses it (opaque). */
typedef struct asymbp_mpi asymbp_mpi_t;

/**
 * Start MPI unless the host already has (MPI_Init_thread, MPI_THREAD_FUNNELED).
 * @param argc the host's argc, or NULL
 * @param argv the host's argv, or NULL
 * @return ASYMBP_OK (also when MPI was running), ASYMBP_E_COMM (MPI could not start, or was
 *         already finalized).
 * @since 0.2
 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_mpi_init(int *argc, char ***argv);
/**
 * End MPI if asymbp_mpi_init started it (after every asymbp_mpi_t is freed: destroy the contexts
 * they are registered in first).
 * @return ASYMBP_OK or ASYMBP_E_COMM.
 * @since 0.2
 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_mpi_finalize(void);
/**
 * End every process of the job at once (MPI_Abort on MPI_COMM_WORLD with this exit code): what a
 * rank does when it cannot go on, so the others do not wait for it in a collective.
 * @param code the exit code of the job
 * @since 0.2
 */
ASYMBP_API void asymbp_mpi_abort(int code);

/**
 * A communicator over a duplicate of `*(MPI_Comm *)mpi_comm` (NULL: MPI_COMM_WORLD), so asymbp's
 * collectives never mix with the host's; its errors are returned (MPI_ERRORS_RETURN) and become
 * ASYMBP_E_COMM with MPI's text.  MPI must be running.
 * @param mpi_comm a pointer to the host's MPI_Comm to duplicate, or NULL for MPI_COMM_WORLD
 * @param out receives the object, owned by the caller until it is registered with
 *        asymbp_mpi_free as user_free (the registration then owns it)
 * @return ASYMBP_OK, ASYMBP_E_INVALID (NULL out), ASYMBP_E_COMM (MPI not running, or failed),
 *         ASYMBP_E_NOMEM.
 * @since 0.2
 */
ASYMBP_API ASYMBP_NODISCARD asymbp_status_t asymbp_mpi_create(const void *mpi_comm, asymbp_mpi_t **out);
/**
 * Free the duplicate communicator and the object; a user_free for asymbp_comm_register.
 * @param mpi an asymbp_mpi_t (NULL accepted)
 * @since 0.2
 */
ASYMBP_API void asymbp_mpi_free(void *mpi);
/**
 * The communicator vtable (name "mpi"), to register with an asymbp_mpi_t as user data.
 * @return a static vtable: never NULL, never freed.
 * @since 0.2
 */
ASYMBP_API const asymbp_comm_vtable_t *asymbp_mpi_vtable(void);
/**
 * The MPI library's own description (MPI_Get_library_version), such as "Open MPI v4.1.4, ...".
 * @return static text.
 * @since 0.2
 */
ASYMBP_API const char *asymbp_mpi_library(void);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_MPI_H */
