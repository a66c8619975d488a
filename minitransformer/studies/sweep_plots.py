"""The pictures of a sweep: `python cli.py plot DIR [--x lr --y init] [--metric val_acc]`.

    paths = plot_sweep("sweeps/warmup", x="lr", y="init")

    sweep_heatmap.png   the mean over seeds of the final validation loss (or best loss, or
                        accuracy) over two grid axes; one panel per setting of the other axes.
                        A cell with diverged runs is marked "×k/n"; a cell where every run
                        diverged or failed is grey.
    sweep_curves.png    training and validation loss against step, one colour per setting (all
                        axes but the seed): the line is the mean over seeds, the band spans the
                        lowest to the highest seed; a run that diverged ends with an ×.
The numbers come from DIR/results.csv and the runs' metrics.jsonl (results.py, runfolder.py).
"""
import itertools
import math
from pathlib import Path

from ..analysis.figure import finish, pyplot
from ..errors import ConfigError, RunFolderError
from ..training.runfolder import read_jsonl, run_files
from .results import read_csv
from .spec import value_text
from .sweep import load_spec

METRICS = {"final_val_loss": "final validation loss", "best_val_loss": "best validation loss",
           "val_acc": "validation accuracy"}
MAX_PANELS = 16


def is_sweep(path):
    return (Path(path) / "sweep.json").is_file()


def _axis(name, axes, option):
    key = name.replace("-", "_")
    if key not in axes:
        raise ConfigError(f"{option} {name}: not an axis of this sweep; its axes are "
                          f"{', '.join(axes) or 'none (seeds only)'}")
    return key


def _read(sweep_dir):
    spec = load_spec(sweep_dir)
    path = Path(sweep_dir) / "results.csv"
    if not path.is_file():
        raise RunFolderError(f"{sweep_dir} has no results.csv yet; run the sweep first")
    return spec, read_csv(path)


def _cell(rows, metric):
    """(mean of metric, runs diverged or failed, runs) of the rows of one heatmap cell."""
    values = [r[metric] for r in rows if r[metric] is not None]
    bad = sum(r["status"] != "completed" for r in rows)
    return (math.fsum(values) / len(values) if values else None), bad, len(rows)


def plot_heatmap(spec, rows, path, x, y, metric):
    """sweep_heatmap.png (module docstring)."""
    plt = pyplot()
    import numpy as np
    texts = {a: [value_text(v) for v in vs] for a, vs in spec.grid.items()}
    others = [a for a in spec.grid if a not in (x, y)]
    panels = list(itertools.product(*(texts[a] for a in others)))
    if len(panels) > MAX_PANELS:
        raise ConfigError(f"{len(panels)} panels (one per setting of {', '.join(others)}) are "
                          f"too many for one figure; choose --x and --y among the axes with "
                          f"the most values")
    xs, ys = texts[x], (texts[y] if y else [""])
    ncol = min(len(panels), 4)
    nrow = math.ceil(len(panels) / ncol)
    labels = [v if len(v) <= 24 else "…" + v[-23:] for v in ys]     # a long path: its end
    fig = plt.figure(figsize=(2.5 + (1.3 * len(xs) + 0.08 * max(map(len, labels))) * ncol,
                              2.2 + 0.8 * len(ys) * nrow))
    gs = fig.add_gridspec(nrow, ncol + 1, width_ratios=[1] * ncol + [0.05])
    axs = np.array([[fig.add_subplot(gs[i, j]) for j in range(ncol)] for i in range(nrow)])
    grids = []
    for panel in panels:
        fixed = dict(zip(others, panel))
        grid = np.full((len(ys), len(xs)), np.nan)
        marks = {}
        for (i, yv), (j, xv) in itertools.product(enumerate(ys), enumerate(xs)):
            sel = [r for r in rows if r[x] == xv and (not y or r[y] == yv)
                   and all(r[a] == v for a, v in fixed.items())]
            if sel:
                mean, bad, n = _cell(sel, metric)
                grid[i, j] = np.nan if mean is None else mean
                marks[i, j] = (mean, bad, n)
        grids.append((fixed, grid, marks))
    finite = np.concatenate([g[~np.isnan(g)] for _, g, _ in grids]) if grids else np.array([])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cmap = plt.get_cmap("viridis" if metric == "val_acc" else "viridis_r").with_extremes(
        bad="0.75")                                    # grey: every run diverged or failed
    im = None
    for ax, (fixed, grid, marks) in zip(axs.flat, grids):
        im = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for (i, j), (mean, bad, n) in marks.items():
            text = "diverged" if mean is None else f"{mean:.3f}"
            if bad and mean is not None:
                text += f"\n×{bad}/{n}"
            # dark text on the bright end of the colour map, white on the dark end
            level = 0.5 if mean is None else (mean - vmin) / ((vmax - vmin) or 1.0)
            bright = mean is None or (level > 0.5) == (metric == "val_acc")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if bright else "white")
        ax.set_xticks(range(len(xs)), xs)
        ax.set_yticks(range(len(ys)), labels)
        ax.set_xlabel(x)
        ax.set_ylabel(y or "")
        ax.set_title(", ".join(f"{a}={v}" for a, v in fixed.items()) or "", fontsize=9)
    for ax in list(axs.flat)[len(grids):]:
        ax.axis("off")
    fig.suptitle(f"{METRICS[metric]}: mean over seeds {spec.seeds}")
    fig.colorbar(im, cax=fig.add_subplot(gs[:, -1]), label=METRICS[metric])
    return finish(fig, "a clear best region that is not at the edge of the grid (at an edge, "
                       "extend that axis); ×k/n marks cells where k of n seeds diverged.", path)


