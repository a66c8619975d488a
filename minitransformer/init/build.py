"""build_model: a model config and an init scheme make a model.

    from minitransformer import GPTConfig, build_model      # re-exported by the package
    model = build_model(GPTConfig(), init="gpt2", seed=0, dtype="float32")
"""
import numpy as np

from ..engine.gradcheck import check_built
from ..engine.kinds import kind_of
from ..errors import ConfigError
from . import InitOptions, init_params


def build_model(cfg, init=None, seed=0, dtype="float32", **init_options):
    """A GPT (for a GPTConfig) or ViT (for a ViTConfig) with parameters drawn by scheme `init`
    (default: the model kind's, "gpt2" / "vit") from np.random.default_rng(seed), in `dtype`.
    init_options are the fields of InitOptions (init_std, init_scale, base_width, impulse_k)."""
    kind = kind_of(cfg)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
    init = init or kind.default_init
    rng = np.random.default_rng(seed)
    opts = InitOptions(**init_options)
    params = init_params(cfg, kind.param_shapes(cfg), init, rng, dtype, opts)
    return kind.model(cfg, params)


def check_config(cfg, init=None, seed=0, n_samples=None, batch=3):
    """Build cfg in float64 with scheme `init`, redraw well-conditioned parameters around it
    (LayerNorm weights and gates near their init) and check every tensor's gradient."""
    return check_built(build_model(cfg, init=init, seed=seed, dtype="float64"), seed, n_samples,
                       batch)
