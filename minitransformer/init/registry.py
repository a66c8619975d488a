"""The registry of initialization schemes and what every scheme shares.

A scheme is one self-contained entry, registered where it is written (schemes_*.py):

    @scheme("deepnet", formula, reference, needs=_deepnet_needs, lr_mult=None)
    def deepnet(cfg, shapes, rng, opts): ...      # -> {parameter name: Rule or QKV}

  fn        the rules of every tensor (rules.py), from the model config, the parameter shapes,
            the init generator (fitting schemes draw from it while planning) and InitOptions
  needs     (cfg, opts) -> {config field: value} the scheme needs in the model config (a block
            form, muP's scalings, mean pooling); prepare_config applies it
  lr_mult   (cfg, opts, name) -> the Adam learning-rate multiplier of that tensor (muP); None
            for schemes that keep one learning rate

Adding a scheme is one function with its decorator in one of the schemes_*.py modules. The
default scheme of each model kind is engine/kinds.py's default_init; the unknown-scheme message
is check_scheme's.

Words used (docs/design.md#parameter-names, docs/init.md):
  weight matrices  the tensors that multiply activations: attention qkv and proj, MLP fc and
                   fc_proj, ViT patch_embed and head. `--init-scale` multiplies exactly these.
  embedding tables wte, wpe (GPT), pos_embed, cls_token (ViT): looked up or added, never
                   multiplied by an activation. GPT's wte is also the (tied) LM head.
  vectors          biases 0, LayerNorm weight 1 / bias 0, ReZero gate alpha 1 (0 under rezero).
  fans             of the logical matrix, with (in, out) storage: fan_in = shape[0],
                   fan_out = shape[1], except the fused qkv (C, 3C) whose Q, K, V are each C x C.
  C, L, HS, NH     n_embd, n_layer, head size, heads.
"""
from dataclasses import dataclass, replace
import math
from typing import NamedTuple

import numpy as np

from ..engine.kinds import kind_of
from ..engine.names import MATRICES, TABLES, fans, role
from ..errors import ConfigError
from .rules import QKV, const, sample


@dataclass
class InitOptions:
    init_std: float = 0.02        # std of the "normal" scheme
    init_scale: float = 1.0       # multiplies every weight matrix after the scheme
    base_width: int = None        # muP: the width whose behaviour is copied (None = n_embd)
    impulse_k: int = 3            # structured: impulse window k x k (3 or 5)

    def __post_init__(self):
        if not (isinstance(self.init_std, (int, float)) and math.isfinite(self.init_std)
                and self.init_std > 0):
            raise ConfigError(f"init_std must be a positive finite number, got {self.init_std!r}")
        if not (isinstance(self.init_scale, (int, float)) and math.isfinite(self.init_scale)
                and self.init_scale >= 0):
            raise ConfigError(f"init_scale must be a finite number >= 0, got {self.init_scale!r}")
        if self.base_width is not None and (isinstance(self.base_width, bool) or
                                            not isinstance(self.base_width, int) or self.base_width <= 0):
            raise ConfigError(f"base_width must be a positive integer, got {self.base_width!r}")
        if (isinstance(self.impulse_k, bool) or not isinstance(self.impulse_k, int)
                or self.impulse_k < 1 or self.impulse_k % 2 == 0):
            raise ConfigError(f"impulse_k must be an odd positive integer (3 or 5 usually), got {self.impulse_k!r}")


class Scheme(NamedTuple):
    name: str
    fn: object             # (cfg, shapes, rng, opts) -> {parameter name: Rule or QKV}
    formula: str           # one line, printed by `python cli.py inits`
    reference: str         # the paper (and code) it follows
    needs: object          # (cfg, opts) -> {model config field: value}, or None
    lr_mult: object        # (cfg, opts, parameter name) -> Adam LR multiplier, or None


SCHEMES = {}               # name -> Scheme, in the order the schemes_*.py modules register them


def scheme(name, formula, reference, needs=None, lr_mult=None):
    """Register an init function under `name` with its formula, reference, the config it needs
    and its learning-rate rule."""
    def register(fn):
        SCHEMES[name] = Scheme(name, fn, formula, reference, needs, lr_mult)
        return fn
    return register


def check_scheme(init):
    """The one check of a scheme name: an unknown one is a ConfigError listing the choices."""
    if init not in SCHEMES:
        raise ConfigError(f"unknown init {init!r}; choose one of: {', '.join(sorted(SCHEMES))}")
    return init


# --------------------------------------------------------------------------------------------
# Building blocks the schemes share.

def on_images(cfg):
    """True for a model whose inputs are images (a grid of patches): the ViT."""
    return kind_of(cfg).inputs == "images"


def vectors(shapes, alpha=1.0):
    """Biases 0, LayerNorm weight 1 and bias 0, ReZero gates `alpha` (1 = the identity gate)."""
    rules = {}
    for name in shapes:
        r = role(name)
        if r == "norm_weight":
            rules[name] = const(1.0)
        elif r == "alpha":
            rules[name] = const(alpha)
        elif len(shapes[name]) == 1 and r not in TABLES:
            rules[name] = const(0.0)
    return rules


