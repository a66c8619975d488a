"""Training: the loop, evaluation, checkpoints, the run folder, resume and divergence handling.

    from minitransformer.training.loop import TrainConfig, run
    summary = run(TrainConfig(max_iters=200), "runs/demo")   # nanoGPT's CPU Shakespeare otherwise

One iteration, for step k = 0, 1, ..., max_iters - 1 (k = updates made so far, nanoGPT's iter_num):
    1. if k % eval_interval == 0: evaluate the current parameters (train and val loss)
    2. draw batch k from the data stream, loss and gradients, clip the global gradient norm
    3. update with lr = get_lr(k, ...): step 0 gets lr / (warmup_iters + 1), never 0 (optim.py)
    4. log step k (its loss and lr) to metrics.jsonl; every checkpoint_interval updates, checkpoint
After the loop: checkpoint, final evaluation (logged as step = max_iters), and a text sample (GPT)
or the validation accuracy (ViT).

Randomness: four explicit generators. Initialization uses np.random.default_rng(seed), so
build_model(cfg, seed=seed) reproduces a run's initial weights; training batches, evaluation
batches and sampling use the three children of np.random.SeedSequence(seed).spawn(3). The
checkpoint holds the state of all of them, which is what makes --resume bit-identical.

Run folder (DESIGN.md section 5): config.json, metrics.jsonl, summary.json, checkpoint.npz.

Resume: a checkpoint at step s is written after update s, before the evaluation of step s, and
after metrics.jsonl holds the lines of steps < s. Resuming loads it, drops the lines of steps >= s
(a killed process may have written some), and carries on; since every random draw comes from a
restored generator, the rest is the same computation, bit for bit. The final checkpoint, too, is
written before the final evaluation, so resuming a finished run repeats that evaluation exactly.
"""
from dataclasses import dataclass, asdict, fields
from pathlib import Path
import json
import math
import sys
import time

import numpy as np

from .. import __version__, build_model
from ..engine.config import (ConfigError, GPTConfig, ViTConfig, NORMS, POOLS, check_choice,
                     check_positive_int, check_nonnegative_int, check_positive_float,
                     check_number_in, from_dict)
from .data import load_dataset, get_text_batch, get_image_batch, IMAGE_DATA
from ..engine.layers import cross_entropy_forward
from ..engine.optim import AdamW, SGD, SCHEDULES, clip_grad_norm, get_lr
from .. import init as _init
from ..measure import telemetry
from .runfolder import (CheckpointError, write_json, read_json, save_checkpoint,  # noqa: F401
                        load_checkpoint, restore_params, restore_checkpoint, truncate_metrics,
                        default_out_dir, check_out_dir)
from ..measure.sharpness import sharpness_record
from ..errors import CheckpointError, ConfigError, NotFound, RunFolderError

REPO_DATA = Path(__file__).resolve().parents[2] / "data"   # the bundled data sets
MODELS = ("gpt", "vit")
OPTIMIZERS = ("adamw", "sgd")
DTYPES = ("float32", "float64")
DEFAULT_INIT = {"gpt": "gpt2", "vit": "vit"}


# ---------------------------------------------------------------------------------------------
# Configuration

