/* Status code tables: one X-macro list makes both the name and the description table. */
#include "asymbp/status.h"

#define ASYMBP_STATUS_LIST(X)                                                         \
    X(ASYMBP_OK, "success")                                                            \
    X(ASYMBP_E_INVALID, "invalid argument (NULL handle, zero size or bad value)")      \
    X(ASYMBP_E_NOMEM, "out of memory")                                                 \
    X(ASYMBP_E_SHAPE, "shapes do not fit together")                                    \
    X(ASYMBP_E_STATE, "call not valid in the object's current state")                  \
    X(ASYMBP_E_UNSUPPORTED, "unsupported version, size or option")                     \
    X(ASYMBP_E_PLUGIN, "a plugin callback failed")                                     \
    X(ASYMBP_E_IO, "input/output error")                                               \
    X(ASYMBP_E_FORMAT, "malformed file or text")                                       \
    X(ASYMBP_E_DIVERGED, "training diverged (NaN or Inf)")                             \
    X(ASYMBP_E_RANGE, "value out of range")                                            \
    X(ASYMBP_E_NOTFOUND, "no such item")                                               \
    X(ASYMBP_E_COMM, "communication between ranks failed")

#define AS_NAME(code, text) #code,
#define AS_TEXT(code, text) text,
#define AS_ONE(code, text) +1
static const char *const status_names[] = { ASYMBP_STATUS_LIST(AS_NAME) };
static const char *const status_texts[] = { ASYMBP_STATUS_LIST(AS_TEXT) };
enum { STATUS_COUNT = 0 ASYMBP_STATUS_LIST(AS_ONE) };

/* The list must be dense from 0 down to the last code, in order. */
typedef char status_names_size_check[(sizeof status_names / sizeof status_names[0] == STATUS_COUNT) ? 1 : -1];
typedef char status_texts_size_check[(sizeof status_texts / sizeof status_texts[0] == STATUS_COUNT) ? 1 : -1];
typedef char status_last_check[(ASYMBP_E_COMM == -(STATUS_COUNT - 1)) ? 1 : -1];

static int status_index(asymbp_status_t s)
{
    int i = -(int)s;
    return (i >= 0 && i < STATUS_COUNT) ? i : -1;
}

const char *asymbp_strerror(asymbp_status_t s)
{
    int i = status_index(s);
    return i < 0 ? "unknown status" : status_texts[i];
}

const char *asymbp_status_name(asymbp_status_t s)
{
    int i = status_index(s);
    return i < 0 ? "ASYMBP_E_UNKNOWN" : status_names[i];
}
