"""`inspect spectra|sharpness|landscape|coordcheck|grad` and `plot`: click options mapped onto
the inspection modules. No logic here. Every inspect command takes --json and then prints one
JSON document on stdout."""
import json

import click
from ..errors import ConfigError
from .options import nonempty_path


def _emit(result, as_json, fmt):
    if as_json:
        from ..measure.telemetry import json_safe
        click.echo(json.dumps(json_safe(result), allow_nan=False))
    else:
        click.echo(fmt(result))


def _target(fn):
    """RUN_OR_CHECKPOINT, or --init NAME --model gpt|vit (and a few shape options) for a fresh
    model, plus --json."""
    opts = [
        click.argument("target", required=False, metavar="[RUN_OR_CHECKPOINT]"),
        click.option("--init", "init", default=None, metavar="NAME",
                     help="Inspect a freshly initialized model with scheme NAME instead."),
        click.option("--model", "model", default="gpt", show_default=True,
                     help="With --init: gpt | vit."),
        click.option("--init-seed", type=int, default=1337, show_default=True,
                     help="With --init: the model's seed (train's default)."),
        click.option("--norm", default=None, help="With --init: pre | post | none."),
        click.option("--n-layer", type=int, default=None, help="With --init: blocks."),
        click.option("--n-embd", type=int, default=None, help="With --init: channels."),
        click.option("--n-head", type=int, default=None, help="With --init: heads."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _snapshot(target, init, model, init_seed, norm, n_layer, n_embd, n_head):
    from ..analysis.snapshot import snapshot_from_options
    return snapshot_from_options(target, init=init, model=model, seed=init_seed, norm=norm,
                                 n_layer=n_layer, n_embd=n_embd, n_head=n_head)


@click.group("inspect")
def inspect():
    """Look inside a run, a checkpoint or a fresh init (docs/inspection.md)."""


@inspect.command("spectra")
@_target
@click.option("--param", "names", multiple=True, metavar="NAME",
              help="Only these matrices (repeatable; NAME or NAME[q|k|v]).")
def spectra_cmd(target, init, model, init_seed, norm, n_layer, n_embd, n_head, as_json, names):
    """Singular values of every weight matrix vs Marchenko-Pastur, outliers, power-law alpha."""
    from ..analysis.progress import InstrumentProgress
    from ..measure.spectra import spectra, format_rows
    snap = _snapshot(target, init, model, init_seed, norm, n_layer, n_embd, n_head)
    with InstrumentProgress("spectra") as progress:
        rows = spectra(snap.model.params, names or None, progress=progress)
    if names and not rows:
        raise ConfigError(f"no weight matrix named {', '.join(names)}")
    res = dict(snap.describe(), matrices=rows)
    _emit(res, as_json, lambda r: format_rows(rows, title=f"spectra of {snap.source} "
                                                          f"(step {snap.step})"))


@inspect.command("sharpness")
@_target
@click.option("--batch-size", type=int, default=None, help="Batch (default: the run's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Batch and restart seed.")
@click.option("--iters", type=int, default=100, show_default=True,
              help="Most Hessian-vector products per restart.")
@click.option("--restarts", type=int, default=3, show_default=True)
@click.option("--tol", type=float, default=1e-2, show_default=True,
              help="Stop when the residual |Hv - lambda v| <= tol |lambda|.")
@click.option("--method", default="power", show_default=True,
              help="power | lanczos (scipy eigsh on the same products; faster when the top "
                   "eigenvalues are close).")
@click.option("--adam/--no-adam", default=False,
              help="Also the Adam-preconditioned sharpness (needs the checkpoint's AdamW state).")
def sharpness_cmd(target, init, model, init_seed, norm, n_layer, n_embd, n_head, as_json,
                  batch_size, seed, iters, restarts, tol, method, adam):
    """Top Hessian eigenvalue of the training loss (power iteration, float64) vs 2/lr."""
    from ..analysis.progress import InstrumentProgress
    from ..measure.sharpness import inspect_sharpness
    snap = _snapshot(target, init, model, init_seed, norm, n_layer, n_embd, n_head)
    with InstrumentProgress("sharpness") as progress:
        res = inspect_sharpness(snap, batch_size=batch_size, seed=seed, iters=iters,
                                restarts=restarts, tol=tol, adam=adam, method=method,
                                progress=progress)
    _emit(res, as_json, _format_sharpness)
    if res["above_2_over_lr"] is None or res.get("adam", {}).get("above_threshold", 0) is None:
        raise click.exceptions.Exit(1)                 # a NaN compared with nothing: no pass


def _versus(above, what):
    """ABOVE / below a threshold; None (a NaN on either side) is no comparison at all."""
    if above is None:
        return f"NOT FINITE: no comparison with {what}"
    return f"{'ABOVE' if above else 'below'} {what}"


def _format_sharpness(r):
    lines = [f"sharpness of {r['source']} (step {r['step']}), batch {r['batch_size']} "
             f"(seed {r['batch_seed']}), loss {r['loss']:.4f}",
             f"  lambda_max  {r['lambda_max']:.5g}   restarts: "
             + ", ".join(f"{v:.5g}" for v in r["restarts"])
             + f"   spread {r['spread']:.2g}",
             f"  {r['method']}: Hessian-vector products per restart {r['iterations']}, "
             f"converged {r['converged']} (tol {r['tol']:g})",
             f"  lr {r['lr']:.3g} at this step, 2/lr = {r['two_over_lr']:.5g}: lambda_max is "
             f"{_versus(r['above_2_over_lr'], '2/lr')}"]
    if "adam" in r:
        a = r["adam"]
        lines.append(f"  Adam-preconditioned lambda_max {a['lambda_max']:.5g} vs "
                     f"(2+2b1)/((1-b1) lr) = {a['threshold']:.5g}: "
                     f"{_versus(a['above_threshold'], 'it')}")
    lines.append("Healthy: below the threshold, or hovering at it (edge of stability) later in "
                 "training. For Adam, the preconditioned value is the one bounded (--adam).")
    return "\n".join(lines)


@inspect.command("landscape")
@_target
@click.option("--mode", "modes", default="interp,1d", show_default=True,
              help="Comma list of interp (init -> trained), 1d, 2d.")
@click.option("--points", type=int, default=21, show_default=True)
@click.option("--span", type=float, default=1.0, show_default=True,
              help="Slices cover [-span, span] in filter norms.")
@click.option("--batches", type=int, default=4, show_default=True, help="Seeded batches averaged.")
@click.option("--batch-size", type=int, default=None, help="Batch (default: the run's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Batches and directions.")
@click.option("--plot", "plot_path", default=None, metavar="PNG", callback=nonempty_path,
              help="Also draw it here.")
def landscape_cmd(target, init, model, init_seed, norm, n_layer, n_embd, n_head, as_json, modes,
                  points, span, batches, batch_size, seed, plot_path):
    """Loss along init -> trained and along filter-normalized random directions."""
    from ..analysis.progress import InstrumentProgress
    from ..measure.landscape import inspect_landscape
    snap = _snapshot(target, init, model, init_seed, norm, n_layer, n_embd, n_head)
    with InstrumentProgress("landscape") as progress:
        res = inspect_landscape(snap, tuple(m.strip() for m in modes.split(",") if m.strip()),
                                points, span, batches, batch_size, seed, progress=progress)
    if plot_path:
        from ..analysis.plots_model import plot_landscape
        plot_landscape(res, plot_path)
    _emit(res, as_json, _format_landscape)


def _format_landscape(r):
    lines = [f"loss landscape of {r['source']} (step {r['step']}): mean over {r['n_batches']} "
             f"batches of {r['batch_size']}; loss here {r['loss']:.4f}"]
    if "interp" in r:
        d = r["interp"]
        lines.append(f"  init -> trained: {d['loss_init']:.4f} -> {d['loss_final']:.4f}, highest "
                     f"in between {d['max_between']:.4f}, monotonic: "
                     f"{'NOT FINITE' if d['monotonic'] is None else d['monotonic']}")
        lines.append("    alpha " + " ".join(f"{a:6.2f}" for a in d["alpha"][::4]))
        lines.append("    loss  " + " ".join(f"{v:6.3f}" for v in d["loss"][::4]))
    if "1d" in r:
        d = r["1d"]
        lines.append("  1-D slice (filter-normalized direction):")
        lines.append("    alpha " + " ".join(f"{a:6.2f}" for a in d["alpha"][::2]))
        lines.append("    loss  " + " ".join(f"{v:6.3f}" for v in d["loss"][::2]))
    if "2d" in r:
        z = r["2d"]["loss"]
        lines.append(f"  2-D slice: {len(z)}x{len(z[0])} grid, min {min(map(min, z)):.4f}, "
                     f"max {max(map(max, z)):.4f} (use --json or --plot for the grid)")
    lines.append("Healthy: interpolation falls monotonically; slices have their minimum near 0.")
    return "\n".join(lines)


@inspect.command("coordcheck")
@click.option("--init", "init", default=None, metavar="NAME",
              help="Scheme (default gpt2 for gpt, vit for vit).")
@click.option("--model", "model", default="gpt", show_default=True, help="gpt | vit.")
@click.option("--widths", default="32,64,128", show_default=True, help="Comma list of n_embd.")
@click.option("--steps", type=int, default=3, show_default=True, help="AdamW steps.")
@click.option("--n-layer", type=int, default=2, show_default=True)
@click.option("--n-head", type=int, default=4, show_default=True)
@click.option("--lr", type=float, default=1e-2, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def coordcheck_cmd(init, model, widths, steps, n_layer, n_head, lr, batch_size, seed, as_json):
    """Mean |activation| per module vs width over a few AdamW steps (flat is good)."""
    from ..analysis.coordcheck import coordcheck, format_result
    try:
        ws = [int(w) for w in widths.split(",") if w.strip()]
    except ValueError:
        raise ConfigError(f"--widths must be integers separated by commas, got {widths!r}") from None
    res = coordcheck(model, init, ws, steps, n_layer, n_head, lr, batch_size, seed)
    _emit(res, as_json, format_result)


@inspect.command("grad")
@_target
@click.option("--param", "name", required=True, help="Parameter name (docs/design.md#parameter-names).")
@click.option("--index", "index", required=True, help="Element index, e.g. 3,17.")
@click.option("--seed", type=int, default=0, show_default=True, help="Batch seed.")
@click.option("--batch-size", type=int, default=None, help="Batch (default: the run's).")
@click.option("--eps", type=float, default=1e-4, show_default=True,
              help="Central-difference step (float64).")
def grad_cmd(target, init, model, init_seed, norm, n_layer, n_embd, n_head, as_json, name, index,
             seed, batch_size, eps):
    """One element: value, analytic and numerical gradient, Adam state."""
    from ..analysis.inspect_grad import inspect_grad, parse_index, format_result
    idx = parse_index(index)
    snap = _snapshot(target, init, model, init_seed, norm, n_layer, n_embd, n_head)
    res = inspect_grad(snap, name, idx, seed, batch_size, eps)
    _emit(res, as_json, format_result)
    if not res["finite"]:
        raise click.exceptions.Exit(1)                 # a NaN gradient checks nothing: no pass


@inspect.command("telemetry")
@click.argument("run_dir")
@click.option("--every", type=int, default=10, show_default=True, help="Record every N steps.")
@click.option("--sharpness-every", type=int, default=0, show_default=True,
              help="Also sharpness.jsonl every N steps (0 = never).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def telemetry_cmd(run_dir, every, sharpness_every, as_json):
    """Replay a finished run bit for bit, writing telemetry.jsonl (and sharpness.jsonl)."""
    from ..analysis.replay import record_run
    res = record_run(run_dir, every, sharpness_every,
                     progress=None if as_json else lambda m: click.echo(m, err=True))
    _emit(res, as_json, _format_telemetry)


def _format_telemetry(r):
    lines = [f"replayed {r['steps']} steps of {r['run']}: {r['records']} records -> "
             f"{r['telemetry']}" + (f", {r['sharpness']}" if r["sharpness"] else ""),
             f"  reproduces the checkpoint bit for bit: {r['checked_against_checkpoint']}"]
    if r["ms_per_step"]:
        lines.append(f"  a training step {r['ms_per_step']:.1f} ms, a telemetry record "
                     f"{r['ms_per_record']:.1f} ms: {r['overhead']:.1%} overhead at every "
                     f"{r['every']} steps")
    return "\n".join(lines)


@inspect.command("instability")
@click.argument("run_dir")
@click.option("--from-step", "from_steps", required=True, metavar="K[,K,...]",
              help="Step(s) the two copies start from, e.g. 0,25,100.")
@click.option("--points", type=int, default=11, show_default=True,
              help="Points along the line between the copies (ends included).")
@click.option("--same-order", is_flag=True,
              help="Both copies see the same batches (the barrier is then exactly 0).")
@click.option("--plot", "plot_path", default=None, metavar="PNG",
              help="Also draw the barrier against K into this file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def instability_cmd(run_dir, from_steps, points, same_order, plot_path, as_json):
    """Linear mode connectivity: train two copies from the run's step-K state with different
    data orders and report the error barrier on the line between them (ViT: error, GPT: loss)."""
    from ..studies.instability import instability, format_result, plot_barriers
    try:
        steps = [int(k) for k in from_steps.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(f"--from-step takes integers separated by commas, got {from_steps!r}")
    res = instability(run_dir, steps, n_points=points, same_order=same_order,
                      progress=not as_json)
    if plot_path:
        plot_barriers(res, plot_path)
    _emit(res, as_json, format_result)


@click.command("plot")
@click.argument("runs", nargs=-1, required=True, metavar="RUN_DIR [RUN_DIR ...]")
@click.option("--out", "out", default=None, callback=nonempty_path,
              help="Folder for the PNGs (default: RUN_DIR/plots).")
@click.option("--prompt", default=None, help="GPT: text for the attention maps (default: the "
                                             "start of the validation text).")
@click.option("--image-index", type=int, default=0, show_default=True,
              help="ViT: validation image for the attention maps.")
@click.option("--landscape/--no-landscape", default=False,
              help="Also the loss landscape (interpolation and a 1-D slice; a few seconds).")
@click.option("--x", "x", default=None, help="Sweep folder: the heatmap's x axis (a grid axis).")
@click.option("--y", "y", default=None, help="Sweep folder: the heatmap's y axis.")
@click.option("--metric", default="final_val_loss", show_default=True,
              help="Sweep folder: final_val_loss | best_val_loss | val_acc.")
def plot(runs, out, prompt, image_index, landscape, x, y, metric):
    """Draw the pictures of one or more runs, or of a sweep folder (a heatmap over two axes and
    loss curves per setting; docs/sweeps.md) (docs/inspection.md)."""
    from ..studies.sweep_plots import is_sweep, plot_sweep
    if len(runs) == 1 and is_sweep(runs[0]):
        paths = plot_sweep(runs[0], out, x, y, metric)
    elif x or y or metric != "final_val_loss":
        raise ConfigError("--x, --y and --metric are for a sweep folder (one with sweep.json)")
    else:
        from ..analysis.plots import plot_runs
        paths = plot_runs(runs, out, prompt, image_index, landscape,
                          note=lambda text: click.echo(f"plot: {text}", err=True))
    for path in paths:
        click.echo(str(path))


COMMANDS = [inspect, plot]
