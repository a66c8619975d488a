"""The transformer block in its three forms (docs/design.md#block-forms), shared by GPT and ViT.

a = attention branch, m = MLP branch, g = alpha (ReZero gate) or 1, r = res_mult (1 unless a
scheme such as DeepNet or Admin scales the skip path):
    pre:   x = r*x + g*a(ln_1(x));   x = r*x + g*m(ln_2(x))
    post:  x = ln_1(r*x + g*a(x));   x = ln_2(r*x + g*m(x))
    none:  x = r*x + g*a(x);         x = r*x + g*m(x)

Shapes: B batch, T tokens, C channels. Parameter names come from `names` (a names.BlockNames:
GPT-2's or timm's module names), under `prefix` ("h.3." or "blocks.3.").
"""
from typing import NamedTuple

import numpy as np

from .attention import attention_forward, attention_backward
from .layers import (linear_forward, linear_backward, layernorm_forward, layernorm_backward,
                     gelu_forward, gelu_backward)

from .names import BLOCK_SLOTS, block_prefix, pair


# --------------------------------------------------------------------------------------------
# The two branches. Each is linear -> mix -> linear.

class AttnBranchCache(NamedTuple):
    qkv: tuple             # LinearCache of (B, T, C) -> (B, T, 3C)
    att: tuple             # AttentionCache
    proj: tuple            # LinearCache of (B, T, C) -> (B, T, C)


def attn_branch_forward(x, w_qkv, b_qkv, w_proj, b_proj, n_head, causal, scale, trace=None):
    qkv, c_qkv = linear_forward(x, w_qkv, b_qkv)       # (B, T, C) -> (B, T, 3C)
    y, c_att, scores = attention_forward(qkv, n_head, causal, scale, trace is not None)
    out, c_proj = linear_forward(y, w_proj, b_proj)    # (B, T, C) -> (B, T, C)
    if trace is not None:
        trace["attn.scores"], trace["attn.probs"] = scores, c_att.probs
    return out, AttnBranchCache(c_qkv, c_att, c_proj)


def attn_branch_backward(dout, cache, acts=None):
    dy, dw_proj, db_proj = linear_backward(dout, cache.proj)
    dqkv, act = attention_backward(dy, cache.att, keep=acts is not None)
    if acts is not None:
        acts["attn.probs"], acts["attn.scores"] = act["probs"], act["scores"]
    dx, dw_qkv, db_qkv = linear_backward(dqkv, cache.qkv)
    return dx, dw_qkv, db_qkv, dw_proj, db_proj


class MLPBranchCache(NamedTuple):
    fc: tuple              # LinearCache of (B, T, C) -> (B, T, 4C)
    gelu: tuple            # GeluCache
    proj: tuple            # LinearCache of (B, T, 4C) -> (B, T, C)


def mlp_branch_forward(x, w_fc, b_fc, w_proj, b_proj, gelu, trace=None):
    pre, c_fc = linear_forward(x, w_fc, b_fc)          # (B, T, C) -> (B, T, 4C)
    post, c_gelu = gelu_forward(pre, gelu)
    out, c_proj = linear_forward(post, w_proj, b_proj) # (B, T, 4C) -> (B, T, C)
    if trace is not None:
        trace["mlp.pre"], trace["mlp.post"] = pre, post
    return out, MLPBranchCache(c_fc, c_gelu, c_proj)


def mlp_branch_backward(dout, cache, acts=None):
    dpost, dw_proj, db_proj = linear_backward(dout, cache.proj)
    dpre = gelu_backward(dpost, cache.gelu)
    if acts is not None:
        acts["mlp.post"], acts["mlp.pre"] = dpost, dpre
    dx, dw_fc, db_fc = linear_backward(dpre, cache.fc)
    return dx, dw_fc, db_fc, dw_proj, db_proj


# --------------------------------------------------------------------------------------------
# The block.

class BlockCache(NamedTuple):
    ln_1: tuple            # LayerNormCache or None (norm="none")
    attn: AttnBranchCache
    a: np.ndarray          # attention branch output before the gate (needed for dalpha), or None
    ln_2: tuple
    mlp: MLPBranchCache
    m: np.ndarray          # MLP branch output before the gate, or None


def block_param_shapes(prefix, names, cfg):
    """{name: shape} of one block's parameters, in the order of BLOCK_SLOTS (LayerNorms absent
    when norm="none"), then the ReZero gate alpha when rezero."""
    C = cfg.n_embd
    shapes = {}
    slot_shapes = dict(ln_1=((C,), (C,)), qkv=((C, 3 * C), (3 * C,)), proj=((C, C), (C,)),
                       ln_2=((C,), (C,)), fc=((C, 4 * C), (4 * C,)), fc_proj=((4 * C, C), (C,)))
    for slot in BLOCK_SLOTS:
        if slot in ("ln_1", "ln_2") and cfg.norm == "none":
            continue
        module = prefix + getattr(names, slot)
        shapes[module + ".weight"], shapes[module + ".bias"] = slot_shapes[slot]
    if cfg.rezero:
        shapes[prefix + "alpha"] = (1,)
    return shapes


def _get(p, prefix, names, key):
    return pair(p, prefix + getattr(names, key))


