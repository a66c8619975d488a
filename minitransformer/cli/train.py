"""`train`, `sample` and `bench`: click options mapped onto training.loop.run,
analysis.sample.sample_run and analysis.bench.run_bench. No logic here; the defaults and checks
live in TrainConfig (training/config.py)."""
from dataclasses import fields
import shlex
import sys

import click
from click.core import ParameterSource

from ..engine.config import ConfigError, GPTConfig
from .options import nonempty_path
from ..training.config import TrainConfig, VIT_DEFAULTS

_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def _help(field, text):
    """Help text with the GPT default, and the ViT one where it differs."""
    d = _DEFAULTS[field]
    extra = f" [default: {d}" if d is not None else " [default: none"
    if field in VIT_DEFAULTS:
        extra += f"; vit: {VIT_DEFAULTS[field]}"
    return text + extra + "]"


def _opt(flag, field, type_, text):
    """A click option for a TrainConfig field; type_ None = an on/off flag pair."""
    if type_ is None:
        return click.option(flag, field, default=_DEFAULTS[field], help=_help(field, text))
    return click.option(flag, field, type=type_, default=_DEFAULTS[field], help=_help(field, text))


# (flag, TrainConfig field, type or None for a flag pair, help). Choices are checked by
# TrainConfig, so that a bad value is one line naming the choices, like every other bad value.
TRAIN_OPTIONS = [
    ("--model", "model", str, "gpt | vit."),
    ("--data", "data", str, "gpt: a UTF-8 text file; vit: mnist | digits."),
    ("--train-limit", "train_limit", int, "Train on the first N examples (vit) or characters "
                                          "(gpt) of the training split only."),
    ("--classes", "classes", str, "vit: keep only these labels, e.g. 0-4 or 5,7,9."),
    ("--tokenizer", "tokenizer", str, "gpt: char | bpe (byte-level BPE trained on the training "
                                      "split; needs the hf extra). None = char, or --init-from's."),
    ("--vocab-size", "vocab_size", int, "gpt with --tokenizer bpe: tokens of the BPE (>= 256)."),
    ("--seed", "seed", int, "Default of --init-seed and --data-seed."),
    ("--init-seed", "init_seed", int, "Seed of the initial weights (none = --seed)."),
    ("--data-seed", "data_seed", int, "Seed of the batches, evaluation and sampling "
                                      "(none = --seed)."),
    ("--dtype", "dtype", str, "float32 | float64."),
    ("--shards", "shards", int, "Threads each step's batch is cut over, one shard each "
                                "(none = one per core; recorded, so resume takes the same steps)."),
    ("--init", "init", str, "Initialization scheme (gpt2 for gpt, vit for vit when unset)."),
    ("--init-scale", "init_scale", float, "Multiplies every weight matrix after the scheme."),
    ("--init-std", "init_std", float, "Std of schemes that take one."),
    ("--base-width", "base_width", int, "mup: the width whose behaviour is copied (none = n-embd)."),
    ("--impulse-k", "impulse_k", int, "structured: impulse window k x k, 3 or 5."),
    ("--init-from", "init_from", str, "Start from another run's folder or checkpoint."),
    ("--reinit-head/--no-reinit-head", "reinit_head", None,
     "With --init-from: draw the head afresh."),
    ("--allow-partial/--no-allow-partial", "allow_partial", None,
     "With --init-from: skip tensors whose shapes differ."),
    ("--start-from", "start_from", str, "Go on from a saved training state (.npz: a "
                                        "checkpoint or state_K.npz) in a new run folder."),
    ("--mask", "mask", str, "mask.npz: the weights it masks start at 0 and stay exactly 0."),
    ("--save-state-at", "save_state_at", int, "Also keep the full training state after this "
                                              "many updates as state_K.npz (a rewind point)."),
    ("--norm", "norm", str, "pre | post | none."),
    ("--rezero/--no-rezero", "rezero", None, "ReZero gate on every block."),
    ("--n-layer", "n_layer", int, "Transformer blocks."),
    ("--n-head", "n_head", int, "Attention heads."),
    ("--n-embd", "n_embd", int, "Channels (divisible by n_head)."),
    ("--block-size", "block_size", int, "GPT context length."),
    ("--batch-size", "batch_size", int, "Sequences or images per step."),
    ("--patch-size", "patch_size", int, "ViT patch size (divides the image size)."),
    ("--pool", "pool", str, "ViT pooling: cls | mean."),
    ("--max-iters", "max_iters", int, "Optimizer steps."),
    ("--optimizer", "optimizer", str, "adamw | sgd."),
    ("--lr", "lr", float, "Peak learning rate."),
    ("--min-lr", "min_lr", float, "Learning rate at the end of the decay."),
    ("--schedule", "schedule", str, "cosine | linear | constant | noam | inverse_sqrt."),
    ("--warmup-iters", "warmup_iters", int, "Linear warmup steps (0 = none)."),
    ("--lr-decay-iters", "lr_decay_iters", int, "Step where cosine/linear reach min-lr "
                                                "(none = max-iters)."),
    ("--beta1", "beta1", float, "AdamW beta1."),
    ("--beta2", "beta2", float, "AdamW beta2."),
    ("--weight-decay", "weight_decay", float, "Decoupled weight decay (2-D weights only)."),
    ("--momentum", "momentum", float, "SGD momentum."),
    ("--grad-clip", "grad_clip", float, "Global gradient-norm clip (0 = off)."),
    ("--eval-interval", "eval_interval", int, "Evaluate every N steps (0 = only at the end)."),
    ("--eval-iters", "eval_iters", int, "Batches per split per evaluation."),
    ("--log-interval", "log_interval", int, "Log every N steps."),
    ("--checkpoint-interval", "checkpoint_interval", int, "Checkpoint every N steps "
                                                          "(0 = only at the end)."),
    ("--telemetry/--no-telemetry", "telemetry", None,
     "Per-tensor and per-layer statistics into telemetry.jsonl every log-interval steps."),
    ("--sharpness-every", "sharpness_every", int, "Top Hessian eigenvalue into sharpness.jsonl "
                                                  "every N steps (0 = never; costly)."),
]


