"""Sharpness: the top eigenvalue of the Hessian of the training loss (docs/inspection.md).

    res = top_eigenvalue(model64, x, y, restarts=3)     # a float64 model
    res["lambda_max"], res["spread"], res["iterations"]

Power iteration on Hessian-vector products by central differences of the gradient:

    H v ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε,   ‖v‖ = 1     (error O(ε²) + rounding O(1e-16/ε))
    v ← Hv / ‖Hv‖,   λ = vᵀHv (the Rayleigh quotient), until the residual ‖Hv − λv‖ <= tol·|λ|

in float64, on one fixed batch. Power iteration finds the eigenvalue of largest magnitude; when
that one is negative, a second run on H − λI (whose eigenvalues are all >= 0) finds the most
positive one. Each restart starts from its own seeded random vector; the spread (max − min over
restarts) and the converged flags say how far to trust the number. Power iteration converges
like (λ2/λ1)^k, slowly when the top eigenvalues are close (often: 100+ products); method="lanczos"
(scipy's eigsh on the same products) usually needs a few dozen.

Why it matters (Cohen et al. 2021, Kalra & Barkeshli 2024): gradient descent with step size lr
is stable only where λ_max < 2/lr; training drives λ_max up to that edge ("edge of stability"),
and warmup lets it get there gradually instead of starting above it. For Adam the relevant
matrix is the preconditioned Hessian P⁻¹H, P = diag(√v̂ + ε)/lr_mult, with threshold
(2 + 2β1)/((1 − β1) lr) = 38/lr for β1 = 0.9 (Cohen et al. 2022); `preconditioner` computes
that variant from the optimizer's v.

For the training loop (optional, `sharpness_every`): call sharpness_record every N steps with
one batch drawn once from its own generator (never the training stream, which would change
the run), and append the record to sharpness.jsonl next to metrics.jsonl.
"""
import math

import numpy as np

from ..engine import optim
from ..errors import ConfigError


def flatten(params):
    """All parameters as one float64 vector, in params order."""
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in params.values()])


def assign(params, vec):
    """Write vec back into the live parameter arrays (in place), in params order."""
    i = 0
    for p in params.values():
        p[...] = vec[i:i + p.size].reshape(p.shape)
        i += p.size


def grad_vector(model, x, y):
    _, grads = model.loss_and_grads(x, y)
    return flatten(grads)


def hvp(model, x, y, theta, v, eps=1e-4):
    """H v by central differences of the gradient at θ = theta, along the unit vector v/‖v‖
    (so ε is a step of length ε whatever ‖v‖ is); model.params is restored to theta."""
    nv = float(np.linalg.norm(v))
    if nv == 0:
        return np.zeros_like(theta)
    u = v / nv
    params = model.params
    assign(params, theta + eps * u)
    gp = grad_vector(model, x, y)
    assign(params, theta - eps * u)
    gm = grad_vector(model, x, y)
    assign(params, theta)
    return (gp - gm) * (nv / (2 * eps))


def _power(matvec, n, rng, iters, tol, shift=0.0):
    """Power iteration on A = H − shift·I: (λ of H, iterations, converged). Converged means the
    residual ‖Hv − λv‖ <= tol·|λ|, λ = vᵀHv (the Rayleigh quotient, whose own error is then
    about residual²/gap, far smaller)."""
    v = rng.standard_normal(n)
    v /= np.linalg.norm(v)
    lam, it = 0.0, 0
    for it in range(1, iters + 1):
        hv = matvec(v)
        lam = float(v @ hv)
        if not math.isfinite(lam):
            return lam, it, False
        if np.linalg.norm(hv - lam * v) <= tol * abs(lam):
            return lam, it, True
        w = hv - shift * v
        norm = np.linalg.norm(w)
        if norm == 0:
            return lam, it, False
        v = w / norm
    return lam, it, False


def _lanczos(matvec, n, rng, iters, tol):
    """The most positive eigenvalue by Lanczos (scipy's eigsh, which="LA"): (λ, matvecs, ok)."""
    from scipy.sparse.linalg import LinearOperator, eigsh, ArpackNoConvergence
    count = [0]

    def mv(v):
        count[0] += 1
        return matvec(np.asarray(v, dtype=np.float64).reshape(-1))

    op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    try:
        lam = eigsh(op, k=1, which="LA", v0=rng.standard_normal(n), maxiter=iters, tol=tol,
                    return_eigenvectors=False)
        return float(lam[0]), count[0], True
    except ArpackNoConvergence as e:
        vals = e.eigenvalues
        return (float(vals.max()) if len(vals) else math.nan), count[0], False


