"""Evaluation: the mean loss over fixed numbers of batches per split (GPT), or the exact loss
and accuracy over the whole validation set (ViT). Batches come from the run's own evaluation
stream, so evaluating more or less often never changes what the model trains on.

A GPT's validation loss is in nats per token; val_bpc is the same loss in bits per character of
the validation text, val_loss * (tokens / characters of the validation split) / ln 2, so runs
with different tokenizers (characters, BPE) compare honestly. For characters the ratio is 1.
"""
import math

import numpy as np

from ..engine.layers import cross_entropy_forward
from .build import get_batch


def evaluate(cfg, model, data, rng, pool=None):
    """train_loss and val_loss: means over eval_iters batches drawn from rng. For ViT, val_loss and
    val_acc are over the whole validation set instead (exact, and cheap at 2,000 images).
    pool, a thread pool (the run's shards.Shards.pool), evaluates the batches on its threads; the
    batches are drawn first and the results taken in order, so the numbers do not change."""
    out = {}
    run = map if pool is None else pool.map
    splits = ("train", "val") if cfg.kind.on_text else ("train",)
    for split in splits:
        batches = [get_batch(cfg, data, split, rng) for _ in range(cfg.eval_iters)]
        losses = [float(loss) for loss in run(lambda b: model.loss(*b), batches)]
        out[f"{split}_loss"] = float(np.mean(losses))     # nats per token
    if cfg.kind.classifies:
        out["val_loss"], out["val_acc"] = image_loss_and_accuracy(model, data.val_x, data.val_y,
                                                                  pool=pool)
    else:                                   # nats per token -> bits per character of the text
        out["val_bpc"] = out["val_loss"] * data.val_tokens_per_char / math.log(2)
    return out


def image_loss_and_accuracy(model, x, y, chunk=500, pool=None):
    """Mean cross-entropy and accuracy of a ViT over all of (x, y), in chunks of 500 images
    (on pool's threads when given; summed in order)."""
    def one(i):
        logits = model.forward(x[i:i + chunk])                  # (b, K)
        loss, _ = cross_entropy_forward(logits, y[i:i + chunk])
        return float(loss) * len(logits), int((logits.argmax(axis=1) == y[i:i + chunk]).sum())
    total_loss, correct = 0.0, 0
    for loss, right in (map if pool is None else pool.map)(one, range(0, len(x), chunk)):
        total_loss += loss
        correct += right
    return total_loss / len(x), correct / len(x)


def format_eval(ev):
    """'train loss 1.2345, val loss 1.3456' (accuracies as percentages)."""
    parts = [f"{k.replace('_', ' ')} {v:.2%}" if k.endswith("acc") else
             f"{k.replace('_', ' ')} {v:.4f}" for k, v in ev.items()]
    return ", ".join(parts)
