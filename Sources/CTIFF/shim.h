// libtiff (4.5 or later): opening a TIFF held in memory with its errors and warnings
// captured per file (TIFFOpenOptions) instead of printed, and typed getters for the
// variadic TIFFGetField / TIFFSetField, which Swift cannot call.
#ifndef CLIPIT_CTIFF_SHIM_H
#define CLIPIT_CTIFF_SHIM_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>

/// The bytes a TIFF handle reads, and the first error libtiff reported about them.
typedef struct {
    const unsigned char *data;
    uint64_t size, offset;
    char error[256];
} clipit_tiff_source;

static tmsize_t clipit_tiff_read(thandle_t handle, void *buffer, tmsize_t count) {
    clipit_tiff_source *s = (clipit_tiff_source *)handle;
    if (count < 0) return -1;
    uint64_t n = s->offset >= s->size ? 0 : s->size - s->offset;
    if ((uint64_t)count < n) n = (uint64_t)count;
    if (n) memcpy(buffer, s->data + s->offset, (size_t)n);
    s->offset += n;
    return (tmsize_t)n;
}
static tmsize_t clipit_tiff_write(thandle_t handle, void *buffer, tmsize_t count) {
    (void)handle; (void)buffer; (void)count;
    return -1;
}
static toff_t clipit_tiff_seek(thandle_t handle, toff_t offset, int whence) {
    clipit_tiff_source *s = (clipit_tiff_source *)handle;
    uint64_t base = whence == SEEK_CUR ? s->offset : whence == SEEK_END ? s->size : 0;
    s->offset = base + offset;
    return s->offset;
}
static int clipit_tiff_close(thandle_t handle) { (void)handle; return 0; }
static toff_t clipit_tiff_size(thandle_t handle) { return ((clipit_tiff_source *)handle)->size; }
static int clipit_tiff_map(thandle_t handle, void **base, toff_t *size) {
    clipit_tiff_source *s = (clipit_tiff_source *)handle;
    *base = (void *)s->data; *size = s->size;
    return 1;
}
static void clipit_tiff_unmap(thandle_t handle, void *base, toff_t size) { (void)handle; (void)base; (void)size; }

static int clipit_tiff_on_error(TIFF *tiff, void *user, const char *module, const char *format, va_list arguments) {
    (void)tiff; (void)module;
    clipit_tiff_source *s = (clipit_tiff_source *)user;
    if (!s->error[0]) vsnprintf(s->error, sizeof s->error, format, arguments);
    return 1;   // handled: libtiff's global handler (stderr) is not called
}
static int clipit_tiff_on_warning(TIFF *tiff, void *user, const char *module, const char *format, va_list arguments) {
    (void)tiff; (void)user; (void)module; (void)format; (void)arguments;
    return 1;   // warnings (unknown tags, …) are dropped
}

/// Opens the source read-only; NULL on failure (`source->error` says why). At most
/// `max_allocation` bytes are allocated at once (a guard against corrupt sizes).
static inline TIFF *clipit_tiff_open(clipit_tiff_source *source, const char *name, tmsize_t max_allocation) {
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(options, clipit_tiff_on_error, source);
    TIFFOpenOptionsSetWarningHandlerExtR(options, clipit_tiff_on_warning, source);
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, max_allocation);
    TIFF *tiff = TIFFClientOpenExt(name, "r", (thandle_t)source, clipit_tiff_read, clipit_tiff_write,
                                   clipit_tiff_seek, clipit_tiff_close, clipit_tiff_size,
                                   clipit_tiff_map, clipit_tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    return tiff;
}

static inline int clipit_tiff_get_u16(TIFF *tiff, uint32_t tag, uint16_t *value) { return TIFFGetField(tiff, tag, value); }
static inline int clipit_tiff_get_u16_defaulted(TIFF *tiff, uint32_t tag, uint16_t *value) { return TIFFGetFieldDefaulted(tiff, tag, value); }
static inline int clipit_tiff_get_u32(TIFF *tiff, uint32_t tag, uint32_t *value) { return TIFFGetField(tiff, tag, value); }
static inline int clipit_tiff_get_u32_defaulted(TIFF *tiff, uint32_t tag, uint32_t *value) { return TIFFGetFieldDefaulted(tiff, tag, value); }
static inline int clipit_tiff_get_colormap(TIFF *tiff, uint16_t **red, uint16_t **green, uint16_t **blue) {
    return TIFFGetField(tiff, TIFFTAG_COLORMAP, red, green, blue);
}
static inline int clipit_tiff_get_extra_samples(TIFF *tiff, uint16_t *count, uint16_t **types) {
    return TIFFGetFieldDefaulted(tiff, TIFFTAG_EXTRASAMPLES, count, types);
}
/// Asks the JPEG codec for RGB instead of YCbCr (what Pillow does for JPEG-in-TIFF).
static inline int clipit_tiff_set_jpeg_rgb(TIFF *tiff) { return TIFFSetField(tiff, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB); }

#endif
