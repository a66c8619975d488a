"""Instability analysis (Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode Connectivity and
the Lottery Ticket Hypothesis"): is training from step K stable to the noise of the data order?

    res = instability("runs/vit-1", from_steps=[0, 50, 200])
    res["points"][i]["barrier"]           # one entry per K

For each K: replay the run (its config.json decides everything, so this is the run's own
trajectory, bit for bit, from step 0 or from its start_from state, masks included) up to step
K; make two copies of the full state (weights and AdamW moments); train each copy to max_iters
with its own data order (two generators derived from the run's data seed and K); evaluate
along the straight line θ(α) = θ_A + α (θ_B − θ_A), α in [0, 1]:

    barrier = max over α of E(θ(α)) − (E(θ_A) + E(θ_B)) / 2

E is the validation error (1 − accuracy on the whole validation set) for a ViT, as in the
paper, and the mean validation loss on fixed batches for a GPT (the loss barrier is reported for
both). A barrier near 0 means the two copies end in one linearly connected basin: the network
is stable at K, and rewinding to K gives matching tickets (the paper's finding). With
same_order=True both copies see the same batches, end bit-identical, and the barrier is exactly 0
(the test of the instrument). A run trained with a mask keeps it in both copies.
"""
import copy
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..measure.sharpness import assign, flatten
from ..training import masks as M
from ..training.build import (get_batch, make_model, make_optimizer, make_streams,
                              resolve_data)
from ..training.evaluate import image_loss_and_accuracy
from ..training.checkpoint import restore_checkpoint
from ..training.runfolder import read_run_config, recorded_bpe
from ..training.step import train_step

COPY_SEED = 7_919          # the copies' data orders: SeedSequence([data_seed, COPY_SEED, K, copy])


def train_span(model, opt, cfg, data, rng, start, stop, masks=None):
    """Updates start .. stop-1 of the run's recipe (training/step.py) on batches from rng, with
    no evaluation and no files. A refused (diverged) step ends the span early."""
    for step in range(start, stop):
        x, y = get_batch(cfg, data, "train", rng)
        if not train_step(model, opt, x, y, cfg.lr_at(step), cfg.grad_clip, masks=masks).updated:
            return step
    return stop


def path_metrics(model, theta_a, theta_b, alphas, evaluate):
    """[evaluate(model) at θ_A + α (θ_B − θ_A)] for α in alphas; model.params restored after.
    θ_B = θ_A gives θ_A itself at every α, exactly (the difference is exactly 0)."""
    saved = flatten(model.params)
    a, b = flatten(theta_a), flatten(theta_b)
    try:
        out = []
        for alpha in alphas:
            assign(model.params, a + alpha * (b - a))
            out.append(evaluate(model))
        return out
    finally:
        assign(model.params, saved)


