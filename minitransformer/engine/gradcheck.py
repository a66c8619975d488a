"""Gradient checks: analytic gradients against central finite differences, in float64.

    numerical df/dθ_i = (f(θ + ε e_i) − f(θ − ε e_i)) / 2ε
    relative error   = ‖g_analytic − g_numeric‖ / max(‖g_analytic‖ + ‖g_numeric‖, tiny)

Layers are checked through the scalar f = Σ out · G with a random upstream gradient G (so a
backward that ignores part of dout cannot pass); whole models through their mean cross-entropy.
Used by tests/ and by `python cli.py gradcheck`.
"""
from typing import NamedTuple

import numpy as np

from .config import GPTConfig, ViTConfig
from .kinds import kind_of
from ..errors import ConfigError

EPS = 1e-5          # float64: truncation O(ε²) and round-off O(1e-16/ε) both near 1e-10
LAYER_TOL = 1e-7
MODEL_TOL = 1e-6
# A gradient that is zero up to rounding (the key bias: adding b to every key shifts a query's scores by
# the same q.b, which softmax ignores) makes the relative error 0/0. Such a row passes when both
# gradients are below this absolute size, 100x the central difference's round-off and far below
# any real gradient of the checks (~1e-3 and up).
ZERO_TOL = 1e-9


class CheckRow(NamedTuple):
    name: str
    shape: tuple
    checked: int        # elements perturbed
    rel_error: float
    tol: float
    scale: float = 1.0  # max(‖analytic‖, ‖numeric‖) over the checked elements

    @property
    def zero(self):
        """Both gradients are zero to within finite-difference round-off."""
        return bool(self.scale < ZERO_TOL)

    @property
    def ok(self):
        """Checked at least one element (an empty check is no pass) and agrees."""
        return bool(self.checked > 0 and np.isfinite(self.rel_error)
                    and (self.rel_error < self.tol or self.zero))


def scale_of(a, b):
    return float(max(np.linalg.norm(np.ravel(a)), np.linalg.norm(np.ravel(b))))


def rel_error(a, b):
    a, b = np.ravel(a), np.ravel(b)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / max(denom, 1e-300))


def numerical_grad(f, x, eps=EPS, idx=None):
    """Central differences of scalar f() with respect to array x (perturbed in place and
    restored), at the flat positions idx (all when None). Returns the values at idx."""
    flat = x.reshape(-1)                               # a view: x must be contiguous
    assert np.shares_memory(flat, x), "numerical_grad needs a contiguous array"
    idx = np.arange(flat.size) if idx is None else idx
    out = np.empty(len(idx))
    for n, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        out[n] = (fp - fm) / (2 * eps)
    return out


def sample_positions(size, n_samples, rng):
    """All positions, or n_samples >= 1 of them drawn without replacement."""
    if n_samples is not None and (isinstance(n_samples, bool) or int(n_samples) != n_samples
                                  or n_samples < 1):
        raise ConfigError(f"samples per tensor must be a positive integer (a check of nothing "
                          f"passes nothing), got {n_samples!r}")
    if n_samples is None or n_samples >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, n_samples, replace=False))


def check_layer(forward, backward, inputs, seed=0, tol=LAYER_TOL, names=None):
    """Check one layer. `forward(*inputs) -> (out, cache)`, `backward(dout, cache) -> tuple of
    gradients, one per input` (None where an input has no gradient, e.g. integer indices).
    Every float input is checked at every element. Returns a list of CheckRow."""
    rng = np.random.default_rng(seed)
    out, cache = forward(*inputs)
    G = rng.standard_normal(np.shape(out))             # random upstream gradient
    grads = backward(G, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)

    def f():
        return float(np.sum(forward(*inputs)[0] * G))

    rows = []
    for k, (x, g) in enumerate(zip(inputs, grads)):
        if g is None or not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            continue
        num = numerical_grad(f, x)
        name = names[k] if names else f"input{k}"
        rows.append(CheckRow(name, x.shape, x.size, rel_error(np.ravel(g), num), tol,
                             scale_of(g, num)))
    return rows


