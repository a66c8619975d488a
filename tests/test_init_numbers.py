"""Every init formula against the paper's number, computed by hand for one small config and
written here as a literal (never taken from the scheme's own Rule). Each number is checked twice:
against the std the scheme promises (exactly, so a wrong formula fails even when the sampler
follows it), and against the rms of the tensor build_model actually drew (within 5 sampling
standard errors, so a sampler that ignores the promise fails too).

The config: GPT with L = 4 layers, C = 64 channels, 4 heads, vocabulary 65, block 32; ViT is
ViTConfig()'s default (C = 64, L = 4, 7x7 patches of 1 channel, 10 classes). Xavier on a C x C
matrix: √(2/128) = 0.125; on the (64, 256) MLP matrices: √(2/320) = 0.0790569.
"""
import math

import numpy as np
import pytest

from minitransformer import GPTConfig, ViTConfig, build_model
from minitransformer import init as I
from minitransformer.init.audit import audit

GPT = GPTConfig(vocab_size=65, block_size=32, n_layer=4, n_head=4, n_embd=64)
VIT = ViTConfig()
QKV = {"q": 0, "k": 1, "v": 2}

# (model, scheme, tensor, Q/K/V block or None, std written by hand, how)
NUMBERS = [
    # GPT-2 (Radford et al. 2019): 0.02; residual writers 0.02/√(2L) = 0.02/√8
    ("gpt", "gpt2", "wte.weight", None, 0.02, "0.02"),
    ("gpt", "gpt2", "wpe.weight", None, 0.02, "0.02"),
    ("gpt", "gpt2", "h.0.attn.c_attn.weight", None, 0.02, "0.02"),
    ("gpt", "gpt2", "h.1.mlp.c_fc.weight", None, 0.02, "0.02"),
    ("gpt", "gpt2", "h.3.attn.c_proj.weight", None, 0.00707107, "0.02/√8"),
    ("gpt", "gpt2", "h.2.mlp.c_proj.weight", None, 0.00707107, "0.02/√8"),
    # normal with --init-std 0.05 (set below): every matrix and table
    ("gpt", "normal", "h.2.mlp.c_proj.weight", None, 0.05, "init_std"),
    ("gpt", "normal", "wpe.weight", None, 0.05, "init_std"),
    # Glorot & Bengio 2010: √(2/(fan_in + fan_out)), Q, K, V each C x C
    ("gpt", "xavier_uniform", "h.0.attn.c_attn.weight", "k", 0.125, "√(2/128)"),
    ("gpt", "xavier_uniform", "h.0.mlp.c_fc.weight", None, 0.0790569, "√(2/320)"),
    ("gpt", "xavier_uniform", "h.0.mlp.c_proj.weight", None, 0.0790569, "√(2/320)"),
    ("gpt", "xavier_uniform", "wte.weight", None, 0.02, "tables keep GPT-2's"),
    ("gpt", "xavier_normal", "h.1.attn.c_proj.weight", None, 0.125, "√(2/128)"),
    ("gpt", "xavier_normal", "h.1.mlp.c_fc.weight", None, 0.0790569, "√(2/320)"),
    # He et al. 2015: √(2/fan_in)
    ("gpt", "kaiming_normal", "h.0.attn.c_attn.weight", "v", 0.1767767, "√(2/64)"),
    ("gpt", "kaiming_normal", "h.0.mlp.c_proj.weight", None, 0.0883883, "√(2/256)"),
    ("gpt", "kaiming_uniform", "h.0.mlp.c_fc.weight", None, 0.1767767, "√(2/64)"),
    ("gpt", "kaiming_uniform", "h.0.mlp.c_proj.weight", None, 0.0883883, "√(2/256)"),
    # LeCun et al. 1998: √(1/fan_in)
    ("gpt", "lecun", "h.0.attn.c_attn.weight", "q", 0.125, "1/√64"),
    ("gpt", "lecun", "h.0.mlp.c_proj.weight", None, 0.0625, "1/√256"),
    # Saxe et al. 2014: rms of a semi-orthogonal matrix is 1/√max(fan_in, fan_out)
    ("gpt", "orthogonal", "h.0.attn.c_attn.weight", "k", 0.125, "1/√64"),
    ("gpt", "orthogonal", "h.0.mlp.c_fc.weight", None, 0.0625, "1/√256"),
    # Nguyen & Salazar 2019: √(2/5C); SmallInitEmb U(±1e-4): 1e-4/√3
    ("gpt", "small_embed", "h.0.attn.c_attn.weight", "q", 0.0790569, "√(2/320)"),
    ("gpt", "small_embed", "wte.weight", None, 5.7735e-5, "1e-4/√3"),
    ("gpt", "zeros", "h.0.mlp.c_fc.weight", None, 0.0, "0"),
    ("gpt", "zeros", "wte.weight", None, 0.02, "tables keep GPT-2's"),
    # Huang et al. 2020 (T-Fixup): V, proj, fc, fc_proj x 0.67 L^-1/4 = 0.473762;
    # tables N(0, 1/C) x (9L)^-1/4 = 0.125 x 0.408248
    ("gpt", "t_fixup", "h.1.attn.c_attn.weight", "q", 0.125, "Xavier"),
    ("gpt", "t_fixup", "h.1.attn.c_attn.weight", "v", 0.0592202, "0.125 x 0.473762"),
    ("gpt", "t_fixup", "h.1.attn.c_proj.weight", None, 0.0592202, "0.125 x 0.473762"),
    ("gpt", "t_fixup", "h.1.mlp.c_fc.weight", None, 0.0374541, "0.0790569 x 0.473762"),
    ("gpt", "t_fixup", "h.1.mlp.c_proj.weight", None, 0.0374541, "0.0790569 x 0.473762"),
    ("gpt", "t_fixup", "wte.weight", None, 0.0510310, "(1/8) x 0.408248"),
    ("gpt", "t_fixup", "wpe.weight", None, 0.0510310, "(1/8) x 0.408248"),
    ("vit", "t_fixup", "patch_embed.weight", None, 0.0543125, "√(2/113) x 0.408248"),
    ("vit", "t_fixup", "head.weight", None, 0.1643990, "√(2/74)"),
    # Bachlechner et al. 2020 (ReZero): Xavier weights
    ("gpt", "rezero", "h.0.mlp.c_fc.weight", None, 0.0790569, "√(2/320)"),
    # Wang et al. 2022 (DeepNet): Xavier-normal, V/proj/fc/fc_proj gain (8L)^-1/4 = 0.420448
    ("gpt", "deepnet", "h.2.attn.c_attn.weight", "k", 0.125, "Xavier"),
    ("gpt", "deepnet", "h.2.attn.c_attn.weight", "v", 0.0525560, "0.125 x 0.420448"),
    ("gpt", "deepnet", "h.2.attn.c_proj.weight", None, 0.0525560, "0.125 x 0.420448"),
    ("gpt", "deepnet", "h.2.mlp.c_proj.weight", None, 0.0332393, "0.0790569 x 0.420448"),
    # Liu et al. 2020 (Admin): Xavier-uniform weights
    ("gpt", "admin", "h.3.attn.c_proj.weight", None, 0.125, "√(2/128)"),
    # Yang et al. 2022 (muP), base width 16, so m = 64/16 = 4: hidden std / √4, W_q = 0
    ("gpt", "mup", "h.0.attn.c_attn.weight", "q", 0.0, "W_q = 0"),
    ("gpt", "mup", "h.0.attn.c_attn.weight", "k", 0.01, "0.02/2"),
    ("gpt", "mup", "h.0.mlp.c_fc.weight", None, 0.01, "0.02/2"),
    ("gpt", "mup", "h.0.mlp.c_proj.weight", None, 0.00353553, "0.02/√8/2"),
    ("gpt", "mup", "wte.weight", None, 0.02, "embeddings unchanged"),
    # Dosovitskiy et al. 2021 / timm: linears 0.02, patch U(±1/√49): 1/(7√3), cls 1e-6
    ("vit", "vit", "patch_embed.weight", None, 0.0824786, "1/(7√3)"),
    ("vit", "vit", "blocks.0.attn.qkv.weight", None, 0.02, "0.02"),
    ("vit", "vit", "head.weight", None, 0.02, "0.02"),
    ("vit", "vit", "cls_token", None, 1e-6, "1e-6"),
    # timm's jax mode: patch LeCun normal 1/√49, Xavier Q/K/V apart, head 0, MLP biases 1e-6
    ("vit", "vit_jax", "patch_embed.weight", None, 0.1428571, "1/7"),
    ("vit", "vit_jax", "blocks.1.attn.qkv.weight", "v", 0.125, "√(2/128)"),
    ("vit", "vit_jax", "blocks.1.mlp.fc2.weight", None, 0.0790569, "√(2/320)"),
    ("vit", "vit_jax", "head.weight", None, 0.0, "0"),
    ("vit", "vit_jax", "blocks.1.mlp.fc1.bias", None, 1e-6, "1e-6"),
    # Zheng et al. 2024: fitted Q, K with columns of norm 1/√3: rms 1/√(3C) = 1/√192
    ("vit", "structured", "blocks.0.attn.qkv.weight", "q", 0.0721688, "1/√192"),
    ("vit", "structured", "blocks.3.attn.qkv.weight", "k", 0.0721688, "1/√192"),
]

