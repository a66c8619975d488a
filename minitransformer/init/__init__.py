"""Initialization schemes: every scheme a self-contained entry with its formula and paper.

    from minitransformer.init import prepare_config, init_params, lr_multipliers, SCHEMES

The modules, in reading order:
  rules.py              a Rule: the distribution of one tensor and the std it promises; sampling
  registry.py           the scheme registry (fn, needs, lr_mult), the building blocks schemes
                        share, prepare_config / lr_multipliers / plan / draw / init_params
  schemes_basic.py      gpt2, vit, vit_jax, normal, Xavier, Kaiming, LeCun, orthogonal,
                        small_embed, zeros
  schemes_deep.py       t_fixup, rezero, deepnet, admin, mup
  schemes_attention.py  mimetic, structured
  build.py              build_model (config + scheme -> model)
  audit.py              promised against measured std; the scheme listing

Draws are made in float64 from the explicit generator and cast afterwards, so a seed gives the
same model in float32 and float64. Call `prepare_config` before building a model with a scheme
that needs a block form (t_fixup, rezero, deepnet, admin), muP's scalings (mup) or mean pooling
(structured); `lr_multipliers` gives muP's per-tensor Adam learning rates.

This file imports the scheme modules (which registers them, in this order) and re-exports the
names callers use.
"""
from .registry import (InitOptions, SCHEMES, Scheme, check_scheme, draw, init_params,  # noqa: F401
                       lr_multipliers, plan, prepare_config, scheme)
from .rules import (QKV, TRUNC2_STD, Rule, const, fitted, normal, orthogonal,  # noqa: F401
                    orthogonal_rule, pre_drawn, sample, trunc_normal, trunc_normal_rule,
                    trunc_normal_tf, uniform, xavier_normal_rule, xavier_uniform_rule)
from . import schemes_basic, schemes_deep, schemes_attention  # noqa: F401  (registration)
from .schemes_deep import admin_omega, deepnet_alpha, mup_width_mult  # noqa: F401
from .schemes_attention import fit_impulse, impulse_targets  # noqa: F401
