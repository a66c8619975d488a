"""Whole-model tests of GPT and ViT: gradient checks of every parameter tensor in every block form,
loss at init, shapes and dtypes, float32 vs float64, live params, the trace API and the gradients
with respect to traced activations, config validation and bad input.
"""
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minitransformer import ConfigError, GPTConfig, ViTConfig, build_model
from minitransformer.engine import kernels
from minitransformer.engine import block as block_mod
from minitransformer.engine import gpt as gpt_mod
from minitransformer.engine import vit as vit_mod
from minitransformer.engine.gradcheck import MODEL_TOL, rel_error, well_conditioned
from minitransformer.init.build import check_config

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_numba_thread")   # tests/conftest.py


def tiny_gpt(**kw):
    return GPTConfig(**{**dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8), **kw})


def tiny_vit(**kw):
    return ViTConfig(**{**dict(image_size=8, patch_size=4, in_channels=2, n_classes=5, n_layer=2,
                               n_head=2, n_embd=8), **kw})


def gpt_batch(cfg, rng, B=3, T=None):
    T = cfg.block_size if T is None else T
    return rng.integers(0, cfg.vocab_size, (B, T)), rng.integers(0, cfg.vocab_size, (B, T))


def vit_batch(cfg, rng, B=3):
    return (rng.random((B, cfg.image_size, cfg.image_size, cfg.in_channels)),
            rng.integers(0, cfg.n_classes, B))


def batch(cfg, rng, **kw):
    return gpt_batch(cfg, rng, **kw) if isinstance(cfg, GPTConfig) else vit_batch(cfg, rng, **kw)


def well_conditioned_model(cfg, seed=0):
    model = build_model(cfg, seed=seed, dtype="float64")
    well_conditioned(model.params, np.random.default_rng(seed))
    return model


def assert_rows_ok(rows, cfg, n_samples=None):
    model_keys = list(build_model(cfg, dtype="float64").params)
    assert [r.name for r in rows] == model_keys                 # every parameter tensor
    for r in rows:
        size = int(np.prod(r.shape))
        assert r.checked == (size if n_samples is None else min(size, n_samples))
        assert r.ok, f"{r.name}: rel error {r.rel_error:.2e} >= {MODEL_TOL:.0e}"


# ------------------------------------------------------------------------------ gradient checks

FORMS = [(norm, rezero) for norm in ("pre", "post", "none") for rezero in (False, True)]


@pytest.mark.parametrize("norm,rezero", FORMS)
def test_gradcheck_gpt(norm, rezero):
    cfg = tiny_gpt(norm=norm, rezero=rezero)
    assert_rows_ok(check_config(cfg, n_samples=12, seed=1), cfg, 12)


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("norm,rezero", FORMS)
def test_gradcheck_vit(norm, rezero, pool):
    cfg = tiny_vit(norm=norm, rezero=rezero, pool=pool)
    assert_rows_ok(check_config(cfg, n_samples=12, seed=2), cfg, 12)


def test_gradcheck_scaled_variants():
    """The knobs init schemes turn: skip multiplier, attention scale and LM-head scale."""
    for cfg in (tiny_gpt(norm="post", res_mult=1.7, attn_scale=0.3, logit_scale=0.5, rezero=True),
                tiny_vit(norm="pre", res_mult=0.8, attn_scale=0.2, logit_scale=2.0, pool="mean")):
        assert_rows_ok(check_config(cfg, n_samples=10, seed=3), cfg, 10)


def test_gradcheck_every_element_gpt():
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4)
    assert_rows_ok(check_config(cfg, seed=4, batch=2), cfg)


def test_gradcheck_every_element_vit():
    cfg = ViTConfig(image_size=4, patch_size=2, in_channels=1, n_classes=3, n_layer=2, n_head=2,
                    n_embd=4, pool="cls")
    assert_rows_ok(check_config(cfg, seed=5, batch=2), cfg)


