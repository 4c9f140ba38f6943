/* The update-rule registry: copies of plugin vtables kept in the context, built-ins first. */
#include <stdio.h>
#include <string.h>
#include "update/update_impl.h"

typedef struct registry {
    asymbp_update_rule_t **items;
    size_t count, cap;
    int builtins_done;
} registry_t;


static void registry_free(asymbp_ctx_t *ctx)
{
    registry_t *reg = ctx->update_registry;
    size_t i;
    if (!reg) return;
    for (i = 0; i < reg->count; i++) {
        asymbp_update_rule_t *r = reg->items[i];
        if (r->user_free) r->user_free(r->user);
        asymbp__free(ctx, r);
    }
    asymbp__free(ctx, reg->items);
    asymbp__free(ctx, reg);
    ctx->update_registry = NULL;
    ctx->update_registry_free = NULL;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int name_eq(const char *a, const char *b)
{
    while (*a && lower((unsigned char)*a) == lower((unsigned char)*b)) a++, b++;
    return *a == '\0' && *b == '\0';
}

static size_t registry_index(const registry_t *reg, const char *name)
{
    size_t i;
    for (i = 0; reg && i < reg->count; i++)
        if (name_eq(reg->items[i]->name, name)) return i;
    return (size_t)-1;
}

static asymbp_update_rule_t *registry_lookup(const registry_t *reg, const char *name)
{
    size_t i = registry_index(reg, name);
    return i == (size_t)-1 ? NULL : reg->items[i];
}

/* Validate and copy vt into a new registration; the registry must exist. */
static asymbp_status_t registry_add(asymbp_ctx_t *ctx, const asymbp_update_rule_vtable_t *vt, void *user,
                                    void (*user_free)(void *), int builtin, asymbp_update_rule_t **out)
{
    registry_t *reg = ctx->update_registry;
    asymbp_update_rule_vtable_t copy;
    asymbp_update_rule_t *r;
    size_t len;
    asymbp_status_t st = asymbp__plugin_copy(ctx, "update_rule_register", vt, ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE, &copy,
                                             sizeof copy);
    /* built-in names such as "bm:b" use ':' */
    if (st == ASYMBP_OK) st = asymbp__plugin_name_check(ctx, "update_rule_register", copy.name, ASYMBP__RULE_NAME_MAX, !builtin);
    if (st != ASYMBP_OK) return st;
    len = strlen(copy.name);
    if (!copy.step)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "update_rule_register: rule '%s' has no step function", copy.name);
    if (registry_lookup(reg, copy.name))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "update_rule_register: a rule named '%s' is already registered",
                             copy.name);
    if (reg->count == reg->cap) {
        size_t cap = reg->cap ? 2 * reg->cap : 16;
        asymbp_update_rule_t **items = asymbp__calloc(ctx, cap, sizeof *items);
        if (!items) return asymbp__error(ctx, ASYMBP_E_NOMEM, "update_rule_register: out of memory");
        if (reg->count) memcpy(items, reg->items, reg->count * sizeof *items);
        asymbp__free(ctx, reg->items);
        reg->items = items;
        reg->cap = cap;
    }
    r = asymbp__calloc(ctx, 1, sizeof *r);
    if (!r) return asymbp__error(ctx, ASYMBP_E_NOMEM, "update_rule_register: out of memory");
    r->vt = copy;
    memcpy(r->name, copy.name, len + 1);
    r->vt.name = r->name;
    r->user = user;
    r->user_free = user_free;
    r->builtin = builtin;
    reg->items[reg->count++] = r;
    if (out) *out = r;
    return ASYMBP_OK;
}

asymbp_status_t asymbp__update_register_builtin(asymbp_ctx_t *ctx, const asymbp_update_rule_vtable_t *vt, void *user)
{
    if (registry_lookup(ctx->update_registry, vt->name)) return ASYMBP_OK;
    return registry_add(ctx, vt, user, NULL, 1, NULL);
}

