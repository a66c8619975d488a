"""Weight spectra against random-matrix theory (docs/inspection.md).

    rows = spectra(model.params)              # one dict per weight matrix (Q, K, V apart)
    print(format_rows(rows))

For a weight W with shape (a, b), let m = max(a, b), n = min(a, b), q = n/m <= 1, and s_i its n
singular values. The n eigenvalues of the smaller Gram matrix divided by m are λ_i = s_i²/m.
If W's entries are i.i.d. with mean 0 and variance σ², the λ_i follow the Marchenko-Pastur law
(Marchenko & Pastur 1967):

    density ρ(λ) = √((λ₊ − λ)(λ − λ₋)) / (2π σ² q λ)   on [λ₋, λ₊],   λ± = σ²(1 ± √q)²
    singular values lie in σ(√m ± √n)

σ² is estimated from the entries (their variance about their mean). A freshly initialized
Gaussian or uniform matrix matches the law: no eigenvalue outside the edges and a small
Kolmogorov-Smirnov distance between the eigenvalues and ρ. Training adds structure: a few
eigenvalues leave the bulk (outliers: λ_max/λ₊ > 1) and the top of the spectrum grows a
power-law tail ρ(λ) ~ λ^(−α) (Martin & Mahoney 2021, WeightWatcher: α between 2 and 6 in well
trained layers, smaller = heavier tail = more correlation learned).

"Outside the bulk" allows for finite size: the largest eigenvalue of a finite random matrix
fluctuates above λ₊ by a Tracy-Widom amount (Johnstone 2001). The edge used here is

    λ₊ + 4 s σ²/m,  s = (√(m−1) + √n)(1/√(m−1) + 1/√n)^(1/3),

and the mirror image at λ₋ when q < 1 (4 Tracy-Widom scales: a pure-noise matrix crosses it with
probability below 1e-3), so at init the fraction outside is 0, not a few percent of noise.

The tail exponent is the continuous power-law maximum-likelihood (Hill) estimate over the k
largest eigenvalues, α = 1 + k / Σ ln(λ_i / λ_(k)), with k chosen to minimize the KS distance
of the fitted tail (Clauset, Shalizi & Newman 2009). With fewer than MIN_TAIL eigenvalues in the
fitted tail the estimate is unreliable and the row carries a warning: a 128-channel model has at
most 128 eigenvalues per matrix, so expect warnings on small models.
"""
import math

import numpy as np

from ..engine.names import qkv_parts, role
from ..errors import ConfigError

MIN_TAIL = 50        # eigenvalues in the fitted tail below which alpha gets a warning
TW_SCALES = 4.0      # Tracy-Widom scales beyond the MP edge that count as "outside"


def weight_matrices(params):
    """[(name, W)] of every 2-D parameter, with a fused qkv (C, 3C) split into its Q, K and V
    (C, C) blocks, named "...c_attn.weight[q]" etc. (names.qkv_parts: columns [q | k | v])."""
    out = []
    for name, p in params.items():
        if p.ndim != 2:
            continue
        if role(name) == "qkv":
            out += qkv_parts(name, p)
        else:
            out.append((name, p))
    return out


def mp_edges(sigma2, q):
    """(λ₋, λ₊) of Marchenko-Pastur with variance sigma2 and ratio q = n/m <= 1."""
    return sigma2 * (1 - math.sqrt(q)) ** 2, sigma2 * (1 + math.sqrt(q)) ** 2


def mp_density(lam, sigma2, q):
    """ρ(λ) of Marchenko-Pastur (q <= 1, no mass at 0), zero outside the edges."""
    lo, hi = mp_edges(sigma2, q)
    lam = np.asarray(lam, dtype=np.float64)
    inside = (lam > lo) & (lam < hi)
    val = np.zeros_like(lam)
    x = lam[inside]
    val[inside] = np.sqrt((hi - x) * (x - lo)) / (2 * math.pi * sigma2 * q * x)
    return val


