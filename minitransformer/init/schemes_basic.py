"""The common schemes: each model's own default (GPT-2's, timm's), timm's JAX mode, and the
classic fan-based rules (normal, Xavier/Glorot, Kaiming/He, LeCun, orthogonal), SmallInit and the
all-zeros counterexample. None changes the config or the learning rates. Formulas: docs/init.md.
"""
import math

from ..engine.names import MATRICES, TABLES, block_slot, role
from .registry import default_tables, fan_scheme, matrices, scheme, vectors
from .rules import (Rule, const, normal, orthogonal_rule, trunc_normal_rule, uniform,
                    xavier_normal_rule, xavier_uniform_rule)


@scheme("gpt2", "N(0, 0.02^2); residual writers (attn/mlp c_proj) N(0, (0.02/sqrt(2L))^2)",
        "Radford et al. 2019, GPT-2; nanoGPT model.py")
def gpt2(cfg, shapes, rng, opts):
    """Every weight matrix and embedding table N(0, 0.02^2); the two residual writers of each
    block (attention and MLP c_proj) N(0, (0.02/sqrt(2L))^2), so the residual stream's variance
    does not grow with depth; biases 0, LayerNorm 1 and 0. (OpenAI's own code used 0.01 for wpe.)"""
    rules = vectors(shapes)
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
    rules = vectors(shapes)
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
    rules = {**vectors(shapes), **default_tables(cfg, shapes)}
    for name, shape, r, fi, fo in matrices(shapes):
        if r == "patch":
            rules[name] = Rule("trunc_normal_tf", 1.0 / math.sqrt(fi), "1/sqrt(fan_in)")
        elif r == "head":
            rules[name] = const(0.0)
        else:
            rules[name] = xavier_uniform_rule(fi, fo)
    for name in shapes:
        if role(name) == "bias" and block_slot(name) in ("fc", "fc_proj"):
            rules[name] = normal(1e-6, "1e-6")
    return rules


@scheme("normal", "every weight matrix and embedding table N(0, init_std^2) (--init-std, default 0.02)",
        "a baseline: GPT-2's init without its 1/sqrt(2L) residual scaling")
def normal_scheme(cfg, shapes, rng, opts):
    """Every weight matrix and every embedding table (wte, wpe, pos_embed, cls_token)
    N(0, s^2) with s = opts.init_std; vectors as usual."""
    rules = vectors(shapes)
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
    return fan_scheme(cfg, shapes, xavier_uniform_rule)


@scheme("xavier_normal", "N(0, 2/(fan_in+fan_out)) for every weight matrix", "Glorot & Bengio 2010")
def xavier_normal(cfg, shapes, rng, opts):
    """W ~ N(0, 2/(fan_in+fan_out)). Embedding tables keep the model's own init."""
    return fan_scheme(cfg, shapes, xavier_normal_rule)


@scheme("kaiming_normal", "N(0, 2/fan_in) for every weight matrix (gain sqrt(2), ReLU)",
        "He et al. 2015")
def kaiming_normal(cfg, shapes, rng, opts):
    """W ~ N(0, gain^2/fan_in) with gain sqrt(2) (ReLU; torch's kaiming_normal_ default), which
    keeps the forward variance of a ReLU network constant. Embedding tables keep the model's init."""
    return fan_scheme(cfg, shapes, lambda fi, fo: normal(math.sqrt(2.0 / fi), "sqrt(2/fan_in)"))


@scheme("kaiming_uniform", "U(+-sqrt(6/fan_in)) for every weight matrix (gain sqrt(2), ReLU)",
        "He et al. 2015")
def kaiming_uniform(cfg, shapes, rng, opts):
    """W ~ U(-a, a), a = gain*sqrt(3/fan_in) = sqrt(6/fan_in): the same variance 2/fan_in as
    kaiming_normal. (PyTorch's nn.Linear default is kaiming_uniform with a=sqrt(5), i.e.
    U(+-1/sqrt(fan_in)); that is not this.) Embedding tables keep the model's init."""
    return fan_scheme(cfg, shapes, lambda fi, fo: uniform(math.sqrt(6.0 / fi), "sqrt(2/fan_in)"))


@scheme("lecun", "N(0, 1/fan_in) for every weight matrix", "LeCun et al. 1998, Efficient BackProp")
def lecun(cfg, shapes, rng, opts):
    """W ~ N(0, 1/fan_in): unit forward gain for a linear (or tanh-like) network. Embedding
    tables keep the model's init."""
    return fan_scheme(cfg, shapes, lambda fi, fo: normal(1.0 / math.sqrt(fi), "1/sqrt(fan_in)"))


@scheme("orthogonal", "(semi-)orthogonal weight matrices (QR of a Gaussian), gain 1",
        "Saxe et al. 2014")
def orthogonal_scheme(cfg, shapes, rng, opts):
    """Every weight matrix (each of Q, K, V on its own) is Q from the QR decomposition of a
    Gaussian matrix, columns signed by diag(R): orthonormal columns when fan_in >= fan_out,
    orthonormal rows otherwise. All its singular values are 1 (gain), so its entries have mean
    square 1/max(fan_in, fan_out). Embedding tables keep the model's init."""
    return fan_scheme(cfg, shapes, lambda fi, fo: orthogonal_rule(1.0, fi, fo))


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
    rules = vectors(shapes)
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
    rules = {**vectors(shapes), **default_tables(cfg, shapes)}
    for name, *_ in matrices(shapes):
        rules[name] = const(0.0)
    return rules
