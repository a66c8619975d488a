"""The two model kinds side by side: everything that differs between the GPT and the ViT.

    kind = kind_of(cfg)                  # from a GPTConfig / ViTConfig (or a model)
    kind = MODEL_KINDS["vit"]            # from TrainConfig.model's value
    kind.model(cfg, params), kind.param_shapes(cfg), kind.names, kind.default_init
    kind.on_text, kind.classifies       # what the data and the evaluation depend on

Code that must treat the two differently asks the kind (its fields below) instead of testing
strings or `hasattr(cfg, "patch_size")`, so adding a model kind is one entry here.
"""
from typing import NamedTuple

from . import gpt, vit
from .config import GPTConfig, ViTConfig
from .names import GPT_NAMES, VIT_NAMES
from ..errors import ConfigError


class ModelKind(NamedTuple):
    name: str              # "gpt" | "vit": the value of TrainConfig.model and of --model
    config: type           # GPTConfig | ViTConfig
    model: type            # GPT | ViT: model(cfg, params)
    param_shapes: object   # cfg -> {name: shape}, the parameters in their fixed order
    names: object          # names.ModelNames: every parameter name of this kind
    default_init: str      # the init scheme a model gets when none is named (init/ registers it)
    inputs: str            # "tokens": int ids (B, T) | "images": float (B, H, W, Cin)
    targets: str           # "tokens": the next id at every position (B, T) | "classes": (B,)

    @property
    def on_text(self):
        """True for a kind trained on a text file (token ids in, a vocabulary): the GPT."""
        return self.inputs == "tokens"

    @property
    def classifies(self):
        """True for a kind that predicts one class per input (accuracy is defined): the ViT."""
        return self.targets == "classes"


MODEL_KINDS = {
    "gpt": ModelKind("gpt", GPTConfig, gpt.GPT, gpt.param_shapes, GPT_NAMES, "gpt2",
                     "tokens", "tokens"),
    "vit": ModelKind("vit", ViTConfig, vit.ViT, vit.param_shapes, VIT_NAMES, "vit",
                     "images", "classes"),
}


def kind_named(name):
    """The ModelKind called `name`; an unknown name is a ConfigError listing the choices."""
    if name not in MODEL_KINDS:
        raise ConfigError(f"model must be {' or '.join(MODEL_KINDS)}, got {name!r}")
    return MODEL_KINDS[name]


def kind_of(obj):
    """The ModelKind of a model config or of a model (anything with .cfg)."""
    cfg = getattr(obj, "cfg", obj)
    for kind in MODEL_KINDS.values():
        if isinstance(cfg, kind.config):
            return kind
    raise TypeError(f"not a model config: {type(cfg).__name__} (need one of "
                    f"{', '.join(k.config.__name__ for k in MODEL_KINDS.values())})")

