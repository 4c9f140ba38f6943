/** @file
 * @brief The library version: the one place it is stored (the Makefile reads it). */
#ifndef ASYMBP_VERSION_H
#define ASYMBP_VERSION_H
#include "asymbp/export.h"
#ifdef __cplusplus
extern "C" {
#endif

/** Major version of the headers: changes only when the ABI breaks. */
#define ASYMBP_VERSION_MAJOR 0
/** Minor version of the headers: changes when something is added. */
#define ASYMBP_VERSION_MINOR 2
/** Patch version of the headers: changes for fixes. */
#define ASYMBP_VERSION_PATCH 0
/** The version of the headers as one number: major*10000 + minor*100 + patch. */
#define ASYMBP_VERSION_NUMBER (ASYMBP_VERSION_MAJOR * 10000 + ASYMBP_VERSION_MINOR * 100 + ASYMBP_VERSION_PATCH)
/** The version of the headers as text, "major.minor.patch". */
#define ASYMBP_VERSION_STRING "0.2.0"

/** Version of the library actually loaded (compare with ::ASYMBP_VERSION_STRING for the headers
 * a program was compiled with).
 * @return static text, never NULL
 * @since 0.1 */
ASYMBP_API const char *asymbp_version_string(void);
/** ::ASYMBP_VERSION_NUMBER of the library actually loaded.
 * @return major*10000 + minor*100 + patch of the loaded library
 * @since 0.1 */
ASYMBP_API int asymbp_version_number(void);

#ifdef __cplusplus
}
#endif
#endif /* ASYMBP_VERSION_H */