def mp_cdf(lam, sigma2, q, grid=4001):
    """The Marchenko-Pastur CDF at lam, by integrating ρ with λ = λ₋ + (λ₊−λ₋)(1 − cos θ)/2:
    the substitution cancels the square-root zeros at both edges, so a plain trapezoid on θ is
    accurate (and finite at λ₋ = 0 when q = 1)."""
    lo, hi = mp_edges(sigma2, q)
    th = np.linspace(0.0, math.pi, grid)
    x = lo + (hi - lo) * (1 - np.cos(th)) / 2
    half = (hi - lo) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (half * np.sin(th)) ** 2 / (2 * math.pi * sigma2 * q * x)   # ρ(x) dx/dθ
    if x[0] == 0:
        f[0] = 4 * half ** 2 / (2 * math.pi * sigma2 * q * hi)        # limit θ→0 (q = 1)
    cdf = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(th))])
    cdf /= cdf[-1]                                     # exact mass 1; removes the O(h²) error
    return np.interp(lam, x, cdf, left=0.0, right=1.0)


def ks_distance(sorted_x, cdf_values):
    """sup |F_empirical − F| for sorted samples and the model CDF at them."""
    n = len(sorted_x)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf_values), np.max(cdf_values - (i - 1) / n)))


def tw_scale(m, n):
    """Johnstone's (2001) Tracy-Widom scale of the largest eigenvalue of XᵀX, X (m × n) i.i.d. N(0, 1)."""
    a, b = math.sqrt(max(m - 1, 1)), math.sqrt(n)
    return (a + b) * (1 / a + 1 / b) ** (1 / 3)


def power_law_fit(eigs, min_k=5):
    """(alpha, xmin, k, ks) of a continuous power-law fit to the top of eigs, or None when there
    are fewer than 2*min_k eigenvalues. k (tail size) minimizes the KS distance of the tail."""
    lam = np.sort(np.asarray(eigs, dtype=np.float64))[::-1]         # descending
    lam = lam[lam > 0]
    if len(lam) < 2 * min_k:
        return None
    logs = np.log(lam)
    best = None
    for k in range(min_k, len(lam) + 1):
        xmin = lam[k - 1]
        s = float(np.sum(logs[:k] - logs[k - 1]))
        if s <= 0:
            continue
        alpha = 1 + k / s
        tail = lam[:k][::-1]                           # ascending
        model_cdf = 1 - (tail / xmin) ** (1 - alpha)
        ks = ks_distance(tail, model_cdf)
        if best is None or ks < best[3]:
            best = (alpha, xmin, k, ks)
    return best


def matrix_spectrum(w):
    """Everything about one matrix W (any shape (a, b)); see the module docstring."""
    w = np.asarray(w, dtype=np.float64)
    a, b = w.shape
    m, n = max(a, b), min(a, b)
    q = n / m
    gram = w.T @ w if a >= b else w @ w.T              # (n, n), the smaller Gram matrix
    eigs = np.clip(np.linalg.eigvalsh(gram), 0.0, None) / m   # ascending; eigvalsh of the Gram
    sv = np.sqrt(eigs * m)[::-1]                       # matrix is ~20x faster than an SVD here
    sigma2 = float(np.var(w))
    row = {"shape": [a, b], "m": m, "n": n, "q": q, "sigma2": sigma2,
           "sparsity": float(np.mean(w == 0.0)),      # pruned (masked) entries are exactly 0
           "singular_values": [float(s) for s in sv]}
    if sigma2 == 0.0:
        row.update(note="all entries equal (e.g. zero-initialized): no spectrum to compare")
        return row, eigs
    lo, hi = mp_edges(sigma2, q)
    margin = TW_SCALES * tw_scale(m, n) * sigma2 / m
    upper = hi + margin
    lower = lo - margin if q < 1 else -math.inf
    outside = int(np.sum(eigs > upper) + np.sum(eigs < lower))
    sd = math.sqrt(sigma2)
    row.update(lambda_minus=lo, lambda_plus=hi, edge_margin=margin,
               sv_pred_min=sd * (math.sqrt(m) - math.sqrt(n)),
               sv_pred_max=sd * (math.sqrt(m) + math.sqrt(n)),
               sv_min=float(sv[-1]), sv_max=float(sv[0]),
               lambda_max=float(eigs[-1]), outlier_ratio=float(eigs[-1] / hi),
               n_outside=outside, frac_outside=outside / n,
               ks=ks_distance(eigs, mp_cdf(eigs, sigma2, q)))
    fit = power_law_fit(eigs)
    if fit is None:
        row.update(alpha=None, warning=f"only {n} eigenvalues: no power-law fit")
    else:
        alpha, xmin, k, ks = fit
        row.update(alpha=alpha, alpha_xmin=xmin, alpha_k=k, alpha_ks=ks)
        if k < MIN_TAIL:
            row["warning"] = (f"alpha fitted on {k} eigenvalues (< {MIN_TAIL}): unreliable")
    return row, eigs