@dataclass
class TrainConfig:
    """Every setting of a run. Defaults: nanoGPT's CPU Shakespeare configuration (GPT).
    TrainConfig.for_model(model="vit", ...) starts from the ViT defaults (VIT_DEFAULTS) instead."""
    # what to train
    model: str = "gpt"                  # "gpt" (character language model) or "vit" (classifier)
    data: str = "data/tinyshakespeare.txt"   # gpt: any UTF-8 text file; vit: "mnist" or "digits"
    # model shape
    n_layer: int = 4                    # L: transformer blocks
    n_head: int = 4                     # NH: attention heads
    n_embd: int = 128                   # C: channels (must be divisible by n_head)
    block_size: int = 64                # T: GPT context length in characters (unused by vit)
    norm: str = "pre"                   # "pre" (GPT-2, ViT), "post" (original Transformer), "none"
    rezero: bool = False                # learned gate alpha on both branches of each block
    patch_size: int = 7                 # vit: P, must divide the image size (28 -> 16 patches)
    pool: str = "cls"                   # vit: "cls" token or "mean" of the patch tokens
    # initialization
    init: str = None                    # scheme name from init.py; None = gpt2 (gpt) / vit (vit)
    init_scale: float = 1.0             # multiplies every weight matrix after the scheme
    init_std: float = 0.02              # std of schemes that take one ("normal")
    base_width: int = None              # mup: the width whose behaviour is copied (None = n_embd)
    impulse_k: int = 3                  # structured: k x k impulse window (3 or 5)
    init_from: str = None               # start from another run's folder/checkpoint (transfer.py)
    reinit_head: bool = False           # with init_from: draw the head afresh
    allow_partial: bool = False         # with init_from: skip tensors whose shapes differ
    # optimization
    batch_size: int = 12                # B: sequences (gpt) or images (vit) per step
    max_iters: int = 2000               # optimizer steps; always finite
    optimizer: str = "adamw"            # "adamw" or "sgd" (with momentum)
    lr: float = 1e-3                    # peak learning rate
    min_lr: float = 1e-4                # floor of the decay (nanoGPT: lr / 10)
    schedule: str = "cosine"            # cosine | linear | constant | noam | inverse_sqrt
    warmup_iters: int = 100             # linear warmup steps (0 = none)
    lr_decay_iters: int = None          # cosine/linear reach min_lr here; None = max_iters (2000)
    beta1: float = 0.9                  # AdamW beta1
    beta2: float = 0.99                 # AdamW beta2 (nanoGPT's CPU config: small data, 0.99)
    weight_decay: float = 0.1           # decoupled, on 2-D weights only
    momentum: float = 0.9               # sgd only
    grad_clip: float = 1.0              # global gradient-norm clip; 0 = off
    # evaluation, logging, checkpoints
    eval_interval: int = 250            # evaluate every this many steps; 0 = only at the end
    eval_iters: int = 20                # batches per split per evaluation (also the final one)
    log_interval: int = 10              # write metrics.jsonl (and a progress line) every N steps
    checkpoint_interval: int = 250      # checkpoint every N steps; 0 = only at the end
    telemetry: bool = True              # per-tensor/per-layer statistics every log_interval steps
    sharpness_every: int = 0            # top Hessian eigenvalue every N steps (0 = never; costly)
    # reproducibility
    seed: int = 1337                    # every random stream derives from it
    dtype: str = "float32"              # training precision: float32 or float64
    explicit: tuple = ()                # fields the user set; init schemes may adapt the others

    def __post_init__(self):
        self.explicit = tuple(self.explicit)
        names = {f.name for f in fields(self)}
        bad = [n for n in self.explicit if n not in names]
        if bad:
            raise ConfigError(f"unknown TrainConfig field(s) in explicit: {', '.join(bad)}")
        check_choice("model", self.model, MODELS)
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"data must be a file path or a data set name, got {self.data!r}")
        if self.model == "vit" and self.data not in IMAGE_DATA:
            raise ConfigError(f"data for vit must be one of {', '.join(IMAGE_DATA)}; "
                              f"got {self.data!r}")
        for name in ("n_layer", "n_head", "n_embd", "block_size", "patch_size", "batch_size",
                     "max_iters", "eval_iters", "log_interval"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        check_choice("norm", self.norm, NORMS)
        check_choice("pool", self.pool, POOLS)
        for name in ("rezero", "reinit_head", "allow_partial", "telemetry"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.init is not None and self.init not in _init.SCHEMES:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: "
                              f"{', '.join(sorted(_init.SCHEMES))}")
        for name in ("init_scale", "init_std", "lr"):
            check_positive_float(name, getattr(self, name))
        if self.init_from is not None and (not isinstance(self.init_from, str)
                                           or not self.init_from):
            raise ConfigError(f"init_from must be a run folder or checkpoint path, "
                              f"got {self.init_from!r}")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_number_in("min_lr", self.min_lr, 0.0, self.lr, f"between 0 and lr ({self.lr})")
        for name in ("warmup_iters", "eval_interval", "checkpoint_interval", "seed",
                     "sharpness_every"):
            check_nonnegative_int(name, getattr(self, name))
        if self.lr_decay_iters is not None:
            check_positive_int("lr_decay_iters", self.lr_decay_iters)
        if self.base_width is not None:
            check_positive_int("base_width", self.base_width)
        if self.impulse_k not in (3, 5):
            raise ConfigError(f"impulse_k must be 3 or 5, got {self.impulse_k!r}")
        if self.schedule in ("cosine", "linear") and self.decay_iters < self.warmup_iters:
            raise ConfigError(f"warmup_iters ({self.warmup_iters}) is longer than the "
                              f"{self.schedule} decay, lr_decay_iters ({self.decay_iters}); "
                              f"lower --warmup-iters or raise --lr-decay-iters")
        for name in ("beta1", "beta2", "momentum"):
            check_number_in(name, getattr(self, name), 0.0, 1.0, "in [0, 1)", open_right=True)
        check_number_in("weight_decay", self.weight_decay, 0.0, math.inf, ">= 0")
        check_number_in("grad_clip", self.grad_clip, 0.0, math.inf, ">= 0 (0 turns clipping off)")
        check_choice("dtype", self.dtype, DTYPES)

    @property
    def decay_iters(self):
        """lr_decay_iters; None means max_iters (or warmup_iters, if a short run is all warmup)."""
        if self.lr_decay_iters is None:
            return max(self.max_iters, self.warmup_iters)
        return self.lr_decay_iters

    @property
    def init_name(self):
        return self.init or DEFAULT_INIT[self.model]

    def lr_at(self, step):
        """The learning rate of optimizer step `step` (0-based)."""
        return get_lr(step, self.schedule, self.lr, self.min_lr, self.warmup_iters,
                      self.decay_iters)

    @classmethod
    def for_model(cls, **settings):
        """The defaults of settings["model"] (VIT_DEFAULTS for vit), then `settings`, which are
        recorded as explicit. `python cli.py train` builds this from the options the user typed."""
        model = settings.get("model", "gpt")
        names = {f.name for f in fields(cls)} - {"explicit"}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
        values = dict(MODEL_DEFAULTS.get(model, {}))
        values.update(settings)
        return cls(**values, explicit=tuple(sorted(settings)))

    def to_dict(self):
        d = asdict(self)
        d["explicit"] = list(self.explicit)
        return d

    @classmethod
    def from_dict(cls, d):
        return from_dict(cls, d)


# The ViT's defaults, chosen by measurement on the MNIST 8,000/2,000 split. Validation accuracy at
# the end, seeds 1337 / 1 / 2: 96.30 / 96.35 / 96.15% with these; 96.2 / 95.15 / 95.75% with 2000
# steps; 95.75% (seed 1) with batch 128 for 1500 steps, the same compute; lr 3e-3 or mean pooling
# changed little. The model reaches train loss ~0.001: 8,000 images are the limit, not the steps.
VIT_DEFAULTS = dict(
    data="mnist",           # 8,000 train / 2,000 validation images of MNIST's test set
    n_layer=4,              # 4 blocks of
    n_head=4,               # 4 heads of 16 channels,
    n_embd=64,              # C = 64: 205,066 parameters
    patch_size=7,           # 16 patches of 7x7 (+ the cls token: 17 tokens)
    batch_size=64,          # images per step: 3000 steps = 24 passes over the training images
    max_iters=3000,         # optimizer steps (cosine decay over all of them)
    lr=2e-3,                # peak learning rate (small model, small batch: higher than the GPT's)
    weight_decay=0.05,      # timm's ViT recipes use 0.05
)

MODEL_DEFAULTS = {"gpt": {}, "vit": VIT_DEFAULTS}


# ---------------------------------------------------------------------------------------------
# Data and model

def resolve_data(cfg):
    """load_dataset() for cfg: a relative text path that does not exist here is also looked up
    next to the package (so the bundled data/ works from any directory)."""
    if cfg.model == "vit":
        data_dir = Path("data")
        if not any(data_dir.glob("t10k-*")) and not (data_dir / "digits.csv.gz").exists():
            data_dir = REPO_DATA
        return load_dataset("vit", cfg.data, data_dir)
    path = Path(cfg.data)
    if not path.exists() and not path.is_absolute():
        bundled = REPO_DATA.parent / path
        if bundled.exists():
            path = bundled
    return load_dataset("gpt", str(path))


def model_config(cfg, data):
    """GPTConfig/ViTConfig from the settings and the data, adapted by the init scheme
    (init.prepare_config). Returns (model_cfg, warnings)."""
    if cfg.model == "gpt":
        data.check_block(cfg.block_size)
        mcfg = GPTConfig(vocab_size=data.vocab_size, block_size=cfg.block_size,
                         n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                         norm=cfg.norm, rezero=cfg.rezero)
    else:
        mcfg = ViTConfig(image_size=data.image_size, patch_size=cfg.patch_size,
                         in_channels=data.in_channels, n_classes=data.n_classes,
                         n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                         norm=cfg.norm, pool=cfg.pool, rezero=cfg.rezero)
    explicit = tuple(n for n in cfg.explicit if n in {f.name for f in fields(mcfg)})
    return _init.prepare_config(mcfg, cfg.init_name, explicit, init_options(cfg))


def init_options(cfg):
    return _init.InitOptions(init_std=cfg.init_std, init_scale=cfg.init_scale,
                             base_width=cfg.base_width, impulse_k=cfg.impulse_k)


def config_from_dict(model, d):
    return (GPTConfig if model == "gpt" else ViTConfig).from_dict(d)


def make_model(cfg, mcfg):
    """The model with its initial parameters (scheme cfg.init_name from default_rng(cfg.seed))."""
    return build_model(mcfg, init=cfg.init_name, seed=cfg.seed, dtype=cfg.dtype,
                       **vars(init_options(cfg)))


def make_optimizer(cfg, mcfg, params):
    mult = _init.lr_multipliers(mcfg, cfg.init_name, params, init_options(cfg))
    if cfg.optimizer == "adamw":
        return AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                     weight_decay=cfg.weight_decay, lr_mult=mult)
    return SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
               lr_mult=mult)


