"""Layers as forward/backward pairs of plain functions, backward right below its forward.

    x_forward(x, *params)  -> (out, cache)
    x_backward(dout, cache) -> (dx, *dparams)       fresh arrays, never views of the cache

Shapes: B batch, T tokens, C channels, V vocab, P patch size, N patches, Cin image channels,
H/W image height/width, K classes, "..." any leading axes. Weights are (in, out): y = x @ w + b.
The hot elementwise work (LayerNorm, GELU, cross-entropy, embedding scatter) is in kernels.py.
"""
from typing import NamedTuple

import numpy as np

from . import kernels
from ..errors import ConfigError


# --------------------------------------------------------------------------------------------
# Linear: y = x @ w + b

class LinearCache(NamedTuple):
    x: np.ndarray          # (R, in), the input with its leading axes flattened
    w: np.ndarray          # (in, out)


def linear_forward(x, w, b=None):
    x2 = x.reshape(-1, x.shape[-1])                    # (..., in) -> (R, in): one GEMM, not one per batch row
    out = x2 @ w                                       # (R, in) @ (in, out) -> (R, out)
    if b is not None:
        kernels.bias_add(out, b)                       # out += b on every row
    return out.reshape(*x.shape[:-1], w.shape[1]), LinearCache(x2, w)


def linear_backward(dout, cache):
    """forward: y = x @ w + b  =>  dx = dy @ w.T,  dw = x.T @ dy,  db = sum of dy over rows."""
    x2, w = cache
    d2 = dout.reshape(-1, dout.shape[-1])              # (..., out) -> (R, out)
    dx = d2 @ w.T                                      # (R, out) @ (out, in) -> (R, in)
    dw = x2.T @ d2                                     # (in, R) @ (R, out) -> (in, out)
    db = kernels.col_sum(np.ascontiguousarray(d2))     # sum over rows
    return dx.reshape(*dout.shape[:-1], w.shape[0]), dw, db


# --------------------------------------------------------------------------------------------
# LayerNorm over channels. Cache x, mean and rstd; xhat is recomputed in backward (one pass,
# cheaper than storing another (R, C) array).

class LayerNormCache(NamedTuple):
    x: np.ndarray          # (R, C)
    mean: np.ndarray       # (R,)
    rstd: np.ndarray       # (R,)
    w: np.ndarray          # (C,)


def layernorm_forward(x, w, b, eps):
    shape = x.shape
    x2 = np.ascontiguousarray(x).reshape(-1, shape[-1])     # (..., C) -> (R, C)
    out, mean, rstd = kernels.layernorm_fwd(x2, w, b, eps)
    return out.reshape(shape), LayerNormCache(x2, mean, rstd, w)


def layernorm_backward(dout, cache):
    d2 = np.ascontiguousarray(dout).reshape(cache.x.shape)
    dx, dw, db = kernels.layernorm_bwd(d2, cache.x, cache.mean, cache.rstd, cache.w)
    return dx.reshape(dout.shape), dw, db


# --------------------------------------------------------------------------------------------
# GELU: "tanh" = GPT-2's approximation, "erf" = exact (timm). The cache is the input.

class GeluCache(NamedTuple):
    x: np.ndarray
    aux: np.ndarray        # tanh(u) for "tanh", Phi(x) for "erf": the costly part, kept for backward
    kind: str


def gelu_forward(x, kind="tanh"):
    fwd = kernels.gelu_tanh_fwd if kind == "tanh" else kernels.gelu_erf_fwd
    y, aux = fwd(x)
    return y, GeluCache(x, aux, kind)


def gelu_backward(dout, cache):
    bwd = kernels.gelu_tanh_bwd if cache.kind == "tanh" else kernels.gelu_erf_bwd
    return bwd(cache.x, cache.aux, dout)


# --------------------------------------------------------------------------------------------
# Token and position embeddings (GPT): x = wte[idx] + wpe[:T]

class EmbeddingCache(NamedTuple):
    idx: np.ndarray        # (B, T) int
    V: int                 # rows of wte
    n_pos: int             # rows of wpe


def embedding_forward(idx, wte, wpe):
    B, T = idx.shape
    out = wte[idx]                                     # (B, T) -> (B, T, C)
    out += wpe[:T]                                     # (T, C) broadcast over B
    return out, EmbeddingCache(idx, wte.shape[0], wpe.shape[0])


def embedding_backward(dout, cache):
    """forward: x[b,t] = wte[idx[b,t]] + wpe[t]  =>  dwte[v] = sum of dout where idx == v,
    dwpe[t] = sum over b of dout[b,t]."""
    B, T, C = dout.shape
    d2 = np.ascontiguousarray(dout).reshape(B * T, C)
    dwte = kernels.embedding_bwd(cache.idx.reshape(-1), d2, cache.V)
    dwpe = np.zeros((cache.n_pos, C), dtype=dout.dtype)
    dwpe[:T] = dout.sum(axis=0)
    return dwte, dwpe