OPTS = {"normal": dict(init_std=0.05), "mup": dict(base_width=16)}


def _build(model, init):
    cfg = GPT if model == "gpt" else VIT
    opts = OPTS.get(init, {})
    cfg, _ = I.prepare_config(cfg, init, (), I.InitOptions(**opts))
    return cfg, build_model(cfg, init=init, seed=0, dtype="float64", **opts)


_CACHE = {}


def _drawn_and_promised(model, init):
    if (model, init) not in _CACHE:
        cfg, m = _build(model, init)
        _, rows, _ = audit(GPT if model == "gpt" else VIT, init, seed=0,
                           opts=I.InitOptions(**OPTS.get(init, {})))
        _CACHE[(model, init)] = (m.params, {r.name: r.promised for r in rows})
    return _CACHE[(model, init)]


@pytest.mark.parametrize("model,init,name,part,std,how", NUMBERS,
                         ids=[f"{n[1]}-{n[2]}{'[' + n[3] + ']' if n[3] else ''}" for n in NUMBERS])
def test_std_is_the_papers_number(model, init, name, part, std, how):
    params, promised = _drawn_and_promised(model, init)
    w = params[name]
    if part is not None:
        C = w.shape[0]
        w = w[:, QKV[part] * C:(QKV[part] + 1) * C]
    measured = float(np.sqrt(np.mean(w * w)))
    if std == 0:
        assert measured == 0.0
    else:
        se = math.sqrt(1.0 / (2 * w.size))             # relative std error of a sample rms
        assert abs(measured / std - 1) < 5 * se + 1e-6, (measured, std, how)
    p = promised.get(f"{name}[{part}]", promised.get(name))
    assert p == pytest.approx(std, rel=2e-6, abs=1e-12), (p, std, how)