def test_gradcheck_detects_a_wrong_gradient():
    """The check is not vacuous: a gradient off by 1e-4 in one element of one tensor fails it."""
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4)
    model = well_conditioned_model(cfg)
    x, y = gpt_batch(cfg, np.random.default_rng(0))
    loss_and_grads = model.loss_and_grads

    def broken(xx, yy):
        loss, grads = loss_and_grads(xx, yy)
        g = grads["h.1.mlp.c_fc.weight"]
        g.reshape(-1)[3] += 1e-4 * np.abs(g).max()
        return loss, grads

    model.loss_and_grads = broken
    from minitransformer.engine.gradcheck import check_model
    rows = check_model(model, x, y, n_samples=None)
    bad = [r.name for r in rows if not r.ok]
    assert bad == ["h.1.mlp.c_fc.weight"]


# ------------------------------------------------------------------------------ parameter tables

def test_gpt_param_names_and_shapes():
    cfg = GPTConfig(vocab_size=13, block_size=9, n_layer=2, n_head=2, n_embd=8, rezero=True)
    C, V = 8, 13
    want = {"wte.weight": (V, C), "wpe.weight": (9, C)}
    for i in range(2):
        h = f"h.{i}."
        want.update({h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
                     h + "attn.c_attn.weight": (C, 3 * C), h + "attn.c_attn.bias": (3 * C,),
                     h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
                     h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
                     h + "mlp.c_fc.weight": (C, 4 * C), h + "mlp.c_fc.bias": (4 * C,),
                     h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,),
                     h + "alpha": (1,)})
    want.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    model = build_model(cfg, dtype="float64")
    assert {k: v.shape for k, v in model.params.items()} == want
    post = build_model(GPTConfig(**{**cfg.to_dict(), "norm": "post", "rezero": False})).params
    assert set(post) == {k for k in want if not k.startswith("ln_f") and not k.endswith("alpha")}
    none = build_model(GPTConfig(**{**cfg.to_dict(), "norm": "none"})).params
    assert set(none) == {k for k in want if "ln_" not in k}


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_param_names_and_shapes(pool):
    cfg = ViTConfig(image_size=12, patch_size=4, in_channels=3, n_classes=7, n_layer=1, n_head=2,
                    n_embd=8, pool=pool)
    C, N = 8, 9
    want = {"patch_embed.weight": (4 * 4 * 3, C), "patch_embed.bias": (C,)}
    if pool == "cls":
        want["cls_token"] = (C,)
    want["pos_embed"] = (N + 1 if pool == "cls" else N, C)
    b = "blocks.0."
    want.update({b + "norm1.weight": (C,), b + "norm1.bias": (C,),
                 b + "attn.qkv.weight": (C, 3 * C), b + "attn.qkv.bias": (3 * C,),
                 b + "attn.proj.weight": (C, C), b + "attn.proj.bias": (C,),
                 b + "norm2.weight": (C,), b + "norm2.bias": (C,),
                 b + "mlp.fc1.weight": (C, 4 * C), b + "mlp.fc1.bias": (4 * C,),
                 b + "mlp.fc2.weight": (4 * C, C), b + "mlp.fc2.bias": (C,),
                 "norm.weight": (C,), "norm.bias": (C,),
                 "head.weight": (C, 7), "head.bias": (7,)})
    model = build_model(cfg, dtype="float64")
    assert {k: v.shape for k, v in model.params.items()} == want


# ------------------------------------------------------------------------------ loss at init

def test_gpt_loss_at_init_is_log_vocab():
    cfg = GPTConfig()                                           # default size, default init
    model = build_model(cfg, seed=0, dtype="float32")
    assert model.params["wte.weight"].dtype == np.float32
    rng = np.random.default_rng(0)
    x, y = gpt_batch(cfg, rng, B=8)
    loss = model.loss(x, y)
    assert abs(loss - math.log(cfg.vocab_size)) < 0.1, loss
    loss2, _ = model.loss_and_grads(x, y)
    assert loss2 == pytest.approx(loss, rel=1e-6)


