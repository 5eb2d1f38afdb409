// Intel oneMKL behind clipit's BLAS interface: MKL's CBLAS, plus the clipit_blas_* calls
// every backend's shim defines (docs/benchmarks.md, "BLAS libraries"). The library is
// the single dynamic library libmkl_rt, found through pkg-config's mkl-sdl (-I, -L). The
// pip wheels ship only libmkl_rt.so.N, without the libmkl_rt.so that -lmkl_rt needs:
// launch/lib/common.sh (ensure_mkl) links one in a folder of its own.
#ifndef CLIPIT_CBLAS_SHIM_H
#define CLIPIT_CBLAS_SHIM_H
#include <mkl_cblas.h>
#include <mkl_service.h>
#include <stdio.h>
#include <string.h>

// clipit passes 32-bit BLAS integers (MKL's LP64 interface, libmkl_rt's default).
_Static_assert(sizeof(MKL_INT) == 4, "clipit needs MKL's LP64 interface; do not define MKL_ILP64");

/// The library's name.
static inline const char *clipit_blas_library(void) { return "MKL"; }

/// The library's version as its version line names it ("2026.2").
static inline void clipit_blas_version(char *buffer, int length) {
    char line[256] = "", version[64] = "?";
    MKL_Get_Version_String(line, (int)sizeof line);
    const char *start = strstr(line, "Version ");
    if (start) sscanf(start + strlen("Version "), "%63[^- ]", version);
    snprintf(buffer, length, "%s", version);
}

/// MKL's own version line ("Intel(R) oneAPI Math Kernel Library Version 2026.2.1-Product Build …").
static inline void clipit_blas_description(char *buffer, int length) { MKL_Get_Version_String(buffer, length); }

/// The instruction-set code path MKL runs on this CPU: its conditional-numerical-
/// reproducibility branch for MKL_CBWR=AUTO ("AVX2", "AVX512", …) on Intel CPUs; where MKL
/// names no branch (on AMD CPUs it answers AUTO), the processor its version reports
/// ("Intel(R) Architecture processors": the generic path).
static inline const char *clipit_blas_kernel(void) {
    switch (mkl_cbwr_get_auto_branch()) {
    case MKL_CBWR_COMPATIBLE: return "COMPATIBLE";
    case MKL_CBWR_SSE2: return "SSE2";
    case MKL_CBWR_SSE4_2: return "SSE4_2";
    case MKL_CBWR_AVX2: return "AVX2";
    case MKL_CBWR_AVX512: return "AVX512";
    case MKL_CBWR_AVX512_E1: return "AVX512_E1";
#ifdef MKL_CBWR_AVX10
    case MKL_CBWR_AVX10: return "AVX10";
#endif
    default: {
        MKLVersion version;
        mkl_get_version(&version);
        return version.Processor;
    }
    }
}

/// The environment variable that limits the instruction sets MKL may use.
static inline const char *clipit_blas_kernel_variable(void) { return "MKL_ENABLE_INSTRUCTIONS"; }

/// Sets the (maximum) number of threads of subsequent calls, process-wide. With
/// MKL_DYNAMIC true (the default) MKL may use fewer on small problems.
static inline void clipit_blas_set_threads(int count) { mkl_set_num_threads(count); }

/// The maximum number of threads calls may use.
static inline int clipit_blas_threads(void) { return mkl_get_max_threads(); }

/// The environment variable the library reads its thread count from at start-up.
static inline const char *clipit_blas_thread_variable(void) { return "MKL_NUM_THREADS"; }
#endif