def _curves(run_dirs, key):
    """{step: [value per run that has it]} of metrics.jsonl's `key` over the runs; and the last
    (step, value) of each run."""
    by_step, ends = {}, []
    for run in run_dirs:
        recs = [r for r in read_jsonl(run_files(run).metrics) if r.get(key) is not None]
        for r in recs:
            by_step.setdefault(r["step"], []).append(r[key])
        if recs:
            ends.append((recs[-1]["step"], recs[-1][key]))
    return by_step, ends


def plot_curves(spec, rows, sweep_dir, path):
    """sweep_curves.png (module docstring)."""
    plt = pyplot()
    axes = list(spec.grid)
    settings = {}
    for r in rows:
        settings.setdefault(tuple(r[a] for a in axes), []).append(r)
    fig, (ax_tr, ax_va) = plt.subplots(1, 2, figsize=(12, 5))
    tops = {ax_tr: [], ax_va: []}                      # first values: the y range shown
    for k, (key, rs) in enumerate(settings.items()):
        label = ",".join(f"{a}={v}" for a, v in zip(axes, key)) or "all runs"
        color = plt.get_cmap("tab20" if len(settings) > 10 else "tab10")(k % 20)
        runs = [Path(sweep_dir) / r["run"] for r in rs
                if run_files(Path(sweep_dir) / r["run"]).metrics.is_file()]
        diverged = {Path(sweep_dir) / r["run"] for r in rs if r["status"] == "diverged"}
        for ax, field in ((ax_tr, "loss"), (ax_va, "val_loss")):
            by_step, _ = _curves(runs, field)
            steps = sorted(by_step)
            if not steps:
                continue
            mean = [math.fsum(by_step[s]) / len(by_step[s]) for s in steps]
            ax.plot(steps, mean, color=color, lw=1.2, label=label)
            ax.fill_between(steps, [min(by_step[s]) for s in steps],
                            [max(by_step[s]) for s in steps], color=color, alpha=0.2, lw=0)
            tops[ax].append(mean[0])
            for step, value in _curves(sorted(diverged), field)[1]:
                ax.plot([step], [value], "x", color=color, ms=8, mew=2, clip_on=False)
    for ax, title in ((ax_tr, "training loss"), (ax_va, "validation loss")):
        if tops[ax]:                                   # a blow-up would flatten every curve
            top = 1.3 * max(tops[ax])
            ax.set_ylim(0, top)
            for line in ax.lines:                      # diverged marks above the range: at the top
                if line.get_marker() == "x":
                    line.set_ydata([min(v, top) for v in line.get_ydata()])
        ax.set_xlabel("step (optimizer updates)")
        ax.set_ylabel(f"{title} (nats)")
        ax.set_title(f"{title}: mean over seeds, band = lowest to highest seed", fontsize=10)
        ax.grid(alpha=0.3)
    ax_va.legend(fontsize=7, loc="upper right")
    return finish(fig, "bands narrow next to the gaps between settings (the seeds agree), curves "
                       "falling smoothly; an × is a run that diverged there.", path)


def plot_sweep(sweep_dir, out=None, x=None, y=None, metric="final_val_loss"):
    """Both pictures of a sweep folder into out (default DIR/plots); returns their paths."""
    spec, rows = _read(sweep_dir)
    axes = list(spec.grid)
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if metric == "val_acc" and all(r["val_acc"] is None for r in rows):
        raise ConfigError("--metric val_acc: these runs have no accuracy (a GPT sweep)")
    x = _axis(x, axes, "--x") if x else (axes[0] if axes else None)
    y = _axis(y, axes, "--y") if y else next((a for a in axes if a != x), None)
    if x is not None and x == y:
        raise ConfigError(f"--x and --y are both {x}; choose two different axes")
    out = Path(out) if out is not None else Path(sweep_dir) / "plots"
    pyplot()                                            # fail early and clearly without matplotlib
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if x is not None:
        written.append(plot_heatmap(spec, rows, out / "sweep_heatmap.png", x, y, metric))
    written.append(plot_curves(spec, rows, sweep_dir, out / "sweep_curves.png"))
    return written
