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
    spectra.png         eigenvalue histograms of a few weight matrices at init and now, against
                        the Marchenko-Pastur prediction
    attention.png       attention maps of every layer and head: GPT on a text prompt, ViT as
                        CLS-to-patch attention over an image
    patch_filters.png   ViT: the patch-embedding filters as image tiles, at init and now
With more than one run, the per-run figures are prefixed with the run folder's name.
matplotlib comes from the optional `plot` extra and is imported only here, with the Agg backend.
"""
import math
from pathlib import Path

import numpy as np

from ..engine.kinds import kind_of
from ..engine.names import GPT_NAMES, MATRICES, VIT_NAMES, block_prefix, role
from ..measure.telemetry import read_jsonl
from ..errors import ConfigError, MissingDependency, NotFound

DPI = 100


MissingMatplotlib = MissingDependency                   # the name the tests and callers know


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingMatplotlib("plotting needs matplotlib: pip install -e .[plot]") from None
    return plt


def _healthy(fig, text):
    """The one line (wrapped to the figure's width) saying what a healthy picture looks like;
    returns the fraction of the figure's height it takes."""
    import textwrap
    width = max(40, int(fig.get_figwidth() * 15))      # ~15 characters per inch at 8.5 pt
    lines = textwrap.wrap("Healthy: " + text, width)
    fig.text(0.5, 0.008, "\n".join(lines), ha="center", va="bottom", fontsize=8.5,
             style="italic")
    return (0.2 + 0.16 * len(lines)) / fig.get_figheight()


def _finish(fig, healthy, path, colorbar=None):
    """The healthy line at the bottom, the axes laid out above it, save, close.
    colorbar: (mappable, label) of one colorbar shared by all axes, drawn at the right."""
    bottom = _healthy(fig, healthy)
    if colorbar is None:
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.subplots_adjust(left=0.08, right=0.86, bottom=bottom + 0.07, top=0.9,
                            wspace=0.35, hspace=0.45)
        cax = fig.add_axes((0.89, bottom + 0.12, 0.018, 0.9 - bottom - 0.17))
        fig.colorbar(colorbar[0], cax=cax, label=colorbar[1])
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return Path(path)


def _name(run):
    return Path(run).resolve().name


def _src(snap):
    """A short name for a snapshot in titles: the run folder's name and the step."""
    if snap.run_dir is not None:
        return f"{Path(snap.run_dir).resolve().name} (step {snap.step})"
    return snap.source


def read_metrics(run):
    p = Path(run) / "metrics.jsonl"
    return read_jsonl(p) if p.is_file() else []


# --------------------------------------------------------------------------------------------
# Curves of several runs

def plot_loss(runs, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for k, run in enumerate(runs):
        rec = read_metrics(run)
        color = f"C{k}"
        tr = [(r["step"], r["loss"]) for r in rec if r.get("loss") is not None]
        va = [(r["step"], r["val_loss"]) for r in rec if r.get("val_loss") is not None]
        if tr:
            ax.plot(*zip(*tr), color=color, lw=1, alpha=0.6, label=f"{_name(run)} train")
        if va:
            ax.plot(*zip(*va), "o-", color=color, ms=4, lw=1.5, label=f"{_name(run)} val")
        summary = Path(run) / "summary.json"
        if summary.is_file():
            import json
            s = json.loads(summary.read_text())
            if s.get("status") == "diverged" and tr:
                ax.plot(tr[-1][0], tr[-1][1], "x", color=color, ms=12, mew=3)
                ax.annotate(f"diverged at step {s.get('step')}", tr[-1], color=color,
                            xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, ncol=2)
    return _finish(fig, "loss falls smoothly without spikes, validation tracks training; a "
                        "plateau at ln(vocab) or an x (divergence) means the start was unstable.",
                   path)


def plot_lr(runs, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for k, run in enumerate(runs):
        rec = [(r["step"], r["lr"]) for r in read_metrics(run) if r.get("lr") is not None]
        if rec:
            ax.plot(*zip(*rec), color=f"C{k}", lw=1.5, label=_name(run))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate (per step)")
    ax.set_title("Learning-rate schedule")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, "a linear warmup to the peak, then a smooth decay to min_lr; no warmup "
                        "means the peak rate hits the tiny initial weights at step 0.", path)


# --------------------------------------------------------------------------------------------
# Telemetry (telemetry.jsonl)

def plot_update_ratios(runs, path):
    """Median and max over weight matrices of ‖ΔW‖/‖W‖ per logged step, one color per run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for k, run in enumerate(runs):
        tel = Path(run) / "telemetry.jsonl"
        recs = read_jsonl(tel) if tel.is_file() else []
        if not recs:
            continue
        names = _matrix_names(recs[0])
        steps = [r["step"] for r in recs]
        ratios = np.array([[r["tensors"][n]["update_ratio"] or np.nan for n in names]
                           for r in recs], dtype=float)
        ax.semilogy(steps, np.nanmedian(ratios, axis=1), color=f"C{k}", lw=1.8,
                    label=f"{_name(run)} median")
        ax.semilogy(steps, np.nanmax(ratios, axis=1), color=f"C{k}", lw=0.8, ls="--",
                    label=f"{_name(run)} max")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("‖ΔW‖ / ‖W‖ per step (log scale)")
    ax.set_title("Update-to-weight ratio of the weight matrices")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, ncol=2)
    return _finish(fig, "ratios start small and rise with the warmup to about 1e-3..1e-2, then "
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
    plt = _plt()
    recs = read_jsonl(Path(run) / "telemetry.jsonl")
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
    fig.suptitle(f"{_name(run)}: what each step did to each weight matrix")
    return _finish(fig, "ratios near 1e-3 (-3) per step, no bright band in the first steps; "
                        "gradient norms of similar size across depth (post-LN: growing toward the "
                        "output).", path)


def plot_activations(run, path):
    plt = _plt()
    recs = [r for r in read_jsonl(Path(run) / "telemetry.jsonl") if "layers" in r]
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
    fig.suptitle(f"{_name(run)}: activations over training (one traced batch per log step)")
    return _finish(fig, "RMS bounded and similar across blocks, entropy falling gradually below "
                        "uniform but not to 0, max logit growing slowly (not exploding).", path)


# --------------------------------------------------------------------------------------------
# Sharpness (sharpness.jsonl)

def plot_sharpness(run, path):
    plt = _plt()
    recs = read_jsonl(Path(run) / "sharpness.jsonl")
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
    ax.set_title(f"{_name(run)}: sharpness vs the stability threshold")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _finish(fig, "sharpness rises toward its threshold and hovers at or below it (edge of "
                        "stability). Under Adam the raw λ_max sits far below 2/lr; the "
                        "preconditioned λ_max (red) is the one bounded by its threshold (dotted), "
                        "and warmup keeps it there while lr grows.", path)


# --------------------------------------------------------------------------------------------
# Spectra vs Marchenko-Pastur

def spectra_names(model):
    """The matrices spectra.png shows: Q, fc and fc_proj of the first and the last block."""
    names = kind_of(model).names
    shown = (names.block.qkv + ".weight[q]", names.block.fc + ".weight",
             names.block.fc_proj + ".weight")
    last = model.cfg.n_layer - 1
    return [[block_prefix(names, i) + n for n in shown] for i in sorted({0, last})]


def _spectrum_panel(ax, w, color, label):
    from ..measure.spectra import mp_cdf
    w = np.asarray(w, dtype=np.float64)
    m, n = max(w.shape), min(w.shape)
    q = n / m
    s2 = float(np.var(w))
    if s2 == 0:
        return
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    lam = np.clip(np.linalg.eigvalsh(gram), 1e-30, None) / m / s2      # in units of σ²
    edges = np.geomspace(max(min(lam.min(), (1 - math.sqrt(q)) ** 2), 1e-3) * 0.8,
                         max(lam.max(), (1 + math.sqrt(q)) ** 2) * 1.25, 40)
    counts, _ = np.histogram(lam, edges)
    expect = n * np.diff(mp_cdf(edges, 1.0, q))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=color, alpha=0.45,
           label=f"{label} (σ={math.sqrt(s2):.3g})")
    ax.step(edges[:-1], expect, where="post", color=color, lw=1.2)
    out = lam[lam > (1 + math.sqrt(q)) ** 2 * 1.05]
    ax.plot(out, np.full_like(out, 0.5), "v", color=color, ms=5)


def plot_spectra(snap, path, init_params=None):
    from ..measure.spectra import weight_matrices
    plt = _plt()
    mats = dict(weight_matrices(snap.model.params))
    mats0 = dict(weight_matrices(init_params)) if init_params is not None else {}
    grid = spectra_names(snap.model)
    fig, axes = plt.subplots(len(grid), len(grid[0]), figsize=(13, 3.4 * len(grid)), squeeze=False)
    for r, row in enumerate(grid):
        for c, name in enumerate(row):
            ax = axes[r][c]
            if name in mats0:
                _spectrum_panel(ax, mats0[name], "0.4", "init")
            _spectrum_panel(ax, mats[name], "C3", f"step {snap.step}")
            w = mats[name]
            q = min(w.shape) / max(w.shape)
            ax.axvline((1 + math.sqrt(q)) ** 2, color="k", ls="--", lw=0.8)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_title(f"{name}  {w.shape[0]}x{w.shape[1]}", fontsize=9)
            ax.set_xlabel("eigenvalue λ of WᵀW/m, in units of σ² (dimensionless)")
            ax.set_ylabel("eigenvalues per bin (count)")
            ax.legend(fontsize=7)
    fig.suptitle(f"{_src(snap)}: weight spectra (bars) vs Marchenko-Pastur (lines); dashed: "
                 f"bulk edge λ+; ▼ outliers")
    return _finish(fig, "at init the bars follow the MP line and stop at the edge λ+; after "
                        "training eigenvalues leave the bulk: outliers (▼) beyond λ+ and a wider, "
                        "heavier-tailed spread carry what was learned (a trained layer that still "
                        "matches MP learned nothing).", path)


# --------------------------------------------------------------------------------------------
# Attention maps

def gpt_prompt_ids(snap, prompt=None, length=48):
    """The prompt as ids (cropped to block_size), or the first `length` characters of the
    validation text."""
    from ..training.tokenizer import prompt_ids
    if prompt is None:
        ids = snap.data().val[:min(length, snap.model.cfg.block_size)]
    else:
        tok = snap.tokenizer()
        if tok is None:
            raise ConfigError(f"{_src(snap)} has no tokenizer: it reads token ids, not a prompt")
        ids = prompt_ids(tok, prompt)[-snap.model.cfg.block_size:]
    return np.asarray(ids, dtype=np.int64)


def plot_attention_gpt(snap, path, prompt=None):
    plt = _plt()
    ids = gpt_prompt_ids(snap, prompt)
    tok = snap.tokenizer()
    chars = [repr(piece)[1:-1] for piece in tok.pieces(ids)]
    _, trace = snap.model.forward(ids[None], trace=True)
    cfg = snap.model.cfg
    L, NH = cfg.n_layer, cfg.n_head
    fig, axes = plt.subplots(L, NH, figsize=(max(2.6 * NH + 1, 8), 2.6 * L + 1.2), squeeze=False)
    T = len(ids)
    step = max(1, T // 16)
    for i in range(L):
        probs = trace[block_prefix(GPT_NAMES, i) + "attn.probs"][0]     # (NH, T, T)
        for h in range(NH):
            ax = axes[i][h]
            im = ax.imshow(probs[h], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"block {i}, head {h}", fontsize=8)
            ax.set_xticks(range(0, T, step))
            ax.set_yticks(range(0, T, step))
            ax.set_xticklabels([chars[t] for t in range(0, T, step)], fontsize=6)
            ax.set_yticklabels([chars[t] for t in range(0, T, step)], fontsize=6)
            if i == L - 1:
                ax.set_xlabel("key (attended character)", fontsize=7)
            if h == 0:
                ax.set_ylabel("query (current character)", fontsize=7)
    text = tok.decode(ids).replace("\n", "⏎")
    fig.suptitle(f"{_src(snap)}: attention on {text!r}", fontsize=9)
    return _finish(fig, "heads differ: some look at the previous character or the start of "
                        "the word, some spread out; no head uniform everywhere, none stuck on one "
                        "column.", path, colorbar=(im, "attention probability"))


def plot_attention_vit(snap, path, image_index=0):
    plt = _plt()
    data = snap.data()
    if not 0 <= image_index < len(data.val_x):
        raise ConfigError(f"image index {image_index} is out of range (0..{len(data.val_x) - 1})")
    img = data.val_x[image_index]                      # (H, W, Cin)
    cfg = snap.model.cfg
    _, trace = snap.model.forward(img[None], trace=True)
    g = cfg.image_size // cfg.patch_size
    L, NH = cfg.n_layer, cfg.n_head
    fig, axes = plt.subplots(L, NH + 1, figsize=(2.2 * (NH + 1) + 1, 2.5 * L + 1.0), squeeze=False)
    shown = img[..., 0] if img.shape[-1] == 1 else img
    gray = img.mean(axis=-1)                           # (H, W): the digit's outline (cyan)
    for i in range(L):
        probs = trace[block_prefix(VIT_NAMES, i) + "attn.probs"][0]     # (NH, N', N')
        axes[i][0].imshow(shown, cmap="gray")
        axes[i][0].set_title(f"label {int(data.val_y[image_index])}" if i == 0 else "", fontsize=8)
        axes[i][0].set_ylabel(f"block {i}\nimage row (pixels)", fontsize=7)
        for h in range(NH):
            if cfg.pool == "cls":
                a = probs[h, 0, 1:]                    # CLS query -> patch keys
            else:
                a = probs[h].mean(axis=0)              # attention each patch receives, averaged
            a = a.reshape(g, g)
            up = np.kron(a, np.ones((cfg.patch_size, cfg.patch_size)))   # patch grid -> pixels
            ax = axes[i][h + 1]
            im = ax.imshow(up, cmap="inferno", vmin=0, interpolation="nearest")
            ax.contour(gray, levels=[0.5 * gray.max()], colors="cyan", linewidths=0.9)
            ax.set_title(f"head {h}", fontsize=8)
            ax.tick_params(labelsize=6)
            if i == L - 1:
                ax.set_xlabel("image column (pixels)", fontsize=7)
    what = "CLS-to-patch attention" if cfg.pool == "cls" else "mean attention received per patch"
    fig.suptitle(f"{_src(snap)}: {what} for validation image {image_index} (color: attention "
                 f"probability, each panel its own scale; cyan: the digit's outline)", fontsize=9)
    return _finish(fig, "in later blocks attention concentrates on the strokes of the digit, "
                        "not the empty border; heads differ from each other.", path)


# --------------------------------------------------------------------------------------------
# ViT patch-embedding filters

def _tiles(w, P, Cin):
    """(P*P*Cin, C) -> a grid image of the C filters (P x P, each scaled to [-1, 1]), 1 px gaps."""
    C = w.shape[1]
    cols = int(math.ceil(math.sqrt(C)))
    rows = int(math.ceil(C / cols))
    grid = np.full((rows * (P + 1) - 1, cols * (P + 1) - 1), np.nan)
    for c in range(C):
        f = w[:, c].reshape(P, P, Cin).mean(axis=-1)   # (row, col, channel) row-major
        f = f / max(np.abs(f).max(), 1e-12)
        r, k = divmod(c, cols)
        grid[r * (P + 1):r * (P + 1) + P, k * (P + 1):k * (P + 1) + P] = f
    return grid


def plot_patch_filters(snap, path, init_params):
    plt = _plt()
    cfg = snap.model.cfg
    P, Cin = cfg.patch_size, cfg.in_channels
    w0 = np.asarray(init_params["patch_embed.weight"], dtype=np.float64)
    w1 = np.asarray(snap.model.params["patch_embed.weight"], dtype=np.float64)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6))
    panels = [("at init", w0), (f"step {snap.step}", w1), (f"change: step {snap.step} − init", w1 - w0)]
    for ax, (title, w) in zip(axes, panels):
        im = ax.imshow(_tiles(w, P, Cin), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{cfg.n_embd} filters {P}x{P}, {title}", fontsize=10)
        ax.set_xlabel("filter column (pixels, tiled)")
        ax.set_ylabel("filter row (pixels, tiled)")
    fig.suptitle(f"{_src(snap)}: patch-embedding filters (relative change "
                 f"‖ΔW‖/‖W0‖ = {np.linalg.norm(w1 - w0) / np.linalg.norm(w0):.2f})")
    return _finish(fig, "at init, white noise; the change (right) shows smooth strokes, edges and "
                        "blobs: what training wrote into the filters. A change that is itself "
                        "noise means the embedding did not learn.", path,
                   colorbar=(im, "weight / max |weight| of its filter"))


# --------------------------------------------------------------------------------------------
# Loss landscape (from landscape.inspect_landscape's result)

def plot_landscape(res, path):
    plt = _plt()
    panels = [k for k in ("interp", "1d", "2d") if k in res]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, k in zip(axes[0], panels):
        d = res[k]
        if k == "interp":
            ax.plot(d["alpha"], d["loss"], "o-", ms=3)
            ax.axvline(0, color="0.5", ls=":")
            ax.axvline(1, color="0.5", ls=":")
            ax.set_xlabel("α: (1 − α)·θ_init + α·θ_final (0 = init, 1 = trained)")
            ax.set_title("Linear interpolation init → trained")
        elif k == "1d":
            ax.plot(d["alpha"], d["loss"], "o-", ms=3)
            ax.set_xlabel("α along a filter-normalized direction (filter norms)")
            ax.set_title("1-D slice through the trained weights")
        else:
            z = np.array(d["loss"])
            cs = ax.contourf(d["alpha"], d["beta"], z, levels=20, cmap="viridis")
            ax.contour(d["alpha"], d["beta"], z, levels=20, colors="k", linewidths=0.3)
            fig.colorbar(cs, ax=ax, label="training loss (nats)")
            ax.plot(0, 0, "r*", ms=10)
            ax.set_xlabel("α along direction 1 (filter norms)")
            ax.set_ylabel("β along direction 2 (filter norms)")
            ax.set_title("2-D slice (★ = trained weights)")
            ax.xaxis.set_major_locator(plt.MaxNLocator(5))
            ax.yaxis.set_major_locator(plt.MaxNLocator(5))
        if k != "2d":
            ax.set_ylabel("training loss (nats)")
            ax.grid(alpha=0.3)
    fig.suptitle(f"{Path(res.get('source', '')).parent.name or res.get('source', '')} "
                 f"(step {res.get('step')}): loss landscape ({res['n_batches']} batches of "
                 f"{res['batch_size']})", fontsize=9)
    return _finish(fig, "the interpolation falls monotonically from init to the trained point; "
                        "slices show a basin around it, wider = flatter.", path)


# --------------------------------------------------------------------------------------------
# Coordinate check (from coordcheck.coordcheck's result)

def plot_coordcheck(results, path):
    """One panel per result (e.g. gpt2 and mup): mean |x| vs width after the last step."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False,
                             sharey=True)
    for ax, res in zip(axes[0], results):
        last = str(res["steps"])
        for k, m in enumerate(res["modules"]):
            ax.loglog(res["widths"], res["values"][m][last], "o-", color=f"C{k}",
                      label=f"{m} (slope {res['slopes'][m]:+.2f})")
        ax.set_xticks(res["widths"])
        ax.set_xticklabels([str(w) for w in res["widths"]])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("width n_embd (channels, log scale)")
        ax.set_ylabel("mean |activation| (log scale)")
        ax.set_title(f"init {res['init']}: after {res['steps']} AdamW steps (lr {res['lr']:g})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7.5)
    return _finish(fig, "flat lines: activations do not grow with width (muP); lines rising with "
                        "slope ~1 mean the LR that suits one width blows up a wider model.", path)


# --------------------------------------------------------------------------------------------
# Everything for a list of runs

def plot_runs(runs, out=None, prompt=None, image_index=0, landscape=False):
    """Draw every figure the runs' files allow; returns the list of written paths."""
    from .snapshot import load_snapshot
    _plt()                                             # fail early and clearly without matplotlib
    runs = [Path(r) for r in runs]
    if not runs:
        raise ConfigError("give at least one run folder")
    for r in runs:
        if not r.is_dir():
            raise NotFound(f"run folder not found: {r}")
        if not (r / "metrics.jsonl").is_file():
            raise ConfigError(f"{r} is not a run folder (it has no metrics.jsonl)")
    out = Path(out) if out is not None else runs[0] / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_loss(runs, out / "loss.png"), plot_lr(runs, out / "lr.png")]
    if any((r / "telemetry.jsonl").is_file() for r in runs):
        written.append(plot_update_ratios(runs, out / "update_ratio.png"))
    for run in runs:
        pre = f"{_name(run)}_" if len(runs) > 1 else ""
        tel = run / "telemetry.jsonl"
        if tel.is_file() and read_jsonl(tel):
            written.append(plot_telemetry(run, out / f"{pre}telemetry.png"))
            if any("layers" in r for r in read_jsonl(tel)):
                written.append(plot_activations(run, out / f"{pre}activations.png"))
        sh = run / "sharpness.jsonl"
        if sh.is_file() and read_jsonl(sh):
            written.append(plot_sharpness(run, out / f"{pre}sharpness.png"))
        if not (run / "checkpoint.npz").is_file():
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
            from ..measure.landscape import inspect_landscape
            res = inspect_landscape(snap, modes=("interp", "1d"))
            written.append(plot_landscape(res, out / f"{pre}landscape.png"))
    return written
