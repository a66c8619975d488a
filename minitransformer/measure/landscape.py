"""The loss landscape around a solution: straight lines and planes through parameter space.

    interpolation(model, theta0, theta1, alphas, batches)   # L((1 − α) θ0 + α θ1): init -> trained
    d = filter_normalized_direction(model.params, rng)      # Li et al. 2018
    slice_1d(model, d, alphas, batches)                     # L(θ + α d)
    slice_2d(model, d1, d2, alphas, betas, batches)         # L(θ + α d1 + β d2)

Interpolation from the initial to the final weights (Goodfellow, Vinyals & Saxe 2015): a loss
that falls monotonically along the line says the optimizer's path crossed no barrier; a bump says
it went around one.

Filter normalization (Li, Xu, Taylor, Studer & Goldstein 2018): a random Gaussian direction d is
rescaled filter by filter so that each filter of d has the norm of the same filter of the
weights, ‖d_f‖ = ‖θ_f‖. Then α = 1 moves every filter by its own size, whatever its scale, and
the pictures of differently scaled networks can be compared. Here a weight stored (in, out) has
one filter per output column (a unit's incoming weights); an embedding table (wte, wpe,
pos_embed, whose rows are looked up) has one filter per row. Biases, LayerNorm parameters,
ReZero gates and the cls token get a zero direction, as in the paper. The loss is the mean over
a few fixed, seeded batches, so every point of a picture sees the same data.
"""
import numpy as np

from .sharpness import flatten, assign
from ..engine.names import TABLES, role
from ..errors import ConfigError


def filter_normalized_direction(params, rng):
    """{name: direction} with ‖d_f‖ = ‖θ_f‖ per filter, zero for 1-D parameters (float64)."""
    d = {}
    for name, p in params.items():
        p = np.asarray(p, dtype=np.float64)
        if p.ndim < 2:
            d[name] = np.zeros_like(p)
            continue
        r = rng.standard_normal(p.shape)
        axis = 1 if role(name) in TABLES else 0        # rows of a table, columns of a weight
        pn = np.linalg.norm(p, axis=axis, keepdims=True)
        rn = np.linalg.norm(r, axis=axis, keepdims=True)
        d[name] = r * (pn / np.where(rn > 0, rn, 1.0))
    return d


def mean_loss(model, batches):
    return float(np.mean([model.loss(x, y) for x, y in batches]))


def _along(model, theta, vectors, coeffs, batches, tick=None):
    """L(theta + Σ c_i v_i) for one set of coefficients; restores nothing (callers do).
    tick: optional callable, called once the loss is known (progress)."""
    point = theta.copy()
    for c, v in zip(coeffs, vectors):
        point += c * v
    assign(model.params, point)
    loss = mean_loss(model, batches)
    if tick is not None:
        tick()
    return loss


def interpolation(model, theta0, theta1, alphas, batches, tick=None):
    """[L((1 − α) θ0 + α θ1) for α in alphas]; model.params is restored afterwards.
    theta0, theta1: {name: array} (e.g. the init model's params and the trained ones)."""
    saved = flatten(model.params)
    a, b = flatten(theta0), flatten(theta1)
    try:
        return [_along(model, a, [b - a], [alpha], batches, tick) for alpha in alphas]
    finally:
        assign(model.params, saved)


def slice_1d(model, direction, alphas, batches, tick=None):
    """[L(θ + α d) for α in alphas] around the current θ; model.params is restored."""
    theta, d = flatten(model.params), flatten(direction)
    try:
        return [_along(model, theta, [d], [alpha], batches, tick) for alpha in alphas]
    finally:
        assign(model.params, theta)


def slice_2d(model, d1, d2, alphas, betas, batches, tick=None):
    """losses[i][j] = L(θ + alphas[j] d1 + betas[i] d2) (rows: β, columns: α); restored after."""
    theta, v1, v2 = flatten(model.params), flatten(d1), flatten(d2)
    try:
        return [[_along(model, theta, [v1, v2], [a, b], batches, tick) for a in alphas]
                for b in betas]
    finally:
        assign(model.params, theta)


