"""Hot-path kernels: each one a Numba function and a plain-NumPy twin with the same signature.

The twins are tested equal (tests/test_kernels.py) in float32 and float64. The names without a
suffix (`layernorm_fwd`, ...) are the ones the layers call: for each kernel we timed both versions
on nanoGPT's CPU configuration (`python benchmarks/kernels.py`) and kept the faster. The Numba
kernels are compiled with fastmath's reassociation (vmath.FASTMATH), so that LLVM may split a sum
over SIMD lanes; where a kernel needs exp in float32 it uses the vectorized exp32 (vmath.py), since
libm's scalar exp would keep the loop scalar; before that, NumPy won LayerNorm's forward, the
softmax and cross-entropy. With NUMBA_DISABLE_JIT=1 every name points at the NumPy twin, so the
package still runs (slowly but exactly) for debugging and coverage.

Shapes: R rows (B*T or B*NH*T flattened), C channels, T keys, V vocabulary.
Row statistics (means, variances, softmax sums) accumulate in float64 scalars; column sums over
rows (LayerNorm's dw, db) in the input's dtype, as NumPy's twins do.
"""
import math

import numba
import numpy as np
from numba import njit

from .vmath import FASTMATH, exp32_into
from .kernels_gelu import (  # noqa: F401  (into this table of fast paths: see the end)
    gelu_tanh_fwd_numba, gelu_tanh_fwd_numpy, gelu_tanh_bwd_numba, gelu_tanh_bwd_numpy,
    gelu_erf_fwd_numba, gelu_erf_fwd_numpy, gelu_erf_bwd_numba, gelu_erf_bwd_numpy)

# The kernels are single-threaded (and nogil, so that a step's shards run them on two threads at
# once: training/shards.py): at these sizes (~100k elements) a parallel loop's start-up cost more
# than it saved (layernorm_bwd 0.26 ms serial, 0.45 ms on 2 threads; GELU's backward 0.16 ms
# serial, 0.20 ms on 2 threads).


# --------------------------------------------------------------------------------------------
# The linear layer's two passes besides its GEMM: the bias added to every row (forward) and the
# bias gradient, the sum over rows (backward). NumPy's broadcasting add and its axis-0 sum make
# temporaries and strided passes; a row loop is 2-3x faster at (768, 128..512).

@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def bias_add_numba(out, b):
    """out (R, N) += b (N,) on every row, in place; returns out."""
    R, N = out.shape
    for i in range(R):
        oi = out[i]
        for j in range(N):
            oi[j] += b[j]
    return out


def bias_add_numpy(out, b):
    out += b
    return out


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def col_sum_numba(d):
    """d (R, N) -> (N,): the sum over rows, accumulated in d's dtype (as NumPy's)."""
    R, N = d.shape
    out = np.zeros(N, dtype=d.dtype)
    for i in range(R):
        di = d[i]
        for j in range(N):
            out[j] += di[j]
    return out


def col_sum_numpy(d):
    return d.sum(axis=0)

# --------------------------------------------------------------------------------------------
# LayerNorm over the last axis: y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)

@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def layernorm_fwd_numba(x, w, b, eps):
    """(R, C) -> y (R, C), mean (R,), rstd (R,). Two passes over each row (mean, then the
    variance around it, in float64), a third writes y; fastmath lets each pass run in SIMD lanes."""
    R, C = x.shape
    y = np.empty_like(x)
    mean = np.empty(R, dtype=x.dtype)
    rstd = np.empty(R, dtype=x.dtype)
    for i in range(R):
        xi, yi = x[i], y[i]
        m = 0.0
        for j in range(C):
            m += xi[j]
        m /= C
        var = 0.0
        for j in range(C):
            d = xi[j] - m
            var += d * d
        mean[i] = m                                    # rounded to x's dtype, as the twin's
        rstd[i] = 1.0 / math.sqrt(var / C + eps)
        mi, ri = mean[i], rstd[i]
        for j in range(C):
            yi[j] = (xi[j] - mi) * ri * w[j] + b[j]
    return y, mean, rstd


def layernorm_fwd_numpy(x, w, b, eps):
    mean = x.mean(axis=1)
    xc = x - mean[:, None]
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=1) + eps)
    xc *= rstd[:, None]                                # xhat
    xc *= w
    xc += b
    return xc, mean, rstd.astype(x.dtype, copy=False)


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def layernorm_bwd_numba(dy, x, mean, rstd, w):
    """dy, x (R, C) -> dx (R, C), dw (C,), db (C,).

    forward: xhat = (x - mean) * rstd;  y = xhat * w + b
    =>  dxhat = dy * w;  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    One pass per row gathers both row means (float64) and adds the row into dw, db (column sums
    in x's dtype, as the twin's); a second writes dx.
    """
    R, C = x.shape
    dx = np.empty_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(w)
    for i in range(R):
        xi, dyi, dxi = x[i], dy[i], dx[i]
        m, r = mean[i], rstd[i]
        s1 = 0.0                                       # sum of dxhat
        s2 = 0.0                                       # sum of dxhat * xhat
        for j in range(C):
            xh = (xi[j] - m) * r
            dxh = dyi[j] * w[j]
            s1 += dxh
            s2 += dxh * xh
            dw[j] += dyi[j] * xh
            db[j] += dyi[j]
        a = x.dtype.type(s1 / C)
        c = x.dtype.type(s2 / C)
        for j in range(C):
            xh = (xi[j] - m) * r
            dxi[j] = r * (dyi[j] * w[j] - a - xh * c)
    return dx, dw, db


