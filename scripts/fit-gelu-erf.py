#!/usr/bin/env python3
"""The rational fit of erf behind GELU's forward kernel (kernels_body.h, ISA(gelu)).

erf(z) ~ z * P(z^2) / Q(z^2) on 0 <= z <= 3.92, P and Q of degree 5 in z^2, Q(0) = 1. The
coefficients come from a linearised least-squares fit (Loeb: z*P - erf*Q, weighted by 1/|Q| of the
last round) with Lawson's reweighting towards the minimax error. erf(3.92) = 1 - 1.4e-8 rounds to
1 in float, so the kernel clamps z there. Prints the coefficients (highest power first, the order
the kernel's Horner steps use) and the fit's largest error in double precision.

    python3 scripts/fit-gelu-erf.py        (needs numpy)
"""
import math

import numpy as np

Z_MAX = 3.92
DEGREE = 5

z = np.linspace(0, Z_MAX, 6000)
f = np.array([math.erf(v) for v in z])
t = z * z
powers = np.vstack([t ** k for k in range(DEGREE + 1)]).T        # [points, DEGREE + 1]

lawson = np.ones_like(z)
q_last = np.ones_like(z)
for _ in range(60):
    # unknowns p0..p5, q1..q5:  z*P(t) - erf*(Q(t) - 1) = erf
    a = np.hstack([z[:, None] * powers, -f[:, None] * powers[:, 1:]])
    w = lawson / np.abs(q_last)
    c, *_ = np.linalg.lstsq(a * w[:, None], f * w, rcond=None)
    p, q = c[:DEGREE + 1], np.concatenate([[1.0], c[DEGREE + 1:]])
    q_last = powers @ q
    err = z * (powers @ p) / q_last - f
    lawson = np.maximum(lawson * np.sqrt(np.abs(err)) / np.max(lawson * np.sqrt(np.abs(err))), 1e-6)

print("P (t^5 .. t^0, t = z^2):  ", ", ".join(f"{v:.9e}" for v in p[::-1]))
print("Q (t^5 .. t^0):            ", ", ".join(f"{v:.9e}" for v in q[::-1]))
print(f"max |z*P/Q - erf| on [0, {Z_MAX}]: {np.max(np.abs(err)):.3g}")
