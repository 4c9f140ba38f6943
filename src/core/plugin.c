/* What registering any plugin vtable shares: the version-1 size and ABI version checks, the
 * copy that zero-fills members an older plugin does not have, and the name rules. */
#include <string.h>
#include "core/core_impl.h"
#include "asymbp/plugin.h"

asymbp_status_t asymbp__plugin_copy(asymbp_ctx_t *ctx, const char *who, const void *vt, size_t min_size, void *dst,
                                    size_t dst_size)
{
    uint32_t head[2]; /* every vtable starts with uint32_t struct_size, uint32_t abi_version */
    size_t n;
    memcpy(head, vt, sizeof head);
    if (head[0] < min_size)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "%s: vtable struct_size %u is smaller than version 1 (%u bytes)", who,
                             (unsigned)head[0], (unsigned)min_size);
    if (head[1] != ASYMBP_PLUGIN_ABI_VERSION)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "%s: plugin abi_version %u is not supported (this library: %u)", who,
                             (unsigned)head[1], (unsigned)ASYMBP_PLUGIN_ABI_VERSION);
    n = head[0] < dst_size ? head[0] : dst_size;
    memset(dst, 0, dst_size);
    memcpy(dst, vt, n);
    head[0] = (uint32_t)dst_size;
    memcpy(dst, head, sizeof head[0]);
    return ASYMBP_OK;
}

asymbp_status_t asymbp__plugin_name_check(asymbp_ctx_t *ctx, const char *who, const char *name, size_t max, int strict)
{
    size_t len;
    const char *p;
    if (!name || !name[0]) return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: the plugin has no name", who);
    len = strlen(name);
    if (len >= max)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: name '%.40s...' is %zu bytes long (max %zu)", who, name, len, max - 1);
    for (p = name; strict && *p; p++) {
        int c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: name '%s' may only hold letters, digits, '-', '_' and '.'", who,
                                 name);
    }
    return ASYMBP_OK;
}
