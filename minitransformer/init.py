"""Initialization schemes: one function per scheme, its formula and paper in the docstring.

A scheme is `fn(cfg, shapes, rng, opts) -> dict[name, float64 array]` (opts: InitOptions). Draws are made in float64 from
the explicit generator and cast afterwards, so a seed gives the same model in float32 and float64.
`role(name)` says what a tensor is (qkv, proj, fc, ...), so a scheme reads as a table of rules.
"""
from dataclasses import dataclass

import numpy as np

SCHEMES = {}


@dataclass
class InitOptions:
    init_std: float = 0.02        # std of the "normal" scheme
    init_scale: float = 1.0       # multiplies every weight matrix after the scheme
    base_width: int = None        # muP: the width whose behaviour is copied (None = n_embd)
    impulse_k: int = 3            # structured: impulse window k x k (3 or 5)


def scheme(name, formula, reference):
    """Register an init function under `name` with a one-line formula and its reference."""
    def register(fn):
        SCHEMES[name] = dict(fn=fn, formula=formula, reference=reference)
        return fn
    return register


_ROLES = (  # (name suffix, role); the first match wins
    ("wte.weight", "embed"), ("wpe.weight", "pos"), ("pos_embed", "pos"), ("cls_token", "cls"),
    ("patch_embed.weight", "patch"), ("head.weight", "head"),
    ("attn.c_attn.weight", "qkv"), ("attn.qkv.weight", "qkv"),
    ("attn.c_proj.weight", "proj"), ("attn.proj.weight", "proj"),
    ("mlp.c_fc.weight", "fc"), ("mlp.fc1.weight", "fc"),
    ("mlp.c_proj.weight", "fc_proj"), ("mlp.fc2.weight", "fc_proj"),
    ("alpha", "alpha"),
)


def role(name):
    """What a parameter is, from its GPT-2 or timm name: embed, pos, cls, patch, head, qkv,
    proj (attention output), fc, fc_proj (MLP output), alpha, norm_weight, norm_bias or bias."""
    for suffix, r in _ROLES:
        if name.endswith(suffix):
            return r
    if "ln_" in name or "norm" in name:
        return "norm_weight" if name.endswith("weight") else "norm_bias"
    return "bias"


def _base(shapes):
    """Biases 0, LayerNorm weight 1 and bias 0, ReZero gates 1 (the identity gate)."""
    out = {}
    for name, shape in shapes.items():
        r = role(name)
        out[name] = np.ones(shape) if r in ("norm_weight", "alpha") else np.zeros(shape)
    return out


@scheme("gpt2", "N(0, 0.02^2); residual writers (attn/mlp c_proj) N(0, (0.02/sqrt(2L))^2)",
        "Radford et al. 2019, GPT-2; nanoGPT model.py")
def gpt2(cfg, shapes, rng, opts):
    out = _base(shapes)
    for name, shape in shapes.items():
        r = role(name)
        if r in ("proj", "fc_proj"):
            out[name] = rng.normal(0.0, 0.02 / np.sqrt(2 * cfg.n_layer), shape)
        elif r in ("embed", "pos", "qkv", "fc", "head", "patch", "cls"):
            out[name] = rng.normal(0.0, 0.02, shape)
    return out


def trunc_normal(rng, shape, std, a=-2.0, b=2.0):
    """timm's trunc_normal_: N(0, std^2) resampled outside the absolute bounds [a, b]."""
    x = rng.normal(0.0, std, shape)
    bad = (x < a) | (x > b)
    while bad.any():
        x[bad] = rng.normal(0.0, std, int(bad.sum()))
        bad = (x < a) | (x > b)
    return x


@scheme("vit", "linears trunc_normal(0.02); pos_embed 0.02; cls 1e-6; patch U(+-1/sqrt(P*P*Cin))",
        "Dosovitskiy et al. 2021, ViT; timm vision_transformer.py init_weights (default mode)")
def vit(cfg, shapes, rng, opts):
    out = _base(shapes)
    for name, shape in shapes.items():
        r = role(name)
        if r in ("qkv", "proj", "fc", "fc_proj", "head", "embed"):
            out[name] = trunc_normal(rng, shape, 0.02)
        elif r == "pos":
            out[name] = trunc_normal(rng, shape, 0.02)
        elif r == "cls":
            out[name] = rng.normal(0.0, 1e-6, shape)
        elif r == "patch":
            bound = 1.0 / np.sqrt(shape[0])            # PyTorch Conv2d default, fan_in = P*P*Cin
            out[name] = rng.uniform(-bound, bound, shape)
    return out


def prepare_config(cfg, init, explicit=()):
    """The config scheme `init` needs (e.g. norm="none" for t_fixup), keeping the fields named in
    `explicit` as the user set them. Returns (cfg, list of warning strings)."""
    return cfg, []


def lr_multipliers(cfg, init, params, opts=None):
    """Per-tensor learning-rate multipliers a scheme prescribes (muP), or None."""
    return None


def init_params(cfg, shapes, init, rng, dtype, opts=None):
    """Run scheme `init`, apply opts.init_scale to every weight matrix, and cast to dtype.
    Unknown names are a ValueError listing the choices."""
    if init not in SCHEMES:
        raise ValueError(f"unknown init {init!r}; choose one of: {', '.join(sorted(SCHEMES))}")
    opts = opts or InitOptions()
    params = SCHEMES[init]["fn"](cfg, shapes, rng, opts)
    if opts.init_scale != 1.0:
        for name in shapes:
            if role(name) in ("qkv", "proj", "fc", "fc_proj", "head", "patch"):
                params[name] = params[name] * opts.init_scale
    return {name: np.ascontiguousarray(params[name], dtype=dtype) for name in shapes}
