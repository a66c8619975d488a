"""GELU kernels, both forms: each a Numba function and a plain-NumPy twin (kernels.py's rules).

kernels.py imports these into its table of fast paths; the layers call them through it
(`kernels.gelu_tanh_fwd`, ...), so `kernels.use` switches them like every other kernel.
Shapes: any; the Numba versions need C-contiguous arrays (the linear layers' outputs are).
"""
import math

import numpy as np
from numba import njit

from .vmath import FASTMATH, erf32_into, exp32_into

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_GELU_K = 0.044715


# --------------------------------------------------------------------------------------------
# GELU, tanh approximation (GPT-2):  y = 0.5 x (1 + t),  t = tanh(u),  u = sqrt(2/pi) (x + k x^3)
# The forward returns t too: the backward needs it, and tanh is the expensive part.
# Numba calls libm's scalar tanh (6.5 ms on a 768x512 array) while np.tanh is SIMD, so float64
# fuses the polynomial and the product into one pass each around np.tanh; float32 runs one pass
# per chunk with tanh(u) = 1 - 2 / (exp32(2u) + 1) (0.18 against 0.31 ms on 768x512; absolute
# error of t below 2.1e-7, against 7.5e-8 for np.tanh in float32: the 1 - (a number near 1)
# near u = 0 costs an ulp of 1, which GELU's 0.5 x (1 + t) never notices).

@njit(cache=True, nogil=True, error_model="numpy")
def _gelu_tanh_arg(x):
    u = np.empty_like(x)
    xf, uf = x.reshape(-1), u.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        uf[i] = _SQRT_2_OVER_PI * (v + _GELU_K * v * v * v)
    return u


@njit(cache=True, nogil=True, error_model="numpy")
def _gelu_tanh_out(x, t):
    y = np.empty_like(x)
    xf, tf, yf = x.reshape(-1), t.reshape(-1), y.reshape(-1)
    for i in range(xf.size):
        yf[i] = 0.5 * xf[i] * (1.0 + tf[i])
    return y


_CHUNK = 1024                                          # elements per exp32 / erf32 call, in L1


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _gelu_tanh_fwd32(x):
    y, t = np.empty_like(x), np.empty_like(x)
    xf, yf, tf = x.reshape(-1), y.reshape(-1), t.reshape(-1)
    u2 = np.empty(_CHUNK, np.float32)
    e = np.empty(_CHUNK, np.float32)
    bits = np.empty(_CHUNK, np.int32)
    for c0 in range(0, xf.size, _CHUNK):
        n = min(_CHUNK, xf.size - c0)
        # Views of the chunk, indexed from 0: with xf[c0 + i] LLVM could not prove the index
        # non-negative, kept Numba's wraparound branch and left the loops scalar (2-5x slower).
        xs, ys, ts = xf[c0:c0 + n], yf[c0:c0 + n], tf[c0:c0 + n]
        us = u2[:n]
        for i in range(n):
            v = xs[i]
            us[i] = np.float32(2.0 * _SQRT_2_OVER_PI) * (v + np.float32(_GELU_K) * v * v * v)
        exp32_into(us, e, bits)                        # exp(2u)
        for i in range(n):
            th = np.float32(1.0) - np.float32(2.0) / (e[i] + np.float32(1.0))
            ts[i] = th
            ys[i] = np.float32(0.5) * xs[i] * (np.float32(1.0) + th)
    return y, t


def gelu_tanh_fwd_numba(x):
    """x (C-contiguous) -> y, t (the tanh, for the backward)."""
    if x.dtype == np.float32:
        return _gelu_tanh_fwd32(x)
    t = _gelu_tanh_arg(x)
    np.tanh(t, out=t)
    return _gelu_tanh_out(x, t), t


def gelu_tanh_fwd_numpy(x):
    t = x * x                                          # x*x*x, not x**3: pow is 80x slower
    t *= x
    t *= _GELU_K
    t += x
    t *= _SQRT_2_OVER_PI
    np.tanh(t, out=t)
    y = t + 1.0
    y *= x
    y *= 0.5
    return y, t


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def gelu_tanh_bwd_numba(x, t, dy):
    """dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3k x^2).  One pass."""
    dx = np.empty_like(x)
    xf, tf, dyf, dxf = x.reshape(-1), t.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    for i in range(xf.size):
        v, th = xf[i], tf[i]
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_K * v * v)
        dxf[i] = dyf[i] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du)
    return dx


def gelu_tanh_bwd_numpy(x, t, dy):
    du = x * x
    du *= 3.0 * _GELU_K
    du += 1.0
    du *= _SQRT_2_OVER_PI * 0.5
    du *= x                                            # 0.5 x du/dx
    dx = t * t
    np.subtract(1.0, dx, out=dx)
    dx *= du
    dx += 0.5
    dx += 0.5 * t
    dx *= dy
    return dx


