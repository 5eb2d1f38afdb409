// OpenBLAS's CBLAS interface plus its thread-control and build-introspection calls.
#ifndef CLIPIT_COPENBLAS_SHIM_H
#define CLIPIT_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
