/* CSV reader for the ../shared/data layout: a header of column names, numeric features, an
 * integer label last.  Numbers are parsed here rather than by strtod so the host program's
 * locale (a decimal comma) cannot change the result. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "core/core_impl.h"
#include "data/data_impl.h"

#define CSV_MAX_INFERRED_CLASSES 65536
#define CSV_SHOW 40 /* characters of a bad field quoted in messages */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int ci_eq(const char *s, const char *e, const char *word)
{
    size_t n = strlen(word), i;
    if ((size_t)(e - s) != n) return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return 0;
    }
    return 1;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && is_blank(**s)) (*s)++;
    while (*e > *s && is_blank((*e)[-1])) (*e)--;
}

int asymbp__csv_number(const char *s, const char *e, float *v)
{
    static const double p10[23] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
    uint64_t m = 0;
    int neg = 0, nd = 0, any = 0;
    long e10 = 0;
    double d;
    if (s < e && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    if (ci_eq(s, e, "nan")) return 2;
    if (ci_eq(s, e, "inf") || ci_eq(s, e, "infinity")) return 3;
    for (; s < e && is_digit(*s); s++) {
        int dg = *s - '0';
        any = 1;
        if (m == 0 && dg == 0) continue;
        if (nd < 19) { m = m * 10 + (uint64_t)dg; nd++; }
        else e10++;
    }
    if (s < e && *s == '.') {
        for (s++; s < e && is_digit(*s); s++) {
            int dg = *s - '0';
            any = 1;
            if (m == 0 && dg == 0) { e10--; continue; }
            if (nd < 19) { m = m * 10 + (uint64_t)dg; nd++; e10--; }
        }
    }
    if (!any) return 1;
    if (s < e && (*s == 'e' || *s == 'E')) {
        int eneg = 0;
        long x = 0;
        s++;
        if (s < e && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        if (s == e || !is_digit(*s)) return 1;
        for (; s < e && is_digit(*s); s++)
            if (x < 100000) x = x * 10 + (*s - '0');
        e10 += eneg ? -x : x;
    }
    if (s != e) return 1;
    d = (double)m;
    if (m != 0) {
        if (e10 > 0) d = e10 <= 22 ? d * p10[e10] : d * pow(10.0, (double)e10);
        else if (e10 < 0) {
            if (e10 < -300) { d *= 1e-300; e10 += 300; }
            d = -e10 <= 22 ? d / p10[-e10] : d / pow(10.0, (double)-e10);
        }
    }
    if (!(d <= (double)FLT_MAX)) return 3;
    *v = (float)(neg ? -d : d);
    return 0;
}

/* Label: optional sign and decimal digits.  0 ok, 1 not an integer, 2 negative, 3 too large. */
static int parse_label(const char *s, const char *e, long *out)
{
    int neg = 0;
    int64_t x = 0;
    if (s < e && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    if (s == e) return 1;
    for (; s < e; s++) {
        if (!is_digit(*s)) return 1;
        if (x <= INT32_MAX) x = x * 10 + (*s - '0');
    }
    if (neg && x != 0) return 2;
    if (x > INT32_MAX - 1) return 3;
    *out = (long)x;
    return 0;
}

/* Next line [*ls, *le) from *p (without "\n"; a trailing "\r" is left for trim), advancing *p. */
static void next_line(const char **p, const char *end, const char **ls, const char **le)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *ls = *p;
    *le = nl ? nl : end;
    *p = nl ? nl + 1 : end;
}

static int line_blank(const char *s, const char *e)
{
    for (; s < e; s++)
        if (!is_blank(*s)) return 0;
    return 1;
}

/* Field j (0-based) of the header, trimmed. */
static void header_field(const char *hs, const char *he, size_t j, const char **fs, const char **fe)
{
    const char *s = hs, *c;
    for (;;) {
        c = memchr(s, ',', (size_t)(he - s));
        if (j == 0 || !c) break;
        s = c + 1;
        j--;
    }
    *fs = s;
    *fe = c ? c : he;
    trim(fs, fe);
}

asymbp_status_t asymbp__csv_parse(asymbp_ctx_t *ctx, const char *buf, size_t len, const char *name,
                                  size_t classes, asymbp_dataset_t **out)
{
    const char *p, *end, *hs = NULL, *he = NULL, *ls, *le;
    size_t line = 0, header_line, ncols = 1, nf, rows = 0, r, j, all_numeric = 1;
    long label = 0, maxlab = -1;
    asymbp_dataset_t *ds = NULL;
    asymbp_status_t st;
    const char *c;
    *out = NULL;
    if (!buf) buf = "", len = 0;
    p = buf;
    end = buf + len;
    /* Header: the first non-blank line. */
    while (p < end) {
        next_line(&p, end, &ls, &le);
        line++;
        if (!line_blank(ls, le)) {
            hs = ls;
            he = le;
            break;
        }
    }
    if (!hs) return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: empty file (expected a header line and data rows)", name);
    header_line = line;
    trim(&hs, &he);
    for (c = hs; c < he; c++) ncols += *c == ',';
    if (ncols < 2)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: line %zu: the header has 1 column; need at least one feature "
                             "and the label (is the separator ','?)", name, header_line);
    for (j = 0; j < ncols && all_numeric; j++) {
        const char *fs, *fe;
        float v;
        header_field(hs, he, j, &fs, &fe);
        if (fs == fe || asymbp__csv_number(fs, fe, &v) == 1) all_numeric = 0;
    }
    if (all_numeric)
        return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: line %zu holds numbers, not a header of column names "
                             "(the first line must name the columns)", name, header_line);
    nf = ncols - 1;
    {
        const char *q = p;
        while (q < end) {
            next_line(&q, end, &ls, &le);
            if (!line_blank(ls, le)) rows++;
        }
    }
    if (rows == 0) return asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: no data rows after the header (line %zu)", name, header_line);
    st = asymbp__dataset_alloc(ctx, rows, (int64_t)nf, 1, 1, classes ? classes : 1, &ds);
    if (st != ASYMBP_OK) return st;
    for (r = 0; r < rows;) {
        const char *fs;
        next_line(&p, end, &ls, &le);
        line++;
        if (line_blank(ls, le)) continue;
        fs = ls;
        for (j = 0; j < ncols; j++) {
            const char *comma = memchr(fs, ',', (size_t)(le - fs)), *fe = comma ? comma : le, *a = fs, *b = fe;
            const char *ns, *ne;
            int rc;
            trim(&a, &b);
            if ((!comma && j + 1 < ncols) || (comma && j + 1 == ncols)) {
                size_t nfields = 1;
                for (c = ls; c < le; c++) nfields += *c == ',';
                st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: line %zu has %zu fields, the header (line %zu) has %zu",
                                   name, line, nfields, header_line, ncols);
                goto fail;
            }
            ns = ne = NULL;
            if (a == b) {
                header_field(hs, he, j, &ns, &ne);
                st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: line %zu, column %zu (%.*s): empty field", name, line, j + 1,
                                   (int)(ne - ns > CSV_SHOW ? CSV_SHOW : ne - ns), ns);
                goto fail;
            }
            if (j < nf) {
                float v = 0.0f;
                rc = asymbp__csv_number(a, b, &v);
                if (rc != 0) header_field(hs, he, j, &ns, &ne);
                if (rc == 1) {
                    st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: line %zu, column %zu (%.*s): '%.*s' is not a number",
                                       name, line, j + 1, (int)(ne - ns > CSV_SHOW ? CSV_SHOW : ne - ns), ns,
                                       (int)(b - a > CSV_SHOW ? CSV_SHOW : b - a), a);
                    goto fail;
                }
                if (rc != 0) {
                    st = asymbp__error(ctx, ASYMBP_E_RANGE, "%s: line %zu, column %zu (%.*s): '%.*s' is %s; features must be "
                                       "finite", name, line, j + 1, (int)(ne - ns > CSV_SHOW ? CSV_SHOW : ne - ns), ns,
                                       (int)(b - a > CSV_SHOW ? CSV_SHOW : b - a), a,
                                       rc == 2 ? "NaN" : "infinite or beyond the float range");
                    goto fail;
                }
                ds->x[r * nf + j] = v;
            } else {
                rc = parse_label(a, b, &label);
                if (rc == 0 && classes && (size_t)label >= classes) rc = 4;
                if (rc == 0 && !classes && label >= CSV_MAX_INFERRED_CLASSES) rc = 5;
                if (rc != 0) header_field(hs, he, j, &ns, &ne);
                if (rc != 0) {
                    int show = (int)(b - a > CSV_SHOW ? CSV_SHOW : b - a);
                    int hn = (int)(ne - ns > CSV_SHOW ? CSV_SHOW : ne - ns);
                    if (rc == 1)
                        st = asymbp__error(ctx, ASYMBP_E_FORMAT, "%s: line %zu, column %zu (%.*s, the label): '%.*s' is not "
                                           "an integer", name, line, j + 1, hn, ns, show, a);
                    else if (rc == 4)
                        st = asymbp__error(ctx, ASYMBP_E_RANGE, "%s: line %zu, column %zu (%.*s, the label): label %ld is "
                                           "out of range 0..%zu", name, line, j + 1, hn, ns, label, classes - 1);
                    else if (rc == 5)
                        st = asymbp__error(ctx, ASYMBP_E_RANGE, "%s: line %zu, column %zu (%.*s, the label): label %ld is "
                                           "too large to infer the class count (at most %d); give it explicitly",
                                           name, line, j + 1, hn, ns, label, CSV_MAX_INFERRED_CLASSES);
                    else
                        st = asymbp__error(ctx, ASYMBP_E_RANGE, "%s: line %zu, column %zu (%.*s, the label): '%.*s' is "
                                           "out of range (labels are 0..K-1)", name, line, j + 1, hn, ns, show, a);
                    goto fail;
                }
                ds->y[r] = (int32_t)label;
                if (label > maxlab) maxlab = label;
            }
            fs = comma ? comma + 1 : le;
        }
        r++;
    }
    if (!classes) ds->classes = (size_t)maxlab + 1;
    *out = ds;
    return ASYMBP_OK;
fail:
    asymbp_dataset_destroy(ds);
    return st;
}

asymbp_status_t asymbp_dataset_load_csv(asymbp_ctx_t *ctx, const char *path, size_t classes, asymbp_dataset_t **out)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    asymbp_status_t st;
    if (!out) return asymbp__error(ctx, ASYMBP_E_INVALID, "dataset_load_csv: out is NULL");
    *out = NULL;
    if (!ctx) return ASYMBP_E_INVALID;
    ASYMBP_CHECK_NULL(ctx, path, "path");
    st = asymbp__data_read_file(ctx, path, &buf, &len);
    if (st == ASYMBP_OK) st = asymbp__csv_parse(ctx, (const char *)buf, len, path, classes, out);
    asymbp__free(ctx, buf);
    if (st == ASYMBP_OK && (st = asymbp_dataset_set_name(*out, asymbp__data_basename(path))) != ASYMBP_OK) {
        asymbp_dataset_destroy(*out);
        *out = NULL;
    }
    return st;
}
