"""Model configurations: plain dataclasses that check themselves.

Every impossible value raises ConfigError with one sentence naming the field, so the CLI can print
it as a single line. Defaults are nanoGPT's CPU Shakespeare model (GPT) and a small MNIST ViT.
"""
from dataclasses import dataclass, asdict, fields
import math

import numpy as np
from ..errors import ConfigError


NORMS = ("pre", "post", "none")
POOLS = ("cls", "mean")
GELUS = ("tanh", "erf")


# One clear ConfigError per bad value; train.py's TrainConfig uses the same checks.

def check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_nonnegative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")


def check_positive_float(name, value):
    check_number_in(name, value, 0.0, math.inf, "positive and finite", open_left=True)


def check_number_in(name, value, lo, hi, what, open_left=False, open_right=False):
    """ConfigError unless value is a finite number in [lo, hi] (or the open variants)."""
    try:
        v = float(value)
        ok = (not isinstance(value, (bool, str)) and math.isfinite(v)
              and (v > lo if open_left else v >= lo) and (v < hi if open_right else v <= hi))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def from_dict(cls, d):
    """cls(**d) for a config dataclass, with unknown keys one clear error (a damaged or newer
    config.json) rather than a TypeError."""
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**d)


def _check_trunk(cfg):
    """Checks shared by GPT and ViT: the transformer trunk."""
    for name in ("n_layer", "n_head", "n_embd"):
        check_positive_int(name, getattr(cfg, name))
    if cfg.n_embd % cfg.n_head != 0:
        raise ConfigError(f"n_embd ({cfg.n_embd}) must be divisible by n_head ({cfg.n_head})")
    check_choice("norm", cfg.norm, NORMS)
    check_choice("gelu", cfg.gelu, GELUS)
    if not isinstance(cfg.rezero, bool):
        raise ConfigError(f"rezero must be True or False, got {cfg.rezero!r}")
    check_positive_float("ln_eps", cfg.ln_eps)
    check_positive_float("res_mult", cfg.res_mult)
    check_positive_float("logit_scale", cfg.logit_scale)
    if cfg.attn_scale is not None:
        check_positive_float("attn_scale", cfg.attn_scale)


class _ConfigMixin:
    @property
    def head_size(self):
        return self.n_embd // self.n_head

    @property
    def scale(self):
        """Attention score multiplier: 1/sqrt(HS) unless attn_scale overrides it (muP uses 1/HS)."""
        return self.attn_scale if self.attn_scale is not None else 1.0 / math.sqrt(self.head_size)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return from_dict(cls, d)


@dataclass
class GPTConfig(_ConfigMixin):
    vocab_size: int = 65        # V: characters of Tiny Shakespeare
    block_size: int = 64        # T max: context length (nanoGPT CPU config)
    n_layer: int = 4            # L: transformer blocks
    n_head: int = 4             # NH: attention heads
    n_embd: int = 128           # C: channels of the residual stream
    norm: str = "pre"           # "pre" (GPT-2), "post" (original Transformer), "none" (T-Fixup, ReZero)
    rezero: bool = False        # multiply both branches of a block by a learned gate alpha
    gelu: str = "tanh"          # GPT-2 uses the tanh approximation
    ln_eps: float = 1e-5        # GPT-2's LayerNorm epsilon
    res_mult: float = 1.0       # skip multiplier: x <- res_mult * x + branch (DeepNet, Admin)
    attn_scale: float = None    # None = 1/sqrt(HS); muP sets 1/HS
    logit_scale: float = 1.0    # LM-head output multiplier (muP readout 1/width_mult)

    def __post_init__(self):
        check_positive_int("vocab_size", self.vocab_size)
        check_positive_int("block_size", self.block_size)
        _check_trunk(self)


@dataclass
class ViTConfig(_ConfigMixin):
    image_size: int = 28        # H = W: MNIST
    patch_size: int = 7         # P: 16 patches of 7x7 on MNIST
    in_channels: int = 1        # Cin
    n_classes: int = 10         # K
    n_layer: int = 4            # L
    n_head: int = 4             # NH
    n_embd: int = 64            # C
    norm: str = "pre"           # "pre" (timm), "post", "none"
    pool: str = "cls"           # "cls" token or "mean" over patch tokens
    rezero: bool = False
    gelu: str = "erf"           # timm uses exact GELU
    ln_eps: float = 1e-6        # timm's LayerNorm epsilon
    res_mult: float = 1.0
    attn_scale: float = None
    logit_scale: float = 1.0

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "n_classes"):
            check_positive_int(name, getattr(self, name))
        if self.image_size % self.patch_size != 0:
            raise ConfigError(f"patch_size ({self.patch_size}) must divide image_size "
                              f"({self.image_size})")
        check_choice("pool", self.pool, POOLS)
        _check_trunk(self)

    @property
    def n_patches(self):
        return (self.image_size // self.patch_size) ** 2

    @property
    def n_tokens(self):
        return self.n_patches + (1 if self.pool == "cls" else 0)