def layernorm_bwd_numpy(dy, x, mean, rstd, w):
    xhat = (x - mean[:, None]) * rstd[:, None]
    dw = (dy * xhat).sum(axis=0)
    db = dy.sum(axis=0)
    dxhat = dy * w
    dx = dxhat - dxhat.mean(axis=1, keepdims=True)
    dx -= xhat * (dxhat * xhat).mean(axis=1, keepdims=True)
    dx *= rstd[:, None]
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# Attention softmax over keys, in place: p = softmax(scale * s) with keys j > t masked when causal.
# Rows are (B*NH*T) query rows of T keys; row r is query position t = r % T.

@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_fwd32(s, scale, causal):
    """float32, one (T, T) block of rows (one batch row and head) at a time: the shifted scores
    of the whole block go into a buffer, exp32 runs over it in one long SIMD loop (per-row calls
    on rows of ~32 visible keys cost twice as much), then each row is summed and scaled. Masked
    keys get an exact 0. Needs scale > 0 (the max of s * scale is taken as max(s) * scale)."""
    R, T = s.shape
    z = np.empty(T * T, np.float32)                    # the block's shifted scores
    e = np.empty(T * T, np.float32)                    # their exps
    bits = np.empty(T * T, np.int32)
    sc = np.float32(scale)
    for r0 in range(0, R, T):
        for i in range(T):
            row = s[r0 + i]
            n = i + 1 if causal else T                 # number of visible keys
            mx = row[0]
            for j in range(1, n):
                mx = max(mx, row[j])
            mx *= sc
            for j in range(T):                         # masked keys too: a fixed-length loop
                z[i * T + j] = max(row[j] * sc - mx, np.float32(-87.0))
        exp32_into(z, e, bits)
        for i in range(T):
            row = s[r0 + i]
            n = i + 1 if causal else T
            tot = 0.0
            for j in range(n):
                tot += e[i * T + j]
            inv = np.float32(1.0 / tot)
            for j in range(n):
                row[j] = e[i * T + j] * inv
            for j in range(n, T):
                row[j] = 0.0
    return s


@njit(cache=True, nogil=True)
def _softmax_fwd_exact(s, scale, causal):
    """Any dtype, libm's exp (float64: the gradient checks)."""
    R, T = s.shape
    for r in range(R):
        n = r % T + 1 if causal else T
        mx = -np.inf
        for j in range(n):
            mx = max(mx, s[r, j] * scale)
        tot = 0.0
        for j in range(n):
            e = math.exp(s[r, j] * scale - mx)
            s[r, j] = e
            tot += e
        inv = 1.0 / tot
        for j in range(n):
            s[r, j] *= inv
        for j in range(n, T):
            s[r, j] = 0.0
    return s


def softmax_fwd_numba(s, scale, causal):
    """s (R, T) raw scores q.k (C-contiguous), overwritten with probabilities; returns s."""
    if s.dtype == np.float32:
        return _softmax_fwd32(s, scale, causal)
    return _softmax_fwd_exact(s, scale, causal)


def softmax_fwd_numpy(s, scale, causal):
    R, T = s.shape
    s *= scale
    if causal:
        s3 = s.reshape(-1, T, T)                       # (B*NH, T, T)
        s3 += _causal_bias(T, s.dtype)
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)                                   # exp(-inf) = 0 on the masked keys
    s /= s.sum(axis=1, keepdims=True)
    return s


_CAUSAL_CACHE = {}


def _causal_bias(T, dtype):
    """(T, T) additive mask: 0 on and below the diagonal, -inf above (future keys)."""
    key = (T, np.dtype(dtype))
    if key not in _CAUSAL_CACHE:
        _CAUSAL_CACHE[key] = np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)
    return _CAUSAL_CACHE[key]


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def softmax_bwd_numba(p, dp, scale):
    """p, dp (R, T) -> ds (R, T), written into dp.

    forward: p = softmax(scale * s)  =>  ds = scale * p * (dp - sum_j(dp * p))
    Masked keys have p = 0, so they get ds = 0 with no mask needed.
    """
    R, T = p.shape
    for r in range(R):
        dot = 0.0
        for j in range(T):
            dot += dp[r, j] * p[r, j]
        for j in range(T):
            dp[r, j] = scale * p[r, j] * (dp[r, j] - dot)
    return dp


