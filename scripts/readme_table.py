#!/usr/bin/env python
"""Rewrite README's reading-order table with the current line counts of the modules.

    python scripts/readme_table.py          # update README.md in place
    python scripts/readme_table.py --check  # exit 1 if the table is stale (tests/test_readme.py)

The order and the one-line descriptions live here; the counts come from the files.
"""
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GROUPS = [  # (subpackage, what the layer is for, [(module file, what to read it for)])
    ("minitransformer", "the public API and the two bottom layers", [
        ("__init__.py", "the public facade: GPTConfig, ViTConfig, build_model (counts as the init layer)"),
        ("errors.py", "the user-facing errors under one base class (the CLI prints them in one line)"),
        ("runtime.py", "process settings (allocator, Numba threading, threads) applied by entry points"),
    ]),
    ("engine", "the math: no files, no process state", [
        ("config.py", "GPTConfig / ViTConfig: every field, its default, its check"),
        ("names.py", "the one table of parameter names (GPT-2's, timm's) and their roles"),
        ("layers.py", "forward/backward pairs: linear, LayerNorm, GELU, embeddings, cross-entropy, patches, CLS, pooling, gate"),
        ("attention.py", "multi-head self-attention: qkv (B, T, 3C) -> (B, T, C), causal or not"),
        ("block.py", "the block in its pre / post / none forms, ReZero gate, skip multiplier; the stack of blocks"),
        ("gpt.py", "GPT: parameter table, forward, loss_and_grads (tied LM head)"),
        ("vit.py", "ViT: parameter table, forward, loss_and_grads (patches, CLS or mean pooling)"),
        ("kinds.py", "GPT and ViT side by side: config, model, names, default init, inputs"),
        ("generate.py", "drawing tokens from a GPT: temperature, top-k, inverse CDF"),
        ("vmath.py", "exp and erf that vectorize (float32): range reduction, polynomials, a power of two"),
        ("kernels.py", "Numba kernels and their NumPy twins; which one is the fast path and why"),
        ("kernels_gelu.py", "GELU's kernels, tanh and exact, each with its NumPy twin"),
        ("optim.py", "AdamW / SGD kernels, Adam's bias correction and step (one place), clipping, schedules"),
        ("gradcheck.py", "central differences in float64, relative errors, the model checks"),
    ]),
    ("init", "initialization schemes", [
        ("__init__.py", "the init API and the order of its modules"),
        ("rules.py", "a Rule: one tensor's distribution and the std it promises; sampling"),
        ("registry.py", "a scheme as one entry (rules, needs, lr_mult); prepare_config, plan, draw"),
        ("schemes_basic.py", "gpt2, vit, vit_jax, normal, Xavier, Kaiming, LeCun, orthogonal, small_embed, zeros"),
        ("schemes_deep.py", "t_fixup, rezero, deepnet, admin, mup: config changes and muP's learning rates"),
        ("schemes_attention.py", "mimetic and structured: attention shaped at init"),
        ("build.py", "build_model: config + init scheme -> model; the gradient check of a built model"),
        ("audit.py", "promised against measured std per tensor; the scheme listing"),
    ]),
    ("measure", "instruments on arrays and models", [
        ("telemetry.py", "per-tensor and per-layer training statistics"),
        ("spectra.py", "singular values against Marchenko-Pastur"),
        ("sharpness.py", "top Hessian eigenvalue by power iteration on Hessian-vector products"),
        ("landscape.py", "loss along interpolations and filter-normalized directions"),
    ]),
    ("training", "runs: settings, data, the loop, the run folder", [
        ("config.py", "TrainConfig: every setting, its default and its check; the ViT defaults; the seeds"),
        ("data.py", "Tiny Shakespeare, MNIST, digits: loading, checks, batches"),
        ("build.py", "what a run is built from: data, model config, model, optimizer, random streams, batches"),
        ("preflight.py", "checks before anything is written: memory estimate, data content hash"),
        ("step.py", "the one training step (loss and gradients, clip, update) and the divergence rule"),
        ("shards.py", "one step's batch cut over threads, one shard per core; the gradient summed in shard order"),
        ("evaluate.py", "train and validation loss (and ViT accuracy) on the evaluation stream"),
        ("progress.py", "the progress line on stderr: step, loss, lr, ms/iter, ETA"),
        ("signals.py", "Ctrl-C and SIGTERM: stop at a step boundary, checkpoint, exit 130 / 143"),
        ("state.py", "what a run carries between the loop's parts: Carry (in checkpoints) and Run"),
        ("loop.py", "the training loop in parts: setup, step, evaluate, checkpoint, finish; resume"),
        ("runfolder.py", "the run folder: file names, config.json readers, atomic writes, the lock, log truncation"),
        ("lock.py", "one writer per run folder: the flock, the live PID in one line"),
        ("checkpoint.py", "checkpoints as plain arrays (no pickle); load_run: a run's model with its weights"),
        ("transfer.py", "--init-from: another run's weights as the starting point"),
        ("masks.py", "pruning masks: prunable tensors, magnitude and random pruning, rewinding, mask.npz"),
        ("tokenizer.py", "a run's tokenizer: characters or byte-level BPE (files, training, checks)"),
    ]),
    ("analysis", "reads run folders to show them", [
        ("snapshot.py", "a run folder, checkpoint or fresh model as one object for the instruments"),
        ("sample.py", "text generation from a trained GPT's run folder"),
        ("replay.py", "replay a run folder bit for bit to record its telemetry and sharpness"),
        ("coordcheck.py", "activation size against width after a few training steps (muP's coordinate check)"),
        ("inspect_grad.py", "one gradient element: backprop, float64 central difference, Adam state"),
        ("figure.py", "what every figure shares: matplotlib on demand, the healthy line, saving"),
        ("plots.py", "the pictures of run folders: loss, lr, telemetry, activations, sharpness; plot_runs"),
        ("plots_model.py", "the pictures of a model: spectra, attention maps, patch filters, landscape, coordcheck"),
        ("runlogs.py", "a run's logs as the pictures read them: every number checked, named by file, line, key"),
        ("tensorfile.py", "safetensors reading and writing through the library, with our checks"),
        ("hf.py", "GPT-2 import and export in Hugging Face's layout, with its tokenizer"),
        ("timm_vit.py", "timm ViT import and export; positions and patch filters for new inputs"),
        ("bench.py", "timed training iterations, FLOPs, the measured GEMM peak, the GEMM floor"),
        ("progress.py", "a long instrument's progress line on a terminal (stderr, TTY only)"),
    ]),
    ("studies", "many runs and what they show", [
        ("__init__.py", "the studies layer: sweeps, experiments, lottery tickets"),
        ("spec.py", "a sweep's grid axes and seeds, run names, every check before a file is written"),
        ("task.py", "one run as an idempotent task: skip if complete, resume if interrupted, failure as a row"),
        ("pool.py", "the local backend: worker processes with one BLAS and one Numba thread each"),
        ("cluster.py", "the Dask backend: one task per run, retried when a worker dies, results sent back"),
        ("results.py", "results.csv and results.md (mean ± std over seeds, best first)"),
        ("sweep_plots.py", "a sweep's heatmap over two axes and its loss curves with a band over seeds"),
        ("sweep.py", "sweep(spec, out_dir): checks, sweep.json, the backends, progress, resume"),
        ("lottery.py", "lottery tickets: iterative magnitude pruning with rewinding and its controls"),
        ("lottery_report.py", "the lottery's verdict rule, report.md and its figures"),
        ("instability.py", "linear mode connectivity: the error barrier between two copies trained from step K"),
    ]),
    ("studies/experiments", "named claims, their runs, reports and verdicts", [
        ("__init__.py", "what an experiment is: a claim, its runs, a report with a verdict"),
        ("common.py", "what a study module defines; Part, Verdict, statistics over seeds"),
        ("registry.py", "the ten studies by name"),
        ("runner.py", "run a study through the sweep engine (resumable); rebuild its report"),
        ("report.py", "results.csv, verdict.json, report.md, figure helpers"),
        ("symmetry.py", "zero init keeps hidden units identical and the loss stuck"),
        ("scale_lr.py", "init scale x learning rate: does the best lr move?"),
        ("warmup.py", "pre-LN vs post-LN x warmup x learning rate"),
        ("no_norm_depth.py", "no LayerNorm, no warmup, depth 6-24: T-Fixup, ReZero, DeepNet, Admin vs baselines"),
        ("vit_small_data.py", "ViT on MNIST subsets: vit vs mimetic vs structured init"),
        ("early_updates.py", "update-to-weight ratios in the first steps, warmup, preconditioned sharpness"),
        ("seeds.py", "run-to-run spread: init seed alone vs data-order seed alone"),
        ("rmt.py", "weight spectra against Marchenko-Pastur at init and after training"),
        ("sharp_flat.py", "final sharpness against the generalization gap"),
        ("pretrained_init.py", "pretrained weights vs scratch on a small second task"),
    ]),
    ("cli", "click commands only", [
        ("__init__.py", "the command group and main: user errors in one line, bugs with a traceback"),
        ("options.py", "checks of option values several commands share (an empty --out)"),
        ("train.py", "train, sample, bench"),
        ("init.py", "inits, import-gpt2, export-gpt2, import-vit, export-vit"),
        ("inspect.py", "inspect ... and plot"),
        ("lottery.py", "lottery"),
        ("sweep.py", "sweep"),
        ("experiment.py", "experiment list, run, report"),
    ]),
]