def spectra(params, names=None, progress=None):
    """One row per weight matrix (Q, K, V apart), in parameter order: {"name", ...} as
    matrix_spectrum, without the eigenvalues (see eigenvalues() for those).
    progress: optional progress(done, total, name) after each matrix."""
    todo = [(name, w) for name, w in weight_matrices(params)
            if names is None or name in names or name.split("[")[0] in names]
    rows = []
    for k, (name, w) in enumerate(todo, start=1):
        row, _ = matrix_spectrum(w)
        rows.append(dict({"name": name}, **row))
        if progress is not None:
            progress(k, len(todo), name)
    return rows


def eigenvalues(params, name):
    """λ_i = s_i²/m of the matrix `name` (as weight_matrices names it), ascending."""
    for n, w in weight_matrices(params):
        if n == name:
            return matrix_spectrum(w)[1]
    raise ConfigError(f"no weight matrix named {name!r}")


def _f(x, fmt):
    return "-" if x is None else format(x, fmt)


def format_rows(rows, title=None):
    w = max([len(r["name"]) for r in rows] + [6])
    lines = [title] if title else []
    sparse = any(r.get("sparsity", 0.0) > 0 for r in rows)   # a pruned model: a zeros column
    lines.append(f"{'matrix':<{w}}  {'shape':>10}  {'sigma':>8}  {'lam+':>9}  {'lam_max':>9}  "
                 f"{'max/lam+':>8}  {'outside':>7}  {'KS':>5}  {'alpha':>6}  {'tail':>4}"
                 + (f"  {'zeros':>6}" if sparse else ""))
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        if "note" in r:
            lines.append(f"{r['name']:<{w}}  {shape:>10}  {r['note']}")
            continue
        lines.append(f"{r['name']:<{w}}  {shape:>10}  {math.sqrt(r['sigma2']):8.4f}  "
                     f"{r['lambda_plus']:9.3e}  {r['lambda_max']:9.3e}  {r['outlier_ratio']:8.2f}  "
                     f"{r['frac_outside']:7.1%}  {r['ks']:5.3f}  {_f(r.get('alpha'), '6.2f')}  "
                     f"{_f(r.get('alpha_k'), '4d')}"
                     + (f"  {r['sparsity']:6.1%}" if sparse else "")
                     + ("  *" if "warning" in r else ""))
    if any("warning" in r for r in rows):
        lines.append(f"* alpha from fewer than {MIN_TAIL} eigenvalues: unreliable")
    if sparse:
        lines.append("zeros: the fraction of entries exactly 0 (a pruned model's sparsity; "
                     "sigma and the MP law then include the zeros)")
    lines.append("Healthy at init: outside 0%, KS small, max/lam+ <= 1. After training: a few "
                 "outliers (max/lam+ > 1) and alpha 2-6 in learned layers.")
    return "\n".join(lines)
