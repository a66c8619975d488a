"""warmup: post-LN transformers need learning-rate warmup; pre-LN ones do not.

Xiong et al. (2020) show that at initialization the gradients of post-LN's last layers are large
(they grow toward the output), so a large lr from step 0 derails training, while pre-LN's are
well behaved and it trains without warmup; Liu et al. (2020) trace post-LN's trouble to its
amplified dependence on the residual branches. Tested at four learning rates over a 30x range,
with no / short / long warmup, pre-LN and post-LN twins sharing seeds (same init draws, same
batches).
"""
import math

from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, by_seed, loss_of,
                     mean, seed_table, spread_note)
from .report import errorbar_lines, save_figure

NAME = "warmup"
CLAIM = "Post-LN transformers need learning-rate warmup at large learning rates; pre-LN do not."
PAPER = ("Xiong et al. 2020, On Layer Normalization in the Transformer Architecture; Liu et "
         "al. 2020, Understanding the Difficulty of Training Transformers")
DESIGN = """
A 4-layer GPT (32 channels, 2 heads, context 32, batch 8) on Tiny Shakespeare, AdamW, cosine
decay, gradient clip 1.0, `gpt2` init. Grid: norm pre / post x warmup none / short / long x four
peak learning rates. The penalty of skipping warmup is the final validation loss without warmup
minus that with the long warmup, for the same norm, lr and seed. The short warmup is shown in the
table and figure; the rule uses none against long.
"""
RULE = ("At each of the two largest learning rates: penalty = final val loss (no warmup) - final "
        "val loss (long warmup), same norm, lr and seed (a diverged run counts as inf; both "
        "diverged counts as 0). SUPPORTED if every post-LN seed has penalty >= 0.3 at both lrs "
        "and the pre-LN mean penalty is < 0.1 at both. NOT SUPPORTED if the post-LN mean "
        "penalty is < 0.1 at both lrs, or the pre-LN mean penalty is >= the post-LN one at both. "
        "INCONCLUSIVE otherwise.")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.2, "max_iters": 20, "warmups": [0, 10],
              "lrs": [3e-3, 3e-2]},
    "full": {"seeds": 3, "minutes": 5.4, "max_iters": 300, "warmups": [0, 20, 100],
             "lrs": [1e-3, 3e-3, 1e-2, 3e-2]},
}
BIG, SMALL = 0.3, 0.1


def plan(size, seeds, done, out):
    s = SIZES[size]
    base = dict(model="gpt", init="gpt2", n_layer=4, n_head=2, n_embd=32, block_size=32,
                batch_size=8, max_iters=s["max_iters"], eval_interval=0, eval_iters=10,
                log_interval=10, checkpoint_interval=0, telemetry=False)
    grid = {"norm": ["pre", "post"], "warmup_iters": s["warmups"], "lr": s["lrs"]}
    return [Part("main", base, grid, tuple(seeds))]


def _diff(a, b):
    if a == math.inf and b == math.inf:
        return 0.0
    return a - b


def penalties(rows, norm, lr):
    """{seed: loss(no warmup) - loss(longest warmup)} for one norm and lr."""
    long_w = max(r["warmup_iters"] for r in rows)
    none = by_seed(rows, loss_of, norm=norm, lr=lr, warmup_iters=0)
    warm = by_seed(rows, loss_of, norm=norm, lr=lr, warmup_iters=long_w)
    return {s: _diff(none[s], warm[s]) for s in none if s in warm}


def table(rows):
    cols, cells = seed_table(rows, ["norm", "warmup_iters", "lr"], [("final val loss", loss_of)])
    lrs = sorted({r["lr"] for r in rows})
    pen = [[norm, f"{lr:g}", _fmt_pen(penalties(rows, norm, lr))] for norm in ("pre", "post")
           for lr in lrs]
    return [("Penalty of no warmup (loss without - loss with the long warmup), per seed",
             ["norm", "lr", "penalty per seed (nats)"], pen),
            ("Final validation loss (mean ± std over seeds)", cols, cells)]


def _fmt_pen(p):
    return ", ".join(f"seed {s}: {v:.3f}" for s, v in sorted(p.items()))


def verdict(rows):
    top = sorted({r["lr"] for r in rows})[-2:]
    numbers, notes = {}, []
    post_all, pre_small, post_small, pre_ge = True, True, True, True
    for lr in top:
        post, pre = penalties(rows, "post", lr), penalties(rows, "pre", lr)
        mpost, mpre = mean(post.values()), mean(pre.values())
        numbers[f"lr {lr:g}: post-LN penalty per seed"] = post
        numbers[f"lr {lr:g}: post-LN mean penalty"] = mpost
        numbers[f"lr {lr:g}: pre-LN mean penalty"] = mpre
        post_all &= bool(post) and min(post.values()) >= BIG
        pre_small &= mpre is not None and mpre < SMALL
        post_small &= mpost is not None and mpost < SMALL
        pre_ge &= mpre is not None and mpost is not None and (
            mpre >= mpost if not (mpre == math.inf and mpost == math.inf) else True)
        for norm, p in (("post", post), ("pre", pre)):
            note = spread_note({s: v >= BIG for s, v in p.items()},
                               f"{norm}-LN penalty >= {BIG} at lr {lr:g}")
            if note:
                notes.append(note)
    if post_all and pre_small:
        return Verdict(SUPPORTED, numbers, notes)
    if post_small or pre_ge:
        return Verdict(NOT_SUPPORTED, numbers, notes)
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    norms = ["pre", "post"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, norm in zip(axes, norms):
        sub = [r for r in rows if r["norm"] == norm]
        errorbar_lines(ax, sub, "lr", "warmup_iters", loss_of, label="warmup {} steps")
        ax.set(xscale="log", xlabel="peak learning rate", title=f"{norm}-LN")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("final validation loss (nats)")
    fig.tight_layout()
    return [(save_figure(fig, out / "warmup.png", plt),
             "Final validation loss against the peak lr, per warmup length, pre-LN (left) and "
             "post-LN (right); mean ± std over seeds, crosses at the top: diverged")]
