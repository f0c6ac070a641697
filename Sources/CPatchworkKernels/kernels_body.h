// The kernels' bodies, included by kernels.c once per instruction set with ISA(name) giving each
// copy its own names (and, through kernels.c's `#pragma clang attribute`, its own target).
// Every helper is static and always inlined, so each copy is compiled whole for its ISA.
// These are the engine's only exp, erf, tanh and sigmoid: VectorMath.swift calls them on one vector.

#define PW_INLINE static inline __attribute__((always_inline))

PW_INLINE v16 ISA(splat)(float f) { return (v16){0} + f; }
PW_INLINE v16 ISA(select)(v16i mask, v16 a, v16 b) { return (v16)(((v16i)a & mask) | ((v16i)b & ~mask)); }
PW_INLINE v16 ISA(abs)(v16 x) { return (v16)((v16i)x & 0x7FFFFFFF); }
PW_INLINE v16 ISA(copysign)(v16 x, v16 s) { return (v16)(((v16i)x & 0x7FFFFFFF) | ((v16i)s & (int)0x80000000)); }

// a·b + c rounded once. The polynomials step through this explicitly (kernels.c turns automatic
// contraction off), so every ISA computes the same values; without FMA hardware (the baseline
// copy) the compiler calls fmaf per lane, which is exact but slow.
PW_INLINE v16 ISA(fma)(v16 a, v16 b, v16 c) { return __builtin_elementwise_fma(a, b, c); }

// min(max(x, lo), hi); NaN stays NaN.
PW_INLINE v16 ISA(clamp)(v16 x, float lo, float hi) {
    v16 l = ISA(splat)(lo), h = ISA(splat)(hi);
    v16 above = ISA(select)(x < l, l, x);
    return ISA(select)(above > h, h, above);
}

// e^x (Cephes' expf: n = round(x/ln 2), r = x − n·ln 2 in two parts, e^r by a degree-7 polynomial).
PW_INLINE v16 ISA(exp)(v16 x) {
    v16 clamped = ISA(clamp)(x, -87.3f, 88.7f);
    v16 magic = ISA(splat)(12582912.0f);
    v16 shifted = ISA(fma)(clamped, ISA(splat)(1.44269504088896341f), magic);
    v16 n = shifted - magic;
    v16 r = ISA(fma)(n, ISA(splat)(-0.693359375f), clamped);
    r = ISA(fma)(n, ISA(splat)(2.12194440e-4f), r);
    v16 z = r * r;
    v16 y = ISA(splat)(1.9875691500e-4f);
    y = ISA(fma)(y, r, ISA(splat)(1.3981999507e-3f));
    y = ISA(fma)(y, r, ISA(splat)(8.3334519073e-3f));
    y = ISA(fma)(y, r, ISA(splat)(4.1665795894e-2f));
    y = ISA(fma)(y, r, ISA(splat)(1.6666665459e-1f));
    y = ISA(fma)(y, r, ISA(splat)(5.0000001201e-1f));
    y = ISA(fma)(y, z, r) + 1.0f;
    v16i nBits = (v16i)shifted - (v16i)magic;
    v16 scale = (v16)((nBits + 127) << 23);
    v16 result = ISA(select)(x < -87.3f, ISA(splat)(0.0f), y * scale);
    return ISA(select)(x != x, x, result);  // NaN stays NaN
}

// erf through Numerical Recipes' erfc (Chebyshev fit, fractional error below 1.2e-7).
PW_INLINE v16 ISA(erf)(v16 x) {
    v16 z = ISA(abs)(x);
    v16 t = ISA(splat)(1.0f) / ISA(fma)(ISA(splat)(0.5f), z, ISA(splat)(1.0f));
    v16 p = ISA(splat)(0.17087277f);
    p = ISA(fma)(p, t, ISA(splat)(-0.82215223f));
    p = ISA(fma)(p, t, ISA(splat)(1.48851587f));
    p = ISA(fma)(p, t, ISA(splat)(-1.13520398f));
    p = ISA(fma)(p, t, ISA(splat)(0.27886807f));
    p = ISA(fma)(p, t, ISA(splat)(-0.18628806f));
    p = ISA(fma)(p, t, ISA(splat)(0.09678418f));
    p = ISA(fma)(p, t, ISA(splat)(0.37409196f));
    p = ISA(fma)(p, t, ISA(splat)(1.00002368f));
    p = ISA(fma)(p, t, ISA(splat)(-1.26551223f));
    v16 erfcAbs = t * ISA(exp)(ISA(fma)(-z, z, p));
    return ISA(copysign)(1.0f - erfcAbs, x);
}