class _Products:
    """v -> H v (or D^½ H D^½ v with the preconditioner's square root s), counting the products
    for an optional progress(done, total, note) callback."""

    def __init__(self, model, x, y, theta, eps, s=None, progress=None, total=1):
        self.model, self.x, self.y, self.theta, self.eps, self.s = model, x, y, theta, eps, s
        self.progress, self.total, self.done, self.note = progress, total, 0, ""

    def __call__(self, v):
        if self.s is None:
            hv = hvp(self.model, self.x, self.y, self.theta, v, self.eps)
        else:
            hv = self.s * hvp(self.model, self.x, self.y, self.theta, self.s * v, self.eps)
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, self.note)
        return hv


def top_eigenvalue(model, x, y, iters=100, restarts=3, tol=1e-2, eps=1e-4, seed=0,
                   preconditioner=None, method="power", progress=None):
    """Top (most positive) Hessian eigenvalue of model.loss(x, y) at model.params, which must be
    float64 (use Snapshot.model_as("float64")). preconditioner: optional flat vector d; then the
    eigenvalue is that of D^½ H D^½ with D = diag(d), the same as that of D·H (for Adam,
    d = lr_mult/(√v̂ + ε)). method "power" (the module docstring) or "lanczos" (scipy's eigsh:
    far fewer products when the top eigenvalues are close). Returns a dict: lambda_max,
    restarts (one λ each), spread, iterations (Hessian-vector products per restart),
    converged, eps, tol, n_params, method. progress: optional progress(done, total, note)
    after each Hessian-vector product (total: the most products the restarts may take)."""
    if any(p.dtype != np.float64 for p in model.params.values()):
        raise ConfigError("sharpness needs a float64 model (finite differences of a float32 "
                         "gradient are mostly rounding noise)")
    if iters < 1 or restarts < 1:
        raise ConfigError(f"iterations ({iters}) and restarts ({restarts}) must be >= 1")
    if method not in ("power", "lanczos"):
        raise ConfigError(f"method must be power or lanczos, got {method!r}")
    theta = flatten(model.params)
    n = theta.size
    s = None if preconditioner is None else np.sqrt(np.asarray(preconditioner, dtype=np.float64))
    if s is not None and s.shape != (n,):
        raise ConfigError(f"preconditioner has {s.size} entries, the model {n} parameters")

    per_restart = iters * (2 if method == "power" else 1)     # power: + the shifted run
    matvec = _Products(model, x, y, theta, eps, s, progress, total=restarts * per_restart)
    lams, its, conv = [], [], []
    try:
        for r in range(restarts):
            matvec.done = r * per_restart                # at most; a restart may converge early
            matvec.note = f"Hessian-vector products (at most), restart {r + 1}/{restarts}"
            rng = np.random.default_rng([seed, r])
            if method == "lanczos":
                lam, it, ok = _lanczos(matvec, n, rng, iters, tol)
            else:
                lam, it, ok = _power(matvec, n, rng, iters, tol)
                if lam < 0:                            # |λ| largest is negative: shift by it,
                    top, it2, ok = _power(matvec, n, rng, iters, tol, shift=lam)   # H − λI >= 0
                    lam, it = top, it + it2
            lams.append(lam)
            its.append(it)
            conv.append(ok)
    finally:
        assign(model.params, theta)
    finite = all(math.isfinite(v) for v in lams)      # max() would drop a NaN by its position
    return {"lambda_max": float(max(lams)) if finite else math.nan,
            "restarts": [float(v) for v in lams],
            "spread": float(max(lams) - min(lams)) if finite else math.nan, "iterations": its,
            "converged": conv, "eps": eps, "tol": tol, "n_params": int(n), "method": method}


