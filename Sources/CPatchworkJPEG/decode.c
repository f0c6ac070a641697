// libjpeg's default error handler prints and calls exit(); a library must not. Errors
// (and corrupt-data warnings, which libjpeg would otherwise decode past, filling in
// whatever it made of the damage) jump back to patchwork_jpeg_decode, which returns
// the message. setjmp/longjmp is libjpeg's documented way out (see its example.c).
#include "CPatchworkJPEG.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr base;  // first, so libjpeg's pointer to it is ours too
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
} ErrorManager;

static void stop_on_error(j_common_ptr cinfo) {
    ErrorManager *manager = (ErrorManager *)cinfo->err;
    manager->base.format_message(cinfo, manager->message);
    longjmp(manager->escape, 1);
}

// msg_level -1 is a warning: libjpeg found corrupt data and carries on. Refuse instead.
static void stop_on_warning(j_common_ptr cinfo, int msg_level) {
    if (msg_level < 0) stop_on_error(cinfo);
}

static void write_message(char *message, size_t message_size, const char *text) {
    if (message_size > 0) snprintf(message, message_size, "%s", text);
}

int patchwork_jpeg_decode(const unsigned char *data, size_t size, long long max_pixels,
                          PatchworkJPEGImage *image, char *message, size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    ErrorManager errors;
    // volatile: changed between setjmp and a longjmp back to it.
    unsigned char *volatile pixels = NULL;

    memset(image, 0, sizeof *image);
    if (size == 0) {
        write_message(message, message_size, "empty JPEG data");
        return 1;
    }
    cinfo.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = stop_on_error;
    errors.base.emit_message = stop_on_warning;
    errors.message[0] = '\0';
    if (setjmp(errors.escape)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        if (message_size > 0) snprintf(message, message_size, "libjpeg: %s", errors.message);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    // Pillow asks for grey from one-component files and RGB from three-component ones,
    // leaving libjpeg's own reading of the colour space (JFIF/Adobe markers) alone.
    int channels;
    switch (cinfo.num_components) {
    case 1: cinfo.out_color_space = JCS_GRAYSCALE; channels = 1; break;
    case 3: cinfo.out_color_space = JCS_RGB; channels = 3; break;
    default: {
        char text[128];
        snprintf(text, sizeof text, "%d-component (CMYK or YCCK) JPEGs are not supported by the 8-bit decoder", cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        write_message(message, message_size, text);
        return 1;
    }
    }
    // libjpeg's defaults are Pillow's (its draft mode, off unless asked for, changes them).
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    cinfo.scale_num = 1;
    cinfo.scale_denom = 1;

    // libjpeg refuses an empty image itself (JERR_EMPTY_IMAGE); the caller words this refusal.
    if ((long long)cinfo.image_width * (long long)cinfo.image_height > max_pixels) {
        image->width = (int)cinfo.image_width;
        image->height = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    jpeg_start_decompress(&cinfo);
    size_t row_bytes = (size_t)cinfo.output_width * (size_t)channels;
    pixels = malloc(row_bytes * cinfo.output_height);
    if (!pixels) {
        jpeg_destroy_decompress(&cinfo);
        write_message(message, message_size, "out of memory for the decoded image");
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + row_bytes * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    image->pixels = pixels;
    image->width = (int)cinfo.output_width;
    image->height = (int)cinfo.output_height;
    image->channels = channels;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

void patchwork_jpeg_free(PatchworkJPEGImage *image) {
    free(image->pixels);
    image->pixels = NULL;
}
