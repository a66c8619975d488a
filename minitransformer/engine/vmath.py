"""exp and erf that vectorize: the float32 functions the Numba kernels use inside their loops.

Numba compiles `math.exp` to a call of libm's scalar exp per element: LLVM cannot turn a loop
around it into SIMD code (that needs Intel's SVML, which Numba only uses when the optional icc_rt
package is installed). NumPy's `np.exp` is SIMD, but it is a separate pass over memory, so a fused
kernel (softmax: max, exp, sum, scale in one visit of each row) could not use it. This is the
textbook way to build exp from operations LLVM does vectorize (Cody & Waite range reduction, then
a polynomial, then a power of two made from its bits):

    x = k ln2 + f,   k = round(x / ln2),  |f| <= ln2 / 2
    exp(f) ~ the degree-7 Taylor polynomial (its remainder f^8/8! < 2e-8 relative on that range)
    2^k    = the float32 whose exponent field is k + 127 and mantissa 0  (bits (k + 127) << 23)
    exp(x) = exp(f) * 2^k

ln2 is split in two (LN2_HI has few mantissa bits, so k * LN2_HI is exact) so that f keeps its
precision. x is clamped to [-87, 88] so that 2^k stays a normal float32: exp(-inf) gives 1.6e-38
rather than 0 and exp(+inf) 1.7e38 rather than inf (callers that need an exact 0, the causal
mask, never call exp on those entries); NaN stays NaN. Measured against float64 exp on 2x10^5
points of [-87, 88]: relative error < 7.3e-8, about 1.2 float32 ulp (tests/test_kernels.py
asserts 1e-7 on 2x10^4 points).

erf (exact GELU, the ViT's) is Abramowitz & Stegun's formula 7.1.26 around exp32 for |x| >= 1,

    erf(|x|) = 1 - (a1 s + a2 s^2 + a3 s^3 + a4 s^4 + a5 s^5) exp(-x^2),   s = 1 / (1 + p |x|)

with their published constants below (absolute error < 1.5e-7, the book's bound), and erf's
Taylor series to x^23 for |x| < 1, where the formula's 1 - (a number near 1) would cancel in
float32 and its alternating a's lose bits (the series' next term is below 4e-9 there);
erf(-x) = -erf(x). All in float32. Measured against scipy's float64 erf on 2x10^6 points of
[-6, 6]: absolute error < 1.81e-7, largest near |x| = 1.39 (the book's 1.5e-7 plus float32
rounding; tests/test_kernels.py asserts 2e-7): as GELU's x Phi(x), an error below 1e-7 |x|.
(A minimax fit would do better; this is the formula a reader can look up.)

Numba's on-disk cache keys a kernel on its own file only: after editing this file, delete
minitransformer/engine/__pycache__, or kernels.py will keep using the old exp32 compiled into it.

float64 has its own path in each kernel (libm's exp, exact to round-off): it is the precision of
the gradient checks, where exactness matters more than speed.
"""
import math

import numpy as np
from numba import njit

# fastmath without "nnan"/"ninf": NaN and inf still propagate (divergence must stay visible);
# "reassoc" lets LLVM reorder sums into SIMD lanes, "contract" fuses multiply-adds.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# exp32 and erf32 without "reassoc": it would fold v - k LN2_HI - k LN2_LO into v - k ln2 and lose
# the split (relative error 3.0e-7 with it, 7.2e-8 without). Fast-math flags are per instruction,
# so these keep theirs when LLVM inlines them into a kernel compiled with FASTMATH.
ELEMENTWISE = {"contract", "nsz", "arcp"}

LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125        # ln 2 rounded to 16 mantissa bits: k * LN2_HI is exact in float32
LN2_LO = 1.428606765330187e-06    # ln 2 - LN2_HI