def block_forward(x, p, prefix, names, cfg, causal, trace=None):
    """x (B, T, C) -> (B, T, C). cfg supplies norm, rezero, res_mult, n_head, scale, gelu,
    ln_eps. trace, when a dict, receives this block's intermediates (without the prefix)."""
    norm, r, eps = cfg.norm, cfg.res_mult, cfg.ln_eps
    g = p[prefix + "alpha"] if cfg.rezero else None
    c_ln1 = c_ln2 = a_raw = m_raw = None

    h = x
    if norm == "pre":
        h, c_ln1 = layernorm_forward(x, *_get(p, prefix, names, "ln_1"), eps)
    a, c_attn = attn_branch_forward(h, *_get(p, prefix, names, "qkv"), *_get(p, prefix, names, "proj"),
                                    cfg.n_head, causal, cfg.scale, trace)
    if g is not None:
        a_raw, a = a, a * g[0]
    x1 = a                                             # residual: x1 = r*x + g*a (a is fresh)
    x1 += x if r == 1.0 else r * x
    if norm == "post":
        x1, c_ln1 = layernorm_forward(x1, *_get(p, prefix, names, "ln_1"), eps)

    h = x1
    if norm == "pre":
        h, c_ln2 = layernorm_forward(x1, *_get(p, prefix, names, "ln_2"), eps)
    m, c_mlp = mlp_branch_forward(h, *_get(p, prefix, names, "fc"), *_get(p, prefix, names, "fc_proj"),
                                  cfg.gelu, trace)
    if g is not None:
        m_raw, m = m, m * g[0]
    x2 = m
    x2 += x1 if r == 1.0 else r * x1
    if norm == "post":
        x2, c_ln2 = layernorm_forward(x2, *_get(p, prefix, names, "ln_2"), eps)

    if trace is not None:
        trace["out"] = x2
    return x2, BlockCache(c_ln1, c_attn, a_raw, c_ln2, c_mlp, m_raw)


def block_backward(dout, cache, prefix, names, cfg, p, grads, acts=None):
    """dout (B, T, C) -> dx (B, T, C); writes this block's parameter gradients into grads.
    acts, when a dict, receives gradients w.r.t. the traced intermediates (without the prefix)."""
    norm, r = cfg.norm, cfg.res_mult
    g = p[prefix + "alpha"] if cfg.rezero else None
    dalpha = 0.0

    def put(key, dw, db):
        module = prefix + getattr(names, key)
        grads[module + ".weight"], grads[module + ".bias"] = dw, db

    dx2 = dout
    if norm == "post":
        dx2, *dln = layernorm_backward(dx2, cache.ln_2)    # forward: x2 = ln_2(r*x1 + g*m)
        put("ln_2", *dln)
    dm = dx2
    if g is not None:                                  # forward: m_gated = alpha * m
        dalpha += np.vdot(dx2, cache.m)
        dm = dx2 * g[0]
    dh, *dmlp = mlp_branch_backward(dm, cache.mlp, acts)
    put("fc", dmlp[0], dmlp[1])
    put("fc_proj", dmlp[2], dmlp[3])
    if norm == "pre":
        dh, *dln = layernorm_backward(dh, cache.ln_2)  # forward: h = ln_2(x1)
        put("ln_2", *dln)
    dx1 = dh                                           # residual: two paths into x1 are summed
    dx1 += dx2 if r == 1.0 else r * dx2

    if norm == "post":
        dx1, *dln = layernorm_backward(dx1, cache.ln_1)
        put("ln_1", *dln)
    da = dx1
    if g is not None:
        dalpha += np.vdot(dx1, cache.a)
        da = dx1 * g[0]
    dh, *dattn = attn_branch_backward(da, cache.attn, acts)
    put("qkv", dattn[0], dattn[1])
    put("proj", dattn[2], dattn[3])
    if norm == "pre":
        dh, *dln = layernorm_backward(dh, cache.ln_1)
        put("ln_1", *dln)
    dx = dh
    dx += dx1 if r == 1.0 else r * dx1
    if g is not None:
        grads[prefix + "alpha"] = np.array([dalpha], dtype=dout.dtype)
    return dx


# --------------------------------------------------------------------------------------------
# The stack of L blocks, with the trace and activation-gradient names of docs/design.md#traces:
# "{prefix}{i}.out", "{prefix}{i}.attn.scores", ... where prefix is "h." (GPT) or "blocks." (ViT).
# `names` is the model's names.ModelNames.

def trunk_forward(x, p, names, cfg, causal, trace=None):
    caches = []
    for i in range(cfg.n_layer):
        pre = block_prefix(names, i)
        t = {} if trace is not None else None
        x, c = block_forward(x, p, pre, names.block, cfg, causal, t)
        if trace is not None:
            trace.update({pre + k: v for k, v in t.items()})
        caches.append(c)
    return x, caches


def trunk_backward(dx, caches, p, names, cfg, grads, acts=None):
    for i in reversed(range(cfg.n_layer)):
        pre = block_prefix(names, i)
        a = {} if acts is not None else None
        if acts is not None:
            acts[pre + "out"] = dx                     # gradient w.r.t. the block's output
        dx = block_backward(dx, caches[i], pre, names.block, cfg, p, grads, a)
        if acts is not None:
            acts.update({pre + k: v for k, v in a.items()})
    return dx