def default_tables(cfg, shapes):
    """The model's own embedding tables: those of its default scheme (GPT-2's N(0, 0.02^2) for
    wte and wpe; timm's trunc_normal(0.02) pos_embed and N(0, 1e-6^2) cls_token for ViT)."""
    rules = model_default(cfg, shapes, None, None)    # gpt2 and vit draw nothing while planning
    return {name: rule for name, rule in rules.items() if role(name) in TABLES}


def matrices(shapes, roles=MATRICES):
    """(name, shape, role, fan_in, fan_out) of every weight matrix with a role in `roles`."""
    for name, shape in shapes.items():
        r = role(name)
        if r in roles:
            yield (name, shape, r) + fans(name, shape)



def fan_scheme(cfg, shapes, rule_fn):
    """Vectors, the model's embedding tables, and rule_fn(fan_in, fan_out) for every weight matrix
    (orthogonal needs one draw per logical matrix, so qkv gets a QKV of three equal rules)."""
    rules = {**vectors(shapes), **default_tables(cfg, shapes)}
    for name, shape, r, fi, fo in matrices(shapes):
        rule = rule_fn(fi, fo)
        rules[name] = QKV(rule, rule, rule) if (r == "qkv" and rule.dist == "orthogonal") else rule
    return rules


def model_default(cfg, shapes, rng, opts):
    """The rules of the model's default scheme (engine.kinds: gpt2 for GPT, vit for ViT)."""
    return SCHEMES[kind_of(cfg).default_init].fn(cfg, shapes, rng, opts)


def as_qkv(rule):
    return rule if isinstance(rule, QKV) else QKV(rule, rule, rule)


def value_path_scaled(rule, r, factor, text):
    """T-Fixup's and DeepNet's pattern: the matrices on the value path of a block (V, the
    attention output, fc, fc_proj) scaled by `factor`; Q, K and the other matrices as `rule`."""
    if r == "qkv":
        return QKV(rule, rule, rule.times(factor, text))
    if r in ("proj", "fc", "fc_proj"):
        return rule.times(factor, text)
    return rule


# --------------------------------------------------------------------------------------------
# The config a scheme needs, its learning rates, and the draw.

def prepare_config(cfg, init, explicit=(), opts=None):
    """The config scheme `init` needs (e.g. norm="none" for t_fixup), keeping the fields named in
    `explicit` as the user set them. Returns (cfg, list of warning strings): one warning per
    explicit field that differs from what the scheme needs. opts: the InitOptions the model will
    be built with (mup reads base_width from it)."""
    needs = SCHEMES[check_scheme(init)].needs
    changes, warnings = {}, []
    for field, want in (needs(cfg, opts) if needs else {}).items():
        have = getattr(cfg, field)
        if field in explicit:
            if have != want:
                warnings.append(f"init {init} expects {field}={want!r}; keeping {field}={have!r} "
                                f"as you set it")
        else:
            changes[field] = want
    return (replace(cfg, **changes) if changes else cfg), warnings


def lr_multipliers(cfg, init, params, opts=None):
    """{name: Adam learning-rate multiplier} for every tensor of params as scheme `init`
    prescribes (muP), or None when the scheme keeps one learning rate."""
    rule = SCHEMES[check_scheme(init)].lr_mult
    if rule is None:
        return None
    return {name: rule(cfg, opts, name) for name in params}


def plan(cfg, shapes, init, rng, opts=None):
    """The rule of every tensor for scheme `init`, with opts.init_scale applied to the weight
    matrices. Fitting schemes (mimetic, structured) draw from rng here."""
    check_scheme(init)
    opts = opts or InitOptions()
    rules = SCHEMES[init].fn(cfg, shapes, rng, opts)
    missing = [name for name in shapes if name not in rules]
    assert not missing, f"scheme {init} has no rule for {missing}"
    if opts.init_scale != 1.0:
        for name in shapes:
            if role(name) in MATRICES:
                r = rules[name]
                scaled = [x.times(opts.init_scale, "init_scale") for x in as_qkv(r)]
                rules[name] = QKV(*scaled) if isinstance(r, QKV) else scaled[0]
    return {name: rules[name] for name in shapes}


def draw(rules, shapes, rng):
    """Sample every tensor from its rule, in the order of shapes (float64)."""
    return {name: sample(rules[name], shape, rng) for name, shape in shapes.items()}


def init_params(cfg, shapes, init, rng, dtype, opts=None):
    """Run scheme `init`, apply opts.init_scale to every weight matrix, and cast to dtype.
    An unknown name is a ConfigError listing the choices."""
    params = draw(plan(cfg, shapes, init, rng, opts), shapes, rng)
    return {name: np.ascontiguousarray(params[name], dtype=dtype) for name in shapes}
