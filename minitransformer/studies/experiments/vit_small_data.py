"""vit-small-data: structured attention inits help a ViT most when data are scarce.

ViTs lack the locality prior of convolutions and need much data. Mimetic init (Trockman &
Kolter 2023) sets W_q W_kᵀ ≈ I and W_v W_o ≈ -I, like trained attention; structured init
(Zheng et al. 2024) makes each head a convolution-like impulse at init. Both papers report the
largest gains on small data sets, and no loss when data are plentiful. Tested on MNIST subsets,
each init at its best of two learning rates, all with mean pooling (structured needs it, so the
baselines get it too: the pooling cannot explain a difference).
"""

from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, mean, ok,
                     seed_table, select, spread_note)
from .report import errorbar_lines, save_figure

NAME = "vit-small-data"
CLAIM = ("Mimetic and structured attention inits raise a ViT's accuracy when training data are "
         "few, and cost nothing when they are plentiful.")
PAPER = ("Trockman & Kolter 2023, Mimetic Initialization of Self-Attention Layers; Zheng et al. "
         "2024, Structured Initialization for Attention in Vision Transformers")
DESIGN = """
A 2-layer ViT (48 channels, 4 heads, 7x7 patches: 16 patches, mean pooling) on MNIST, AdamW,
20-step warmup, cosine decay, batch 32, the same number of steps for every subset. Training
subsets: the first N images of the fixed 8,000-image training split (`--train-limit N`);
validation always on all 2,000 validation images. Inits `vit` (timm's default, the baseline),
`mimetic`, `structured` (3x3 impulses); two learning rates, each init judged at its best (highest
mean validation accuracy). A diverged run counts as accuracy 0.
"""
RULE = ("For m in (mimetic, structured), each at its best lr against vit at its best lr: gain = "
        "mean val acc(m) - mean val acc(vit) on the smallest subset, loss = mean val acc(vit) - "
        "mean val acc(m) on the largest. m holds if gain >= 2 points, every seed of m ends above "
        "vit's mean there, and loss <= 1 point; m fails if gain < 0.5 points or loss > 2 "
        "points. SUPPORTED if both hold; NOT SUPPORTED if both fail; INCONCLUSIVE otherwise.")

INITS = ["vit", "mimetic", "structured"]
SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.4, "max_iters": 15, "limits": [100, 8000],
              "lrs": [3e-3]},
    "full": {"seeds": 3, "minutes": 2.9, "max_iters": 300, "limits": [300, 2000, 8000],
             "lrs": [1e-3, 3e-3]},
}
HOLD, FAIL, LOSS_OK, LOSS_BAD = 0.02, 0.005, 0.01, 0.02


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="vit", data="mnist", patch_size=7, n_layer=2, n_head=4, n_embd=48,
                pool="mean", batch_size=32, max_iters=s["max_iters"],
                warmup_iters=min(20, s["max_iters"]), eval_interval=0, eval_iters=5,
                log_interval=10, checkpoint_interval=0, telemetry=False)
    grid = {"train_limit": s["limits"], "init": INITS, "lr": s["lrs"]}
    return [Part("main", base, grid, tuple(seeds))]


def acc_of(r):
    return r["val_acc"] if ok(r) and r.get("val_acc") is not None else 0.0


def best(rows, limit, init):
    """(lr, mean acc, {seed: acc}) at the lr with the highest mean accuracy."""
    lrs = sorted({r["lr"] for r in select(rows, train_limit=limit, init=init)})
    if not lrs:
        return None, 0.0, {}
    lr = max(lrs, key=lambda x: mean([acc_of(r) for r in
                                      select(rows, train_limit=limit, init=init, lr=x)]))
    members = select(rows, train_limit=limit, init=init, lr=lr)
    return lr, mean([acc_of(r) for r in members]), {r["seed"]: acc_of(r) for r in members}


def table(rows):
    cols, cells = seed_table(rows, ["train_limit", "init", "lr"], [("val acc", acc_of)])
    limits = sorted({r["train_limit"] for r in rows})
    best_cells = [[str(n), init, f"{best(rows, n, init)[0]:g}", f"{best(rows, n, init)[1]:.4f}"]
                  for n in limits for init in INITS]
    return [("Each init at its best lr", ["train images", "init", "best lr", "mean val acc"],
             best_cells),
            ("Validation accuracy (mean ± std over seeds)", cols, cells)]


def verdict(rows):
    limits = sorted({r["train_limit"] for r in rows})
    small, large = limits[0], limits[-1]
    _, vit_small, _ = best(rows, small, "vit")
    _, vit_large, _ = best(rows, large, "vit")
    numbers, notes, state = {"smallest subset": small, "largest subset": large,
                             "vit acc (smallest, largest)": [vit_small, vit_large]}, [], {}
    for m in ("mimetic", "structured"):
        lr_s, acc_s, seeds_s = best(rows, small, m)
        _, acc_l, _ = best(rows, large, m)
        gain, loss = acc_s - vit_small, vit_large - acc_l
        every = bool(seeds_s) and all(a > vit_small for a in seeds_s.values())
        holds = gain >= HOLD and every and loss <= LOSS_OK
        fails = gain < FAIL or loss > LOSS_BAD
        state[m] = "holds" if holds else "fails" if fails else "between"
        numbers[m] = {"gain on smallest (points)": 100 * gain, "loss on largest (points)":
                      100 * loss, "every seed above vit": every, "outcome": state[m]}
        note = spread_note({s: a > vit_small for s, a in seeds_s.items()},
                           f"{m} above vit's mean on {small} images")
        if note:
            notes.append(note)
    if all(v == "holds" for v in state.values()):
        return Verdict(SUPPORTED, numbers, notes)
    if all(v == "fails" for v in state.values()):
        return Verdict(NOT_SUPPORTED, numbers, notes)
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    best_rows = []
    for n in sorted({r["train_limit"] for r in rows}):
        for init in INITS:
            lr = best(rows, n, init)[0]
            best_rows += select(rows, train_limit=n, init=init, lr=lr)
    errorbar_lines(ax, best_rows, "train_limit", "init", acc_of)
    ax.set(xscale="log", xlabel="training images", ylabel="validation accuracy",
           title="MNIST accuracy per init, each at its best lr")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [(save_figure(fig, out / "vit_small_data.png", plt),
             "Validation accuracy against the number of training images, per init at its best "
             "lr (mean ± std over seeds)")]