asymbp_status_t asymbp__update_registry_ready(asymbp_ctx_t *ctx)
{
    registry_t *reg = ctx->update_registry;
    asymbp_status_t st;
    if (!reg) {
        reg = asymbp__calloc(ctx, 1, sizeof *reg);
        if (!reg) return asymbp__error(ctx, ASYMBP_E_NOMEM, "update rules: out of memory for the registry");
        ctx->update_registry = reg;
        ctx->update_registry_free = registry_free;
    }
    if (!reg->builtins_done) {
        st = asymbp__update_register_builtins(ctx);
        if (st != ASYMBP_OK) return st;
        reg->builtins_done = 1;
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp_update_rule_register(asymbp_ctx_t *ctx, const asymbp_update_rule_vtable_t *vt, void *user,
                                            void (*user_free)(void *user), asymbp_update_rule_t **out)
{
    asymbp_status_t st;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, vt, "vtable");
    st = asymbp__update_registry_ready(ctx);
    if (st != ASYMBP_OK) return st;
    return registry_add(ctx, vt, user, user_free, 0, out);
}

asymbp_status_t asymbp_update_rule_unregister(asymbp_ctx_t *ctx, const char *name)
{
    registry_t *reg;
    asymbp_update_rule_t *r;
    size_t i;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "rule name");
    reg = ctx->update_registry;
    i = registry_index(reg, name);
    if (i == (size_t)-1 || reg->items[i]->builtin)
        return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "update_rule_unregister: no user rule named '%.64s'%s", name,
                             i == (size_t)-1 ? "" : " (built-ins stay registered)");
    r = reg->items[i];
    if (r->users)
        return asymbp__error(ctx, ASYMBP_E_STATE, "update_rule_unregister: rule '%s' is used by %zu optimizer(s)",
                             r->name, r->users);
    memmove(reg->items + i, reg->items + i + 1, (reg->count - i - 1) * sizeof *reg->items);
    reg->count--;
    if (r->user_free) r->user_free(r->user);
    asymbp__free(ctx, r);
    return ASYMBP_OK;
}

/* Canonical name of a Batch Manhattan spelling ("bm:nsc+b" -> "bm:b:nsc"); -1 if not one. */
static int bm_canonical(const char *name, char *out, size_t cap)
{
    char variant = 'a';
    int nsc = 0, nvariant = 0;
    const char *p;
    if (strcmp(name, "batch-manhattan") == 0) name = "bm";
    if (strncmp(name, "bm", 2) != 0) return -1;
    p = name + 2;
    while (*p) {
        size_t len;
        if (*p != ':' && *p != '+') return -1;
        p++;
        len = strcspn(p, ":+");
        if (len == 1 && (p[0] == 'a' || p[0] == 'b' || p[0] == 'c')) {
            variant = p[0];
            nvariant++;
        } else if (len == 3 && strncmp(p, "nsc", 3) == 0) {
            nsc++;
        } else {
            return -1;
        }
        p += len;
    }
    if (nvariant > 1 || nsc > 1) return -1;
    snprintf(out, cap, "bm%s%s", variant == 'a' ? "" : variant == 'b' ? ":b" : ":c", nsc ? ":nsc" : "");
    return 0;
}

asymbp_status_t asymbp_update_rule_find(asymbp_ctx_t *ctx, const char *name, asymbp_update_rule_t **out)
{
    registry_t *reg;
    asymbp_update_rule_t *r;
    asymbp_status_t st;
    char canon[ASYMBP__RULE_NAME_MAX];
    char known[256];
    size_t i, used = 0;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "rule name");
    ASYMBP_CHECK_NULL(ctx, out, "out");
    st = asymbp__update_registry_ready(ctx);
    if (st != ASYMBP_OK) return st;
    reg = ctx->update_registry;
    r = registry_lookup(reg, name);
    if (!r && bm_canonical(name, canon, sizeof canon) == 0) r = registry_lookup(reg, canon);
    if (r) {
        *out = r;
        return ASYMBP_OK;
    }
    known[0] = '\0';
    for (i = 0; i < reg->count && used + 1 < sizeof known; i++) {
        int k = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", reg->items[i]->name);
        if (k < 0) break;
        used += (size_t)k;
    }
    return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "update rule '%.64s' is unknown (known: %s)", name, known);
}

size_t asymbp_update_rule_count(asymbp_ctx_t *ctx)
{
    if (!ctx || asymbp__update_registry_ready(ctx) != ASYMBP_OK) return 0;
    return ((registry_t *)ctx->update_registry)->count;
}

asymbp_update_rule_t *asymbp_update_rule_at(asymbp_ctx_t *ctx, size_t i)
{
    registry_t *reg;
    if (!ctx || asymbp__update_registry_ready(ctx) != ASYMBP_OK) return NULL;
    reg = ctx->update_registry;
    return i < reg->count ? reg->items[i] : NULL;
}

const char *asymbp_update_rule_name(const asymbp_update_rule_t *rule)
{
    return rule ? rule->name : "";
}