# --------------------------------------------------------------------------------------------
# Softmax cross-entropy, mean over rows. Forward and backward are fused in one kernel (the
# gradient needs the softmax the loss computes), so the cache is the finished gradient.

def cross_entropy_forward(logits, y):
    """logits (..., V), y (...) int -> mean loss (float)."""
    V = logits.shape[-1]
    y = np.asarray(y)
    # checked here because the kernel indexes logits[r, y[r]] without bounds checks
    if y.shape != logits.shape[:-1] or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"targets must be integers of shape {logits.shape[:-1]}, "
                         f"got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= V):
        raise ConfigError(f"targets must lie in [0, {V}), got values in [{y.min()}, {y.max()}]")
    l2 = np.ascontiguousarray(logits).reshape(-1, V)  # (..., V) -> (R, V)
    loss, dlogits = kernels.xent(l2, np.ascontiguousarray(y).reshape(-1))
    return loss, dlogits.reshape(logits.shape)


def cross_entropy_backward(dloss, cache):
    """forward: loss = mean_r(-log softmax(z_r)[y_r])  =>  dz_r = (softmax(z_r) - onehot(y_r)) / R."""
    return cache * dloss


# --------------------------------------------------------------------------------------------
# Patch embedding (ViT): cut the image into P x P patches, row-major over the image, each
# flattened (row, col, channel), then a linear map to C channels.

def patchify(img, P):
    """(B, H, W, Cin) -> (B, N, P*P*Cin), N = (H/P)(W/P)."""
    B, H, W, Cin = img.shape
    gh, gw = H // P, W // P
    x = img.reshape(B, gh, P, gw, P, Cin)              # (B, gh, P, gw, P, Cin)
    x = x.transpose(0, 1, 3, 2, 4, 5)                  # (B, gh, gw, P, P, Cin)
    return np.ascontiguousarray(x).reshape(B, gh * gw, P * P * Cin)


def unpatchify(x, P, H, W, Cin):
    """(B, N, P*P*Cin) -> (B, H, W, Cin): the inverse of patchify (and its adjoint)."""
    B = x.shape[0]
    gh, gw = H // P, W // P
    x = x.reshape(B, gh, gw, P, P, Cin).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(x).reshape(B, H, W, Cin)


class PatchEmbedCache(NamedTuple):
    lin: LinearCache
    img_shape: tuple
    P: int


def patch_embed_forward(img, w, b, P):
    patches = patchify(img, P)                         # (B, H, W, Cin) -> (B, N, P*P*Cin)
    out, lin = linear_forward(patches, w, b)           # (B, N, P*P*Cin) -> (B, N, C)
    return out, PatchEmbedCache(lin, img.shape, P)


def patch_embed_backward(dout, cache):
    dpatches, dw, db = linear_backward(dout, cache.lin)
    _, H, W, Cin = cache.img_shape
    return unpatchify(dpatches, cache.P, H, W, Cin), dw, db


# --------------------------------------------------------------------------------------------
# Position embedding added to a token sequence (ViT): x + pos

def add_pos_forward(x, pos):
    return x + pos, None                               # (B, N, C) + (N, C)


def add_pos_backward(dout, cache):
    return dout.copy(), dout.sum(axis=0)               # dpos = sum over the batch


# --------------------------------------------------------------------------------------------
# CLS token: prepend one learned vector to every sequence.

def cls_forward(x, cls):
    B, N, C = x.shape
    out = np.empty((B, N + 1, C), dtype=x.dtype)       # (B, N, C) -> (B, N+1, C)
    out[:, 0] = cls
    out[:, 1:] = x
    return out, None


def cls_backward(dout, cache):
    return dout[:, 1:].copy(), dout[:, 0].sum(axis=0)  # dx, dcls


# --------------------------------------------------------------------------------------------
# Pooling for the ViT head: token 0 ("cls") or the mean over tokens ("mean").

def pool_forward(x, kind):
    if kind == "cls":
        return x[:, 0].copy(), (x.shape, kind)         # (B, N, C) -> (B, C)
    return x.mean(axis=1), (x.shape, kind)


def pool_backward(dout, cache):
    shape, kind = cache
    B, N, C = shape
    dx = np.zeros(shape, dtype=dout.dtype)
    if kind == "cls":
        dx[:, 0] = dout
    else:
        dx += dout[:, None, :] / N                     # forward: mean over N tokens
    return dx


# --------------------------------------------------------------------------------------------
# ReZero gate: y = alpha * x, alpha a learned scalar of shape (1,).

def gate_forward(x, alpha):
    return x * alpha[0], (x, alpha)


def gate_backward(dout, cache):
    """forward: y = a x  =>  dx = a dy,  da = sum(dy * x)."""
    x, alpha = cache
    da = np.array([np.vdot(dout, x)], dtype=dout.dtype)
    return dout * alpha[0], da
