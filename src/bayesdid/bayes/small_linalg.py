"""Inverse and log-determinant of small SPD matrices inside compiled (numba) densities.

Written out by hand: below ~50 columns LAPACK's per-call overhead costs more than the
arithmetic, and a C callback for nutpie must not raise (a matrix that is not positive
definite returns ``ok = False`` instead).

>>> import numpy as np
>>> ok, logdet, inv = spd_inverse(np.array([[4.0, 2.0], [2.0, 3.0]]))
>>> ok, round(logdet, 6), np.allclose(inv, np.linalg.inv([[4.0, 2.0], [2.0, 3.0]]))
(True, 2.079442, True)
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["small_spd_inverse", "spd_inverse"]


@numba.njit(cache=True, error_model="numpy")
def small_spd_inverse(C, fac):
    """C -> C^-1 in place for a small SPD C, by Cholesky C = L L' (written out: below ~50
    columns LAPACK's per-call overhead costs more than the arithmetic); ``fac`` (n x n, or
    0 x 0 to skip) receives U = L' in its upper triangle. Returns ok, 1/2 log|C|."""
    n = C.shape[0]
    L = np.zeros((n, n))
    half_logdet = 0.0
    for j in range(n):
        d = C[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0.0:  # also NaN
            return False, 0.0
        ljj = np.sqrt(d)
        L[j, j] = ljj
        half_logdet += np.log(ljj)
        for i in range(j + 1, n):
            acc = C[i, j]
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            L[i, j] = acc / ljj
    Li = np.zeros((n, n))  # L^-1, lower
    for j in range(n):
        Li[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, n):
            acc = 0.0
            for k in range(j, i):
                acc -= L[i, k] * Li[k, j]
            Li[i, j] = acc / L[i, i]
    for i in range(n):  # C^-1 = L^-T L^-1
        for j in range(i, n):
            acc = 0.0
            for k in range(j, n):
                acc += Li[k, i] * Li[k, j]
            C[i, j] = acc
            C[j, i] = acc
    if fac.shape[0] == n:
        for i in range(n):
            for j in range(i, n):
                fac[i, j] = L[j, i]
    return True, half_logdet


@numba.njit(cache=True, error_model="numpy")
def spd_inverse(S):
    """(ok, log|S|, S^-1) of a small SPD ``S`` (not changed)."""
    C = S.copy()
    ok, half_logdet = small_spd_inverse(C, np.zeros((0, 0)))
    return ok, 2.0 * half_logdet, C