def barrier(values):
    """max along the path minus the mean of its two ends."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.max() - (values[0] + values[-1]) / 2.0)


def evaluator(cfg, data, n_batches=None):
    """evaluate(model) -> {"loss", "error"?}: the whole validation set for a ViT; for a GPT the
    mean loss over eval_iters validation batches fixed once (the same at every α)."""
    if cfg.model == "vit":
        def evaluate(model):
            loss, acc = image_loss_and_accuracy(model, data.val_x, data.val_y)
            return {"loss": loss, "error": 1.0 - acc}
        return evaluate
    rng = np.random.default_rng(np.random.SeedSequence([cfg.data_seed, COPY_SEED]))
    batches = [get_batch(cfg, data, "val", rng) for _ in range(n_batches or cfg.eval_iters)]

    def evaluate(model):
        return {"loss": float(np.mean([model.loss(x, y) for x, y in batches]))}
    return evaluate


def instability(run_dir, from_steps, n_points=11, same_order=False, progress=True):
    """The barrier between two copies trained from step K, for every K of from_steps."""
    _, cfg, mcfg = read_run_config(run_dir)
    data = resolve_data(cfg, recorded=recorded_bpe(run_dir))   # the run's own tokenizer
    model = make_model(cfg, mcfg)
    if cfg.init_from is not None:                              # as the run itself started
        from ..training.transfer import apply_init_from
        apply_init_from(model, cfg.init_from, init=cfg.init_name, seed=cfg.init_seed,
                        reinit_head=cfg.reinit_head, allow_partial=cfg.allow_partial,
                        vocab=data.vocab if cfg.model == "gpt" else None)
    opt = make_optimizer(cfg, mcfg, model.params)
    streams = make_streams(cfg.data_seed)
    first = 0                                                  # a lottery branch starts at K
    if cfg.start_from is not None:
        first = restore_checkpoint(Path(cfg.start_from), model.params, opt, streams, {})
    masks = M.run_masks(cfg, run_dir, model.params, resume=True)
    if masks is not None:
        M.apply_masks(model.params, masks)
        M.mask_optimizer_state(opt, masks)
    steps = sorted(set(int(k) for k in from_steps))
    if not steps or steps[0] < first or steps[-1] >= cfg.max_iters:
        raise ConfigError(f"--from-step must be between {first} and max_iters - 1 "
                          f"({cfg.max_iters - 1}), got {', '.join(str(k) for k in from_steps)}")
    if n_points < 3:
        raise ConfigError(f"--points must be at least 3, got {n_points}")
    rng = streams["data"]                                      # the run's own data order
    evaluate = evaluator(cfg, data)
    alphas = np.linspace(0.0, 1.0, n_points)
    points, at = [], first
    for k in steps:
        train_span(model, opt, cfg, data, rng, at, k, masks)   # the run itself, up to step K
        at = k
        ends, stopped = [], []
        for c in (0, 1):
            twin, twin_opt = copy.deepcopy(model), copy.deepcopy(opt)
            order = 0 if same_order else c
            twin_rng = np.random.default_rng(np.random.SeedSequence([cfg.data_seed, COPY_SEED,
                                                                     k, order]))
            if progress:
                _say(f"from step {k}: copy {'AB'[c]}, {cfg.max_iters - k} steps")
            end = train_span(twin, twin_opt, cfg, data, twin_rng, k, cfg.max_iters, masks)
            if end < cfg.max_iters:
                stopped.append(f"copy {'AB'[c]} diverged at step {end}")
            ends.append(twin.params)
        path = path_metrics(model, ends[0], ends[1], alphas, evaluate)
        point = {"from_step": k, "alphas": [float(a) for a in alphas],
                 "loss": [p["loss"] for p in path],
                 "loss_barrier": barrier([p["loss"] for p in path])}
        if cfg.model == "vit":
            point["error"] = [p["error"] for p in path]
            point["error_barrier"] = barrier(point["error"])
        point["barrier"] = point.get("error_barrier", point["loss_barrier"])
        if stopped:
            point["note"] = "; ".join(stopped)
        points.append(point)
    return {"run": str(run_dir), "model": cfg.model, "max_iters": cfg.max_iters,
            "same_order": same_order, "measure": "error" if cfg.model == "vit" else "loss",
            "points": points}


def _say(text):
    import sys
    if sys.stderr.isatty():
        print(f"instability: {text}", file=sys.stderr, flush=True)


def format_result(res):
    lines = [f"instability of {res['run']} ({res['measure']} barrier; max along the line between "
             f"two copies minus the mean of the ends)",
             f"{'from step':>9}  {'barrier':>9}  {'loss barrier':>12}  {'ends':>17}"]
    key = res["measure"]
    for p in res["points"]:
        ends = f"{p[key][0]:.4f} / {p[key][-1]:.4f}"
        lines.append(f"{p['from_step']:>9}  {p['barrier']:9.4f}  {p['loss_barrier']:12.4f}  "
                     f"{ends:>17}")
    lines.append("Small (near 0): stable at that step, rewinding to it should find tickets.")
    return "\n".join(lines)


def plot_barriers(res, path):
    """Barrier against the step K the copies start from: the error barrier (ViT) and the loss
    barrier, side by side."""
    from ..analysis.figure import pyplot
    plt = pyplot()
    ks = [p["from_step"] for p in res["points"]]
    keys = (["error_barrier"] if res["model"] == "vit" else []) + ["loss_barrier"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.plot(ks, [p[key] for p in res["points"]], "o-")
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xlabel("step K the two copies start from")
        ax.set_ylabel(key.replace("_", " ") + (" (nats)" if key == "loss_barrier" else ""))
        ax.grid(alpha=0.3)
    fig.suptitle("instability: a small barrier = stable to the data order", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