PKG = ROOT / "minitransformer"


def modules():
    """[(path, what)] in reading order; the path is relative to the repository."""
    out = []
    for sub, _, mods in GROUPS:
        base = "minitransformer" if sub == "minitransformer" else f"minitransformer/{sub}"
        out += [(f"{base}/{name}", what) for name, what in mods]
    return out


def unlisted():
    """Modules of the package that the table leaves out."""
    listed = {path for path, _ in modules()}
    return sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
                  if "__pycache__" not in p.parts and str(p.relative_to(ROOT)) not in listed
                  and not (p.name == "__init__.py" and _docstring_only(p)))


def _docstring_only(path):
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


BEGIN, END = "<!-- reading-order:begin -->", "<!-- reading-order:end -->"


def table():
    rows = ["| # | file | lines | what it holds |", "|---|---|---:|---|"]
    i = 0
    for sub, role, mods in GROUPS:
        rows.append(f"| | **{sub}/** | | *{role}* |" if sub != "minitransformer" else
                    f"| | **minitransformer/** | | *{role}* |")
        base = "minitransformer" if sub == "minitransformer" else f"minitransformer/{sub}"
        for name, what in mods:
            i += 1
            path = f"{base}/{name}"
            n = len((ROOT / path).read_text(encoding="utf-8").splitlines())
            rows.append(f"| {i} | [`{path}`]({path}) | {n} | {what} |")
    return "\n".join(rows)


def main():
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        sys.exit(f"README.md has no {BEGIN} ... {END} section")
    new = pattern.sub(lambda m: f"{BEGIN}\n{table()}\n{END}", text)
    missing = unlisted()
    if missing:
        sys.exit("README's reading-order table leaves out " + ", ".join(missing) +
                 ": add them to GROUPS in scripts/readme_table.py")
    if "--check" in sys.argv:
        if new != text:
            sys.exit("README's reading-order table is stale: run python scripts/readme_table.py")
        return
    readme.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
