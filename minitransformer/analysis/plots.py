"""Pictures of runs: `python cli.py plot RUN_DIR [RUN_DIR ...] [--out DIR]`.

    paths = plot_runs(["runs/pre", "runs/post"], out="figs")

Every figure has a title, axis labels with units, and one line at the bottom saying what a
healthy picture looks like. What is drawn (each figure only when its data exists):

    loss.png            training loss (thin) and validation loss (dots) of every run, one figure
    lr.png              the learning-rate schedule of every run
    update_ratio.png    median and max update-to-weight ratio over steps, every run with telemetry
    telemetry.png       heatmaps, tensor x step: update-to-weight ratio and gradient norm
                        (from telemetry.jsonl)
    activations.png     per block over steps: residual RMS, attention entropy, max attention logit
                        (from telemetry.jsonl)
    sharpness.png       top Hessian eigenvalue over steps against 2/lr (from sharpness.jsonl)
    spectra.png, attention.png, patch_filters.png (and landscape.png with --landscape):
                        pictures of the run's model, drawn by plots_model.py
With more than one run, the per-run figures are prefixed with the run folder's name.
matplotlib comes from the optional `plot` extra (figure.py imports it, with the Agg backend).
"""
from pathlib import Path

import numpy as np

from ..engine.kinds import kind_of
from ..engine.names import MATRICES, role
from ..errors import ConfigError, NotFound
from ..measure.landscape import inspect_landscape
from ..training.runfolder import read_json, read_jsonl, run_files
from .figure import finish, pyplot, run_name
from .snapshot import load_snapshot
from .plots_model import (plot_attention_gpt, plot_attention_vit, plot_landscape,
                          plot_patch_filters, plot_spectra)


def read_metrics(run):
    p = run_files(run).metrics
    return read_jsonl(p) if p.is_file() else []


# --------------------------------------------------------------------------------------------
# Curves of several runs

