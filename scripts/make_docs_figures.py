#!/usr/bin/env python
"""Make the pictures of docs/inspection.md (and README's "Inspection" section) from real runs.

    python scripts/make_docs_figures.py                 # trains what is missing, then draws
    python scripts/make_docs_figures.py --overhead      # only measure the telemetry's cost

Runs (under --runs, default runs/docs; each is `python cli.py train` with these options, a few
minutes in all on 2 cores, one after another):
    gpt-{pre,post}-{warmup,nowarmup}   2-layer GPT (128 channels, block 64, batch 12) on Tiny
                                       Shakespeare, AdamW lr 1e-2 (high on purpose: the effect of
                                       warmup shows in 400 steps), cosine to 1e-4, clip 1.0,
                                       warmup 100 or 0 steps
    vit                                the ViT (4 layers, 64 channels, 7x7 patches) on MNIST,
                                       batch 64, lr 2e-3, 1000 steps
Then each GPT run is replayed bit for bit with telemetry every 10 steps and sharpness (Lanczos,
float64, one fixed batch, raw and Adam-preconditioned) every 40 steps (`python cli.py inspect
telemetry RUN --every 10 --sharpness-every 40`), and the figures are drawn into docs/ with
minitransformer.plots. PNGs are written at 100 dpi and checked to stay under 300 KB.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from minitransformer.analysis import plots, plots_model  # noqa: E402
from minitransformer.analysis.replay import record_run  # noqa: E402
from minitransformer.measure import telemetry  # noqa: E402
from minitransformer.analysis.coordcheck import coordcheck  # noqa: E402
from minitransformer.measure.landscape import inspect_landscape  # noqa: E402
from minitransformer.analysis.snapshot import load_snapshot  # noqa: E402
from minitransformer.training.config import TrainConfig  # noqa: E402
from minitransformer.training.loop import run  # noqa: E402

GPT = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=400, lr=1e-2,
           min_lr=1e-4, eval_interval=50, eval_iters=10, checkpoint_interval=0)
RUNS = {f"gpt-{norm}-{'warmup' if w else 'nowarmup'}": dict(GPT, norm=norm, warmup_iters=w)
        for norm in ("pre", "post") for w in (100, 0)}
VIT = dict(model="vit", data="mnist", n_layer=4, n_head=4, n_embd=64, patch_size=7, batch_size=64,
           lr=2e-3, min_lr=1e-4, warmup_iters=100, weight_decay=0.05, max_iters=1000,
           checkpoint_interval=0, eval_interval=250, eval_iters=20)
MAX_BYTES = 300_000


def train_missing(root):
    for name, kw in list(RUNS.items()) + [("vit", VIT)]:
        out = root / name
        if (out / "summary.json").is_file():
            continue
        if out.exists():
            shutil.rmtree(out)
        t = time.time()
        s = run(TrainConfig.for_model(**kw), out, progress=False)
        print(f"{name}: {s['status']}, val loss {s.get('final_val_loss')}, "
              f"{time.time() - t:.0f} s", flush=True)
        if name in RUNS:
            t = time.time()
            r = record_run(out, every=10, sharpness_every=40)
            print(f"  telemetry replay: {r['records']} records, reproduces the checkpoint: "
                  f"{r['checked_against_checkpoint']}, {time.time() - t:.0f} s", flush=True)


def measure_overhead(steps=60, every=10):
    """The telemetry's cost on nanoGPT's CPU config (4 layers, 128 channels, block 64, batch 12,
    float32): median ms of a training step and of one record, over `steps` steps."""
    from minitransformer.training.build import (resolve_data, model_config, make_model,
                                                make_optimizer, make_streams, get_batch)
    from minitransformer.training.step import train_step
    cfg = TrainConfig()
    data = resolve_data(cfg)
    mcfg, _ = model_config(cfg, data)
    model = make_model(cfg, mcfg)
    opt = make_optimizer(cfg, mcfg, model.params)
    rng = make_streams(cfg.data_seed)["data"]
    t_step, t_rec, t_act = [], [], []
    for step in range(steps):
        t0 = time.perf_counter()
        x, y = get_batch(cfg, data, "train", rng)
        res = train_step(model, opt, x, y, cfg.lr_at(step), cfg.grad_clip, keep_before=True)
        t1 = time.perf_counter()
        telemetry.copy_params(model.params)            # the cost of the copy train_step made
        t2 = time.perf_counter()
        telemetry.step_record(step, res.lr, res.grad_norm, cfg.grad_clip, res.before, model,
                              res.grads, opt, x)
        t3 = time.perf_counter()
        telemetry.step_record(step, res.lr, res.grad_norm, cfg.grad_clip, res.before, model,
                              res.grads, opt, x, activations=False)
        t4 = time.perf_counter()
        if step >= 5:                                  # skip compilation and warm-up
            t_step.append((t1 - t0) - (t2 - t1))       # the step without telemetry's copy
            t_rec.append((t2 - t1) + (t3 - t2))
            t_act.append((t2 - t1) + (t4 - t3))
    ms = 1e3 * np.median(t_step)
    rec, rec_noact = 1e3 * np.median(t_rec), 1e3 * np.median(t_act)
    return {"ms_per_step": round(ms, 1), "ms_per_record": round(rec, 1),
            "ms_per_record_without_activations": round(rec_noact, 1),
            f"overhead_every_{every}": round(rec / every / ms, 4),
            "overhead_every_1": round(rec / ms, 3)}


def check_size(paths):
    for p in paths:
        size = Path(p).stat().st_size
        print(f"  {p} ({size // 1000} KB)")
        if size > MAX_BYTES:
            raise SystemExit(f"{p} is {size} bytes, over {MAX_BYTES}")


def draw(root, docs):
    gpt = [root / n for n in RUNS]
    pre_w, pre_nw, post_w, post_nw = (root / n for n in RUNS)
    out = []
    out.append(plots.plot_loss(gpt, docs / "inspect_loss.png"))
    out.append(plots.plot_lr([pre_w, pre_nw], docs / "inspect_lr.png"))
    out.append(plots.plot_update_ratios(gpt, docs / "inspect_update_ratio.png"))
    out.append(plots.plot_telemetry(post_nw, docs / "inspect_telemetry_post_nowarmup.png"))
    out.append(plots.plot_telemetry(post_w, docs / "inspect_telemetry_post_warmup.png"))
    out.append(plots.plot_activations(post_nw, docs / "inspect_activations_post_nowarmup.png"))
    out.append(plots.plot_sharpness(pre_nw, docs / "inspect_sharpness_pre_nowarmup.png"))
    out.append(plots.plot_sharpness(pre_w, docs / "inspect_sharpness_pre_warmup.png"))
    snap = load_snapshot(pre_w)
    out.append(plots_model.plot_spectra(snap, docs / "inspect_spectra.png", snap.init_model().params))
    out.append(plots_model.plot_attention_gpt(snap, docs / "inspect_attention_gpt.png",
                                        prompt="ROMEO:\nWhat light through yonder"))
    res = inspect_landscape(snap, modes=("interp", "1d", "2d"), points=15, n_batches=4)
    out.append(plots_model.plot_landscape(res, docs / "inspect_landscape.png"))
    vit = load_snapshot(root / "vit")
    out.append(plots_model.plot_attention_vit(vit, docs / "inspect_attention_vit.png", image_index=0))
    out.append(plots_model.plot_patch_filters(vit, docs / "inspect_patch_filters.png",
                                        vit.init_model().params))
    cc = [coordcheck("gpt", i, (32, 64, 128, 256), steps=3) for i in ("gpt2", "mup")]
    out.append(plots_model.plot_coordcheck(cc, docs / "inspect_coordcheck.png"))
    check_size(out)
    summary = {n: json.loads((root / n / "summary.json").read_text()) for n in list(RUNS) + ["vit"]}
    for n, s in summary.items():
        print(f"{n}: {s['status']}, final val loss {s.get('final_val_loss')}"
              + (f", val acc {s['val_acc']}" if "val_acc" in s else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "docs"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--overhead", action="store_true", help="only measure the telemetry's cost")
    args = ap.parse_args()
    if args.overhead:
        print(json.dumps(measure_overhead()))
        return
    root, docs = Path(args.runs), Path(args.docs)
    root.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    train_missing(root)
    draw(root, docs)


if __name__ == "__main__":
    main()
