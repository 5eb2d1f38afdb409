// BLIS behind clipit's BLAS interface: BLIS's CBLAS layer (declared in blis.h when BLIS
// was configured with --enable-cblas), plus the clipit_blas_* calls every backend's shim
// defines (docs/benchmarks.md, "BLAS libraries").
#ifndef CLIPIT_CBLAS_SHIM_H
#define CLIPIT_CBLAS_SHIM_H
// blis.h defines _POSIX_C_SOURCE when it is unset, which hides glibc's BSD fields (struct
// tm's tm_gmtoff) from this module so that its struct tm clashes with Swift's Glibc module;
// _DEFAULT_SOURCE keeps glibc's default feature set.
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include <blis.h>
#include <stdio.h>

#ifndef BLIS_ENABLE_CBLAS
#error "this BLIS was built without its CBLAS layer; rebuild it with ./configure --enable-cblas"
#endif
// clipit passes 32-bit BLAS integers; Debian's libblis64-* and ILP64 builds take 64-bit ones.
_Static_assert(sizeof(f77_int) == 4, "clipit needs a BLIS with 32-bit BLAS integers (Debian: libblis-dev, not libblis64-dev)");

/// The library's name.
static inline const char *clipit_blas_library(void) { return "BLIS"; }

/// The library's version ("0.9.0").
static inline void clipit_blas_version(char *buffer, int length) {
    snprintf(buffer, length, "%s", bli_info_get_version_str());
}

/// Version and threading model ("BLIS 0.9.0 (OpenMP threads)").
static inline void clipit_blas_description(char *buffer, int length) {
    const char *threading = bli_info_get_enable_openmp() ? "OpenMP threads"
                          : bli_info_get_enable_pthreads() ? "POSIX threads" : "single-threaded build";
    snprintf(buffer, length, "BLIS %s (%s)", bli_info_get_version_str(), threading);
}

/// The sub-configuration BLIS chose for this CPU at run time ("zen3", "skx", "haswell").
static inline const char *clipit_blas_kernel(void) { return bli_arch_string(bli_arch_query_id()); }

/// The environment variable that overrides the kernel choice.
static inline const char *clipit_blas_kernel_variable(void) { return "BLIS_ARCH_TYPE"; }

/// Sets the number of threads of subsequent calls (process-wide; BLIS splits them over
/// its loops itself).
static inline void clipit_blas_set_threads(int count) { bli_thread_set_num_threads(count); }

/// The number of threads calls use: 1 when neither BLIS_NUM_THREADS nor OMP_NUM_THREADS
/// was set (BLIS then runs single-threaded, where OpenBLAS would use every core).
static inline int clipit_blas_threads(void) {
    dim_t count = bli_thread_get_num_threads();
    return count >= 1 ? (int)count : 1;
}

/// The environment variable the library reads its thread count from at start-up.
static inline const char *clipit_blas_thread_variable(void) { return "BLIS_NUM_THREADS"; }
#endif
