"""Initialization schemes: every promise is kept, every formula is the paper's, and each scheme
does what it is for (symmetry, identity blocks, depth stability, attention structure, width
independence). Each test can fail when the scheme is wrong."""
import math
import re

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer import init as I
from minitransformer.init.audit import audit, format_audit
from minitransformer.analysis.coordcheck import coord_check
from minitransformer.init import rules as R
from minitransformer.init.build import check_config
from minitransformer.init.schemes_deep import admin_omega
from minitransformer.engine.names import MATRICES, role
from minitransformer.engine.optim import AdamW, SGD

GPT = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
VIT = ViTConfig()                                     # 28x28 MNIST, 7x7 patches, C=64, 4 layers


def make(cfg, init, seed=0, explicit=(), **opts):
    cfg, warnings = I.prepare_config(cfg, init, explicit, I.InitOptions(**opts))
    return build_model(cfg, init=init, seed=seed, dtype="float64", **opts), warnings


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def close(measured, expected, n, z=5.0):
    """measured rms within z sampling standard errors (sqrt(1/(2n)) relative) of expected."""
    return abs(measured / expected - 1.0) < z * math.sqrt(1.0 / (2 * n))


# --------------------------------------------------------------------------------------------
# 1. Every tensor keeps the scheme's promise (the audit), for both models.

CASES = [(GPT, s) for s in I.SCHEMES if s != "structured"] + [(VIT, s) for s in I.SCHEMES]


@pytest.mark.parametrize("cfg,init", CASES, ids=[f"{type(c).__name__[:-6]}-{s}" for c, s in CASES])
def test_every_tensor_keeps_its_promise(cfg, init):
    _, rows, _ = audit(cfg, init, seed=1)
    bad = [r for r in rows if r.ok is False]
    assert not bad, format_audit(bad)
    unpromised = [r.name for r in rows if r.ok is None]
    if init != "mimetic":                              # only mimetic's SVD factors lack a std promise
        assert not unpromised, unpromised


def test_audit_catches_a_broken_promise():
    from minitransformer.init.audit import check
    rule, rng = R.xavier_uniform_rule(64, 256), np.random.default_rng(0)
    assert check(rule, R.sample(rule, (64, 256), rng))[-1]
    assert not check(rule, 1.1 * R.sample(rule, (64, 256), rng))[-1]      # 10% too wide
    assert not check(rule, R.sample(rule, (64, 256), rng) + 0.02)[-1]     # shifted mean
    assert not check(R.const(1.0), np.full(8, 1.001))[-1]                 # a constant must be exact


def test_audit_reports_q_k_v_apart_when_they_differ():
    _, rows, _ = audit(GPT, "mup", opts=I.InitOptions(base_width=32))
    names = [r.name for r in rows]
    assert "h.0.attn.c_attn.weight[q]" in names and "h.0.attn.c_attn.weight[v]" in names
    _, rows, _ = audit(GPT, "gpt2")
    assert "h.0.attn.c_attn.weight" in [r.name for r in rows]
    row = next(r for r in rows if r.name == "h.0.attn.c_attn.weight")
    assert (row.fan_in, row.fan_out) == (64, 64)      # the logical C x C matrix, not (C, 3C)


# --------------------------------------------------------------------------------------------
# 2. The formulas, computed here independently of init.py.

def blocks(w):
    C = w.shape[0]
    return w[:, :C], w[:, C:2 * C], w[:, 2 * C:]


def test_gpt2_and_normal_stds():
    m, _ = make(GPT, "gpt2")
    p, L = m.params, GPT.n_layer
    assert close(rms(p["h.0.mlp.c_proj.weight"]), 0.02 / math.sqrt(2 * L), 256 * 64)
    assert close(rms(p["h.1.attn.c_proj.weight"]), 0.02 / math.sqrt(2 * L), 64 * 64)
    assert close(rms(p["h.0.mlp.c_fc.weight"]), 0.02, 64 * 256)
    assert close(rms(p["wte.weight"]), 0.02, 65 * 64)
    m, _ = make(GPT, "normal", init_std=0.05)
    assert close(rms(m.params["h.0.mlp.c_proj.weight"]), 0.05, 256 * 64)
    assert close(rms(m.params["wpe.weight"]), 0.05, 32 * 64)


