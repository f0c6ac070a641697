#ifndef PATCHWORK_CZLIB_SHIM_H
#define PATCHWORK_CZLIB_SHIM_H
#include <zlib.h>
#endif
