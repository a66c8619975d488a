"""Gradient checks of every layer alone (float64, central differences, random upstream gradient,
every element of every float input, relative error < LAYER_TOL = 1e-7), of the attention core,
and of each transformer block form; plus patchify's ordering against an explicit loop.
"""
import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer.engine import layers as L
from minitransformer.engine.attention import attention_forward, attention_backward
from minitransformer.engine.block import block_forward, block_backward
from minitransformer.engine.names import GPT_NAMES, VIT_NAMES, pair
from minitransformer.engine.gradcheck import LAYER_TOL, check_layer, well_conditioned


pytestmark = pytest.mark.usefixtures("one_numba_thread")   # tests/conftest.py


def gradcheck(forward, backward, inputs, names, n_checked=None):
    """Run check_layer and assert every float input was checked and passed; also check the
    layer contract: forward and backward leave their inputs and dout untouched, and backward
    returns fresh arrays (no gradient is a view of an input or of dout)."""
    before = [np.copy(x) if isinstance(x, np.ndarray) else x for x in inputs]
    rows = check_layer(forward, backward, inputs, seed=1, names=names)
    want = [n for n, x in zip(names, inputs) if isinstance(x, np.ndarray) and x.dtype.kind == "f"]
    if n_checked is not None:
        want = want[:n_checked]
    assert [r.name for r in rows] == want
    for r in rows:
        assert r.checked == int(np.prod(r.shape)), r
        assert r.ok, f"{r.name}: rel error {r.rel_error:.2e} >= {LAYER_TOL:.0e}"

    out, cache = forward(*inputs)
    dout = np.random.default_rng(2).standard_normal(np.shape(out))
    dout_before = np.copy(dout)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    np.testing.assert_array_equal(dout, dout_before)
    for x, x0 in zip(inputs, before):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, x0)
    for g in grads:
        if isinstance(g, np.ndarray):
            assert not np.shares_memory(g, dout)
            for x in inputs:
                if isinstance(x, np.ndarray):
                    assert not np.shares_memory(g, x)
    return rows


def rng_for(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------ linear

def test_linear_3d_input():
    rng = rng_for(0)
    x, w, b = rng.standard_normal((2, 5, 6)), rng.standard_normal((6, 7)), rng.standard_normal(7)
    gradcheck(L.linear_forward, L.linear_backward, [x, w, b], ["x", "w", "b"])
    y, _ = L.linear_forward(x, w, b)
    np.testing.assert_allclose(y, np.einsum("bti,io->bto", x, w) + b, rtol=1e-12)


def test_linear_2d_input():
    rng = rng_for(1)
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 3)), rng.standard_normal(3)
    gradcheck(L.linear_forward, L.linear_backward, [x, w, b], ["x", "w", "b"])


# ------------------------------------------------------------------------------ layernorm

@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_layernorm(eps):
    rng = rng_for(2)
    x = 1.5 * rng.standard_normal((2, 5, 8)) + 0.3
    w = 1.0 + 0.3 * rng.standard_normal(8)
    b = 0.3 * rng.standard_normal(8)
    gradcheck(lambda x, w, b: L.layernorm_forward(x, w, b, eps), L.layernorm_backward,
              [x, w, b], ["x", "w", "b"])
    y, _ = L.layernorm_forward(x, w, b, eps)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ GELU

@pytest.mark.parametrize("kind", ["tanh", "erf"])
def test_gelu(kind):
    x = 1.5 * rng_for(3).standard_normal((2, 5, 12))
    gradcheck(lambda x: L.gelu_forward(x, kind), L.gelu_backward, [x], ["x"])


def test_gelu_kinds_differ():
    """"tanh" and "erf" really select different functions (close, but not equal)."""
    x = np.linspace(-3, 3, 13)
    yt, ye = L.gelu_forward(x, "tanh")[0], L.gelu_forward(x, "erf")[0]
    assert 1e-6 < np.max(np.abs(yt - ye)) < 1e-2


