"""Multi-head self-attention, the mixing step between the two linear maps.

    qkv (B, T, 3C) -> y (B, T, C)
    per head h:  y_h = softmax(scale * q_h k_h^T + mask) v_h

The columns of qkv are [q | k | v], each C wide with the heads contiguous inside (GPT-2's
layout), so head h of q is qkv[..., h*HS:(h+1)*HS]. Shapes: B batch, T tokens, C channels,
NH heads, HS = C / NH head size. The batched matmuls go to BLAS (one call per (b, h));
the softmax and its backward are kernels.
"""
from typing import NamedTuple

import numpy as np

from . import kernels


class AttentionCache(NamedTuple):
    q: np.ndarray          # (B, NH, T, HS), a strided view of qkv
    k: np.ndarray          # (B, NH, T, HS)
    v: np.ndarray          # (B, NH, T, HS)
    probs: np.ndarray      # (B, NH, T, T), rows sum to 1, zero above the diagonal when causal
    scale: float
    causal: bool


def attention_forward(qkv, n_head, causal, scale, keep_scores=False):
    """Returns y (B, T, C), cache, and the pre-softmax scores (scaled and masked, -inf where
    masked) when keep_scores, else None."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // n_head
    # Views, not copies: each (T, HS) head matrix has row stride 3C, which BLAS takes as is.
    qkvh = qkv.reshape(B, T, 3, n_head, HS).transpose(2, 0, 3, 1, 4)   # (B, T, 3C) -> (3, B, NH, T, HS)
    q, k, v = qkvh[0], qkvh[1], qkvh[2]
    att = q @ k.swapaxes(-1, -2)                       # (B, NH, T, HS) @ (B, NH, HS, T) -> (B, NH, T, T)
    scores = None
    if keep_scores:
        scores = att * scale
        if causal:
            scores += kernels._causal_bias(T, att.dtype)
    kernels.softmax_fwd(att.reshape(-1, T), scale, causal)   # in place: att is now probs
    y = np.empty((B, T, n_head, HS), dtype=qkv.dtype)
    np.matmul(att, v, out=y.transpose(0, 2, 1, 3))     # (B, NH, T, T) @ (B, NH, T, HS), written as (B, T, NH, HS)
    y = y.reshape(B, T, C)
    return y, AttentionCache(q, k, v, att, scale, causal), scores


def attention_backward(dy, cache, keep=False):
    """dy (B, T, C) -> dqkv (B, T, 3C). With keep, also returns {"probs": dprobs, "scores": dscores}
    (gradients with respect to the traced activations), else None."""
    q, k, v, probs, scale, _ = cache
    B, NH, T, HS = q.shape
    dyh = dy.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)                  # (B, T, C) -> (B, NH, T, HS), a view
    dqkv = np.empty((B, T, 3, NH, HS), dtype=dy.dtype)
    dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)                            # views (B, NH, T, HS) into dqkv
    # forward: y = probs @ v  =>  dprobs = dy @ v.T,  dv = probs.T @ dy
    dprobs = dyh @ v.swapaxes(-1, -2)                  # (B, NH, T, T)
    np.matmul(probs.swapaxes(-1, -2), dyh, out=dv)
    acts = {"probs": dprobs.copy()} if keep else None
    # forward: probs = softmax(scale * q @ k.T)  =>  ds = scale * probs * (dprobs - rowsum(dprobs * probs))
    ds = kernels.softmax_bwd(probs.reshape(-1, T), dprobs.reshape(-1, T), scale).reshape(dprobs.shape)
    if keep:
        acts["scores"] = ds / scale                    # gradient w.r.t. the scaled scores
    # forward: s = q @ k.T  =>  dq = ds @ k,  dk = ds.T @ q
    np.matmul(ds, k, out=dq)
    np.matmul(ds.swapaxes(-1, -2), q, out=dk)
    return dqkv.reshape(B, T, 3 * NH * HS), acts
