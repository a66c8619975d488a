"""rmt: weight spectra are Marchenko-Pastur noise at init; training grows outliers and tails.

Martin & Mahoney (2021) read the eigenvalues of WᵀW/m of trained layers against random-matrix
theory: at init an i.i.d. matrix follows the Marchenko-Pastur (MP) law; training correlates the
weights, which shows as eigenvalues beyond the bulk edge and a power-law tail (exponent alpha).
measure/spectra.py holds the instrument (MP edges with a Tracy-Widom margin, KS distance, alpha).
"""
import math

import numpy as np

from ...analysis.snapshot import load_snapshot
from ...measure.spectra import spectra
from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, loss_of, mean, ok,
                     run_dir, seed_table, spread_note)
from .report import save_figure

NAME = "rmt"
CLAIM = ("Weight matrices follow the Marchenko-Pastur law at init; after training they grow "
         "eigenvalues beyond the bulk edge (outliers) and heavier tails.")
PAPER = ("Martin & Mahoney 2021, Implicit Self-Regularization in Deep Neural Networks "
         "(WeightWatcher)")
DESIGN = """
A 2-layer GPT (64 channels, 4 heads, context 64, batch 12) on Tiny Shakespeare, AdamW, default
schedule, inits `gpt2` and `xavier_uniform`. Every 2-D weight (Q, K, V apart; embeddings
included) is measured at init (the run's initial weights, rebuilt from its seed) and at the end:
the KS distance between its eigenvalues and its MP law, whether any eigenvalue lies beyond the MP
edges plus 4 Tracy-Widom scales (`outside`), and the power-law tail exponent alpha (unreliable
with 64 eigenvalues per matrix; reported, not used by the rule).
"""
RULE = ("Per run, KS is compared with 1.95/sqrt(n) (n = eigenvalues of the matrix; a KS test "
        "rejects MP at 0.1% above it). SUPPORTED if in every run no matrix at init has an "
        "eigenvalue outside or a KS above 1.95/sqrt(n), and after training at least half of the "
        "matrices have an eigenvalue outside. NOT SUPPORTED if in the mean over runs more than "
        "10% of the matrices at init have an eigenvalue outside or a KS above it, or fewer than "
        "20% of the trained matrices have one outside. INCONCLUSIVE otherwise.")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.1, "max_iters": 20, "n_embd": 32, "inits": ["gpt2"]},
    "full": {"seeds": 3, "minutes": 4.7, "max_iters": 600, "n_embd": 64,
             "inits": ["gpt2", "xavier_uniform"]},
}
KS_CRIT = 1.95


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="gpt", n_layer=2, n_head=4, n_embd=s["n_embd"], block_size=64,
                batch_size=12, max_iters=s["max_iters"], eval_interval=0, eval_iters=10,
                log_interval=10, checkpoint_interval=0, telemetry=False)
    return [Part("main", base, {"init": s["inits"]}, tuple(seeds))]


def _summary(rows_spec):
    """(fraction of matrices off MP (outside or KS above critical), fraction with an eigenvalue
    outside, median KS, median alpha) of one set of spectra rows."""
    rows_spec = [r for r in rows_spec if "ks" in r]
    off = [r["n_outside"] > 0 or r["ks"] > KS_CRIT / math.sqrt(r["n"]) for r in rows_spec]
    outside = [r["n_outside"] > 0 for r in rows_spec]
    alphas = [r["alpha"] for r in rows_spec if r.get("alpha") is not None]
    return (float(np.mean(off)), float(np.mean(outside)),
            float(np.median([r["ks"] for r in rows_spec])),
            float(np.median(alphas)) if alphas else None)


def measure(row, folder, size):
    snap = load_snapshot(folder)
    init = _summary(spectra(snap.init_model().params))
    trained = _summary(spectra(snap.model.params))
    return {"init_off_mp": init[0], "init_outside": init[1], "init_ks": init[2],
            "init_alpha": init[3], "trained_off_mp": trained[0], "trained_outside": trained[1],
            "trained_ks": trained[2], "trained_alpha": trained[3]}


def _get(key):
    return lambda r: r.get(key) if ok(r) else None


def table(rows):
    cols, cells = seed_table(rows, ["init"], [
        ("init: off MP", _get("init_off_mp")), ("init: median KS", _get("init_ks")),
        ("init: median alpha", _get("init_alpha")),
        ("trained: with outliers", _get("trained_outside")),
        ("trained: median KS", _get("trained_ks")),
        ("trained: median alpha", _get("trained_alpha")), ("final val loss", loss_of)])
    return [("Fractions of weight matrices off the MP law / with eigenvalues outside the bulk, "
             "median KS and alpha (mean ± std over seeds)", cols, cells)]


def verdict(rows):
    done = [r for r in rows if ok(r)]
    numbers = {"runs measured": len(done),
               "max fraction off MP at init": max((r["init_off_mp"] for r in done), default=None),
               "mean fraction off MP at init": mean([r["init_off_mp"] for r in done]),
               "min fraction with outliers after training":
                   min((r["trained_outside"] for r in done), default=None),
               "mean fraction with outliers after training":
                   mean([r["trained_outside"] for r in done])}
    notes = []
    note = spread_note({(r["init"], r["seed"]): r["trained_outside"] >= 0.5 for r in done},
                       "at least half of the trained matrices with outliers")
    if note:
        notes.append(note)
    if not done:
        notes.append("no run finished")
        return Verdict(INCONCLUSIVE, numbers, notes)
    if all(r["init_off_mp"] == 0 and r["trained_outside"] >= 0.5 for r in done):
        return Verdict(SUPPORTED, numbers, notes)
    if numbers["mean fraction off MP at init"] > 0.1 or \
            numbers["mean fraction with outliers after training"] < 0.2:
        return Verdict(NOT_SUPPORTED, numbers, notes)
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    """Eigenvalues of one attention and one MLP matrix at init and after training against MP."""
    from ...measure.spectra import eigenvalues, mp_density
    r = next((r for r in rows if ok(r)), None)
    if r is None:
        return []
    snap = load_snapshot(run_dir(out, r))
    names = ["h.0.attn.c_attn.weight[q]", "h.1.mlp.c_fc.weight"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for j, name in enumerate(names):
        for i, (when, params) in enumerate((("init", snap.init_model().params),
                                            ("trained", snap.model.params))):
            ax = axes[i][j]
            lam = eigenvalues(params, name)
            row = next(x for x in spectra(params, names=[name]) if x["name"] == name)
            ax.hist(lam, bins=30, density=True, alpha=0.6, label="eigenvalues")
            grid = np.linspace(row["lambda_minus"], row["lambda_plus"], 200)
            ax.plot(grid, mp_density(grid, row["sigma2"], row["q"]), "k-", label="MP law")
            ax.axvline(row["lambda_plus"] + row["edge_margin"], color="r", ls="--",
                       label="bulk edge + 4 TW")
            ax.set(xlabel="eigenvalue of WᵀW/m", ylabel="density",
                   title=f"{name}, {when} ({r['init']}, seed {r['seed']})")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return [(save_figure(fig, out / "rmt.png", plt),
             "Eigenvalue histograms against the Marchenko-Pastur density at init (top) and after "
             "training (bottom) for a query and an MLP matrix of one run")]
