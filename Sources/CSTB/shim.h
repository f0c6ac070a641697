#ifndef PATCHWORK_CSTB_SHIM_H
#define PATCHWORK_CSTB_SHIM_H
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#endif