def test_vit_loss_at_init_is_log_classes():
    cfg = ViTConfig()
    model = build_model(cfg, seed=0, dtype="float32")
    rng = np.random.default_rng(0)
    x, y = vit_batch(cfg, rng, B=16)
    loss = model.loss(x, y)
    assert abs(loss - math.log(cfg.n_classes)) < 0.1, loss


# ------------------------------------------------------------------------------ shapes, dtypes

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpt_forward_shapes_and_dtypes(dtype):
    cfg = tiny_gpt(block_size=8)
    model = build_model(cfg, dtype=dtype)
    rng = np.random.default_rng(0)
    for B, T in ((3, 8), (2, 5), (1, 1)):
        x, y = gpt_batch(cfg, rng, B=B, T=T)
        logits = model.forward(x)
        assert logits.shape == (B, T, cfg.vocab_size) and logits.dtype == np.dtype(dtype)
        loss, grads = model.loss_and_grads(x, y)
        assert isinstance(loss, float) and np.isfinite(loss)
        assert list(grads) == list(model.params)
        for k, g in grads.items():
            assert g.shape == model.params[k].shape and g.dtype == np.dtype(dtype), k
            assert np.all(np.isfinite(g)), k
    # a shorter sequence only touches the first T rows of the position table
    x, y = gpt_batch(cfg, rng, B=2, T=5)
    _, grads = model.loss_and_grads(x, y)
    assert np.all(grads["wpe.weight"][5:] == 0) and np.any(grads["wpe.weight"][:5] != 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_forward_shapes_and_dtypes(dtype, pool):
    cfg = tiny_vit(pool=pool)
    model = build_model(cfg, dtype=dtype)
    x, y = vit_batch(cfg, np.random.default_rng(0), B=4)
    logits = model.forward(x)
    assert logits.shape == (4, cfg.n_classes) and logits.dtype == np.dtype(dtype)
    assert model.forward(x.astype(np.float32 if dtype == "float64" else np.float64)).dtype == dtype
    loss, grads = model.loss_and_grads(x, y)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert list(grads) == list(model.params)
    for k, g in grads.items():
        assert g.shape == model.params[k].shape and g.dtype == np.dtype(dtype), k


@pytest.mark.parametrize("cfg", [tiny_gpt(norm="post", rezero=True), tiny_vit(pool="mean")],
                         ids=["gpt", "vit"])
def test_float32_and_float64_agree(cfg):
    m32 = build_model(cfg, seed=3, dtype="float32")
    m64 = build_model(cfg, seed=3, dtype="float64")
    for k in m64.params:                                        # same draws, then cast
        np.testing.assert_array_equal(m32.params[k], m64.params[k].astype(np.float32))
    x, y = batch(cfg, np.random.default_rng(1))
    l32, g32 = m32.loss_and_grads(x, y)
    l64, g64 = m64.loss_and_grads(x, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in g64:
        assert rel_error(g32[k], g64[k]) < 1e-4, k


# ------------------------------------------------------------------------------ live params

@pytest.mark.parametrize("cfg", [tiny_gpt(), tiny_vit()], ids=["gpt", "vit"])
def test_params_are_live(cfg):
    model = build_model(cfg, seed=0, dtype="float64")
    x, y = batch(cfg, np.random.default_rng(0))
    before = model.forward(x)
    loss_before = model.loss(x, y)
    name = "h.1.mlp.c_fc.weight" if isinstance(cfg, GPTConfig) else "blocks.1.mlp.fc1.weight"
    model.params[name] *= 3.0                                   # in place: the model changes
    after = model.forward(x)
    assert not np.allclose(before, after)
    assert model.loss(x, y) != loss_before
    # a model built around the same dict computes the same thing
    other = type(model)(cfg, model.params)
    np.testing.assert_array_equal(other.forward(x), after)
    model.params[name] /= 3.0
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cfg", [tiny_gpt(rezero=True), tiny_vit(pool="cls")], ids=["gpt", "vit"])
def test_grads_are_fresh_arrays(cfg):
    """An optimizer or a clipper may change gradients in place: no gradient may share memory with
    a parameter, another gradient, or the gradients of an earlier call."""
    model = build_model(cfg, dtype="float64")
    x, y = batch(cfg, np.random.default_rng(0))
    _, g1 = model.loss_and_grads(x, y)
    _, g2 = model.loss_and_grads(x, y)
    arrays = list(model.params.values()) + list(g2.values())
    for k, g in g1.items():
        assert all(not np.shares_memory(g, a) for a in arrays), k
        assert sum(np.shares_memory(g, h) for h in g1.values()) == 1, k
    params_before = {k: v.copy() for k, v in model.params.items()}
    for g in g1.values():
        g *= -7.0
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], params_before[k])
        np.testing.assert_array_equal(g2[k] * -7.0, g1[k])


