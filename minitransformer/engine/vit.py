"""ViT: a Vision Transformer classifier on image patches.

    img (B, H, W, Cin) -> patches (B, N, P*P*Cin) -> @ patch_embed -> [cls token] + pos_embed
        -> L blocks -> norm (pre-LN only) -> pool (cls token or mean) -> head -> logits (B, K)

Patches are taken row-major over the image, each flattened (row, col, channel). Names follow timm.
Shapes: B batch, H/W image size, Cin image channels, P patch size, N patches, C channels,
K classes.
"""
import numpy as np

from .block import VIT_NAMES, trunk_forward, trunk_backward
from .layers import (patch_embed_forward, patch_embed_backward, cls_forward, cls_backward,
                     add_pos_forward, add_pos_backward, layernorm_forward, layernorm_backward,
                     pool_forward, pool_backward, linear_forward, linear_backward,
                     cross_entropy_forward, cross_entropy_backward)
from ..errors import ConfigError


def param_shapes(cfg):
    """Every parameter name (timm's) and its shape, in a fixed order."""
    C, P, Cin = cfg.n_embd, cfg.patch_size, cfg.in_channels
    shapes = {"patch_embed.weight": (P * P * Cin, C), "patch_embed.bias": (C,)}
    if cfg.pool == "cls":
        shapes["cls_token"] = (C,)
    shapes["pos_embed"] = (cfg.n_tokens, C)
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        if cfg.norm != "none":
            shapes[b + "norm1.weight"], shapes[b + "norm1.bias"] = (C,), (C,)
        shapes[b + "attn.qkv.weight"], shapes[b + "attn.qkv.bias"] = (C, 3 * C), (3 * C,)
        shapes[b + "attn.proj.weight"], shapes[b + "attn.proj.bias"] = (C, C), (C,)
        if cfg.norm != "none":
            shapes[b + "norm2.weight"], shapes[b + "norm2.bias"] = (C,), (C,)
        shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (C, 4 * C), (4 * C,)
        shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (4 * C, C), (C,)
        if cfg.rezero:
            shapes[b + "alpha"] = (1,)
    if cfg.norm == "pre":
        shapes["norm.weight"], shapes["norm.bias"] = (C,), (C,)
    shapes["head.weight"], shapes["head.bias"] = (C, cfg.n_classes), (cfg.n_classes,)
    return shapes


class ViT:
    """`params` is the live state: the arrays in it are the model (see DESIGN.md section 3)."""

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
        dtype = self.params["pos_embed"].dtype
        return img.astype(dtype, copy=False)

    def _forward(self, img, trace=None):
        p, cfg = self.params, self.cfg
        x, c_patch = patch_embed_forward(img, p["patch_embed.weight"], p["patch_embed.bias"],
                                         cfg.patch_size)             # (B, H, W, Cin) -> (B, N, C)
        if cfg.pool == "cls":
            x, _ = cls_forward(x, p["cls_token"])      # (B, N, C) -> (B, N+1, C)
        x, _ = add_pos_forward(x, p["pos_embed"])
        if trace is not None:
            trace["embed.out"] = x
        x, c_blocks = trunk_forward(x, p, "blocks.", VIT_NAMES, cfg, False, trace)
        c_norm = None
        if cfg.norm == "pre":
            x, c_norm = layernorm_forward(x, p["norm.weight"], p["norm.bias"], cfg.ln_eps)
        pooled, c_pool = pool_forward(x, cfg.pool)     # (B, N', C) -> (B, C)
        logits, c_head = linear_forward(pooled, p["head.weight"], p["head.bias"])  # (B, C) -> (B, K)
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

    def loss_and_grads(self, img, labels, act_grads=False, trace=None):
        """Mean cross-entropy over the batch and its gradient for every parameter.
        With act_grads=True also returns the gradients w.r.t. every traced activation; a dict
        passed as trace receives the forward's intermediates (as forward(x, trace=True))."""
        p, cfg = self.params, self.cfg
        logits, (c_patch, c_blocks, c_norm, c_pool, c_head) = self._forward(self._check_input(img),
                                                                            trace)
        loss, c_xent = cross_entropy_forward(logits, labels)
        grads = {}

        dlogits = cross_entropy_backward(1.0, c_xent)  # (B, K)
        if cfg.logit_scale != 1.0:
            dlogits = dlogits * cfg.logit_scale
        dpooled, grads["head.weight"], grads["head.bias"] = linear_backward(dlogits, c_head)
        dx = pool_backward(dpooled, c_pool)            # (B, C) -> (B, N', C)
        if cfg.norm == "pre":
            dx, grads["norm.weight"], grads["norm.bias"] = layernorm_backward(dx, c_norm)
        dacts = {} if act_grads else None
        dx = trunk_backward(dx, c_blocks, p, "blocks.", VIT_NAMES, cfg, grads, dacts)
        if act_grads:
            dacts["embed.out"] = dx
        dx, grads["pos_embed"] = add_pos_backward(dx, None)
        if cfg.pool == "cls":
            dx, grads["cls_token"] = cls_backward(dx, None)
        _, grads["patch_embed.weight"], grads["patch_embed.bias"] = patch_embed_backward(dx, c_patch)
        grads = {name: grads[name] for name in p}      # the order of params
        return (loss, grads, dacts) if act_grads else (loss, grads)
