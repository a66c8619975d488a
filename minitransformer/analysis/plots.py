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
import warnings

import numpy as np

from ..engine.kinds import kind_of
from ..engine.names import MATRICES, role
from ..errors import CheckpointError, ConfigError, RunFolderError
from ..measure.landscape import inspect_landscape
from ..training.runfolder import read_json, read_jsonl, read_run_config, run_files
from .runlogs import check_logs, numbers, pairs, read_log, read_metrics
from .figure import finish, pyplot, run_name
from .snapshot import load_snapshot
from .plots_model import (plot_attention_gpt, plot_attention_vit, plot_landscape,
                          plot_patch_filters, plot_spectra)


# --------------------------------------------------------------------------------------------
# Curves of several runs

def _few(n):
    """Line style for a curve of n points: with markers when a line alone would not show
    (a 1-step run has one logged step)."""
    return dict(marker="o", ms=4) if n < 3 else {}


def plot_loss(runs, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    marks = []                                         # (point, color, label) of divergences
    for k, run in enumerate(runs):
        rec, files = read_metrics(run), run_files(run)
        color = f"C{k}"
        tr = pairs(rec, files.metrics, "loss")
        va = pairs(rec, files.metrics, "val_loss")
        if tr:
            ax.plot(*zip(*tr), color=color, lw=1, alpha=0.6, label=f"{run_name(run)} train",
                    **_few(len(tr)))
        if va:
            ax.plot(*zip(*va), "o-", color=color, ms=4, lw=1.5, label=f"{run_name(run)} val")
        if files.summary.is_file():
            s = read_json(files.summary, keys=("status",))
            if s["status"] == "diverged" and tr:
                ax.plot(tr[-1][0], tr[-1][1], "x", color=color, ms=12, mew=3)
                marks.append((tr[-1], color, f"diverged at step {s.get('step')}"))
    for point, color, label in marks:
        _label_inside(ax, point, label, color)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=7.5, ncol=2)
    return finish(fig, "loss falls smoothly without spikes, validation tracks training; a "
                        "plateau at ln(vocab) or an x (divergence) means the start was unstable.",
                   path)


def _label_inside(ax, point, text, color):
    """Annotate `point` with `text` on the side that faces the middle of the axes, so that the
    label stays inside them (a divergence is usually the last, highest point: right, top)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    right = point[0] > (x0 + x1) / 2
    top = point[1] > (y0 + y1) / 2
    ax.annotate(text, point, color=color, fontsize=8, textcoords="offset points",
                xytext=(-9 if right else 9, -9 if top else 9),
                ha="right" if right else "left", va="top" if top else "bottom")


def _legend(ax, **kw):
    """A legend when something carries a label (matplotlib warns about an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def plot_lr(runs, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for k, run in enumerate(runs):
        rec = pairs(read_metrics(run), run_files(run).metrics, "lr")
        if rec:
            ax.plot(*zip(*rec), color=f"C{k}", lw=1.5, label=run_name(run), **_few(len(rec)))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate (per step)")
    ax.set_title("Learning-rate schedule")
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8)
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
        recs = read_log(run, tel.name, keys=("step", "tensors"))
        if not recs:
            continue
        names = _matrix_names(recs[0])
        steps = numbers(recs, tel, "step")
        ratios = _table(recs, tel, names, "update_ratio").T            # (steps, tensors)
        with warnings.catch_warnings():                # a step where every ratio is null
            warnings.simplefilter("ignore", RuntimeWarning)
            med, top = np.nanmedian(ratios, axis=1), np.nanmax(ratios, axis=1)
        ax.semilogy(steps, med, color=f"C{k}", lw=1.8, label=f"{run_name(run)} median",
                    **_few(len(steps)))
        ax.semilogy(steps, top, color=f"C{k}", lw=0.8, ls="--", label=f"{run_name(run)} max",
                    **_few(len(steps)))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("‖ΔW‖ / ‖W‖ per step (log scale)")
    ax.set_title("Update-to-weight ratio of the weight matrices")
    ax.grid(alpha=0.3, which="both")
    _legend(ax, fontsize=7.5, ncol=2)
    return finish(fig, "ratios start small and rise with the warmup to about 1e-3..1e-2, then "
                        "fall with the learning rate; ratios near 0.1 or more in the first steps "
                        "rewrite the initial weights.", path)


def _table(recs, path, names, key):
    """(tensors, steps) float array of tensors[name][key] of every record; null -> NaN."""
    cols = [numbers(recs, path, "tensors", n, key) for n in names]
    return np.array([[np.nan if v is None else v for v in col] for col in cols], dtype=float)


def _matrix_names(rec):
    """Telemetry tensors that are matrices (their weight norm is not a gain or bias)."""
    return [n for n in rec["tensors"] if role(n) in MATRICES or role(n) in ("embed", "pos")]


def _heat(ax, fig, mat, steps, names, label, plt):
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log10(np.where(mat > 0, mat, np.nan))
    left, right = (steps[0], steps[-1]) if steps[-1] > steps[0] else (steps[0] - 0.5,
                                                                      steps[0] + 0.5)
    im = ax.imshow(z, aspect="auto", interpolation="nearest", cmap="viridis",
                   extent=(left, right, len(names) - 0.5, -0.5))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6.5)
    ax.set_xlabel("optimizer step")
    fig.colorbar(im, ax=ax, label=label)