def make_streams(seed):
    """Generators for training batches, evaluation batches and sampling (init has its own)."""
    data_ss, eval_ss, sample_ss = np.random.SeedSequence(seed).spawn(3)
    return {"data": np.random.default_rng(data_ss), "eval": np.random.default_rng(eval_ss),
            "sample": np.random.default_rng(sample_ss)}


def get_batch(cfg, data, split, rng):
    """(x, y) of one batch: windows of text (GPT) or images and labels (ViT)."""
    if cfg.model == "gpt":
        ids = data.train if split == "train" else data.val
        return get_text_batch(ids, cfg.batch_size, cfg.block_size, rng)
    if split == "train":
        return get_image_batch(data.train_x, data.train_y, cfg.batch_size, rng)
    return get_image_batch(data.val_x, data.val_y, cfg.batch_size, rng)


def evaluate(cfg, model, data, rng):
    """train_loss and val_loss: means over eval_iters batches drawn from rng. For ViT, val_loss and
    val_acc are over the whole validation set instead (exact, and cheap at 2,000 images)."""
    out = {}
    splits = ("train", "val") if cfg.model == "gpt" else ("train",)
    for split in splits:
        losses = [float(model.loss(*get_batch(cfg, data, split, rng)))
                  for _ in range(cfg.eval_iters)]
        out[f"{split}_loss"] = float(np.mean(losses))
    if cfg.model == "vit":
        out["val_loss"], out["val_acc"] = image_loss_and_accuracy(model, data.val_x, data.val_y)
    return out


