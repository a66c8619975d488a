"""Schemes for depth and width: T-Fixup, ReZero, DeepNet, Admin (deep models without warmup or
LayerNorm trouble) and muP (the same behaviour at every width). Each needs a config change
(`needs`), applied by registry.prepare_config; muP also has its own learning rates (`lr_mult`).
Formulas: docs/init.md.
"""
import math

from ..engine.names import HIDDEN, TABLES, role
from ..errors import ConfigError
from .registry import (default_tables, fan_scheme, matrices, model_default, scheme,
                       value_path_scaled, vectors)
from .rules import QKV, const, normal, xavier_normal_rule, xavier_uniform_rule


def _no_layernorm(cfg, opts):
    return dict(norm="none")


@scheme("t_fixup", "no LN; xavier_uniform, V/proj/fc/fc_proj * 0.67 L^-1/4; embeddings N(0, 1/C) * (9L)^-1/4",
        "Huang et al. 2020, Improving Transformer Optimization Through Better Initialization (T-Fixup)",
        needs=_no_layernorm)
def t_fixup(cfg, shapes, rng, opts):
    """No LayerNorm (prepare_config sets norm="none") and no warmup needed. Start from
    Xavier-uniform weight matrices and N(0, 1/C) embeddings; in every block multiply V, the
    attention output proj, fc and fc_proj by 0.67 L^(-1/4) (the encoder rule: a GPT or ViT block
    has two sub-layers, like an encoder layer); multiply the embedding tables by (9L)^(-1/4).
    Q and K stay Xavier. For a ViT the patch embedding is the token embedding: Xavier-uniform
    * (9L)^(-1/4); the head stays Xavier-uniform."""
    L, C = cfg.n_layer, cfg.n_embd
    block, emb = 0.67 * L ** -0.25, (9 * L) ** -0.25
    rules = vectors(shapes)
    for name, shape, r, fi, fo in matrices(shapes):
        rule = value_path_scaled(xavier_uniform_rule(fi, fo), r, block, "0.67 L^-1/4")
        rules[name] = rule.times(emb, "(9L)^-1/4") if r == "patch" else rule
    for name in shapes:
        if role(name) in TABLES:
            rules[name] = normal(1.0 / math.sqrt(C), "1/sqrt(C)").times(emb, "(9L)^-1/4")
    return rules



def _rezero_needs(cfg, opts):
    return dict(norm="none", rezero=True)


@scheme("rezero", "no LN; alpha = 0 in every block (each block starts as the identity); xavier_uniform",
        "Bachlechner et al. 2020, ReZero is All You Need", needs=_rezero_needs)
def rezero(cfg, shapes, rng, opts):
    """x <- x + alpha * branch(x) with alpha = 0 in every block (prepare_config sets norm="none"
    and rezero=True; one alpha per block, shared by both branches as in the official code), so
    every block is the identity at step 0 and the gradient reaches alpha first. Weight matrices
    Xavier-uniform (the official code keeps PyTorch's TransformerEncoderLayer defaults);
    embedding tables the model's own init."""
    if not cfg.rezero:
        raise ConfigError("init 'rezero' needs a model with rezero=True (call prepare_config first)")
    rules = fan_scheme(cfg, shapes, xavier_uniform_rule)
    rules.update(vectors(shapes, alpha=0.0))
    return rules


def deepnet_alpha(n_layer):
    """DeepNorm's skip multiplier for an L-block encoder-only or decoder-only model."""
    return (2 * n_layer) ** 0.25


def admin_omega(n_layer):
    """Admin's closed-form skip multiplier, admin_torch's default 'O(logn)' output change:
    omega = sqrt((n+1)/ln(n+1) - 1) with n = 2L residual branches."""
    n = 2 * n_layer
    return math.sqrt((n + 1) / math.log(n + 1) - 1)


def _deepnet_needs(cfg, opts):
    return dict(norm="post", res_mult=deepnet_alpha(cfg.n_layer))


def _admin_needs(cfg, opts):
    return dict(norm="post", res_mult=admin_omega(cfg.n_layer))


@scheme("deepnet", "post-LN x = LN(a*x + f(x)), a = (2L)^1/4; xavier_normal, V/proj/fc/fc_proj gain (8L)^-1/4",
        "Wang et al. 2022, DeepNet: Scaling Transformers to 1,000 Layers (DeepNorm)",
        needs=_deepnet_needs)
