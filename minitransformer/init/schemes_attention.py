"""Schemes that shape attention at init: mimetic (Q K^T and V O like a trained network's) and
structured (each head a convolution impulse, fitted on the position embeddings). Both compute
their values while planning (rules.fitted). Formulas: docs/init.md.
"""
import math

import numpy as np

from ..engine.names import sibling
from ..engine.optim import adam_update
from ..errors import ConfigError
from .registry import matrices, model_default, on_images, scheme
from .rules import QKV, fitted, pre_drawn, sample
from .schemes_basic import vit


def _svd_factors(a):
    """a = (U S^1/2)(S^1/2 Vt): the two balanced factors of a square matrix."""
    u, s, vt = np.linalg.svd(a)
    root = np.sqrt(s)
    return u * root, root[:, None] * vt


@scheme("mimetic", "per head W_q W_k^T ~ 0.7 Z + 0.7 I (rank HS); per layer W_v W_o = 0.4 Z - 0.4 I; Z ~ N(0, 1/C)",
        "Trockman & Kolter 2023, Mimetic Initialization of Self-Attention Layers")
def mimetic(cfg, shapes, rng, opts):
    """Make attention at init look like attention after training: for each head h, factor the
    target A_h = 0.7 Z + 0.7 I (Z with i.i.d. N(0, 1/C) entries, a fresh Z per head) by SVD,
    A_h = U S Vt, and keep the top HS singular triples: W_q^h = U S^1/2, W_k^h = Vt^T S^1/2
    (columns h*HS:(h+1)*HS of Q and K), so W_q^h W_k^hT is the best rank-HS approximation of A_h
    and q.k favours a token attending to itself. For each layer W_v W_o = 0.4 Z - 0.4 I exactly
    (W_v = U S^1/2, W_o = S^1/2 Vt, full rank). Everything else: the model's default scheme."""
    C, NH, HS = cfg.n_embd, cfg.n_head, cfg.head_size
    rules = model_default(cfg, shapes, rng, opts)
    for name, shape, r, fi, fo in matrices(shapes, ("qkv",)):
        wq, wk = np.empty((C, C)), np.empty((C, C))
        for h in range(NH):
            a = 0.7 * rng.normal(0.0, 1.0 / math.sqrt(C), (C, C)) + 0.7 * np.eye(C)
            left, right = _svd_factors(a)
            wq[:, h * HS:(h + 1) * HS] = left[:, :HS]      # (C, HS)
            wk[:, h * HS:(h + 1) * HS] = right[:HS].T      # (C, HS)
        a = 0.4 * rng.normal(0.0, 1.0 / math.sqrt(C), (C, C)) - 0.4 * np.eye(C)
        wv, wo = _svd_factors(a)                           # x @ wv @ wo = x @ a
        rules[name] = QKV(fitted(wq, "per head: rank-HS factor of 0.7Z+0.7I"),
                          fitted(wk, "per head: rank-HS factor of 0.7Z+0.7I"),
                          fitted(wv, "factor of 0.4Z-0.4I"))
        rules[sibling(name, "proj")] = fitted(wo, "factor of 0.4Z-0.4I")
    return rules


