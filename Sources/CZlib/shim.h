// zlib: CRC32 for dataset checksums, inflate for compressed inputs (npz, PNG, gz).
#ifndef CLIPIT_CZLIB_SHIM_H
#define CLIPIT_CZLIB_SHIM_H
#include <zlib.h>
#endif