def test_same_seed_same_model_different_seed_different_model():
    cfg = tiny_gpt()
    a, b, c = (build_model(cfg, seed=s, dtype="float64") for s in (0, 0, 1))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params if a.params[k].any())


# ------------------------------------------------------------------------------ trace API

def manual_ln(x, w, b, eps):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_gpt_trace(norm):
    cfg = tiny_gpt(block_size=8, n_layer=3, norm=norm, rezero=(norm == "none"))
    model = well_conditioned_model(cfg)
    p = model.params
    B, T, C, NH = 2, 7, cfg.n_embd, cfg.n_head
    x, _ = gpt_batch(cfg, np.random.default_rng(0), B=B, T=T)
    logits, trace = model.forward(x, trace=True)
    np.testing.assert_array_equal(logits, model.forward(x))
    want = {"embed.out"} | {f"h.{i}.{k}" for i in range(3) for k in
                            ("out", "attn.scores", "attn.probs", "mlp.pre", "mlp.post")}
    assert set(trace) == want
    np.testing.assert_allclose(trace["embed.out"], p["wte.weight"][x] + p["wpe.weight"][:T], rtol=1e-14)
    iu = np.triu_indices(T, 1)
    il = np.tril_indices(T)
    for i in range(3):
        h = f"h.{i}."
        assert trace[h + "out"].shape == (B, T, C)
        assert trace[h + "attn.scores"].shape == trace[h + "attn.probs"].shape == (B, NH, T, T)
        assert trace[h + "mlp.pre"].shape == trace[h + "mlp.post"].shape == (B, T, 4 * C)
        probs, scores = trace[h + "attn.probs"], trace[h + "attn.scores"]
        np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=0, atol=1e-13)
        assert np.all(probs[..., iu[0], iu[1]] == 0.0)          # causal: no future keys
        assert np.all(probs[..., il[0], il[1]] > 0.0)
        assert np.all(np.isneginf(scores[..., iu[0], iu[1]]))
        assert np.all(np.isfinite(scores[..., il[0], il[1]]))
        e = np.exp(scores - scores.max(-1, keepdims=True))      # probs = softmax(scores)
        np.testing.assert_allclose(probs, e / e.sum(-1, keepdims=True), rtol=1e-12, atol=1e-15)
        pre = trace[h + "mlp.pre"]                               # post = tanh-GELU(pre)
        ref = 0.5 * pre * (1 + np.tanh(math.sqrt(2 / math.pi) * (pre + 0.044715 * pre ** 3)))
        np.testing.assert_allclose(trace[h + "mlp.post"], ref, rtol=1e-12, atol=1e-15)
    # the last block's output, through ln_f (pre-LN only) and the tied head, is the logits
    out = trace["h.2.out"]
    if norm == "pre":
        out = manual_ln(out, p["ln_f.weight"], p["ln_f.bias"], cfg.ln_eps)
    np.testing.assert_allclose(logits, out @ p["wte.weight"].T, rtol=1e-11, atol=1e-12)
    # the trace holds the values, not buffers reused later: a second forward does not change it
    saved = {k: v.copy() for k, v in trace.items()}
    model.forward(gpt_batch(cfg, np.random.default_rng(9), B=B, T=T)[0], trace=True)
    model.loss_and_grads(x, x)
    for k in saved:
        np.testing.assert_array_equal(trace[k], saved[k])


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_vit_trace(pool, norm):
    cfg = tiny_vit(pool=pool, norm=norm)
    model = well_conditioned_model(cfg)
    p = model.params
    B, N, C, NH = 3, cfg.n_tokens, cfg.n_embd, cfg.n_head
    x, _ = vit_batch(cfg, np.random.default_rng(0), B=B)
    logits, trace = model.forward(x, trace=True)
    assert set(trace) == {"embed.out"} | {f"blocks.{i}.{k}" for i in range(cfg.n_layer) for k in
                                          ("out", "attn.scores", "attn.probs", "mlp.pre", "mlp.post")}
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        assert trace[b + "out"].shape == (B, N, C)
        assert trace[b + "attn.probs"].shape == trace[b + "attn.scores"].shape == (B, NH, N, N)
        assert trace[b + "mlp.pre"].shape == (B, N, 4 * C)
        np.testing.assert_allclose(trace[b + "attn.probs"].sum(-1), 1.0, atol=1e-13)
        assert np.all(trace[b + "attn.probs"] > 0)              # bidirectional: nothing masked
        assert np.all(np.isfinite(trace[b + "attn.scores"]))
    out = trace[f"blocks.{cfg.n_layer - 1}.out"]
    if norm == "pre":
        out = manual_ln(out, p["norm.weight"], p["norm.bias"], cfg.ln_eps)
    pooled = out[:, 0] if pool == "cls" else out.mean(1)
    np.testing.assert_allclose(logits, pooled @ p["head.weight"] + p["head.bias"], rtol=1e-11,
                               atol=1e-12)


