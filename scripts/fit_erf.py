#!/usr/bin/python3
"""Fits the rational erf approximation the GELU kernels use (core/lib/kernels_impl.c, normal_cdf):
erf(z) ~ z P(z^2) / Q(z^2) on [0, 3.9] (odd, so on [-3.9, 3.9]; beyond, erf rounds to +-1 in
float), P of degree 6 and Q of degree 4 in z^2 with Q(0) = 1. Linearised least squares
(z P - erf Q = 0) on Chebyshev nodes, reweighted towards the minimax error (Lawson's method).
Prints the coefficients as float32 and the max abs error of a float32 Horner evaluation, which is
what the kernels compute. Run: /usr/bin/python3 scripts/fit_erf.py (numpy only)."""
import math

import numpy as np

NP, NQ = 7, 5  # coefficients of P and of Q (Q's first is 1)
LO, HI = 0.0, 4.0


def fit():
    n = 4000
    z = (LO + HI) / 2 + (HI - LO) / 2 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    f = np.array([math.erf(v) for v in z])
    w = np.ones_like(z) / n
    for _ in range(60):
        z2 = z * z
        a = np.concatenate([np.stack([z * z2**k for k in range(NP)], 1),
                            np.stack([-f * z2**k for k in range(1, NQ)], 1)], 1)
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(a * sw[:, None], f * sw, rcond=None)
        p, q = c[:NP], np.concatenate([[1.0], c[NP:]])
        err = np.abs(z * np.polyval(p[::-1], z2) / np.polyval(q[::-1], z2) - f)
        w = w * (err / err.max() + 1e-3)
        w /= w.sum()
    return p.astype(np.float32), q.astype(np.float32), err.max()


def erf_float32(p, q, v):
    """The kernel's evaluation, in float32."""
    z = np.clip(v.astype(np.float32), np.float32(-4), np.float32(4))
    z2 = z * z
    pv, qv = np.float32(p[-1]), np.float32(q[-1])
    for k in range(NP - 2, -1, -1):
        pv = pv * z2 + p[k]
    for k in range(NQ - 2, -1, -1):
        qv = qv * z2 + q[k]
    e = np.clip(z * pv / qv, np.float32(-1), np.float32(1))
    return np.where(z >= 3.9, np.float32(1), np.where(z <= -3.9, np.float32(-1), e))


def main():
    p, q, err64 = fit()
    v = np.linspace(-8, 8, 4000001)
    ref = np.array([math.erf(x) for x in v.astype(np.float32).astype(np.float64)])
    err32 = np.abs(erf_float32(p, q, v).astype(np.float64) - ref).max()
    print("P (z^0, z^2, ...):", ", ".join("%.9g" % c for c in p))
    print("Q (z^0, z^2, ...):", ", ".join("%.9g" % c for c in q))
    print("max abs error: %.2g in double, %.2g evaluated in float32 on [-8, 8]" % (err64, err32))


if __name__ == "__main__":
    main()