// Φ(x), the standard normal distribution function, for GELU's pullback Φ(x) + x·φ(x), which also needs
// the density φ(x) = e/√(2π): e = exp(−x²/2) is written to *e. Abramowitz & Stegun 7.1.26,
// erfc(z) ≈ t·(a1 + a2·t + … + a5·t⁴)·exp(−z²) with t = 1/(1 + p·z), |error| ≤ 1.5e-7, at z = |x|/√2:
// Φ(−|x|) = erfc(z)/2 directly, and Φ(|x|) = 1 − that. Against 0.5·(1 + erf(x/√2)) through erf above,
// one exp serves both Φ and φ and the fit is half as long: the pullback 2.3× as fast (AVX2).
PW_INLINE v16 ISA(normal_cdf)(v16 x, v16 *e) {
    v16 z = ISA(abs)(x) * 0.7071067811865476f;
    v16 t = ISA(splat)(1.0f) / ISA(fma)(ISA(splat)(0.3275911f), z, ISA(splat)(1.0f));
    v16 p = ISA(splat)(1.061405429f);
    p = ISA(fma)(p, t, ISA(splat)(-1.453152027f));
    p = ISA(fma)(p, t, ISA(splat)(1.421413741f));
    p = ISA(fma)(p, t, ISA(splat)(-0.284496736f));
    p = ISA(fma)(p, t, ISA(splat)(0.254829592f));
    *e = ISA(exp)(-z * z);
    v16 lowerTail = 0.5f * (p * t) * *e;
    return ISA(select)(x < 0.0f, lowerTail, 1.0f - lowerTail);
}

// GELU, x·Φ(x) = x·(1 + erf(x/√2))/2, with erf as a rational function and no exp: erf(z) ≈ z·P(z²)/Q(z²),
// P and Q of degree 5 (scripts/fit-gelu-erf.py; |error| ≤ 1.6e-8 before rounding), z clamped to ±3.92
// where erf rounds to ±1, and the quotient to [−1, 1]. Twice as fast as x·normal_cdf(x) (AVX2), whose exp
// only the pullback needs. Like PyTorch's GELU, 1 + erf cancels for x < 0: the error there is absolute,
// about an ulp of 1 times |x|, and below x ≈ −5.5 the result is −0 (PyTorch's too).
PW_INLINE v16 ISA(gelu)(v16 x) {
    v16 z = ISA(clamp)(x * 0.7071067811865476f, -3.92f, 3.92f);
    v16 t = z * z;
    v16 p = ISA(splat)(2.034446168e-06f);
    p = ISA(fma)(p, t, ISA(splat)(2.874508476e-04f));
    p = ISA(fma)(p, t, ISA(splat)(3.868110293e-03f));
    p = ISA(fma)(p, t, ISA(splat)(5.305976469e-02f));
    p = ISA(fma)(p, t, ISA(splat)(1.927622066e-01f));
    p = ISA(fma)(p, t, ISA(splat)(1.128379023e+00f));
    v16 q = ISA(splat)(3.806613662e-05f);
    q = ISA(fma)(q, t, ISA(splat)(1.188017550e-03f));
    q = ISA(fma)(q, t, ISA(splat)(1.517189303e-02f));
    q = ISA(fma)(q, t, ISA(splat)(1.150834198e-01f));
    q = ISA(fma)(q, t, ISA(splat)(5.041627310e-01f));
    q = ISA(fma)(q, t, ISA(splat)(1.0f));
    v16 erf = ISA(clamp)(z * p / q, -1.0f, 1.0f);
    return 0.5f * x * (1.0f + erf);
}

