"""pretrained-init: pretrained weights as the initialization of a second task with little data.

Transfer learning's basic promise: features learned on one task are a better starting point for
a related task than any random init, most of all when the second task has few examples and few
steps. Here: a ViT pretrained on MNIST digits 0-4, fine-tuned on digits 5-9 from a few hundred
images (head drawn afresh), against the same ViT trained from scratch with the same data, steps
and seeds, each at its best of two learning rates.
"""
import math

from .common import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Part, Verdict, mean, ok, run_dir,
                     seed_table, spread_note, std)
from .report import save_figure, val_curve

NAME = "pretrained-init"
CLAIM = ("Pretrained weights are a better initialization than random ones for a second task "
         "with little data and few steps.")
PAPER = ("Yosinski et al. 2014, How transferable are features in deep neural networks?; "
         "Dosovitskiy et al. 2021 (ViT: pretraining then fine-tuning)")
DESIGN = """
A 2-layer ViT (48 channels, 4 heads, 7x7 patches) on MNIST. Pretraining: digits 0-4 of the
training split (`--classes 0-4`), one run per seed. Fine-tuning task: digits 5-9 (`--classes
5-9`), only the first few hundred training images (`--train-limit`), few steps, validation on
every 5-9 image of the validation split. `pretrained`: `--init-from` the pretraining run of the
same seed with `--reinit-head`; `scratch`: the default `vit` init. Both at two learning rates,
each arm judged at its best (highest mean validation accuracy). The issue's second example, a
GPT fine-tuned on a text it has not seen, is not part of this study: the repository bundles one
text only (Tiny Shakespeare).
"""
RULE = ("gain = mean val acc (pretrained, its best lr) - mean val acc (scratch, its best lr) on "
        "digits 5-9. SUPPORTED if gain >= 3 points and every pretrained seed (at its best lr) "
        "ends above the scratch mean. NOT SUPPORTED if gain < 0.5 points. INCONCLUSIVE otherwise.")

SIZES = {
    "smoke": {"seeds": 1, "minutes": 0.4, "pre_iters": 15, "ft_iters": 10, "limit": 100,
              "lrs": [2e-3]},
    "full": {"seeds": 3, "minutes": 2.0, "pre_iters": 500, "ft_iters": 100, "limit": 300,
             "lrs": [1e-3, 3e-3]},
}
HOLD, FAIL = 0.03, 0.005


def _base(max_iters):
    return dict(model="vit", data="mnist", patch_size=7, n_layer=2, n_head=4, n_embd=48,
                batch_size=32, lr=2e-3, max_iters=max_iters, warmup_iters=min(20, max_iters),
                eval_iters=5, log_interval=10, checkpoint_interval=0, telemetry=False)


def plan(size, seeds, done, out):
    s = SIZES[size]
    pre = Part("pretrain", dict(_base(s["pre_iters"]), classes="0-4", eval_interval=0), {},
               tuple(seeds))
    if "pretrain" not in done:
        return [pre]
    ft = dict(_base(s["ft_iters"]), classes="5-9", train_limit=s["limit"],
              eval_interval=max(s["ft_iters"] // 10, 1))
    del ft["lr"]                                       # a grid axis of the fine-tuning parts
    parts = [pre, Part("scratch", dict(ft, init="vit"), {"lr": s["lrs"]}, tuple(seeds))]
    for r in done["pretrain"]:
        source = str(run_dir(out.resolve(), r))
        parts.append(Part(f"pretrained-s{r['seed']}", dict(ft, init_from=source, reinit_head=True),
                          {"lr": s["lrs"]}, (r["seed"],)))
    return parts


def arm_of(r):
    return "pretrained" if r["part"].startswith("pretrained") else r["part"]


def acc_of(r):
    return r["val_acc"] if ok(r) and r.get("val_acc") is not None else 0.0


def fine_tuned(rows):
    return [dict(r, arm=arm_of(r)) for r in rows if r["part"] != "pretrain"]


def best(rows, arm):
    """(lr, mean acc, {seed: acc}) of an arm at its best lr."""
    sub = [r for r in fine_tuned(rows) if r["arm"] == arm]
    lrs = sorted({r["lr"] for r in sub})
    if not lrs:
        return None, 0.0, {}
    lr = max(lrs, key=lambda x: mean([acc_of(r) for r in sub if r["lr"] == x]))
    return lr, mean([acc_of(r) for r in sub if r["lr"] == lr]), \
        {r["seed"]: acc_of(r) for r in sub if r["lr"] == lr}


def table(rows):
    pre = [r for r in rows if r["part"] == "pretrain"]
    cols, cells = seed_table(fine_tuned(rows), ["arm", "lr"], [
        ("val acc (5-9)", acc_of), ("final val loss", lambda r: r["final_val_loss"] if ok(r)
                                    else math.inf)])
    pre_acc = [acc_of(r) for r in pre]
    return [("Fine-tuning on digits 5-9 (mean ± std over seeds)", cols, cells),
            ("Pretraining on digits 0-4", ["runs", "val acc (0-4) mean ± std"],
             [[str(len(pre)), f"{mean(pre_acc):.4f} ± {std(pre_acc) or 0:.4f}"]])]


def verdict(rows):
    lr_p, acc_p, seeds_p = best(rows, "pretrained")
    lr_s, acc_s, _ = best(rows, "scratch")
    gain = acc_p - acc_s
    every = bool(seeds_p) and all(a > acc_s for a in seeds_p.values())
    numbers = {"pretrained: best lr, mean acc": [lr_p, acc_p], "scratch: best lr, mean acc":
               [lr_s, acc_s], "gain (points)": 100 * gain, "pretrained acc per seed": seeds_p}
    notes = [n for n in [spread_note({s: a > acc_s for s, a in seeds_p.items()},
                                     "pretrained above the scratch mean")] if n]
    if gain >= HOLD and every:
        return Verdict(SUPPORTED, numbers, notes)
    if gain < FAIL:
        return Verdict(NOT_SUPPORTED, numbers, notes)
    return Verdict(INCONCLUSIVE, numbers, notes)


def figures(rows, out, plt):
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for arm in ("scratch", "pretrained"):
        lr = best(rows, arm)[0]
        for r in [r for r in fine_tuned(rows) if r["arm"] == arm and r["lr"] == lr and ok(r)]:
            steps, accs = val_curve(run_dir(out, r), "val_acc")
            ax.plot(steps, accs, color="C0" if arm == "scratch" else "C1", alpha=0.8,
                    label=f"{arm} (lr {lr:g})" if r["seed"] == min(
                        x["seed"] for x in fine_tuned(rows) if x["arm"] == arm) else None)
    ax.set(xlabel="fine-tuning step", ylabel="validation accuracy (digits 5-9)",
           title="Fine-tuning on few images: pretrained vs scratch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return [(save_figure(fig, out / "pretrained_init.png", plt),
             "Validation accuracy on digits 5-9 during fine-tuning, one line per seed, each arm "
             "at its best lr")]