def image_loss_and_accuracy(model, x, y, chunk=500):
    """Mean cross-entropy and accuracy of a ViT over all of (x, y), in chunks of 500 images."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        logits = model.forward(x[i:i + chunk])                  # (b, K)
        loss, _ = cross_entropy_forward(logits, y[i:i + chunk])
        total_loss += float(loss) * len(logits)
        correct += int((logits.argmax(axis=1) == y[i:i + chunk]).sum())
    return total_loss / len(x), correct / len(x)


def diverged(loss, initial_loss):
    """A loss that is not finite, or has blown far above its start: more than
    max(3 * initial, initial + 5): 12.5 nats for a GPT that starts at ln 65 = 4.17."""
    return not math.isfinite(loss) or loss > max(3.0 * initial_loss, initial_loss + 5.0)


# ---------------------------------------------------------------------------------------------
# Reading a run folder back


def read_run_config(run_dir, model_config=True):
    """(config.json as a dict, its TrainConfig, its GPTConfig/ViTConfig or None) of a run folder;
    a missing folder, a file, or a folder without a usable config.json is one clear error."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise NotFound(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder")
    if not (run_dir / "config.json").is_file():
        raise RunFolderError(f"{run_dir} is not a run folder (it has no config.json)")
    saved = read_json(run_dir / "config.json")
    try:
        cfg = TrainConfig.from_dict(saved["train"])
        mcfg = config_from_dict(cfg.model, saved["model"]) if model_config else None
    except (KeyError, TypeError) as e:
        raise RunFolderError(f"{run_dir}/config.json is incomplete or damaged ({e})") from None
    return saved, cfg, mcfg


