"""minitransformer: a from-scratch NumPy + Numba GPT and ViT for studying initialization and warmup.

    from minitransformer import GPTConfig, ViTConfig, build_model
    model = build_model(GPTConfig(), init="gpt2", seed=0, dtype="float32")
    loss, grads = model.loss_and_grads(x, y)

This file is the public facade (it counts as part of the `init` layer: docs/design.md#layers).
"""
from .engine.config import GPTConfig, ViTConfig
from .engine.gpt import GPT
from .engine.vit import ViT
from .errors import ConfigError
from .init.build import build_model

__all__ = ["GPTConfig", "ViTConfig", "ConfigError", "build_model", "GPT", "ViT"]
__version__ = "0.1.0"
