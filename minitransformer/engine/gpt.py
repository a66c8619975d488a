"""GPT: a GPT-2-style character language model.

    idx (B, T) -> wte[idx] + wpe[:T] -> L blocks -> ln_f (pre-LN only) -> @ wte.T -> logits (B, T, V)

Learned positions, the LM head tied to the token embedding and without a bias (as GPT-2).
Shapes: B batch, T tokens, C channels, V vocabulary, L layers.
"""
import numpy as np

from .block import block_param_shapes, trunk_forward, trunk_backward
from .layers import (embedding_forward, embedding_backward, layernorm_forward, layernorm_backward,
                     cross_entropy_forward, cross_entropy_backward)
from .names import GPT_NAMES as NAMES, block_prefix, pair, weight_bias
from ..errors import ConfigError


def param_shapes(cfg):
    """Every parameter name (Hugging Face GPT-2's, from names.GPT_NAMES) and its shape, in a fixed
    order: wte.weight (V, C), wpe.weight (block_size, C), the blocks h.{i}.*, ln_f (pre-LN only)."""
    C, V = cfg.n_embd, cfg.vocab_size
    shapes = {NAMES.embed: (V, C), NAMES.pos: (cfg.block_size, C)}
    for i in range(cfg.n_layer):
        shapes.update(block_param_shapes(block_prefix(NAMES, i), NAMES.block, cfg))
    if cfg.norm == "pre":
        shapes.update(zip(weight_bias(NAMES.final_norm), [(C,), (C,)]))
    return shapes


class GPT:
    """`params` is the live state: the arrays in it are the model (docs/design.md#public-api)."""

    def __init__(self, cfg, params):
        self.cfg = cfg
        self.params = params

    def _check_input(self, idx):
        idx = np.asarray(idx)
        if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ConfigError(f"GPT input must be an integer array of shape (B, T), got "
                             f"{idx.dtype} {idx.shape}")
        if idx.shape[1] > self.cfg.block_size:
            raise ConfigError(f"sequence length {idx.shape[1]} exceeds block_size "
                             f"{self.cfg.block_size}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.cfg.vocab_size):
            raise ConfigError(f"token ids must lie in [0, {self.cfg.vocab_size})")
        return idx

    def _forward(self, idx, trace=None):
        p, cfg = self.params, self.cfg
        x, c_emb = embedding_forward(idx, p[NAMES.embed], p[NAMES.pos])     # (B, T) -> (B, T, C)
        if trace is not None:
            trace["embed.out"] = x
        x, c_blocks = trunk_forward(x, p, NAMES, cfg, True, trace)
        c_lnf = None
        if cfg.norm == "pre":
            x, c_lnf = layernorm_forward(x, *pair(p, NAMES.final_norm), cfg.ln_eps)
        logits = x @ p[NAMES.embed].T             # (B, T, C) @ (C, V) -> (B, T, V), tied head
        if cfg.logit_scale != 1.0:
            logits *= cfg.logit_scale
        return logits, (c_emb, c_blocks, c_lnf, x)

    def forward(self, idx, trace=False):
        """idx (B, T) int -> logits (B, T, V); with trace=True, (logits, dict of intermediates)."""
        t = {} if trace else None
        logits, _ = self._forward(self._check_input(idx), t)
        return (logits, t) if trace else logits

    def loss(self, idx, targets):
        """Mean cross-entropy, forward only (evaluation, finite differences)."""
        logits, _ = self._forward(self._check_input(idx))
        return cross_entropy_forward(logits, targets)[0]

    def loss_and_grads(self, idx, targets, act_grads=False, trace=None, dloss=1.0):
        """Mean cross-entropy over all B*T positions and its gradient for every parameter.
        With act_grads=True also returns the gradients w.r.t. every traced activation; a dict
        passed as trace receives the forward's intermediates (as forward(x, trace=True)).
        dloss is the gradient flowing into the loss: the gradients are those of dloss * loss
        (training/shards.py weights each shard's share of the batch this way)."""
        p, cfg = self.params, self.cfg
        idx = self._check_input(idx)
        logits, (c_emb, c_blocks, c_lnf, xf) = self._forward(idx, trace)
        loss, c_xent = cross_entropy_forward(logits, targets)
        grads = {}

        dlogits = cross_entropy_backward(dloss, c_xent)  # (B, T, V)
        if cfg.logit_scale != 1.0:
            dlogits = dlogits * cfg.logit_scale
        # forward: logits = x @ wte.T  =>  dx = dlogits @ wte,  dwte_head = dlogits.T @ x
        B, T, V = dlogits.shape
        dwte_head = dlogits.reshape(B * T, V).T @ xf.reshape(B * T, -1)        # (V, C)
        dx = dlogits @ p[NAMES.embed]             # (B, T, V) @ (V, C) -> (B, T, C)
        if cfg.norm == "pre":
            dx, *dln = layernorm_backward(dx, c_lnf)
            grads.update(zip(weight_bias(NAMES.final_norm), dln))
        dacts = {} if act_grads else None
        dx = trunk_backward(dx, c_blocks, p, NAMES, cfg, grads, dacts)
        if act_grads:
            dacts["embed.out"] = dx
        dwte, grads[NAMES.pos] = embedding_backward(dx, c_emb)
        dwte += dwte_head                              # tied weight: embedding + LM-head gradients
        grads[NAMES.embed] = dwte
        grads = {name: grads[name] for name in p}      # the order of params
        return (loss, grads, dacts) if act_grads else (loss, grads)