# ------------------------------------------------------------------------------ activation grads

class Perturber:
    """Adds `delta` to one traced activation during the forward pass, by wrapping the engine
    functions the models look up at call time. Names are those of the trace."""

    def __init__(self, monkeypatch, prefix):
        self.prefix, self.key, self.delta, self.calls = prefix, None, None, {}
        block_forward, gelu_forward = block_mod.block_forward, block_mod.gelu_forward
        softmax_fwd = kernels.softmax_fwd
        embed, add_pos = gpt_mod.embedding_forward, vit_mod.add_pos_forward

        def hit(name):
            return self.key == name

        def nth(kind):
            i = self.calls.get(kind, 0)
            self.calls[kind] = i + 1
            return f"{prefix}{i}."

        def block_fwd(x, p, pre, names, cfg, causal, trace=None):
            out, cache = block_forward(x, p, pre, names, cfg, causal, trace)
            return (out + self.delta if hit(pre + "out") else out), cache

        def gelu_fwd(x, kind="tanh"):
            h = nth("gelu")
            if hit(h + "mlp.pre"):
                x = x + self.delta
            out, cache = gelu_forward(x, kind)
            return (out + self.delta if hit(h + "mlp.post") else out), cache

        def softmax(s, scale, causal):
            h = nth("softmax")
            if hit(h + "attn.scores"):                          # the trace's scores are scale * s
                s += (self.delta / scale).reshape(s.shape)
            p = softmax_fwd(s, scale, causal)
            if hit(h + "attn.probs"):
                p += self.delta.reshape(p.shape)                # in place: the caller keeps s
            return p

        def embedding(*a):
            out, cache = embed(*a)
            return (out + self.delta if hit("embed.out") else out), cache

        def pos(*a):
            out, cache = add_pos(*a)
            return (out + self.delta if hit("embed.out") else out), cache

        monkeypatch.setattr(block_mod, "block_forward", block_fwd)
        monkeypatch.setattr(block_mod, "gelu_forward", gelu_fwd)
        monkeypatch.setattr(kernels, "softmax_fwd", softmax)
        monkeypatch.setattr(gpt_mod, "embedding_forward", embedding)
        monkeypatch.setattr(vit_mod, "add_pos_forward", pos)

    def loss(self, model, x, y, key=None, delta=None):
        self.key, self.delta, self.calls = key, delta, {}
        try:
            return model.loss(x, y)
        finally:
            self.key, self.delta = None, None


