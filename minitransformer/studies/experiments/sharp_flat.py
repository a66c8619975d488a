"""sharp-flat: do sharper minima generalize worse?

Keskar et al. (2017) found large-batch training reaches sharper minima with a larger
generalization gap. Here the same question across inits and learning rates: the sharpness (top
Hessian eigenvalue of the training loss) at the end of each run against its generalization gap
(validation minus training loss), and their Spearman rank correlation. Learning rate drives both
(edge of stability: sharpness settles near 2/lr), so the correlations with lr are reported too:
a correlation that is only lr's shows there.
"""
import math

import numpy as np
from scipy.stats import spearmanr

from ...analysis.snapshot import load_snapshot
from ...measure.sharpness import top_eigenvalue
from ...training.evaluate import image_loss_and_accuracy
from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, ok, seed_table)
from .report import save_figure

NAME = "sharp-flat"
CLAIM = "Sharper minima (larger top Hessian eigenvalue) have a larger generalization gap."
PAPER = ("Keskar et al. 2017, On Large-Batch Training for Deep Learning: Generalization Gap and "
         "Sharp Minima")
DESIGN = """
A 2-layer ViT (32 channels, 2 heads, 4x4 patches) on the 8x8 digits (1,437 training images,
360 validation), AdamW with a 20-step warmup and cosine decay, inits `vit`, `xavier_uniform`,
`mimetic`, four learning rates. After training: the training loss over all 1,437 images, the
validation loss over all 360, gap = val - train; sharpness = top Hessian eigenvalue (Lanczos on
Hessian-vector products, float64) on a fixed batch of 256 training images (smoke: 32).
"""
RULE = ("Spearman rank correlation rho between sharpness and gap over every finished run. "
        "SUPPORTED if rho >= 0.5 with p < 0.05. NOT SUPPORTED if rho < 0.2. INCONCLUSIVE "
        "otherwise (a weak positive correlation, or a strong one that is not significant).")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.2, "max_iters": 30, "inits": ["vit", "xavier_uniform"],
              "lrs": [1e-3, 1e-2], "sharp_batch": 32, "sharp_iters": 15},
    "full": {"seeds": 2, "minutes": 2.1, "max_iters": 600,
             "inits": ["vit", "xavier_uniform", "mimetic"], "lrs": [3e-4, 1e-3, 3e-3, 1e-2],
             "sharp_batch": 256, "sharp_iters": 60},
}


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="vit", data="digits", patch_size=4, n_layer=2, n_head=2, n_embd=32,
                batch_size=32, max_iters=s["max_iters"], warmup_iters=min(20, s["max_iters"]),
                eval_interval=0, eval_iters=10, log_interval=10, checkpoint_interval=0,
                telemetry=False)
    return [Part("main", base, {"init": s["inits"], "lr": s["lrs"]}, tuple(seeds))]


def measure(row, folder, size):
    snap = load_snapshot(folder)
    data = snap.data()
    m64 = snap.model_as("float64")
    train_loss, train_acc = image_loss_and_accuracy(m64, data.train_x, data.train_y)
    val_loss, _ = image_loss_and_accuracy(m64, data.val_x, data.val_y)
    x, y = snap.batch(seed=0, batch_size=SIZES[size]["sharp_batch"])
    res = top_eigenvalue(m64, x, y, iters=SIZES[size]["sharp_iters"], restarts=1, tol=1e-2,
                         seed=0, method="lanczos")
    return {"train_loss_full": train_loss, "val_loss_full": val_loss, "gap": val_loss - train_loss,
            "sharpness": res["lambda_max"]}


def _get(key):
    return lambda r: r.get(key) if ok(r) else None


def correlations(rows):
    done = [r for r in rows if ok(r) and r.get("sharpness") is not None
            and math.isfinite(r["sharpness"])]
    out = {"runs": len(done)}
    if len(done) < 3:
        return out
    for name, a, b in (("sharpness-gap", "sharpness", "gap"), ("lr-sharpness", "lr", "sharpness"),
                       ("lr-gap", "lr", "gap")):
        rho, p = spearmanr([r[a] for r in done], [r[b] for r in done])
        out[name] = (float(rho), float(p))
    return out


def table(rows):
    cols, cells = seed_table(rows, ["init", "lr"], [
        ("sharpness", _get("sharpness")), ("train loss", _get("train_loss_full")),
        ("val loss", _get("val_loss_full")), ("gap", _get("gap"))])
    c = correlations(rows)
    corr = [[k, f"{v[0]:.3f}", f"{v[1]:.3g}"] for k, v in c.items() if k != "runs"]
    return [(f"Spearman rank correlations over {c['runs']} finished runs",
             ["pair", "rho", "p"], corr),
            ("Sharpness and losses at the end (mean ± std over seeds)", cols, cells)]


def verdict(rows):
    c = correlations(rows)
    numbers = {"runs": c["runs"]}
    if "sharpness-gap" not in c or math.isnan(c["sharpness-gap"][0]):
        return Verdict(INCONCLUSIVE, numbers, ["fewer than 3 finished runs, or constant values"])
    rho, p = c["sharpness-gap"]
    numbers.update({"rho(sharpness, gap)": rho, "p": p, "rho(lr, sharpness)": c["lr-sharpness"][0],
                    "rho(lr, gap)": c["lr-gap"][0]})
    notes = []
    if rho >= 0.5 and p < 0.05:
        return Verdict(SUPPORTED, numbers, notes)
    if rho < 0.2:
        return Verdict(NOT_SUPPORTED, numbers, notes)
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    done = [r for r in rows if ok(r)]
    inits = sorted({r["init"] for r in done})
    markers = dict(zip(inits, "osd^v"))
    lrs = np.array([r["lr"] for r in done])
    for init in inits:
        sub = [r for r in done if r["init"] == init]
        sc = ax.scatter([r["sharpness"] for r in sub], [r["gap"] for r in sub],
                        c=np.log10([r["lr"] for r in sub]), marker=markers[init], cmap="viridis",
                        vmin=np.log10(lrs.min()), vmax=np.log10(lrs.max()), label=init)
    if done:
        fig.colorbar(sc, ax=ax, label="log10 learning rate")
    ax.set(xscale="log", xlabel="sharpness (top Hessian eigenvalue)",
           ylabel="gap = val loss - train loss (nats)",
           title="Sharpness against generalization gap")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [(save_figure(fig, out / "sharp_flat.png", plt),
             "Final sharpness against generalization gap, one point per run (marker: init, "
             "colour: learning rate)")]