def plot_telemetry(run, path):
    plt = pyplot()
    tel = run_files(run).telemetry
    recs = read_jsonl(tel, keys=("step", "tensors"))
    names = _matrix_names(recs[0])
    steps = numbers(recs, tel, "step")
    ratio = _table(recs, tel, names, "update_ratio")                   # (tensors, steps)
    gnorm = _table(recs, tel, names, "grad_norm")
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
    tel = run_files(run).telemetry
    recs = read_jsonl(tel, keys=("step",))
    lines = [i + 1 for i, r in enumerate(recs) if "layers" in r]      # records with activations
    recs = [recs[i - 1] for i in lines]
    steps = numbers(recs, tel, "step", lines=lines)
    L = len(recs[0]["layers"]) if isinstance(recs[0]["layers"], list) else 0
    if L == 0:
        raise RunFolderError(f"{tel} line {lines[0]}: 'layers' is not a list of blocks")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    keys = [("resid_rms", "residual-stream RMS (activation units)", "Residual RMS after block"),
            ("attn_entropy", "attention entropy (nats)", "Attention entropy"),
            ("max_attn_logit", "max attention score (logit units)", "Max attention logit")]
    for ax, (key, ylabel, title) in zip(axes, keys):
        for i in range(L):
            ax.plot(steps, numbers(recs, tel, "layers", i, key, lines=lines), color=plt.cm.viridis(i / max(L - 1, 1)),
                    label=f"block {i}", **_few(len(steps)))
        ax.ticklabel_format(axis="y", useOffset=False)
        if key == "attn_entropy":
            ax.plot(steps, numbers(recs, tel, "layers", 0, "attn_entropy_uniform", lines=lines),
                    "k--", lw=1, label="uniform",
                    **_few(len(steps)))
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
    sh = run_files(run).sharpness
    recs = read_jsonl(sh, keys=("step", "lambda_max", "two_over_lr"))
    steps = numbers(recs, sh, "step")
    fig, ax = plt.subplots(figsize=(8, 4.4))
    ax.semilogy(steps, numbers(recs, sh, "lambda_max"), "o-", ms=3, label="λ_max of the Hessian")
    ax.semilogy(steps, numbers(recs, sh, "two_over_lr"), "k--", label="2 / lr",
                **_few(len(steps)))
    if all("adam_lambda_max" in r for r in recs):
        ax.semilogy(steps, numbers(recs, sh, "adam_lambda_max"), "s-", ms=3, color="C3",
                    label="λ_max of Adam-preconditioned Hessian")
        ax.semilogy(steps, numbers(recs, sh, "adam_threshold"), ":", color="C3",
                    label="(2 + 2β1)/((1 − β1) lr)", **_few(len(steps)))
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

def plot_runs(runs, out=None, prompt=None, image_index=0, landscape=False, note=None):
    """Draw every figure the runs' files allow; returns the list of written paths. A run
    without metrics.jsonl (an imported GPT-2) has no curves but its weights are drawn; what
    cannot be drawn is said through note(text) (default: ignored), never silently skipped."""
    note = note or (lambda text: None)
    pyplot()                                             # fail early and clearly without matplotlib
    runs = [Path(r) for r in runs]
    if not runs:
        raise ConfigError("give at least one run folder")
    for r in runs:
        read_run_config(r)                             # a run folder with a usable config.json
        check_logs(r)                                 # damaged logs: named before any drawing
    out = Path(out) if out is not None else runs[0] / "plots"
    if str(out).strip() == "":
        raise ConfigError("--out is empty: give a folder for the pictures")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with_metrics = [r for r in runs if read_metrics(r)]
    if with_metrics:
        written += [plot_loss(with_metrics, out / "loss.png"),
                    plot_lr(with_metrics, out / "lr.png")]
    for r in runs:
        if r not in with_metrics:
            note(f"{r}: no loss or learning-rate curves (no metrics.jsonl records: the run was "
                 f"imported or has not logged a step)")
    if any(read_log(r, "telemetry.jsonl") for r in runs):
        written.append(plot_update_ratios(runs, out / "update_ratio.png"))
    for run in runs:
        pre = f"{run_name(run)}_" if len(runs) > 1 else ""
        tel = read_log(run, "telemetry.jsonl")
        if tel:
            written.append(plot_telemetry(run, out / f"{pre}telemetry.png"))
            if any("layers" in r for r in tel):
                written.append(plot_activations(run, out / f"{pre}activations.png"))
        if read_log(run, "sharpness.jsonl"):
            written.append(plot_sharpness(run, out / f"{pre}sharpness.png"))
        if not run_files(run).checkpoint.is_file():
            note(f"{run}: no weight figures (no checkpoint.npz yet)")
            continue
        try:
            snap = load_snapshot(run)
        except CheckpointError as e:                   # damaged or non-finite: curves only
            note(f"{run}: no weight figures: {e}")
            continue
        written += _weight_figures(snap, out, pre, prompt, image_index, landscape, note)
    return written


def _weight_figures(snap, out, pre, prompt, image_index, landscape, note):
    """Spectra, attention maps (and ViT patch filters, the landscape) of one snapshot. The
    weights at step 0 are compared with nothing: an imported model's "init" is not its own."""
    init = snap.init_model().params if snap.step > 0 else None
    written = [plot_spectra(snap, out / f"{pre}spectra.png", init)]
    if kind_of(snap.model).inputs == "tokens":
        if snap.tokenizer() is None and prompt is None:
            note(f"{snap.run_dir}: no attention maps: the run has no vocabulary, so give the "
                 f"prompt as token ids, e.g. --prompt '464 318 257'")
        else:
            written.append(plot_attention_gpt(snap, out / f"{pre}attention.png", prompt))
    else:
        written.append(plot_attention_vit(snap, out / f"{pre}attention.png", image_index))
        written.append(plot_patch_filters(snap, out / f"{pre}patch_filters.png",
                                          init or snap.model.params))
    if landscape:
        res = inspect_landscape(snap, modes=("interp", "1d") if snap.step > 0 else ("1d",))
        written.append(plot_landscape(res, out / f"{pre}landscape.png"))
    return written