// tanh: Cephes' odd polynomial below 0.625, 1 − 2/(e^{2|x|} + 1) beyond.
PW_INLINE v16 ISA(tanh)(v16 x) {
    v16 ax = ISA(abs)(x);
    v16 z = x * x;
    v16 p = ISA(splat)(-5.70498872745e-3f);
    p = ISA(fma)(p, z, ISA(splat)(2.06390887954e-2f));
    p = ISA(fma)(p, z, ISA(splat)(-5.37397155531e-2f));
    p = ISA(fma)(p, z, ISA(splat)(1.33314422036e-1f));
    p = ISA(fma)(p, z, ISA(splat)(-3.33332819422e-1f));
    v16 small = ISA(fma)(p * z, x, x);
    v16 e = ISA(exp)(2.0f * ISA(clamp)(ax, 0.0f, 44.0f));
    v16 large = ISA(copysign)(1.0f - 2.0f / (e + 1.0f), x);
    return ISA(select)(ax < 0.625f, small, large);
}

PW_INLINE v16 ISA(sigmoid)(v16 x) { return 1.0f / (1.0f + ISA(exp)(-x)); }

PW_INLINE v16 ISA(apply_unary)(int op, v16 x) {
    switch (op) {
    case PW_EXP: return ISA(exp)(x);
    case PW_SIGMOID: return ISA(sigmoid)(x);
    case PW_SILU: return x * ISA(sigmoid)(x);
    case PW_TANH: return ISA(tanh)(x);
    case PW_ERF: return ISA(erf)(x);
    case PW_GELU: return ISA(gelu)(x);
    case PW_RELU: return ISA(select)(x < 0.0f, ISA(splat)(0.0f), x);  // NaN stays NaN
    default: /* PW_GELU_TANH */
        return 0.5f * x * (1.0f + ISA(tanh)(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    }
}

// g·f′(x): Unary.swift's ReluPullback, SiluPullback, GeluPullback, GeluTanhPullback.
PW_INLINE v16 ISA(apply_pullback)(int op, v16 g, v16 x) {
    switch (op) {
    case PW_RELU: return ISA(select)(x > 0.0f, g, ISA(splat)(0.0f));
    case PW_SILU: {
        v16 s = ISA(sigmoid)(x);
        return g * s * (1.0f + x * (1.0f - s));
    }
    case PW_GELU: {
        v16 e;
        v16 cdf = ISA(normal_cdf)(x, &e);
        return g * ISA(fma)(x * 0.3989422804014327f, e, cdf);
    }
    default: { /* PW_GELU_TANH */
        v16 x2 = x * x;
        v16 t = ISA(tanh)(0.7978845608028654f * (x + 0.044715f * x2 * x));
        v16 du = 0.7978845608028654f * (1.0f + 0.134145f * x2);
        return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
    }
}

// One loop per op, so the switch is decided outside the loop.
#define PW_UNARY_LOOP(OP)                                                           \
    {                                                                               \
        long i = 0;                                                                 \
        for (; i + 16 <= n; i += 16)                                                \
            *(v16u *)(y + i) = ISA(apply_unary)(OP, *(const v16u *)(x + i));        \
        if (i < n) { /* the tail through the same vector code, zero-padded */       \
            v16 a = {0};                                                            \
            for (long j = i; j < n; j++) a[j - i] = x[j];                           \
            v16 b = ISA(apply_unary)(OP, a);                                        \
            for (long j = i; j < n; j++) y[j] = b[j - i];                           \
        }                                                                           \
        return;                                                                     \
    }

static void ISA(unary)(int op, const float *x, float *y, long n) {
    switch (op) {
    case PW_EXP: PW_UNARY_LOOP(PW_EXP)
    case PW_SIGMOID: PW_UNARY_LOOP(PW_SIGMOID)
    case PW_SILU: PW_UNARY_LOOP(PW_SILU)
    case PW_TANH: PW_UNARY_LOOP(PW_TANH)
    case PW_ERF: PW_UNARY_LOOP(PW_ERF)
    case PW_GELU: PW_UNARY_LOOP(PW_GELU)
    case PW_RELU: PW_UNARY_LOOP(PW_RELU)
    default: PW_UNARY_LOOP(PW_GELU_TANH)
    }
}
#undef PW_UNARY_LOOP

#define PW_PULLBACK_LOOP(OP)                                                                         \
    {                                                                                                \
        long i = 0;                                                                                  \
        for (; i + 16 <= n; i += 16)                                                                 \
            *(v16u *)(y + i) = ISA(apply_pullback)(OP, *(const v16u *)(g + i), *(const v16u *)(x + i)); \
        if (i < n) {                                                                                 \
            v16 a = {0}, b = {0};                                                                    \
            for (long j = i; j < n; j++) { a[j - i] = g[j]; b[j - i] = x[j]; }                       \
            v16 c = ISA(apply_pullback)(OP, a, b);                                                   \
            for (long j = i; j < n; j++) y[j] = c[j - i];                                            \
        }                                                                                            \
        return;                                                                                      \
    }

static void ISA(pullback)(int op, const float *g, const float *x, float *y, long n) {
    switch (op) {
    case PW_RELU: PW_PULLBACK_LOOP(PW_RELU)
    case PW_SILU: PW_PULLBACK_LOOP(PW_SILU)
    case PW_GELU: PW_PULLBACK_LOOP(PW_GELU)
    default: PW_PULLBACK_LOOP(PW_GELU_TANH)
    }
}
#undef PW_PULLBACK_LOOP

// Lanes summed in order, as Swift's SIMD sum().
PW_INLINE float ISA(hsum)(v16 v) {
    float s = -0.0f;
    for (int k = 0; k < 16; k++) s += v[k];
    return s;
}

// SoftmaxKernels.swift's softmaxRows: max, exp and sum, normalise; scale applied as values are read.
static void ISA(softmax_rows)(const float *x, float *y, long rows, long n, int log, float scale) {
    if (n == 0) return;
    v16 sv = ISA(splat)(scale);
    for (long r = 0; r < rows; r++) {
        const float *src = x + r * n;
        float *dst = y + r * n;
        long i = 0;
        v16 vmax = ISA(splat)(-INFINITY);
        for (; i + 16 <= n; i += 16) {
            v16 v = *(const v16u *)(src + i);
            vmax = ISA(select)(v > vmax, v, vmax);
        }
        float m = vmax[0];
        for (int k = 1; k < 16; k++) m = vmax[k] >= m ? vmax[k] : m;
        for (; i < n; i++) m = src[i] >= m ? src[i] : m;
        m *= scale;
        v16 mv = ISA(splat)(m);
        v16 acc = ISA(splat)(0.0f);
        for (i = 0; i + 16 <= n; i += 16) {
            v16 e = ISA(exp)(*(const v16u *)(src + i) * sv - mv);
            if (!log) *(v16u *)(dst + i) = e;
            acc += e;
        }
        if (i < n) {  // tail: pad with -inf, whose exponential is exactly 0
            v16 t = ISA(splat)(-INFINITY);
            for (long k = 0; k < n - i; k++) t[k] = src[i + k] * scale - m;
            v16 e = ISA(exp)(t);
            if (!log) for (long k = 0; k < n - i; k++) dst[i + k] = e[k];
            acc += e;
        }
        float s = ISA(hsum)(acc);
        i = 0;
        if (log) {
            float l = logf(s);
            v16 lv = ISA(splat)(l);
            for (; i + 16 <= n; i += 16) *(v16u *)(dst + i) = (*(const v16u *)(src + i) * sv - mv) - lv;
            for (; i < n; i++) dst[i] = (src[i] * scale - m) - l;
        } else {
            float inv = 1.0f / s;
            v16 iv = ISA(splat)(inv);
            for (; i + 16 <= n; i += 16) *(v16u *)(dst + i) = *(v16u *)(dst + i) * iv;
            for (; i < n; i++) dst[i] *= inv;
        }
    }
}

// softmax(scale·x + a) over rows of n floats (attention's scores plus a bias or mask). Row r is row
// first + r of the whole tensor and adds addend row (first + r) mod period: the addend repeats over x's
// leading dimensions. scale·x + a goes into y in the max pass; exp and the normalisation then run in place.
static void ISA(softmax_add_rows)(const float *x, const float *a, float *y, long rows, long n, float scale,
                                  long first, long period) {
    if (n == 0) return;
    v16 sv = ISA(splat)(scale);
    for (long r = 0; r < rows; r++) {
        const float *src = x + r * n, *add = a + ((first + r) % period) * n;
        float *dst = y + r * n;
        long i = 0;
        v16 vmax = ISA(splat)(-INFINITY);
        for (; i + 16 <= n; i += 16) {
            v16 v = ISA(fma)(*(const v16u *)(src + i), sv, *(const v16u *)(add + i));
            *(v16u *)(dst + i) = v;
            vmax = ISA(select)(v > vmax, v, vmax);
        }
        float m = vmax[0];
        for (int k = 1; k < 16; k++) m = vmax[k] >= m ? vmax[k] : m;
        for (; i < n; i++) {
            float v = __builtin_fmaf(src[i], scale, add[i]);
            dst[i] = v;
            m = v >= m ? v : m;
        }
        v16 mv = ISA(splat)(m);
        v16 acc = ISA(splat)(0.0f);
        for (i = 0; i + 16 <= n; i += 16) {
            v16 e = ISA(exp)(*(v16u *)(dst + i) - mv);
            *(v16u *)(dst + i) = e;
            acc += e;
        }
        if (i < n) {  // tail: pad with -inf, whose exponential is exactly 0
            v16 t = ISA(splat)(-INFINITY);
            for (long k = 0; k < n - i; k++) t[k] = dst[i + k] - m;
            v16 e = ISA(exp)(t);
            for (long k = 0; k < n - i; k++) dst[i + k] = e[k];
            acc += e;
        }
        float inv = 1.0f / ISA(hsum)(acc);
        v16 iv = ISA(splat)(inv);
        for (i = 0; i + 16 <= n; i += 16) *(v16u *)(dst + i) = *(v16u *)(dst + i) * iv;
        for (; i < n; i++) dst[i] *= inv;
    }
}

// Batch norm's per-channel affine over `rows` rows of c floats (NormalizationKernels.swift's channelAffine):
// y = (x − mean)·scale + bias, then + residual (rows of c floats) where `add`, then ReLU where `relu` (NaN
// stays NaN). Inlined with constant flags, one loop per combination.
PW_INLINE void ISA(affine_rows)(const float *x, float *y, long rows, long c, const float *mean, const float *scale,
                                const float *bias, const float *residual, int add, int relu) {
    v16 zero = ISA(splat)(0.0f);
    for (long r = 0; r < rows; r++) {
        const float *src = x + r * c, *res = add ? residual + r * c : 0;
        float *dst = y + r * c;
        long i = 0;
        for (; i + 16 <= c; i += 16) {
            v16 v = (*(const v16u *)(src + i) - *(const v16u *)(mean + i)) * *(const v16u *)(scale + i)
                    + *(const v16u *)(bias + i);
            if (add) v += *(const v16u *)(res + i);
            if (relu) v = ISA(select)(v < 0.0f, zero, v);
            *(v16u *)(dst + i) = v;
        }
        for (; i < c; i++) {
            float v = (src[i] - mean[i]) * scale[i] + bias[i];
            if (add) v += res[i];
            dst[i] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

static void ISA(channel_affine_rows)(const float *x, float *y, long rows, long c, const float *mean,
                                     const float *scale, const float *bias, const float *residual, int relu) {
    if (residual) {
        if (relu) ISA(affine_rows)(x, y, rows, c, mean, scale, bias, residual, 1, 1);
        else ISA(affine_rows)(x, y, rows, c, mean, scale, bias, residual, 1, 0);
    } else {
        if (relu) ISA(affine_rows)(x, y, rows, c, mean, scale, bias, 0, 0, 1);
        else ISA(affine_rows)(x, y, rows, c, mean, scale, bias, 0, 0, 0);
    }
}

// Layer norm of `rows` rows of n floats (NormalizationKernels.swift's layerNormRows): the mean, then
// the sum of squared deviations from it (two passes, the row in L1 for the second), then
// y = (x − mean)·rstd·w + b. Writes each row's mean and rstd = 1/√(var + eps).
static void ISA(layer_norm_rows)(const float *x, float *y, long rows, long n, const float *w, const float *b,
                                 float eps, float *mean, float *rstd) {
    for (long r = 0; r < rows; r++) {
        const float *src = x + r * n;
        float *dst = y + r * n;
        long i = 0;
        v16 acc = ISA(splat)(0.0f);
        for (; i + 16 <= n; i += 16) acc += *(const v16u *)(src + i);
        float s = ISA(hsum)(acc);
        for (; i < n; i++) s += src[i];
        float m = s / (float)n;
        v16 mv = ISA(splat)(m);
        acc = ISA(splat)(0.0f);
        for (i = 0; i + 16 <= n; i += 16) {
            v16 d = *(const v16u *)(src + i) - mv;
            acc = ISA(fma)(d, d, acc);
        }
        float s2 = ISA(hsum)(acc);
        for (; i < n; i++) { float d = src[i] - m; s2 = __builtin_fmaf(d, d, s2); }
        float rs = 1.0f / sqrtf(s2 / (float)n + eps);
        mean[r] = m;
        rstd[r] = rs;
        v16 rv = ISA(splat)(rs);
        for (i = 0; i + 16 <= n; i += 16) {
            v16 xh = (*(const v16u *)(src + i) - mv) * rv;
            *(v16u *)(dst + i) = ISA(fma)(xh, *(const v16u *)(w + i), *(const v16u *)(b + i));
        }
        for (; i < n; i++) dst[i] = __builtin_fmaf((src[i] - m) * rs, w[i], b[i]);
    }
}

// Layer norm's backward over `rows` rows (NormalizationKernels.swift's layerNormBackward): with
// x̂ = (x − mean)·rstd and gw = g·w, gx = rstd·(gw − mean(gw) − x̂·mean(gw·x̂)) when gx is not null;
// Σ g·x̂ and Σ g per column added into accW and accB when they are not null.
static void ISA(layer_norm_backward_rows)(const float *x, const float *g, const float *mean, const float *rstd,
                                          const float *w, long rows, long n, float *gx, float *accW, float *accB) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = g + r * n;
        v16 m = ISA(splat)(mean[r]), s = ISA(splat)(rstd[r]);
        v16 sumG = ISA(splat)(0.0f), sumGX = ISA(splat)(0.0f);
        long i = 0;
        for (; i + 16 <= n; i += 16) {
            v16 xh = (*(const v16u *)(xr + i) - m) * s, gv = *(const v16u *)(gr + i);
            v16 gw = gv * *(const v16u *)(w + i);
            sumG += gw;
            sumGX = ISA(fma)(gw, xh, sumGX);
            if (accW) {
                *(v16u *)(accW + i) = ISA(fma)(gv, xh, *(v16u *)(accW + i));
                *(v16u *)(accB + i) = *(v16u *)(accB + i) + gv;
            }
        }
        float a = ISA(hsum)(sumG), bsum = ISA(hsum)(sumGX);
        for (; i < n; i++) {
            float xh = (xr[i] - mean[r]) * rstd[r], gw = gr[i] * w[i];
            a += gw;
            bsum = __builtin_fmaf(gw, xh, bsum);
            if (accW) { accW[i] = __builtin_fmaf(gr[i], xh, accW[i]); accB[i] += gr[i]; }
        }
        if (!gx) continue;
        float *out = gx + r * n;
        v16 ma = ISA(splat)(a / (float)n), mb = ISA(splat)(bsum / (float)n);
        for (i = 0; i + 16 <= n; i += 16) {
            v16 xh = (*(const v16u *)(xr + i) - m) * s, gw = *(const v16u *)(gr + i) * *(const v16u *)(w + i);
            *(v16u *)(out + i) = s * (gw - ma - xh * mb);
        }
        for (; i < n; i++) {
            float xh = (xr[i] - mean[r]) * rstd[r], gw = gr[i] * w[i];
            out[i] = rstd[r] * (gw - a / (float)n - xh * (bsum / (float)n));
        }
    }
}

// PoolKernels.swift's max, for one output row of one image: the max over each window of channels-last
// [h, w, c] and the position (y·w + x) of its first maximum, NaN winning, as PyTorch.
static void ISA(max_pool_row)(const float *image, float *out, int *indices, long w, long c, long y0, long y1,
                              const long *col_lo, const long *col_hi, long wo) {
    for (long j = 0; j < wo; j++) {
        float *o = out + j * c;
        int *idx = indices + j * c;
        int first = (int)(y0 * w + col_lo[j]);
        long k = 0;
        for (; k + 16 <= c; k += 16) {
            v16 m = ISA(splat)(-INFINITY);
            v16i index = (v16i){0} + first;
            for (long y = y0; y < y1; y++) {
                for (long x = col_lo[j]; x < col_hi[j]; x++) {
                    v16 v = *(const v16u *)(image + (y * w + x) * c + k);
                    v16i better = (v > m) | (v != v);
                    m = ISA(select)(better, v, m);
                    index = (((v16i){0} + (int)(y * w + x)) & better) | (index & ~better);
                }
            }
            *(v16u *)(o + k) = m;
            for (int t = 0; t < 16; t++) idx[k + t] = index[t];
        }
        for (; k < c; k++) {
            float m = -INFINITY;
            int index = first;
            for (long y = y0; y < y1; y++) {
                for (long x = col_lo[j]; x < col_hi[j]; x++) {
                    float v = image[(y * w + x) * c + k];
                    if (v > m || v != v) { m = v; index = (int)(y * w + x); }
                }
            }
            o[k] = m;
            idx[k] = index;
        }
    }
}

// Tiny matrix products (Gemm.sgemm's small path): C = op(A)·op(B), C m×n with row stride ldc.
// B is first copied into a k×np block (np = n rounded up to 16, zero-padded; transposed when
// transB), so the inner loop reads 16 consecutive columns whatever B's layout. Each block of up to
// four rows of C and 16 columns keeps its sums in registers: for each p in order, C[i, j] += A[i, p]·B[p, j]
// with one rounding per step (fma), so every ISA computes the same values.
PW_INLINE void ISA(small_gemm_block)(int transA, const float *a, long lda, long i0, long rows,
                                     const float *bp, long np, long j0, long k, float *c, long ldc, long cols) {
    v16 acc[4] = {0};
    for (long p = 0; p < k; p++) {
        v16 bv = *(const v16u *)(bp + p * np + j0);
        for (long r = 0; r < 4; r++) {
            if (r < rows) {
                float av = transA ? a[p * lda + i0 + r] : a[(i0 + r) * lda + p];
                acc[r] = ISA(fma)(ISA(splat)(av), bv, acc[r]);
            }
        }
    }
    for (long r = 0; r < rows; r++) {
        float *cr = c + (i0 + r) * ldc + j0;
        if (cols == 16) *(v16u *)cr = acc[r];
        else for (long j = 0; j < cols; j++) cr[j] = acc[r][j];
    }
}

static void ISA(small_gemm)(int transA, int transB, long m, long n, long k, const float *a, long lda,
                            const float *b, long ldb, float *c, long ldc) {
    long np = (n + 15) & ~15L;
    float bp[k * np];
    for (long p = 0; p < k; p++) {
        float *row = bp + p * np;
        if (transB) for (long j = 0; j < n; j++) row[j] = b[j * ldb + p];
        else memcpy(row, b + p * ldb, (size_t)n * sizeof(float));
        for (long j = n; j < np; j++) row[j] = 0;
    }
    for (long j0 = 0; j0 < n; j0 += 16) {
        long cols = n - j0 < 16 ? n - j0 : 16;
        long i0 = 0;
        for (; i0 + 4 <= m; i0 += 4) ISA(small_gemm_block)(transA, a, lda, i0, 4, bp, np, j0, k, c, ldc, cols);
        if (i0 < m) ISA(small_gemm_block)(transA, a, lda, i0, m - i0, bp, np, j0, k, c, ldc, cols);
    }
}

// fp32 → bf16, round to nearest even (BF16Gemm's operands): the top 16 bits of the rounded float.
// Adding 0x7FFF plus the lowest kept bit rounds the dropped 16 bits half to even, carrying into the
// exponent where it must (the largest finite floats round to infinity, as IEEE rounding does);
// infinities keep their bits. A NaN would round to an infinity or change sign, so NaNs keep their
// top bits with the quiet bit set. Scalar code on integers: clang vectorises the loops below for
// the ISA of each copy.
PW_INLINE unsigned short ISA(bf16_bits)(const float *x) {
    unsigned u;
    memcpy(&u, x, 4);
    unsigned rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    unsigned nan = (u >> 16) | 0x40u;
    return (unsigned short)((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

static void ISA(to_bf16_rows)(const float *x, long ld, unsigned short *y, long rows, long cols) {
    for (long r = 0; r < rows; r++) {
        const float *src = x + r * ld;
        unsigned short *dst = y + r * cols;
        for (long j = 0; j < cols; j++) dst[j] = ISA(bf16_bits)(src + j);
    }
}

// The same rounding written back as floats (the bf16 value's bits, then 16 zero bits).
static void ISA(bf16_rounded_rows)(const float *x, long ld, float *y, long rows, long cols) {
    for (long r = 0; r < rows; r++) {
        const float *src = x + r * ld;
        float *dst = y + r * cols;
        for (long j = 0; j < cols; j++) {
            unsigned bits = (unsigned)ISA(bf16_bits)(src + j) << 16;
            memcpy(dst + j, &bits, 4);
        }
    }
}

#undef PW_INLINE