MODES = ("interp", "1d", "2d")


class _Ticks:
    """Counts loss evaluations for an optional progress(done, total, note) callback."""

    def __init__(self, progress, total):
        self.progress, self.total, self.done, self.note = progress, total, 0, ""

    def __call__(self):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, self.note)


def inspect_landscape(snap, modes=("interp", "1d"), points=21, span=1.0, n_batches=4,
                      batch_size=None, seed=0, progress=None):
    """What `python cli.py inspect landscape` reports for a Snapshot: for each mode, the
    coordinates and the mean training loss over n_batches seeded batches.
    interp: α from about −0.5 to 1.5 in steps of 1/(points − 1) (0 = init, 1 = the snapshot);
    1d: α in [−span, span] along one filter-normalized direction;
    2d: a points x points grid over [−span, span]² (each point costs n_batches forward passes).
    progress: optional progress(done, total, note) after each point."""
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigError(f"unknown landscape mode {', '.join(bad) or '(none)'}: choose from "
                         f"{', '.join(MODES)}")
    if isinstance(points, bool) or int(points) != points or points < 2:
        raise ConfigError(f"points must be an integer >= 2, got {points!r}")
    if not (span > 0 and np.isfinite(span)):
        raise ConfigError(f"span must be positive, got {span!r}")
    if isinstance(n_batches, bool) or int(n_batches) != n_batches or n_batches < 1:
        raise ConfigError(f"batches must be a positive integer, got {n_batches!r}")
    batches = [snap.batch(seed=[seed, i], batch_size=batch_size) for i in range(n_batches)]
    model = snap.model
    out = dict(snap.describe(), n_batches=n_batches, batch_size=int(len(batches[0][0])),
               batch_seed=seed, loss=mean_loss(model, batches))
    rng = np.random.default_rng(seed)
    h = (points - 1) // 2
    sizes = {"interp": points + 2 * h, "1d": points, "2d": points * points}
    tick = _Ticks(progress, sum(sizes[m] for m in set(modes)))
    if "interp" in modes:
        tick.note = "interpolation init -> trained"
        if snap.step == 0:
            raise ConfigError(f"{snap.source} is at step 0: interpolation needs a trained snapshot")
        # points between init and final, and half as many (h) beyond each end
        alphas = np.arange(-h, points + h) / (points - 1)
        init = snap.init_model(dtype=next(iter(model.params.values())).dtype)
        losses = interpolation(model, init.params, model.params, alphas, batches, tick)
        i0, i1 = int(np.argmin(np.abs(alphas))), int(np.argmin(np.abs(alphas - 1)))
        seg = losses[i0:i1 + 1]
        finite = bool(np.isfinite(seg).all())          # a NaN makes every comparison False
        out["interp"] = {"alpha": alphas.tolist(), "loss": losses,
                         "loss_init": losses[i0], "loss_final": losses[i1],
                         "max_between": float(max(seg)) if finite else float("nan"),
                         "monotonic": bool(all(b <= a + 1e-6 for a, b in zip(seg, seg[1:])))
                         if finite else None}
    alphas = np.linspace(-span, span, points)
    if "1d" in modes:
        d = filter_normalized_direction(model.params, rng)
        tick.note = "1-D slice"
        out["1d"] = {"alpha": alphas.tolist(), "loss": slice_1d(model, d, alphas, batches, tick)}
    if "2d" in modes:
        d1 = filter_normalized_direction(model.params, rng)
        d2 = filter_normalized_direction(model.params, rng)
        tick.note = "2-D slice"
        out["2d"] = {"alpha": alphas.tolist(), "beta": alphas.tolist(),
                     "loss": slice_2d(model, d1, d2, alphas, alphas, batches, tick)}
    return out