def train_options(fn):
    for flag, field, type_, text in reversed(TRAIN_OPTIONS):
        fn = _opt(flag, field, type_, text)(fn)
    return fn


@click.command()
@click.option("--out", type=str, default=None, callback=nonempty_path,
              help="Run folder to create [default: runs/<model>-<date>-<time>].")
@click.option("--resume", type=str, default=None, callback=nonempty_path,
              help="Continue the run in this folder from its checkpoint (its config.json "
                   "decides every setting). A finished run is left as it is.")
@click.option("--extend", is_flag=True,
              help="With --resume and --max-iters: train a run on to a larger max-iters.")
@click.option("--allow-data-change", is_flag=True,
              help="With --resume: train on even if the data's content hash differs from the "
                   "one recorded when the run started.")
@click.option("--quiet", is_flag=True, help="No progress display and no sample.")
@train_options
@click.pass_context
def train(ctx, out, resume, extend, allow_data_change, quiet, **options):
    """Train a GPT on text (default: nanoGPT's CPU Shakespeare config) or a ViT on MNIST."""
    from ..training import loop as training
    from ..training.signals import Interrupted
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                   ParameterSource.ENVIRONMENT)}
    command = invoked_as()
    try:
        if resume is not None:
            summary = training.resume(resume, progress=not quiet, command=command,
                                      allow_data_change=allow_data_change,
                                      **_resume_options(given, out, extend))
        else:
            if extend or allow_data_change:
                raise ConfigError(f"{'--extend' if extend else '--allow-data-change'} "
                                  f"only applies with --resume")
            summary = training.run(TrainConfig.for_model(**given), out, progress=not quiet,
                                   command=command)
    except Interrupted as e:                   # checkpointed and told how to resume
        sys.exit(e.exit_status)               # 130 for Ctrl-C, 143 for SIGTERM
    if summary["status"] != "completed":
        sys.exit(1)                       # diverged: already reported on stderr