@pytest.mark.parametrize("init,std_of", [
    ("xavier_uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ("xavier_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ("kaiming_normal", lambda fi, fo: math.sqrt(2 / fi)),
    ("kaiming_uniform", lambda fi, fo: math.sqrt(2 / fi)),
    ("lecun", lambda fi, fo: math.sqrt(1 / fi)),
    ("orthogonal", lambda fi, fo: math.sqrt(1 / max(fi, fo))),
])
def test_fan_based_schemes_use_logical_fans(init, std_of):
    m, _ = make(GPT, init)
    p, C = m.params, GPT.n_embd
    for q_k_or_v in blocks(p["h.0.attn.c_attn.weight"]):       # each C x C: fans (C, C)
        assert close(rms(q_k_or_v), std_of(C, C), C * C)
    assert close(rms(p["h.1.mlp.c_fc.weight"]), std_of(C, 4 * C), C * 4 * C)
    assert close(rms(p["h.1.mlp.c_proj.weight"]), std_of(4 * C, C), C * 4 * C)
    assert close(rms(p["wte.weight"]), 0.02, 65 * C)          # tables keep GPT-2's init
    if init.endswith("uniform"):
        bound = math.sqrt(3) * std_of(C, 4 * C)
        assert np.abs(p["h.1.mlp.c_fc.weight"]).max() <= bound


def test_orthogonal_is_orthogonal_per_logical_matrix():
    m, _ = make(GPT, "orthogonal")
    C = GPT.n_embd
    for w in blocks(m.params["h.0.attn.c_attn.weight"]):
        np.testing.assert_allclose(w.T @ w, np.eye(C), atol=1e-10)
    w = m.params["h.0.mlp.c_fc.weight"]                       # (C, 4C): orthonormal rows
    np.testing.assert_allclose(w @ w.T, np.eye(C), atol=1e-10)
    w = m.params["h.0.mlp.c_proj.weight"]                     # (4C, C): orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(C), atol=1e-10)


def test_init_scale_multiplies_exactly_the_weight_matrices():
    a, _ = make(VIT, "xavier_uniform", seed=3)
    b, _ = make(VIT, "xavier_uniform", seed=3, init_scale=2.5)
    for name in a.params:
        factor = 2.5 if role(name) in MATRICES else 1.0
        np.testing.assert_allclose(b.params[name], factor * a.params[name], rtol=1e-15, err_msg=name)
    _, rows, _ = audit(VIT, "xavier_uniform", seed=3, opts=I.InitOptions(init_scale=2.5))
    assert all(r.ok is not False for r in rows)


def test_vit_and_vit_jax():
    m, _ = make(VIT, "vit")
    p = m.params
    fan = VIT.patch_size ** 2 * VIT.in_channels
    assert np.abs(p["patch_embed.weight"]).max() <= 1 / math.sqrt(fan)
    assert close(rms(p["blocks.0.mlp.fc1.weight"]), 0.02, 64 * 256)
    assert close(rms(p["cls_token"]), 1e-6, 64)
    m, _ = make(VIT, "vit_jax")
    p, C = m.params, VIT.n_embd
    assert not p["head.weight"].any() and not p["head.bias"].any()
    assert close(rms(p["patch_embed.weight"]), 1 / math.sqrt(fan), fan * C)
    assert np.abs(p["patch_embed.weight"]).max() <= 2 / math.sqrt(fan) / R.TRUNC2_STD
    for w in blocks(p["blocks.0.attn.qkv.weight"]):          # Flax: Q, K, V apart, not (C, 3C)
        assert close(rms(w), math.sqrt(2 / (2 * C)), C * C)
    assert close(rms(p["blocks.0.mlp.fc1.bias"]), 1e-6, 4 * C)
    assert not p["blocks.0.attn.qkv.bias"].any()


def test_small_embed():
    m, _ = make(GPT, "small_embed")
    p, C = m.params, GPT.n_embd
    assert np.abs(p["wte.weight"]).max() <= 1e-4 and np.abs(p["wpe.weight"]).max() <= 1e-4
    assert close(rms(p["wte.weight"]), 1e-4 / math.sqrt(3), 65 * C)
    assert close(rms(p["h.0.attn.c_proj.weight"]), math.sqrt(2 / (5 * C)), C * C)


def test_t_fixup_formulas_and_config():
    L, C = 6, 64
    m, warnings = make(GPTConfig(vocab_size=65, block_size=32, n_layer=L, n_head=4, n_embd=C), "t_fixup")
    assert m.cfg.norm == "none" and not warnings
    p = m.params
    q, k, v = blocks(p["h.2.attn.c_attn.weight"])
    xavier = math.sqrt(2 / (2 * C))
    assert close(rms(q), xavier, C * C) and close(rms(k), xavier, C * C)
    assert close(rms(v), 0.67 * L ** -0.25 * xavier, C * C)
    assert close(rms(p["h.2.mlp.c_fc.weight"]), 0.67 * L ** -0.25 * math.sqrt(2 / (5 * C)), 4 * C * C)
    assert close(rms(p["wte.weight"]), (9 * L) ** -0.25 / math.sqrt(C), 65 * C)


def test_deepnet_and_admin_formulas_and_config():
    L, C = 6, 64
    cfg = GPTConfig(vocab_size=65, block_size=32, n_layer=L, n_head=4, n_embd=C)
    m, _ = make(cfg, "deepnet")
    assert m.cfg.norm == "post" and m.cfg.res_mult == pytest.approx((2 * L) ** 0.25)
    q, k, v = blocks(m.params["h.3.attn.c_attn.weight"])
    xavier = math.sqrt(2 / (2 * C))
    assert close(rms(q), xavier, C * C)
    assert close(rms(v), (8 * L) ** -0.25 * xavier, C * C)
    assert close(rms(m.params["h.3.mlp.c_proj.weight"]), (8 * L) ** -0.25 * math.sqrt(2 / (5 * C)), 4 * C * C)
    m, _ = make(cfg, "admin")
    n = 2 * L
    assert m.cfg.norm == "post" and m.cfg.res_mult == pytest.approx(math.sqrt((n + 1) / math.log(n + 1) - 1))
    assert admin_omega(2) == pytest.approx(1.45144, abs=1e-5)       # n = 4: sqrt(5/ln 5 - 1)


def test_prepare_config_warns_only_on_explicit_overrides():
    cfg, w = I.prepare_config(GPT, "t_fixup", explicit={"norm"})   # GPT has norm="pre"
    assert cfg.norm == "pre" and len(w) == 1 and "norm" in w[0] and "t_fixup" in w[0]
    cfg, w = I.prepare_config(GPTConfig(norm="none"), "t_fixup", explicit={"norm"})
    assert cfg.norm == "none" and not w
    cfg, w = I.prepare_config(GPT, "rezero")
    assert (cfg.norm, cfg.rezero, w) == ("none", True, [])
    cfg, w = I.prepare_config(VIT, "structured", explicit={"pool"})
    assert cfg.pool == "cls" and w
    cfg, w = I.prepare_config(GPT, "gpt2", explicit={"norm"})
    assert cfg is GPT and not w
    with pytest.raises(ValueError, match="ViT"):
        I.prepare_config(GPT, "structured")
    with pytest.raises(ValueError, match="unknown init"):
        I.prepare_config(GPT, "xavier")
    with pytest.raises(ValueError, match="rezero=True"):
        build_model(GPT, init="rezero")


# --------------------------------------------------------------------------------------------
# 3. What each scheme is for.

def test_zeros_never_breaks_symmetry():
    cfg = GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16)
    m, _ = make(cfg, "zeros")
    rng = np.random.default_rng(0)
    opt = AdamW(m.params, lr=1e-2)
    for _ in range(5):
        x = rng.integers(0, 16, (4, 8))
        _, grads = m.loss_and_grads(x, np.roll(x, -1, axis=1))
        opt.step(m.params, grads)
    for i in range(cfg.n_layer):
        p = {k[len(f"h.{i}."):]: v for k, v in m.params.items() if k.startswith(f"h.{i}.")}
        fc, proj = p["mlp.c_fc.weight"], p["mlp.c_proj.weight"]
        assert np.all(fc == fc[:, :1]) and np.all(p["mlp.c_fc.bias"] == p["mlp.c_fc.bias"][0])
        assert np.all(proj == proj[:1])                         # every hidden unit's output row
        for w in blocks(p["attn.c_attn.weight"]):
            assert np.all(w == w[:, :1])
    assert np.abs(m.params["ln_f.bias"]).max() > 0              # while the rest did learn


