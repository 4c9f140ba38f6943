/* The feedback-policy registry: copies of plugin vtables kept in the context, built-ins first. */
#include <string.h>
#include "feedback/feedback_impl.h"

typedef struct fb_registry {
    asymbp__fb_entry_t *head, *tail;  /* registered, in order */
    asymbp__fb_entry_t *zombies;      /* unregistered but still used by some instance */
    size_t count;
    int builtins_done;
    int in_builtins;                  /* registering the built-ins right now */
} fb_registry_t;

static void entry_free(asymbp_ctx_t *ctx, asymbp__fb_entry_t *e)
{
    if (e->user_free) e->user_free(e->user);
    asymbp__free(ctx, e);
}

static void registry_free(asymbp_ctx_t *ctx)
{
    fb_registry_t *reg = ctx->fb_registry;
    asymbp__fb_entry_t *e, *next;
    if (!reg) return;
    for (e = reg->head; e; e = next) { next = e->next; entry_free(ctx, e); }
    for (e = reg->zombies; e; e = next) { next = e->next; entry_free(ctx, e); }
    asymbp__free(ctx, reg);
    ctx->fb_registry = NULL;
    ctx->fb_registry_free = NULL;
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

/* Case-insensitive comparison of name with the first len bytes of s. */
static int name_eq(const char *name, const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (!name[i] || lower((unsigned char)name[i]) != lower((unsigned char)s[i])) return 0;
    return name[len] == '\0';
}

static asymbp__fb_entry_t *find(const fb_registry_t *reg, const char *s, size_t len)
{
    asymbp__fb_entry_t *e;
    if (name_eq("bp", s, len)) { s = "sym"; len = 3; }
    else if (name_eq("fa", s, len)) { s = "rndf"; len = 4; }
    for (e = reg ? reg->head : NULL; e; e = e->next)
        if (name_eq(e->name, s, len)) return e;
    return NULL;
}

asymbp_status_t asymbp__fb_registry(asymbp_ctx_t *ctx)
{
    fb_registry_t *reg = ctx->fb_registry;
    asymbp_status_t st;
    if (!reg) {
        reg = asymbp__calloc(ctx, 1, sizeof *reg);
        if (!reg) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback: out of memory for the policy registry");
        ctx->fb_registry = reg;
        ctx->fb_registry_free = registry_free;
    }
    if (!reg->builtins_done && !reg->in_builtins) {
        reg->in_builtins = 1;
        st = asymbp__fb_register_builtins(ctx);
        reg->in_builtins = 0;
        if (st != ASYMBP_OK) return st;
        reg->builtins_done = 1;
    }
    return ASYMBP_OK;
}

asymbp_status_t asymbp_feedback_register(asymbp_ctx_t *ctx, const asymbp_feedback_vtable_t *vt, void *user,
                                         void (*user_free)(void *user))
{
    fb_registry_t *reg;
    asymbp_feedback_vtable_t copy;
    asymbp__fb_entry_t *e;
    size_t len;
    asymbp_status_t st;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, vt, "vtable");
    st = asymbp__plugin_copy(ctx, "feedback_register", vt, ASYMBP_FEEDBACK_VTABLE_MIN_SIZE, &copy, sizeof copy);
    if (st == ASYMBP_OK) st = asymbp__plugin_name_check(ctx, "feedback_register", copy.name, ASYMBP__FB_NAME_MAX, 1);
    if (st != ASYMBP_OK) return st;
    len = strlen(copy.name);
    if (!(copy.flags & ASYMBP_FEEDBACK_SYMMETRIC) && !copy.init && !copy.refresh)
        return asymbp__error(ctx, ASYMBP_E_INVALID,
                             "feedback_register: policy '%s' is not symmetric but has neither init nor refresh",
                             copy.name);
    if (copy.flags & ~(uint32_t)ASYMBP_FEEDBACK_SYMMETRIC)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "feedback_register: policy '%s' has unknown flags 0x%x",
                             copy.name, (unsigned)(copy.flags & ~(uint32_t)ASYMBP_FEEDBACK_SYMMETRIC));
    st = asymbp__fb_registry(ctx);
    if (st != ASYMBP_OK) return st;
    reg = ctx->fb_registry;
    if (reg->in_builtins && find(reg, copy.name, len)) return ASYMBP_OK; /* retry after a failed first try */
    if (find(reg, copy.name, len) || name_eq("bp", copy.name, len) || name_eq("fa", copy.name, len))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "feedback_register: a policy named '%s' is already registered",
                             copy.name);
    e = asymbp__calloc(ctx, 1, sizeof *e);
    if (!e) return asymbp__error(ctx, ASYMBP_E_NOMEM, "feedback_register: out of memory");
    e->vt = copy;
    memcpy(e->name, copy.name, len + 1);
    e->vt.name = e->name;
    e->user = user;
    e->user_free = user_free;
    e->builtin = reg->in_builtins;
    if (reg->tail) reg->tail->next = e; else reg->head = e;
    reg->tail = e;
    reg->count++;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_feedback_unregister(asymbp_ctx_t *ctx, const char *name)
{
    fb_registry_t *reg;
    asymbp__fb_entry_t *e, *prev = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "name");
    reg = ctx->fb_registry;
    for (e = reg ? reg->head : NULL; e; prev = e, e = e->next)
        if (name_eq(e->name, name, strlen(name))) break;
    if (!e) return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "feedback_unregister: no policy named '%s'", name);
    if (e->builtin)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "feedback_unregister: '%s' is a built-in policy", e->name);
    if (prev) prev->next = e->next; else reg->head = e->next;
    if (reg->tail == e) reg->tail = prev;
    reg->count--;
    if (e->refs) {
        e->removed = 1;
        e->next = reg->zombies;
        reg->zombies = e;
    } else {
        entry_free(ctx, e);
    }
    return ASYMBP_OK;
}

