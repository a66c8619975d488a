"""exp that vectorizes: the float32 exponential the Numba kernels use inside their loops.

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
mask, never call exp on those entries); NaN stays NaN. Measured against float64 exp on 10^6
points of [-87, 88]: relative error < 3.1e-7 (about 5 float32 ulp; tests/test_kernels.py).

float64 has its own path in each kernel (libm's exp, exact to round-off): it is the precision of
the gradient checks, where exactness matters more than speed.
"""
import numpy as np
from numba import njit

# fastmath without "nnan"/"ninf": NaN and inf still propagate (divergence must stay visible);
# "reassoc" lets LLVM reorder sums into SIMD lanes, "contract" fuses multiply-adds.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125        # ln 2 rounded to 16 mantissa bits: k * LN2_HI is exact in float32
LN2_LO = 1.428606765330187e-06    # ln 2 - LN2_HI


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def exp32_into(x, out, bits):
    """out[:n] = exp(x[:n]), n = len(x), for float32 1-D arrays (out may be x); bits is int32
    scratch of length >= n (the exponent fields, viewed as float32 powers of two)."""
    n = x.shape[0]
    for i in range(n):
        v = min(max(x[i], np.float32(-87.0)), np.float32(88.0))
        k = np.floor(v * np.float32(LOG2E) + np.float32(0.5))
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def exp32(x):
    """exp of a float32 array of any shape (a fresh array): exp32_into over its elements."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    exp32_into(flat, out, np.empty(flat.shape[0], np.int32))
    return out.reshape(x.shape)
