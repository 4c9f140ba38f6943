/* asymbp/version.h - the library version: the one place it is stored (the Makefile reads it). */
#ifndef ASYMBP_VERSION_H
#define ASYMBP_VERSION_H
#include "asymbp/export.h"
#ifdef __cplusplus
extern "C" {
#endif

#define ASYMBP_VERSION_MAJOR 0
#define ASYMBP_VERSION_MINOR 2
#define ASYMBP_VERSION_PATCH 0
/* major*10000 + minor*100 + patch */
#define ASYMBP_VERSION_NUMBER (ASYMBP_VERSION_MAJOR * 10000 + ASYMBP_VERSION_MINOR * 100 + ASYMBP_VERSION_PATCH)
#define ASYMBP_VERSION_STRING "0.2.0"

/* Version of the library actually loaded (compare with ASYMBP_VERSION_STRING for the headers
 * a program was compiled with).  Static text, never NULL.  Since 0.1. */
ASYMBP_API const char *asymbp_version_string(void);
/* ASYMBP_VERSION_NUMBER of the library actually loaded.  Since 0.1. */
ASYMBP_API int asymbp_version_number(void);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_VERSION_H */
