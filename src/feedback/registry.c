/* The feedback-policy kind of the plugin registry (core/plugin.c holds the rules every kind
 * shares): the public register/unregister/find/count/at functions and the setting lookup. */
#include <string.h>
#include "feedback/feedback_impl.h"

#define FB_KNOWN_FLAGS (ASYMBP_FEEDBACK_SYMMETRIC | ASYMBP_FEEDBACK_DIRECT | ASYMBP_FEEDBACK_W_BEFORE)

static const asymbp__plugin_alias_t fb_aliases[] = { { "bp", "sym" }, { "fa", "rndf" } };

const asymbp__plugin_kind_t asymbp__fb_kind = {
    ASYMBP__PLUGIN_FEEDBACK, "feedback policy", sizeof(asymbp__fb_entry_t), asymbp__fb_builtins,
    ASYMBP__FB_BUILTIN_COUNT, fb_aliases, sizeof fb_aliases / sizeof fb_aliases[0], NULL
};

asymbp_status_t asymbp_feedback_register_v2(asymbp_ctx_t *ctx, const asymbp_feedback_vtable_t *vt, void *user,
                                            void (*user_free)(void *user), asymbp_feedback_policy_t **out)
{
    asymbp__fb_entry_t proto;
    asymbp__plugin_t *added;
    asymbp_status_t st;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, vt, "vtable");
    memset(&proto, 0, sizeof proto);
    st = asymbp__plugin_copy(ctx, "feedback_register", vt, ASYMBP_FEEDBACK_VTABLE_MIN_SIZE, &proto.vt, sizeof proto.vt);
    if (st != ASYMBP_OK) return st;
    if (!proto.vt.name) return asymbp__error(ctx, ASYMBP_E_INVALID, "feedback_register: the plugin has no name");
    if (proto.vt.flags & ~(uint32_t)FB_KNOWN_FLAGS)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "feedback_register: policy '%.64s' has unknown flags 0x%x",
                             proto.vt.name, (unsigned)(proto.vt.flags & ~(uint32_t)FB_KNOWN_FLAGS));
    if ((proto.vt.flags & ASYMBP_FEEDBACK_SYMMETRIC) && (proto.vt.flags & ~(uint32_t)ASYMBP_FEEDBACK_SYMMETRIC))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "feedback_register: policy '%.64s' is symmetric: it cannot be direct "
                             "or want W before the step too", proto.vt.name);
    if (proto.vt.deliver && !(proto.vt.flags & ASYMBP_FEEDBACK_DIRECT))
        return asymbp__error(ctx, ASYMBP_E_INVALID, "feedback_register: policy '%.64s' has a deliver callback but is not "
                             "direct (ASYMBP_FEEDBACK_DIRECT)", proto.vt.name);
    if (!(proto.vt.flags & ASYMBP_FEEDBACK_SYMMETRIC) && !proto.vt.init && !proto.vt.refresh)
        return asymbp__error(ctx, ASYMBP_E_INVALID,
                             "feedback_register: policy '%.64s' is not symmetric but has neither init nor refresh",
                             proto.vt.name);
    st = asymbp__plugin_add(ctx, &asymbp__fb_kind, "feedback_register", &proto.base, proto.vt.name, user, user_free,
                            &added);
    if (st != ASYMBP_OK) return st;
    ((asymbp__fb_entry_t *)added)->vt.name = added->name;
    if (out) *out = (asymbp__fb_entry_t *)added;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_feedback_register(asymbp_ctx_t *ctx, const asymbp_feedback_vtable_t *vt, void *user,
                                         void (*user_free)(void *user))
{
    return asymbp_feedback_register_v2(ctx, vt, user, user_free, NULL);
}

asymbp_status_t asymbp_feedback_unregister(asymbp_ctx_t *ctx, const char *name)
{
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "name");
    return asymbp__plugin_remove(ctx, &asymbp__fb_kind, "feedback_unregister", name);
}

size_t asymbp_feedback_count(const asymbp_ctx_t *ctx)
{
    return ctx ? asymbp__plugin_count(ctx, &asymbp__fb_kind) : 0;
}

asymbp_feedback_policy_t *asymbp_feedback_at(const asymbp_ctx_t *ctx, size_t i)
{
    /* the handle is opaque and every function taking it takes it const */
    return ctx ? (asymbp_feedback_policy_t *)asymbp__plugin_at(ctx, &asymbp__fb_kind, i) : NULL;
}

const char *asymbp_feedback_name_at(const asymbp_ctx_t *ctx, size_t i)
{
    const asymbp_feedback_policy_t *p = asymbp_feedback_at(ctx, i);
    return p ? p->base.name : NULL;
}

const char *asymbp_feedback_policy_name(const asymbp_feedback_policy_t *policy)
{
    return policy ? policy->base.name : "";
}

asymbp_status_t asymbp__fb_lookup(asymbp_ctx_t *ctx, const char *setting, const asymbp__fb_entry_t **out)
{
    size_t len = strcspn(setting, ":");
    const asymbp__plugin_t *e;
    char known[512];
    *out = NULL;
    if (setting[len] == ':' && setting[len + 1] == '\0')
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "feedback '%s': empty option at the end", setting);
    e = asymbp__plugin_find(ctx, &asymbp__fb_kind, setting, len);
    if (e) {
        *out = (const asymbp__fb_entry_t *)e;
        return ASYMBP_OK;
    }
    asymbp__plugin_known(ctx, &asymbp__fb_kind, known, sizeof known);
    if (len == 0)
        return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "feedback: the setting '%.64s' has no policy name (known: %s)", setting,
                             known);
    return asymbp__error(ctx, ASYMBP_E_NOTFOUND, "feedback: unknown policy '%.*s' (known: %s)", (int)(len > 64 ? 64 : len),
                         setting, known);
}

asymbp_status_t asymbp_feedback_find(asymbp_ctx_t *ctx, const char *name, asymbp_feedback_policy_t **out)
{
    const asymbp__fb_entry_t *e;
    asymbp_status_t st;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "name");
    ASYMBP_CHECK_NULL(ctx, out, "out");
    st = asymbp__fb_lookup(ctx, name, &e);
    if (st == ASYMBP_OK) *out = (asymbp_feedback_policy_t *)e;
    return st;
}

asymbp_status_t asymbp_feedback_check_setting(asymbp_ctx_t *ctx, const char *setting)
{
    const asymbp__fb_entry_t *e;
    asymbp_status_t st;
    const char *opts;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, setting, "setting");
    st = asymbp__fb_lookup(ctx, setting, &e);
    if (st != ASYMBP_OK) return st;
    opts = setting + strcspn(setting, ":");
    if (*opts == ':') opts++;
    if (e->base.builtin) return asymbp__fb_builtin_check(ctx, e, opts);
    return ASYMBP_OK;
}