def test_rezero_blocks_are_the_identity_at_step_0():
    for cfg in (GPT, VIT):
        m, _ = make(cfg, "rezero")
        x = (np.random.default_rng(0).integers(0, 65, (2, 32)) if cfg is GPT
             else np.random.default_rng(0).random((2, 28, 28, 1)))
        _, trace = m.forward(x, trace=True)
        prefix = "h" if cfg is GPT else "blocks"
        for i in range(cfg.n_layer):
            assert np.array_equal(trace[f"{prefix}.{i}.out"], trace["embed.out"])


def _deep_stability(init, L=24):
    base = GPTConfig(vocab_size=32, block_size=16, n_layer=L, n_head=4, n_embd=32, norm="none")
    m, _ = make(base, init, explicit={"norm"})
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 32, (4, 16)), rng.integers(0, 32, (4, 16))
    _, trace = m.forward(x, trace=True)
    growth = rms(trace[f"h.{L - 1}.out"]) / rms(trace["embed.out"])
    before = {k: v.copy() for k, v in m.params.items()}
    with np.errstate(all="ignore"):
        _, grads = m.loss_and_grads(x, y)
        SGD(m.params, lr=0.1, momentum=0.0).step(m.params, grads)   # no warmup: full lr at once
    update = max(np.linalg.norm(m.params[k] - before[k]) / np.linalg.norm(before[k])
                 for k in before if before[k].ndim == 2)
    return growth, update