# ------------------------------------------------------------------------------ embedding

def test_embedding_repeated_tokens():
    rng = rng_for(4)
    V, n_pos, C = 7, 9, 5
    idx = np.array([[1, 3, 3, 1, 6], [3, 3, 0, 1, 1]])       # repeats within and across rows
    wte, wpe = rng.standard_normal((V, C)), rng.standard_normal((n_pos, C))

    def fwd(idx, wte, wpe):
        return L.embedding_forward(idx, wte, wpe)

    def bwd(dout, cache):
        dwte, dwpe = L.embedding_backward(dout, cache)
        return None, dwte, dwpe

    gradcheck(fwd, bwd, [idx, wte, wpe], ["idx", "wte", "wpe"])
    out, cache = fwd(idx, wte, wpe)
    np.testing.assert_array_equal(out, wte[idx] + wpe[:5])
    dwte, dwpe = L.embedding_backward(np.ones((2, 5, C)), cache)
    np.testing.assert_array_equal(dwte[:, 0], np.bincount(idx.ravel(), minlength=V))
    assert np.all(dwpe[5:] == 0) and np.all(dwpe[:5] == 2)


# ------------------------------------------------------------------------------ attention core

@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_head,scale", [(2, 0.5), (3, 0.37), (1, 1.0)])
def test_attention_core(causal, n_head, scale):
    rng = rng_for(5)
    B, T, C = 2, 5, 6
    qkv = rng.standard_normal((B, T, 3 * C))

    def fwd(qkv):
        y, cache, _ = attention_forward(qkv, n_head, causal, scale)
        return y, cache

    def bwd(dy, cache):
        dqkv, acts = attention_backward(dy, cache)
        assert acts is None
        return (dqkv,)

    gradcheck(fwd, bwd, [qkv], ["qkv"])


