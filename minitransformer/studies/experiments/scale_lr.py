"""scale-lr: the best learning rate depends on the initialization scale.

Adam moves every weight by about lr per step whatever its size, so the relative update is about
lr / (weight scale): scaling the initial weights by s should move the best lr by about s. The
claim, common lore ("initialization and learning rate are intertwined", e.g. Yang et al. 2022 on
muP; Kosson et al. 2024 on relative updates), is tested by a grid of --init-scale x lr wide
enough to see each scale's optimum inside it.
"""
import math

from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, loss_of, mean,
                     seed_table, select, std)
from .report import errorbar_lines, save_figure

NAME = "scale-lr"
CLAIM = ("Initialization scale and learning rate are intertwined: the best learning rate moves "
         "when the initial weights are scaled.")
PAPER = ("Yang et al. 2022 (Tensor Programs V, muP); Kosson et al. 2024 (rotational "
         "equilibrium: relative updates)")
DESIGN = """
A 2-layer GPT (32 channels, 2 heads, context 32) on Tiny Shakespeare, AdamW, default cosine
schedule with a 20-step warmup. `--init-scale s` multiplies every weight matrix of the `gpt2`
init by s (embeddings, biases and norms untouched). For each scale: the best lr (lowest mean
final validation loss over seeds) and the largest stable lr (every seed finished and the mean
loss within 0.5 nats of that scale's best).
"""
RULE = ("SUPPORTED if the best lr of the smallest and of the largest scale differ by at least "
        "one grid step and the difference is beyond noise: at the other scale's best lr, one of "
        "the two scales loses more than 2 x its seed std + 0.02 nats against its own best. NOT "
        "SUPPORTED if every scale has the same best lr and it is inside the grid (not its "
        "smallest or largest lr). INCONCLUSIVE otherwise (an optimum on the grid's edge, or a "
        "shift within noise).")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.2, "max_iters": 20, "scales": [0.25, 4.0],
              "lrs": [1e-3, 1e-2]},
    "full": {"seeds": 3, "minutes": 3.2, "max_iters": 300, "scales": [0.25, 1.0, 4.0],
             "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]},
}
STABLE_MARGIN = 0.5


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="gpt", init="gpt2", n_layer=2, n_head=2, n_embd=32, block_size=32,
                batch_size=8, max_iters=s["max_iters"], warmup_iters=min(20, s["max_iters"]),
                eval_interval=0, eval_iters=10, log_interval=10, checkpoint_interval=0,
                telemetry=False)
    return [Part("main", base, {"init_scale": s["scales"], "lr": s["lrs"]}, tuple(seeds))]


def per_scale(rows):
    """{scale: {"lrs", "mean", "std", "best_lr", "best", "stable_lr"}} from the rows."""
    out = {}
    for scale in sorted({r["init_scale"] for r in rows}):
        lrs = sorted({r["lr"] for r in select(rows, init_scale=scale)})
        means = {lr: mean([loss_of(r) for r in select(rows, init_scale=scale, lr=lr)])
                 for lr in lrs}
        stds = {lr: std([loss_of(r) for r in select(rows, init_scale=scale, lr=lr)]) or 0.0
                for lr in lrs}
        best_lr = min(lrs, key=lambda lr: means[lr])
        stable = [lr for lr in lrs if means[lr] <= means[best_lr] + STABLE_MARGIN]
        out[scale] = {"lrs": lrs, "mean": means, "std": stds, "best_lr": best_lr,
                      "best": means[best_lr], "stable_lr": max(stable)}
    return out


def table(rows):
    cols, cells = seed_table(rows, ["init_scale", "lr"], [("final val loss", loss_of)])
    ps = per_scale(rows)
    summary = [[f"{s:g}", f"{v['best_lr']:g}", f"{v['best']:.3f}", f"{v['stable_lr']:g}"]
               for s, v in ps.items()]
    return [("Best and largest stable learning rate per init scale",
             ["init_scale", "best lr", "its mean loss", "largest stable lr"], summary),
            ("Final validation loss (mean ± std over seeds)", cols, cells)]


def verdict(rows):
    ps = per_scale(rows)
    scales = sorted(ps)
    lo, hi = ps[scales[0]], ps[scales[-1]]
    lrs = lo["lrs"]
    step = abs(lrs.index(lo["best_lr"]) - lrs.index(hi["best_lr"]))
    # beyond noise: each scale evaluated at the other's best lr, against its own best
    excess = {scales[0]: lo["mean"][hi["best_lr"]] - lo["best"],
              scales[-1]: hi["mean"][lo["best_lr"]] - hi["best"]}
    noise = {scales[0]: 2 * lo["std"][lo["best_lr"]] + 0.02,
             scales[-1]: 2 * hi["std"][hi["best_lr"]] + 0.02}
    real = any(excess[s] > noise[s] for s in excess)
    edge = [s for s in scales if ps[s]["best_lr"] in (lrs[0], lrs[-1])]
    numbers = {"best lr per scale": {f"{s:g}": ps[s]["best_lr"] for s in scales},
               "largest stable lr per scale": {f"{s:g}": ps[s]["stable_lr"] for s in scales},
               "grid steps between the best lrs of the extreme scales": step,
               "loss lost at the other scale's best lr (nats)": {f"{s:g}": excess[s]
                                                                  for s in excess},
               "noise bar 2 x std + 0.02 (nats)": {f"{s:g}": noise[s] for s in noise},
               "scales whose best lr is on the grid's edge": [f"{s:g}" for s in edge]}
    notes = []
    if step >= 1 and real:
        return Verdict(SUPPORTED, numbers, notes)
    if len({ps[s]["best_lr"] for s in scales}) == 1 and not edge:
        return Verdict(NOT_SUPPORTED, numbers, notes)
    if step >= 1:
        notes.append("the best lrs differ, but by less than the seed-to-seed spread")
    if edge:
        notes.append(f"best lr on the edge of the grid for scale(s) {[f'{s:g}' for s in edge]}")
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    errorbar_lines(ax, rows, "lr", "init_scale", loss_of, label="init scale {:g}")
    best = per_scale(rows)
    for s, v in best.items():
        if math.isfinite(v["best"]):
            ax.plot([v["best_lr"]], [v["best"]], "*", color="k", ms=11)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="final validation loss (nats)",
           title="Loss against lr per init scale (stars: best lr)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [(save_figure(fig, out / "scale_lr.png", plt),
             "Final validation loss against the learning rate for each init scale (mean ± std "
             "over seeds; stars mark each scale's best lr; crosses at the top: diverged)")]