@njit(cache=True, nogil=True, fastmath=ELEMENTWISE, error_model="numpy")
def exp32_into(x, out, bits):
    """out[:n] = exp(x[:n]), n = len(x), for float32 1-D arrays; bits is int32 scratch of length
    >= n (the exponent fields, viewed as float32 powers of two). out must not be x: LLVM guards
    its SIMD loop with a check that the arrays do not overlap, and runs the scalar loop (3x
    slower) when they do."""
    n = x.shape[0]
    for i in range(n):
        v = min(max(x[i], np.float32(-87.0)), np.float32(88.0))
        # k from 0 for a NaN (the clamps pass NaN through): converting NaN to int32 is undefined
        # (LLVM's fptosi gives poison; NumPy, without the JIT, warns); f, and so out, stay NaN.
        k = np.floor((v if v == v else np.float32(0.0)) * np.float32(LOG2E) + np.float32(0.5))
        f = v - k * np.float32(LN2_HI) - k * np.float32(LN2_LO)
        p = np.float32(1.0 / 5040.0)                   # Horner: sum of f^i / i!, i = 0..7
        p = p * f + np.float32(1.0 / 720.0)
        p = p * f + np.float32(1.0 / 120.0)
        p = p * f + np.float32(1.0 / 24.0)
        p = p * f + np.float32(1.0 / 6.0)
        p = p * f + np.float32(0.5)
        p = p * f + np.float32(1.0)
        p = p * f + np.float32(1.0)
        out[i] = p
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    two_k = bits[:n].view(np.float32)                  # 2^k, exactly
    for i in range(n):
        out[i] *= two_k[i]


@njit(cache=True, nogil=True, fastmath=ELEMENTWISE, error_model="numpy")
def exp32(x):
    """exp of a float32 array of any shape (a fresh array): exp32_into over its elements."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    exp32_into(flat, out, np.empty(flat.shape[0], np.int32))
    return out.reshape(x.shape)


# Abramowitz & Stegun, Handbook of Mathematical Functions (1964), 7.1.26.
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


# erf's series: 2/sqrt(pi) * sum over n of (-1)^n x^(2n+1) / (n! (2n+1)), n = 0..11
ERF_TAYLOR = tuple(2.0 / 1.7724538509055159 * (-1) ** n / (math.factorial(n) * (2 * n + 1))
                   for n in range(12))


@njit(cache=True, nogil=True, fastmath=ELEMENTWISE, error_model="numpy")
def erf32_into(x, out, e, bits):
    """out[:n] = erf(x[:n]) for float32 1-D arrays; e float32 and bits int32 scratch of length
    >= n. out, x and e must be three different arrays (see exp32_into)."""
    n = x.shape[0]
    a1, a2, a3 = np.float32(ERF_A[0]), np.float32(ERF_A[1]), np.float32(ERF_A[2])
    a4, a5, p = np.float32(ERF_A[3]), np.float32(ERF_A[4]), np.float32(ERF_P)
    for i in range(n):
        e[i] = -(x[i] * x[i])
    exp32_into(e[:n], out, bits)                       # out = exp(-x^2), read back below
    for i in range(n):
        v = x[i]
        v2 = v * v
        series = np.float32(ERF_TAYLOR[11])            # Horner in x^2, from the last term
        for k in range(10, -1, -1):
            series = series * v2 + np.float32(ERF_TAYLOR[k])
        s = np.float32(1.0) / (np.float32(1.0) + p * abs(v))
        poly = s * (a1 + s * (a2 + s * (a3 + s * (a4 + s * a5))))
        r = np.float32(1.0) - poly * out[i]            # erf(|x|)
        large = r if v >= 0 else -r                    # NaN: r is NaN either way
        out[i] = v * series if abs(v) < np.float32(1.0) else large


@njit(cache=True, nogil=True, fastmath=ELEMENTWISE, error_model="numpy")
def erf32(x):
    """erf of a float32 array of any shape (a fresh array): erf32_into over its elements."""
    flat = np.ascontiguousarray(x).reshape(-1)
    n = flat.shape[0]
    out = np.empty_like(flat)
    erf32_into(flat, out, np.empty(n, np.float32), np.empty(n, np.int32))
    return out.reshape(x.shape)