def perturb_zeros(params, rng, scale=0.1):
    """Give every all-zero tensor (biases, gates, zero-initialized heads) random values, so
    that no term of the gradient is multiplied away by a zero during the check."""
    for p in params.values():
        if not np.any(p):
            p[...] = scale * rng.standard_normal(p.shape)


def well_conditioned(params, rng):
    """Redraw every tensor for a check: matrices N(0, 1/fan_in), vectors around their init
    (LayerNorm weights and gates near 1, biases near 0). At GPT-2's std 0.02 the gradients of
    Q and K are ~1e-7 of the loss, below what differences of a float64 loss resolve (round-off
    ~1e-16 * loss / ε), so a correct backward would read as a 1e-5 error."""
    for p in params.values():
        if p.ndim >= 2:
            p[...] = rng.standard_normal(p.shape) / np.sqrt(p.shape[0])
        else:
            p[...] = (1.0 if np.all(p == 1) else 0.0) + 0.2 * rng.standard_normal(p.shape)


def check_model(model, x, y, n_samples=None, seed=0, tol=MODEL_TOL):
    """Check every parameter tensor of a float64 model on the batch (x, y): at every element,
    or at n_samples random elements per tensor. Returns a list of CheckRow."""
    rng = np.random.default_rng(seed)
    _, grads = model.loss_and_grads(x, y)

    def f():
        return model.loss(x, y)

    rows = []
    for name, p in model.params.items():
        idx = sample_positions(p.size, n_samples, rng)
        num = numerical_grad(f, p, idx=idx)
        g = grads[name].reshape(-1)[idx]
        rows.append(CheckRow(name, p.shape, len(idx), rel_error(g, num), tol, scale_of(g, num)))
    return rows


def format_rows(rows, title=None):
    lines = [title] if title else []
    w = max([len(r.name) for r in rows] + [9])
    lines.append(f"{'parameter':<{w}}  {'shape':<14} {'checked':>7}  {'rel error':>9}  result")
    for r in rows:
        lines.append(f"{r.name:<{w}}  {str(r.shape):<14} {r.checked:>7}  {r.rel_error:9.2e}  "
                     f"{'ok (both zero)' if r.zero else 'ok' if r.ok else 'FAIL (tol %.0e)' % r.tol}")
    return "\n".join(lines)


def tiny_models():
    """The models `python cli.py gradcheck` checks: a tiny GPT and a tiny ViT (float64)."""
    return [
        ("GPT (pre-LN, tiny)", GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)),
        ("ViT (pre-LN, cls pooling, tiny)", ViTConfig(image_size=8, patch_size=4, in_channels=1,
                                                      n_classes=5, n_layer=2, n_head=2, n_embd=8)),
    ]


def check_built(model, seed=0, n_samples=None, batch=3):
    """Check every tensor of a float64 model (built by any init scheme) after redrawing its
    parameters well-conditioned (init.build.check_config builds and calls this)."""
    rng = np.random.default_rng(seed)
    well_conditioned(model.params, rng)
    x, y = random_batch(model.cfg, batch, rng)
    return check_model(model, x, y, n_samples=n_samples, seed=seed)


def random_batch(cfg, batch, rng):
    """Random inputs and targets for a model config: token ids (B, T) for a GPT, images
    (B, H, W, Cin) in [0, 1) for a ViT."""
    if kind_of(cfg).inputs == "tokens":
        x = rng.integers(0, cfg.vocab_size, (batch, cfg.block_size))
        y = rng.integers(0, cfg.vocab_size, (batch, cfg.block_size))
    else:
        x = rng.random((batch, cfg.image_size, cfg.image_size, cfg.in_channels))
        y = rng.integers(0, cfg.n_classes, batch)
    return x, y
