// Run-time choice of the SIMD width for the engine's compute-bound kernels.
//
// Why C: Swift has no per-function target attribute, so Swift SIMD code is compiled for the
// package's target CPU, which without `-target-cpu native` (an unsafeFlag, refused in a versioned
// dependency) is baseline x86-64: SSE2, no FMA. The exp/erf/tanh kernels then ran 2–2.6× slower
// (docs/PERFORMANCE.md). Clang can compile one function for a wider ISA with a target attribute,
// no flag needed, so kernels_body.h is included three times below, for AVX-512, AVX2+FMA and
// baseline, and the first call picks one with __builtin_cpu_supports.
//
// Floating-point contraction is off: the polynomials fuse their multiply-adds explicitly
// (kernels_body.h's fma), so all three paths compute the same values. That costs the baseline copy
// a call to fmaf per lane, on CPUs without AVX2 and FMA; on the others the FMAs made exp and GELU
// 1.5× faster than separate multiplies and adds (docs/PERFORMANCE.md).

#include "CPatchworkKernels.h"
#include <math.h>
#include <string.h>

// The 16-float vectors never cross a function boundary that is not inlined (every helper in
// kernels_body.h is static and always_inline), so the baseline copy's vector ABI is never used.
#pragma clang diagnostic ignored "-Wpsabi"

#pragma clang fp contract(off)

typedef float v16 __attribute__((ext_vector_type(16)));
typedef int v16i __attribute__((ext_vector_type(16)));
typedef float v16u __attribute__((ext_vector_type(16), aligned(4)));  // unaligned loads and stores

#if defined(__x86_64__) || defined(__i386__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#define ISA(name) name##_avx512
#include "kernels_body.h"
#undef ISA
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define ISA(name) name##_avx2
#include "kernels_body.h"
#undef ISA
#pragma clang attribute pop
#endif

#define ISA(name) name##_baseline
#include "kernels_body.h"
#undef ISA

enum { PATH_BASELINE = 0, PATH_AVX2 = 1, PATH_AVX512 = 2 };

static int pick_path(void) {
    static int path = -1;
    int p = __atomic_load_n(&path, __ATOMIC_RELAXED);
    if (p >= 0) return p;
    p = PATH_BASELINE;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        p = PATH_AVX512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        p = PATH_AVX2;
    }
#endif
    __atomic_store_n(&path, p, __ATOMIC_RELAXED);
    return p;
}

void pw_unary(int op, const float *x, float *y, long n) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: unary_avx512(op, x, y, n); return;
    case PATH_AVX2: unary_avx2(op, x, y, n); return;
#endif
    default: unary_baseline(op, x, y, n); return;
    }
}

void pw_pullback(int op, const float *g, const float *x, float *y, long n) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: pullback_avx512(op, g, x, y, n); return;
    case PATH_AVX2: pullback_avx2(op, g, x, y, n); return;
#endif
    default: pullback_baseline(op, g, x, y, n); return;
    }
}

void pw_softmax_rows(const float *x, float *y, long rows, long n, int log, float scale) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: softmax_rows_avx512(x, y, rows, n, log, scale); return;
    case PATH_AVX2: softmax_rows_avx2(x, y, rows, n, log, scale); return;
#endif
    default: softmax_rows_baseline(x, y, rows, n, log, scale); return;
    }
}

void pw_softmax_add_rows(const float *x, const float *a, float *y, long rows, long n, float scale, long first,
                         long period) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: softmax_add_rows_avx512(x, a, y, rows, n, scale, first, period); return;
    case PATH_AVX2: softmax_add_rows_avx2(x, a, y, rows, n, scale, first, period); return;
#endif
    default: softmax_add_rows_baseline(x, a, y, rows, n, scale, first, period); return;
    }
}

void pw_channel_affine_rows(const float *x, float *y, long rows, long c, const float *mean, const float *scale,
                            const float *bias, const float *residual, int relu) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: channel_affine_rows_avx512(x, y, rows, c, mean, scale, bias, residual, relu); return;
    case PATH_AVX2: channel_affine_rows_avx2(x, y, rows, c, mean, scale, bias, residual, relu); return;
#endif
    default: channel_affine_rows_baseline(x, y, rows, c, mean, scale, bias, residual, relu); return;
    }
}

void pw_layer_norm_rows(const float *x, float *y, long rows, long n, const float *w, const float *b, float eps,
                        float *mean, float *rstd) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: layer_norm_rows_avx512(x, y, rows, n, w, b, eps, mean, rstd); return;
    case PATH_AVX2: layer_norm_rows_avx2(x, y, rows, n, w, b, eps, mean, rstd); return;
#endif
    default: layer_norm_rows_baseline(x, y, rows, n, w, b, eps, mean, rstd); return;
    }
}

void pw_layer_norm_backward_rows(const float *x, const float *g, const float *mean, const float *rstd,
                                 const float *w, long rows, long n, float *gx, float *accW, float *accB) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: layer_norm_backward_rows_avx512(x, g, mean, rstd, w, rows, n, gx, accW, accB); return;
    case PATH_AVX2: layer_norm_backward_rows_avx2(x, g, mean, rstd, w, rows, n, gx, accW, accB); return;
#endif
    default: layer_norm_backward_rows_baseline(x, g, mean, rstd, w, rows, n, gx, accW, accB); return;
    }
}

void pw_max_pool_row(const float *image, float *out, int *indices, long w, long c, long y0, long y1,
                     const long *col_lo, const long *col_hi, long wo) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: max_pool_row_avx512(image, out, indices, w, c, y0, y1, col_lo, col_hi, wo); return;
    case PATH_AVX2: max_pool_row_avx2(image, out, indices, w, c, y0, y1, col_lo, col_hi, wo); return;
#endif
    default: max_pool_row_baseline(image, out, indices, w, c, y0, y1, col_lo, col_hi, wo); return;
    }
}

void pw_to_bf16_rows(const float *x, long ld, unsigned short *y, long rows, long cols) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: to_bf16_rows_avx512(x, ld, y, rows, cols); return;
    case PATH_AVX2: to_bf16_rows_avx2(x, ld, y, rows, cols); return;
#endif
    default: to_bf16_rows_baseline(x, ld, y, rows, cols); return;
    }
}

void pw_bf16_rounded_rows(const float *x, long ld, float *y, long rows, long cols) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: bf16_rounded_rows_avx512(x, ld, y, rows, cols); return;
    case PATH_AVX2: bf16_rounded_rows_avx2(x, ld, y, rows, cols); return;
#endif
    default: bf16_rounded_rows_baseline(x, ld, y, rows, cols); return;
    }
}

void pw_small_gemm(int transA, int transB, long m, long n, long k, const float *a, long lda, const float *b,
                   long ldb, float *c, long ldc) {
    switch (pick_path()) {
#if defined(__x86_64__) || defined(__i386__)
    case PATH_AVX512: small_gemm_avx512(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); return;
    case PATH_AVX2: small_gemm_avx2(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); return;
#endif
    default: small_gemm_baseline(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); return;
    }
}

const char *pw_kernel_isa(void) {
    switch (pick_path()) {
    case PATH_AVX512: return "avx512";
    case PATH_AVX2: return "avx2";
    default: return "baseline";
    }
}
