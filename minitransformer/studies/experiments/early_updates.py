"""early-updates: the first updates are large relative to small initial weights; warmup damps them.

Adam moves each weight by about lr per step whatever the gradient's size, so a weight matrix
initialized at std 0.02 sees relative updates ||dW||/||W|| of order lr/0.02 in its first steps:
0.5 at lr 1e-2. Warmup shrinks exactly those steps (Kosson et al. 2024); Kalra & Barkeshli
(2024) describe warmup as letting the (preconditioned) sharpness come down below the stability
threshold 38/lr before the lr is large. A larger init (std 0.2) is the control: the same lr is a
smaller relative step for it.
"""

import numpy as np

from ...training.runfolder import read_jsonl
from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, by_seed, loss_of,
                     mean, ok, run_dir, seed_table, select, spread_note)
from .report import save_figure

NAME = "early-updates"
CLAIM = ("Early updates are large relative to tiny initial weights (std 0.02) and warmup damps "
         "them; with a larger init the same lr gives far smaller relative updates.")
PAPER = ("Kosson et al. 2024, Analyzing & Reducing the Need for Learning Rate Warmup; Kalra & "
         "Barkeshli 2024, Why Warmup the Learning Rate?")
DESIGN = """
A 2-layer GPT (32 channels, 2 heads, context 32, batch 8) on Tiny Shakespeare, AdamW, `normal`
init with std 0.02 or 0.2 for every matrix and table, warmup none or 50 steps, two learning
rates. Telemetry at every step; `early_ratio` = the median over the block weight matrices (qkv,
attention projection, MLP in and out) of their mean update-to-weight ratio ||dW||/||W|| over the
first 20 steps. The Adam-preconditioned sharpness (top eigenvalue of P^-1 H on a fixed batch) is
probed every 25 steps against its threshold 38/lr; `above` = fraction of the probes in the first
half of training above it (reported, not part of the rule).
"""
RULE = ("Per lr and seed: damping = early_ratio(std 0.02, no warmup) / early_ratio(std 0.02, "
        "warmup); size effect = early_ratio(std 0.02, no warmup) / early_ratio(std 0.2, no "
        "warmup). SUPPORTED if both are >= 3 for every lr and seed. NOT SUPPORTED if the mean "
        "of either over all lrs and seeds is < 1.5. INCONCLUSIVE otherwise.")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.2, "max_iters": 20, "warmup": 10, "lrs": [1e-2],
              "sharp_every": 20},
    "full": {"seeds": 3, "minutes": 4.5, "max_iters": 150, "warmup": 50, "lrs": [3e-3, 1e-2],
             "window": 20, "sharp_every": 25},
}
MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
STRONG, WEAK = 3.0, 1.5
WINDOW = 20                       # early steps: the first 20 (or the first half of a short run)


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="gpt", init="normal", n_layer=2, n_head=2, n_embd=32, block_size=32,
                batch_size=8, max_iters=s["max_iters"], eval_interval=0, eval_iters=10,
                log_interval=1, checkpoint_interval=0, telemetry=True,
                sharpness_every=s["sharp_every"])
    grid = {"init_std": [0.02, 0.2], "warmup_iters": [0, s["warmup"]], "lr": s["lrs"]}
    return [Part("main", base, grid, tuple(seeds))]


def early_ratio(records, window):
    """Median over block matrices of the mean update ratio over steps < window."""
    per = {}
    for rec in records:
        if rec["step"] >= window:
            continue
        for name, t in rec["tensors"].items():
            if name.endswith(MATRICES) and t.get("update_ratio") is not None:
                per.setdefault(name, []).append(t["update_ratio"])
    return float(np.median([np.mean(v) for v in per.values()])) if per else None


