// libpng: decoding a PNG held in memory to its samples. libpng reports errors by
// longjmp to a setjmp the caller made, which Swift cannot do, so the whole decode runs in
// this one C function. Transforms (the only ones applied): palette to RGB(A), 1/2/4-bit
// grey to 8 bits, Adam7 interlacing undone, 16-bit samples in host (little-endian) order.
// No gamma, alpha or 16→8-bit conversion happens here: the caller converts to RGB.
#ifndef CLIPIT_CPNG_SHIM_H
#define CLIPIT_CPNG_SHIM_H
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// The decoded samples: `height` rows of `width * channels` samples of `bit_depth` (8 or
/// 16) bits; `color_type` is PNG_COLOR_TYPE_GRAY, _GRAY_ALPHA, _RGB or _RGB_ALPHA after
/// the transforms. `pixels` is malloc'd (the caller frees it); on failure it is NULL,
/// `message` holds libpng's reason (and `warning` the first warning before it, which often
/// says more: "Invalid bit depth in IHDR" before "Invalid IHDR data"), `truncated` is 1
/// when the input ran out.
typedef struct {
    int width, height, channels, bit_depth, color_type;
    unsigned char *pixels;
    unsigned char **rows;
    const unsigned char *data;
    size_t size, offset;
    size_t max_pixels;
    int truncated, too_large;
    char message[256];
    char warning[256];
} clipit_png_decoding;

static void clipit_png_read(png_structp png, png_bytep out, size_t count) {
    clipit_png_decoding *d = (clipit_png_decoding *)png_get_io_ptr(png);
    if (count > d->size - d->offset) {
        d->truncated = 1;
        png_error(png, "the file ends early");
    }
    memcpy(out, d->data + d->offset, count);
    d->offset += count;
}

static void clipit_png_error(png_structp png, png_const_charp message) {
    clipit_png_decoding *d = (clipit_png_decoding *)png_get_error_ptr(png);
    if (!d->message[0]) snprintf(d->message, sizeof d->message, "%s", message);
    png_longjmp(png, 1);
}

// Warnings (unknown profiles, extra data after the image) do not stop decoding and are not
// printed; the first is kept for the message of an error that may follow.
static void clipit_png_warning(png_structp png, png_const_charp message) {
    clipit_png_decoding *d = (clipit_png_decoding *)png_get_error_ptr(png);
    if (!d->warning[0]) snprintf(d->warning, sizeof d->warning, "%s", message);
}

/// Decodes `d->data[0..<d->size]`; returns 0 on success, -1 on failure (see the struct).
static inline int clipit_png_decode(clipit_png_decoding *d) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, clipit_png_error, clipit_png_warning);
    if (!png) { snprintf(d->message, sizeof d->message, "libpng could not allocate its state"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(d->pixels); d->pixels = NULL;
        free(d->rows); d->rows = NULL;
        if (!d->message[0]) snprintf(d->message, sizeof d->message, "libpng could not allocate its state");
        return -1;
    }
    png_set_read_fn(png, d, clipit_png_read);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if ((size_t)width * (size_t)height > d->max_pixels) {
        d->too_large = 1;
        snprintf(d->message, sizeof d->message, "the image is %ux%u pixels", width, height);
        png_error(png, d->message);
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    // libpng treats a missing palette as a benign error and would decode black.
    if (color == PNG_COLOR_TYPE_PALETTE && !png_get_valid(png, info, PNG_INFO_PLTE))
        png_error(png, "a palette image (colour type 3) without a PLTE chunk");
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    d->width = (int)width; d->height = (int)height;
    d->channels = png_get_channels(png, info);
    d->bit_depth = png_get_bit_depth(png, info);
    d->color_type = png_get_color_type(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    d->pixels = (unsigned char *)malloc(row_bytes * height);
    d->rows = (unsigned char **)malloc(sizeof(unsigned char *) * height);
    if (!d->pixels || !d->rows) png_error(png, "out of memory for the image");
    for (png_uint_32 y = 0; y < height; y++) d->rows[y] = d->pixels + y * row_bytes;
    png_read_image(png, d->rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(d->rows); d->rows = NULL;
    return 0;
}

#endif