def adam_preconditioner(params, adam_state, beta2, eps, lr_mult=None):
    """d = lr_mult/(√v̂ + ε) per element, flat in params order, from AdamW's (m, v, t)."""
    _, v, t = adam_state
    parts = []
    for name, p in params.items():
        mult = 1.0 if lr_mult is None else lr_mult[name]
        v64 = np.asarray(v[name], dtype=np.float64).reshape(-1)
        parts.append(optim.adam_preconditioner(v64, float(t), beta2, eps, mult))
    return np.concatenate(parts)


def sharpness_record(model, x, y, step, lr, opt=None, iters=100, restarts=1, seed=0, tol=1e-2,
                     method="power"):
    """The sharpness.jsonl record of one step, for the training loop: a float64 copy of model is
    probed (the live model is untouched). {"step", "lr", "lambda_max", "two_over_lr",
    "iterations", "converged", "batch_size"}; with opt (an AdamW that has stepped) also
    "adam_lambda_max" and "adam_threshold" = (2 + 2β1)/((1 − β1) lr)."""
    m64 = type(model)(model.cfg, {k: np.array(v, dtype=np.float64)
                                  for k, v in model.params.items()})
    kw = dict(iters=iters, restarts=restarts, tol=tol, seed=seed, method=method)
    res = top_eigenvalue(m64, x, y, **kw)
    rec = {"step": int(step), "lr": float(lr), "lambda_max": res["lambda_max"],
           "two_over_lr": 2.0 / lr, "iterations": res["iterations"],
           "converged": res["converged"], "batch_size": len(x)}
    if opt is not None and hasattr(opt, "v") and opt.t >= 1:
        d = adam_preconditioner(m64.params, (opt.m, opt.v, opt.t), opt.beta2, opt.eps, opt.lr_mult)
        pre = top_eigenvalue(m64, x, y, preconditioner=d, **kw)
        rec["adam_lambda_max"] = pre["lambda_max"]
        rec["adam_threshold"] = (2 + 2 * opt.beta1) / ((1 - opt.beta1) * lr)
    return rec


def full_hessian(model, x, y, h=1e-5):
    """The whole Hessian by central differences of the gradient, symmetrized (tiny models only:
    2 gradients per parameter). Used by the tests to check top_eigenvalue."""
    theta = flatten(model.params)
    n = theta.size
    H = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        H[:, i] = hvp(model, x, y, theta, e, h)
    return (H + H.T) / 2


def inspect_sharpness(snap, batch_size=None, seed=0, iters=100, restarts=3, tol=1e-2, eps=1e-4,
                      adam=False, method="power", progress=None):
    """What `python cli.py inspect sharpness` reports for a Snapshot (see snapshot.py)."""
    x, y = snap.batch(seed=seed, batch_size=batch_size)
    m64 = snap.model_as("float64")
    cfg = snap.cfg
    lr = snap.lr()
    out = dict(snap.describe(), batch_size=int(len(x)), batch_seed=seed, lr=lr,
               two_over_lr=2.0 / lr, loss=float(m64.loss(x, y)))
    out.update(top_eigenvalue(m64, x, y, iters=iters, restarts=restarts, tol=tol, eps=eps,
                              seed=seed, method=method, progress=progress))
    out["above_2_over_lr"] = _above(out["lambda_max"], out["two_over_lr"])
    if adam:
        state = snap.adam_state()
        if state is None:
            raise ConfigError(f"{snap.source} has no AdamW state: the preconditioned sharpness "
                             f"needs a checkpoint trained with adamw")
        d = adam_preconditioner(m64.params, state, cfg.beta2, 1e-8, snap.lr_mult())
        pre = top_eigenvalue(m64, x, y, iters=iters, restarts=restarts, tol=tol, eps=eps,
                             seed=seed, preconditioner=d, method=method, progress=progress)
        thr = (2 + 2 * cfg.beta1) / ((1 - cfg.beta1) * lr)
        out["adam"] = {"lambda_max": pre["lambda_max"], "restarts": pre["restarts"],
                       "spread": pre["spread"], "iterations": pre["iterations"],
                       "threshold": thr, "above_threshold": _above(pre["lambda_max"], thr)}
    return out


def _above(value, threshold):
    """value > threshold, or None when either is not finite: NaN is never "below"."""
    if not (math.isfinite(value) and math.isfinite(threshold)):
        return None
    return bool(value > threshold)
