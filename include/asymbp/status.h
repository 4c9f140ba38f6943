/** @file
 * @brief Status codes returned by every fallible asymbp function. */
#ifndef ASYMBP_STATUS_H
#define ASYMBP_STATUS_H
#include "asymbp/export.h"
#ifdef __cplusplus
extern "C" {
#endif

/** Status of a call.  Values are pinned: never renumber or reuse one.  New codes are appended
 * (more negative).  asymbp_ctx_last_error() gives the detail of a failure. */
typedef enum asymbp_status {
    ASYMBP_OK = 0,             /**< success */
    ASYMBP_E_INVALID = -1,     /**< NULL handle, zero size, bad argument value */
    ASYMBP_E_NOMEM = -2,       /**< the allocator returned NULL */
    ASYMBP_E_SHAPE = -3,       /**< shapes do not fit together */
    ASYMBP_E_STATE = -4,       /**< call not valid in the object's current state (for example not bound) */
    ASYMBP_E_UNSUPPORTED = -5, /**< unknown plugin ABI version / struct size, unsupported option */
    ASYMBP_E_PLUGIN = -6,      /**< a user plugin callback returned an error */
    ASYMBP_E_IO = -7,          /**< a file could not be opened, read or written */
    ASYMBP_E_FORMAT = -8,      /**< malformed file or text (model, dataset, network spec) */
    ASYMBP_E_DIVERGED = -9,    /**< NaN or Inf appeared in a loss or in weights */
    ASYMBP_E_RANGE = -10,      /**< a value is out of its allowed range (label >= classes, NaN input) */
    ASYMBP_E_NOTFOUND = -11,   /**< a named item (setting, plugin, data set) does not exist */
    ASYMBP_E_COMM = -12        /**< a collective operation between ranks failed, or the ranks
                                    disagree (since 0.2; asymbp/dist.h) */
} asymbp_status_t;

/** One-line description of a status ("shapes do not fit together").
 * @param s any value, known or not
 * @return static text, never NULL; an unknown value gives "unknown status"
 * @since 0.1 */
ASYMBP_API const char *asymbp_strerror(asymbp_status_t s);
/** The enumerator's name ("ASYMBP_E_SHAPE").
 * @param s any value, known or not
 * @return static text, never NULL; "ASYMBP_E_UNKNOWN" for an unknown value
 * @since 0.1 */
ASYMBP_API const char *asymbp_status_name(asymbp_status_t s);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_STATUS_H */