def test_the_table_covers_every_scheme():
    covered = {n[1] for n in NUMBERS} | {"mimetic"}       # mimetic: fitted, tested for structure
    assert covered == set(I.SCHEMES)


def test_config_numbers_of_the_schemes():
    """The block-form constants, by hand for L = 4: DeepNet α = (2L)^1/4 = 8^1/4; Admin
    ω = √((n+1)/ln(n+1) − 1) with n = 2L = 8: √(9/ln 9 − 1); muP at m = 4: attention 1/HS =
    1/16, logits × 1/4, hidden Adam LR × 1/4."""
    assert _build("gpt", "deepnet")[0].res_mult == pytest.approx(1.6817928, rel=1e-7)
    assert _build("gpt", "admin")[0].res_mult == pytest.approx(1.7595671, rel=1e-7)
    cfg, m = _build("gpt", "mup")
    assert cfg.attn_scale == 0.0625 and cfg.logit_scale == 0.25
    mult = I.lr_multipliers(cfg, "mup", m.params, I.InitOptions(base_width=16))
    assert mult["h.2.attn.c_attn.weight"] == 0.25 and mult["h.2.mlp.c_proj.weight"] == 0.25
    assert mult["wte.weight"] == 1.0 and mult["h.2.ln_1.weight"] == 1.0
    cfg, m = _build("gpt", "rezero")
    assert cfg.norm == "none" and cfg.rezero and m.params["h.1.alpha"].tolist() == [0.0]
    assert _build("gpt", "t_fixup")[0].norm == "none"
    assert _build("vit", "structured")[0].pool == "mean"