def measure(row, folder, size):
    tele = read_jsonl(folder / "telemetry.jsonl")
    cfg_steps = max((r["step"] for r in tele), default=0) + 1
    window = min(WINDOW, cfg_steps // 2)
    sharp = read_jsonl(folder / "sharpness.jsonl") if (folder / "sharpness.jsonl").is_file() \
        else []
    first_half = [s for s in sharp if s["step"] < cfg_steps / 2 and "adam_lambda_max" in s]
    above = (sum(s["adam_lambda_max"] > s["adam_threshold"] for s in first_half)
             / len(first_half)) if first_half else None
    peak = max((s["adam_lambda_max"] / s["adam_threshold"] for s in first_half), default=None)
    return {"early_ratio": early_ratio(tele, window), "sharp_above": above,
            "sharp_peak_over_threshold": peak}


def _ratio(r):
    return r.get("early_ratio") if ok(r) else None


def table(rows):
    cols, cells = seed_table(rows, ["init_std", "warmup_iters", "lr"], [
        ("early_ratio", _ratio), ("probes above 38/lr (first half)", lambda r: r.get("sharp_above")),
        ("max preconditioned sharpness / threshold",
         lambda r: r.get("sharp_peak_over_threshold")),
        ("final val loss", loss_of)])
    return [("Early update-to-weight ratio, preconditioned sharpness and loss (mean ± std over "
             "seeds)", cols, cells)]


def verdict(rows):
    warm = max(r["warmup_iters"] for r in rows)
    damp, size, notes = {}, {}, []
    for lr in sorted({r["lr"] for r in rows}):
        a = by_seed(rows, _ratio, init_std=0.02, warmup_iters=0, lr=lr)
        b = by_seed(rows, _ratio, init_std=0.02, warmup_iters=warm, lr=lr)
        c = by_seed(rows, _ratio, init_std=0.2, warmup_iters=0, lr=lr)
        for s in a:
            if a[s] is not None and b.get(s) and c.get(s):
                damp[(lr, s)] = a[s] / b[s]
                size[(lr, s)] = a[s] / c[s]
    numbers = {"damping per (lr, seed)": {f"lr {k[0]:g} seed {k[1]}": v for k, v in damp.items()},
               "size effect per (lr, seed)": {f"lr {k[0]:g} seed {k[1]}": v
                                              for k, v in size.items()},
               "mean damping": mean(damp.values()), "mean size effect": mean(size.values())}
    for what, d in (("damping", damp), ("size effect", size)):
        note = spread_note({k: v >= STRONG for k, v in d.items()}, f"{what} >= {STRONG}")
        if note:
            notes.append(note)
    if not damp:
        notes.append("no run pair finished: nothing to compare")
        return Verdict(INCONCLUSIVE, numbers, notes)
    if min(damp.values()) >= STRONG and min(size.values()) >= STRONG:
        return Verdict(SUPPORTED, numbers, notes)
    if mean(damp.values()) < WEAK or mean(size.values()) < WEAK:
        return Verdict(NOT_SUPPORTED, numbers, notes)
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    """Median block-matrix update ratio over the steps, one line per setting (first seed)."""
    lrs = sorted({r["lr"] for r in rows})
    fig, axes = plt.subplots(1, len(lrs), figsize=(5.5 * len(lrs), 4.2), squeeze=False)
    seed0 = min(r["seed"] for r in rows)
    for ax, lr in zip(axes[0], lrs):
        for r in select(rows, lr=lr, seed=seed0):
            if not ok(r):
                continue
            tele = read_jsonl(run_dir(out, r) / "telemetry.jsonl")
            steps = [t["step"] for t in tele]
            med = [float(np.median([v["update_ratio"] for n, v in t["tensors"].items()
                                    if n.endswith(MATRICES) and v.get("update_ratio") is not None]))
                   for t in tele]
            ax.plot(steps, med, label=f"std {r['init_std']:g}, warmup {r['warmup_iters']}")
        ax.set(yscale="log", xlabel="step", ylabel="median ||dW||/||W|| (block matrices)",
               title=f"lr {lr:g}, seed {seed0}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return [(save_figure(fig, out / "early_updates.png", plt),
             "Median update-to-weight ratio of the block weight matrices at every step, per "
             "init std and warmup (one seed)")]
