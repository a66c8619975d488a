"""The one training step: loss and gradients, global-norm clipping, the optimizer's update.

    result = train_step(model, opt, x, y, lr, grad_clip)
    result.loss, result.grad_norm, result.updated

The training loop, the telemetry replay, the speed benchmark, the coordinate check
(analysis/coordcheck.py) and the docs figures script all call this function, so that what they
measure is what training does. In order:

    1. loss, grads = model.loss_and_grads(x, y)        (forward + backward; `trace` collects the
                                                         forward's activations for telemetry;
                                                         with `shards`, one thread per piece of
                                                         the batch: training/shards.py)
       masked gradients set to 0 (masks given)         (so clipping, AdamW's moments, its update
                                                         and weight decay never move a masked
                                                         weight: it stays exactly 0; masks.py)
    2. refuse the step if the loss diverged: not finite, or far above `initial_loss` (diverged)
    3. grad_norm = clip_grad_norm(grads, grad_clip)     (the norm BEFORE clipping; 0 = no clip)
    4. refuse the step if grad_norm is not finite       (scaling cannot repair such gradients)
    5. before = a copy of the parameters (keep_before, for telemetry's update ratios)
    6. opt.step(params, grads, lr)                      (in place)

A refused step leaves the parameters and the optimizer untouched; `reason` says why.
"""
import math
from typing import NamedTuple, Optional

from ..engine.optim import clip_grad_norm
from ..measure.telemetry import copy_params
from .masks import mask_grads


class StepResult(NamedTuple):
    loss: float                # the batch's loss before the update
    grad_norm: float           # global gradient norm before clipping (nan if not computed)
    lr: float                  # the learning rate given to the optimizer
    grads: dict                # {name: gradient}, clipped in place
    before: Optional[dict]     # the parameters before the update (keep_before), else None
    updated: bool              # False: the step was refused and nothing changed
    reason: Optional[str]      # why it was refused, e.g. "loss 3.7e+04"


def diverged(loss, initial_loss):
    """A loss that is not finite, or has blown far above its start: more than
    max(3 * initial, initial + 5): 12.5 nats for a GPT that starts at ln 65 = 4.17."""
    return not math.isfinite(loss) or loss > max(3.0 * initial_loss, initial_loss + 5.0)


def train_step(model, opt, x, y, lr, grad_clip, *, initial_loss=None, trace=None,
               keep_before=False, masks=None, shards=None):
    """One optimizer step on the batch (x, y); see the module docstring. initial_loss is the
    reference of the divergence rule (None: this step's own loss, so only a non-finite loss
    stops it); trace, a dict, receives the forward's activations; masks, {name: bool array},
    are the pruning masks of a sparse run (masked weights are already 0); shards, a
    shards.Shards, computes the gradient on its threads (None: in this thread, unsharded)."""
    if shards is None:
        loss, grads = model.loss_and_grads(x, y, trace=trace)
    else:
        loss, grads = shards.loss_and_grads(model, x, y, trace)
    if masks is not None:
        mask_grads(grads, masks)
    loss = float(loss)
    reference = loss if initial_loss is None else initial_loss
    if diverged(loss, reference):
        return StepResult(loss, math.nan, lr, grads, None, False, f"loss {loss:.4g}")
    grad_norm = clip_grad_norm(grads, grad_clip)
    if not math.isfinite(grad_norm):
        return StepResult(loss, grad_norm, lr, grads, None, False, "gradient norm is not finite")
    before = copy_params(model.params) if keep_before else None
    opt.step(model.params, grads, lr)
    return StepResult(loss, grad_norm, lr, grads, before, True, None)