def test_t_fixup_and_rezero_are_stable_at_depth_24_without_layernorm():
    """README's numbers: plain Xavier grows the residual rms 8.7e4-fold and its first step moves
    a weight matrix by 3.2e3 of its size (within 5%); t_fixup and rezero keep the ratio at 1.0
    and the update at 0.004 (within 10%)."""
    growth, update = _deep_stability("xavier_uniform")
    assert growth == pytest.approx(8.7e4, rel=0.05) and update == pytest.approx(3.2e3, rel=0.05)
    for init in ("t_fixup", "rezero"):
        growth, update = _deep_stability(init)
        assert growth == pytest.approx(1.0, rel=0.1), (init, growth)
        assert update == pytest.approx(0.004, rel=0.1), (init, update)


def test_mimetic_attention_looks_trained():
    for cfg in (VIT, GPT):
        m, _ = make(cfg, "mimetic")
        C, HS = cfg.n_embd, cfg.head_size
        name = "attn.qkv" if cfg is VIT else "attn.c_attn"
        proj = "attn.proj" if cfg is VIT else "attn.c_proj"
        prefix = "blocks" if cfg is VIT else "h"
        off = ~np.eye(C, dtype=bool)
        for i in range(cfg.n_layer):                   # README: 0.31 vs 0.067, and -0.40
            wq, wk, wv = blocks(m.params[f"{prefix}.{i}.{name}.weight"])
            for h in range(cfg.n_head):
                a = wq[:, h * HS:(h + 1) * HS] @ wk[:, h * HS:(h + 1) * HS].T
                assert np.diag(a).mean() == pytest.approx(0.31, abs=0.02)
                assert np.abs(a[off]).mean() == pytest.approx(0.067, abs=0.005)
            vo = wv @ m.params[f"{prefix}.{i}.{proj}.weight"]
            assert np.diag(vo).mean() == pytest.approx(-0.40, abs=0.01)
            assert -np.diag(vo).mean() > 5 * np.abs(vo[off]).mean()
    m, _ = make(VIT, "vit")                                # and an ordinary init does not
    wq, wk, _ = blocks(m.params["blocks.0.attn.qkv.weight"])
    assert abs(np.diag(wq[:, :16] @ wk[:, :16].T).mean()) < 0.01