def check_act_grads(model, x, y, prefix, monkeypatch):
    loss, grads, acts = model.loss_and_grads(x, y, act_grads=True)
    loss2, grads2 = model.loss_and_grads(x, y)
    assert loss == loss2 and list(grads) == list(grads2)
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k])
    _, trace = model.forward(x, trace=True)
    assert set(acts) == set(trace)
    for k in trace:
        assert acts[k].shape == trace[k].shape, k

    pert = Perturber(monkeypatch, prefix)
    assert pert.loss(model, x, y) == loss                       # the wrappers alone change nothing
    rng = np.random.default_rng(0)
    h = 1e-5
    for key in sorted(acts):
        g = acts[key]
        assert np.any(g != 0), key
        for _ in range(2):                                      # directional derivatives
            D = rng.standard_normal(g.shape)
            num = (pert.loss(model, x, y, key, h * D) - pert.loss(model, x, y, key, -h * D)) / (2 * h)
            assert rel_error(num, np.vdot(g, D)) < MODEL_TOL, (key, num, np.vdot(g, D))
        j = np.argmax(np.abs(g))                                # and the largest single element
        E = np.zeros(g.size)
        E[j] = h
        E = E.reshape(g.shape)
        num = (pert.loss(model, x, y, key, E) - pert.loss(model, x, y, key, -E)) / (2 * h)
        assert rel_error(num, g.reshape(-1)[j]) < MODEL_TOL, key
    return acts


@pytest.mark.parametrize("norm,rezero", FORMS)
def test_gpt_activation_grads(norm, rezero, monkeypatch):
    cfg = tiny_gpt(norm=norm, rezero=rezero)
    model = well_conditioned_model(cfg)
    x, y = gpt_batch(cfg, np.random.default_rng(1), B=2)
    acts = check_act_grads(model, x, y, "h.", monkeypatch)
    iu = np.triu_indices(cfg.block_size, 1)
    for i in range(cfg.n_layer):                                # masked scores get no gradient
        assert np.all(acts[f"h.{i}.attn.scores"][..., iu[0], iu[1]] == 0)


@pytest.mark.parametrize("pool,norm,rezero", [("cls", "pre", True), ("mean", "post", True),
                                               ("cls", "none", False), ("mean", "pre", False)])
