"""seeds: how much of the run-to-run spread comes from the initial weights, how much from the
order of the data?

TrainConfig has three seeds: init_seed (the initial weights), data_seed (training batches and
evaluation batches) and seed, the default of both. Varying one while the other stays fixed
separates the two sources of variance (Bouthillier et al. 2021 measured both in benchmarks and
found them of the same order; Picard 2021 showed how far a seed alone can move a result). The
ViT on digits is used because its validation loss is exact (the whole validation set), so the
data seed cannot add evaluation noise of its own.
"""
import math

from scipy.stats import f as f_dist

from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, loss_of, mean, ok,
                     std)
from .report import save_figure

NAME = "seeds"
CLAIM = ("The initialization seed alone and the data-order seed alone each cause a run-to-run "
         "spread of the same order.")
PAPER = ("Bouthillier et al. 2021, Accounting for Variance in Machine Learning Benchmarks; "
         "Picard 2021, torch.manual_seed(3407) is all you need")
DESIGN = """
A 2-layer ViT (32 channels, 2 heads, 4x4 patches) on the 8x8 digits, AdamW, lr 2e-3, 20-step
warmup, cosine decay. Three arms of N runs each (N = --seeds): `init` varies init_seed over
0..N-1 with data_seed 0; `data` varies data_seed over 0..N-1 with init_seed 0; `both` varies
seed (hence both) over 0..N-1. The spread is the sample standard deviation (ddof 1) of the final
validation loss (over all 360 validation images) within an arm.
"""
RULE = ("r = std(init arm) / std(data arm) of the final validation loss; F-test of equal "
        "variances, two-sided, (N-1, N-1) degrees of freedom. SUPPORTED if 0.5 <= r <= 2. NOT "
        "SUPPORTED if r is outside [0.5, 2] and the F-test gives p < 0.05. INCONCLUSIVE "
        "otherwise (outside [0.5, 2] but not significant with this many seeds).")

SIZES = {
    "smoke": {"seeds": 2, "minutes": 0.3, "max_iters": 30},
    "full": {"seeds": 12, "minutes": 2.3, "max_iters": 500},
}


def plan(size, seeds, done, out):
    base = dict(model="vit", data="digits", patch_size=4, n_layer=2, n_head=2, n_embd=32,
                batch_size=32, lr=2e-3, max_iters=SIZES[size]["max_iters"],
                warmup_iters=min(20, SIZES[size]["max_iters"]), eval_interval=0, eval_iters=5,
                log_interval=10, checkpoint_interval=0, telemetry=False)
    values = list(seeds)
    return [Part("init", dict(base, data_seed=0), {"init_seed": values}, (0,)),
            Part("data", dict(base, init_seed=0), {"data_seed": values}, (0,)),
            Part("both", base, {}, tuple(values))]


def arm(rows, name):
    return [r for r in rows if r["part"] == name]


def f_test(a, b):
    """(ratio of stds, two-sided p of the F-test of equal variances) of two samples."""
    sa, sb = std(a), std(b)
    if sa is None or sb is None or len(a) < 2 or len(b) < 2 or sb == 0 or sa == 0:
        return None, None
    F = sa ** 2 / sb ** 2
    cdf = f_dist.cdf(F, len(a) - 1, len(b) - 1)
    return sa / sb, float(min(1.0, 2 * min(cdf, 1 - cdf)))


def table(rows):
    cells = []
    for name in ("init", "data", "both"):
        members = arm(rows, name)
        losses = [loss_of(r) for r in members]
        accs = [r.get("val_acc") for r in members if ok(r)]
        cells.append([name, str(len(members)), f"{mean(losses):.4f}" if mean(losses) is not None
                      else "-", _f(std(losses)), f"{min(losses):.4f} .. {max(losses):.4f}",
                      f"{mean(accs):.4f} ± {_f(std(accs))}" if accs else "-"])
    return [("Spread of the final validation loss per source of randomness",
             ["varied", "runs", "mean val loss", "std", "range", "val acc mean ± std"], cells)]


def _f(x):
    return "-" if x is None else f"{x:.4f}"


def verdict(rows):
    a = [loss_of(r) for r in arm(rows, "init")]
    b = [loss_of(r) for r in arm(rows, "data")]
    r, p = f_test(a, b)
    numbers = {"std init arm": std(a), "std data arm": std(b), "std both arm":
               std([loss_of(x) for x in arm(rows, "both")]), "ratio r": r, "F-test p": p,
               "runs per arm": len(a)}
    if r is None:
        return Verdict(INCONCLUSIVE, numbers, ["a spread is undefined (diverged runs, or fewer "
                                               "than 2 runs, or zero spread)"])
    if 0.5 <= r <= 2:
        return Verdict(SUPPORTED, numbers, [])
    if p < 0.05:
        return Verdict(NOT_SUPPORTED, numbers, [])
    return Verdict(INCONCLUSIVE, numbers, [f"r = {r:.2f} is outside [0.5, 2] but the F-test "
                                           f"does not reject equal variances (p = {p:.3f})"])


def figures(rows, out, plt):
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, name in enumerate(("init", "data", "both")):
        vals = [loss_of(r) for r in arm(rows, name) if math.isfinite(loss_of(r))]
        ax.plot([i + 0.05 * ((k % 5) - 2) for k in range(len(vals))], vals, "o", alpha=0.7)
        if vals:
            ax.errorbar([i + 0.3], [mean(vals)], yerr=[std(vals) or 0], fmt="ks", capsize=4)
    ax.set_xticks([0, 1, 2])
    ax.set_xticklabels(["init seed varies", "data seed varies", "both vary"])
    ax.set(ylabel="final validation loss (nats)", title="Run-to-run spread by source")
    fig.tight_layout()
    return [(save_figure(fig, out / "seeds.png", plt),
             "Final validation loss of every run per source of randomness, with mean ± std")]