@pytest.mark.parametrize("causal", [True, False])
def test_attention_forward_matches_per_head_formula(causal):
    """Columns [q | k | v], heads contiguous inside each; y_h = softmax(scale q_h k_h^T + mask) v_h;
    the traced scores are the scaled masked scores, -inf above the diagonal when causal."""
    rng = rng_for(6)
    B, T, C, NH = 2, 7, 6, 3
    HS, scale = C // NH, 0.41
    qkv = rng.standard_normal((B, T, 3 * C))
    y, cache, scores = attention_forward(qkv, NH, causal, scale, keep_scores=True)
    ref = np.zeros((B, T, C))
    for b in range(B):
        for h in range(NH):
            q = qkv[b, :, h * HS:(h + 1) * HS]
            k = qkv[b, :, C + h * HS:C + (h + 1) * HS]
            v = qkv[b, :, 2 * C + h * HS:2 * C + (h + 1) * HS]
            s = scale * q @ k.T
            if causal:
                s[np.triu_indices(T, 1)] = -np.inf
            np.testing.assert_allclose(scores[b, h], s, rtol=1e-12)
            p = np.exp(s - s.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            np.testing.assert_allclose(cache.probs[b, h], p, rtol=1e-12, atol=1e-15)
            ref[b, :, h * HS:(h + 1) * HS] = p @ v
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------ cross-entropy

def test_cross_entropy_scalar_loss():
    rng = rng_for(7)
    logits = 2.0 * rng.standard_normal((2, 5, 7))
    y = rng.integers(0, 7, (2, 5))

    def bwd(dloss, cache):
        assert np.ndim(dloss) == 0
        return L.cross_entropy_backward(dloss, cache), None

    gradcheck(L.cross_entropy_forward, bwd, [logits, y], ["logits", "y"])
    loss, _ = L.cross_entropy_forward(logits, y)
    lse = np.log(np.exp(logits).sum(-1))
    ref = np.mean(lse - np.take_along_axis(logits, y[..., None], -1)[..., 0])
    assert loss == pytest.approx(ref, rel=1e-13)


# ------------------------------------------------------------------------------ patch embedding

def explicit_patchify(img, P):
    B, H, W, Cin = img.shape
    gh, gw = H // P, W // P
    out = np.zeros((B, gh * gw, P * P * Cin))
    for b in range(B):
        for gi in range(gh):
            for gj in range(gw):
                n = gi * gw + gj                               # patches row-major over the image
                for r in range(P):
                    for c in range(P):
                        for ch in range(Cin):                  # each flattened (row, col, channel)
                            out[b, n, (r * P + c) * Cin + ch] = img[b, gi * P + r, gj * P + c, ch]
    return out


@pytest.mark.parametrize("shape,P", [((2, 8, 8, 3), 4), ((1, 6, 9, 2), 3), ((2, 4, 4, 1), 2)])
def test_patchify_ordering(shape, P):
    rng = rng_for(8)
    img = rng.standard_normal(shape)
    patches = L.patchify(img, P)
    np.testing.assert_array_equal(patches, explicit_patchify(img, P))
    B, H, W, Cin = shape
    np.testing.assert_array_equal(L.unpatchify(patches, P, H, W, Cin), img)   # inverse
    z = rng.standard_normal(patches.shape)                                      # and adjoint
    assert np.vdot(patches, z) == pytest.approx(np.vdot(img, L.unpatchify(z, P, H, W, Cin)),
                                                rel=1e-12)


def test_patchify_first_patch_by_hand():
    img = np.arange(2 * 4 * 4 * 2, dtype=float).reshape(2, 4, 4, 2)
    p = L.patchify(img, 2)
    # patch 1 is the top-right 2x2 block: pixels (0,2), (0,3), (1,2), (1,3), channels interleaved
    np.testing.assert_array_equal(p[0, 1], np.concatenate([img[0, 0, 2], img[0, 0, 3],
                                                           img[0, 1, 2], img[0, 1, 3]]))
    np.testing.assert_array_equal(p[1, 2], img[1, 2:4, 0:2].reshape(-1))


def test_patch_embed():
    rng = rng_for(9)
    P, Cin, C = 2, 3, 5
    img = rng.standard_normal((2, 4, 6, Cin))
    w, b = rng.standard_normal((P * P * Cin, C)), rng.standard_normal(C)
    gradcheck(L.patch_embed_forward, L.patch_embed_backward, [img, w, b, P],
              ["img", "w", "b", "P"], n_checked=3)
    out, _ = L.patch_embed_forward(img, w, b, P)
    np.testing.assert_allclose(out, explicit_patchify(img, P) @ w + b, rtol=1e-12)


# ------------------------------------------------------------------------------ ViT glue layers

def test_add_pos():
    rng = rng_for(10)
    x, pos = rng.standard_normal((3, 4, 5)), rng.standard_normal((4, 5))
    gradcheck(L.add_pos_forward, L.add_pos_backward, [x, pos], ["x", "pos"])


def test_cls_token():
    rng = rng_for(11)
    x, cls = rng.standard_normal((3, 4, 5)), rng.standard_normal(5)
    gradcheck(L.cls_forward, L.cls_backward, [x, cls], ["x", "cls"])
    out, _ = L.cls_forward(x, cls)
    assert out.shape == (3, 5, 5)
    np.testing.assert_array_equal(out[:, 0], np.broadcast_to(cls, (3, 5)))
    np.testing.assert_array_equal(out[:, 1:], x)


@pytest.mark.parametrize("kind", ["cls", "mean"])
def test_pool(kind):
    x = rng_for(12).standard_normal((3, 4, 5))
    gradcheck(lambda x: L.pool_forward(x, kind), L.pool_backward, [x], ["x"])
    out, _ = L.pool_forward(x, kind)
    np.testing.assert_allclose(out, x[:, 0] if kind == "cls" else x.mean(1), rtol=1e-14)


def test_rezero_gate():
    rng = rng_for(13)
    x, alpha = rng.standard_normal((2, 3, 4)), np.array([0.7])
    gradcheck(L.gate_forward, L.gate_backward, [x, alpha], ["x", "alpha"])


# ------------------------------------------------------------------------------ blocks

def block_setup(kind, norm, rezero, res_mult, seed=0):
    if kind == "gpt":
        cfg = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=6, norm=norm,
                        rezero=rezero, res_mult=res_mult)
        prefix, names, causal = "h.0.", GPT_NAMES.block, True
    else:
        cfg = ViTConfig(image_size=4, patch_size=2, in_channels=1, n_classes=3, n_layer=1,
                        n_head=2, n_embd=6, norm=norm, rezero=rezero, res_mult=res_mult)
        prefix, names, causal = "blocks.0.", VIT_NAMES.block, False
    model = build_model(cfg, seed=seed, dtype="float64")
    p = {k: v for k, v in model.params.items() if k.startswith(prefix)}
    well_conditioned(p, np.random.default_rng(seed))
    return cfg, prefix, names, causal, p