def test_vit_activation_grads(pool, norm, rezero, monkeypatch):
    cfg = tiny_vit(pool=pool, norm=norm, rezero=rezero)
    model = well_conditioned_model(cfg)
    x, y = vit_batch(cfg, np.random.default_rng(1), B=3)
    check_act_grads(model, x, y, "blocks.", monkeypatch)


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_gpt_last_block_grad_is_head_backward(norm):
    """dL/d(h.{last}.out) by hand: softmax minus one-hot over B*T, through the tied head, then
    (pre-LN) back through ln_f with the LayerNorm backward formula."""
    cfg = tiny_gpt(norm=norm)
    model = well_conditioned_model(cfg)
    p = model.params
    x, y = gpt_batch(cfg, np.random.default_rng(2), B=2)
    logits, trace = model.forward(x, trace=True)
    _, _, acts = model.loss_and_grads(x, y, act_grads=True)
    B, T, V = logits.shape
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    dlogits = (prob - np.eye(V)[y]) / (B * T)
    d = dlogits @ p["wte.weight"]                               # logits = z @ wte.T
    if norm == "pre":
        z = trace[f"h.{cfg.n_layer - 1}.out"]
        xhat = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + cfg.ln_eps)
        rstd = 1.0 / np.sqrt(z.var(-1, keepdims=True) + cfg.ln_eps)
        dxhat = d * p["ln_f.weight"]
        d = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    np.testing.assert_allclose(acts[f"h.{cfg.n_layer - 1}.out"], d, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------------------ config validation

GPT_INTS = ["vocab_size", "block_size", "n_layer", "n_head", "n_embd"]
VIT_INTS = ["image_size", "patch_size", "in_channels", "n_classes", "n_layer", "n_head", "n_embd"]


@pytest.mark.parametrize("cls,field", [(GPTConfig, f) for f in GPT_INTS] +
                         [(ViTConfig, f) for f in VIT_INTS])
@pytest.mark.parametrize("value", [0, -4, 2.5, True])
def test_config_rejects_non_positive_ints(cls, field, value):
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        cls(**{field: value})


@pytest.mark.parametrize("cls,kw,field", [
    (GPTConfig, dict(n_embd=10, n_head=3), "n_embd"),
    (ViTConfig, dict(n_embd=30, n_head=4), "n_embd"),
    (GPTConfig, dict(norm="layer"), "norm"),
    (ViTConfig, dict(norm="rms"), "norm"),
    (ViTConfig, dict(pool="max"), "pool"),
    (GPTConfig, dict(gelu="relu"), "gelu"),
    (ViTConfig, dict(gelu="exact"), "gelu"),
    (ViTConfig, dict(image_size=28, patch_size=5), "patch_size"),
    (ViTConfig, dict(image_size=4, patch_size=8), "patch_size"),
    (GPTConfig, dict(rezero="yes"), "rezero"),
    (GPTConfig, dict(ln_eps=0.0), "ln_eps"),
    (ViTConfig, dict(res_mult=-1.0), "res_mult"),
    (GPTConfig, dict(logit_scale=float("nan")), "logit_scale"),
    (GPTConfig, dict(attn_scale=0.0), "attn_scale"),
])
def test_config_rejects_bad_values(cls, kw, field):
    with pytest.raises(ConfigError, match=rf"\b{field}\b") as err:
        cls(**kw)
    assert isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)                           # one line, for the CLI


def test_config_divisibility_message_names_both_fields():
    with pytest.raises(ConfigError) as err:
        GPTConfig(n_embd=10, n_head=3)
    assert "n_embd" in str(err.value) and "n_head" in str(err.value)


def test_config_round_trip_and_unknown_fields():
    cfg = ViTConfig(pool="mean", norm="post", rezero=True)
    assert ViTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="bogus"):
        GPTConfig.from_dict({**GPTConfig().to_dict(), "bogus": 1})


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dtype"):
        build_model(tiny_gpt(), dtype="float16")
    with pytest.raises(ValueError, match="nope"):
        build_model(tiny_gpt(), init="nope")
    with pytest.raises(TypeError):
        build_model(dict(n_layer=2))


# ------------------------------------------------------------------------------ bad input

def test_gpt_rejects_bad_input():
    cfg = tiny_gpt()
    model = build_model(cfg, dtype="float64")
    good = np.zeros((2, 4), dtype=np.int64)
    bad = {
        "token id": np.array([[0, 1, cfg.vocab_size]]),
        "negative token id": np.array([[0, -1, 2]]),
        "too long": np.zeros((1, cfg.block_size + 1), dtype=np.int64),
        "float tokens": np.zeros((2, 4)),
        "1-D": np.zeros(4, dtype=np.int64),
    }
    for what, x in bad.items():
        for call in (lambda: model.forward(x), lambda: model.loss(x, good[:1, :x.shape[-1]]),
                     lambda: model.loss_and_grads(x, np.zeros_like(x, dtype=np.int64))):
            with pytest.raises(ValueError):
                call()
    with pytest.raises(ValueError, match="block_size"):
        model.forward(bad["too long"])
    model.forward(np.zeros((1, cfg.block_size), dtype=np.int64))  # exactly block_size is fine


def test_vit_rejects_bad_input():
    cfg = tiny_vit()
    model = build_model(cfg, dtype="float64")
    y = np.zeros(2, dtype=np.int64)
    for shape in [(2, 8, 8), (2, 8, 8, 1), (2, 8, 9, 2), (2, 4, 4, 2), (8, 8, 2), (2, 8, 8, 2, 1)]:
        x = np.zeros(shape)
        for call in (lambda: model.forward(x), lambda: model.loss(x, y),
                     lambda: model.loss_and_grads(x, y)):
            with pytest.raises(ValueError, match="shape"):
                call()


