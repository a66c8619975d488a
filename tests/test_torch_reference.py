"""GPT and ViT against an independent PyTorch float64 implementation written here from scratch
(nanoGPT's and timm's structure, PyTorch's own layer_norm / gelu / softmax / conv2d /
cross_entropy, autograd for the gradients). Nothing from minitransformer's layers is used on the
PyTorch side; only the parameter dict is shared (weights stored (in, out): y = x @ w + b).
PyTorch is not a project dependency: the module is skipped without it.
"""
import math

import numba
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from minitransformer import GPTConfig, ViTConfig, build_model  # noqa: E402
from minitransformer.engine.gradcheck import rel_error, well_conditioned       # noqa: E402

TOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def single_threads():
    nb, th = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    numba.set_num_threads(nb)
    torch.set_num_threads(th)


# ------------------------------------------------------------------------------ the reference

GPT_N = dict(ln_1="ln_1", qkv="attn.c_attn", proj="attn.c_proj", ln_2="ln_2", fc="mlp.c_fc",
             fc_proj="mlp.c_proj")
VIT_N = dict(ln_1="norm1", qkv="attn.qkv", proj="attn.proj", ln_2="norm2", fc="mlp.fc1",
             fc_proj="mlp.fc2")


def t_linear(P, name, x):
    return x @ P[name + ".weight"] + P[name + ".bias"]


def t_attention(P, name, x, cfg, causal):
    """nanoGPT's CausalSelfAttention (bidirectional for the ViT)."""
    B, T, C = x.shape
    NH = cfg.n_head
    HS = C // NH
    q, k, v = t_linear(P, name, x).split(C, dim=2)
    q = q.view(B, T, NH, HS).transpose(1, 2)                 # (B, NH, T, HS)
    k = k.view(B, T, NH, HS).transpose(1, 2)
    v = v.view(B, T, NH, HS).transpose(1, 2)
    scale = cfg.attn_scale if cfg.attn_scale is not None else 1.0 / math.sqrt(HS)
    att = (q @ k.transpose(-2, -1)) * scale
    if causal:
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
    return y


def t_block(P, prefix, names, cfg, x, causal):
    C = x.shape[-1]
    r = cfg.res_mult
    g = P[prefix + "alpha"][0] if cfg.rezero else 1.0
    approx = "tanh" if cfg.gelu == "tanh" else "none"

    def ln(z, key):
        n = prefix + names[key]
        return F.layer_norm(z, (C,), P[n + ".weight"], P[n + ".bias"], cfg.ln_eps)

    def attn(z):
        y = t_attention(P, prefix + names["qkv"], z, cfg, causal)
        return t_linear(P, prefix + names["proj"], y)

    def mlp(z):
        h = F.gelu(t_linear(P, prefix + names["fc"], z), approximate=approx)
        return t_linear(P, prefix + names["fc_proj"], h)

    if cfg.norm == "pre":
        x = r * x + g * attn(ln(x, "ln_1"))
        x = r * x + g * mlp(ln(x, "ln_2"))
    elif cfg.norm == "post":
        x = ln(r * x + g * attn(x), "ln_1")
        x = ln(r * x + g * mlp(x), "ln_2")
    else:
        x = r * x + g * attn(x)
        x = r * x + g * mlp(x)
    return x


def t_gpt(P, cfg, idx, targets):
    B, T = idx.shape
    idx = torch.as_tensor(idx)
    x = P["wte.weight"][idx] + P["wpe.weight"][:T]
    for i in range(cfg.n_layer):
        x = t_block(P, f"h.{i}.", GPT_N, cfg, x, causal=True)
    if cfg.norm == "pre":
        x = F.layer_norm(x, (cfg.n_embd,), P["ln_f.weight"], P["ln_f.bias"], cfg.ln_eps)
    logits = (x @ P["wte.weight"].T) * cfg.logit_scale      # tied LM head, no bias
    loss = F.cross_entropy(logits.reshape(B * T, -1), torch.as_tensor(targets).reshape(-1))
    return logits, loss


