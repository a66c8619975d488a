"""Pictures of one model or one instrument's result (plots.py draws them for run folders):

    spectra.png         eigenvalue histograms of a few weight matrices at init and now, against
                        the Marchenko-Pastur prediction
    attention.png       attention maps of every layer and head: GPT on a text prompt, ViT as
                        CLS-to-patch attention over an image
    patch_filters.png   ViT: the patch-embedding filters as image tiles, at init and now
    landscape.png       loss along the init -> trained line and a filter-normalized direction
    coordcheck.png      activation size against width (muP's coordinate check)
"""
import math
from pathlib import Path

import numpy as np

from ..engine.kinds import kind_of
from ..engine.names import GPT_NAMES, VIT_NAMES, block_prefix
from ..errors import ConfigError
from ..measure.spectra import mp_cdf, weight_matrices
from ..training.tokenizer import prompt_ids
from .figure import finish, pyplot, source


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
    plt = pyplot()
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
    fig.suptitle(f"{source(snap)}: weight spectra (bars) vs Marchenko-Pastur (lines); dashed: "
                 f"bulk edge λ+; ▼ outliers")
    return finish(fig, "at init the bars follow the MP line and stop at the edge λ+; after "
                        "training eigenvalues leave the bulk: outliers (▼) beyond λ+ and a wider, "
                        "heavier-tailed spread carry what was learned (a trained layer that still "
                        "matches MP learned nothing).", path)


# --------------------------------------------------------------------------------------------
# Attention maps

def gpt_prompt_ids(snap, prompt=None, length=48):
    """The prompt as ids (cropped to block_size), or the first `length` characters of the
    validation text. Without any tokenizer (an imported GPT-2) the prompt is token ids."""
    from .sample import parse_ids
    if prompt is None:
        ids = snap.data().val[:min(length, snap.model.cfg.block_size)]
    else:
        tok = snap.tokenizer()
        ids = (parse_ids(prompt, snap.model.cfg.vocab_size) if tok is None
               else prompt_ids(tok, prompt))[-snap.model.cfg.block_size:]
    return np.asarray(ids, dtype=np.int64)


def token_labels(tok, ids):
    """What each id shows on an axis: its text under the run's tokenizer (escaped), or the id
    itself for a model that reads token ids only."""
    if tok is None:
        return [str(i) for i in ids]
    return [repr(piece)[1:-1] for piece in tok.pieces(ids)]


def plot_attention_gpt(snap, path, prompt=None):
    plt = pyplot()
    ids = gpt_prompt_ids(snap, prompt)
    tok = snap.tokenizer()
    chars = token_labels(tok, ids)
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
    text = " ".join(chars) if tok is None else tok.decode(ids).replace("\n", "⏎")
    fig.suptitle(f"{source(snap)}: attention on {text!r}", fontsize=9)
    return finish(fig, "heads differ: some look at the previous character or the start of "
                        "the word, some spread out; no head uniform everywhere, none stuck on one "
                        "column.", path, colorbar=(im, "attention probability"))


def plot_attention_vit(snap, path, image_index=0):
    plt = pyplot()
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
    fig.suptitle(f"{source(snap)}: {what} for validation image {image_index} (color: attention "
                 f"probability, each panel its own scale; cyan: the digit's outline)", fontsize=9)
    return finish(fig, "in later blocks attention concentrates on the strokes of the digit, "
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
    plt = pyplot()
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
    fig.suptitle(f"{source(snap)}: patch-embedding filters (relative change "
                 f"‖ΔW‖/‖W0‖ = {np.linalg.norm(w1 - w0) / np.linalg.norm(w0):.2f})")
    return finish(fig, "at init, white noise; the change (right) shows smooth strokes, edges and "
                        "blobs: what training wrote into the filters. A change that is itself "
                        "noise means the embedding did not learn.", path,
                   colorbar=(im, "weight / max |weight| of its filter"))


# --------------------------------------------------------------------------------------------
# Loss landscape (from landscape.inspect_landscape's result)

def plot_landscape(res, path):
    plt = pyplot()
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
    return finish(fig, "the interpolation falls monotonically from init to the trained point; "
                        "slices show a basin around it, wider = flatter.", path)


# --------------------------------------------------------------------------------------------
# Coordinate check (from coordcheck.coordcheck's result)

def plot_coordcheck(results, path):
    """One panel per result (e.g. gpt2 and mup): mean |x| vs width after the last step."""
    plt = pyplot()
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
    return finish(fig, "flat lines: activations do not grow with width (muP); lines rising with "
                        "slope ~1 mean the LR that suits one width blows up a wider model.", path)
