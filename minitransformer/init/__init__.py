"""Initialization schemes: one function per scheme, its formula and paper in the docstring.

A scheme is a table of rules. `fn(cfg, shapes, rng, opts) -> {name: Rule}` says, for every
parameter, the distribution it is drawn from and the standard deviation that distribution
promises; `draw` then samples every tensor from its rule. Because the promise and the draw come
from the same Rule they cannot drift apart, and `audit.py` can put each promised std next to the
measured one. The fused attention weight gets a `QKV(q, k, v)` of three rules when Q, K and V
differ (each one a logical C x C matrix).

Words used below (DESIGN.md sections 4 and 6):
  weight matrices  the tensors that multiply activations: attention qkv and proj, MLP fc and
                   fc_proj, ViT patch_embed and head. `--init-scale` multiplies exactly these.
  embedding tables wte, wpe (GPT), pos_embed, cls_token (ViT): looked up or added, never
                   multiplied by an activation. GPT's wte is also the (tied) LM head.
  vectors          biases 0, LayerNorm weight 1 / bias 0, ReZero gate alpha 1 (0 under rezero).
  fans             of the logical matrix, with (in, out) storage: fan_in = shape[0],
                   fan_out = shape[1], except the fused qkv (C, 3C) whose Q, K, V are each C x C.
  C, L, HS, NH     n_embd, n_layer, head size, heads.

Draws are made in float64 from the explicit generator and cast afterwards, so a seed gives the
same model in float32 and float64. Call `prepare_config` before building a model with a scheme
that needs a block form (t_fixup, rezero, deepnet, admin), μP's scalings (mup) or mean pooling
(structured); `lr_multipliers` gives μP's per-tensor Adam learning rates.
"""
from dataclasses import dataclass, replace
import math
from typing import NamedTuple

import numpy as np

from ..engine.kinds import kind_of
from ..engine.names import HIDDEN, MATRICES, TABLES, fans, role
from ..errors import ConfigError

SCHEMES = {}


@dataclass
class InitOptions:
    init_std: float = 0.02        # std of the "normal" scheme
    init_scale: float = 1.0       # multiplies every weight matrix after the scheme
    base_width: int = None        # muP: the width whose behaviour is copied (None = n_embd)
    impulse_k: int = 3            # structured: impulse window k x k (3 or 5)

    def __post_init__(self):
        if not (isinstance(self.init_std, (int, float)) and math.isfinite(self.init_std)
                and self.init_std > 0):
            raise ConfigError(f"init_std must be a positive finite number, got {self.init_std!r}")
        if not (isinstance(self.init_scale, (int, float)) and math.isfinite(self.init_scale)
                and self.init_scale >= 0):
            raise ConfigError(f"init_scale must be a finite number >= 0, got {self.init_scale!r}")
        if self.base_width is not None and (isinstance(self.base_width, bool) or
                                            not isinstance(self.base_width, int) or self.base_width <= 0):
            raise ConfigError(f"base_width must be a positive integer, got {self.base_width!r}")
        if (isinstance(self.impulse_k, bool) or not isinstance(self.impulse_k, int)
                or self.impulse_k < 1 or self.impulse_k % 2 == 0):
            raise ConfigError(f"impulse_k must be an odd positive integer (3 or 5 usually), got {self.impulse_k!r}")


def check_scheme(init):
    """The one check of a scheme name: an unknown one is a ConfigError listing the choices."""
    if init not in SCHEMES:
        raise ConfigError(f"unknown init {init!r}; choose one of: {', '.join(sorted(SCHEMES))}")
    return init


def scheme(name, formula, reference):
    """Register an init function under `name` with a one-line formula and its reference."""
    def register(fn):
        SCHEMES[name] = dict(fn=fn, formula=formula, reference=reference)
        return fn
    return register


# --------------------------------------------------------------------------------------------
# Rules: a distribution, the std it promises, and how it was computed.

class Rule(NamedTuple):
    """How one tensor (or one of Q, K, V) is initialized. The promise is std * scale: the
    root-mean-square of the entries about their mean (0, or `value` for "const")."""
    dist: str              # "normal" | "trunc_normal" | "trunc_normal_tf" | "uniform" | "orthogonal" | "const" | "fitted"
    std: float             # promised std before `scale`; None = no promise ("fitted")
    formula: str = ""      # the std as a formula, printed by the audit, e.g. "0.02/sqrt(2L)"
    value: float = 0.0     # const: the value; uniform: the bound; orthogonal: the gain; trunc_normal: the absolute cut
    scale: float = 1.0     # multiplies the drawn values (T-Fixup's and DeepNet's factors, --init-scale)
    array: object = None   # values fitted (or drawn early) by the scheme itself, used as they are

    @property
    def promised_std(self):
        if self.std is None:
            return None
        if self.dist == "trunc_normal" and self.std > 0:   # N(0, std^2) cut at +-value
            return self.std * _trunc_std_factor(self.value / self.std) * self.scale
        return self.std * self.scale

    @property
    def promised_mean(self):
        return self.value * self.scale if self.dist == "const" else 0.0

    def times(self, s, why):
        """This rule with its values multiplied by s; `why` (e.g. "0.67 L^-1/4") joins the formula."""
        return self._replace(scale=self.scale * s, formula=f"{self.formula} * {why}")


