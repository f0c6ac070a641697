#ifndef PATCHWORK_CFFTW_SHIM_H
#define PATCHWORK_CFFTW_SHIM_H
#include <fftw3.h>
#endif