void asymbp__fb_entry_release(asymbp_ctx_t *ctx, asymbp__fb_entry_t *e)
{
    fb_registry_t *reg = ctx->fb_registry;
    asymbp__fb_entry_t **pp;
    if (!e || !e->refs) return;
    if (--e->refs || !e->removed || !reg) return;
    for (pp = &reg->zombies; *pp; pp = &(*pp)->next)
        if (*pp == e) { *pp = e->next; break; }
    entry_free(ctx, e);
}

size_t asymbp_feedback_count(asymbp_ctx_t *ctx)
{
    if (!ctx || asymbp__fb_registry(ctx) != ASYMBP_OK) return 0;
    return ((fb_registry_t *)ctx->fb_registry)->count;
}

const char *asymbp_feedback_name_at(asymbp_ctx_t *ctx, size_t i)
{
    asymbp__fb_entry_t *e;
    if (!ctx || asymbp__fb_registry(ctx) != ASYMBP_OK) return NULL;
    for (e = ((fb_registry_t *)ctx->fb_registry)->head; e && i; e = e->next) i--;
    return e ? e->name : NULL;
}

asymbp_status_t asymbp__fb_lookup(asymbp_ctx_t *ctx, const char *setting, asymbp__fb_entry_t **out)
{
    size_t len = strcspn(setting, ":");
    asymbp__fb_entry_t *e;
    char known[512];
    size_t k = 0;
    asymbp_status_t st = asymbp__fb_registry(ctx);
    *out = NULL;
    if (st != ASYMBP_OK) return st;
    if (setting[len] == ':' && setting[len + 1] == '\0')
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback '%s': empty option at the end", setting);
    e = find(ctx->fb_registry, setting, len);
    if (e) {
        *out = e;
        return ASYMBP_OK;
    }
    known[0] = '\0';
    for (e = ((fb_registry_t *)ctx->fb_registry)->head; e; e = e->next) {
        size_t l = strlen(e->name);
        if (k + l + 3 >= sizeof known) break;
        if (k) { known[k++] = ','; known[k++] = ' '; }
        memcpy(known + k, e->name, l + 1);
        k += l;
    }
    if (len == 0) return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "feedback: the setting '%s' has no policy name (known: %s)", setting, known);
    return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "feedback: unknown policy '%.*s' (known: %s)", (int)(len > 64 ? 64 : len),
                         setting, known);
}

asymbp_status_t asymbp_feedback_check_setting(asymbp_ctx_t *ctx, const char *setting)
{
    asymbp__fb_entry_t *e;
    asymbp_status_t st;
    const char *opts;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, setting, "setting");
    st = asymbp__fb_lookup(ctx, setting, &e);
    if (st != ASYMBP_OK) return st;
    opts = setting + strcspn(setting, ":");
    if (*opts == ':') opts++;
    if (e->builtin) return asymbp__fb_builtin_check(ctx, e, opts);
    return ASYMBP_OK;
}