def _trunc_std_factor(a):
    """std of a standard normal truncated to [-a, a] (1.0 to 16 digits for a >= 9)."""
    phi = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    return math.sqrt(1.0 - 2.0 * a * phi / math.erf(a / math.sqrt(2.0)))


class QKV(NamedTuple):
    """Separate rules for the Q, K and V column blocks of the fused (C, 3C) attention weight."""
    q: Rule
    k: Rule
    v: Rule


def normal(std, formula):
    return Rule("normal", float(std), formula)


def trunc_normal_rule(std, formula, cut=2.0):
    """timm's trunc_normal_(std, a=-cut, b=cut): the cut is absolute (at std 0.02, 100 std)."""
    return Rule("trunc_normal", float(std), formula, cut)


def uniform(bound, formula):
    return Rule("uniform", bound / math.sqrt(3.0), formula, float(bound))   # std of U(-b, b) = b/sqrt(3)


def orthogonal_rule(gain, rows, cols):
    """A (semi-)orthogonal rows x cols matrix times gain: every entry's mean square is
    gain^2 / max(rows, cols), exactly."""
    return Rule("orthogonal", gain / math.sqrt(max(rows, cols)), "gain/sqrt(max(fan_in, fan_out))",
                float(gain))


def const(value):
    return Rule("const", 0.0, f"= {value:g}", float(value))


def fitted(array, formula, std=None):
    """Values the scheme computed itself (an SVD factor, an optimized map); std is the promise
    when the fit has one (e.g. a fixed column norm), else None."""
    return Rule("fitted", std, formula, array=np.asarray(array, dtype=np.float64))


