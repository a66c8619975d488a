"""ViT: a Vision Transformer classifier on image patches.

    img (B, H, W, Cin) -> patches (B, N, P*P*Cin) -> @ patch_embed -> [cls token] + pos_embed
        -> L blocks -> norm (pre-LN only) -> pool (cls token or mean) -> head -> logits (B, K)

Patches are taken row-major over the image, each flattened (row, col, channel). Names follow timm.
Shapes: B batch, H/W image size, Cin image channels, P patch size, N patches, C channels,
K classes.
"""
import numpy as np

from .block import block_param_shapes, trunk_forward, trunk_backward
from .layers import (patch_embed_forward, patch_embed_backward, cls_forward, cls_backward,
                     add_pos_forward, add_pos_backward, layernorm_forward, layernorm_backward,
                     pool_forward, pool_backward, linear_forward, linear_backward,
                     cross_entropy_forward, cross_entropy_backward)
from .names import VIT_NAMES as NAMES, block_prefix, pair, weight_bias
from ..errors import ConfigError


def param_shapes(cfg):
    """Every parameter name (timm's, from names.VIT_NAMES) and its shape, in a fixed order:
    patch_embed (P*P*Cin, C), cls_token (cls pooling only), pos_embed (N', C), the blocks
    blocks.{i}.*, norm (pre-LN only), head (C, K)."""
    C, P, Cin = cfg.n_embd, cfg.patch_size, cfg.in_channels
    shapes = dict(zip(weight_bias(NAMES.patch), [(P * P * Cin, C), (C,)]))
    if cfg.pool == "cls":
        shapes[NAMES.cls] = (C,)
    shapes[NAMES.pos] = (cfg.n_tokens, C)
    for i in range(cfg.n_layer):
        shapes.update(block_param_shapes(block_prefix(NAMES, i), NAMES.block, cfg))
    if cfg.norm == "pre":
        shapes.update(zip(weight_bias(NAMES.final_norm), [(C,), (C,)]))
    shapes.update(zip(weight_bias(NAMES.head), [(C, cfg.n_classes), (cfg.n_classes,)]))
    return shapes


class ViT:
    """`params` is the live state: the arrays in it are the model (docs/design.md#public-api)."""

    def __init__(self, cfg, params):
        self.cfg = cfg
        self.params = params

    def _check_input(self, img):
        cfg = self.cfg
        img = np.asarray(img)
        want = (cfg.image_size, cfg.image_size, cfg.in_channels)
        if img.ndim != 4 or img.shape[1:] != want:
            raise ConfigError(f"ViT input must have shape (B, {want[0]}, {want[1]}, {want[2]}), "
                             f"got {img.shape}")
        dtype = self.params[NAMES.pos].dtype
        return img.astype(dtype, copy=False)

    def _forward(self, img, trace=None):
        p, cfg = self.params, self.cfg
        # (B, H, W, Cin) -> (B, N, C)
        x, c_patch = patch_embed_forward(img, *pair(p, NAMES.patch), cfg.patch_size)
        if cfg.pool == "cls":
            x, _ = cls_forward(x, p[NAMES.cls])  # (B, N, C) -> (B, N+1, C)
        x, _ = add_pos_forward(x, p[NAMES.pos])
        if trace is not None:
            trace["embed.out"] = x
        x, c_blocks = trunk_forward(x, p, NAMES, cfg, False, trace)
        c_norm = None
        if cfg.norm == "pre":
            x, c_norm = layernorm_forward(x, *pair(p, NAMES.final_norm), cfg.ln_eps)
        pooled, c_pool = pool_forward(x, cfg.pool)     # (B, N', C) -> (B, C)
        logits, c_head = linear_forward(pooled, *pair(p, NAMES.head))  # (B, C) -> (B, K)
        if cfg.logit_scale != 1.0:
            logits *= cfg.logit_scale
        return logits, (c_patch, c_blocks, c_norm, c_pool, c_head)

    def forward(self, img, trace=False):
        """img (B, H, W, Cin) -> logits (B, K); with trace=True, (logits, dict of intermediates)."""
        t = {} if trace else None
        logits, _ = self._forward(self._check_input(img), t)
        return (logits, t) if trace else logits

    def loss(self, img, labels):
        """Mean cross-entropy, forward only (evaluation, finite differences)."""
        logits, _ = self._forward(self._check_input(img))
        return cross_entropy_forward(logits, labels)[0]

    def loss_and_grads(self, img, labels, act_grads=False, trace=None, dloss=1.0):
        """Mean cross-entropy over the batch and its gradient for every parameter.
        With act_grads=True also returns the gradients w.r.t. every traced activation; a dict
        passed as trace receives the forward's intermediates (as forward(x, trace=True)).
        dloss is the gradient flowing into the loss: the gradients are those of dloss * loss
        (training/shards.py weights each shard's share of the batch this way)."""
        p, cfg = self.params, self.cfg
        logits, (c_patch, c_blocks, c_norm, c_pool, c_head) = self._forward(self._check_input(img),
                                                                            trace)
        loss, c_xent = cross_entropy_forward(logits, labels)
        grads = {}

        dlogits = cross_entropy_backward(dloss, c_xent)  # (B, K)
        if cfg.logit_scale != 1.0:
            dlogits = dlogits * cfg.logit_scale
        dpooled, *dhead = linear_backward(dlogits, c_head)
        grads.update(zip(weight_bias(NAMES.head), dhead))
        dx = pool_backward(dpooled, c_pool)            # (B, C) -> (B, N', C)
        if cfg.norm == "pre":
            dx, *dln = layernorm_backward(dx, c_norm)
            grads.update(zip(weight_bias(NAMES.final_norm), dln))
        dacts = {} if act_grads else None
        dx = trunk_backward(dx, c_blocks, p, NAMES, cfg, grads, dacts)
        if act_grads:
            dacts["embed.out"] = dx
        dx, grads[NAMES.pos] = add_pos_backward(dx, None)
        if cfg.pool == "cls":
            dx, grads[NAMES.cls] = cls_backward(dx, None)
        _, *dpatch = patch_embed_backward(dx, c_patch)
        grads.update(zip(weight_bias(NAMES.patch), dpatch))
        grads = {name: grads[name] for name in p}      # the order of params
        return (loss, grads, dacts) if act_grads else (loss, grads)