@pytest.mark.parametrize("kind", ["gpt", "vit"])
@pytest.mark.parametrize("res_mult", [1.0, 1.7])
@pytest.mark.parametrize("rezero", [False, True])
@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_block(kind, norm, rezero, res_mult):
    cfg, prefix, names, causal, p = block_setup(kind, norm, rezero, res_mult)
    keys = list(p)
    n_norm = 4 if norm != "none" else 0
    assert len(keys) == 8 + n_norm + (1 if rezero else 0)
    x = np.random.default_rng(1).standard_normal((2, 5, cfg.n_embd))

    def fwd(x, *arrays):
        return block_forward(x, dict(zip(keys, arrays)), prefix, names, cfg, causal)

    def bwd(dout, cache):
        grads = {}
        dx = block_backward(dout, cache, prefix, names, cfg, p, grads)
        assert set(grads) == set(keys)
        return (dx, *[grads[k] for k in keys])

    rows = gradcheck(fwd, bwd, [x, *p.values()], ["x", *keys])
    assert len(rows) == 1 + len(keys)


@pytest.mark.parametrize("kind", ["gpt", "vit"])
@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_block_forward_matches_formula(kind, norm):
    """The block against docs/design.md#block-forms written out with plain NumPy (rezero, res_mult 1.7)."""
    from scipy.special import erf
    r = 1.7
    cfg, prefix, names, causal, p = block_setup(kind, norm, True, r)
    x = np.random.default_rng(3).standard_normal((2, 5, cfg.n_embd))
    g = p[prefix + "alpha"][0]

    def W(key):
        return pair(p, prefix + getattr(names, key))

    def ln(z, key):
        w, b = W(key)
        return (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + cfg.ln_eps) * w + b

    def gelu(z):
        if cfg.gelu == "erf":
            return 0.5 * z * (1 + erf(z / np.sqrt(2)))
        return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))

    def attn(z):
        wq, bq = W("qkv")
        qkv = z @ wq + bq
        y, _, _ = attention_forward(qkv, cfg.n_head, causal, cfg.scale)
        wp, bp = W("proj")
        return y @ wp + bp

    def mlp(z):
        (w1, b1), (w2, b2) = W("fc"), W("fc_proj")
        return gelu(z @ w1 + b1) @ w2 + b2

    if norm == "pre":
        x1 = r * x + g * attn(ln(x, "ln_1"))
        ref = r * x1 + g * mlp(ln(x1, "ln_2"))
    elif norm == "post":
        x1 = ln(r * x + g * attn(x), "ln_1")
        ref = ln(r * x1 + g * mlp(x1), "ln_2")
    else:
        x1 = r * x + g * attn(x)
        ref = r * x1 + g * mlp(x1)
    out, _ = block_forward(x, p, prefix, names, cfg, causal)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
