"""symmetry: zero initialization never breaks the symmetry between hidden units.

With every weight matrix 0, all hidden units of a layer compute the same function and receive
the same gradient, so no update can make them differ: the network keeps one unit's worth of
width and its loss stays stuck (Goodfellow, Bengio & Courville 2016, section 8.4). A skeptic
asks whether it is the zeros or just the smallness: the `normal` init with std 1e-3 (tiny but
random) is the control, and the default `gpt2` init the reference. Three learning rates, so that
"stuck" is not "too slow at one lr".
"""
import math

import numpy as np

from ...training.checkpoint import load_checkpoint
from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, by_seed, loss_of,
                     mean, ok, seed_table, select, spread_note)
from .report import errorbar_lines, save_figure

NAME = "symmetry"
CLAIM = ("Zero-initialized weight matrices keep every hidden unit of a layer identical through "
         "training, so the loss stays stuck far above a randomly initialized network's.")
PAPER = "Goodfellow, Bengio & Courville 2016, Deep Learning, section 8.4"
DESIGN = """
A 2-layer GPT (32 channels, 2 heads, context 32) on Tiny Shakespeare, AdamW with the default
cosine schedule and no warmup. Inits: `zeros` (every weight matrix 0, embeddings random), the
control `normal` with std 1e-3 (random but as small as can be), and `gpt2` (the default). Per
run, from its final checkpoint: the largest difference between two hidden units of any MLP
(columns of c_fc, rows of c_proj), relative to the largest unit's norm (`unit_spread`: 0 means
identical units, about 1.4 for independent random units).
"""
RULE = ("SUPPORTED if every zeros run ends with unit_spread <= 1e-6, every normal(1e-3) run "
        "with unit_spread > 1e-3, and at every lr the zeros run of each seed ends >= 0.3 nats "
        "above the gpt2 run of that seed (final validation loss). NOT SUPPORTED if some zeros run "
        "ends with unit_spread > 1e-3, or at some lr the zeros mean is less than 0.1 nats above "
        "the gpt2 mean. INCONCLUSIVE otherwise (including a control that kept its units equal).")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.2, "max_iters": 30, "lrs": [1e-2]},
    "full": {"seeds": 3, "minutes": 3.0, "max_iters": 400, "lrs": [1e-3, 3e-3, 1e-2]},
}
INITS = ["zeros", "normal", "gpt2"]
IDENTICAL, BROKEN, GAP, NO_GAP = 1e-6, 1e-3, 0.3, 0.1


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="gpt", n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8,
                max_iters=s["max_iters"], warmup_iters=0, init_std=1e-3,
                eval_interval=max(s["max_iters"] // 4, 1), eval_iters=10, log_interval=10,
                checkpoint_interval=0, telemetry=False)
    return [Part("main", base, {"init": INITS, "lr": s["lrs"]}, tuple(seeds))]


def unit_spread(params):
    """max over MLPs of max_j ||u_j - u_0|| / max_j ||u_j||, units u_j = columns of c_fc and rows
    of c_proj; 0 when all units are equal (also when they are all 0)."""
    worst = 0.0
    for name, w in params.items():
        if name.endswith("mlp.c_fc.weight"):
            units = np.asarray(w, dtype=np.float64).T              # (C, 4C) -> (4C, C)
        elif name.endswith("mlp.c_proj.weight"):
            units = np.asarray(w, dtype=np.float64)                # (4C, C): one row per unit
        else:
            continue
        size = float(np.max(np.linalg.norm(units, axis=1)))
        diff = float(np.max(np.linalg.norm(units - units[:1], axis=1)))
        worst = max(worst, diff / size if size > 0 else 0.0)
    return worst


def measure(row, run_dir, size):
    ckpt = load_checkpoint(run_dir / "checkpoint.npz")
    params = {k: v for k, v in ckpt.items() if ".mlp." in k}
    return {"unit_spread": unit_spread(params)}


def _spread(r):
    return r.get("unit_spread") if ok(r) else math.inf


def table(rows):
    cols, cells = seed_table(rows, ["init", "lr"], [("final val loss", loss_of),
                                                    ("unit_spread", _spread)], digits=3)
    return [("Final validation loss and hidden-unit spread (mean ± std over seeds)", cols, cells)]


def verdict(rows):
    lrs = sorted({r["lr"] for r in rows})
    zeros, control = select(rows, init="zeros"), select(rows, init="normal")
    zero_spread = max((_spread(r) for r in zeros), default=math.inf)
    control_spread = min((_spread(r) for r in control), default=0.0)
    gaps, mean_gaps, notes = {}, {}, []
    for lr in lrs:
        z = by_seed(rows, loss_of, init="zeros", lr=lr)
        g = by_seed(rows, loss_of, init="gpt2", lr=lr)
        gaps[lr] = {s: z[s] - g[s] for s in z if s in g}
        mean_gaps[lr] = mean([z[s] for s in z]) - mean([g[s] for s in g]) \
            if (z and g and mean(g.values()) != math.inf) else -math.inf
        note = spread_note({s: v >= GAP for s, v in gaps[lr].items()},
                           f"zeros >= {GAP} nats above gpt2 at lr {lr:g}")
        if note:
            notes.append(note)
    numbers = {"max unit_spread of zeros runs": zero_spread,
               "min unit_spread of normal(1e-3) runs": control_spread,
               "mean gap zeros - gpt2 per lr (nats)": {f"{lr:g}": v for lr, v in mean_gaps.items()},
               "min per-seed gap per lr (nats)": {f"{lr:g}": min(v.values(), default=-math.inf)
                                                  for lr, v in gaps.items()}}
    if zero_spread > BROKEN or any(v < NO_GAP for v in mean_gaps.values()):
        return Verdict(NOT_SUPPORTED, numbers, notes)
    if zero_spread <= IDENTICAL and control_spread > BROKEN and all(
            v and min(v.values()) >= GAP for v in gaps.values()):
        return Verdict(SUPPORTED, numbers, notes)
    if control_spread <= BROKEN:
        notes.append("the normal(1e-3) control kept (nearly) identical units too")
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    errorbar_lines(axes[0], rows, "lr", "init", loss_of)
    axes[0].set(xscale="log", xlabel="peak learning rate", ylabel="final validation loss (nats)",
                title="Final validation loss per init")
    errorbar_lines(axes[1], rows, "lr", "init", lambda r: max(_spread(r), 1e-12))
    axes[1].set(xscale="log", yscale="log", xlabel="peak learning rate",
                ylabel="unit_spread (1e-12 = identical)", title="Hidden units after training")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return [(save_figure(fig, out / "symmetry.png", plt),
             "Final validation loss and hidden-unit spread against the learning rate, per init "
             "(mean ± std over seeds; a cross at the top: diverged)")]
