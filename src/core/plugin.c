/* The plugin registry every kind shares (feedback policies, update rules, later communicators):
 * the version-1 size and ABI version checks, the copy that zero-fills members an older plugin
 * does not have, the name rules, and the per-kind lists of user registrations after the
 * kinds' static built-in tables.  The rules are in core_impl.h and docs/plugins.md. */
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

/* ---- The registry ------------------------------------------------------------------------------ */

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

/* Case-insensitive: name equals s[0..len). */
static int name_eq(const char *name, const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (!name[i] || lower((unsigned char)name[i]) != lower((unsigned char)s[i])) return 0;
    return name[len] == '\0';
}

static const asymbp__plugin_t *find_exact(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *s,
                                          size_t len)
{
    const asymbp__plugin_t *p;
    size_t i;
    for (i = 0; i < kind->builtin_count; i++)
        if (name_eq(kind->builtins[i]->name, s, len)) return kind->builtins[i];
    for (p = ctx ? ctx->plugins[kind->slot].head : NULL; p; p = p->next)
        if (name_eq(p->name, s, len)) return p;
    return NULL;
}

const asymbp__plugin_t *asymbp__plugin_find(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *s,
                                            size_t len)
{
    const asymbp__plugin_t *p = find_exact(ctx, kind, s, len);
    char canon[ASYMBP__PLUGIN_NAME_MAX];
    size_t i;
    if (p) return p;
    for (i = 0; i < kind->alias_count; i++)
        if (name_eq(kind->aliases[i].alias, s, len)) return find_exact(ctx, kind, kind->aliases[i].name, strlen(kind->aliases[i].name));
    if (kind->canonical && kind->canonical(s, len, canon, sizeof canon) == 0) return find_exact(ctx, kind, canon, strlen(canon));
    return NULL;
}

size_t asymbp__plugin_count(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind)
{
    return kind->builtin_count + (ctx ? ctx->plugins[kind->slot].count : 0);
}

const asymbp__plugin_t *asymbp__plugin_at(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, size_t i)
{
    const asymbp__plugin_t *p;
    if (i < kind->builtin_count) return kind->builtins[i];
    i -= kind->builtin_count;
    for (p = ctx ? ctx->plugins[kind->slot].head : NULL; p && i; p = p->next) i--;
    return p;
}

asymbp_status_t asymbp__plugin_add(asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *who,
                                   const asymbp__plugin_t *proto, const char *name, void *user,
                                   void (*user_free)(void *user), asymbp__plugin_t **out)
{
    struct asymbp__plugin_list *list = &ctx->plugins[kind->slot];
    const asymbp__plugin_t *taken;
    asymbp__plugin_t *e;
    size_t len;
    asymbp_status_t st = asymbp__plugin_name_check(ctx, who, name, ASYMBP__PLUGIN_NAME_MAX, 1);
    if (out) *out = NULL;
    if (st != ASYMBP_OK) return st;
    len = strlen(name);
    taken = asymbp__plugin_find(ctx, kind, name, len);
    if (taken && name_eq(taken->name, name, len))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: a %s named '%s' is already registered", who, kind->what, taken->name);
    if (taken)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: '%s' is reserved: it is a spelling of the %s '%s'", who, name,
                             kind->what, taken->name);
    e = asymbp__alloc(ctx, kind->entry_size);
    if (!e) return asymbp__error(ctx, ASYMBP_E_NOMEM, "%s: out of memory", who);
    memcpy(e, proto, kind->entry_size);
    e->next = NULL;
    memcpy(e->name_buf, name, len + 1);
    e->name = e->name_buf;
    e->user = user;
    e->user_free = user_free;
    e->builtin = 0;
    e->refs = 0;
    if (list->tail) list->tail->next = e;
    else list->head = e;
    list->tail = e;
    list->count++;
    asymbp__log(ctx, ASYMBP_LOG_DEBUG, "registered the %s '%s'", kind->what, e->name);
    if (out) *out = e;
    return ASYMBP_OK;
}

static void entry_free(asymbp_ctx_t *ctx, asymbp__plugin_t *e)
{
    if (e->user_free) e->user_free(e->user);
    asymbp__free(ctx, e);
}

asymbp_status_t asymbp__plugin_remove(asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *who,
                                      const char *name)
{
    struct asymbp__plugin_list *list = &ctx->plugins[kind->slot];
    const asymbp__plugin_t *found = asymbp__plugin_find(ctx, kind, name, strlen(name));
    asymbp__plugin_t *e, *prev = NULL;
    if (!found) return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "%s: no %s named '%.64s'", who, kind->what, name);
    if (found->builtin)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "%s: '%s' is a built-in %s; built-ins stay registered", who,
                             found->name, kind->what);
    if (found->refs)
        return asymbp__error(ctx, ASYMBP_E_STATE, "%s: the %s '%s' is still used by %zu object(s)", who, kind->what,
                             found->name, found->refs);
    for (e = list->head; e && e != found; e = e->next) prev = e;
    if (!e) return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "%s: no %s named '%.64s'", who, kind->what, name);
    if (prev) prev->next = e->next;
    else list->head = e->next;
    if (list->tail == e) list->tail = prev;
    list->count--;
    asymbp__log(ctx, ASYMBP_LOG_DEBUG, "unregistered the %s '%s'", kind->what, e->name);
    entry_free(ctx, e);
    return ASYMBP_OK;
}

void asymbp__plugin_ref(const asymbp__plugin_t *p)
{
    /* user entries live in context memory; built-ins are read-only static tables */
    if (p && !p->builtin) ((asymbp__plugin_t *)p)->refs++;
}

void asymbp__plugin_unref(const asymbp__plugin_t *p)
{
    if (p && !p->builtin && p->refs) ((asymbp__plugin_t *)p)->refs--;
}

asymbp_status_t asymbp__plugin_lookup(asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, const char *name,
                                      const asymbp__plugin_t **out)
{
    char known[256];
    *out = asymbp__plugin_find(ctx, kind, name, strlen(name));
    if (*out) return ASYMBP_OK;
    asymbp__plugin_known(ctx, kind, known, sizeof known);
    return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "%s '%.64s' is unknown (known: %s)", kind->what, name, known);
}

void asymbp__plugin_known(const asymbp_ctx_t *ctx, const asymbp__plugin_kind_t *kind, char *buf, size_t cap)
{
    size_t i, n = asymbp__plugin_count(ctx, kind), used = 0;
    if (!cap) return;
    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        const char *name = asymbp__plugin_at(ctx, kind, i)->name;
        size_t l = strlen(name) + (i ? 2 : 0);
        if (used + l + 1 > cap) break;
        if (i) { buf[used++] = ','; buf[used++] = ' '; }
        memcpy(buf + used, name, strlen(name) + 1);
        used += strlen(name);
    }
}

void asymbp__plugin_free_all(asymbp_ctx_t *ctx)
{
    int k;
    for (k = 0; k < ASYMBP__PLUGIN_SLOTS; k++) {
        asymbp__plugin_t *e = ctx->plugins[k].head, *next;
        for (; e; e = next) {
            next = e->next;
            entry_free(ctx, e);
        }
        memset(&ctx->plugins[k], 0, sizeof ctx->plugins[k]);
    }
}
