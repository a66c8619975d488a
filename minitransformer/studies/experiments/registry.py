"""The studies by name, in the order `python cli.py experiment list` shows them.

Each name maps to its module in this package (the module holds everything about the study:
claim, sizes, plan, rule; see common.py for the names a study module defines)."""
import importlib

from ...errors import ConfigError

STUDIES = {                 # name -> module in studies/experiments/
    "symmetry": "symmetry",
    "scale-lr": "scale_lr",
    "warmup": "warmup",
    "no-norm-depth": "no_norm_depth",
    "vit-small-data": "vit_small_data",
    "early-updates": "early_updates",
    "seeds": "seeds",
    "rmt": "rmt",
    "sharp-flat": "sharp_flat",
    "pretrained-init": "pretrained_init",
}


def get(name):
    """The study module called `name`; an unknown name is one line listing the known ones."""
    if name not in STUDIES:
        raise ConfigError(f"unknown experiment {name!r}; choose one of: {', '.join(STUDIES)}")
    return importlib.import_module(f"{__package__}.{STUDIES[name]}")


def listing():
    """[(name, claim, paper, {size: minutes})] of every study."""
    out = []
    for name in STUDIES:
        s = get(name)
        out.append((name, s.CLAIM, s.PAPER, {k: v["minutes"] for k, v in s.SIZES.items()}))
    return out
