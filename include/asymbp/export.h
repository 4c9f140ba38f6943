/** @file
 * @brief Symbol export and attribute macros (each overridable with \#define).
 *
 * Define any of them before including an asymbp header to override it. */
#ifndef ASYMBP_EXPORT_H
#define ASYMBP_EXPORT_H

/** @def ASYMBP_API
 * Marks a function of the public API: empty under `ASYMBP_STATIC`; `__declspec(dllexport)` when
 * building the library on Windows (`ASYMBP_BUILDING`), `__declspec(dllimport)` when using it;
 * default visibility with GCC and clang (the library is built with `-fvisibility=hidden`, so only
 * the declarations carrying it are exported); empty elsewhere. */
#ifndef ASYMBP_API
#  if defined(ASYMBP_STATIC)
#    define ASYMBP_API
#  elif defined(_WIN32)
#    ifdef ASYMBP_BUILDING
#      define ASYMBP_API __declspec(dllexport)
#    else
#      define ASYMBP_API __declspec(dllimport)
#    endif
#  elif defined(__GNUC__) || defined(__clang__)
#    define ASYMBP_API __attribute__((visibility("default")))
#  else
#    define ASYMBP_API
#  endif
#endif

/** @def ASYMBP_NODISCARD
 * Asks the compiler to warn when the result of a function is ignored
 * (`__attribute__((warn_unused_result))` with GCC and clang, empty elsewhere). */
#ifndef ASYMBP_NODISCARD
#  if defined(__GNUC__) || defined(__clang__)
#    define ASYMBP_NODISCARD __attribute__((warn_unused_result))
#  else
#    define ASYMBP_NODISCARD
#  endif
#endif

/** @def ASYMBP_DEPRECATED
 * Marks a declaration as deprecated (`__attribute__((deprecated(msg)))` with GCC and clang,
 * empty elsewhere).
 * @param msg the text the compiler shows with its warning */
#ifndef ASYMBP_DEPRECATED
#  if defined(__GNUC__) || defined(__clang__)
#    define ASYMBP_DEPRECATED(msg) __attribute__((deprecated(msg)))
#  else
#    define ASYMBP_DEPRECATED(msg)
#  endif
#endif

#endif /* ASYMBP_EXPORT_H */
