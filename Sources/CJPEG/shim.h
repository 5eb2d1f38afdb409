// libjpeg(-turbo): decoding a JPEG held in memory to 8-bit RGB. libjpeg's default error
// handler calls exit(); this one formats the message and longjmps back into the decode
// function, which Swift cannot do itself, so the whole decode runs in this C function.
// Warnings (corrupt or missing data, which libjpeg would fill with grey) fail the decode.
#ifndef CLIPIT_CJPEG_SHIM_H
#define CLIPIT_CJPEG_SHIM_H
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

/// The decoded image: `height` rows of `width * 3` bytes (RGB), malloc'd (the caller
/// frees it). On failure `pixels` is NULL and `message` holds libjpeg's reason;
/// `unsupported` is 1 for CMYK/YCCK files, `too_large` for images over `max_pixels`.
typedef struct {
    struct jpeg_error_mgr manager;   // first: libjpeg's pointer to it is ours
    jmp_buf jump;
    const unsigned char *data;
    unsigned long size;
    size_t max_pixels;
    int width, height, source_components;
    unsigned char *pixels;
    int unsupported, too_large, warned;
    char message[JMSG_LENGTH_MAX];
} clipit_jpeg_decoding;

static void clipit_jpeg_error_exit(j_common_ptr cinfo) {
    clipit_jpeg_decoding *d = (clipit_jpeg_decoding *)cinfo->err;
    if (!d->message[0]) (*cinfo->err->format_message)(cinfo, d->message);
    longjmp(d->jump, 1);
}

// level < 0: a warning (corrupt or missing data), which stops the decode at once (libjpeg
// would go on and fill the rest with grey); higher levels are trace messages, ignored.
static void clipit_jpeg_emit_message(j_common_ptr cinfo, int level) {
    clipit_jpeg_decoding *d = (clipit_jpeg_decoding *)cinfo->err;
    if (level >= 0) return;
    if (!d->message[0]) (*cinfo->err->format_message)(cinfo, d->message);
    d->warned = 1;
    longjmp(d->jump, 1);
}

/// Decodes `d->data[0..<d->size]`; returns 0 on success, -1 on failure (see the struct).
static inline int clipit_jpeg_decode(clipit_jpeg_decoding *d) {
    struct jpeg_decompress_struct cinfo;
    cinfo.err = jpeg_std_error(&d->manager);
    d->manager.error_exit = clipit_jpeg_error_exit;
    d->manager.emit_message = clipit_jpeg_emit_message;
    if (setjmp(d->jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(d->pixels); d->pixels = NULL;
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, d->data, d->size);
    jpeg_read_header(&cinfo, TRUE);
    d->source_components = cinfo.num_components;
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        d->unsupported = 1;
        snprintf(d->message, sizeof d->message, "a CMYK JPEG");
        longjmp(d->jump, 1);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if ((size_t)cinfo.output_width * cinfo.output_height > d->max_pixels) {
        d->too_large = 1;
        snprintf(d->message, sizeof d->message, "the image is %ux%u pixels", cinfo.output_width, cinfo.output_height);
        longjmp(d->jump, 1);
    }
    d->width = (int)cinfo.output_width; d->height = (int)cinfo.output_height;
    size_t row_bytes = (size_t)cinfo.output_width * 3;
    d->pixels = (unsigned char *)malloc(row_bytes * cinfo.output_height);
    if (!d->pixels) { snprintf(d->message, sizeof d->message, "out of memory for the image"); longjmp(d->jump, 1); }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = d->pixels + cinfo.output_scanline * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

#endif