def load_run(run_dir):
    """(TrainConfig, model, info) of a run folder, with the parameters of its checkpoint.
    info holds the run's config.json (vocab, model config) and the checkpoint's step."""
    run_dir = Path(run_dir)
    saved, cfg, mcfg = read_run_config(run_dir)
    model = make_model(cfg, mcfg)
    ckpt_path = run_dir / "checkpoint.npz"
    ckpt = load_checkpoint(ckpt_path)
    restore_params(model.params, ckpt, ckpt_path)
    info = dict(saved, step=int(ckpt["step"]) if "step" in ckpt else None)
    return cfg, model, info


# ---------------------------------------------------------------------------------------------
# Progress display

class Progress:
    """Step, loss, lr, ms/iter and ETA on stderr: one line rewritten in place on a terminal,
    plain lines at every log step otherwise. ms/iter is a moving average of the training steps
    (evaluation and checkpoint time excluded)."""

    def __init__(self, enabled, total, stream=None):
        self.enabled, self.total = enabled, total
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.ms = None
        self.last_draw = 0.0
        self.open_line = False

    def message(self, text, always=False):
        if not (self.enabled or always):
            return
        if self.open_line:
            self.stream.write("\r\033[K")
            self.open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, step, loss, lr, seconds, logged):
        ms = seconds * 1e3
        self.ms = ms if self.ms is None else 0.9 * self.ms + 0.1 * ms
        if not self.enabled:
            return
        eta = _hms((self.total - step - 1) * self.ms / 1e3)
        line = (f"step {step:>{len(str(self.total))}}/{self.total}  loss {loss:.4f}  lr {lr:.2e}"
                f"  {self.ms:6.1f} ms/iter  ETA {eta}")
        now = time.monotonic()
        if self.tty and (now - self.last_draw > 0.1 or step == self.total - 1):
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self.open_line, self.last_draw = True, now
        elif not self.tty and logged:
            self.message(line)


def _hms(seconds):
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _fmt_eval(ev):
    parts = [f"{k.replace('_', ' ')} {v:.2%}" if k.endswith("acc") else
             f"{k.replace('_', ' ')} {v:.4f}" for k, v in ev.items()]
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# The run

def resume(run_dir, progress=True):
    """Continue the run in run_dir from its checkpoint to its max_iters (its config.json decides
    everything); the result is bit-identical to a run that was never interrupted."""
    _, cfg, _ = read_run_config(run_dir, model_config=False)
    return run(cfg, Path(run_dir), resume=True, progress=progress)