def impulse_targets(grid, k, n_head, rng, n_prefix=0):
    """Random impulse offsets, one per head, in a k x k window: (offsets (NH, 2),
    targets (NH, n_prefix + grid*grid)), where targets[h, i] is the token that token i attends
    to (patch (r, c) -> patch (r+m, c+n)), or -1 where that falls outside the grid or i is a
    prefix (cls) token."""
    pick = rng.integers(0, k * k, n_head)
    offsets = np.stack([pick // k - k // 2, pick % k - k // 2], axis=1)   # (m, n) per head
    targets = np.full((n_head, n_prefix + grid * grid), -1)
    for h, (m, n) in enumerate(offsets):
        for r in range(grid):
            for c in range(grid):
                if 0 <= r + m < grid and 0 <= c + n < grid:
                    targets[h, n_prefix + r * grid + c] = n_prefix + (r + m) * grid + (c + n)
    return offsets, targets


def _layernorm_rows(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)


def fit_impulse(pseudo, targets, head_size, scale, rng, steps=400, lr=0.02):
    """Fit per-head Q, K (NH, C, HS) so that softmax(scale * (P Q)(P K)^T) puts each row's mass on
    its target token (cross-entropy on rows that have one), P = the pseudo-input (N, C).
    Adam on Q and K, projected after every step onto columns of norm 1/sqrt(3), the norm of the
    official code's U(+-1/sqrt(C)) start, so the entries keep rms 1/sqrt(3C). Returns (Q, K,
    mean probability on the targets)."""
    NH = targets.shape[0]
    N, C = pseudo.shape
    col_norm = 1.0 / math.sqrt(3.0)
    rows = targets >= 0                                # (NH, N) rows that have a target
    h_idx, i_idx = np.nonzero(rows)
    t_idx = targets[rows]
    count = max(int(rows.sum()), 1)

    def project(w):                                    # every column (over C) to norm 1/sqrt(3)
        return w * (col_norm / np.linalg.norm(w, axis=1, keepdims=True))

    params = [project(rng.uniform(-1, 1, (NH, C, head_size)) / math.sqrt(C)) for _ in range(2)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        q, k = params
        a, b = pseudo @ q, pseudo @ k                  # (N, C) @ (NH, C, HS) -> (NH, N, HS)
        s = scale * (a @ b.swapaxes(1, 2))             # (NH, N, N)
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        # cross-entropy: d loss / d s = (p - onehot(target)) / count, on rows with a target
        ds = np.where(rows[..., None], p, 0.0)
        ds[h_idx, i_idx, t_idx] -= 1.0
        ds *= scale / count
        # forward: s = a @ b.T  =>  da = ds @ b,  db = ds.T @ a;  a = P @ q  =>  dq = P.T @ da
        grads = [pseudo.T @ (ds @ b), pseudo.T @ (ds.swapaxes(1, 2) @ a)]
        for w, g, (m, v) in zip(params, grads, moments):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            w -= adam_update(m, v, t, lr, b1, b2, eps)
        params = [project(w) for w in params]
    q, k = params
    s = scale * ((pseudo @ q) @ (pseudo @ k).swapaxes(1, 2))
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return q, k, float(p[h_idx, i_idx, t_idx].mean()) if len(t_idx) else 0.0


def _structured_needs(cfg, opts):
    if not on_images(cfg):
        raise ConfigError("init 'structured' is for ViT models: it needs a 2-D grid of patches")
    return dict(pool="mean")


@scheme("structured", "ViT, mean pooling: per head Q, K fitted so softmax over LN(pos_embed) is a k x k-window impulse",
        "Zheng et al. 2024, Structured Initialization for Attention in Vision Transformers",
        needs=_structured_needs)
def structured(cfg, shapes, rng, opts):
    """Make each head's attention map at init a convolution impulse: head h has a random offset
    (m, n) in a k x k window (k = opts.impulse_k) and patch (r, c) should attend to
    (r+m, c+n). With the pseudo-input P = LayerNorm(pos_embed) (what block 0 of a pre-LN ViT sees
    for a blank image), Q and K of each head are fitted so softmax(scale (P Q)(P K)^T) matches
    those maps (fit_impulse). As in the official code (init_once) the fit is done once and every
    layer gets the same Q and K. Everything else is timm's default (vit); prepare_config sets
    pool="mean"."""
    _structured_needs(cfg, opts)
    rules = vit(cfg, shapes, rng, opts)
    pos_rule = rules["pos_embed"]
    pos = sample(pos_rule, shapes["pos_embed"], rng)   # drawn now: the fit needs its values
    rules["pos_embed"] = pre_drawn(pos_rule, pos)
    grid, n_prefix = cfg.image_size // cfg.patch_size, cfg.n_tokens - cfg.n_patches
    offsets, targets = impulse_targets(grid, opts.impulse_k, cfg.n_head, rng, n_prefix)
    q, k, hit = fit_impulse(_layernorm_rows(pos, cfg.ln_eps), targets, cfg.head_size, cfg.scale, rng)
    C = cfg.n_embd
    wq = q.transpose(1, 0, 2).reshape(C, C)            # (NH, C, HS) -> (C, NH*HS): heads contiguous
    wk = k.transpose(1, 0, 2).reshape(C, C)
    why = (f"1/sqrt(3C) (impulse fit, mean p on target {hit:.2f}; offsets "
           + " ".join(f"({m:+d},{n:+d})" for m, n in offsets) + ")")
    for name, *_ in matrices(shapes, ("qkv",)):
        rules[name] = QKV(fitted(wq, why, 1 / math.sqrt(3 * C)), fitted(wk, why, 1 / math.sqrt(3 * C)),
                          rules[name])
    return rules