def run_isolated(statements):
    """Run each statement in one fresh interpreter and report, per statement, the name of the
    exception it raised or "no error". Isolated because on the current engine these inputs make the compiled
    cross-entropy kernel read and write out of bounds, which can kill the process."""
    prog = textwrap.dedent("""
        import numpy as np
        from minitransformer import GPTConfig, ViTConfig, build_model
        gpt = build_model(GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8),
                          dtype="float64")
        vit = build_model(ViTConfig(image_size=8, patch_size=4, in_channels=1, n_classes=5,
                                    n_layer=1, n_head=2, n_embd=8), dtype="float64")
        x = np.zeros((2, 6), dtype=np.int64)
        img = np.zeros((3, 8, 8, 1))
        for stmt in STATEMENTS:
            try:
                exec(stmt)
            except Exception as e:
                print("ValueError" if isinstance(e, ValueError) else type(e).__name__, flush=True)
            else:
                print("no error", flush=True)
    """).replace("STATEMENTS", repr(list(statements)))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "NUMBA_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120,
                       env=env)
    return r.returncode, r.stdout.split("\n")[:-1], r.stderr.strip()[-300:]


def test_isolated_runner_reports_value_errors():
    """The runner itself: a bad token id (validated) is reported as ValueError."""
    rc, out, err = run_isolated(["gpt.loss(np.full((2, 6), 11), x)", "gpt.loss(x, x)"])
    assert (rc, out) == (0, ["ValueError", "no error"]), err


@pytest.mark.parametrize("what,statements", [
    ("GPT target ids outside [0, V)", ["gpt.loss_and_grads(x, np.full((2, 6), 11))",
                                       "gpt.loss(x, np.full((2, 6), -1))"]),
    ("ViT labels outside [0, K)", ["vit.loss_and_grads(img, np.array([0, 1, 5]))",
                                   "vit.loss(img, np.array([0, -1, 2]))"]),
    ("targets that do not match the logits", ["gpt.loss(x, np.zeros((2, 3), dtype=np.int64))",
                                              "vit.loss(img, np.array([0, 1]))"]),
])
def test_bad_targets_raise_value_error(what, statements):
    """Targets are model input too: an id outside [0, V) or [0, K), or a target array that does
    not match the logits, must be a clear ValueError, as a bad token id is. The Numba xent kernel
    indexes logits[r, y[r]] unchecked (a target of V once read the next row and wrote past
    dlogits; too few targets segfaulted), so layers.cross_entropy_forward checks them first; the
    statements run in a separate process so that a regression crashes only that process."""
    rc, out, err = run_isolated(statements)
    assert rc == 0 and out == ["ValueError"] * len(statements), \
        f"{what}: exit {rc}, results {out}, {err!r}"


@pytest.mark.parametrize("kind", ["gpt", "vit"])
def test_loss_and_grads_fills_a_trace_like_forward(kind):
    """The training step can collect the forward's intermediates (telemetry uses them) without a
    second forward: the dict passed as trace= holds exactly what forward(x, trace=True) returns."""
    rng = np.random.default_rng(3)
    if kind == "gpt":
        cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
        x, y = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    else:
        cfg = ViTConfig(image_size=8, patch_size=4, n_classes=5, n_layer=2, n_head=2, n_embd=8)
        x, y = rng.random((2, 8, 8, 1)), rng.integers(0, 5, 2)
    model = build_model(cfg, seed=1, dtype="float64")
    trace = {}
    loss, grads = model.loss_and_grads(x, y, trace=trace)
    _, expected = model.forward(x, trace=True)
    assert sorted(trace) == sorted(expected) and len(trace) == 5 * cfg.n_layer + 1
    for name in expected:
        np.testing.assert_array_equal(trace[name], expected[name], err_msg=name)
    assert loss == model.loss(x, y)
