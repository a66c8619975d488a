"""Binary pruning masks by parameter name: which tensors may be pruned, magnitude and random
pruning, rewinding, and the mask file (mask.npz) of a run folder.

    masks = full_masks(model.params)                       # {name: bool array}, all True
    masks = magnitude_prune(trained_params, masks, 0.2, "global")   # drop 20% of the survivors
    start = rewind(rewind_params, masks)                   # step-K values times the mask
    save_masks(run_dir / "mask.npz", masks);  masks = load_masks(path, model.params)

Prunable tensors (PRUNABLE_ROLES, by engine/names.py's role of the name): the weight matrices
of attention (qkv, proj) and of the MLP (fc, fc_proj), and for the ViT the patch embedding and
the head. Never the embedding tables (wte, which is also the GPT's tied LM head; wpe,
pos_embed, cls_token), LayerNorm gains and biases, other biases, or ReZero gates: the papers
prune only the weight matrices, and the other tensors are a small fraction of the parameters.

A masked model computes L(w * m). Its gradient with respect to w is m * dL/d(w * m): the masked
entries' gradients are zero. Training keeps masked weights at exactly zero (apply_masks at the
start, mask_grads on every step's gradients before clipping), so w * m = w and the model needs no
multiplication in its forward; MaskedModel below computes L(w * m) literally, which is what the
gradient check of a masked model checks against.

Counts: pruning a fraction f of n surviving weights removes round(f * n) of them (halves up), the
smallest |w| first; ties are broken by position (a stable sort), so the count is always exact.
"""
import math
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError, NotFound
from ..engine.names import MATRICES, role
from .checkpoint import load_checkpoint
from .runfolder import save_arrays

PRUNABLE_ROLES = MATRICES          # engine/names.py: the matrices that multiply activations
STRATEGIES = ("global", "layerwise")
PRUNABLE_HELP = ("Prunable: the attention (qkv, proj) and MLP (fc, fc_proj) weight matrices, and "
                 "for the ViT the patch embedding and the head; never embedding tables (wte, "
                 "wpe, pos_embed, cls_token), LayerNorm, biases or ReZero gates.")


def prunable_names(params):
    """The names of the prunable tensors of a model, in params order."""
    return [name for name in params if role(name) in PRUNABLE_ROLES]


def full_masks(params):
    """{name: all-True bool array} for every prunable tensor: the dense network."""
    return {name: np.ones(params[name].shape, dtype=bool) for name in prunable_names(params)}


# ---------------------------------------------------------------------------------------------
# Applying masks (training): weights at the start, gradients on every step

def apply_masks(params, masks):
    """Zero the masked entries of the parameters, in place."""
    for name, m in masks.items():
        params[name] *= m


def mask_grads(grads, masks):
    """Zero the masked entries of the gradients, in place. With the weights already zero, AdamW's
    moments then stay 0 there, its update m / (sqrt(v) + eps) is 0, and weight decay multiplies 0:
    a masked weight never moves (tests/test_masks.py checks it after many steps)."""
    for name, m in masks.items():
        grads[name] *= m


def mask_optimizer_state(opt, masks):
    """Zero the optimizer's per-weight state (AdamW's m and v, SGD's momentum) at the masked
    entries: a run that starts from a saved state (a rewind point) must not carry momentum into
    weights the mask removed, or the first update would move them."""
    for state in (getattr(opt, "m", None), getattr(opt, "v", None), getattr(opt, "buf", None)):
        for name, m in masks.items():
            if state is not None:
                state[name] *= m


def sparsity(masks):
    """The fraction of prunable weights removed (0.0 for the dense network)."""
    total = sum(m.size for m in masks.values())
    kept = sum(int(np.count_nonzero(m)) for m in masks.values())
    return 1.0 - kept / total if total else 0.0


def tensor_sparsity(masks):
    """{name: fraction of that tensor's entries removed}."""
    return {name: 1.0 - np.count_nonzero(m) / m.size for name, m in masks.items()}


# ---------------------------------------------------------------------------------------------
# Pruning

def prune_count(fraction, remaining):
    """How many of `remaining` weights a fraction removes: round(fraction * remaining), halves
    up, computed so that 0.2 * 100 gives 20 (not 21 from floating-point 20.000000000000004)."""
    return int(math.floor(fraction * remaining + 0.5))


def check_fraction(fraction):
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ConfigError(f"prune fraction must be in (0, 1), got {fraction!r}")


def _smallest(values, count):
    """Positions of the `count` smallest entries of a 1-D array (ties: the earlier first)."""
    return np.argsort(values, kind="stable")[:count]