def _offset_mass(probs, grid, k):
    """{(m, n): mean probability that patch (r, c) puts on (r+m, c+n), over patches where it exists}."""
    out = {}
    for m in range(-(k // 2), k // 2 + 1):
        for n in range(-(k // 2), k // 2 + 1):
            vals = [probs[r * grid + c, (r + m) * grid + c + n] for r in range(grid) for c in range(grid)
                    if 0 <= r + m < grid and 0 <= c + n < grid]
            out[(m, n)] = float(np.mean(vals))
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_structured_heads_attend_to_their_offset(k):
    m, _ = make(VIT, "structured", impulse_k=k)
    assert m.cfg.pool == "mean"
    blank = np.zeros((1, 28, 28, 1))                   # only pos_embed drives layer 0
    _, trace = m.forward(blank, trace=True)
    probs = trace["blocks.0.attn.probs"][0]            # (NH, N, N)
    grid = VIT.image_size // VIT.patch_size
    # each head's own offset, as the audit prints it: "offsets (-1,+1) (+0,+0) ..."
    _, rows, _ = audit(VIT, "structured", seed=0, opts=I.InitOptions(impulse_k=k))
    formula = next(r.formula for r in rows if r.name == "blocks.0.attn.qkv.weight[q]")
    offsets = [(int(a), int(b)) for a, b in re.findall(r"\(([+-]\d+),([+-]\d+)\)", formula)]
    assert len(offsets) == VIT.n_head
    own = [_offset_mass(probs[h], grid, k)[offsets[h]] for h in range(VIT.n_head)]
    assert min(own) >= 0.95 and np.mean(own) >= 0.975, own     # README: >= 0.95, mean 0.98
    plain, _ = make(VIT, "vit")
    _, trace = plain.forward(blank, trace=True)
    assert max(_offset_mass(trace["blocks.0.attn.probs"][0, 0], grid, k).values()) < 0.2


def test_mup_coordinate_check():
    widths = (32, 64, 128)
    cfgs = [GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=4, n_embd=w) for w in widths]
    opts = I.InitOptions(base_width=32)
    mup = coord_check(cfgs, "mup", steps=3, lr=1e-2, opts=opts)
    sp = coord_check(cfgs, "gpt2", steps=3, lr=1e-2, opts=opts)

    def spread(res, step, key):
        vals = [res[w][step][key] for w in widths]
        return vals[-1] / vals[0], max(vals) / min(vals)

    # README's numbers: mean |h.1.out| after 3 steps, within 2%
    np.testing.assert_allclose([mup[w][3]["h.1.out"] for w in widths], [0.135, 0.115, 0.117],
                               rtol=0.02)
    np.testing.assert_allclose([sp[w][3]["h.1.out"] for w in widths], [0.13, 0.26, 0.90],
                               rtol=0.02)
    for step in (0, 3):                                # at init and after 3 Adam steps
        grow, ratio = spread(mup, step, "h.1.out")
        assert ratio < 1.5, (step, ratio)              # flat in width
        assert spread(mup, step, "logits")[0] < 1.2    # does not grow with width
    assert spread(sp, 0, "logits")[0] > 1.6            # standard param: logits ~ sqrt(C) at init
    assert spread(sp, 3, "h.1.out")[0] > 3             # and updates grow the blocks with width


def test_mup_config_and_lr_multipliers():
    opts = I.InitOptions(base_width=16)
    cfg, _ = I.prepare_config(GPT, "mup", opts=opts)
    assert cfg.attn_scale == pytest.approx(1 / GPT.head_size) and cfg.logit_scale == pytest.approx(16 / 64)
    m = build_model(cfg, init="mup", seed=0, base_width=16)
    mult = I.lr_multipliers(cfg, "mup", m.params, opts)
    assert mult["h.0.mlp.c_fc.weight"] == pytest.approx(0.25) and mult["h.0.attn.c_attn.weight"] == pytest.approx(0.25)
    assert mult["wte.weight"] == 1.0 and mult["h.0.ln_1.weight"] == 1.0 and mult["h.0.mlp.c_fc.bias"] == 1.0
    q, k, v = blocks(m.params["h.0.attn.c_attn.weight"])
    assert not q.any() and close(rms(k), 0.02 * math.sqrt(16 / 64), 64 * 64)
    assert I.lr_multipliers(cfg, "gpt2", m.params) is None
    vcfg, _ = I.prepare_config(VIT, "mup")
    assert not build_model(vcfg, init="mup").params["head.weight"].any()   # readout starts at 0


# --------------------------------------------------------------------------------------------
# 4. The configs the schemes produce have correct gradients (residual multiplier, post-LN,
#    1/HS attention, logit scale, no LN, ReZero gates).

TINY_GPT = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)
TINY_VIT = ViTConfig(image_size=8, patch_size=4, in_channels=1, n_classes=5, n_layer=2, n_head=2, n_embd=8)


@pytest.mark.parametrize("base,init", [(TINY_GPT, "deepnet"), (TINY_GPT, "admin"), (TINY_GPT, "mup"),
                                       (TINY_GPT, "t_fixup"), (TINY_GPT, "rezero"), (TINY_VIT, "deepnet"),
                                       (TINY_VIT, "mup"), (TINY_VIT, "structured")])
def test_gradients_of_scheme_configs(base, init):
    cfg, _ = I.prepare_config(base, init, opts=I.InitOptions(base_width=4))
    rows = check_config(cfg, init=init, n_samples=10)
    assert all(r.ok for r in rows), [(r.name, r.rel_error) for r in rows if not r.ok]


# --------------------------------------------------------------------------------------------
# 5. The `inits` command.

def test_cli_inits(capsys):
    from minitransformer.cli import main
    main(["inits"])
    out = capsys.readouterr().out
    for name in I.SCHEMES:
        assert out.count(f"\n{name} ") + out.startswith(f"{name} ") == 1, name
    main(["inits", "--show", "deepnet", "--model", "vit", "--n-layer", "2", "--norm", "pre"])
    out = capsys.readouterr().out
    assert "warning: init deepnet expects norm='post'" in out
    assert "blocks.1.attn.qkv.weight[v]" in out and "MISMATCH" not in out
    assert "promises hold" in out.splitlines()[-1]
    for bad, needle in ([["inits", "--show", "xavier"], "unknown init"],
                        [["inits", "--show", "gpt2", "--model", "vit", "--vocab-size", "9"], "vocab_size"],
                        [["inits", "--show", "structured"], "ViT"],
                        [["inits", "--show", "gpt2", "--n-head", "5"], "divisible"]):
        with pytest.raises(SystemExit) as e:
            main(bad)
        assert e.value.code == 2 and needle in capsys.readouterr().err
