#ifndef PATCHWORK_CPATCHWORKJPEG_H
#define PATCHWORK_CPATCHWORKJPEG_H

#include <stddef.h>

/// A JPEG decoded by libjpeg(-turbo) to 8-bit pixels, rows top to bottom, channels
/// interleaved: 1 channel (grey) or 3 (RGB). `pixels` is malloc'd; free it with
/// patchwork_jpeg_free.
typedef struct {
    unsigned char *pixels;
    int width;
    int height;
    int channels;
} PatchworkJPEGImage;

/// Decodes `size` bytes of JPEG with the settings Pillow uses by default (libjpeg's
/// defaults: ISLOW integer DCT, fancy upsampling, no scaling). Returns 0 on success;
/// 1 with a reason in `message` (`message_size` bytes, NUL-terminated) when libjpeg
/// fails: its errors and its corrupt-data warnings both end the decode (they never
/// call exit()); 2, before anything is allocated, when the header's width × height is
/// over `max_pixels` (the header's sizes are then in `image`). Nothing to free unless 0.
int patchwork_jpeg_decode(const unsigned char *data, size_t size, long long max_pixels,
                          PatchworkJPEGImage *image, char *message, size_t message_size);

void patchwork_jpeg_free(PatchworkJPEGImage *image);

#endif
