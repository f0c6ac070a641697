#ifndef C_PATCHWORK_KERNELS_H
#define C_PATCHWORK_KERNELS_H

/// The engine's compute-bound element-wise kernels, compiled for AVX-512, AVX2+FMA and baseline
/// x86-64 in one object, the path chosen at run time (see kernels.c). Each call works on one
/// contiguous chunk on the calling thread; Swift splits the work over threads.

enum {
    PW_EXP = 1, PW_SIGMOID, PW_SILU, PW_TANH, PW_ERF, PW_GELU, PW_GELU_TANH, PW_RELU,
};

/// y[i] = f(x[i]) for f one of PW_EXP … PW_RELU.
void pw_unary(int op, const float *x, float *y, long n);

/// y[i] = g[i]·f′(x[i]) for f one of PW_SILU, PW_GELU, PW_GELU_TANH, PW_RELU.
void pw_pullback(int op, const float *g, const float *x, float *y, long n);

/// Softmax (or log-softmax) of scale·x over each of `rows` rows of `n` contiguous floats.
void pw_softmax_rows(const float *x, float *y, long rows, long n, int log, float scale);

/// softmax(scale·x + a) over each of `rows` rows of `n` contiguous floats, row r adding row
/// (first + r) mod period of the addend a (period rows of n floats, repeated over x's leading dimensions).
void pw_softmax_add_rows(const float *x, const float *a, float *y, long rows, long n, float scale, long first,
                         long period);

/// Batch norm's affine over `rows` rows of c contiguous floats: y = (x − mean)·scale + bias per channel
/// (mean, scale, bias: c floats each), + residual (rows·c floats) when not null, then max(0, ·) when relu
/// (NaN stays NaN).
void pw_channel_affine_rows(const float *x, float *y, long rows, long c, const float *mean, const float *scale,
                            const float *bias, const float *residual, int relu);

/// Layer norm of `rows` rows of n contiguous floats: y = (x − mean)·rstd·w + b, each row's mean and
/// rstd = 1/√(var + eps) written to mean[r] and rstd[r].
void pw_layer_norm_rows(const float *x, float *y, long rows, long n, const float *w, const float *b, float eps,
                        float *mean, float *rstd);

/// Layer norm's backward over `rows` rows: gx (when not null) = rstd·(gw − mean(gw) − x̂·mean(gw·x̂)) with
/// x̂ = (x − mean)·rstd and gw = g·w; when accW is not null, Σ g·x̂ and Σ g of each column are added
/// into accW[0..<n] and accB[0..<n].
void pw_layer_norm_backward_rows(const float *x, const float *g, const float *mean, const float *rstd,
                                 const float *w, long rows, long n, float *gx, float *accW, float *accB);

/// Max pooling of one output row of one channels-last [h, w, c] image: rows y0..<y1 of the input,
/// columns col_lo[j]..<col_hi[j] for output column j; writes wo·c maxima and their positions y·w + x.
void pw_max_pool_row(const float *image, float *out, int *indices, long w, long c, long y0, long y1,
                     const long *col_lo, const long *col_hi, long wo);

/// bf16 copies (round to nearest even, NaN stays NaN) of `rows` rows of `cols` floats, row r starting at
/// x + r·ld, written packed: y[r·cols + j]. bf16 is the top 16 bits of an fp32.
void pw_to_bf16_rows(const float *x, long ld, unsigned short *y, long rows, long cols);

/// The values of pw_to_bf16_rows as floats (bf16 bits followed by 16 zero bits), written packed: y[r·cols + j].
void pw_bf16_rounded_rows(const float *x, long ld, float *y, long rows, long cols);

/// C = op(A)·op(B) for tiny products (Gemm.runsOnSmallKernel: 1 ≤ k ≤ 32, at most 128 steps of a 4×16 block):
/// C is m×n with row stride ldc, op(A) m×k and op(B) k×n, row-major, transposed when transA / transB. Copies B
/// into a stack buffer of k × (n rounded up to 16) floats, at most 8 KiB.
void pw_small_gemm(int transA, int transB, long m, long n, long k, const float *a, long lda, const float *b,
                   long ldb, float *c, long ldc);

/// Which path runs on this CPU: "avx512", "avx2" or "baseline".
const char *pw_kernel_isa(void);

#endif
