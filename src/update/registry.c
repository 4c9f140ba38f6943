/* The update-rule kind of the plugin registry (core/plugin.c holds the rules every kind shares):
 * the public register/unregister/find/count/at functions and the Batch Manhattan spellings. */
#include <stdio.h>
#include <string.h>
#include "update/update_impl.h"

const asymbp__plugin_kind_t asymbp__update_kind = {
    ASYMBP__PLUGIN_UPDATE, "update rule", sizeof(struct asymbp_update_rule), asymbp__update_builtins,
    ASYMBP__UPDATE_BUILTIN_COUNT, NULL, 0, asymbp__bm_canonical
};

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

int asymbp__bm_canonical(const char *s, size_t len, char *out, size_t cap)
{
    static const char long_name[] = "batch-manhattan";
    char buf[64];
    char variant = 'a';
    int nsc = 0, nvariant = 0;
    size_t i, pos;
    if (len >= sizeof buf) return -1;
    for (i = 0; i < len; i++) buf[i] = (char)lower((unsigned char)s[i]);
    buf[len] = '\0';
    if (strncmp(buf, long_name, sizeof long_name - 1) == 0) pos = sizeof long_name - 1;
    else if (strncmp(buf, "bm", 2) == 0) pos = 2;
    else return -1;
    while (buf[pos]) {
        size_t tl;
        if (buf[pos] != ':' && buf[pos] != '+') return -1;
        pos++;
        tl = strcspn(buf + pos, ":+");
        if (tl == 1 && (buf[pos] == 'a' || buf[pos] == 'b' || buf[pos] == 'c')) {
            variant = buf[pos];
            nvariant++;
        } else if (tl == 3 && strncmp(buf + pos, "nsc", 3) == 0) {
            nsc++;
        } else {
            return -1;
        }
        pos += tl;
    }
    if (nvariant > 1 || nsc > 1) return -1;
    snprintf(out, cap, "bm%s%s", variant == 'a' ? "" : variant == 'b' ? ":b" : ":c", nsc ? ":nsc" : "");
    return 0;
}

asymbp_status_t asymbp_update_rule_register(asymbp_ctx_t *ctx, const asymbp_update_rule_vtable_t *vt, void *user,
                                            void (*user_free)(void *user), asymbp_update_rule_t **out)
{
    struct asymbp_update_rule proto;
    asymbp__plugin_t *added;
    asymbp_status_t st;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, vt, "vtable");
    memset(&proto, 0, sizeof proto);
    st = asymbp__plugin_copy(ctx, "update_rule_register", vt, ASYMBP_UPDATE_RULE_VTABLE_MIN_SIZE, &proto.vt,
                             sizeof proto.vt);
    if (st != ASYMBP_OK) return st;
    if (!proto.vt.step)
        return asymbp__error(ctx, ASYMBP_E_INVALID, "update_rule_register: rule '%.64s' has no step function",
                             proto.vt.name ? proto.vt.name : "");
    if (proto.vt.flags & ~(uint32_t)ASYMBP_UPDATE_ACCEPTS_VOTE)
        return asymbp__error(ctx, ASYMBP_E_UNSUPPORTED, "update_rule_register: rule '%.64s' has unknown flags 0x%x",
                             proto.vt.name ? proto.vt.name : "", (unsigned)(proto.vt.flags & ~(uint32_t)ASYMBP_UPDATE_ACCEPTS_VOTE));
    if (proto.vt.default_hyper) {
        const asymbp_hyper_params_t lib = ASYMBP_HYPER_PARAMS_INIT;
        st = asymbp__hyper_import(ctx, "update_rule_register: default_hyper", proto.vt.default_hyper, &lib, &proto.hp);
        if (st != ASYMBP_OK) return st;
    }
    st = asymbp__plugin_add(ctx, &asymbp__update_kind, "update_rule_register", &proto.base, proto.vt.name, user,
                            user_free, &added);
    if (st != ASYMBP_OK) return st;
    {
        struct asymbp_update_rule *r = (struct asymbp_update_rule *)added;
        r->vt.name = added->name;
        if (r->vt.default_hyper) r->vt.default_hyper = &r->hp;
    }
    if (out) *out = (asymbp_update_rule_t *)added;
    return ASYMBP_OK;
}

asymbp_status_t asymbp_update_rule_unregister(asymbp_ctx_t *ctx, const char *name)
{
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "rule name");
    return asymbp__plugin_remove(ctx, &asymbp__update_kind, "update_rule_unregister", name);
}

asymbp_status_t asymbp_update_rule_find(asymbp_ctx_t *ctx, const char *name, asymbp_update_rule_t **out)
{
    const asymbp__plugin_t *r;
    asymbp_status_t st;
    if (out) *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, name, "rule name");
    ASYMBP_CHECK_NULL(ctx, out, "out");
    st = asymbp__plugin_lookup(ctx, &asymbp__update_kind, name, &r);
    *out = (asymbp_update_rule_t *)r;   /* opaque; every function taking it takes it const */
    return st;
}

size_t asymbp_update_rule_count(const asymbp_ctx_t *ctx)
{
    return ctx ? asymbp__plugin_count(ctx, &asymbp__update_kind) : 0;
}

asymbp_update_rule_t *asymbp_update_rule_at(const asymbp_ctx_t *ctx, size_t i)
{
    return ctx ? (asymbp_update_rule_t *)asymbp__plugin_at(ctx, &asymbp__update_kind, i) : NULL;
}

const char *asymbp_update_rule_name(const asymbp_update_rule_t *rule)
{
    return rule ? rule->base.name : "";
}