# GELU, exact (timm): y = x Phi(x),  Phi(x) = 0.5 (1 + erf(x / sqrt 2)),  dy/dx = Phi(x) + x phi(x)
# The forward returns Phi(x) for the backward, which then needs only phi (one exp). float32 runs
# one pass per chunk around vmath's erf32 and exp32 (libm's scalar erf kept the old kernel at
# 1.5 ms on a 768x512 array even on 2 threads); float64 keeps libm's erf (serial: see _phi_cdf).

@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _gelu_erf_fwd32(x):
    y, cdf = np.empty_like(x), np.empty_like(x)
    xf, yf, cf = x.reshape(-1), y.reshape(-1), cdf.reshape(-1)
    u = np.empty(_CHUNK, np.float32)
    erf_u = np.empty(_CHUNK, np.float32)
    e = np.empty(_CHUNK, np.float32)
    bits = np.empty(_CHUNK, np.int32)
    for c0 in range(0, xf.size, _CHUNK):
        n = min(_CHUNK, xf.size - c0)
        xs, ys, cs = xf[c0:c0 + n], yf[c0:c0 + n], cf[c0:c0 + n]
        us = u[:n]                                     # views indexed from 0: see the tanh form
        for i in range(n):
            us[i] = xs[i] * np.float32(_INV_SQRT_2)
        erf32_into(us, erf_u, e, bits)
        for i in range(n):
            c = np.float32(0.5) * (np.float32(1.0) + erf_u[i])
            cs[i] = c
            ys[i] = xs[i] * c
    return y, cdf


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _gelu_erf_bwd32(x, cdf, dy):
    dx = np.empty_like(x)
    xf, cf, dyf, dxf = x.reshape(-1), cdf.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    u = np.empty(_CHUNK, np.float32)
    e = np.empty(_CHUNK, np.float32)
    bits = np.empty(_CHUNK, np.int32)
    c = np.float32(1.0 / math.sqrt(2.0 * math.pi))
    for c0 in range(0, xf.size, _CHUNK):
        n = min(_CHUNK, xf.size - c0)
        xs, cs, dys, dxs = xf[c0:c0 + n], cf[c0:c0 + n], dyf[c0:c0 + n], dxf[c0:c0 + n]
        us = u[:n]                                     # views indexed from 0: see the tanh form
        for i in range(n):
            us[i] = np.float32(-0.5) * xs[i] * xs[i]
        exp32_into(us, e, bits)                        # sqrt(2 pi) phi(x)
        for i in range(n):
            dxs[i] = dys[i] * (cs[i] + xs[i] * c * e[i])
    return dx


@njit(cache=True, nogil=True)   # float64 only. Serial: a step's shards call it from two threads
def _phi_cdf(x):                  # at once, which Numba's workqueue threading layer cannot serve
    c = np.empty_like(x)
    xf, cf = x.reshape(-1), c.reshape(-1)
    for i in range(xf.size):
        cf[i] = 0.5 * (1.0 + math.erf(xf[i] * _INV_SQRT_2))
    return c


def gelu_erf_fwd_numba(x):
    """x (C-contiguous) -> y, Phi(x)."""
    if x.dtype == np.float32:
        return _gelu_erf_fwd32(x)
    cdf = _phi_cdf(x)
    return x * cdf, cdf


def gelu_erf_fwd_numpy(x):
    from scipy.special import erf
    cdf = erf(x * _INV_SQRT_2)
    cdf += 1.0
    cdf *= 0.5
    return x * cdf, cdf


@njit(cache=True, nogil=True, error_model="numpy")
def _gelu_erf_combine(x, cdf, e, dy):
    dx = np.empty_like(x)
    xf, cf, ef, dyf, dxf = x.reshape(-1), cdf.reshape(-1), e.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    c = 1.0 / math.sqrt(2.0 * math.pi)
    for i in range(xf.size):
        dxf[i] = dyf[i] * (cf[i] + xf[i] * c * ef[i])
    return dx


def gelu_erf_bwd_numba(x, cdf, dy):
    if x.dtype == np.float32:
        return _gelu_erf_bwd32(x, cdf, dy)
    e = x * x
    e *= -0.5
    np.exp(e, out=e)                                   # SIMD exp; phi = e / sqrt(2 pi)
    return _gelu_erf_combine(x, cdf, e, dy)


def gelu_erf_bwd_numpy(x, cdf, dy):
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    pdf *= x
    pdf += cdf
    pdf *= dy
    return pdf


