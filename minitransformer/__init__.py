"""minitransformer: a from-scratch NumPy + Numba GPT and ViT for studying initialization and warmup.

    from minitransformer import GPTConfig, ViTConfig, build_model
    model = build_model(GPTConfig(), init="gpt2", seed=0, dtype="float32")
    loss, grads = model.loss_and_grads(x, y)
"""
import numpy as np

from .engine.config import GPTConfig, ViTConfig, ConfigError
from .engine import gpt, vit
from . import init as _init
from .engine.gpt import GPT
from .engine.vit import ViT
from .errors import ConfigError

__all__ = ["GPTConfig", "ViTConfig", "ConfigError", "build_model", "GPT", "ViT"]
__version__ = "0.1.0"

DEFAULT_INIT = {GPTConfig: "gpt2", ViTConfig: "vit"}


def build_model(cfg, init=None, seed=0, dtype="float32", **init_options):
    """A GPT (for a GPTConfig) or ViT (for a ViTConfig) with parameters drawn by scheme `init`
    (default "gpt2" / "vit") from np.random.default_rng(seed), in `dtype`. init_options are the
    fields of init.InitOptions (init_std, init_scale, base_width, impulse_k)."""
    if not isinstance(cfg, (GPTConfig, ViTConfig)):
        raise TypeError(f"build_model needs a GPTConfig or ViTConfig, got {type(cfg).__name__}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
    init = init or DEFAULT_INIT[type(cfg)]
    module, cls = (gpt, GPT) if isinstance(cfg, GPTConfig) else (vit, ViT)
    rng = np.random.default_rng(seed)
    opts = _init.InitOptions(**init_options)
    params = _init.init_params(cfg, module.param_shapes(cfg), init, rng, dtype, opts)
    return cls(cfg, params)