def pre_drawn(rule, array):
    """A rule whose sample the scheme already drew (because it needed the values, e.g.
    pos_embed for the structured fit); the promise is still the rule's."""
    return rule._replace(array=np.asarray(array, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Sampling.

def trunc_normal(rng, shape, std, a=-2.0, b=2.0):
    """timm's trunc_normal_: N(0, std^2) resampled outside the absolute bounds [a, b]."""
    x = rng.normal(0.0, std, shape)
    bad = (x < a) | (x > b)
    while bad.any():
        x[bad] = rng.normal(0.0, std, int(bad.sum()))
        bad = (x < a) | (x > b)
    return x


TRUNC2_STD = 0.87962566103423978   # std of a standard normal truncated to [-2, 2] (_trunc_std_factor(2))


def trunc_normal_tf(rng, shape, std):
    """TensorFlow / JAX truncated normal (timm's lecun_normal_): a standard normal truncated to
    [-2, 2], divided by its own std 0.8796 and multiplied by std, so the std is exactly std."""
    return trunc_normal(rng, shape, 1.0) * (std / TRUNC2_STD)


def orthogonal(rng, rows, cols, gain=1.0):
    """Saxe et al. 2014 (as torch.nn.init.orthogonal_): QR of a Gaussian; multiplying Q's columns
    by the signs of diag(R) makes the result uniformly distributed over orthogonal matrices."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)                             # q: (max, min), orthonormal columns
    q *= np.sign(np.diag(r))
    return gain * (q if rows >= cols else q.T)         # (rows, cols)


def sample(rule, shape, rng):
    """Draw one tensor of `shape` from `rule` (float64)."""
    if isinstance(rule, QKV):                          # three C x C blocks side by side
        C = shape[1] // 3
        return np.concatenate([sample(r, (shape[0], C), rng) for r in rule], axis=1)
    if rule.array is not None:
        x = np.array(rule.array, dtype=np.float64)
        if x.shape != tuple(shape):
            raise ValueError(f"a fitted array has shape {x.shape}, the tensor {tuple(shape)}")
    elif rule.dist == "normal":
        x = rng.normal(0.0, rule.std, shape)
    elif rule.dist == "trunc_normal":
        x = trunc_normal(rng, shape, rule.std, -rule.value, rule.value)
    elif rule.dist == "trunc_normal_tf":
        x = trunc_normal_tf(rng, shape, rule.std)
    elif rule.dist == "uniform":
        x = rng.uniform(-rule.value, rule.value, shape)
    elif rule.dist == "orthogonal":
        x = orthogonal(rng, shape[0], shape[1], rule.value)
    elif rule.dist == "const":
        x = np.full(shape, rule.value)
    else:
        raise ValueError(f"rule {rule.dist!r} has no array to use")
    return x * rule.scale if rule.scale != 1.0 else x


# --------------------------------------------------------------------------------------------
# Building blocks the schemes share.

def _on_images(cfg):
    """True for a model whose inputs are images (a grid of patches): the ViT."""
    return kind_of(cfg).inputs == "images"


def _vectors(shapes, alpha=1.0):
    """Biases 0, LayerNorm weight 1 and bias 0, ReZero gates `alpha` (1 = the identity gate)."""
    rules = {}
    for name in shapes:
        r = role(name)
        if r == "norm_weight":
            rules[name] = const(1.0)
        elif r == "alpha":
            rules[name] = const(alpha)
        elif len(shapes[name]) == 1 and r not in TABLES:
            rules[name] = const(0.0)
    return rules


def _default_tables(cfg, shapes):
    """The model's own embedding tables: those of its default scheme (GPT-2's N(0, 0.02^2) for
    wte and wpe; timm's trunc_normal(0.02) pos_embed and N(0, 1e-6^2) cls_token for ViT)."""
    rules = _model_default(cfg, shapes, None, None)    # gpt2 and vit draw nothing while planning
    return {name: rule for name, rule in rules.items() if role(name) in TABLES}


def _matrices(shapes, roles=MATRICES):
    """(name, shape, role, fan_in, fan_out) of every weight matrix with a role in `roles`."""
    for name, shape in shapes.items():
        r = role(name)
        if r in roles:
            yield (name, shape, r) + fans(name, shape)


def xavier_uniform_rule(fan_in, fan_out):
    """U(+-sqrt(6/(fan_in+fan_out))): std sqrt(2/(fan_in+fan_out)). A gain is a .times(gain, ...)."""
    return uniform(math.sqrt(6.0 / (fan_in + fan_out)), "sqrt(2/(fan_in+fan_out))")


def xavier_normal_rule(fan_in, fan_out):
    return normal(math.sqrt(2.0 / (fan_in + fan_out)), "sqrt(2/(fan_in+fan_out))")


def _fan_scheme(cfg, shapes, rule_fn):
    """Vectors, the model's embedding tables, and rule_fn(fan_in, fan_out) for every weight matrix
    (orthogonal needs one draw per logical matrix, so qkv gets a QKV of three equal rules)."""
    rules = {**_vectors(shapes), **_default_tables(cfg, shapes)}
    for name, shape, r, fi, fo in _matrices(shapes):
        rule = rule_fn(fi, fo)
        rules[name] = QKV(rule, rule, rule) if (r == "qkv" and rule.dist == "orthogonal") else rule
    return rules


def _model_default(cfg, shapes, rng, opts):
    """The rules of the model's default scheme (engine.kinds: gpt2 for GPT, vit for ViT)."""
    return SCHEMES[kind_of(cfg).default_init]["fn"](cfg, shapes, rng, opts)


def _as_qkv(rule):
    return rule if isinstance(rule, QKV) else QKV(rule, rule, rule)


# --------------------------------------------------------------------------------------------
# The schemes.

@scheme("gpt2", "N(0, 0.02^2); residual writers (attn/mlp c_proj) N(0, (0.02/sqrt(2L))^2)",
        "Radford et al. 2019, GPT-2; nanoGPT model.py")
def gpt2(cfg, shapes, rng, opts):
    """Every weight matrix and embedding table N(0, 0.02^2); the two residual writers of each
    block (attention and MLP c_proj) N(0, (0.02/sqrt(2L))^2), so the residual stream's variance
    does not grow with depth; biases 0, LayerNorm 1 and 0. (OpenAI's own code used 0.01 for wpe.)"""
    rules = _vectors(shapes)
    for name in shapes:
        r = role(name)
        if r in ("proj", "fc_proj"):
            rules[name] = normal(0.02 / math.sqrt(2 * cfg.n_layer), "0.02/sqrt(2L)")
        elif r in MATRICES or r in TABLES:
            rules[name] = normal(0.02, "0.02")
    return rules


@scheme("vit", "linears trunc_normal(0.02); pos_embed 0.02; cls 1e-6; patch U(+-1/sqrt(P*P*Cin))",
        "Dosovitskiy et al. 2021, ViT; timm vision_transformer.py init_weights (default mode)")
def vit(cfg, shapes, rng, opts):
    """timm's default: every Linear weight trunc_normal(std 0.02, cut at +-2 absolute, so in effect
    untruncated), biases 0; pos_embed trunc_normal(0.02); cls_token N(0, 1e-6^2); the patch
    embedding (a Conv2d that timm leaves at PyTorch's default) U(+-1/sqrt(fan_in)),
    fan_in = P*P*Cin; the head is a Linear: std 0.02."""
    rules = _vectors(shapes)
    for name, shape in shapes.items():
        r = role(name)
        if r in ("qkv", "proj", "fc", "fc_proj", "head", "embed", "pos"):
            rules[name] = trunc_normal_rule(0.02, "0.02")
        elif r == "cls":
            rules[name] = normal(1e-6, "1e-6")
        elif r == "patch":
            rules[name] = uniform(1.0 / math.sqrt(shape[0]), "1/sqrt(3*fan_in)")
    return rules


@scheme("vit_jax", "xavier_uniform linears (Q, K, V apart); patch lecun_normal; head 0; mlp biases N(0, 1e-6^2)",
        "Dosovitskiy et al. 2021 (big_vision / Flax ViT); timm init_weights_vit_jax")
def vit_jax(cfg, shapes, rng, opts):
    """timm's "jax" mode, which copies the Flax ViT: every Linear weight Xavier-uniform
    U(+-sqrt(6/(fan_in+fan_out))) with Q, K, V as separate C x C matrices (as Flax's
    DenseGeneral; timm applies it to the fused 3C x C weight); MLP biases N(0, 1e-6^2), other
    biases 0; patch embedding LeCun normal, truncated at 2 std and rescaled, std 1/sqrt(fan_in);
    head weight 0 and bias 0; pos_embed trunc_normal(0.02), cls_token N(0, 1e-6^2).
    On a GPT there is no separate head (wte is tied), so wte keeps N(0, 0.02^2)."""
    rules = {**_vectors(shapes), **_default_tables(cfg, shapes)}
    for name, shape, r, fi, fo in _matrices(shapes):
        if r == "patch":
            rules[name] = Rule("trunc_normal_tf", 1.0 / math.sqrt(fi), "1/sqrt(fan_in)")
        elif r == "head":
            rules[name] = const(0.0)
        else:
            rules[name] = xavier_uniform_rule(fi, fo)
    for name in shapes:
        if role(name) == "bias" and ".mlp." in name:
            rules[name] = normal(1e-6, "1e-6")
    return rules


@scheme("normal", "every weight matrix and embedding table N(0, init_std^2) (--init-std, default 0.02)",
        "a baseline: GPT-2's init without its 1/sqrt(2L) residual scaling")
def normal_scheme(cfg, shapes, rng, opts):
    """Every weight matrix and every embedding table (wte, wpe, pos_embed, cls_token)
    N(0, s^2) with s = opts.init_std; vectors as usual."""
    rules = _vectors(shapes)
    for name in shapes:
        if role(name) in MATRICES or role(name) in TABLES:
            rules[name] = normal(opts.init_std, f"init_std={opts.init_std:g}")
    return rules


@scheme("xavier_uniform", "U(+-sqrt(6/(fan_in+fan_out))) for every weight matrix",
        "Glorot & Bengio 2010")
def xavier_uniform(cfg, shapes, rng, opts):
    """W ~ U(-a, a), a = sqrt(6/(fan_in+fan_out)), so Var W = 2/(fan_in+fan_out): the average of
    the forward (1/fan_in) and backward (1/fan_out) conditions. Embedding tables keep the model's
    own init (GPT-2 / timm)."""
    return _fan_scheme(cfg, shapes, xavier_uniform_rule)


@scheme("xavier_normal", "N(0, 2/(fan_in+fan_out)) for every weight matrix", "Glorot & Bengio 2010")
def xavier_normal(cfg, shapes, rng, opts):
    """W ~ N(0, 2/(fan_in+fan_out)). Embedding tables keep the model's own init."""
    return _fan_scheme(cfg, shapes, xavier_normal_rule)


@scheme("kaiming_normal", "N(0, 2/fan_in) for every weight matrix (gain sqrt(2), ReLU)",
        "He et al. 2015")
def kaiming_normal(cfg, shapes, rng, opts):
    """W ~ N(0, gain^2/fan_in) with gain sqrt(2) (ReLU; torch's kaiming_normal_ default), which
    keeps the forward variance of a ReLU network constant. Embedding tables keep the model's init."""
    return _fan_scheme(cfg, shapes, lambda fi, fo: normal(math.sqrt(2.0 / fi), "sqrt(2/fan_in)"))


@scheme("kaiming_uniform", "U(+-sqrt(6/fan_in)) for every weight matrix (gain sqrt(2), ReLU)",
        "He et al. 2015")
def kaiming_uniform(cfg, shapes, rng, opts):
    """W ~ U(-a, a), a = gain*sqrt(3/fan_in) = sqrt(6/fan_in): the same variance 2/fan_in as
    kaiming_normal. (PyTorch's nn.Linear default is kaiming_uniform with a=sqrt(5), i.e.
    U(+-1/sqrt(fan_in)); that is not this.) Embedding tables keep the model's init."""
    return _fan_scheme(cfg, shapes, lambda fi, fo: uniform(math.sqrt(6.0 / fi), "sqrt(2/fan_in)"))


@scheme("lecun", "N(0, 1/fan_in) for every weight matrix", "LeCun et al. 1998, Efficient BackProp")
def lecun(cfg, shapes, rng, opts):
    """W ~ N(0, 1/fan_in): unit forward gain for a linear (or tanh-like) network. Embedding
    tables keep the model's init."""
    return _fan_scheme(cfg, shapes, lambda fi, fo: normal(1.0 / math.sqrt(fi), "1/sqrt(fan_in)"))


@scheme("orthogonal", "(semi-)orthogonal weight matrices (QR of a Gaussian), gain 1",
        "Saxe et al. 2014")
def orthogonal_scheme(cfg, shapes, rng, opts):
    """Every weight matrix (each of Q, K, V on its own) is Q from the QR decomposition of a
    Gaussian matrix, columns signed by diag(R): orthonormal columns when fan_in >= fan_out,
    orthonormal rows otherwise. All its singular values are 1 (gain), so its entries have mean
    square 1/max(fan_in, fan_out). Embedding tables keep the model's init."""
    return _fan_scheme(cfg, shapes, lambda fi, fo: orthogonal_rule(1.0, fi, fo))


@scheme("small_embed", "embedding tables U(+-1e-4); weight matrices N(0, 2/(5C)) (SmallInit)",
        "Nguyen & Salazar 2019, Transformers without Tears (SmallInit); BlinkDL 2021, SmallInitEmb")
def small_embed(cfg, shapes, rng, opts):
    """Two small-init ideas together. SmallInit (Nguyen & Salazar 2019, their code): every
    attention and MLP matrix N(0, 2/(C + 4C)), the Xavier std of the (C, 4C) MLP matrix, smaller
    than Xavier's for the C x C attention matrices; here every weight matrix. SmallInitEmb
    (BlinkDL 2021, RWKV): embedding tables U(+-1e-4), so the first LayerNorm sees directions that
    a few updates can turn. Meant for LayerNorm models (pre-LN's ln_1 normalizes the tiny
    embedding before block 0); with norm="none" the network starts almost silent."""
    C = cfg.n_embd
    rules = _vectors(shapes)
    for name in shapes:
        r = role(name)
        if r in MATRICES:
            rules[name] = normal(math.sqrt(2.0 / (5 * C)), "sqrt(2/(5C))")
        elif r in TABLES:
            rules[name] = uniform(1e-4, "1e-4/sqrt(3)")
    return rules


@scheme("zeros", "every weight matrix 0 (embedding tables keep the model's init)",
        "the symmetry-breaking counterexample (e.g. Goodfellow et al. 2016, Deep Learning, 8.4)")
def zeros(cfg, shapes, rng, opts):
    """Every weight matrix 0. All hidden units of a layer then compute the same function and get
    the same gradient, so no amount of training separates them (here the gradients of every
    weight matrix are exactly 0: each one meets a zero matrix on its path). Embedding tables keep
    the model's own init so the input is not trivial: a GPT still learns a bigram model through
    its tied wte."""
    rules = {**_vectors(shapes), **_default_tables(cfg, shapes)}
    for name, *_ in _matrices(shapes):
        rules[name] = const(0.0)
    return rules


@scheme("t_fixup", "no LN; xavier_uniform, V/proj/fc/fc_proj * 0.67 L^-1/4; embeddings N(0, 1/C) * (9L)^-1/4",
        "Huang et al. 2020, Improving Transformer Optimization Through Better Initialization (T-Fixup)")
def t_fixup(cfg, shapes, rng, opts):
    """No LayerNorm (prepare_config sets norm="none") and no warmup needed. Start from
    Xavier-uniform weight matrices and N(0, 1/C) embeddings; in every block multiply V, the
    attention output proj, fc and fc_proj by 0.67 L^(-1/4) (the encoder rule: a GPT or ViT block
    has two sub-layers, like an encoder layer); multiply the embedding tables by (9L)^(-1/4).
    Q and K stay Xavier. For a ViT the patch embedding is the token embedding: Xavier-uniform
    * (9L)^(-1/4); the head stays Xavier-uniform."""
    L, C = cfg.n_layer, cfg.n_embd
    block, emb = 0.67 * L ** -0.25, (9 * L) ** -0.25
    rules = _vectors(shapes)
    for name, shape, r, fi, fo in _matrices(shapes):
        rule = _value_path_scaled(xavier_uniform_rule(fi, fo), r, block, "0.67 L^-1/4")
        rules[name] = rule.times(emb, "(9L)^-1/4") if r == "patch" else rule
    for name in shapes:
        if role(name) in TABLES:
            rules[name] = normal(1.0 / math.sqrt(C), "1/sqrt(C)").times(emb, "(9L)^-1/4")
    return rules


def _value_path_scaled(rule, r, factor, text):
    """T-Fixup's and DeepNet's pattern: the matrices on the value path of a block (V, the
    attention output, fc, fc_proj) scaled by `factor`; Q, K and the other matrices as `rule`."""
    if r == "qkv":
        return QKV(rule, rule, rule.times(factor, text))
    if r in ("proj", "fc", "fc_proj"):
        return rule.times(factor, text)
    return rule


@scheme("rezero", "no LN; alpha = 0 in every block (each block starts as the identity); xavier_uniform",
        "Bachlechner et al. 2020, ReZero is All You Need")
def rezero(cfg, shapes, rng, opts):
    """x <- x + alpha * branch(x) with alpha = 0 in every block (prepare_config sets norm="none"
    and rezero=True; one alpha per block, shared by both branches as in the official code), so
    every block is the identity at step 0 and the gradient reaches alpha first. Weight matrices
    Xavier-uniform (the official code keeps PyTorch's TransformerEncoderLayer defaults);
    embedding tables the model's own init."""
    if not cfg.rezero:
        raise ConfigError("init 'rezero' needs a model with rezero=True (call prepare_config first)")
    rules = _fan_scheme(cfg, shapes, xavier_uniform_rule)
    rules.update(_vectors(shapes, alpha=0.0))
    return rules


@scheme("deepnet", "post-LN x = LN(a*x + f(x)), a = (2L)^1/4; xavier_normal, V/proj/fc/fc_proj gain (8L)^-1/4",
        "Wang et al. 2022, DeepNet: Scaling Transformers to 1,000 Layers (DeepNorm)")
def deepnet(cfg, shapes, rng, opts):
    """DeepNorm for a decoder-only or encoder-only stack of L blocks: post-LN with the skip path
    scaled, x <- LN(alpha*x + branch(x)), alpha = (2L)^(1/4) (prepare_config sets norm="post" and
    res_mult); V, attention output proj, fc and fc_proj Xavier-normal with gain
    beta = (8L)^(-1/4); Q, K (and patch embedding, head) Xavier-normal with gain 1. Embedding
    tables the model's own init."""
    beta = (8 * cfg.n_layer) ** -0.25
    rules = {**_vectors(shapes), **_default_tables(cfg, shapes)}
    for name, shape, r, fi, fo in _matrices(shapes):
        rules[name] = _value_path_scaled(xavier_normal_rule(fi, fo), r, beta, "(8L)^-1/4")
    return rules


def deepnet_alpha(n_layer):
    """DeepNorm's skip multiplier for an L-block encoder-only or decoder-only model."""
    return (2 * n_layer) ** 0.25


def admin_omega(n_layer):
    """Admin's closed-form skip multiplier, admin_torch's default 'O(logn)' output change:
    omega = sqrt((n+1)/ln(n+1) - 1) with n = 2L residual branches."""
    n = 2 * n_layer
    return math.sqrt((n + 1) / math.log(n + 1) - 1)


@scheme("admin", "post-LN x = LN(w*x + f(x)), w = sqrt((n+1)/ln(n+1) - 1), n = 2L; xavier_uniform",
        "Liu et al. 2020, Understanding the Difficulty of Training Transformers (Admin)")
def admin(cfg, shapes, rng, opts):
    """Admin in closed form: post-LN with the skip path multiplied by
    omega = sqrt((n+1)/ln(n+1) - 1), n = 2L (prepare_config sets norm="post" and res_mult), so
    the output change at init grows as O(log n) instead of O(n). Weight matrices Xavier-uniform
    (fairseq's default, which the official code uses); embedding tables the model's own init."""
    return _fan_scheme(cfg, shapes, xavier_uniform_rule)


def mup_width_mult(cfg, opts):
    """muP's width multiplier n_embd / base_width (1 at the base width)."""
    base = (opts.base_width if opts and opts.base_width else None) or cfg.n_embd
    return cfg.n_embd / base


@scheme("mup", "hidden std * sqrt(base/C), Adam LR * base/C; W_q = 0; readout 0 and * base/C; attn 1/HS",
        "Yang et al. 2022, Tensor Programs V (muP); microsoft/mup")
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
    rules = _model_default(cfg, shapes, rng, opts)
    for name, shape, r, fi, fo in _matrices(shapes, HIDDEN + ("head",)):
        if r == "head":
            rules[name] = const(0.0)
            continue
        rule = rules[name].times(1.0 / math.sqrt(m), "1/sqrt(C/base)") if m != 1 else rules[name]
        if r == "qkv":
            rule = QKV(const(0.0), rule, rule)
        rules[name] = rule
    return rules


def _svd_factors(a):
    """a = (U S^1/2)(S^1/2 Vt): the two balanced factors of a square matrix."""
    u, s, vt = np.linalg.svd(a)
    root = np.sqrt(s)
    return u * root, root[:, None] * vt


@scheme("mimetic", "per head W_q W_k^T ~ 0.7 Z + 0.7 I (rank HS); per layer W_v W_o = 0.4 Z - 0.4 I; Z ~ N(0, 1/C)",
        "Trockman & Kolter 2023, Mimetic Initialization of Self-Attention Layers")
def mimetic(cfg, shapes, rng, opts):
    """Make attention at init look like attention after training: for each head h, factor the
    target A_h = 0.7 Z + 0.7 I (Z with i.i.d. N(0, 1/C) entries, a fresh Z per head) by SVD,
    A_h = U S Vt, and keep the top HS singular triples: W_q^h = U S^1/2, W_k^h = Vt^T S^1/2
    (columns h*HS:(h+1)*HS of Q and K), so W_q^h W_k^hT is the best rank-HS approximation of A_h
    and q.k favours a token attending to itself. For each layer W_v W_o = 0.4 Z - 0.4 I exactly
    (W_v = U S^1/2, W_o = S^1/2 Vt, full rank). Everything else: the model's default scheme."""
    C, NH, HS = cfg.n_embd, cfg.n_head, cfg.head_size
    rules = _model_default(cfg, shapes, rng, opts)
    for name, shape, r, fi, fo in _matrices(shapes, ("qkv",)):
        wq, wk = np.empty((C, C)), np.empty((C, C))
        for h in range(NH):
            a = 0.7 * rng.normal(0.0, 1.0 / math.sqrt(C), (C, C)) + 0.7 * np.eye(C)
            left, right = _svd_factors(a)
            wq[:, h * HS:(h + 1) * HS] = left[:, :HS]      # (C, HS)
            wk[:, h * HS:(h + 1) * HS] = right[:HS].T      # (C, HS)
        a = 0.4 * rng.normal(0.0, 1.0 / math.sqrt(C), (C, C)) - 0.4 * np.eye(C)
        wv, wo = _svd_factors(a)                           # x @ wv @ wo = x @ a
        rules[name] = QKV(fitted(wq, "per head: rank-HS factor of 0.7Z+0.7I"),
                          fitted(wk, "per head: rank-HS factor of 0.7Z+0.7I"),
                          fitted(wv, "factor of 0.4Z-0.4I"))
        proj = name.replace("attn.c_attn", "attn.c_proj").replace("attn.qkv", "attn.proj")
        rules[proj] = fitted(wo, "factor of 0.4Z-0.4I")
    return rules


def impulse_targets(grid, k, n_head, rng, n_prefix=0):
    """Random impulse offsets, one per head, in a k x k window: (offsets (NH, 2),
    targets (NH, n_prefix + grid*grid)), where targets[h, i] is the token that token i attends
    to (patch (r, c) -> patch (r+m, c+n)), or -1 where that falls outside the grid or i is a
    prefix (cls) token."""
    pick = rng.integers(0, k * k, n_head)
    offsets = np.stack([pick // k - k // 2, pick % k - k // 2], axis=1)   # (m, n) per head
    targets = np.full((n_head, n_prefix + grid * grid), -1)
    for h, (m, n) in enumerate(offsets):
        for r in range(grid):
            for c in range(grid):
                if 0 <= r + m < grid and 0 <= c + n < grid:
                    targets[h, n_prefix + r * grid + c] = n_prefix + (r + m) * grid + (c + n)
    return offsets, targets


def _layernorm_rows(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)


def fit_impulse(pseudo, targets, head_size, scale, rng, steps=400, lr=0.02):
    """Fit per-head Q, K (NH, C, HS) so that softmax(scale * (P Q)(P K)^T) puts each row's mass on
    its target token (cross-entropy on rows that have one), P = the pseudo-input (N, C).
    Adam on Q and K, projected after every step onto columns of norm 1/sqrt(3), the norm of the
    official code's U(+-1/sqrt(C)) start, so the entries keep rms 1/sqrt(3C). Returns (Q, K,
    mean probability on the targets)."""
    NH = targets.shape[0]
    N, C = pseudo.shape
    col_norm = 1.0 / math.sqrt(3.0)
    rows = targets >= 0                                # (NH, N) rows that have a target
    h_idx, i_idx = np.nonzero(rows)
    t_idx = targets[rows]
    count = max(int(rows.sum()), 1)

    def project(w):                                    # every column (over C) to norm 1/sqrt(3)
        return w * (col_norm / np.linalg.norm(w, axis=1, keepdims=True))

    params = [project(rng.uniform(-1, 1, (NH, C, head_size)) / math.sqrt(C)) for _ in range(2)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        q, k = params
        a, b = pseudo @ q, pseudo @ k                  # (N, C) @ (NH, C, HS) -> (NH, N, HS)
        s = scale * (a @ b.swapaxes(1, 2))             # (NH, N, N)
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        # cross-entropy: d loss / d s = (p - onehot(target)) / count, on rows with a target
        ds = np.where(rows[..., None], p, 0.0)
        ds[h_idx, i_idx, t_idx] -= 1.0
        ds *= scale / count
        # forward: s = a @ b.T  =>  da = ds @ b,  db = ds.T @ a;  a = P @ q  =>  dq = P.T @ da
        grads = [pseudo.T @ (ds @ b), pseudo.T @ (ds.swapaxes(1, 2) @ a)]
        for w, g, (m, v) in zip(params, grads, moments):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            w -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        params = [project(w) for w in params]
    q, k = params
    s = scale * ((pseudo @ q) @ (pseudo @ k).swapaxes(1, 2))
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return q, k, float(p[h_idx, i_idx, t_idx].mean()) if len(t_idx) else 0.0


@scheme("structured", "ViT, mean pooling: per head Q, K fitted so softmax over LN(pos_embed) is a k x k-window impulse",
        "Zheng et al. 2024, Structured Initialization for Attention in Vision Transformers")
def structured(cfg, shapes, rng, opts):
    """Make each head's attention map at init a convolution impulse: head h has a random offset
    (m, n) in a k x k window (k = opts.impulse_k) and patch (r, c) should attend to
    (r+m, c+n). With the pseudo-input P = LayerNorm(pos_embed) (what block 0 of a pre-LN ViT sees
    for a blank image), Q and K of each head are fitted so softmax(scale (P Q)(P K)^T) matches
    those maps (fit_impulse). As in the official code (init_once) the fit is done once and every
    layer gets the same Q and K. Everything else is timm's default (vit); prepare_config sets
    pool="mean"."""
    if not _on_images(cfg):
        raise ConfigError("init 'structured' is for ViT models: it needs a 2-D grid of patches")
    rules = vit(cfg, shapes, rng, opts)
    pos_rule = rules["pos_embed"]
    pos = sample(pos_rule, shapes["pos_embed"], rng)   # drawn now: the fit needs its values
    rules["pos_embed"] = pre_drawn(pos_rule, pos)
    grid, n_prefix = cfg.image_size // cfg.patch_size, cfg.n_tokens - cfg.n_patches
    offsets, targets = impulse_targets(grid, opts.impulse_k, cfg.n_head, rng, n_prefix)
    q, k, hit = fit_impulse(_layernorm_rows(pos, cfg.ln_eps), targets, cfg.head_size, cfg.scale, rng)
    C = cfg.n_embd
    wq = q.transpose(1, 0, 2).reshape(C, C)            # (NH, C, HS) -> (C, NH*HS): heads contiguous
    wk = k.transpose(1, 0, 2).reshape(C, C)
    why = (f"1/sqrt(3C) (impulse fit, mean p on target {hit:.2f}; offsets "
           + " ".join(f"({m:+d},{n:+d})" for m, n in offsets) + ")")
    for name, *_ in _matrices(shapes, ("qkv",)):
        rules[name] = QKV(fitted(wq, why, 1 / math.sqrt(3 * C)), fitted(wk, why, 1 / math.sqrt(3 * C)),
                          rules[name])
    return rules


# --------------------------------------------------------------------------------------------
# The config a scheme needs, its learning rates, and the draw.

def _needs(cfg, init, opts):
    """{field: value} the scheme needs in the model config."""
    if init == "t_fixup":
        return dict(norm="none")
    if init == "rezero":
        return dict(norm="none", rezero=True)
    if init == "deepnet":
        return dict(norm="post", res_mult=deepnet_alpha(cfg.n_layer))
    if init == "admin":
        return dict(norm="post", res_mult=admin_omega(cfg.n_layer))
    if init == "mup":
        return dict(attn_scale=1.0 / cfg.head_size, logit_scale=1.0 / mup_width_mult(cfg, opts))
    if init == "structured":
        if not _on_images(cfg):
            raise ConfigError("init 'structured' is for ViT models: it needs a 2-D grid of patches")
        return dict(pool="mean")
    return {}


def prepare_config(cfg, init, explicit=(), opts=None):
    """The config scheme `init` needs (e.g. norm="none" for t_fixup), keeping the fields named in
    `explicit` as the user set them. Returns (cfg, list of warning strings): one warning per
    explicit field that differs from what the scheme needs. opts: the InitOptions the model will
    be built with (mup reads base_width from it)."""
    check_scheme(init)
    changes, warnings = {}, []
    for field, want in _needs(cfg, init, opts).items():
        have = getattr(cfg, field)
        if field in explicit:
            if have != want:
                warnings.append(f"init {init} expects {field}={want!r}; keeping {field}={have!r} "
                                f"as you set it")
        else:
            changes[field] = want
    return (replace(cfg, **changes) if changes else cfg), warnings


def lr_multipliers(cfg, init, params, opts=None):
    """Per-tensor learning-rate multipliers a scheme prescribes (muP), or None.
    mup: every hidden matrix (qkv, attention proj, fc, fc_proj) base_width / n_embd, everything
    else 1 (embeddings, vectors, and the readout, whose 1/m sits in logit_scale)."""
    if init != "mup":
        return None
    m = mup_width_mult(cfg, opts)
    return {name: (1.0 / m if role(name) in HIDDEN else 1.0) for name in params}


def plan(cfg, shapes, init, rng, opts=None):
    """The rule of every tensor for scheme `init`, with opts.init_scale applied to the weight
    matrices. Fitting schemes (mimetic, structured) draw from rng here."""
    check_scheme(init)
    opts = opts or InitOptions()
    rules = SCHEMES[init]["fn"](cfg, shapes, rng, opts)
    missing = [name for name in shapes if name not in rules]
    assert not missing, f"scheme {init} has no rule for {missing}"
    if opts.init_scale != 1.0:
        for name in shapes:
            if role(name) in MATRICES:
                r = rules[name]
                scaled = [x.times(opts.init_scale, "init_scale") for x in _as_qkv(r)]
                rules[name] = QKV(*scaled) if isinstance(r, QKV) else scaled[0]
    return {name: rules[name] for name in shapes}


def draw(rules, shapes, rng):
    """Sample every tensor from its rule, in the order of shapes (float64)."""
    return {name: sample(rules[name], shape, rng) for name, shape in shapes.items()}


def init_params(cfg, shapes, init, rng, dtype, opts=None):
    """Run scheme `init`, apply opts.init_scale to every weight matrix, and cast to dtype.
    Unknown names are a ValueError listing the choices."""
    params = draw(plan(cfg, shapes, init, rng, opts), shapes, rng)
    return {name: np.ascontiguousarray(params[name], dtype=dtype) for name in shapes}