def plot_loss(runs, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for k, run in enumerate(runs):
        rec = read_metrics(run)
        color = f"C{k}"
        tr = [(r["step"], r["loss"]) for r in rec if r.get("loss") is not None]
        va = [(r["step"], r["val_loss"]) for r in rec if r.get("val_loss") is not None]
        if tr:
            ax.plot(*zip(*tr), color=color, lw=1, alpha=0.6, label=f"{run_name(run)} train")
        if va:
            ax.plot(*zip(*va), "o-", color=color, ms=4, lw=1.5, label=f"{run_name(run)} val")
        summary = run_files(run).summary
        if summary.is_file():
            s = read_json(summary)
            if s.get("status") == "diverged" and tr:
                ax.plot(tr[-1][0], tr[-1][1], "x", color=color, ms=12, mew=3)
                ax.annotate(f"diverged at step {s.get('step')}", tr[-1], color=color,
                            xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, ncol=2)
    return finish(fig, "loss falls smoothly without spikes, validation tracks training; a "
                        "plateau at ln(vocab) or an x (divergence) means the start was unstable.",
                   path)


def plot_lr(runs, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for k, run in enumerate(runs):
        rec = [(r["step"], r["lr"]) for r in read_metrics(run) if r.get("lr") is not None]
        if rec:
            ax.plot(*zip(*rec), color=f"C{k}", lw=1.5, label=run_name(run))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate (per step)")
    ax.set_title("Learning-rate schedule")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return finish(fig, "a linear warmup to the peak, then a smooth decay to min_lr; no warmup "
                        "means the peak rate hits the tiny initial weights at step 0.", path)


# --------------------------------------------------------------------------------------------
# Telemetry (telemetry.jsonl)

def plot_update_ratios(runs, path):
    """Median and max over weight matrices of ‖ΔW‖/‖W‖ per logged step, one color per run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for k, run in enumerate(runs):
        tel = run_files(run).telemetry
        recs = read_jsonl(tel) if tel.is_file() else []
        if not recs:
            continue
        names = _matrix_names(recs[0])
        steps = [r["step"] for r in recs]
        ratios = np.array([[r["tensors"][n]["update_ratio"] or np.nan for n in names]
                           for r in recs], dtype=float)
        ax.semilogy(steps, np.nanmedian(ratios, axis=1), color=f"C{k}", lw=1.8,
                    label=f"{run_name(run)} median")
        ax.semilogy(steps, np.nanmax(ratios, axis=1), color=f"C{k}", lw=0.8, ls="--",
                    label=f"{run_name(run)} max")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("‖ΔW‖ / ‖W‖ per step (log scale)")
    ax.set_title("Update-to-weight ratio of the weight matrices")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, ncol=2)
    return finish(fig, "ratios start small and rise with the warmup to about 1e-3..1e-2, then "
                        "fall with the learning rate; ratios near 0.1 or more in the first steps "
                        "rewrite the initial weights.", path)


def _matrix_names(rec):
    """Telemetry tensors that are matrices (their weight norm is not a gain or bias)."""
    return [n for n in rec["tensors"] if role(n) in MATRICES or role(n) in ("embed", "pos")]


def _heat(ax, fig, mat, steps, names, label, plt):
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log10(np.where(mat > 0, mat, np.nan))
    im = ax.imshow(z, aspect="auto", interpolation="nearest", cmap="viridis",
                   extent=(steps[0], steps[-1], len(names) - 0.5, -0.5))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6.5)
    ax.set_xlabel("optimizer step")
    fig.colorbar(im, ax=ax, label=label)


def plot_telemetry(run, path):
    plt = pyplot()
    recs = read_jsonl(run_files(run).telemetry)
    names = _matrix_names(recs[0])
    steps = [r["step"] for r in recs]
    ratio = np.array([[r["tensors"][n]["update_ratio"] or np.nan for r in recs] for n in names],
                     dtype=float)
    gnorm = np.array([[r["tensors"][n]["grad_norm"] or np.nan for r in recs] for n in names],
                     dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.26 * len(names) + 2.4))
    _heat(axes[0], fig, ratio, steps, names, "log10 ‖ΔW‖/‖W‖ (one step)", plt)
    axes[0].set_title("Update-to-weight ratio per tensor")
    _heat(axes[1], fig, gnorm, steps, names, "log10 ‖∂L/∂W‖ (before clipping)", plt)
    axes[1].set_title("Gradient norm per tensor")
    fig.suptitle(f"{run_name(run)}: what each step did to each weight matrix")
    return finish(fig, "ratios near 1e-3 (-3) per step, no bright band in the first steps; "
                        "gradient norms of similar size across depth (post-LN: growing toward the "
                        "output).", path)


def plot_activations(run, path):
    plt = pyplot()
    recs = [r for r in read_jsonl(run_files(run).telemetry) if "layers" in r]
    steps = [r["step"] for r in recs]
    L = len(recs[0]["layers"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    keys = [("resid_rms", "residual-stream RMS (activation units)", "Residual RMS after block"),
            ("attn_entropy", "attention entropy (nats)", "Attention entropy"),
            ("max_attn_logit", "max attention score (logit units)", "Max attention logit")]
    for ax, (key, ylabel, title) in zip(axes, keys):
        for i in range(L):
            ax.plot(steps, [r["layers"][i][key] for r in recs], color=plt.cm.viridis(i / max(L - 1, 1)),
                    label=f"block {i}")
        ax.ticklabel_format(axis="y", useOffset=False)
        if key == "attn_entropy":
            ax.plot(steps, [r["layers"][0]["attn_entropy_uniform"] for r in recs], "k--", lw=1,
                    label="uniform")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{run_name(run)}: activations over training (one traced batch per log step)")
    return finish(fig, "RMS bounded and similar across blocks, entropy falling gradually below "
                        "uniform but not to 0, max logit growing slowly (not exploding).", path)


# --------------------------------------------------------------------------------------------
# Sharpness (sharpness.jsonl)

def plot_sharpness(run, path):
    plt = pyplot()
    recs = read_jsonl(run_files(run).sharpness)
    steps = [r["step"] for r in recs]
    fig, ax = plt.subplots(figsize=(8, 4.4))
    ax.semilogy(steps, [r["lambda_max"] for r in recs], "o-", ms=3, label="λ_max of the Hessian")
    ax.semilogy(steps, [r["two_over_lr"] for r in recs], "k--", label="2 / lr")
    if all("adam_lambda_max" in r for r in recs):
        ax.semilogy(steps, [r["adam_lambda_max"] for r in recs], "s-", ms=3, color="C3",
                    label="λ_max of Adam-preconditioned Hessian")
        ax.semilogy(steps, [r["adam_threshold"] for r in recs], ":", color="C3",
                    label="(2 + 2β1)/((1 − β1) lr)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("eigenvalue (nats per parameter unit², log scale)")
    ax.set_title(f"{run_name(run)}: sharpness vs the stability threshold")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return finish(fig, "sharpness rises toward its threshold and hovers at or below it (edge of "
                        "stability). Under Adam the raw λ_max sits far below 2/lr; the "
                        "preconditioned λ_max (red) is the one bounded by its threshold (dotted), "
                        "and warmup keeps it there while lr grows.", path)


# --------------------------------------------------------------------------------------------
# Everything for a list of runs

def plot_runs(runs, out=None, prompt=None, image_index=0, landscape=False):
    """Draw every figure the runs' files allow; returns the list of written paths."""
    pyplot()                                           # fail early and clearly without matplotlib
    runs = [Path(r) for r in runs]
    if not runs:
        raise ConfigError("give at least one run folder")
    for r in runs:
        if not r.is_dir():
            raise NotFound(f"run folder not found: {r}")
        if not run_files(r).metrics.is_file():
            raise ConfigError(f"{r} is not a run folder (it has no metrics.jsonl)")
    out = Path(out) if out is not None else runs[0] / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_loss(runs, out / "loss.png"), plot_lr(runs, out / "lr.png")]
    if any(run_files(r).telemetry.is_file() for r in runs):
        written.append(plot_update_ratios(runs, out / "update_ratio.png"))
    for run in runs:
        pre = f"{run_name(run)}_" if len(runs) > 1 else ""
        files = run_files(run)
        tel = files.telemetry
        if tel.is_file() and read_jsonl(tel):
            written.append(plot_telemetry(run, out / f"{pre}telemetry.png"))
            if any("layers" in r for r in read_jsonl(tel)):
                written.append(plot_activations(run, out / f"{pre}activations.png"))
        sh = files.sharpness
        if sh.is_file() and read_jsonl(sh):
            written.append(plot_sharpness(run, out / f"{pre}sharpness.png"))
        if not files.checkpoint.is_file():
            continue
        snap = load_snapshot(run)
        init = snap.init_model().params
        written.append(plot_spectra(snap, out / f"{pre}spectra.png", init))
        if kind_of(snap.model).inputs == "tokens":
            written.append(plot_attention_gpt(snap, out / f"{pre}attention.png", prompt))
        else:
            written.append(plot_attention_vit(snap, out / f"{pre}attention.png", image_index))
            written.append(plot_patch_filters(snap, out / f"{pre}patch_filters.png", init))
        if landscape:
            res = inspect_landscape(snap, modes=("interp", "1d"))
            written.append(plot_landscape(res, out / f"{pre}landscape.png"))
    return written