def softmax_bwd_numpy(p, dp, scale):
    dot = (dp * p).sum(axis=1, keepdims=True)
    dp -= dot
    dp *= p
    dp *= scale
    return dp


# --------------------------------------------------------------------------------------------
# Softmax cross-entropy, forward and backward fused: the loss needs the probabilities anyway.

@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _xent32(logits, y):
    """float32, a chunk of rows at a time (about 4096 logits): the shifted logits of the chunk
    go through one exp32 call, then each row gives its loss (float64) and its gradient row."""
    R, V = logits.shape
    rows = max(1, 4096 // V)
    z = np.zeros(rows * V, np.float32)                 # shifted logits of the chunk
    e = np.empty(rows * V, np.float32)                 # their exps
    bits = np.empty(rows * V, np.int32)
    dlogits = np.empty_like(logits)
    total = 0.0
    for r0 in range(0, R, rows):
        nr = min(rows, R - r0)
        for i in range(nr):
            row = logits[r0 + i]
            mx = row[0]
            for j in range(1, V):
                mx = max(mx, row[j])
            for j in range(V):
                z[i * V + j] = row[j] - mx
        exp32_into(z, e, bits)                         # the whole buffer: see _softmax_fwd32
        for i in range(nr):
            tot = 0.0
            for j in range(V):
                tot += e[i * V + j]
            t = y[r0 + i]
            total += math.log(tot) - z[i * V + t]      # -log softmax_t = log sum exp z - z_t
            inv = np.float32(1.0 / (tot * R))
            d = dlogits[r0 + i]
            for j in range(V):
                d[j] = e[i * V + j] * inv
            d[t] -= np.float32(1.0 / R)
    return total / R, dlogits


@njit(cache=True, nogil=True)
def _xent_exact(logits, y):
    """Any dtype, libm's exp (float64: the gradient checks)."""
    R, V = logits.shape
    dlogits = np.empty_like(logits)
    losses = np.empty(R)
    for r in range(R):
        mx = -np.inf
        for j in range(V):
            mx = max(mx, logits[r, j])
        tot = 0.0
        for j in range(V):
            e = math.exp(logits[r, j] - mx)
            dlogits[r, j] = e
            tot += e
        losses[r] = math.log(tot) + mx - logits[r, y[r]]
        inv = 1.0 / (tot * R)
        for j in range(V):
            dlogits[r, j] *= inv
        dlogits[r, y[r]] -= 1.0 / R
    return losses.sum() / R, dlogits


def xent_numba(logits, y):
    """logits (R, V), y (R,) int -> mean loss (float), dlogits (R, V) = (softmax - onehot) / R."""
    if logits.dtype == np.float32:
        return _xent32(logits, y)
    return _xent_exact(logits, y)


def xent_numpy(logits, y):
    R, V = logits.shape
    rows = np.arange(R)
    z = logits - logits.max(axis=1, keepdims=True)
    z_y = z[rows, y].astype(np.float64)
    np.exp(z, out=z)
    tot = z.sum(axis=1, dtype=np.float64)
    loss = float(np.mean(np.log(tot) - z_y))       # -log softmax_y = log sum exp z - z_y
    z /= (tot[:, None] * R).astype(z.dtype)
    z[rows, y] -= 1.0 / R
    return loss, z


# --------------------------------------------------------------------------------------------
# Embedding backward: scatter-add rows of dout into the table (np.add.at is a slow path).

@njit(cache=True, nogil=True)
def embedding_bwd_numba(idx, dout, V):
    """idx (R,) int, dout (R, C) -> dW (V, C)."""
    R, C = dout.shape
    dW = np.zeros((V, C), dtype=dout.dtype)
    for r in range(R):
        row = idx[r]
        for j in range(C):
            dW[row, j] += dout[r, j]
    return dW


def embedding_bwd_numpy(idx, dout, V):
    dW = np.zeros((V, dout.shape[1]), dtype=dout.dtype)
    np.add.at(dW, idx, dout)
    return dW


# --------------------------------------------------------------------------------------------
# The fast path. Chosen by measurement (docs/speed.md; benchmarks/kernels.py prints both timings);
# NumPy everywhere without the JIT.

_NUMBA_WINS = ("bias_add", "col_sum", "layernorm_fwd", "layernorm_bwd", "softmax_fwd",
               "softmax_bwd", "embedding_bwd",
               "gelu_tanh_fwd", "gelu_tanh_bwd", "gelu_erf_fwd", "gelu_erf_bwd", "xent")
_NUMPY_WINS = ()                 # none since the float32 kernels got exp32 (docs/speed.md)

KERNELS = _NUMBA_WINS + _NUMPY_WINS


def use(name, impl):
    """Point the fast-path name `name` at its "numba" or "numpy" version (benchmarks use this)."""
    globals()[name] = globals()[f"{name}_{impl}"]


for _name in KERNELS:
    use(_name, "numpy" if numba.config.DISABLE_JIT or _name in _NUMPY_WINS else "numba")