def run(cfg, out_dir=None, resume=False, progress=True):
    """Train as cfg says and write the run folder out_dir (default runs/<model>-<time>).
    With resume=True, continue the run in out_dir from its checkpoint instead. Returns the dict
    written to summary.json; its "status" is "completed" or "diverged".

    Everything that can be wrong with the input (data, shapes, numbers, checkpoint) is checked
    before the first file is written."""
    t_start = time.perf_counter()
    show = Progress(progress, cfg.max_iters)
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
    if resume:
        if not (out / "config.json").is_file():
            raise NotFound(f"run folder not found or has no config.json: {out}")
    else:
        check_out_dir(out)

    # --- data, model, optimizer, random streams (nothing written yet)
    data = resolve_data(cfg)
    vocab = data.vocab if cfg.model == "gpt" else None
    if resume:
        saved = read_json(out / "config.json")
        mcfg = config_from_dict(cfg.model, saved["model"])
        if saved.get("vocab") != vocab:
            raise RunFolderError(f"the data of {out} has changed since the run started (its "
                             f"vocabulary differs from config.json)")
        warnings = []
    else:
        mcfg, warnings = model_config(cfg, data)
    for w in warnings:
        show.message(f"warning: {w}", always=True)
    model = make_model(cfg, mcfg)
    params = model.params
    ckpt_path = out / "checkpoint.npz"
    metrics_path = out / "metrics.jsonl"
    tele_path, sharp_path = out / "telemetry.jsonl", out / "sharpness.jsonl"
    from_checkpoint = resume and ckpt_path.exists()
    if cfg.init_from is not None and not from_checkpoint:
        from .transfer import apply_init_from          # lazily: only runs that transfer need it
        reinit = apply_init_from(model, cfg.init_from, init=cfg.init_name, seed=cfg.seed,
                                 reinit_head=cfg.reinit_head, allow_partial=cfg.allow_partial,
                                 vocab=vocab)
        for line in reinit or ():
            show.message(f"init_from: {line}", always=True)
    opt = make_optimizer(cfg, mcfg, params)
    streams = make_streams(cfg.seed)
    n_params = int(sum(p.size for p in params.values()))

    # training state carried through checkpoints
    state = {"initial_loss": None, "last_finite_loss": None, "best_val_loss": None,
             "elapsed_s": 0.0}
    start = 0
    if from_checkpoint:
        start = restore_checkpoint(ckpt_path, params, opt, streams, state)
        if start > cfg.max_iters:
            raise CheckpointError(f"{ckpt_path} is at step {start}, past max_iters "
                                  f"{cfg.max_iters}")
        show.message(f"resuming {out} from step {start}")
    elif resume:
        show.message(f"{out} has no checkpoint yet: starting from step 0")

    # --- the run folder
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        for path in (metrics_path, tele_path, sharp_path):
            truncate_metrics(path, start)
    else:
        write_json(out / "config.json", {"train": cfg.to_dict(), "model": mcfg.to_dict(),
                                         "vocab": vocab, "n_params": n_params,
                                         "minitransformer_version": __version__})
        metrics_path.write_text("")
        for path, on in ((tele_path, cfg.telemetry), (sharp_path, cfg.sharpness_every)):
            if on:
                path.write_text("")
    show.message(f"{cfg.model}: {n_params:,} parameters, init {cfg.init_name}, "
                 f"{cfg.max_iters} steps of batch {cfg.batch_size} -> {out}")

    metrics = open(metrics_path, "a", encoding="utf-8")

    def log(record):
        metrics.write(json.dumps(record, allow_nan=False) + "\n")
        metrics.flush()

    def elapsed():
        return state["elapsed_s"] + time.perf_counter() - t_start

    def checkpoint(step):
        metrics.flush()
        save_checkpoint(ckpt_path, params, opt, step, streams, dict(state, elapsed_s=elapsed()))

    def record_eval(ev):
        if state["best_val_loss"] is None or ev["val_loss"] < state["best_val_loss"]:
            state["best_val_loss"] = ev["val_loss"]
        show.message(f"step {step}: {_fmt_eval(ev)}")

    # a fixed batch of its own for sharpness, so that probing never moves the data stream
    sharp_batch = get_batch(cfg, data, "train", np.random.default_rng(
        np.random.SeedSequence(cfg.seed).spawn(4)[3])) if cfg.sharpness_every else None

    # --- the loop
    status, divergence, step_times, watch_times, step = "completed", None, [], [], start
    try:
        for step in range(start, cfg.max_iters):
            record = {"step": step}
            if cfg.eval_interval and step % cfg.eval_interval == 0:
                ev = evaluate(cfg, model, data, streams["eval"])
                record_eval(ev)
            else:
                ev = {}
            t0 = time.perf_counter()
            x, y = get_batch(cfg, data, "train", streams["data"])
            watch = cfg.telemetry and step % cfg.log_interval == 0
            trace = {} if watch else None              # this forward's activations, for telemetry
            loss, grads = model.loss_and_grads(x, y, trace=trace)
            loss, lr = float(loss), cfg.lr_at(step)
            if state["initial_loss"] is None:
                state["initial_loss"] = loss
            grad_norm = math.nan
            if not diverged(loss, state["initial_loss"]):
                grad_norm = clip_grad_norm(grads, cfg.grad_clip)
            if diverged(loss, state["initial_loss"]) or not math.isfinite(grad_norm):
                why = (f"loss {loss:.4g}" if diverged(loss, state["initial_loss"])
                       else "gradient norm is not finite")
                log(dict(record, loss=loss if math.isfinite(loss) else None, lr=lr, **ev))
                divergence = {"step": step, "reason": why,
                              "loss": loss if math.isfinite(loss) else None}
                status = "diverged"
                break
            before = telemetry.copy_params(params) if watch else None
            opt.step(params, grads, lr)
            state["last_finite_loss"] = loss
            step_times.append(time.perf_counter() - t0)
            if watch:                                  # draws no random numbers: resume unaffected
                t1 = time.perf_counter()
                rec = telemetry.step_record(step, lr, grad_norm, cfg.grad_clip, before, model,
                                            grads, opt, x, trace=trace)
                telemetry.append_jsonl(tele_path, dict(rec, loss=loss))
                watch_times.append(time.perf_counter() - t1)
            if cfg.sharpness_every and step % cfg.sharpness_every == 0:
                telemetry.append_jsonl(sharp_path, sharpness_record(
                    model, *sharp_batch, step, lr, opt if cfg.optimizer == "adamw" else None,
                    method="lanczos"))                 # ~5x fewer Hessian products than power
            logged = (step % cfg.log_interval == 0 or step == cfg.max_iters - 1 or bool(ev))
            if logged:
                log(dict(record, loss=loss, lr=lr, **ev))
            show.step(step, loss, lr, step_times[-1], logged)
            done = step + 1
            if cfg.checkpoint_interval and done % cfg.checkpoint_interval == 0 \
                    and done < cfg.max_iters:
                checkpoint(done)

        summary = {"status": status, "model": cfg.model, "n_params": n_params}
        if status == "completed":
            step = cfg.max_iters
            checkpoint(step)                           # before the final eval (module docstring)
            ev = evaluate(cfg, model, data, streams["eval"])
            record_eval(ev)
            log(dict({"step": step}, **ev))
            summary.update(step=step, final_val_loss=ev["val_loss"],
                           final_train_loss=ev["train_loss"])
            if cfg.model == "vit":
                summary["val_acc"] = ev["val_acc"]
                show.message(f"validation accuracy {ev['val_acc']:.2%} "
                             f"({len(data.val_y)} images)")
            else:
                from ..analysis.sample import generate, start_ids
                ids = generate(model, start_ids(vocab, ""), 200, streams["sample"])
                summary["sample"] = "".join(vocab[i] for i in ids)
                if progress:
                    show.message("sample (200 characters from a newline, temperature 1):")
                    print(summary["sample"], flush=True)
        else:
            summary.update(step=divergence["step"], final_val_loss=None,
                           diverged_step=divergence["step"], diverged_loss=divergence["loss"],
                           reason=divergence["reason"],
                           last_finite_loss=state["last_finite_loss"])
            show.message(f"diverged at step {divergence['step']}: {divergence['reason']} "
                         f"(last finite loss {_fmt_loss(state['last_finite_loss'])}); "
                         f"stopped, see {out / 'summary.json'}", always=True)
        wall = elapsed()
        summary.update(best_val_loss=state["best_val_loss"], wall_time_s=round(wall, 3),
                       ms_per_iter=round(1e3 * float(np.mean(step_times)), 3)
                       if step_times else None, max_iters=cfg.max_iters, out_dir=str(out))
        if watch_times and step_times:                 # telemetry's cost, per run
            summary["telemetry_ms_per_record"] = round(1e3 * float(np.mean(watch_times)), 3)
            summary["telemetry_overhead"] = round(float(np.sum(watch_times) / np.sum(step_times)), 4)
        write_json(out / "summary.json", summary)
    except KeyboardInterrupt:
        last = (step // cfg.checkpoint_interval * cfg.checkpoint_interval
                if cfg.checkpoint_interval else 0)
        show.message(f"interrupted at step {step}; continue from the checkpoint at step "
                     f"{max(last, start)} with: python cli.py train --resume {out}", always=True)
        raise
    finally:
        metrics.close()
    if status == "completed":
        speed = f", {summary['ms_per_iter']:.1f} ms/iter" if summary["ms_per_iter"] else ""
        show.message(f"done: val loss {summary['final_val_loss']:.4f}, {_hms(wall)}{speed} "
                     f"-> {out}")
    return summary


def _fmt_loss(x):
    return "none" if x is None else f"{x:.4f}"
