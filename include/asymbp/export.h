/* asymbp/export.h - symbol export and attribute macros (each overridable with #define). */
#ifndef ASYMBP_EXPORT_H
#define ASYMBP_EXPORT_H

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

#ifndef ASYMBP_NODISCARD
#  if defined(__GNUC__) || defined(__clang__)
#    define ASYMBP_NODISCARD __attribute__((warn_unused_result))
#  else
#    define ASYMBP_NODISCARD
#  endif
#endif

#ifndef ASYMBP_DEPRECATED
#  if defined(__GNUC__) || defined(__clang__)
#    define ASYMBP_DEPRECATED(msg) __attribute__((deprecated(msg)))
#  else
#    define ASYMBP_DEPRECATED(msg)
#  endif
#endif

#endif /* ASYMBP_EXPORT_H */