def _resume_options(given, out, extend):
    """--resume takes its settings from config.json; only --max-iters with --extend is allowed."""
    if extend and "max_iters" not in given:
        raise ConfigError("--extend needs --max-iters N, the new total number of steps")
    other = sorted(n for n in given if not (extend and n == "max_iters"))
    if other or out is not None:
        names = ", ".join("--" + n.replace("_", "-") for n in other)
        hint = (" (to train a run further: --max-iters N --extend)"
                if "max_iters" in other else "")
        raise ConfigError(f"--resume takes the settings from the run's config.json; "
                          f"drop {names or '--out'}{hint}")
    return {"max_iters": given["max_iters"]} if extend else {}


def invoked_as():
    """How this program was started, up to the command: 'python cli.py train',
    'python -m minitransformer train' or 'minitransformer train' (a console script), with the
    paths as they were typed, so a printed resume command can be pasted back as it is."""
    argv = sys.argv
    orig = getattr(sys, "orig_argv", None) or [sys.executable, *argv]
    if len(argv) < 2 or argv[1] != "train" or len(orig) < len(argv):
        return "python cli.py train"                   # called from Python, not a command line
    prefix = orig[:len(orig) - len(argv) + 1]         # interpreter, its options, the script
    if not argv[0].endswith(".py") and "-m" not in prefix:
        prefix = [argv[0]]                             # a console script runs by its own name
    return shlex.join(prefix + ["train"])


@click.command()
@click.argument("run_dir", type=str)
@click.option("--prompt", default="", help="Text to continue [default: a newline].")
@click.option("--max-new-tokens", type=int, default=500, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=int, default=None, help="Keep only the k most likely tokens.")
@click.option("--seed", type=int, default=1337, show_default=True)
def sample(run_dir, prompt, max_new_tokens, temperature, top_k, seed):
    """Generate text from the GPT of a run folder (shown as it is made; Ctrl-C keeps it). A run
    without a vocabulary (an imported GPT-2) takes and prints token ids."""
    from ..analysis.sample import sample_pieces, write_stream
    head, pieces = sample_pieces(run_dir, prompt=prompt, max_new_tokens=max_new_tokens,
                                 temperature=temperature, top_k=top_k, seed=seed)
    n, signum = write_stream(head, pieces, sys.stdout)
    if signum is not None:
        click.echo(f"interrupted: kept the {n} of {max_new_tokens} tokens made", err=True)
        raise click.exceptions.Exit(128 + signum)     # 130 for Ctrl-C, 143 for SIGTERM


@click.command()
@click.option("--model", type=click.Choice(["gpt", "vit"]), default="gpt", show_default=True,
              help="gpt: nanoGPT's CPU config; vit: the ViT of `train --model vit`.")
@click.option("--n-layer", type=int, default=None, help=_help("n_layer", "Blocks."))
@click.option("--n-head", type=int, default=None, help=_help("n_head", "Heads."))
@click.option("--n-embd", type=int, default=None, help=_help("n_embd", "Channels."))
@click.option("--block-size", type=int, default=None, help=_help("block_size", "GPT only."))
@click.option("--batch-size", type=int, default=None,
              help=_help("batch_size", "Sequences or images."))
@click.option("--vocab-size", type=int, default=None,
              help=f"GPT only. [default: {GPTConfig().vocab_size}, Tiny Shakespeare's characters]")
@click.option("--patch-size", type=int, default=None, help="ViT only. "
              f"[default: {VIT_DEFAULTS['patch_size']}]")
@click.option("--dtype", type=str, default="float32", show_default=True,
              help="float32 | float64 (the gradient checks' precision).")
@click.option("--iters", type=int, default=50, show_default=True, help="Timed iterations.")
@click.option("--threads", type=int, default=None,
              help="Run in a fresh process with N BLAS/Numba threads (1: as sweep workers run). "
                   "[default: all]")
@click.option("--gemm-size", type=int, default=2048, show_default=True,
              help="n of the n x n matrix product that measures the GEMM peak.")
@click.option("--warmup", type=int, default=5, show_default=True,
              help="Untimed iterations first (JIT compilation, caches).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bench(as_json, **options):
    """Time training iterations (forward + backward + AdamW) and compare with this machine's
    measured GEMM peak."""
    from ..analysis.bench import run_bench, format_report
    import json
    report = run_bench(**options)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


COMMANDS = (train, sample, bench)