def t_vit(P, cfg, img, labels):
    """timm's VisionTransformer: a stride-P Conv2d patch embedding (our (P*P*Cin, C) weight,
    flattened (row, col, channel), is the conv kernel transposed), cls token, positions, blocks,
    final norm, pooling, head."""
    B = img.shape[0]
    Pz, Cin, C = cfg.patch_size, cfg.in_channels, cfg.n_embd
    wconv = P["patch_embed.weight"].T.reshape(C, Pz, Pz, Cin).permute(0, 3, 1, 2)   # (C, Cin, P, P)
    x = F.conv2d(torch.as_tensor(img).permute(0, 3, 1, 2), wconv, P["patch_embed.bias"],
                 stride=Pz)                                   # (B, C, H/P, W/P)
    x = x.flatten(2).transpose(1, 2)                         # (B, N, C), patches row-major
    if cfg.pool == "cls":
        x = torch.cat([P["cls_token"].expand(B, 1, C), x], dim=1)
    x = x + P["pos_embed"]
    for i in range(cfg.n_layer):
        x = t_block(P, f"blocks.{i}.", VIT_N, cfg, x, causal=False)
    if cfg.norm == "pre":
        x = F.layer_norm(x, (C,), P["norm.weight"], P["norm.bias"], cfg.ln_eps)
    x = x[:, 0] if cfg.pool == "cls" else x.mean(dim=1)
    logits = t_linear(P, "head", x) * cfg.logit_scale
    loss = F.cross_entropy(logits, torch.as_tensor(labels))
    return logits, loss


# ------------------------------------------------------------------------------ comparison

def compare(cfg, well=True, seed=0, B=3):
    model = build_model(cfg, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed + 100)
    if well:
        well_conditioned(model.params, rng)
    if isinstance(cfg, GPTConfig):
        T = cfg.block_size - 1                               # shorter than the context: wpe rows unused
        x = rng.integers(0, cfg.vocab_size, (B, T))
        y = rng.integers(0, cfg.vocab_size, (B, T))
        ref = t_gpt
    else:
        x = rng.random((B, cfg.image_size, cfg.image_size, cfg.in_channels))
        y = rng.integers(0, cfg.n_classes, B)
        ref = t_vit
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.params.items()}
    t_logits, t_loss = ref(P, cfg, x, y)
    t_loss.backward()

    logits = model.forward(x)
    loss, grads = model.loss_and_grads(x, y)
    assert rel_error(loss, t_loss.item()) < TOL, (loss, t_loss.item())
    assert rel_error(logits, t_logits.detach().numpy()) < TOL
    assert list(grads) == list(P)
    for k, p in P.items():
        tg = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)
        assert grads[k].shape == tg.shape, k
        err = rel_error(grads[k], tg)
        assert err < TOL, f"{k}: rel error {err:.2e}"
        assert np.linalg.norm(tg) > 0 or k == "wpe.weight", k   # something to compare
    return loss


FORMS = [(norm, rezero) for norm in ("pre", "post", "none") for rezero in (False, True)]


@pytest.mark.parametrize("norm,rezero", FORMS)
def test_gpt_matches_torch(norm, rezero):
    cfg = GPTConfig(vocab_size=13, block_size=9, n_layer=2, n_head=2, n_embd=16, norm=norm,
                    rezero=rezero)
    compare(cfg)


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("norm,rezero", FORMS)
def test_vit_matches_torch(norm, rezero, pool):
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=3, n_classes=5, n_layer=2, n_head=2,
                    n_embd=16, norm=norm, rezero=rezero, pool=pool)
    compare(cfg)


def test_gpt_matches_torch_at_default_init_and_scaled_variants():
    # default gpt2 init (tiny weights), and the skip / attention / logit multipliers
    compare(GPTConfig(vocab_size=17, block_size=12, n_layer=3, n_head=4, n_embd=16), well=False)
    compare(GPTConfig(vocab_size=13, block_size=9, n_layer=2, n_head=2, n_embd=16, norm="post",
                      rezero=True, res_mult=1.7, attn_scale=0.2, logit_scale=0.5))


def test_vit_matches_torch_at_default_init_and_scaled_variants():
    compare(ViTConfig(image_size=12, patch_size=4, in_channels=1, n_classes=10, n_layer=2,
                      n_head=4, n_embd=16), well=False)
    compare(ViTConfig(image_size=8, patch_size=2, in_channels=2, n_classes=4, n_layer=2,
                      n_head=2, n_embd=8, norm="pre", pool="mean", res_mult=0.9, attn_scale=0.3,
                      logit_scale=2.0, gelu="tanh", ln_eps=1e-5))


def test_reference_detects_a_difference():
    """The comparison is not vacuous: changing one weight on our side only is caught."""
    cfg = GPTConfig(vocab_size=13, block_size=9, n_layer=1, n_head=2, n_embd=16)
    model = build_model(cfg, seed=0, dtype="float64")
    well_conditioned(model.params, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 13, (2, 8)), rng.integers(0, 13, (2, 8))
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    _, t_loss = t_gpt(P, cfg, x, y)
    model.params["h.0.mlp.c_fc.weight"][0, 0] += 1e-3
    assert rel_error(model.loss(x, y), t_loss.item()) > TOL