def magnitude_prune(params, masks, fraction, strategy="global"):
    """New masks that also remove `fraction` of the surviving prunable weights, the smallest |w|
    first: over all prunable tensors at once ("global", open_lth's sparse_global) or the same
    fraction of each tensor ("layerwise"). params: the trained weights; masks: the current ones
    (returned untouched)."""
    check_fraction(fraction)
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    new = {name: m.copy() for name, m in masks.items()}
    if strategy == "layerwise":
        for name, m in new.items():
            alive = np.flatnonzero(m)                          # flat positions still in
            mags = np.abs(params[name].reshape(-1)[alive])
            drop = alive[_smallest(mags, prune_count(fraction, alive.size))]
            m.reshape(-1)[drop] = False
        return new
    names = list(new)
    alive = [np.flatnonzero(new[n]) for n in names]
    mags = np.concatenate([np.abs(params[n].reshape(-1)[a]).astype(np.float64)
                           for n, a in zip(names, alive)])
    owner = np.concatenate([np.full(a.size, i) for i, a in enumerate(alive)])
    where = np.concatenate(alive)
    chosen = _smallest(mags, prune_count(fraction, mags.size))
    for i, n in enumerate(names):
        new[n].reshape(-1)[where[chosen[owner[chosen] == i]]] = False
    return new


def random_masks(masks, rng):
    """open_lth's randomly_prune control: for every tensor a random mask with exactly as many
    survivors as masks[name] (the same per-tensor sparsity), positions drawn from rng."""
    return {name: rng.permutation(m.reshape(-1)).reshape(m.shape) for name, m in masks.items()}


def rewind(rewind_params, masks):
    """{name: copy of rewind_params[name], times its mask if it has one}: the survivors back at
    their step-K values, the pruned weights at 0."""
    out = {}
    for name, p in rewind_params.items():
        out[name] = p * masks[name] if name in masks else p.copy()
    return out


# ---------------------------------------------------------------------------------------------
# The mask file

def save_masks(path, masks):
    """mask.npz: one bool array per masked parameter name, written atomically."""
    save_arrays(path, {name: np.asarray(m, dtype=bool) for name, m in masks.items()})


def check_masks(masks, params, source):
    """Every name a prunable parameter of this model, every shape its shape, every value 0 or 1;
    otherwise one ConfigError naming `source` and the key. Returns {name: bool array}."""
    allowed = set(prunable_names(params))
    out = {}
    for name, m in masks.items():
        if name not in params:
            raise ConfigError(f"{source}: {name!r} is not a parameter of this model")
        if name not in allowed:
            raise ConfigError(f"{source}: {name!r} may not be masked (only attention/MLP weight "
                              f"matrices, patch embedding and head)")
        m = np.asarray(m)
        if m.shape != params[name].shape:
            raise ConfigError(f"{source}: {name} has shape {m.shape}, the model's is "
                              f"{params[name].shape}")
        if m.dtype != bool and not np.all((m == 0) | (m == 1)):
            raise ConfigError(f"{source}: {name} holds values other than 0 and 1")
        out[name] = m.astype(bool)
    return out


def load_masks(path, params):
    """The masks of a mask.npz, checked against the model's params (check_masks)."""
    if not Path(path).is_file():
        raise NotFound(f"mask file not found: {path}")
    try:
        arrays = load_checkpoint(path)                 # the run folder's safe .npz reader
    except CheckpointError as e:
        raise DataError(f"mask file {path}: {str(e).splitlines()[0]}") from None
    return check_masks(arrays, params, f"mask file {path}")


MASK_PREFIX = "mask."     # a saved training state (start_from) may carry masks as mask.<name>


def run_masks(cfg, out, params, resume):
    """The masks of a run, or None for a dense one: on resume the run folder's own mask.npz
    (bit-exact: the masks never change during a run); else the file cfg.mask; else the mask.*
    arrays of the saved state cfg.start_from, if it has any."""
    own = Path(out) / "mask.npz"
    if resume and own.is_file():
        return load_masks(own, params)
    if cfg.mask is not None:
        return load_masks(cfg.mask, params)
    if cfg.start_from is not None:
        state = load_checkpoint(cfg.start_from)
        carried = {k[len(MASK_PREFIX):]: v for k, v in state.items() if k.startswith(MASK_PREFIX)}
        if carried:
            return check_masks(carried, params, f"start_from {cfg.start_from}")
    return None


# ---------------------------------------------------------------------------------------------
# A masked model: L(w * m), literally (for the gradient check)

class MaskedModel:
    """model with masks: loss(x, y) = L(w * m), loss_and_grads gives m * dL/d(w * m).
    `params` are the free weights w (model.params itself, live); the inner model computes with
    its own copies of the masked tensors, refreshed to w * m on every call."""

    def __init__(self, model, masks):
        self.params, self.masks, self.cfg = model.params, masks, model.cfg
        inner = {name: (p.copy() if name in masks else p) for name, p in model.params.items()}
        self._model = type(model)(model.cfg, inner)

    def _refresh(self):
        for name, m in self.masks.items():
            np.multiply(self.params[name], m, out=self._model.params[name])

    def loss(self, x, y):
        self._refresh()
        return self._model.loss(x, y)

    def loss_and_grads(self, x, y):
        self._refresh()
        loss, grads = self._model.loss_and_grads(x, y)
        mask_grads(grads, self.masks)                  # d(w * m)/dw = m
        return loss, grads