def deepnet(cfg, shapes, rng, opts):
    """DeepNorm for a decoder-only or encoder-only stack of L blocks: post-LN with the skip path
    scaled, x <- LN(alpha*x + branch(x)), alpha = (2L)^(1/4) (prepare_config sets norm="post" and
    res_mult); V, attention output proj, fc and fc_proj Xavier-normal with gain
    beta = (8L)^(-1/4); Q, K (and patch embedding, head) Xavier-normal with gain 1. Embedding
    tables the model's own init."""
    beta = (8 * cfg.n_layer) ** -0.25
    rules = {**vectors(shapes), **default_tables(cfg, shapes)}
    for name, shape, r, fi, fo in matrices(shapes):
        rules[name] = value_path_scaled(xavier_normal_rule(fi, fo), r, beta, "(8L)^-1/4")
    return rules




@scheme("admin", "post-LN x = LN(w*x + f(x)), w = sqrt((n+1)/ln(n+1) - 1), n = 2L; xavier_uniform",
        "Liu et al. 2020, Understanding the Difficulty of Training Transformers (Admin)",
        needs=_admin_needs)
def admin(cfg, shapes, rng, opts):
    """Admin in closed form: post-LN with the skip path multiplied by
    omega = sqrt((n+1)/ln(n+1) - 1), n = 2L (prepare_config sets norm="post" and res_mult), so
    the output change at init grows as O(log n) instead of O(n). Weight matrices Xavier-uniform
    (fairseq's default, which the official code uses); embedding tables the model's own init."""
    return fan_scheme(cfg, shapes, xavier_uniform_rule)


def mup_width_mult(cfg, opts):
    """muP's width multiplier n_embd / base_width (1 at the base width)."""
    base = (opts.base_width if opts and opts.base_width else None) or cfg.n_embd
    return cfg.n_embd / base


def _mup_needs(cfg, opts):
    """Attention scores * 1/HS instead of 1/sqrt(HS); the logits * 1/m."""
    return dict(attn_scale=1.0 / cfg.head_size, logit_scale=1.0 / mup_width_mult(cfg, opts))


def mup_lr_mult(cfg, opts, name):
    """Adam LR multiplier: base_width / n_embd for every hidden matrix (qkv, attention proj, fc,
    fc_proj), 1 for everything else (embeddings, vectors, and the readout, whose 1/m sits in
    logit_scale)."""
    m = mup_width_mult(cfg, opts)
    return 1.0 / m if role(name) in HIDDEN else 1.0


@scheme("mup", "hidden std * sqrt(base/C), Adam LR * base/C; W_q = 0; readout 0 and * base/C; attn 1/HS",
        "Yang et al. 2022, Tensor Programs V (muP); microsoft/mup", needs=_mup_needs,
        lr_mult=mup_lr_mult)
def mup(cfg, shapes, rng, opts):
    """Maximal-update parametrization, written as "the model's standard init at the base width,
    and these rules as the width C grows" (m = C / base_width, the width multiplier):
    hidden matrices (K, V, attention proj, fc, fc_proj) std * 1/sqrt(m), i.e. variance
    proportional to 1/fan_in, and Adam LR / m (lr_multipliers); W_q = 0 (so attention starts
    uniform); embedding tables, patch embedding and all vectors unchanged, LR unchanged;
    attention scores * 1/HS instead of 1/sqrt(HS) and the logits * 1/m (prepare_config sets
    attn_scale and logit_scale). The ViT head (readout) starts at 0. A GPT's readout is its tied
    wte, which must stay an embedding: it keeps N(0, 0.02^2) and relies on logit_scale, as
    mup's MuSharedReadout does."""
    m = mup_width_mult(cfg, opts)
    rules = model_default(cfg, shapes, rng, opts)
    for name, shape, r, fi, fo in matrices(shapes, HIDDEN + ("head",)):
        if r == "head":
            rules[name] = const(0.0)
            continue
        rule = rules[name].times(1.0 / math.sqrt(m), "1/sqrt(C/base)") if m != 1 else rules[name]
        if r == "qkv":
            rule = QKV(const(0.0), rule, rule)
        rules[name] = rule
    return rules
