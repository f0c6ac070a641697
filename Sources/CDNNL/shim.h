#ifndef PATCHWORK_CDNNL_SHIM_H
#define PATCHWORK_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>

// libgomp's entry points. oneDNN (Debian build) runs on OpenMP; Patchwork's own
// parallel loops run on the same OpenMP team through GOMP_parallel, so the two
// never fight for the cores (an idle OpenMP team spins for a while before it
// sleeps, which would starve a second pool on a 2-core machine).
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
void omp_set_num_threads(int n);
int omp_in_parallel(void);
#endif
