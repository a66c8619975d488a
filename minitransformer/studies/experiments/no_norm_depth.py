"""no-norm-depth: deep transformers without LayerNorm (or post-LN) and without warmup train when
initialized by T-Fixup, ReZero, DeepNet or Admin, and fail with a plain init.

Each fix rescales the residual branches at init so that the first updates cannot blow up the
output: T-Fixup (Huang et al. 2020) and ReZero (Bachlechner et al. 2020) without any LayerNorm,
DeepNet (Wang et al. 2022) and Admin (Liu et al. 2020) for post-LN. The skeptic's baselines, at
the same depth, lr and seeds, and also without warmup: Xavier and the default `gpt2` init, each
with no LayerNorm (for T-Fixup and ReZero) and post-LN (for DeepNet and Admin).
"""
import math

from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, loss_of, mean,
                     seed_table, select, spread_note)
from .report import errorbar_lines, save_figure

NAME = "no-norm-depth"
CLAIM = ("Without warmup, T-Fixup and ReZero (no LayerNorm) and DeepNet and Admin (post-LN) "
         "train deep transformers that plain Xavier or default inits do not.")
PAPER = ("Huang et al. 2020 (T-Fixup); Bachlechner et al. 2020 (ReZero); Wang et al. 2022 "
         "(DeepNet); Liu et al. 2020 (Admin)")
DESIGN = """
GPT (32 channels, 2 heads, context 32, batch 8) on Tiny Shakespeare at depth 6 / 12 / 24, AdamW
with no warmup (cosine decay), gradient clip 1.0, two learning rates. Baselines: `xavier_uniform`
and `gpt2` with norm none and with post-LN. Fixes: `t_fixup` and `rezero` (they set norm none),
`deepnet` and `admin` (they set post-LN and their skip multipliers). Each fix is compared with the
baselines of its own block form, each side at its best lr (lowest mean final validation loss).
"""
RULE = ("At the deepest depth, gain(fix) = best-lr mean final val loss of the better baseline "
        "of the fix's block form - best-lr mean of the fix (diverged = inf). SUPPORTED if every "
        "fix has gain >= 0.3 nats and every seed of it (at its best lr) ends below the better "
        "baseline's mean. NOT SUPPORTED if no fix has gain >= 0.1. INCONCLUSIVE otherwise.")

FIXES = {"t_fixup": "none", "rezero": "none", "deepnet": "post", "admin": "post"}
BASELINES = ["xavier_uniform", "gpt2"]
SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.2, "max_iters": 10, "depths": [2], "lrs": [3e-3]},
    "full": {"seeds": 2, "minutes": 8.1, "max_iters": 100, "depths": [6, 12, 24],
             "lrs": [1e-3, 5e-3]},
}
GAIN, NO_GAIN = 0.3, 0.1


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="gpt", n_head=2, n_embd=32, block_size=32, batch_size=8,
                max_iters=s["max_iters"], warmup_iters=0, eval_interval=0, eval_iters=10,
                log_interval=10, checkpoint_interval=0, telemetry=False)
    grid = {"n_layer": s["depths"], "lr": s["lrs"]}
    return [Part("baselines", base, dict(init=BASELINES, norm=["none", "post"], **grid),
                 tuple(seeds)),
            Part("fixes", base, dict(init=list(FIXES), **grid), tuple(seeds))]


def form(r):
    """The block form a row trained with: its norm, or the one its init sets."""
    return r.get("norm") or FIXES[r["init"]]


def label(r):
    return f"{r['init']} ({form(r)})" if r["init"] in BASELINES else r["init"]


def best(rows, depth, **match):
    """(best lr, mean loss there, [(seed, loss) at it]) over the lrs of the matching runs."""
    sub = select(rows, n_layer=depth, **match)
    by_lr = {}
    for r in sub:
        by_lr.setdefault(r["lr"], []).append(r)
    if not by_lr:
        return None, math.inf, []
    lr = min(by_lr, key=lambda k: mean([loss_of(r) for r in by_lr[k]]))
    return lr, mean([loss_of(r) for r in by_lr[lr]]), [(r["seed"], loss_of(r)) for r in by_lr[lr]]


def table(rows):
    labelled = [dict(r, setting=label(r)) for r in rows]
    cols, cells = seed_table(labelled, ["setting", "n_layer", "lr"], [("final val loss", loss_of)])
    return [("Final validation loss (mean ± std over seeds), no warmup", cols, cells)]


def verdict(rows):
    depth = max(r["n_layer"] for r in rows)
    numbers, notes, gains = {"depth": depth}, [], {}
    for fix, norm in FIXES.items():
        baselines = {b: best(rows, depth, init=b, norm=norm) for b in BASELINES}
        bname = min(baselines, key=lambda b: baselines[b][1])
        b_lr, b_loss, _ = baselines[bname]
        f_lr, f_loss, f_seeds = best(rows, depth, init=fix)
        gain = (b_loss - f_loss) if not (b_loss == f_loss == math.inf) else 0.0
        gains[fix] = (gain, all(v < b_loss for _, v in f_seeds) and bool(f_seeds))
        numbers[fix] = {"best lr": f_lr, "loss": f_loss,
                        f"baseline {bname} ({norm}) at lr": b_lr, "baseline loss": b_loss,
                        "gain": gain}
        note = spread_note({s: v < b_loss for s, v in f_seeds},
                           f"{fix} ending below the {bname} ({norm}) baseline")
        if note:
            notes.append(note)
    if all(g >= GAIN and every for g, every in gains.values()):
        return Verdict(SUPPORTED, numbers, notes)
    if all(g < NO_GAIN for g, _ in gains.values()):
        return Verdict(NOT_SUPPORTED, numbers, notes)
    notes.append("the fixes do not agree: " + ", ".join(
        f"{f} gain {g:.3f}" for f, (g, _) in gains.items()))
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    labelled = [dict(r, setting=label(r)) for r in rows]
    lrs = sorted({r["lr"] for r in rows})
    fig, axes = plt.subplots(1, len(lrs), figsize=(5.5 * len(lrs), 4.4), sharey=True,
                             squeeze=False)
    for ax, lr in zip(axes[0], lrs):
        errorbar_lines(ax, [r for r in labelled if r["lr"] == lr], "n_layer", "setting", loss_of)
        ax.set(xscale="log", xlabel="depth (blocks)", title=f"lr {lr:g}, no warmup")
        ax.set_xticks(sorted({r["n_layer"] for r in rows}))
        ax.set_xticklabels([str(d) for d in sorted({r["n_layer"] for r in rows})])
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("final validation loss (nats)")
    fig.tight_layout()
    return [(save_figure(fig, out / "no_norm_depth.png", plt),
             "Final validation loss against depth per init (block form in brackets), one panel "
             "per lr; mean ± std over seeds, crosses at the top: diverged")]
