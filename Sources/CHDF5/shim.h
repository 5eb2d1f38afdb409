// HDF5 (the C library): reading the datasets of published HDF5 files (PCam). Inline
// getters for what Swift cannot import: H5P_DEFAULT and H5E_DEFAULT are casts,
// H5F_ACC_RDONLY expands to a call, and the native types (H5T_NATIVE_UCHAR, …) are macros
// over globals that H5open() fills in. Each getter is one line; no logic lives here.
#ifndef CLIPIT_CHDF5_SHIM_H
#define CLIPIT_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t chdf5_p_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_e_default(void) { return H5E_DEFAULT; }
static inline hid_t chdf5_s_all(void) { return H5S_ALL; }
static inline hid_t chdf5_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_p_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline unsigned chdf5_f_acc_rdonly(void) { return H5F_ACC_RDONLY; }

static inline hid_t chdf5_native_uchar(void) { return H5T_NATIVE_UCHAR; }
static inline hid_t chdf5_native_int64(void) { return H5T_NATIVE_INT64; }

#endif
