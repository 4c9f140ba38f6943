/** @file
 * @brief What every plugin vtable (update rules, feedback policies, communicators) shares: the
 * plugin ABI version and the description of one learnable parameter tensor.
 *
 * Every plugin kind is kept in one registry with one set of rules (names, reserved aliases,
 * built-ins first, queries that never allocate, unregistering, user_free): docs/plugins.md. */
#ifndef ASYMBP_PLUGIN_H
#define ASYMBP_PLUGIN_H
#include <stddef.h>
#include <stdint.h>
#include "asymbp/export.h"
#include "asymbp/status.h"
#ifdef __cplusplus
extern "C" {
#endif

/** Version of the plugin vtable semantics.  A plugin stores it in its vtable's abi_version; the
 * library refuses a vtable whose abi_version it does not know (::ASYMBP_E_UNSUPPORTED).  Bumped only
 * when the meaning of existing members changes; appending members does not bump it.
 * @since 0.1 */
#define ASYMBP_PLUGIN_ABI_VERSION 1

/** What a learnable parameter tensor is.  Values are pinned; new kinds are appended.
 * @since 0.1 */
typedef enum asymbp_param_kind {
    ASYMBP_PARAM_WEIGHT = 0,   /**< dense [out][in] or conv2d [oc][ic][kh][kw] weights */
    ASYMBP_PARAM_BIAS = 1,     /**< dense or conv2d bias */
    ASYMBP_PARAM_BN_SCALE = 2, /**< batch-norm gamma */
    ASYMBP_PARAM_BN_SHIFT = 3  /**< batch-norm beta */
} asymbp_param_kind_t;

/** Description of one parameter tensor, filled by the library and passed (borrowed, valid for the
 * call only) to a plugin's init.  Starts with struct_size: members are only ever appended, so a
 * plugin compiled against an older header reads the members it knows.
 * @since 0.1 */
typedef struct asymbp_param_info {
    size_t struct_size;          ///< sizeof as the library was compiled
    const char *name;            ///< "dense0.weight", "bn1.scale", ...
    asymbp_param_kind_t kind;    ///< what the tensor is
    int layer_index;             ///< index of the owning layer in its net; -1 when not in a net
    size_t numel;                ///< number of floats
    int ndim;                    ///< 1..4
    int64_t shape[4];            ///< the first ndim entries are used
    /** fan-in: weights: dense in, conv ic*kh*kw; else 0 */
    size_t fan_in, fan_out;      ///< fan-out: weights: dense out, conv oc*kh*kw; else 0
    const float *value;          ///< the parameter's current values (numel floats)
} asymbp_param_info_t;

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_PLUGIN_H */
