// OpenBLAS behind clipit's BLAS interface: the CBLAS header, plus the clipit_blas_*
// calls every backend's shim defines (name, version, kernel, threads), so that Swift
// code never names a library-specific function (docs/benchmarks.md, "BLAS libraries").
#ifndef CLIPIT_CBLAS_SHIM_H
#define CLIPIT_CBLAS_SHIM_H
#include <cblas.h>
#include <stdio.h>

/// The library's name.
static inline const char *clipit_blas_library(void) { return "OpenBLAS"; }

/// The library's version ("0.3.21"), the second word of its configuration string.
static inline void clipit_blas_version(char *buffer, int length) {
    char version[64] = "?";
    sscanf(openblas_get_config(), "OpenBLAS %63s", version);
    snprintf(buffer, length, "%s", version);
}

/// The library's build configuration ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64").
static inline void clipit_blas_description(char *buffer, int length) {
    snprintf(buffer, length, "%s", openblas_get_config());
}

/// The CPU kernel OpenBLAS dispatched to ("Haswell", "SkylakeX", "Cooperlake").
static inline const char *clipit_blas_kernel(void) { return openblas_get_corename(); }

/// The environment variable that overrides the kernel choice.
static inline const char *clipit_blas_kernel_variable(void) { return "OPENBLAS_CORETYPE"; }

/// Sets the number of threads of subsequent calls (process-wide).
static inline void clipit_blas_set_threads(int count) { openblas_set_num_threads(count); }

/// The number of threads calls use.
static inline int clipit_blas_threads(void) { return openblas_get_num_threads(); }

/// The environment variable the library reads its thread count from at start-up.
static inline const char *clipit_blas_thread_variable(void) { return "OPENBLAS_NUM_THREADS"; }
#endif
